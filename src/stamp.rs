//! Stamps: the stamp wire format, version 1 (the contract's docs/stamp-format.md).
//!
//! This module owns encoding, decoding, signing and verifying stamps. It is pure: no I/O, no
//! clock (callers pass `now`), no knowledge of whether a stamp was spent (that is the store's).
//!
//! A stamp is `"pp1." b64url(payload) "." b64url(signature)` where the payload is 77 bytes and
//! the signature is Ed25519 over `"pennypost/stamp/v1" || payload`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The text prefix of a version-1 stamp.
pub const PREFIX: &str = "pp1.";
/// Domain separation for stamp signatures (18 ASCII bytes, no terminator).
pub const SIGNING_CONTEXT: &[u8] = b"pennypost/stamp/v1";
/// Payload size in bytes.
pub const PAYLOAD_BYTES: usize = 77;
/// Signature size in bytes.
pub const SIGNATURE_BYTES: usize = 64;
/// Payload version this code writes and reads.
pub const VERSION: u8 = 1;
/// Postage units carried by a version-1 stamp.
pub const VALUE_V1: u32 = 1;
/// Longest text a stamp can be: prefix + 103 + "." + 86 base64 characters. Longer input is
/// rejected before any decoding work, so a hostile client cannot make us decode megabytes.
pub const TEXT_BYTES_MAX: usize = PREFIX.len() + 103 + 1 + 86;

/// Key id: the first 8 bytes of SHA-256 of the 32-byte public key.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Kid(pub [u8; 8]);

impl Kid {
    /// Derives the key id of a public key.
    pub fn of(key: &VerifyingKey) -> Kid {
        let digest = Sha256::digest(key.as_bytes());
        let mut kid = [0u8; 8];
        kid.copy_from_slice(&digest[..8]);
        Kid(kid)
    }

    /// Lowercase hex, as published in `/v1/keys` and the ledger.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Display for Kid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The signed content of a stamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    pub kid: Kid,
    pub stamp_id: Uuid,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; spendable while `now < expires_at`.
    pub expires_at: i64,
    pub value: u32,
    /// Ed25519 key the stamp is bound to, or all zeroes when unbound.
    pub holder: [u8; 32],
}

impl Payload {
    /// The 77-byte big-endian encoding.
    pub fn to_bytes(&self) -> [u8; PAYLOAD_BYTES] {
        let mut out = [0u8; PAYLOAD_BYTES];
        out[0] = VERSION;
        out[1..9].copy_from_slice(&self.kid.0);
        out[9..25].copy_from_slice(self.stamp_id.as_bytes());
        out[25..33].copy_from_slice(&self.issued_at.to_be_bytes());
        out[33..41].copy_from_slice(&self.expires_at.to_be_bytes());
        out[41..45].copy_from_slice(&self.value.to_be_bytes());
        out[45..77].copy_from_slice(&self.holder);
        out
    }

    fn from_bytes(bytes: &[u8; PAYLOAD_BYTES]) -> Result<Payload, StampError> {
        if bytes[0] != VERSION {
            return Err(StampError::Invalid("unsupported stamp version"));
        }
        let mut kid = [0u8; 8];
        kid.copy_from_slice(&bytes[1..9]);
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[9..25]);
        let mut issued = [0u8; 8];
        issued.copy_from_slice(&bytes[25..33]);
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&bytes[33..41]);
        let mut value = [0u8; 4];
        value.copy_from_slice(&bytes[41..45]);
        let mut holder = [0u8; 32];
        holder.copy_from_slice(&bytes[45..77]);
        Ok(Payload {
            kid: Kid(kid),
            stamp_id: Uuid::from_bytes(id),
            issued_at: i64::from_be_bytes(issued),
            expires_at: i64::from_be_bytes(expires),
            value: u32::from_be_bytes(value),
            holder,
        })
    }

    /// The message the issuer signs.
    fn signed_message(
        payload: &[u8; PAYLOAD_BYTES],
    ) -> [u8; SIGNING_CONTEXT.len() + PAYLOAD_BYTES] {
        let mut msg = [0u8; SIGNING_CONTEXT.len() + PAYLOAD_BYTES];
        msg[..SIGNING_CONTEXT.len()].copy_from_slice(SIGNING_CONTEXT);
        msg[SIGNING_CONTEXT.len()..].copy_from_slice(payload);
        msg
    }
}

