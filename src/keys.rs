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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Occurs when the ledger lists a key as active whose secret is not in the keys directory
    /// (a wrong `--keys-dir`, a restore that forgot a file). Making a new key instead would
    /// strand every unspent stamp of the old one, so the start is refused.
    #[error(
        "the ledger's active issuer key {kid} has no secret key file in {} (stamp-{kid}.json): \
         restore that file (with several servers on one database: copy the keys directory from \
         a server that has it), or start with --retire-missing-keys to retire the key (its \
         stamps keep verifying) and make a new active one",
        dir.display()
    )]
    MissingActive { kid: Kid, dir: PathBuf },
    /// Occurs when the ledger published a key whose public key the server cannot find (a data
    /// directory from before public keys were recorded, whose key entry is also gone).
    #[error("the ledger's key {0} has no recorded public key")]
    UnknownPublicKey(Kid),
    /// Occurs when `keys rotate` is given a directory that holds no issuer key: rotating there
    /// would make a key unrelated to any server's ledger.
    #[error(
        "keys directory {} holds no issuer key: nothing to rotate (is --keys-dir right?)",
        .0.display()
    )]
    NoKeys(PathBuf),
    /// Occurs when `--keys-dir` names something that exists and is not a directory (a key
    /// file given instead of its directory).
    #[error("--keys-dir {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
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

/// A key as the ledger published it: what the store records of each `key` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishedKey {
    pub kid: Kid,
    /// base64url, as in the `key` entry. `None` only for keys recorded before public keys were
    /// kept beside their status; their `key` entries in the ledger still hold it.
    pub public_key: Option<String>,
    /// The last status the ledger published.
    pub status: KeyStatus,
    /// When the key was first published.
    pub published_at: Timestamp,
}

/// One issuer key.
#[derive(Clone)]
pub struct IssuerKey {
    pub kid: Kid,
    /// `None` for a key known only from the ledger (its secret file is gone): it still
    /// verifies the stamps it signed, but signs nothing.
    pub signing: Option<SigningKey>,
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
        // `load` guarantees exactly one active key, and that it has its secret.
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
        self.keys
            .iter()
            .find(|k| k.kid == *kid)
            .and_then(|k| k.signing.as_ref())
    }

    pub fn keys(&self) -> &[IssuerKey] {
        &self.keys
    }
}

/// Public key in base64url without padding, as `/v1/keys` and the ledger publish it.
pub fn public_key_text(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.as_bytes())
}

/// The public key a [`public_key_text`] names; `None` when the text is not base64url of 32
/// bytes that are an Ed25519 point.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
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
    let signing = key.signing.as_ref().ok_or_else(|| KeyError::Malformed {
        path: stamp_key_path(dir, &key.kid),
        reason: "no secret key to write".into(),
    })?;
    let file = StampKeyFile {
        kid: key.kid.to_hex(),
        secret_key: URL_SAFE_NO_PAD.encode(signing.to_bytes()),
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
        signing: Some(signing),
        verifying,
        status: KeyStatus::Active,
        created_at: now,
    }
}

/// Refuses a `dir` that exists and is not a directory, with words instead of `File exists`.
fn check_is_dir(dir: &Path) -> Result<(), KeyError> {
    match fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(KeyError::NotADirectory(dir.to_path_buf())),
        _ => Ok(()),
    }
}

fn ensure_dir(dir: &Path) -> Result<(), KeyError> {
    check_is_dir(dir)?;
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
            signing: Some(signing),
            verifying,
            status: file.status,
            created_at,
        });
    }
    keys.sort_by_key(|k| (k.created_at, k.kid));
    Ok(keys)
}

/// Whether `dir` holds the secret key file of `kid`.
pub fn has_key_file(dir: &Path, kid: &Kid) -> bool {
    stamp_key_path(dir, kid).exists()
}

