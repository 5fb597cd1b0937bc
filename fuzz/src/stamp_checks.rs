//! `stamp_decode`: properties of `pennypost::stamp::decode` and `Decoded::verify` on arbitrary
//! input.
//!
//! 1. Text mode: the input, when it is UTF-8, is decoded as a stamp. Nothing panics; a decoded
//!    stamp re-encodes to exactly the input (one stamp has one text, so no second spelling can
//!    slip past a spent-stamp check keyed on the text); verify agrees with `decode_and_verify`
//!    and with the expiry rule; and a signature that verifies under the fixed key is the one
//!    the deterministic signer makes (no malleable second signature).
//! 2. Raw mode: the first 77 + 64 bytes are taken as payload and signature bytes, encoded the
//!    canonical way and decoded: decode accepts exactly version 1 (any value: the value is
//!    checked after the signature, so an altered one is `bad_signature`), and gives back the
//!    same bytes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{SigningKey, VerifyingKey};
use pennypost::api::ErrorCode;
use pennypost::stamp::{
    self, Decoded, Kid, StampError, PAYLOAD_BYTES, PREFIX, SIGNATURE_BYTES, SIGNING_CONTEXT,
    TEXT_BYTES_MAX, VALUE_V1, VERSION,
};

/// The key of the pinned test vector (`tests/data/stamp_vector.txt`), so seeds made from that
/// vector reach the signature check.
pub fn fixed_key() -> SigningKey {
    SigningKey::from_bytes(&[7u8; 32])
}

/// Knows only the fixed key, under its own kid.
fn strict_lookup(vk: VerifyingKey) -> impl Fn(&Kid) -> Option<VerifyingKey> {
    move |kid| (*kid == Kid::of(&vk)).then_some(vk)
}

/// Answers the fixed key for every kid, so the signature check runs on every decoded input.
fn any_lookup(vk: VerifyingKey) -> impl Fn(&Kid) -> Option<VerifyingKey> {
    move |_| Some(vk)
}

/// The canonical text of a decoded stamp, built independently of `stamp::sign`.
fn encode(decoded: &Decoded) -> String {
    let (message, signature) = decoded.signed_parts();
    assert_eq!(&message[..SIGNING_CONTEXT.len()], SIGNING_CONTEXT);
    let payload = &message[SIGNING_CONTEXT.len()..];
    assert_eq!(payload.len(), PAYLOAD_BYTES);
    // The parsed fields and the signed bytes are the same payload.
    assert_eq!(payload, decoded.payload.to_bytes().as_slice());
    format!(
        "{PREFIX}{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(signature.to_bytes())
    )
}

fn check_error(error: &StampError) {
    let code = ErrorCode::from(error).as_str();
    assert!(
        matches!(
            code,
            "invalid_stamp" | "unknown_key" | "bad_signature" | "stamp_expired"
        ),
        "unexpected code {code}"
    );
    let _ = error.to_string();
}

/// Every check `verify` makes, at the edges of expiry, against both lookups. Signature checks
/// are the expensive part, so each outcome is checked once where it can differ.
fn check_verify(text: &str, decoded: &Decoded) {
    let key = fixed_key();
    let vk = key.verifying_key();
    let expires_at = decoded.payload.expires_at;
    let signature_ok = decoded.verify_signature(&vk).is_ok();
    let known = decoded.payload.kid == Kid::of(&vk);

    // The fixed key for every kid: key check passes, then signature, value, then expiry.
    for now in [i64::MIN, expires_at.saturating_sub(1), expires_at] {
        let result = decoded.verify(any_lookup(vk), now);
        let expected = if !signature_ok {
            Err(StampError::BadSignature)
        } else if decoded.payload.value != VALUE_V1 {
            Err(StampError::Invalid("unsupported stamp value"))
        } else if now >= expires_at {
            Err(StampError::Expired)
        } else {
            Ok(())
        };
        assert_eq!(result, expected, "verify at {now}");
    }

    // The fixed key under its own kid only: an unknown kid is refused before anything else.
    let now = expires_at.saturating_sub(1);
    let result = decoded.verify(strict_lookup(vk), now);
    if known {
        assert_eq!(result, decoded.verify(any_lookup(vk), now));
    } else {
        assert_eq!(result, Err(StampError::UnknownKey(decoded.payload.kid)));
        assert_eq!(
            decoded.verify(strict_lookup(vk), i64::MAX),
            Err(StampError::UnknownKey(decoded.payload.kid))
        );
    }
    assert_eq!(
        stamp::decode_and_verify(text, strict_lookup(vk), now).map(|_| ()),
        result
    );
    if let Err(e) = &result {
        check_error(e);
    }

    if signature_ok {
        // Ed25519 signing is deterministic. A second signature that verify_strict accepts for
        // the same payload would be a second text for one stamp.
        assert_eq!(
            stamp::sign(&decoded.payload, &key),
            text,
            "a signature other than the signer's verifies"
        );
    }
}

/// Text mode.
pub fn check_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match stamp::decode(text) {
        Ok(decoded) => {
            assert!(text.len() <= TEXT_BYTES_MAX);
            assert_eq!(
                decoded.check_value().is_ok(),
                decoded.payload.value == VALUE_V1
            );
            assert_eq!(
                encode(&decoded),
                text,
                "decode accepted a non-canonical text"
            );
            check_verify(text, &decoded);
        }
        Err(e) => {
            check_error(&e);
            assert_eq!(
                ErrorCode::from(&e).as_str(),
                "invalid_stamp",
                "decode gave {e:?}"
            );
        }
    }
}

/// Raw mode.
pub fn check_raw(data: &[u8]) {
    if data.len() < PAYLOAD_BYTES + SIGNATURE_BYTES {
        return;
    }
    let payload = &data[..PAYLOAD_BYTES];
    let signature = &data[PAYLOAD_BYTES..PAYLOAD_BYTES + SIGNATURE_BYTES];
    let text = format!(
        "{PREFIX}{}.{}",
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode(signature)
    );
    assert!(text.len() <= TEXT_BYTES_MAX);
    let valid = payload[0] == VERSION;
    match stamp::decode(&text) {
        Ok(decoded) => {
            assert!(valid, "decode accepted version {}", payload[0]);
            assert_eq!(decoded.payload.to_bytes().as_slice(), payload);
            assert_eq!(decoded.signed_parts().1.to_bytes().as_slice(), signature);
            assert_eq!(encode(&decoded), text);
            check_verify(&text, &decoded);
        }
        Err(e) => {
            assert!(!valid, "decode refused a well-formed stamp: {e:?}");
            assert_eq!(ErrorCode::from(&e).as_str(), "invalid_stamp");
        }
    }
}

/// Both modes, as the fuzz target runs them.
pub fn check(data: &[u8]) {
    check_text(data);
    check_raw(data);
}
