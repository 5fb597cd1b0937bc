//! The ledger's public side: the durable size, entries, signed checkpoints, proofs, tiles,
//! and the server's own audit kept caught up in the background.
//!
//! Reads only what is durable: every size here is the committer's durable size, so a
//! checkpoint never signs entries a crash could still undo, and one size never gets two roots.
//!
//! How far the server's own check is behind the durable ledger is the `pennypost_audit_lag`
//! gauge (`crate::telemetry`), set as the check catches up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::commit::Committer;
use crate::config::Limits;
use crate::error::Error;
use crate::keys::LedgerKey;
use crate::ledger::check::{AuditReport, LedgerChecker};
use crate::ledger::checkpoint;
use crate::store::{Reads, Store, StoreHashes};
use crate::time::Timestamp;

pub struct Log {
    store: Arc<dyn Store>,
    committer: Committer,
    ledger_key: LedgerKey,
    origin: String,
    limits: Limits,
    /// The newest signed checkpoint, by size. Guarded so two requests never sign twice.
    checkpoint: Mutex<Option<(u64, String)>>,
    /// The server's own auditor, fed incrementally: each `GET /v1/audit` reads only the entries
    /// added since the last one.
    /// Kept caught up by a background task every few seconds; scans run on blocking threads
    /// under this std lock. `audit_running` makes callers queue on a tokio lock instead of
    /// blocking runtime threads.
    auditor: Arc<Mutex<LedgerChecker>>,
    audit_running: tokio::sync::Mutex<()>,
    /// How far the auditor has checked, readable while a catch-up holds its lock.
    audit_checked: Arc<AtomicU64>,
    /// The background audit task, stopped when the log is dropped (the server stops).
    background: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Log {
    fn drop(&mut self) {
        if let Ok(mut background) = self.background.lock() {
            if let Some(task) = background.take() {
                task.abort();
            }
        }
    }
}

impl Log {
    pub(super) fn start(
        store: Arc<dyn Store>,
        committer: Committer,
        ledger_key: LedgerKey,
        origin: String,
        limits: Limits,
    ) -> Result<Log, Error> {
        let checkpoint = store.checkpoint()?;
        let log = Log {
            store,
            committer,
            ledger_key,
            origin,
            limits,
            checkpoint: Mutex::new(checkpoint),
            auditor: Arc::new(Mutex::new(LedgerChecker::new())),
            audit_running: tokio::sync::Mutex::new(()),
            audit_checked: Arc::new(AtomicU64::new(0)),
            background: Mutex::new(None),
        };
        let task = log.start_background_audit();
        if let Ok(mut background) = log.background.lock() {
            *background = Some(task);
        }
        Ok(log)
    }

    /// The ledger size that is durable (what checkpoints and entry reads may show).
    pub fn size(&self) -> u64 {
        self.committer.durable_size()
    }

    /// Entries `start..start+limit`, capped at the page limit and at the durable size.
    pub fn entries(&self, start: u64, limit: u64) -> Result<Vec<Vec<u8>>, Error> {
        let size = self.size();
        if start > size {
            return Err(Error::BadRequest(format!(
                "start {start} is past the ledger size {size}"
            )));
        }
        let limit = limit.min(self.limits.ledger_page_max).min(size - start);
        Ok(self.store.entries(start, limit)?)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn key(&self) -> &LedgerKey {
        &self.ledger_key
    }

    /// The signed checkpoint of the durable ledger. Signs a new one only when the ledger grew;
    /// the root of a size never changes, so one size never gets two roots.
    pub fn checkpoint(&self) -> Result<String, Error> {
        let size = self.size();
        let mut cached = self
            .checkpoint
            .lock()
            .map_err(|_| Error::Internal("checkpoint lock poisoned".into()))?;
        if let Some((cached_size, note)) = cached.as_ref() {
            if *cached_size >= size {
                return Ok(note.clone());
            }
        }
        let root = self.root(size)?;
        let note = checkpoint::sign(&self.origin, size, &root, &self.ledger_key)
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.store.put_checkpoint(size, &note)?;
        *cached = Some((size, note.clone()));
        Ok(note)
    }

    /// The Merkle root of the first `size` entries.
    pub fn root(&self, size: u64) -> Result<tlog_tiles::Hash, Error> {
        with_hashes(self.store.as_ref(), |hashes| {
            tlog_tiles::tree_hash(size, hashes)
        })
    }

    /// Inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<tlog_tiles::Hash>, Error> {
        let durable = self.size();
        if size == 0 || size > durable || index >= size {
            return Err(Error::BadRequest(format!(
                "need index < size <= {durable}; got index {index}, size {size}"
            )));
        }
        with_hashes(self.store.as_ref(), |hashes| {
            tlog_tiles::prove_record(size, index, hashes)
        })
    }

