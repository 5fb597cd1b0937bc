//! ISO 4217 currencies and their exponents, and the two ways providers write an amount.
//!
//! The server keeps every amount in minor units of its `--currency`. A provider that takes
//! money needs to know what one minor unit is: Stripe wants the integer itself
//! (`unit_amount=500`), BTCPay a decimal string (`"5.00"`). Both come from the ISO 4217
//! exponent here. Pure: no I/O.
//!
//! Codes are compared without case. The table holds the active codes that have a minor unit
//! (the funds, metals and testing codes `X..` with no minor unit are left out), and a few
//! recently withdrawn ones so that an older configuration still starts.

/// One ISO 4217 currency: its code in capitals and how many decimal digits its minor unit has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Iso4217 {
    pub code: &'static str,
    pub exponent: u8,
}

/// The ISO 4217 table, sorted by code (the unit tests check the order).
#[rustfmt::skip]
const TABLE: &[(&str, u8)] = &[
    ("AED", 2), ("AFN", 2), ("ALL", 2), ("AMD", 2), ("ANG", 2), ("AOA", 2), ("ARS", 2),
    ("AUD", 2), ("AWG", 2), ("AZN", 2), ("BAM", 2), ("BBD", 2), ("BDT", 2), ("BGN", 2),
    ("BHD", 3), ("BIF", 0), ("BMD", 2), ("BND", 2), ("BOB", 2), ("BOV", 2), ("BRL", 2),
    ("BSD", 2), ("BTN", 2), ("BWP", 2), ("BYN", 2), ("BZD", 2), ("CAD", 2), ("CDF", 2),
    ("CHE", 2), ("CHF", 2), ("CHW", 2), ("CLF", 4), ("CLP", 0), ("CNY", 2), ("COP", 2),
    ("COU", 2), ("CRC", 2), ("CUC", 2), ("CUP", 2), ("CVE", 2), ("CZK", 2), ("DJF", 0),
    ("DKK", 2), ("DOP", 2), ("DZD", 2), ("EGP", 2), ("ERN", 2), ("ETB", 2), ("EUR", 2),
    ("FJD", 2), ("FKP", 2), ("GBP", 2), ("GEL", 2), ("GHS", 2), ("GIP", 2), ("GMD", 2),
    ("GNF", 0), ("GTQ", 2), ("GYD", 2), ("HKD", 2), ("HNL", 2), ("HRK", 2), ("HTG", 2),
    ("HUF", 2), ("IDR", 2), ("ILS", 2), ("INR", 2), ("IQD", 3), ("IRR", 2), ("ISK", 0),
    ("JMD", 2), ("JOD", 3), ("JPY", 0), ("KES", 2), ("KGS", 2), ("KHR", 2), ("KMF", 0),
    ("KPW", 2), ("KRW", 0), ("KWD", 3), ("KYD", 2), ("KZT", 2), ("LAK", 2), ("LBP", 2),
    ("LKR", 2), ("LRD", 2), ("LSL", 2), ("LYD", 3), ("MAD", 2), ("MDL", 2), ("MGA", 2),
    ("MKD", 2), ("MMK", 2), ("MNT", 2), ("MOP", 2), ("MRU", 2), ("MUR", 2), ("MVR", 2),
    ("MWK", 2), ("MXN", 2), ("MXV", 2), ("MYR", 2), ("MZN", 2), ("NAD", 2), ("NGN", 2),
    ("NIO", 2), ("NOK", 2), ("NPR", 2), ("NZD", 2), ("OMR", 3), ("PAB", 2), ("PEN", 2),
    ("PGK", 2), ("PHP", 2), ("PKR", 2), ("PLN", 2), ("PYG", 0), ("QAR", 2), ("RON", 2),
    ("RSD", 2), ("RUB", 2), ("RWF", 0), ("SAR", 2), ("SBD", 2), ("SCR", 2), ("SDG", 2),
    ("SEK", 2), ("SGD", 2), ("SHP", 2), ("SLE", 2), ("SLL", 2), ("SOS", 2), ("SRD", 2),
    ("SSP", 2), ("STN", 2), ("SVC", 2), ("SYP", 2), ("SZL", 2), ("THB", 2), ("TJS", 2),
    ("TMT", 2), ("TND", 3), ("TOP", 2), ("TRY", 2), ("TTD", 2), ("TWD", 2), ("TZS", 2),
    ("UAH", 2), ("UGX", 0), ("USD", 2), ("USN", 2), ("UYI", 0), ("UYU", 2), ("UYW", 4),
    ("UZS", 2), ("VED", 2), ("VES", 2), ("VND", 0), ("VUV", 0), ("WST", 2), ("XAF", 0),
    ("XCD", 2), ("XCG", 2), ("XOF", 0), ("XPF", 0), ("YER", 2), ("ZAR", 2), ("ZMW", 2),
    ("ZWG", 2), ("ZWL", 2),
];

