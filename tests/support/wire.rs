//! Reading what a server serves, one way for every test binary: the stamp id a stamp text
//! carries, the Merkle root of ledger entries recomputed from the entries themselves, and the
//! samples of a Prometheus text exposition.
//!
//! Included by the test binaries that need it: `#[path = "../support/wire.rs"] mod wire;`
//! from `tests/<binary>/main.rs`.

// Every test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use base64::Engine as _;

/// The stamp id a stamp carries (payload bytes 9..25, docs/stamp-format.md), as a hyphenated
/// UUID string. Panics on a text that is not a `pp1.` stamp.
pub fn stamp_id(stamp: &str) -> String {
    let payload = stamp
        .strip_prefix("pp1.")
        .and_then(|rest| rest.split('.').next())
        .expect("a pp1. stamp");
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("payload base64");
    let bytes: [u8; 16] = payload
        .get(9..25)
        .and_then(|id| id.try_into().ok())
        .expect("a payload of at least 25 bytes");
    uuid::Uuid::from_bytes(bytes).to_string()
}

/// The Merkle root (RFC 9162) of `entries`, each hashed as the exact bytes served.
pub fn root_of<E: AsRef<[u8]>>(entries: &[E]) -> tlog_tiles::Hash {
    let mut checker = pennypost::ledger::check::LedgerChecker::new();
    for entry in entries {
        checker.push(entry.as_ref());
    }
    checker.root()
}

/// One sample of a Prometheus text exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of a Prometheus text exposition, and each metric's `# TYPE` into `types`.
/// Panics on a line that is not a sample, a comment or blank.
pub fn samples(text: &str, types: &mut BTreeMap<String, String>) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("type line");
            types.insert(name.to_string(), kind.to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let (name, labels) = series_parts(series);
        samples.push(Sample {
            name,
            labels,
            value: value.parse().expect("sample value"),
        });
    }
    samples
}

/// The name and labels of a series, `name` or `name{key="value",…}`.
fn series_parts(series: &str) -> (String, BTreeMap<String, String>) {
    match series.split_once('{') {
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').expect("closing brace");
            let labels = body
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once("=\"").expect("label pair");
                    (key.to_string(), value.trim_end_matches('"').to_string())
                })
                .collect();
            (name.to_string(), labels)
        }
        None => (series.to_string(), BTreeMap::new()),
    }
}

/// The sum of the samples of metric `name` whose labels include every pair of `with`.
pub fn total(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// The sum of the samples a selector picks in a Prometheus text exposition: `name` (every label
/// set) or `name{key="value",…}` (the series whose labels include those).
pub fn metric_total(text: &str, selector: &str) -> f64 {
    let (name, labels) = series_parts(selector);
    let with: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    total(&samples(text, &mut BTreeMap::new()), &name, &with)
}
