//! Issuer keys and the ledger's checkpoint key, kept as files in the keys directory.
//!
//! Owns: creating keys on first start, loading them later, refusing key files that others can
//! read, and rotation (a new active key; older keys retired but still verifying what they
//! signed). Does not own: publishing key events in the ledger (the service does that at start).
//!
//! Layout of the keys directory:
//! - `stamp-<kid>.json`: one issuer key, `{"kid","secret_key","public_key","status","created_at"}`
//! - `ledger.json`: the checkpoint-signing key, `{"name","secret_key","public_key","created_at"}`
//!
//! Secret keys are 32-byte Ed25519 seeds in base64url without padding. Every file is written
//! mode 0600 through a temporary file and a rename, so a crash never leaves half a key.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};

use crate::stamp::Kid;
use crate::time::Timestamp;

/// Whether a key signs new stamps or only verifies old ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Retired,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Retired => "retired",
        }
    }
}

/// Errors from reading or writing key files.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Occurs when a key file or the keys directory cannot be read or written.
    #[error("key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Occurs when a key file does not hold a well-formed key.
    #[error("key file {path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: String },
    /// Occurs when a key file can be read by users other than its owner.
    #[error(
        "key file {path} has mode {mode:o}: it must not be readable by group or others (chmod 600)"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    /// Occurs when the keys directory holds no active key, or more than one.
    #[error("keys directory {0} must hold exactly one active issuer key")]
    ActiveCount(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Serialize, Deserialize)]
struct StampKeyFile {
    kid: String,
    secret_key: String,
    public_key: String,
    status: KeyStatus,
    created_at: String,
}

#[derive(Serialize, Deserialize)]
struct LedgerKeyFile {
    name: String,
    secret_key: String,
    public_key: String,
    created_at: String,
}

/// One issuer key.
#[derive(Clone)]
pub struct IssuerKey {
    pub kid: Kid,
    pub signing: SigningKey,
    pub verifying: VerifyingKey,
    pub status: KeyStatus,
    pub created_at: Timestamp,
}

impl std::fmt::Debug for IssuerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("IssuerKey")
            .field("kid", &self.kid)
            .field("status", &self.status)
            .finish()
    }
}

/// All issuer keys, newest last. Exactly one is active.
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<IssuerKey>,
}

impl Keyring {
    /// The key that signs new stamps.
    pub fn active(&self) -> &IssuerKey {
        // `load_or_create` and `rotate` guarantee exactly one active key.
        self.keys
            .iter()
            .find(|k| k.status == KeyStatus::Active)
            .unwrap_or(&self.keys[self.keys.len() - 1])
    }

    /// The verifying key with this key id, active or retired.
    pub fn lookup(&self, kid: &Kid) -> Option<VerifyingKey> {
        self.keys
            .iter()
            .find(|k| k.kid == *kid)
            .map(|k| k.verifying)
    }

    /// The signing key with this key id (to answer an idempotent replay with the same stamps).
    pub fn signing_key(&self, kid: &Kid) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == *kid).map(|k| &k.signing)
    }

    pub fn keys(&self) -> &[IssuerKey] {
        &self.keys
    }
}

/// Public key in base64url without padding, as `/v1/keys` and the ledger publish it.
pub fn public_key_text(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// Writes `bytes` to `path` with mode 0600, atomically (temp file, fsync, rename, fsync dir).
fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_error(&tmp))?;
    file.write_all(bytes).map_err(io_error(&tmp))?;
    file.sync_all().map_err(io_error(&tmp))?;
    fs::rename(&tmp, path).map_err(io_error(path))?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(dir))?;
    }
    Ok(())
}

/// Reads a key file, refusing it when group or others may read it.
fn read_secret_file(path: &Path) -> Result<Vec<u8>, KeyError> {
    let meta = fs::metadata(path).map_err(io_error(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.to_path_buf(),
            mode,
        });
    }
    fs::read(path).map_err(io_error(path))
}

