//! The auditor's memory between runs, in two files side by side: `FILE` (JSON, [`AuditState`]:
//! the pinned key, the last checkpoint it trusted and when) and `FILE.checker` (binary: the
//! checker's state at that checkpoint, so the next run checks only the entries appended since).
//!
//! It owns both files' formats and how they are written: whole, to a temporary file that is
//! flushed to disk (fsync) and renamed over the old one, then the directory is flushed, so a
//! crash leaves the old file or the new one, never a mix. The checker file is
//!
//! ```text
//! "pennypost-audit checker state\n"   magic, 30 bytes
//! u32   CHECKER_FILE_VERSION           little-endian, like every number here
//! u32 + UTF-8   origin                 of the checkpoint it was taken at
//! u32 + UTF-8   vkey                   the pinned key
//! u64   size                           the checkpoint's size
//! [32]  root                           the checkpoint's root
//! ...   snapshot                       `LedgerChecker::to_snapshot` (its own magic and version)
//! [32]  SHA-256 of all the above
//! ```
//!
//! The checksum detects a damaged file (a torn copy, a flipped bit), not a forged one: whoever
//! can write these files can also rewrite the pinned key in `FILE`. A checker file is used only
//! when it is whole, of this version, taken at exactly the checkpoint `FILE` remembers (origin,
//! key, size and root), and its snapshot hashes to that root; otherwise the auditor says why and
//! checks every entry again.
//!
//! It must not judge entries or talk to the server: that is `auditor` and `check`.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::check::LedgerChecker;

/// The first bytes of a checker file.
pub const CHECKER_FILE_MAGIC: &[u8; 30] = b"pennypost-audit checker state\n";
/// The checker file's layout (the envelope above; the snapshot inside has its own version).
pub const CHECKER_FILE_VERSION: u32 = 1;

/// Why a state file could not be read or written; the auditor reports it as a run it could not
/// finish (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StateError(pub String);

/// What the auditor remembers between runs (`FILE`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AuditState {
    /// The pinned verifier key (`name+id+base64`).
    pub vkey: String,
    pub origin: String,
    pub size: u64,
    /// Standard base64 of the root at `size`.
    pub root: String,
    /// When the run that trusted this checkpoint finished (RFC 3339, UTC); absent in files
    /// written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
}

impl AuditState {
    /// The key id of the pinned key: the hex field of `name+id+base64`.
    pub fn key_id(&self) -> &str {
        key_id(&self.vkey)
    }
}

/// The key id (8 hex digits) of a verifier key `name+id+base64`, or "" if it has none.
pub fn key_id(vkey: &str) -> &str {
    vkey.split('+').nth(1).unwrap_or("")
}

/// `FILE.checker`, beside `FILE`.
pub fn checker_path(state_path: &Path) -> PathBuf {
    let mut name = state_path.as_os_str().to_owned();
    name.push(".checker");
    PathBuf::from(name)
}

pub fn load_state(path: &Path) -> Result<Option<AuditState>, StateError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError(format!("state file {} is not valid: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError(format!("cannot read {}: {e}", path.display()))),
    }
}

pub fn save_state(path: &Path, state: &AuditState) -> Result<(), StateError> {
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| StateError(e.to_string()))?;
    write_atomically(path, &bytes)
        .map_err(|e| StateError(format!("cannot write {}: {e}", path.display())))
}

/// Writes `bytes` as the whole new content of `path` (mode 0600): to `path.tmp`, flushed,
/// renamed over `path`, and the directory flushed so the rename itself is durable.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::File::open(dir)?.sync_all()
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&u32::try_from(text.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// The checker file's bytes for `checker`, taken at the checkpoint `state` names.
pub fn checker_file_bytes(state: &AuditState, checker: &LedgerChecker) -> Vec<u8> {
    let snapshot = checker.to_snapshot();
    let mut out = Vec::with_capacity(snapshot.len() + 512);
    out.extend_from_slice(CHECKER_FILE_MAGIC);
    out.extend_from_slice(&CHECKER_FILE_VERSION.to_le_bytes());
    put_str(&mut out, &state.origin);
    put_str(&mut out, &state.vkey);
    out.extend_from_slice(&state.size.to_le_bytes());
    out.extend_from_slice(&checker.root().0);
    out.extend_from_slice(&snapshot);
    let sum = Sha256::digest(&out);
    out.extend_from_slice(&sum);
    out
}

/// Writes `FILE.checker` for `checker` at the checkpoint `state` names; returns its size.
pub fn save_checker(
    state_path: &Path,
    state: &AuditState,
    checker: &LedgerChecker,
) -> Result<u64, StateError> {
    let path = checker_path(state_path);
    let bytes = checker_file_bytes(state, checker);
    write_atomically(&path, &bytes)
        .map_err(|e| StateError(format!("cannot write {}: {e}", path.display())))?;
    Ok(u64::try_from(bytes.len()).unwrap_or(u64::MAX))
}

/// What became of `FILE.checker`.
pub enum CheckerLoad {
    /// The checker as it was at the remembered checkpoint.
    Restored(Box<LedgerChecker>),
    /// No such file (first run, or a state written before checker files).
    Missing,
    /// It is there but cannot be used, for the reason given.
    Unusable(String),
}

/// Reads `bytes[..n]` and moves past it.
fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

fn take_u32(rest: &mut &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(take(rest, 4)?.try_into().ok()?))
}

fn take_str<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
    let n = usize::try_from(take_u32(rest)?).ok()?;
    std::str::from_utf8(take(rest, n)?).ok()
}

