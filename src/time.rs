//! Wall-clock time as whole Unix seconds, and its RFC 3339 text form.
//!
//! One type for every time the server records (stamp issue and expiry, ledger entry times,
//! post creation), so that the text a client sees and the integer in a stamp always agree.
//! The only function here that reads the clock is [`Timestamp::now`].

use ::time::format_description::well_known::Rfc3339;
use ::time::OffsetDateTime;

/// Whole seconds since the Unix epoch, UTC.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Timestamp {
        Timestamp(OffsetDateTime::now_utc().unix_timestamp())
    }

    pub fn from_unix(seconds: i64) -> Timestamp {
        Timestamp(seconds)
    }

    pub fn unix(self) -> i64 {
        self.0
    }

    /// Adds seconds, saturating instead of overflowing.
    pub fn plus_secs(self, seconds: u64) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(seconds).unwrap_or(i64::MAX)),
        )
    }

    /// `2026-11-26T21:45:46Z`. Times outside what RFC 3339 can write (years past 9999) are
    /// clamped to its last second, so the text form always exists.
    pub fn to_rfc3339(self) -> String {
        const LAST: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        const FIRST: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
        OffsetDateTime::from_unix_timestamp(self.0.clamp(FIRST, LAST))
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
            .unwrap_or_else(|| "9999-12-31T23:59:59Z".to_string())
    }

    /// Parses RFC 3339; fractional seconds are dropped.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .map(|t| Timestamp(t.unix_timestamp()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let t = Timestamp::from_unix(1_764_193_546);
        assert_eq!(t.to_rfc3339(), "2025-11-26T21:45:46Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
    }

    #[test]
    fn extremes_do_not_panic() {
        assert_eq!(
            Timestamp::from_unix(i64::MAX).to_rfc3339(),
            "9999-12-31T23:59:59Z"
        );
        assert!(Timestamp::from_unix(i64::MIN)
            .to_rfc3339()
            .starts_with("0001-"));
        assert_eq!(
            Timestamp::from_unix(i64::MAX).plus_secs(u64::MAX).unix(),
            i64::MAX
        );
    }
}
