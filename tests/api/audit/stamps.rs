//! A sold stamp, byte by byte, as the stamp format lays it out (77-byte payload at its offsets,
//! big-endian, canonical base64url, Ed25519 over `"pennypost/stamp/v1" || payload`), and the
//! ledger's `key` and `purchase` entries describing the same key, id and times: what an outsider
//! holding a stamp and the log can check without our code.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::*;
use crate::helpers::strings;

fn unix(rfc3339: &Value) -> i64 {
    OffsetDateTime::parse(rfc3339.as_str().expect("a time"), &Rfc3339)
        .expect("RFC 3339")
        .unix_timestamp()
}

async fn entries(server: &TestServer) -> Vec<Value> {
    let (status, page) = server
        .get_text("/v1/ledger/entries?start=0&limit=1000")
        .await;
    assert_eq!(status, 200, "{page}");
    page.lines()
        .map(|line| serde_json::from_str(line).expect("json"))
        .collect()
}

#[tokio::test]
async fn a_sold_stamp_is_the_documented_bytes_and_the_ledger_agrees() {
    let server = TestServer::start().await;
    let (account, api_key) = server.account().await;
    let (status, body) = server.credit(&account, 10, "stamp-bytes").await;
    assert_eq!(status, 200, "{body}");
    let (status, bought) = server.purchase(&api_key, 3, None).await;
    assert_eq!(status, 201, "{bought}");
    let stamps = strings(&bought["stamps"]);

    // The issuer key as `GET /v1/keys` publishes it, and its kid.
    let (status, keys) = server.get("/v1/keys").await;
    assert_eq!(status, 200, "{keys}");
    let key = keys["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["status"] == "active")
        .expect("an active key")
        .clone();
    assert_eq!(key["alg"], "Ed25519");
    let public: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key["public_key"].as_str().expect("public_key"))
        .expect("base64url")
        .try_into()
        .expect("32 bytes");
    let kid: [u8; 8] = Sha256::digest(public)[..8].try_into().expect("8 bytes");
    assert_eq!(key["kid"], hex::encode(kid));
    let issuer = VerifyingKey::from_bytes(&public).expect("a key");

    // The ledger: the key published active before the sale, the sale with its stamps.
    let log = entries(&server).await;
    let index = bought["ledger_index"].as_u64().expect("ledger_index");
    let sale = &log[usize::try_from(index).expect("small")];
    assert_eq!(sale["kind"], "purchase", "{sale}");
    assert_eq!(sale["account"], account.as_str());
    assert_eq!(sale["count"], 3);
    assert_eq!(sale["kid"], hex::encode(kid));
    let published = log[..usize::try_from(index).expect("small")]
        .iter()
        .any(|e| {
            e["kind"] == "key"
                && e["kid"] == hex::encode(kid)
                && e["public_key"] == key["public_key"]
                && e["status"] == "active"
        });
    assert!(published, "no earlier key entry publishes {key}");
    let sold = strings(&sale["stamp_ids"]);
    let (issued_at, expires_at) = (unix(&sale["issued_at"]), unix(&sale["expires_at"]));
    // The default lifetime, one year.
    assert_eq!(expires_at - issued_at, 31_536_000);

    let mut seen = Vec::new();
    for text in &stamps {
        let (payload_text, signature_text) = text
            .strip_prefix("pp1.")
            .and_then(|rest| rest.split_once('.'))
            .expect("pp1.<payload>.<signature>");
        let payload = URL_SAFE_NO_PAD.decode(payload_text).expect("base64url");
        let signature = URL_SAFE_NO_PAD.decode(signature_text).expect("base64url");
        // Canonical: no padding, and the one text of these bytes.
        assert_eq!(URL_SAFE_NO_PAD.encode(&payload), payload_text);
        assert_eq!(URL_SAFE_NO_PAD.encode(&signature), signature_text);
        assert_eq!((payload.len(), signature.len()), (77, 64), "{text}");

        assert_eq!(payload[0], 1, "version");
        assert_eq!(payload[1..9], kid, "kid");
        let id = uuid::Uuid::from_slice(&payload[9..25]).expect("16 bytes");
        assert_eq!(id.get_version_num(), 4, "a random uuid");
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        assert!(sold.contains(&id.to_string()), "{id} not in {sold:?}");
        seen.push(id);
        let be = |range: std::ops::Range<usize>| {
            i64::from_be_bytes(payload[range].try_into().expect("8 bytes"))
        };
        assert_eq!(be(25..33), issued_at, "issued_at");
        assert_eq!(be(33..41), expires_at, "expires_at");
        assert_eq!(payload[41..45], 1u32.to_be_bytes(), "value");
        assert_eq!(payload[45..77], [0u8; 32], "holder: unbound");

        let signature = Signature::from_slice(&signature).expect("64 bytes");
        let message = [b"pennypost/stamp/v1".as_slice(), &payload].concat();
        issuer
            .verify_strict(&message, &signature)
            .expect("signed over the context string and the payload");
        assert!(issuer.verify_strict(&payload, &signature).is_err());
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), sold.len(), "one stamp per id sold");
}