/// A decoded stamp whose signature has not been checked yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub payload: Payload,
    payload_bytes: [u8; PAYLOAD_BYTES],
    signature: Signature,
}

/// Why a stamp was refused. Each variant maps to one stable API code (`api::ErrorCode`'s
/// `From<&StampError>`: this module knows nothing of the HTTP API).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StampError {
    /// Occurs when the text is not a well-formed version-1 stamp (prefix, base64url, lengths,
    /// version). Code `invalid_stamp`.
    #[error("invalid stamp: {0}")]
    Invalid(&'static str),
    /// Occurs when the stamp names a key id the server never published. Code `unknown_key`.
    #[error("stamp signed under unknown key {0}")]
    UnknownKey(Kid),
    /// Occurs when the signature does not verify under the named key. Code `bad_signature`.
    #[error("stamp signature does not verify")]
    BadSignature,
    /// Occurs when `now >= expires_at`. Code `stamp_expired`.
    #[error("stamp expired")]
    Expired,
}

/// Decodes base64url without padding, refusing non-canonical input. The `base64` crate's
/// `URL_SAFE_NO_PAD` engine rejects padding, characters outside the alphabet and non-zero
/// trailing bits, which is exactly what docs/stamp-format.md asks for.
fn decode_exact<const N: usize>(text: &str) -> Result<[u8; N], StampError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| StampError::Invalid("not canonical base64url"))?;
    bytes
        .try_into()
        .map_err(|_| StampError::Invalid("wrong length"))
}

/// Parses the text form (check 1 of docs/stamp-format.md). Does not check the signature.
pub fn decode(text: &str) -> Result<Decoded, StampError> {
    if text.len() > TEXT_BYTES_MAX {
        return Err(StampError::Invalid("too long"));
    }
    let rest = text
        .strip_prefix(PREFIX)
        .ok_or(StampError::Invalid("missing pp1. prefix"))?;
    let (payload_text, signature_text) = rest
        .split_once('.')
        .ok_or(StampError::Invalid("missing signature part"))?;
    let payload_bytes: [u8; PAYLOAD_BYTES] = decode_exact(payload_text)?;
    let signature_bytes: [u8; SIGNATURE_BYTES] = decode_exact(signature_text)?;
    let payload = Payload::from_bytes(&payload_bytes)?;
    // `value` is not among the fields of check 1: a stamp whose value byte was altered is a
    // forgery, reported as such by the signature check (see `Decoded::check_value`).
    Ok(Decoded {
        payload,
        payload_bytes,
        signature: Signature::from_bytes(&signature_bytes),
    })
}

impl Decoded {
    /// Checks the signature (check 3) with `verify_strict`, which refuses non-canonical
    /// signatures and small-order keys.
    pub fn verify_signature(&self, key: &VerifyingKey) -> Result<(), StampError> {
        let msg = Payload::signed_message(&self.payload_bytes);
        key.verify_strict(&msg, &self.signature)
            .map_err(|_| StampError::BadSignature)
    }

    /// The issuer key this stamp names (check 2).
    pub fn issuer_key(
        &self,
        lookup: impl Fn(&Kid) -> Option<VerifyingKey>,
    ) -> Result<VerifyingKey, StampError> {
        lookup(&self.payload.kid).ok_or(StampError::UnknownKey(self.payload.kid))
    }

    /// After the signature: this server signs only stamps of value 1, so another value under
    /// a good signature is a stamp it cannot accept (`invalid_stamp`). Never before the
    /// signature: an altered value must be `bad_signature`, as docs/stamp-format.md orders checks.
    pub fn check_value(&self) -> Result<(), StampError> {
        if self.payload.value != VALUE_V1 {
            return Err(StampError::Invalid("unsupported stamp value"));
        }
        Ok(())
    }