/// Loads the issuer keys from `dir` against what the ledger `published`, creating the
/// directory and a first active key when it holds no key.
///
/// Keys are never replaced silently: when the ledger lists a key as active and its secret file
/// is missing, this refuses ([`KeyError::MissingActive`]) unless `retire_missing` is set, in
/// which case that key is kept as `retired` (verify-only, from its public key in the ledger)
/// and a new active key is made. Every key the ledger published is in the returned ring, so
/// its stamps keep verifying whatever happened to its file.
pub fn load(
    dir: &Path,
    published: &[PublishedKey],
    retire_missing: bool,
    now: Timestamp,
) -> Result<Keyring, KeyError> {
    // The directory is made only once the ledger's keys are accounted for: a start refused
    // below (a ledger key whose file is missing) leaves no empty keys directory behind.
    check_is_dir(dir)?;
    let mut keys = if dir.exists() {
        load_stamp_keys(dir)?
    } else {
        Vec::new()
    };
    let on_file = |kid: &Kid, keys: &[IssuerKey]| keys.iter().any(|k| k.kid == *kid);
    let mut ledger_only = Vec::new();
    for key in published {
        if on_file(&key.kid, &keys) {
            continue;
        }
        let mut status = key.status;
        if status == KeyStatus::Active {
            if !retire_missing {
                return Err(KeyError::MissingActive {
                    kid: key.kid,
                    dir: dir.to_path_buf(),
                });
            }
            tracing::warn!(kid = %key.kid, dir = %dir.display(),
                "--retire-missing-keys: the ledger's active key has no secret file; retiring it \
                 (its stamps keep verifying) and making a new active key");
            status = KeyStatus::Retired;
        }
        let text = key
            .public_key
            .as_deref()
            .ok_or(KeyError::UnknownPublicKey(key.kid))?;
        let verifying = parse_public_key(text)
            .filter(|v| Kid::of(v) == key.kid)
            .ok_or(KeyError::UnknownPublicKey(key.kid))?;
        ledger_only.push(IssuerKey {
            kid: key.kid,
            signing: None,
            verifying,
            status,
            created_at: key.published_at,
        });
    }
    ensure_dir(dir)?;
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
    keys.extend(ledger_only);
    keys.sort_by_key(|k| (k.created_at, k.kid));
    Ok(Keyring { keys })
}

/// Loads the issuer keys from `dir`, creating the directory and a first active key when there
/// is none. For tools that have no ledger at hand (the bench's prefill, tests); the server
/// uses [`load`].
pub fn load_or_create(dir: &Path, now: Timestamp) -> Result<Keyring, KeyError> {
    load(dir, &[], false, now)
}

