//! The server's answers the auditor reads, as types: `GET /v1/ledger/key`, the consistency
//! proof, a page of `GET /v1/ledger/entries` and the totals of `GET /v1/audit`
//! (`docs/api.md`). The checkpoint is a signed note, read by [`crate::checkpoint`].
//!
//! These are the auditor's own reading of the contract, not the server's types: the auditor
//! must not depend on the server crate (the server depends on it), and it reads only the fields
//! it uses, ignoring the others, so a server that adds a field is still audited. A field it
//! uses that is missing or of another type makes the run unfinished (exit 2), never a guess.
//!
//! Must not: judge what it reads (that is [`crate::check`] and [`crate::auditor`]).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Deserialize;
use tlog_tiles::Hash;

/// `GET /v1/ledger/key`: the key that signs checkpoints, as the server publishes it (the
/// auditor pins it on first use and never takes it from the server again).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LedgerKey {
    /// The C2SP signed-note verifier key, `name+id+base64`.
    pub vkey: String,
}

/// `GET /v1/ledger/proof/consistency`: the proof's hashes in standard padded base64.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Proof {
    pub hashes: Vec<String>,
}

impl Proof {
    /// The hashes, or `None` when one is not the standard base64 of 32 bytes.
    pub fn decode(&self) -> Option<Vec<Hash>> {
        self.hashes
            .iter()
            .map(|text| {
                let bytes = STANDARD.decode(text).ok()?;
                Some(Hash(bytes.try_into().ok()?))
            })
            .collect()
    }
}

/// The totals of the server's own check, `GET /v1/audit`, that the auditor compares with its
/// own (invariant 7). Its violations are not read: the auditor finds its own. Only the size is
/// needed to read it: the totals are compared only at the auditor's size, and a total missing
/// there is a mismatch, not a reason to stop (except those later versions added, below).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct ServerTotals {
    pub ledger_size: u64,
    #[serde(default)]
    pub stamps_issued: Option<u64>,
    #[serde(default)]
    pub stamps_spent: Option<u64>,
    #[serde(default)]
    pub credits_total: Option<u64>,
    #[serde(default)]
    pub purchases_total: Option<u64>,
    /// Absent from servers older than the economy, which are not faulted for it.
    #[serde(default)]
    pub refunds_total: Option<u64>,
    /// Absent from servers older than payments, which are not faulted for it.
    #[serde(default)]
    pub debits_total: Option<u64>,
    /// Absent from servers older than payments, which are not faulted for it.
    #[serde(default)]
    pub revoked_total: Option<u64>,
    /// Credits by source; absent from servers older than payments, which are not faulted for it.
    #[serde(default)]
    pub credits_by_source: Option<BTreeMap<String, u64>>,
}

/// A page of `GET /v1/ledger/entries`: newline-delimited entries, each kept as the exact
/// bytes served (the leaf hash is of those bytes, never of a re-serialization).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntriesPage {
    /// The index of the page's first entry, as asked.
    pub start: u64,
    body: bytes::Bytes,
}

impl EntriesPage {
    pub fn new(start: u64, body: bytes::Bytes) -> EntriesPage {
        EntriesPage { start, body }
    }

    /// The entries, in order, without their newlines (empty lines are not entries).
    pub fn entries(&self) -> impl Iterator<Item = &[u8]> {
        self.body
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
    }

    /// How many entries the page holds.
    pub fn len(&self) -> u64 {
        self.entries().count() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.entries().next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_read_the_fields_used_and_ignore_the_others() {
        let key: LedgerKey = serde_json::from_str(
            r#"{"name":"n","origin":"o","public_key":"k","vkey":"n+01020304+AQ"}"#,
        )
        .expect("a key answer");
        assert_eq!(key.vkey, "n+01020304+AQ");
        let old: ServerTotals = serde_json::from_str(
            r#"{"ok":true,"ledger_size":3,"stamps_issued":2,"stamps_spent":1,
                "credits_total":5,"purchases_total":4,"violations":[]}"#,
        )
        .expect("a report of a server older than the economy");
        assert_eq!(old.refunds_total, None);
        assert_eq!(old.stamps_issued, Some(2));
        let bare: ServerTotals = serde_json::from_str(r#"{"ledger_size":0}"#).expect("a size");
        assert_eq!(bare.credits_total, None);
        assert!(serde_json::from_str::<ServerTotals>(r#"{"ledger_size":"3"}"#).is_err());
        assert!(serde_json::from_str::<ServerTotals>(r#"{"ok":true}"#).is_err());
    }

    #[test]
    fn a_proof_decodes_only_whole_hashes() {
        let good = Proof {
            hashes: vec![STANDARD.encode([7u8; 32])],
        };
        assert_eq!(good.decode(), Some(vec![Hash([7u8; 32])]));
        for bad in ["not base64!", "AAAA"] {
            let proof = Proof {
                hashes: vec![bad.to_string()],
            };
            assert_eq!(proof.decode(), None, "{bad}");
        }
    }

    #[test]
    fn a_page_keeps_each_entry_as_served() {
        let page = EntriesPage::new(4, bytes::Bytes::from_static(b"{\"a\": 1}\n{\"b\":2}\n"));
        assert_eq!(page.len(), 2);
        assert!(!page.is_empty());
        let entries: Vec<&[u8]> = page.entries().collect();
        assert_eq!(entries, vec![&b"{\"a\": 1}"[..], &b"{\"b\":2}"[..]]);
        assert!(EntriesPage::new(0, bytes::Bytes::from_static(b"\n")).is_empty());
    }
}
