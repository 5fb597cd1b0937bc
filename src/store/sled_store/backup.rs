//! Backups: a copy of every tree, key by key, into a new sled database that opens like the
//! original (same segment size; the layout migrations find nothing to do).
//!
//! sled 0.34 has no snapshot, so the copy is consistent only because nothing writes while it
//! runs: the group committer calls [`copy_to`] between two batches (`Committer::exclusive`).
//! The one write outside the committer, the `checkpoints` tree's `latest` note, is replaced
//! whole; the copy holds the old or the new note, each of a size at or below the copy's.
//! The copy is made durable (sled's flush, then `fdatasync` of its file and of the directory)
//! before the backup is reported written.

use std::fs::File;
use std::path::Path;

use super::layout::storage;
use super::{sync_db, SEGMENT_BYTES};
use crate::store::StoreError;

/// Keys per sled batch while a tree is copied.
const COPY_BATCH: usize = 10_000;

/// Copies every tree of `db` into a new database at `dir` (which must not exist) and makes the
/// copy durable.
pub(super) fn copy_to(db: &sled::Db, dir: &Path) -> Result<(), StoreError> {
    let copy = sled::Config::new()
        .path(dir)
        .segment_size(SEGMENT_BYTES)
        .flush_every_ms(None)
        .create_new(true)
        .open()
        .map_err(storage)?;
    let mut keys = 0u64;
    for name in db.tree_names() {
        let source = db.open_tree(&name).map_err(storage)?;
        let target = copy.open_tree(&name).map_err(storage)?;
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        for item in source.iter() {
            let (key, value) = item.map_err(storage)?;
            batch.insert(key, value);
            pending += 1;
            keys += 1;
            if pending == COPY_BATCH {
                target
                    .apply_batch(std::mem::take(&mut batch))
                    .map_err(storage)?;
                pending = 0;
            }
        }
        target.apply_batch(batch).map_err(storage)?;
    }
    let file = File::open(dir.join("db")).map_err(storage)?;
    sync_db(&copy, &file)?;
    drop(copy);
    // The directory entries of the new files.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(storage)?;
    tracing::info!(keys, dir = %dir.display(), "backup copied");
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::domain::CreditSource;
    use crate::rules::{self, Command, Settings};
    use crate::store::{Reads as _, SledStore, Writes as _};
    use crate::time::Timestamp;

    #[test]
    fn a_copy_opens_with_the_same_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("db")).expect("open");
        let account_id = uuid::Uuid::new_v4();
        let create = Command::CreateAccount {
            account_id,
            name: Some("backup".into()),
            api_key_sha256: [7; 32],
        };
        let credit = |reference: &str| Command::Credit {
            account_id,
            amount: 5,
            reference: reference.into(),
            source: CreditSource::Operator,
        };
        let settings = Settings {
            currency: "cents".into(),
        };
        let batch = [create, credit("a"), credit("b")];
        rules::apply(&store, &settings, &batch, Timestamp::now()).expect("apply");
        store.sync().expect("sync");
        let size = store.ledger_size().expect("size");
        assert!(size >= 2);
        store.put_checkpoint(size, "note").expect("checkpoint");

        let copy_dir = dir.path().join("copy").join("db");
        std::fs::create_dir_all(dir.path().join("copy")).expect("dir");
        store.backup(&copy_dir).expect("backup");
        // A second copy into the same place is refused: a backup never overwrites.
        assert!(store.backup(&copy_dir).is_err());

        // The copy's sled handle was just dropped; its background threads may hold the file
        // lock a moment longer.
        let copy = super::super::tests::retry_while_locked(|| SledStore::open(&copy_dir))
            .expect("open the copy");
        assert_eq!(copy.ledger_size().expect("size"), size);
        assert_eq!(
            copy.entries(0, size).expect("entries"),
            store.entries(0, size).expect("entries")
        );
        let all: Vec<u64> = (0..tlog_tiles::stored_hash_count(size)).collect();
        assert_eq!(
            copy.hashes(&all).expect("hashes"),
            store.hashes(&all).expect("hashes")
        );
        assert_eq!(
            copy.account(account_id).expect("account"),
            store.account(account_id).expect("account")
        );
        assert_eq!(
            copy.checkpoint().expect("checkpoint"),
            Some((size, "note".into()))
        );
    }
}
