//! Signing checkpoints: a C2SP tlog-checkpoint body in a C2SP signed note, Ed25519-signed with
//! the server's ledger key.
//!
//! Pure: builds note text; the caller decides when a size is durable enough to sign. Checking a
//! note (and the verifier key text) belongs to the auditor crate and is re-exported here, so a
//! note this module signs is checked by exactly the code an outside auditor runs. It must not
//! grow a verifier of its own.

use ed25519_dalek::{Signer as _, SigningKey};
use signed_note::Note;
use tlog_tiles::{Checkpoint, Hash};

use crate::keys::LedgerKey;
pub use pennypost_audit::checkpoint::{
    verifier_key, verify, CheckpointError, Verified, ALG_ED25519,
};

struct NoteSigner<'a> {
    name: &'a str,
    id: u32,
    key: &'a SigningKey,
}

impl signed_note::Signer for NoteSigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

/// Signs the checkpoint `origin / size / root` with the ledger key.
pub fn sign(
    origin: &str,
    size: u64,
    root: &Hash,
    key: &LedgerKey,
) -> Result<String, CheckpointError> {
    let body = Checkpoint::new(origin, size, *root, "")
        .map_err(|_| CheckpointError::Format(format!("origin {origin:?} is not valid")))?;
    let public = [&[ALG_ED25519][..], key.signing.verifying_key().as_bytes()].concat();
    let signer = NoteSigner {
        name: &key.name,
        id: signed_note::key_id(&key.name, &public),
        key: &key.signing,
    };
    let mut note =
        Note::new(&body.to_bytes(), &[]).map_err(|e| CheckpointError::Format(e.to_string()))?;
    note.add_sigs(&[&signer])
        .map_err(|e| CheckpointError::Format(e.to_string()))?;
    String::from_utf8(note.to_bytes()).map_err(|e| CheckpointError::Format(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> LedgerKey {
        LedgerKey {
            name: "example.org/pennypost".into(),
            signing: SigningKey::from_bytes(&[3u8; 32]),
        }
    }

    #[test]
    fn signs_and_verifies() {
        let k = key();
        let root = tlog_tiles::record_hash(b"x");
        let note = sign("example.org/pennypost", 1, &root, &k).expect("sign");
        assert!(note.starts_with("example.org/pennypost\n1\n"));
        assert!(note.contains("\n\n\u{2014} example.org/pennypost "));
        let vkey = verifier_key(&k.name, &k.signing.verifying_key());
        let v = verify(note.as_bytes(), &vkey).expect("verify");
        assert_eq!(v.size, 1);
        assert_eq!(v.root, root);
        // Signing is deterministic: the same size and root give the same note.
        assert_eq!(
            note,
            sign("example.org/pennypost", 1, &root, &k).expect("sign")
        );
    }

    #[test]
    fn tampered_note_fails() {
        let k = key();
        let note = sign("example.org/pennypost", 5, &tlog_tiles::EMPTY_HASH, &k).expect("sign");
        let vkey = verifier_key(&k.name, &k.signing.verifying_key());
        let tampered = note.replacen("\n5\n", "\n6\n", 1);
        assert!(verify(tampered.as_bytes(), &vkey).is_err());
        let other = LedgerKey {
            name: k.name.clone(),
            signing: SigningKey::from_bytes(&[4u8; 32]),
        };
        let other_vkey = verifier_key(&other.name, &other.signing.verifying_key());
        assert!(verify(note.as_bytes(), &other_vkey).is_err());
    }
}