fn decode_seed(path: &Path, text: &str) -> Result<SigningKey, KeyError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|e| KeyError::Malformed {
            path: path.to_path_buf(),
            reason: format!("secret_key: {e}"),
        })?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed {
        path: path.to_path_buf(),
        reason: "secret_key must be 32 bytes".into(),
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

fn stamp_key_path(dir: &Path, kid: &Kid) -> PathBuf {
    dir.join(format!("stamp-{kid}.json"))
}

fn write_stamp_key(dir: &Path, key: &IssuerKey) -> Result<(), KeyError> {
    let file = StampKeyFile {
        kid: key.kid.to_hex(),
        secret_key: URL_SAFE_NO_PAD.encode(key.signing.to_bytes()),
        public_key: public_key_text(&key.verifying),
        status: key.status,
        created_at: key.created_at.to_rfc3339(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(|e| KeyError::Malformed {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_secret_file(&stamp_key_path(dir, &key.kid), &bytes)
}

fn new_issuer_key(now: Timestamp) -> IssuerKey {
    let signing = SigningKey::generate(&mut OsRng);
    let verifying = signing.verifying_key();
    IssuerKey {
        kid: Kid::of(&verifying),
        signing,
        verifying,
        status: KeyStatus::Active,
        created_at: now,
    }
}

fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_error(dir))
}

fn load_stamp_keys(dir: &Path) -> Result<Vec<IssuerKey>, KeyError> {
    let mut keys = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.starts_with("stamp-") && name.ends_with(".json")) {
            continue;
        }
        let bytes = read_secret_file(&path)?;
        let file: StampKeyFile =
            serde_json::from_slice(&bytes).map_err(|e| KeyError::Malformed {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let signing = decode_seed(&path, &file.secret_key)?;
        let verifying = signing.verifying_key();
        let kid = Kid::of(&verifying);
        if kid.to_hex() != file.kid || public_key_text(&verifying) != file.public_key {
            return Err(KeyError::Malformed {
                path,
                reason: "kid or public_key does not match secret_key".into(),
            });
        }
        let created_at =
            Timestamp::parse_rfc3339(&file.created_at).ok_or_else(|| KeyError::Malformed {
                path: path.clone(),
                reason: "created_at is not RFC 3339".into(),
            })?;
        keys.push(IssuerKey {
            kid,
            signing,
            verifying,
            status: file.status,
            created_at,
        });
    }
    keys.sort_by_key(|k| (k.created_at, k.kid));
    Ok(keys)
}

/// Loads the issuer keys from `dir`, creating the directory and a first active key when there
/// is none.
pub fn load_or_create(dir: &Path, now: Timestamp) -> Result<Keyring, KeyError> {
    ensure_dir(dir)?;
    let mut keys = load_stamp_keys(dir)?;
    if keys.is_empty() {
        let key = new_issuer_key(now);
        write_stamp_key(dir, &key)?;
        tracing::info!(kid = %key.kid, dir = %dir.display(), "created issuer key");
        keys.push(key);
    }
    let active = keys
        .iter()
        .filter(|k| k.status == KeyStatus::Active)
        .count();
    if active != 1 {
        return Err(KeyError::ActiveCount(dir.to_path_buf()));
    }
    Ok(Keyring { keys })
}

/// Makes a new active issuer key and retires the one that was active. The new key is written
/// before the old one is retired, so a crash in between leaves two active keys, which start-up
/// refuses loudly rather than guessing.
pub fn rotate(dir: &Path, now: Timestamp) -> Result<Keyring, KeyError> {
    let ring = load_or_create(dir, now)?;
    let new_key = new_issuer_key(now);
    write_stamp_key(dir, &new_key)?;
    let mut old = ring.active().clone();
    old.status = KeyStatus::Retired;
    write_stamp_key(dir, &old)?;
    tracing::info!(new = %new_key.kid, retired = %old.kid, "rotated issuer key");
    load_or_create(dir, now)
}

/// The key that signs ledger checkpoints.
#[derive(Clone)]
pub struct LedgerKey {
    pub name: String,
    pub signing: SigningKey,
}

impl std::fmt::Debug for LedgerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerKey")
            .field("name", &self.name)
            .finish()
    }
}

/// Loads the checkpoint key from `dir/ledger.json`, creating it under `name` when missing.
/// The key keeps the name it was created with: the name is part of the verifier key that
/// auditors pin, so changing `--ledger-origin` later does not silently change it.
pub fn load_or_create_ledger_key(
    dir: &Path,
    name: &str,
    now: Timestamp,
) -> Result<LedgerKey, KeyError> {
    ensure_dir(dir)?;
    let path = dir.join("ledger.json");
    if path.exists() {
        let bytes = read_secret_file(&path)?;
        let file: LedgerKeyFile =
            serde_json::from_slice(&bytes).map_err(|e| KeyError::Malformed {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let signing = decode_seed(&path, &file.secret_key)?;
        return Ok(LedgerKey {
            name: file.name,
            signing,
        });
    }
    let signing = SigningKey::generate(&mut OsRng);
    let file = LedgerKeyFile {
        name: name.to_string(),
        secret_key: URL_SAFE_NO_PAD.encode(signing.to_bytes()),
        public_key: public_key_text(&signing.verifying_key()),
        created_at: now.to_rfc3339(),
    };
    let bytes = serde_json::to_vec_pretty(&file).map_err(|e| KeyError::Malformed {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_secret_file(&path, &bytes)?;
    tracing::info!(name, "created ledger checkpoint key");
    Ok(LedgerKey {
        name: name.to_string(),
        signing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_unix(1_700_000_000)
    }

    #[test]
    fn creates_then_loads_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create(dir.path(), now()).expect("create");
        let second = load_or_create(dir.path(), now()).expect("load");
        assert_eq!(first.active().kid, second.active().kid);
        let path = stamp_key_path(dir.path(), &first.active().kid);
        let mode = fs::metadata(path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn refuses_readable_key_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = load_or_create(dir.path(), now()).expect("create");
        let path = stamp_key_path(dir.path(), &ring.active().kid);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            load_or_create(dir.path(), now()),
            Err(KeyError::TooOpen { .. })
        ));
    }

    #[test]
    fn rotation_keeps_old_key_for_verification() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = load_or_create(dir.path(), now()).expect("create");
        let old_kid = old.active().kid;
        let ring = rotate(dir.path(), Timestamp::from_unix(1_700_000_100)).expect("rotate");
        assert_ne!(ring.active().kid, old_kid);
        assert!(ring.lookup(&old_kid).is_some());
        assert_eq!(ring.keys().len(), 2);
        let retired = ring.keys().iter().find(|k| k.kid == old_kid).expect("old");
        assert_eq!(retired.status, KeyStatus::Retired);
    }

    #[test]
    fn tampered_key_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = load_or_create(dir.path(), now()).expect("create");
        let path = stamp_key_path(dir.path(), &ring.active().kid);
        let text = fs::read_to_string(&path).expect("read");
        let other = URL_SAFE_NO_PAD.encode([1u8; 32]);
        let file: StampKeyFile = serde_json::from_str(&text).expect("parse");
        let text = text.replace(&file.secret_key, &other);
        write_secret_file(&path, text.as_bytes()).expect("write");
        assert!(matches!(
            load_or_create(dir.path(), now()),
            Err(KeyError::Malformed { .. })
        ));
    }

    #[test]
    fn ledger_key_keeps_its_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = load_or_create_ledger_key(dir.path(), "example.org/log", now()).expect("create");
        let b = load_or_create_ledger_key(dir.path(), "other", now()).expect("load");
        assert_eq!(b.name, "example.org/log");
        assert_eq!(a.signing.to_bytes(), b.signing.to_bytes());
    }
}