    /// Consistency proof between the trees of `from` and `to` entries.
    pub fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<tlog_tiles::Hash>, Error> {
        let durable = self.size();
        if from == 0 || from > to || to > durable {
            return Err(Error::BadRequest(format!(
                "need 0 < from <= to <= {durable}; got from {from}, to {to}"
            )));
        }
        with_hashes(self.store.as_ref(), |hashes| {
            tlog_tiles::prove_tree(to, from, hashes)
        })
    }

    /// The server's own check of the ledger invariants over every durable entry.
    pub async fn audit(&self) -> Result<AuditReport, Error> {
        // One scan at a time; others wait here without holding a runtime thread.
        let size = self.size();
        let checked = self.audit_checked.load(Ordering::Acquire);
        if size.saturating_sub(checked) > self.limits.audit_lag_max {
            return Err(Error::AuditCatchingUp {
                checked,
                size,
                retry_after_secs: BACKGROUND_AUDIT_SECS,
            });
        }
        let _turn = self.audit_running.lock().await;
        let (store, auditor, progress) = (
            self.store.clone(),
            self.auditor.clone(),
            self.audit_checked.clone(),
        );
        let page_max = self.limits.ledger_page_max;
        // The scan reads and hashes entries: keep it off the runtime's worker threads, which
        // must go on serving requests (the auditor itself downloads entries meanwhile).
        tokio::task::spawn_blocking(move || {
            let checker = catch_up(store.as_ref(), &auditor, &progress, size, page_max)?;
            Ok(checker.report(Timestamp::now().unix()))
        })
        .await
        .map_err(|e| Error::Internal(format!("audit task failed: {e}")))?
    }

    /// Keeps the server's own auditor caught up in the background, so that `GET /v1/audit`
    /// only checks the entries of the last few seconds, even on a log of millions of entries.
    fn start_background_audit(&self) -> tokio::task::AbortHandle {
        let (store, auditor, committer, progress) = (
            self.store.clone(),
            self.auditor.clone(),
            self.committer.clone(),
            self.audit_checked.clone(),
        );
        let page_max = self.limits.ledger_page_max;
        let task = tokio::spawn(async move {
            loop {
                let size = committer.durable_size();
                let (store, auditor, checked) = (store.clone(), auditor.clone(), progress.clone());
                // On a database shared by several servers, one of them at a time (the holder of
                // the database's leader lock) keeps its check caught up; the others check on
                // demand, when asked for `GET /v1/audit`.
                let caught_up = tokio::task::spawn_blocking(move || {
                    if !store.audit_leader()? {
                        return Ok(());
                    }
                    catch_up(store.as_ref(), &auditor, &checked, size, page_max).map(|_| ())
                })
                .await;
                if let Ok(Err(e)) = caught_up {
                    tracing::error!(error = %e, "background audit could not read the ledger");
                }
                // Behind the size now, not the size the catch-up aimed at.
                let lag = committer
                    .durable_size()
                    .saturating_sub(progress.load(Ordering::Acquire));
                metrics::gauge!(crate::telemetry::AUDIT_LAG).set(lag as f64);
                tokio::time::sleep(std::time::Duration::from_secs(BACKGROUND_AUDIT_SECS)).await;
            }
        });
        task.abort_handle()
    }
}

/// Seconds between background catch-ups of the server's own auditor.
const BACKGROUND_AUDIT_SECS: u64 = 2;

/// Feeds `auditor` every entry below `size` it has not seen yet; returns it locked.
fn catch_up<'a>(
    store: &dyn Store,
    auditor: &'a Mutex<LedgerChecker>,
    progress: &AtomicU64,
    size: u64,
    page_max: u64,
) -> Result<std::sync::MutexGuard<'a, LedgerChecker>, Error> {
    let mut checker = auditor
        .lock()
        .map_err(|_| Error::Internal("auditor lock poisoned".into()))?;
    while checker.size() < size {
        let page = store.entries(checker.size(), page_max.min(size - checker.size()))?;
        if page.is_empty() {
            return Err(Error::Internal(format!(
                "ledger entry {} missing below durable size {size}",
                checker.size()
            )));
        }
        for entry in page {
            checker.push(&entry);
        }
        progress.store(checker.size(), Ordering::Release);
        metrics::gauge!(crate::telemetry::AUDIT_LAG)
            .set(size.saturating_sub(checker.size()) as f64);
    }
    Ok(checker)
}