/// Makes a new active issuer key and retires the one that was active. The new key is written
/// before the old one is retired, so a crash in between leaves two active keys, which start-up
/// refuses loudly rather than guessing. Refuses a directory with no key
/// ([`KeyError::NoKeys`]).
pub fn rotate(dir: &Path, now: Timestamp) -> Result<Keyring, KeyError> {
    if !dir.is_dir() || load_stamp_keys(dir)?.is_empty() {
        return Err(KeyError::NoKeys(dir.to_path_buf()));
    }
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

/// Most characters in `--ledger-origin`.
pub const LEDGER_ORIGIN_CHARS_MAX: usize = 255;

/// Whether `origin` can be a checkpoint's origin line and its key's name (C2SP signed-note: a
/// key name is non-empty and has no spaces or `+`; the origin is one line).
pub fn ledger_origin_is_valid(origin: &str) -> bool {
    (1..=LEDGER_ORIGIN_CHARS_MAX).contains(&origin.chars().count())
        && !origin
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '+')
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

    fn published(ring: &Keyring) -> Vec<PublishedKey> {
        ring.keys()
            .iter()
            .map(|k| PublishedKey {
                kid: k.kid,
                public_key: Some(public_key_text(&k.verifying)),
                status: k.status,
                published_at: k.created_at,
            })
            .collect()
    }

    #[test]
    fn refuses_to_replace_a_missing_active_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = load_or_create(dir.path(), now()).expect("create");
        let kid = ring.active().kid;
        let ledger = published(&ring);
        fs::remove_file(stamp_key_path(dir.path(), &kid)).expect("remove");
        match load(dir.path(), &ledger, false, now()) {
            Err(KeyError::MissingActive {
                kid: missing,
                dir: named,
            }) => {
                assert_eq!(missing, kid);
                assert_eq!(named, dir.path());
            }
            other => panic!("expected MissingActive, got {other:?}"),
        }
        // Nothing was created in its place.
        assert!(load_stamp_keys(dir.path()).expect("list").is_empty());
    }

    #[test]
    fn a_refused_start_creates_no_keys_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = load_or_create(dir.path(), now()).expect("create");
        let ledger = published(&ring);
        let absent = dir.path().join("not-yet");
        assert!(matches!(
            load(&absent, &ledger, false, now()),
            Err(KeyError::MissingActive { .. })
        ));
        assert!(
            !absent.exists(),
            "a refused start made {}",
            absent.display()
        );
        // A fresh ledger on the same path creates it, with a first key.
        load(&absent, &[], false, now()).expect("first start");
        assert!(absent.is_dir());
    }

    #[test]
    fn a_keys_dir_that_is_a_file_is_named_as_such() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ledger.json");
        fs::write(&file, b"{}").expect("write");
        for error in [
            load(&file, &[], false, now()).map(|_| ()),
            load_or_create_ledger_key(&file, "example.org/log", now()).map(|_| ()),
        ] {
            let error = error.expect_err("a file is not a keys directory");
            assert!(matches!(error, KeyError::NotADirectory(_)), "{error:?}");
            assert!(error.to_string().contains("is not a directory"), "{error}");
        }
    }

    #[test]
    fn retire_missing_keys_keeps_the_old_key_verifying() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = load_or_create(dir.path(), now()).expect("create");
        let old = ring.active().clone();
        fs::remove_file(stamp_key_path(dir.path(), &old.kid)).expect("remove");
        let ring = load(dir.path(), &published(&ring), true, now()).expect("retire");
        assert_ne!(ring.active().kid, old.kid);
        assert!(ring.signing_key(&ring.active().kid).is_some());
        let kept = ring
            .keys()
            .iter()
            .find(|k| k.kid == old.kid)
            .expect("old key");
        assert_eq!(kept.status, KeyStatus::Retired);
        assert!(kept.signing.is_none());
        assert_eq!(ring.lookup(&old.kid), Some(old.verifying));
        assert_eq!(ring.keys().len(), 2);
    }

    #[test]
    fn a_retired_key_without_its_file_still_verifies() {
        let dir = tempfile::tempdir().expect("tempdir");
        load_or_create(dir.path(), now()).expect("create");
        let ring = rotate(dir.path(), Timestamp::from_unix(1_700_000_100)).expect("rotate");
        let retired = ring
            .keys()
            .iter()
            .find(|k| k.status == KeyStatus::Retired)
            .expect("retired")
            .clone();
        let ledger = published(&ring);
        fs::remove_file(stamp_key_path(dir.path(), &retired.kid)).expect("remove");
        let ring = load(dir.path(), &ledger, false, now()).expect("load");
        assert_eq!(ring.lookup(&retired.kid), Some(retired.verifying));
        assert_eq!(ring.keys().len(), 2);
    }

    #[test]
    fn a_ledger_key_without_a_public_key_or_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        load_or_create(dir.path(), now()).expect("create");
        let ledger = vec![PublishedKey {
            kid: Kid([1; 8]),
            public_key: None,
            status: KeyStatus::Retired,
            published_at: now(),
        }];
        assert!(matches!(
            load(dir.path(), &ledger, false, now()),
            Err(KeyError::UnknownPublicKey(_))
        ));
    }

    #[test]
    fn rotate_refuses_a_directory_without_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            rotate(dir.path(), now()),
            Err(KeyError::NoKeys(_))
        ));
        assert!(matches!(
            rotate(&dir.path().join("absent"), now()),
            Err(KeyError::NoKeys(_))
        ));
        assert!(load_stamp_keys(dir.path()).expect("list").is_empty());
        assert!(!dir.path().join("absent").exists());
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