    /// Check 4: spendable while `now < expires_at`.
    pub fn check_expiry(&self, now_unix: i64) -> Result<(), StampError> {
        if now_unix >= self.payload.expires_at {
            return Err(StampError::Expired);
        }
        Ok(())
    }

    /// Checks 2 to 4 of docs/stamp-format.md in order: key known, signature, not expired.
    pub fn verify(
        &self,
        lookup: impl Fn(&Kid) -> Option<VerifyingKey>,
        now_unix: i64,
    ) -> Result<(), StampError> {
        let key = self.issuer_key(lookup)?;
        self.verify_signature(&key)?;
        self.check_value()?;
        self.check_expiry(now_unix)
    }

    /// The message and signature, for batch verification.
    pub fn signed_parts(&self) -> (Vec<u8>, Signature) {
        (
            Payload::signed_message(&self.payload_bytes).to_vec(),
            self.signature,
        )
    }
}

/// Signs a payload and returns the stamp's text form.
pub fn sign(payload: &Payload, key: &SigningKey) -> String {
    let bytes = payload.to_bytes();
    let signature = key.sign(&Payload::signed_message(&bytes));
    let mut text = String::with_capacity(TEXT_BYTES_MAX);
    text.push_str(PREFIX);
    URL_SAFE_NO_PAD.encode_string(bytes, &mut text);
    text.push('.');
    URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut text);
    text
}

