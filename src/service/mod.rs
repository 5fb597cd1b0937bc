//! The services: one per concept, over the rules, the store and the group committer.
//!
//! - [`Mint`]: accounts, credit, purchase, verify, redeem.
//! - [`Board`]: posts, votes, and the page cache of board reads.
//! - [`Log`]: the ledger's public side (checkpoint, proofs, tiles, entries, audit).
//! - [`Backups`]: consistent copies of the store, taken between two batches of the writer.
//!
//! [`App::start`] builds all three from an [`AppConfig`] over one store and one committer,
//! and publishes the keys. The only code that uses the store, the committer, the keys and the
//! ledger together. Background work (the writer thread, the verifier thread, the background
//! audit) stops when the [`App`] is dropped.

mod backup;
mod board;
mod log;
mod mint;
mod payments;

use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use backup::{Backup, Backups, DB_DIR};
pub use board::Board;
pub use log::Log;
pub use mint::{Debited, Held, HoldStatus, Mint, Purchase, Spend, Verification};
pub use payments::{events::Effect, Payments, ProviderInfo, SETTLE_NOTE_CHARS_MAX};

use crate::commit::Committer;
use crate::config::{Economy, Limits};
use crate::error::Error;
use crate::keys::{Keyring, LedgerKey};
use crate::rules::{Outcome, Settings};
use crate::store::Store;

/// Everything a server is made of, decided at start.
pub struct AppConfig {
    pub store: Arc<dyn Store>,
    pub keyring: Keyring,
    pub ledger_key: LedgerKey,
    /// The checkpoint origin line.
    pub origin: String,
    pub economy: Economy,
    pub limits: Limits,
    /// The operator's token (kept only as its SHA-256).
    pub admin_token: String,
    /// The enabled payment providers (none by default).
    pub providers: crate::payments::Providers,
}

/// The running services.
pub struct App {
    pub mint: Arc<Mint>,
    pub board: Board,
    pub log: Log,
    pub backups: Backups,
    pub payments: Arc<Payments>,
}

impl App {
    /// Starts the writer and the services over `config.store`, then publishes in the ledger
    /// any key status it has not recorded yet.
    pub async fn start(config: AppConfig) -> Result<App, Error> {
        let AppConfig {
            store,
            keyring,
            ledger_key,
            origin,
            economy,
            limits,
            admin_token,
            providers,
        } = config;
        let settings = Settings {
            currency: economy.policy.currency.clone(),
        };
        let committer = Committer::start(store.clone(), settings)?;
        let mint = Arc::new(Mint::new(
            store.clone(),
            committer.clone(),
            keyring,
            economy,
            limits.clone(),
            &admin_token,
        )?);
        mint.publish_keys().await?;
        mint.publish_policy().await?;
        let board = Board::new(mint.clone(), store.clone());
        let payments = Arc::new(Payments::new(mint.clone(), store.clone(), providers));
        payments.start_sweeps();
        let backups = Backups::new(committer.clone(), !store.shared());
        let log = Log::start(store, committer, ledger_key, origin, limits)?;
        Ok(App {
            mint,
            board,
            log,
            backups,
            payments,
        })
    }

    /// The limits every part was started with.
    pub fn limits(&self) -> &Limits {
        self.mint.limits()
    }

    pub fn economy(&self) -> &Economy {
        self.mint.economy()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn unexpected(outcome: &Outcome) -> Error {
    Error::Internal(format!("unexpected outcome {outcome:?}"))
}

/// An app over `store` with keys made in `keys`, the default economy and limits and the admin
/// token `admin`: the unit tests' app.
#[cfg(test)]
pub(crate) async fn test_app(
    store: Arc<dyn Store>,
    keys: &std::path::Path,
    providers: crate::payments::Providers,
) -> App {
    let now = crate::time::Timestamp::now();
    App::start(AppConfig {
        store,
        keyring: crate::keys::load_or_create(keys, now).expect("keys"),
        ledger_key: crate::keys::load_or_create_ledger_key(keys, "t", now).expect("ledger key"),
        origin: "t".into(),
        economy: crate::config::Economy::default(),
        limits: crate::config::Limits::default(),
        admin_token: "admin".into(),
        providers,
    })
    .await
    .expect("start")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStore;

    /// Every background task (the writer, the background audit) lets go of the store once the
    /// app is dropped: sled's file lock is free again, so the same directory reopens.
    #[test]
    fn background_work_stops_when_the_app_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("db");
        let keys = dir.path().join("keys");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let app = test_app(
                Arc::new(SledStore::open(&db).expect("open")),
                &keys,
                crate::payments::Providers::default(),
            )
            .await;
            // Let the background audit run once.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            drop(app);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                match SledStore::open(&db) {
                    Ok(_) => break,
                    Err(e) => {
                        assert!(
                            std::time::Instant::now() < deadline,
                            "the store is still held after the app was dropped: {e}"
                        );
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    }
                }
            }
        });
    }
}