/// Tile height of C2SP tlog-tiles (c2sp.org/tlog-tiles): 256 hashes or entries per tile.
const TILE_HEIGHT: u8 = 8;
const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;

impl Log {
    /// Serves the log as C2SP tlog-tiles: `path` is what follows `tile/`, either
    /// `<L>/<N>[.p/<W>]` (a hash tile) or `entries/<N>[.p/<W>]` (an entry bundle, each entry
    /// prefixed by its length as a big-endian u16). Only tiles within the durable size exist.
    pub fn tile(&self, path: &str) -> Result<Vec<u8>, Error> {
        let (is_entries, rest) = match path.strip_prefix("entries/") {
            Some(rest) => (true, rest),
            None => (false, path),
        };
        // tlog_tiles parses the Go sumdb form `tile/H/L/N`; C2SP drops the fixed height.
        let go_path = if is_entries {
            format!("tile/{TILE_HEIGHT}/data/{rest}")
        } else {
            format!("tile/{TILE_HEIGHT}/{rest}")
        };
        if !tile_path_is_safe(rest, is_entries) {
            return Err(Error::NotFound("tile"));
        }
        let tile = tlog_tiles::Tile::from_path(&go_path).map_err(|_| Error::NotFound("tile"))?;
        if tile.height() != TILE_HEIGHT || u32::from(tile.level()) * u32::from(TILE_HEIGHT) >= 64 {
            return Err(Error::NotFound("tile"));
        }
        let size = self.size();
        let nodes_at_level = size >> (u32::from(tile.level()) * u32::from(TILE_HEIGHT));
        let first = tile
            .level_index()
            .checked_mul(TILE_WIDTH)
            .ok_or(Error::NotFound("tile"))?;
        let width = u64::from(tile.width());
        // A tile (full or partial) exists once its last node does; the log only grows, so its
        // bytes never change after that.
        let exists = first
            .checked_add(width)
            .is_some_and(|end| end <= nodes_at_level);
        if !exists {
            return Err(Error::NotFound("tile"));
        }
        if is_entries {
            let mut out = Vec::new();
            for entry in self.store.entries(first, width)? {
                let length = u16::try_from(entry.len())
                    .map_err(|_| Error::Internal("entry too long for a tile".into()))?;
                out.extend_from_slice(&length.to_be_bytes());
                out.extend_from_slice(&entry);
            }
            Ok(out)
        } else {
            with_hashes(self.store.as_ref(), |hashes| tile.read_data(hashes))
        }
    }
}

/// Whether tlog_tiles 0.2 can parse a tile path (after `/tile/`, and after `entries/` for an
/// entry bundle) without panicking. Its `Tile::from_path` lets through a level of 64 or more
/// and a partial width of 0, and then `Tile::new` asserts that neither happens; no tile has
/// either, so such a path is no tile (404) rather than a panic (500).
fn tile_path_is_safe(rest: &str, is_entries: bool) -> bool {
    let level_fits = is_entries
        || rest
            .split('/')
            .next()
            .and_then(|level| level.parse::<u8>().ok())
            .is_none_or(|level| level < 64);
    let width_fits = rest
        .rsplit_once(".p/")
        .is_none_or(|(_, width)| width.parse::<u32>() != Ok(0));
    level_fits && width_fits
}