/// Decodes and fully verifies a stamp (checks 1 to 4).
pub fn decode_and_verify(
    text: &str,
    lookup: impl Fn(&Kid) -> Option<VerifyingKey>,
    now_unix: i64,
) -> Result<Decoded, StampError> {
    let decoded = decode(text)?;
    decoded.verify(lookup, now_unix)?;
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier as _;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn payload(key: &SigningKey) -> Payload {
        Payload {
            kid: Kid::of(&key.verifying_key()),
            stamp_id: Uuid::from_bytes([0x11; 16]),
            issued_at: 1_700_000_000,
            expires_at: 1_800_000_000,
            value: 1,
            holder: [0; 32],
        }
    }

    fn lookup(key: &SigningKey) -> impl Fn(&Kid) -> Option<VerifyingKey> {
        let vk = key.verifying_key();
        move |kid| (*kid == Kid::of(&vk)).then_some(vk)
    }

    fn good() -> String {
        sign(&payload(&key()), &key())
    }

    fn parts(text: &str) -> (Vec<u8>, Vec<u8>) {
        let rest = text.strip_prefix(PREFIX).expect("prefix");
        let (p, s) = rest.split_once('.').expect("dot");
        (
            URL_SAFE_NO_PAD.decode(p).expect("payload"),
            URL_SAFE_NO_PAD.decode(s).expect("signature"),
        )
    }

    fn join(payload: &[u8], signature: &[u8]) -> String {
        format!(
            "{PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        )
    }

    #[test]
    fn round_trip_verifies() {
        let text = good();
        assert!(text.len() <= TEXT_BYTES_MAX);
        let decoded = decode_and_verify(&text, lookup(&key()), 1_700_000_001).expect("valid");
        assert_eq!(decoded.payload, payload(&key()));
    }

    /// A pinned vector derived independently of this code: `tests/data/make_stamp_vector.py`
    /// builds the payload from docs/stamp-format.md and signs it with Python's `cryptography`
    /// (OpenSSL) Ed25519. Ed25519 signatures are deterministic, so a change in byte layout,
    /// context string or encoding breaks this test.
    #[test]
    fn pinned_vector() {
        let expected = include_str!("../tests/data/stamp_vector.txt").trim();
        assert_eq!(good(), expected);
        let (payload, _) = parts(expected);
        assert_eq!(
            hex::encode(&payload[..9]),
            format!("01{}", Kid::of(&key().verifying_key()))
        );
    }

    #[test]
    fn kid_is_sha256_prefix() {
        let vk = key().verifying_key();
        let digest = Sha256::digest(vk.as_bytes());
        assert_eq!(Kid::of(&vk).to_hex(), hex::encode(&digest[..8]));
    }

    fn code_of(text: &str, now: i64) -> &'static str {
        match decode_and_verify(text, lookup(&key()), now) {
            Ok(_) => "ok",
            // The API codes of these refusals (`api::ErrorCode::from`).
            Err(StampError::Invalid(_)) => "invalid_stamp",
            Err(StampError::UnknownKey(_)) => "unknown_key",
            Err(StampError::BadSignature) => "bad_signature",
            Err(StampError::Expired) => "stamp_expired",
        }
    }

    #[test]
    fn rejects_bad_prefix() {
        let text = good();
        assert_eq!(
            code_of(&text.replacen("pp1.", "pp2.", 1), 0),
            "invalid_stamp"
        );
        assert_eq!(code_of(&text[4..], 0), "invalid_stamp");
        assert_eq!(code_of("", 0), "invalid_stamp");
    }

    #[test]
    fn rejects_padding_and_alphabet() {
        let (p, s) = parts(&good());
        let padded = format!(
            "{PREFIX}{}=.{}",
            URL_SAFE_NO_PAD.encode(&p),
            URL_SAFE_NO_PAD.encode(&s)
        );
        assert_eq!(code_of(&padded, 0), "invalid_stamp");
        let std_alphabet = good().replace('-', "+").replace('_', "/");
        if std_alphabet != good() {
            assert_eq!(code_of(&std_alphabet, 0), "invalid_stamp");
        }
        assert_eq!(code_of(&format!("{}!", good()), 0), "invalid_stamp");
        assert_eq!(code_of(&good().replace('.', ""), 0), "invalid_stamp");
    }

    #[test]
    fn rejects_non_canonical_trailing_bits() {
        // 77 bytes encode to 103 characters whose last one carries 4 unused bits; 64 bytes to
        // 86 characters with 4 unused bits. Setting an unused bit keeps the bytes but changes
        // the text: a second encoding of one stamp, which must be refused.
        let text = good();
        let (payload_text, signature_text) = text[4..].split_once('.').expect("dot");
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bump = |s: &str| {
            let last = s.as_bytes()[s.len() - 1];
            let pos = alphabet
                .iter()
                .position(|c| *c == last)
                .expect("in alphabet");
            let mut out = s[..s.len() - 1].to_string();
            out.push(alphabet[pos ^ 1] as char);
            out
        };
        assert_eq!(
            code_of(&format!("pp1.{}.{}", bump(payload_text), signature_text), 0),
            "invalid_stamp"
        );
        assert_eq!(
            code_of(&format!("pp1.{}.{}", payload_text, bump(signature_text)), 0),
            "invalid_stamp"
        );
    }

    #[test]
    fn rejects_wrong_lengths() {
        let (p, s) = parts(&good());
        assert_eq!(code_of(&join(&p[..76], &s), 0), "invalid_stamp");
        assert_eq!(
            code_of(&join(&[p.clone(), vec![0]].concat(), &s), 0),
            "invalid_stamp"
        );
        assert_eq!(code_of(&join(&p, &s[..63]), 0), "invalid_stamp");
        assert_eq!(code_of(&"A".repeat(10_000), 0), "invalid_stamp");
    }

    #[test]
    fn rejects_wrong_version_and_value() {
        let (mut p, s) = parts(&good());
        p[0] = 2;
        assert_eq!(code_of(&join(&p, &s), 0), "invalid_stamp");
        // A well-formed stamp whose value byte was altered is a forgery: bad_signature.
        let (mut p, s) = parts(&good());
        p[44] = 2;
        assert_eq!(code_of(&join(&p, &s), 0), "bad_signature");
        // Value 2 under a good signature (not something this server signs): invalid_stamp.
        let key = key();
        let mut two = payload(&key);
        two.value = 2;
        assert_eq!(code_of(&sign(&two, &key), 0), "invalid_stamp");
    }

    #[test]
    fn rejects_unknown_kid() {
        let other = SigningKey::from_bytes(&[9u8; 32]);
        let text = sign(&payload(&other), &other);
        assert_eq!(code_of(&text, 0), "unknown_key");
    }

    #[test]
    fn rejects_every_flipped_bit() {
        let (p, s) = parts(&good());
        // Every bit after the version and kid (which give other codes) and every signature bit.
        for byte in 9..PAYLOAD_BYTES {
            for bit in 0..8 {
                let mut q = p.clone();
                q[byte] ^= 1 << bit;
                let code = code_of(&join(&q, &s), 0);
                assert!(
                    code == "bad_signature"
                        || ((41..45).contains(&byte) && code == "invalid_stamp"),
                    "payload byte {byte} bit {bit}: {code}"
                );
            }
        }
        for byte in 0..SIGNATURE_BYTES {
            for bit in 0..8 {
                let mut t = s.clone();
                t[byte] ^= 1 << bit;
                assert_eq!(
                    code_of(&join(&p, &t), 0),
                    "bad_signature",
                    "sig byte {byte} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn rejects_signature_from_other_context() {
        let k = key();
        let bytes = payload(&k).to_bytes();
        let sig = k.sign(&bytes); // no context string
        assert_eq!(code_of(&join(&bytes, &sig.to_bytes()), 0), "bad_signature");
    }

    /// A small-order issuer key (here the identity point) lets anyone forge: R = identity and
    /// s = 0 satisfy the plain Ed25519 equation for every message. STAMP-FORMAT.md: verification
    /// refuses small-order keys, so such a stamp is `bad_signature` even under a published kid.
    #[test]
    fn rejects_a_signature_under_a_small_order_key() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).expect("the identity point decodes");
        let payload = Payload {
            kid: Kid::of(&weak),
            ..payload(&key())
        };
        let mut forged = [0u8; SIGNATURE_BYTES];
        forged[..32].copy_from_slice(&identity);
        let text = join(&payload.to_bytes(), &forged);
        let decoded = decode(&text).expect("well formed");
        let (message, signature) = decoded.signed_parts();
        // The forgery is real: the lenient check accepts it.
        assert!(weak.verify(&message, &signature).is_ok());
        let published = move |kid: &Kid| (*kid == Kid::of(&weak)).then_some(weak);
        assert_eq!(
            decode_and_verify(&text, published, 0),
            Err(StampError::BadSignature)
        );
    }

    /// A signature whose scalar s is not reduced (s + L) verifies under neither check: one
    /// stamp has one signature (STAMP-FORMAT.md: non-canonical signatures are refused).
    #[test]
    fn rejects_a_non_canonical_signature_scalar() {
        // L, the order of the base point, little-endian.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let (p, s) = parts(&good());
        let mut bigger = s.clone();
        let mut carry = 0u16;
        for (i, l) in L.iter().enumerate() {
            let sum = u16::from(s[32 + i]) + u16::from(*l) + carry;
            bigger[32 + i] = (sum & 0xff) as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "s + L fits 256 bits");
        assert_eq!(code_of(&join(&p, &s), 0), "ok");
        assert_eq!(code_of(&join(&p, &bigger), 0), "bad_signature");
    }

    #[test]
    fn expiry_boundary() {
        let text = good();
        assert_eq!(code_of(&text, 1_799_999_999), "ok");
        assert_eq!(code_of(&text, 1_800_000_000), "stamp_expired");
        assert_eq!(code_of(&text, i64::MAX), "stamp_expired");
    }

    #[test]
    fn checks_run_in_order() {
        // An unknown key with a bad signature and past expiry reports the first failing check.
        let other = SigningKey::from_bytes(&[9u8; 32]);
        let (p, mut s) = parts(&sign(&payload(&other), &other));
        s[0] ^= 1;
        assert_eq!(code_of(&join(&p, &s), i64::MAX), "unknown_key");
        let (p, mut s) = parts(&good());
        s[0] ^= 1;
        assert_eq!(code_of(&join(&p, &s), i64::MAX), "bad_signature");
    }
}
