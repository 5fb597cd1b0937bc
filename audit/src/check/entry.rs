//! Ledger entries as the checker reads them: one strict struct per kind (every field the
//! server writes, no other), and the parsers of their text fields (uuid, hex, RFC 3339 time).
//!
//! It must not decide what an entry means: that is the checker's (`super`). The parsers of ids
//! accept only the one form the server writes (lowercase hex and uuids), so an entry with
//! another spelling of the same id is malformed rather than silently equal; a time is any
//! RFC 3339 time (the ledger's format), read as the instant it names.

use ::time::format_description::well_known::Rfc3339;
use ::time::OffsetDateTime;
use serde::de::IgnoredAny;
use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum KeyStatus {
    Active,
    Retired,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SpendAction {
    Post,
    Vote,
    Redeem,
    /// Stamps taken back after a `debit` left their buyer's balance below zero (invariant 12).
    Revoke,
}

/// Where a credit's or a debit's money came from or went to. Credits written before sources
/// existed have none: they are the operator's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Source {
    Operator,
    Stripe,
    Btcpay,
    Test,
}

impl Source {
    /// Every source, in the order reports list them.
    pub(super) const ALL: [Source; 4] = [
        Source::Operator,
        Source::Stripe,
        Source::Btcpay,
        Source::Test,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Source::Operator => "operator",
            Source::Stripe => "stripe",
            Source::Btcpay => "btcpay",
            Source::Test => "test",
        }
    }

    /// Its place in [`Source::ALL`].
    pub(super) fn slot(self) -> usize {
        match self {
            Source::Operator => 0,
            Source::Stripe => 1,
            Source::Btcpay => 2,
            Source::Test => 3,
        }
    }
}

/// Why money went back out of an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum DebitReason {
    Refund,
    Dispute,
    Correction,
}

/// The fields every entry has; the rest is ignored here and checked per kind.
#[derive(Deserialize)]
pub(super) struct Common {
    pub(super) v: u64,
    pub(super) index: u64,
    pub(super) time: String,
    pub(super) kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KeyEntry {
    #[serde(rename = "v")]
    _v: IgnoredAny,
    #[serde(rename = "index")]
    _index: IgnoredAny,
    #[serde(rename = "time")]
    _time: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) kid: String,
    pub(super) public_key: String,
    pub(super) status: KeyStatus,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreditEntry {
    #[serde(rename = "v")]
    _v: IgnoredAny,
    #[serde(rename = "index")]
    _index: IgnoredAny,
    #[serde(rename = "time")]
    _time: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) account: String,
    pub(super) amount: u64,
    pub(super) currency: String,
    pub(super) reference_sha256: String,
    /// Absent on credits written before payment providers (the operator's); `null` is
    /// malformed.
    #[serde(default, deserialize_with = "present")]
    pub(super) source: Option<Source>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DebitEntry {
    #[serde(rename = "v")]
    _v: IgnoredAny,
    #[serde(rename = "index")]
    _index: IgnoredAny,
    #[serde(rename = "time")]
    _time: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) account: String,
    pub(super) amount: u64,
    pub(super) currency: String,
    pub(super) reference_sha256: String,
    /// Checked to be one of the sources; reports total credits by source, not debits.
    #[serde(rename = "source")]
    _source: Source,
    #[serde(rename = "reason")]
    _reason: DebitReason,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PurchaseEntry {
    #[serde(rename = "v")]
    _v: IgnoredAny,
    #[serde(rename = "index")]
    _index: IgnoredAny,
    #[serde(rename = "time")]
    _time: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) account: String,
    pub(super) purchase_id: String,
    pub(super) count: u64,
    pub(super) unit_price: u64,
    pub(super) total: u64,
    pub(super) kid: String,
    pub(super) issued_at: String,
    pub(super) expires_at: String,
    pub(super) stamp_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SpendEntry {
    #[serde(rename = "v")]
    _v: IgnoredAny,
    #[serde(rename = "index")]
    _index: IgnoredAny,
    #[serde(rename = "time")]
    _time: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) stamp_ids: Vec<String>,
    pub(super) action: SpendAction,
    pub(super) target: String,
    /// Only on votes: absent on logs written before the economy, `null` is malformed.
    #[serde(default, deserialize_with = "present")]
    pub(super) direction: Option<VoteDirection>,
    /// Only on revokes: the unit prices of the revoked stamps, added back to the balance.
    #[serde(default, deserialize_with = "present")]
    pub(super) amount: Option<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum VoteDirection {
    Up,
    Down,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum VotePricing {
    Quadratic,
    Flat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyEntry {
    #[serde(rename = "v")]
    _v: IgnoredAny,
    #[serde(rename = "index")]
    _index: IgnoredAny,
    #[serde(rename = "time")]
    _time: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) currency: String,
    /// Informative: a purchase's own `unit_price` is what its stamps cost.
    #[serde(rename = "stamp_price")]
    _stamp_price: u64,
    pub(super) post_cost: u64,
    pub(super) vote_cost: u64,
    pub(super) repeat_window_secs: u64,
    pub(super) repeat_factor: u64,
    pub(super) vote_pricing: VotePricing,
    pub(super) refund_voters: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RefundEntry {
    #[serde(rename = "v")]
    _v: IgnoredAny,
    #[serde(rename = "index")]
    _index: IgnoredAny,
    #[serde(rename = "time")]
    _time: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    pub(super) account: String,
    pub(super) post_id: String,
    pub(super) amount: u64,
    pub(super) currency: String,
}

/// An optional field that, when present, must hold a value: `null` is refused rather than
/// read as absent.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// RFC 3339, as Unix nanoseconds. The ledger asks for RFC 3339, not for one offset: the server
/// writes UTC (`Z`), and a time with another offset is the instant it names.
pub(super) fn parse_time(text: &str) -> Option<i128> {
    let time = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    Some(time.unix_timestamp_nanos())
}

/// Exactly `2 * N` lowercase hex digits.
pub(super) fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// A uuid in its lowercase hyphenated form (the only one the server writes).
pub(super) fn parse_uuid(text: &str) -> Option<u128> {
    if text.len() != 36 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    uuid::Uuid::try_parse(text).ok().map(|u| u.as_u128())
}

pub(super) fn parse_uuids(texts: &[String]) -> Option<Vec<u128>> {
    texts.iter().map(|t| parse_uuid(t)).collect()
}

pub(super) fn uuid_text(id: u128) -> String {
    uuid::Uuid::from_u128(id).hyphenated().to_string()
}
