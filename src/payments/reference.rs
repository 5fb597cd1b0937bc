//! The ledger references of the providers' money, and the ids they are made of.
//!
//! A credit or debit from a provider is recorded under one of these references, and each
//! reference appears once among credits and debits together: that uniqueness, decided by the
//! store, is what makes a payment credited once however many webhooks, polls and sweeps race.
//! References beginning with a provider's prefix are the providers' alone: an operator's
//! credit that names one is refused ([`is_provider_reference`]). Pure.

/// The prefixes of the providers' references.
pub const PROVIDER_PREFIXES: &[&str] = &["stripe:", "btcpay:", "test:"];

/// Longest id taken from a provider (a session, invoice, charge or dispute id).
pub const ID_CHARS_MAX: usize = 255;

/// Whether `id`, taken from a provider's answer or event, is an id we may put in a URL path
/// and a reference: 1 to [`ID_CHARS_MAX`] ASCII letters, digits, `_` or `-`. Stripe's ids
/// (`cs_test_…`, `ch_…`, `dp_…`) and BTCPay's invoice ids are; a path (`../x`), a query or a
/// colon is not.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= ID_CHARS_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether an operator's reference names a provider's (and must be refused).
pub fn is_provider_reference(reference: &str) -> bool {
    PROVIDER_PREFIXES
        .iter()
        .any(|prefix| reference.starts_with(prefix))
}

/// The credit of a paid payment: `stripe:<session id>`, `btcpay:<invoice id>`,
/// `test:<payment id>`. Settling by hand uses the same one, so a later confirmation cannot
/// credit again.
pub fn payment(provider: &str, reference: &str) -> String {
    format!("{provider}:{reference}")
}

/// The debit of a charge's refunds up to `amount_refunded` (cumulative).
pub fn refund(charge: &str, amount_refunded: u64) -> String {
    format!("stripe:refund:{charge}:{amount_refunded}")
}

/// The credit back when a charge's cumulative refunds fell to `amount_refunded` (a refund
/// failed).
pub fn refund_reversed(charge: &str, amount_refunded: u64) -> String {
    format!("stripe:refund-reversed:{charge}:{amount_refunded}")
}

/// The debit of a dispute's withdrawn funds.
pub fn dispute(dispute: &str) -> String {
    format!("stripe:dispute:{dispute}")
}

/// The credit back of a won dispute.
pub fn dispute_reinstated(dispute: &str) -> String {
    format!("stripe:dispute-reinstated:{dispute}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_ids_are_plain_tokens() {
        for good in [
            "cs_test_a1B2c3",
            "ch_3MmlLrLkdIwHu7ix0snN0B15",
            "dp_1",
            "9Bf2bL5k7x",
        ] {
            assert!(is_valid_id(good), "{good}");
        }
        let long = "a".repeat(ID_CHARS_MAX + 1);
        for bad in [
            "",
            "../v1/customers",
            "cs_1?expand=x",
            "a:b",
            "a b",
            "ä",
            long.as_str(),
        ] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn references_are_the_contracts_and_reserved() {
        assert_eq!(payment("stripe", "cs_1"), "stripe:cs_1");
        assert_eq!(refund("ch_1", 250), "stripe:refund:ch_1:250");
        assert_eq!(refund_reversed("ch_1", 0), "stripe:refund-reversed:ch_1:0");
        assert_eq!(dispute("dp_1"), "stripe:dispute:dp_1");
        assert_eq!(dispute_reinstated("dp_1"), "stripe:dispute-reinstated:dp_1");
        for reserved in ["stripe:x", "btcpay:y", "test:z", &refund("ch_1", 1)] {
            assert!(is_provider_reference(reserved), "{reserved}");
        }
        for free in ["invoice-17", "Stripe:x", "stripe", "bank:stripe:1"] {
            assert!(!is_provider_reference(free), "{free}");
        }
    }
}
