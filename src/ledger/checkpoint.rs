//! Signed checkpoints: a C2SP tlog-checkpoint body in a C2SP signed note, Ed25519-signed.
//!
//! Pure: builds and checks note text; the caller decides when a size is durable enough to sign.
//! The formats come from the `tlog_tiles` (checkpoint body) and `signed_note` (note, key id,
//! verifier key) crates, so the notes are the ones existing transparency-log tools read.

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

use crate::keys::LedgerKey;

/// Signed-note algorithm byte for Ed25519 (c2sp.org/signed-note).
const ALG_ED25519: u8 = 0x01;

/// Why a checkpoint could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Occurs when the origin or key name is not valid for a checkpoint or signed note.
    #[error("checkpoint format: {0}")]
    Format(String),
    /// Occurs when the note does not carry a valid signature of the pinned key.
    #[error("checkpoint signature: {0}")]
    Signature(String),
}

/// The verifier key, `<name>+<hex key id>+<base64(0x01 || public key)>`.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    signed_note::new_ed25519_verifier_key(name, key)
}

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

/// A checkpoint whose signature verified.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Checks a signed checkpoint against a pinned verifier key and returns its body.
pub fn verify(note_text: &[u8], vkey: &str) -> Result<Verified, CheckpointError> {
    let verifier =
        StandardVerifier::new(vkey).map_err(|e| CheckpointError::Signature(e.to_string()))?;
    let note =
        Note::from_bytes(note_text).map_err(|e| CheckpointError::Signature(e.to_string()))?;
    note.verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| CheckpointError::Signature(e.to_string()))?;
    let body = Checkpoint::from_bytes(note.text())
        .map_err(|_| CheckpointError::Format("note text is not a checkpoint".into()))?;
    Ok(Verified {
        origin: body.origin().to_string(),
        size: body.size(),
        root: *body.hash(),
    })
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