/// Reads a checker file's bytes, checking them against the checkpoint `state` remembers.
pub fn checker_from_bytes(bytes: &[u8], state: &AuditState) -> Result<LedgerChecker, String> {
    let damaged = || "it is damaged (truncated or not a checker state)".to_string();
    let Some(body_len) = bytes.len().checked_sub(32) else {
        return Err(damaged());
    };
    let (body, sum) = bytes.split_at(body_len);
    let mut rest = body;
    if take(&mut rest, CHECKER_FILE_MAGIC.len()) != Some(&CHECKER_FILE_MAGIC[..]) {
        return Err("it is not a checker state".to_string());
    }
    let version = take_u32(&mut rest).ok_or_else(damaged)?;
    if version != CHECKER_FILE_VERSION {
        return Err(format!(
            "it has format version {version}; this auditor reads version {CHECKER_FILE_VERSION}"
        ));
    }
    if Sha256::digest(body).as_slice() != sum {
        return Err("it is damaged (its checksum does not match)".to_string());
    }
    let origin = take_str(&mut rest).ok_or_else(damaged)?;
    let vkey = take_str(&mut rest).ok_or_else(damaged)?;
    let size = take(&mut rest, 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(damaged)?;
    let root = take(&mut rest, 32).ok_or_else(damaged)?;
    if origin != state.origin || vkey != state.vkey {
        return Err(format!(
            "it is of another log ({origin}, key {}) than the state file's",
            key_id(vkey)
        ));
    }
    if size != state.size || STANDARD.encode(root) != state.root {
        return Err(format!(
            "it was taken at size {size}, not at the remembered checkpoint of size {}",
            state.size
        ));
    }
    let checker = LedgerChecker::from_snapshot(rest).map_err(|e| e.to_string())?;
    if checker.size() != state.size || STANDARD.encode(checker.root().0) != state.root {
        return Err("its Merkle tree does not hash to the remembered root".to_string());
    }
    Ok(checker)
}

/// Reads `FILE.checker` for the checkpoint `state` remembers.
pub fn load_checker(state_path: &Path, state: &AuditState) -> CheckerLoad {
    let path = checker_path(state_path);
    match fs::read(&path) {
        Ok(bytes) => match checker_from_bytes(&bytes, state) {
            Ok(checker) => CheckerLoad::Restored(Box::new(checker)),
            Err(why) => CheckerLoad::Unusable(why),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => CheckerLoad::Missing,
        Err(e) => CheckerLoad::Unusable(format!("it cannot be read: {e}")),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn checker() -> LedgerChecker {
        let mut checker = LedgerChecker::new();
        for entry in ["a", "b", "c"] {
            checker.push(entry.as_bytes());
        }
        checker
    }

    fn state_of(checker: &LedgerChecker) -> AuditState {
        AuditState {
            vkey: "example.org/log+0a1b2c3d+AQID".into(),
            origin: "example.org/log".into(),
            size: checker.size(),
            root: STANDARD.encode(checker.root().0),
            checked_at: None,
        }
    }

    #[test]
    fn a_checker_file_reads_back_only_for_its_checkpoint() {
        let checker = checker();
        let state = state_of(&checker);
        let bytes = checker_file_bytes(&state, &checker);
        let back = checker_from_bytes(&bytes, &state).expect("read");
        assert_eq!(back.root(), checker.root());
        assert_eq!(back.report(0), checker.report(0));

        let other_key = AuditState {
            vkey: "example.org/log+ffffffff+AQID".into(),
            ..state.clone()
        };
        let why = checker_from_bytes(&bytes, &other_key)
            .err()
            .expect("refused");
        assert!(
            why.contains("another log") && why.contains("0a1b2c3d"),
            "{why}"
        );
        let later = AuditState {
            size: 4,
            ..state.clone()
        };
        let why = checker_from_bytes(&bytes, &later).err().expect("refused");
        assert!(why.contains("size 3"), "{why}");
    }

    #[test]
    fn any_damage_is_detected() {
        let checker = checker();
        let state = state_of(&checker);
        let bytes = checker_file_bytes(&state, &checker);
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            assert!(checker_from_bytes(&damaged, &state).is_err(), "byte {at}");
        }
        for cut in 0..bytes.len() {
            assert!(
                checker_from_bytes(&bytes[..cut], &state).is_err(),
                "cut {cut}"
            );
        }
        let mut newer = bytes.clone();
        newer[30] = 2;
        let why = checker_from_bytes(&newer, &state).err().expect("refused");
        assert!(why.contains("format version 2"), "{why}");
    }

    #[test]
    fn files_are_written_whole_beside_the_state() {
        let dir =
            std::env::temp_dir().join(format!("pennypost-audit-state-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("audit.json");
        assert_eq!(checker_path(&path), dir.join("audit.json.checker"));
        assert!(matches!(
            load_checker(&path, &state_of(&checker())),
            CheckerLoad::Missing
        ));
        let checker = checker();
        let state = state_of(&checker);
        save_state(&path, &state).expect("save");
        let size = save_checker(&path, &state, &checker).expect("save");
        assert_eq!(load_state(&path).expect("load"), Some(state.clone()));
        assert_eq!(fs::metadata(checker_path(&path)).expect("meta").len(), size);
        assert!(matches!(
            load_checker(&path, &state),
            CheckerLoad::Restored(_)
        ));
        assert!(!dir.join("audit.json.tmp").exists());
        assert!(!dir.join("audit.json.checker.tmp").exists());
        fs::remove_dir_all(&dir).expect("clean");
    }
}
