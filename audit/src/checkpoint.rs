//! Checking signed checkpoints: a C2SP tlog-checkpoint body in a C2SP signed note, verified
//! under a pinned Ed25519 verifier key.
//!
//! Pure: parses and checks note text. It must not sign: signing needs the server's ledger key,
//! so it stays in the server (`pennypost::ledger::checkpoint::sign`), which reuses
//! [`CheckpointError`] and [`ALG_ED25519`] from here. The formats come from the `tlog_tiles`
//! (checkpoint body) and `signed_note` (note, key id, verifier key) crates, so the notes are
//! the ones existing transparency-log tools read.

use ed25519_dalek::VerifyingKey;
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

/// Signed-note algorithm byte for Ed25519 (c2sp.org/signed-note).
pub const ALG_ED25519: u8 = 0x01;

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
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use ed25519_dalek::SigningKey;
    use signed_note::StandardSigner;

    const NAME: &str = "example.org/pennypost";

    /// A note signed by `signed_note`'s own signer, not the server's, so these tests do not
    /// depend on the code that writes checkpoints.
    fn signed(seed: u8, size: u64, root: Hash) -> (String, String) {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let public = [&[ALG_ED25519][..], key.verifying_key().as_bytes()].concat();
        let secret = [&[ALG_ED25519][..], key.as_bytes()].concat();
        let skey = format!(
            "PRIVATE+KEY+{NAME}+{:08x}+{}",
            signed_note::key_id(NAME, &public),
            STANDARD.encode(secret)
        );
        let signer = StandardSigner::new(&skey).expect("signer");
        let body = Checkpoint::new(NAME, size, root, "").expect("checkpoint");
        let mut note = Note::new(&body.to_bytes(), &[]).expect("note");
        note.add_sigs(&[&signer]).expect("sign");
        let text = String::from_utf8(note.to_bytes()).expect("utf8");
        (text, verifier_key(NAME, &key.verifying_key()))
    }

    #[test]
    fn verifies_a_signed_checkpoint() {
        let root = tlog_tiles::record_hash(b"x");
        let (note, vkey) = signed(3, 1, root);
        assert!(vkey.starts_with("example.org/pennypost+"), "{vkey}");
        let verified = verify(note.as_bytes(), &vkey).expect("verify");
        assert_eq!(
            verified,
            Verified {
                origin: NAME.into(),
                size: 1,
                root
            }
        );
    }

    /// c2sp.org/signed-note: a verifier ignores signatures of keys it does not know, so a note
    /// cosigned by another key (a witness), before or after the log's own line, still
    /// verifies; one signed by the other key alone does not.
    #[test]
    fn ignores_signatures_of_other_keys() {
        let root = tlog_tiles::record_hash(b"x");
        let (note, vkey) = signed(3, 1, root);
        let witness = "witness.example/w";
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let public = [&[ALG_ED25519][..], key.verifying_key().as_bytes()].concat();
        let secret = [&[ALG_ED25519][..], key.as_bytes()].concat();
        let skey = format!(
            "PRIVATE+KEY+{witness}+{:08x}+{}",
            signed_note::key_id(witness, &public),
            STANDARD.encode(secret)
        );
        let signer = StandardSigner::new(&skey).expect("signer");
        let body = Checkpoint::new(NAME, 1, root, "").expect("checkpoint");
        let mut alone = Note::new(&body.to_bytes(), &[]).expect("note");
        alone.add_sigs(&[&signer]).expect("sign");
        let alone = String::from_utf8(alone.to_bytes()).expect("utf8");
        let witness_line = alone.split("\n\n").nth(1).expect("a signature line");
        assert!(verify(alone.as_bytes(), &vkey).is_err());

        let after = format!("{note}{witness_line}");
        let (text, own_line) = note.split_once("\n\n").expect("text and signature");
        let before = format!("{text}\n\n{witness_line}{own_line}");
        for cosigned in [after, before] {
            assert_eq!(cosigned.matches('\u{2014}').count(), 2, "{cosigned}");
            let verified = verify(cosigned.as_bytes(), &vkey).expect("verify");
            assert_eq!((verified.size, verified.root), (1, root));
        }
    }

    #[test]
    fn refuses_a_tampered_note_or_another_key() {
        let (note, vkey) = signed(3, 5, tlog_tiles::EMPTY_HASH);
        let tampered = note.replacen("\n5\n", "\n6\n", 1);
        assert!(matches!(
            verify(tampered.as_bytes(), &vkey),
            Err(CheckpointError::Signature(_))
        ));
        let (_, other_vkey) = signed(4, 5, tlog_tiles::EMPTY_HASH);
        assert!(verify(note.as_bytes(), &other_vkey).is_err());
        assert!(verify(b"not a note", &vkey).is_err());
        assert!(verify(note.as_bytes(), "not a key").is_err());
    }
}
