//! The scale prefill: sold stamps written straight into a fresh store (no HTTP; through the
//! same `rules::apply` the writer uses), bought over the last 30 days, most of them spent, and
//! the file of old unspent stamps kept for the old-stamp redeem workload.

use std::path::Path;

use uuid::Uuid;

/// Stamps per purchase and commands per transaction while writing the scale prefill.
pub(super) const SCALE_PURCHASE: usize = 1000;
const SCALE_BATCH: usize = 256;
/// The scale prefill's purchases are spread over this many seconds before now (30 days).
const SCALE_HISTORY_SECS: u64 = 30 * 86_400;
/// Stamps of each prefill purchase left unspent, for the old-stamp redeem workload.
pub(super) const SCALE_KEEP_PER_PURCHASE: usize = 10;
/// Where the prefill writes the unspent stamps it kept, one per line, in the bench directory.
pub(super) const OLD_STAMPS_FILE: &str = "old-stamps.txt";

/// Writes `count` sold stamps, all but [`SCALE_KEEP_PER_PURCHASE`] of each purchase spent,
/// into a new store under `dir/data/db`, with the issuer key of `dir/keys` published first, so
/// the log is one an auditor accepts.
pub(super) fn scale_store(dir: &Path, count: u64) -> Result<(), String> {
    use crate::domain::StampRef;
    use crate::rules::{self, Command as StoreCommand, Settings, SpendFor};
    use crate::store::{SledStore, Writes as _};
    use crate::time::Timestamp;
    let now = Timestamp::now();
    let ring = crate::keys::load_or_create(&dir.join("keys"), now).map_err(|e| e.to_string())?;
    let key = ring.active();
    let signing = key.signing.as_ref().ok_or("the active key has no secret")?;
    let store = SledStore::open(&dir.join("data").join("db")).map_err(|e| e.to_string())?;
    let account = Uuid::new_v4();
    let settings = Settings {
        currency: "cents".into(),
    };
    let apply = |commands: &[StoreCommand]| -> Result<(), String> {
        for result in rules::apply(&store, &settings, commands, now).map_err(|e| e.to_string())? {
            result.map_err(|e| format!("scale prefill refused: {e}"))?;
        }
        Ok(())
    };
    apply(&[
        StoreCommand::KeyEvent {
            kid: key.kid,
            public_key: crate::keys::public_key_text(&key.verifying),
            status: crate::keys::KeyStatus::Active,
        },
        StoreCommand::CreateAccount {
            account_id: account,
            name: Some("scale".into()),
            api_key_sha256: [0; 32],
        },
        StoreCommand::Credit {
            account_id: account,
            amount: count,
            reference: format!("scale-{account}"),
            source: crate::domain::CreditSource::Operator,
        },
    ])?;
    // The purchases are spread evenly over the SCALE_HISTORY_SECS before now, as a server that
    // has been selling for a while would hold them.
    let purchases = count.div_ceil(SCALE_PURCHASE as u64).max(1);
    let spacing = (SCALE_HISTORY_SECS / purchases).max(1);
    let mut kept = Vec::new();
    let mut left = count;
    let mut purchase = 0u64;
    while left > 0 {
        let n = left.min(SCALE_PURCHASE as u64) as usize;
        let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
        let back = (purchases - purchase).saturating_mul(spacing);
        let issued_at = Timestamp::from_unix(
            now.unix()
                .saturating_sub(i64::try_from(back).unwrap_or(i64::MAX)),
        );
        let expires_at = now.plus_secs(86_400 * 365);
        apply(&[StoreCommand::Purchase {
            account_id: account,
            unit_price: 1,
            idempotency_key_sha256: None,
            purchase_id: Uuid::new_v4(),
            kid: key.kid,
            issued_at,
            expires_at,
            stamp_ids: ids.clone(),
        }])?;
        let (keep, spend) = ids.split_at(n.min(SCALE_KEEP_PER_PURCHASE));
        kept.extend(keep.iter().map(|id| {
            let text = crate::stamp::sign(
                &crate::stamp::Payload {
                    kid: key.kid,
                    stamp_id: *id,
                    issued_at: issued_at.unix(),
                    expires_at: expires_at.unix(),
                    value: 1,
                    holder: [0; 32],
                },
                signing,
            );
            (*id, text)
        }));
        let spends: Vec<StoreCommand> = spend
            .iter()
            .map(|id| StoreCommand::Spend {
                stamps: vec![StampRef {
                    stamp_id: *id,
                    issued_at,
                }],
                spend_for: SpendFor::Redeem {
                    context: "scale".into(),
                },
            })
            .collect();
        for chunk in spends.chunks(SCALE_BATCH) {
            apply(chunk)?;
        }
        left -= n as u64;
        purchase += 1;
    }
    store.sync().map_err(|e| e.to_string())?;
    // Ids are random, so id order is a random order of issue times: the workload that spends
    // these takes them from all over the history, not purchase by purchase.
    kept.sort_unstable_by_key(|(id, _)| *id);
    let texts: Vec<String> = kept.into_iter().map(|(_, text)| text).collect();
    write_old_stamps(dir, &texts)
}

pub(super) fn write_old_stamps(dir: &Path, texts: &[String]) -> Result<(), String> {
    let mut text = texts.join("\n");
    text.push('\n');
    std::fs::write(dir.join(OLD_STAMPS_FILE), text)
        .map_err(|e| format!("cannot write {OLD_STAMPS_FILE}: {e}"))
}

/// The unspent old stamps a scale prefill kept in `dir`, if any.
pub(super) fn read_old_stamps(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(OLD_STAMPS_FILE))
        .map(|text| {
            text.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}