/// The ISO 4217 currency of `code`, compared without case; `None` for anything else
/// (`cents`, `BTC`, a code with no minor unit such as `XAU`).
pub fn iso4217(code: &str) -> Option<Iso4217> {
    if code.len() != 3 || !code.is_ascii() {
        return None;
    }
    let upper = code.to_ascii_uppercase();
    TABLE
        .binary_search_by(|(c, _)| (*c).cmp(upper.as_str()))
        .ok()
        .map(|i| Iso4217 {
            code: TABLE[i].0,
            exponent: TABLE[i].1,
        })
}

/// Why Stripe cannot take this currency as the server counts it, or `None` when its amounts
/// in Stripe's API are the ISO minor units.
///
/// Stripe's "Supported currencies" page: ISK is two-decimal in the API although ISO gives it
/// no decimals; MGA is zero-decimal in the API although ISO gives it two; HUF and TWD are
/// two-decimal but Stripe treats them as whole units (amounts divisible by 100); UGX is listed
/// both as zero-decimal and among the special cases; the three-decimal currencies it takes
/// (BHD, JOD, KWD, OMR, TND) must end in 0, and the other ISO currencies with 3 or 4 decimals
/// are not among its three-decimal ones. A payment of such a currency would be refused or
/// charged a hundred times off, so the server refuses to start instead.
pub fn stripe_refusal(currency: Iso4217) -> Option<&'static str> {
    match currency.code {
        "ISK" => Some("ISK is two-decimal in Stripe's API but has no decimals in ISO 4217"),
        "MGA" => Some("MGA is zero-decimal in Stripe's API but two-decimal in ISO 4217"),
        "HUF" | "TWD" => {
            Some("Stripe takes only whole units of this currency (amounts divisible by 100)")
        }
        "UGX" => Some("Stripe lists UGX among its special cases for amounts"),
        "BHD" | "JOD" | "KWD" | "OMR" | "TND" => {
            Some("Stripe takes three-decimal amounts only when their last digit is 0")
        }
        _ if currency.exponent > 2 => {
            Some("Stripe does not take this currency's minor unit as ISO 4217 defines it")
        }
        _ => None,
    }
}

/// `amount` minor units as a decimal string with `exponent` digits after the point:
/// 500 with exponent 2 is `"5.00"`, with 0 `"500"`, with 3 `"0.500"`.
pub fn to_decimal(amount: u64, exponent: u8) -> String {
    if exponent == 0 {
        return amount.to_string();
    }
    let digits = format!("{amount:0>width$}", width = usize::from(exponent) + 1);
    let (whole, fraction) = digits.split_at(digits.len() - usize::from(exponent));
    format!("{whole}.{fraction}")
}

/// Longest decimal text [`from_decimal`] reads: more than any amount a `u64` holds.
pub const DECIMAL_CHARS_MAX: usize = 40;