/// Runs a tlog_tiles call that reads the store's hashes. On failure, the store's own error if
/// a read failed (a tlog_tiles error carries only text), so a database that is away for now
/// answers 503 `service_unavailable`, as every other read does, not 500.
fn with_hashes<T>(
    store: &dyn Reads,
    read: impl FnOnce(&StoreHashes<'_>) -> Result<T, tlog_tiles::Error>,
) -> Result<T, Error> {
    let hashes = StoreHashes::new(store);
    read(&hashes).map_err(|e| match hashes.take_failure() {
        Some(store_error) => store_error.into(),
        None => Error::Internal(e.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Account, Hold, Post, StampRecord};
    use crate::keys::PublishedKey;
    use crate::store::StoreError;
    use uuid::Uuid;

    /// A store every call of which fails with the error `.0` makes.
    struct Failing(fn() -> StoreError);

    impl Reads for Failing {
        fn ledger_size(&self) -> Result<u64, StoreError> {
            Err(self.0())
        }
        fn account(&self, _: Uuid) -> Result<Option<Account>, StoreError> {
            Err(self.0())
        }
        fn account_by_api_key(&self, _: &[u8; 32]) -> Result<Option<Account>, StoreError> {
            Err(self.0())
        }
        fn stamp(&self, _: Uuid) -> Result<Option<StampRecord>, StoreError> {
            Err(self.0())
        }
        fn post(&self, _: Uuid) -> Result<Option<Post>, StoreError> {
            Err(self.0())
        }
        fn hold(&self, _: Uuid) -> Result<Option<Hold>, StoreError> {
            Err(self.0())
        }
        fn posts(&self, _: Option<Uuid>, _: usize) -> Result<Option<Vec<Post>>, StoreError> {
            Err(self.0())
        }
        fn entries(&self, _: u64, _: u64) -> Result<Vec<Vec<u8>>, StoreError> {
            Err(self.0())
        }
        fn hashes(&self, _: &[u64]) -> Result<Vec<[u8; 32]>, StoreError> {
            Err(self.0())
        }
        fn published_keys(&self) -> Result<Vec<PublishedKey>, StoreError> {
            Err(self.0())
        }
        fn checkpoint(&self) -> Result<Option<(u64, String)>, StoreError> {
            Err(self.0())
        }
    }

    /// Every path tlog_tiles would panic on is refused before it is parsed, and every path it
    /// parses without panicking is let through.
    #[test]
    fn tile_paths_that_would_panic_are_refused_first() {
        for (rest, is_entries) in [
            ("64/000", false),
            ("255/000", false),
            ("0/000.p/0", false),
            ("0/000.p/00", false),
            ("0/000.p/+0", false),
            ("000.p/0", true),
        ] {
            assert!(!tile_path_is_safe(rest, is_entries), "{rest}");
        }
        for (rest, is_entries) in [
            ("0/000", false),
            ("63/000", false),
            ("256/000", false),
            ("0/x001/234.p/5", false),
            ("000.p/60", true),
            ("../../etc/passwd", false),
        ] {
            assert!(tile_path_is_safe(rest, is_entries), "{rest}");
            let go_path = if is_entries {
                format!("tile/{TILE_HEIGHT}/data/{rest}")
            } else {
                format!("tile/{TILE_HEIGHT}/{rest}")
            };
            // Parses or refuses; never panics.
            let _ = tlog_tiles::Tile::from_path(&go_path);
        }
    }

    /// Roots, proofs and tiles read hashes through tlog_tiles, whose errors carry only text:
    /// a database away for now must still answer 503 (`Unavailable`), not 500, and a damaged
    /// store stays an internal error.
    #[test]
    fn a_failed_hash_read_keeps_the_stores_error() {
        let away = Failing(|| StoreError::Unavailable("connection refused".into()));
        let root = with_hashes(&away, |hashes| tlog_tiles::tree_hash(5, hashes));
        assert!(matches!(root, Err(Error::Unavailable(_))), "{root:?}");
        let proof = with_hashes(&away, |hashes| tlog_tiles::prove_tree(5, 3, hashes));
        assert!(matches!(proof, Err(Error::Unavailable(_))), "{proof:?}");

        let damaged = Failing(|| StoreError::Corrupt {
            tree: "hashes",
            detail: "hash length".into(),
        });
        let proof = with_hashes(&damaged, |hashes| tlog_tiles::prove_record(5, 2, hashes));
        assert!(matches!(proof, Err(Error::Internal(_))), "{proof:?}");
    }
}