/// A decimal string as minor units with `exponent` digits, compared as a number: `"5"`,
/// `"5.0"`, `"5.00"` and `"5.000"` are all 500 with exponent 2. `None` when the text is no
/// plain non-negative decimal (a sign, an exponent, spaces, nothing after the point), when
/// it has non-zero digits finer than the minor unit (`"5.001"`), or when it does not fit.
pub fn from_decimal(text: &str, exponent: u8) -> Option<u64> {
    if text.is_empty() || text.len() > DECIMAL_CHARS_MAX {
        return None;
    }
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if text.contains('.') && fraction.is_empty() {
        return None;
    }
    if !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let exponent = usize::from(exponent);
    let (kept, dropped) = fraction.split_at(fraction.len().min(exponent));
    if dropped.bytes().any(|b| b != b'0') {
        return None;
    }
    let mut amount: u64 = 0;
    for b in whole.bytes().chain(kept.bytes()) {
        amount = amount.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    for _ in kept.len()..exponent {
        amount = amount.checked_mul(10)?;
    }
    Some(amount)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_found_without_case_and_the_table_is_sorted() {
        assert!(
            TABLE.windows(2).all(|w| w[0].0 < w[1].0),
            "binary search needs order"
        );
        assert_eq!(
            iso4217("usd").map(|c| (c.code, c.exponent)),
            Some(("USD", 2))
        );
        assert_eq!(iso4217("Jpy").map(|c| c.exponent), Some(0));
        assert_eq!(iso4217("KWD").map(|c| c.exponent), Some(3));
        assert_eq!(iso4217("clf").map(|c| c.exponent), Some(4));
        for not_iso in ["cents", "BTC", "XAU", "", "US", "USDD", "ÜSD"] {
            assert_eq!(iso4217(not_iso), None, "{not_iso}");
        }
    }

    #[test]
    fn minor_units_become_decimals_with_the_exponent() {
        assert_eq!(to_decimal(500, 2), "5.00");
        assert_eq!(to_decimal(5, 2), "0.05");
        assert_eq!(to_decimal(0, 2), "0.00");
        assert_eq!(to_decimal(500, 0), "500");
        assert_eq!(to_decimal(500, 3), "0.500");
        assert_eq!(to_decimal(1_234_567, 3), "1234.567");
        assert_eq!(to_decimal(u64::MAX, 2), "184467440737095516.15");
    }

    #[test]
    fn decimals_are_compared_as_numbers() {
        for text in ["5", "5.0", "5.00", "5.000", "005.00"] {
            assert_eq!(from_decimal(text, 2), Some(500), "{text}");
        }
        assert_eq!(from_decimal("0.05", 2), Some(5));
        assert_eq!(from_decimal("500", 0), Some(500));
        assert_eq!(from_decimal("500.0", 0), Some(500));
        assert_eq!(from_decimal("0.5", 3), Some(500));
        assert_eq!(from_decimal("184467440737095516.15", 2), Some(u64::MAX));
        for bad in [
            "5.001",
            "500.5",
            "",
            ".5",
            "5.",
            "-5",
            "+5",
            "5e2",
            " 5",
            "5,00",
            "0x10",
            "184467440737095516.16",
            "1.2.3",
        ] {
            let exponent = if bad == "500.5" { 0 } else { 2 };
            assert_eq!(from_decimal(bad, exponent), None, "{bad}");
        }
        assert_eq!(from_decimal(&"1".repeat(DECIMAL_CHARS_MAX + 1), 2), None);
    }

    #[test]
    fn stripe_refuses_the_currencies_whose_api_unit_differs() {
        for code in [
            "ISK", "HUF", "MGA", "TWD", "UGX", "KWD", "BHD", "IQD", "CLF", "uyw",
        ] {
            let currency = iso4217(code).expect(code);
            assert!(stripe_refusal(currency).is_some(), "{code}");
        }
        for code in ["USD", "eur", "JPY", "KRW", "GBP", "CLP", "XOF"] {
            let currency = iso4217(code).expect(code);
            assert_eq!(stripe_refusal(currency), None, "{code}");
        }
    }
}
