//! Backups while serving (`POST /v1/admin/backup`): a consistent copy of the store in a new
//! directory, taken through the group committer so that it holds whole batches only.
//!
//! The copy runs on the writer thread between two batches (`Committer::exclusive`): changes
//! wait (queued, answered after it) while reads go on. The directory is made here, new and
//! mode 0700, before the writer pauses; a copy that fails is removed, so a directory left
//! behind is always a whole backup.

use std::fs;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::commit::Committer;
use crate::error::Error;
use crate::store::BackupError;
use crate::telemetry;
use crate::time::Timestamp;

/// The name of the database inside a data directory (`<data-dir>/db`), and so inside a backup.
pub const DB_DIR: &str = "db";

pub struct Backups {
    committer: Committer,
    /// False when the store is a database server shared with other servers: it has backup
    /// tools of its own, and a request is refused before anything is written.
    supported: bool,
}

/// A backup written whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// The new directory: a data directory that `pennypost serve --data-dir` opens.
    pub path: PathBuf,
    /// Entries of the ledger in the copy.
    pub ledger_size: u64,
}

impl Backups {
    pub(super) fn new(committer: Committer, supported: bool) -> Backups {
        Backups {
            committer,
            supported,
        }
    }

    /// Writes a consistent copy of the store into `path`, a new directory (absolute, and not
    /// existing yet) on the server's machine.
    pub async fn take(&self, path: &str) -> Result<Backup, Error> {
        let path = PathBuf::from(path);
        if !path.is_absolute() {
            return Err(Error::BadRequest(format!(
                "the backup path must be absolute, not {path:?}"
            )));
        }
        if !self.supported {
            // Bad paths are still 400, as on any store; a good one is refused before any
            // directory is made.
            if fs::symlink_metadata(&path).is_ok() {
                return Err(exists(&path));
            }
            metrics::counter!(telemetry::BACKUPS, "outcome" => "failed").increment(1);
            return Err(Error::BackupNotSupported);
        }
        new_directory(&path)?;
        let started = Instant::now();
        let db = path.join(DB_DIR);
        let copied = self
            .committer
            .exclusive(move |store| {
                store.backup(&db)?;
                Ok::<u64, BackupError>(store.ledger_size()?)
            })
            .await;
        let outcome = match copied {
            Ok(Ok(ledger_size)) => Ok(ledger_size),
            Ok(Err(BackupError::NotSupported)) => Err(Error::BackupNotSupported),
            Ok(Err(BackupError::Store(e))) => Err(Error::Internal(format!("backup failed: {e}"))),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(ledger_size) => {
                metrics::counter!(telemetry::BACKUPS, "outcome" => "ok").increment(1);
                metrics::histogram!(telemetry::BACKUP_DURATION)
                    .record(started.elapsed().as_secs_f64());
                metrics::gauge!(telemetry::BACKUP_LAST_SUCCESS).set(Timestamp::now().unix() as f64);
                tracing::info!(path = %path.display(), ledger_size, "backup written");
                Ok(Backup { path, ledger_size })
            }
            Err(e) => {
                metrics::counter!(telemetry::BACKUPS, "outcome" => "failed").increment(1);
                if let Err(removed) = fs::remove_dir_all(&path) {
                    tracing::warn!(path = %path.display(), error = %removed, "cannot remove a failed backup");
                }
                Err(e)
            }
        }
    }
}

/// Makes `path` as a new directory, mode 0700 (the copy holds everything the data directory
/// holds but the admin token), with any missing parents. A path that exists is refused.
fn exists(path: &Path) -> Error {
    Error::BadRequest(format!(
        "{} exists; a backup goes into a new directory",
        path.display()
    ))
}

fn new_directory(path: &Path) -> Result<(), Error> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(exists(path));
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)
            .map_err(|e| Error::BadRequest(format!("cannot create {}: {e}", parent.display())))?;
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => exists(path),
            _ => Error::BadRequest(format!("cannot create {}: {e}", path.display())),
        })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::MemoryStore;

    /// A store shared with other servers (PostgreSQL) is refused before anything is made on
    /// disk: no directory, not even the parents of the path.
    #[tokio::test]
    async fn a_shared_store_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MemoryStore::new());
        let backups = Backups::new(
            Committer::start(
                store,
                crate::rules::Settings {
                    currency: "cents".into(),
                },
            )
            .expect("committer"),
            false,
        );
        let path = dir.path().join("parent").join("backup");
        let refused = backups.take(path.to_str().expect("utf-8")).await;
        assert!(
            matches!(refused, Err(Error::BackupNotSupported)),
            "{refused:?}"
        );
        assert!(!dir.path().join("parent").exists(), "a directory was made");
    }

    #[tokio::test]
    async fn paths_are_checked_before_the_writer_pauses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(MemoryStore::new());
        let backups = Backups::new(
            Committer::start(
                store,
                crate::rules::Settings {
                    currency: "cents".into(),
                },
            )
            .expect("committer"),
            true,
        );
        for relative in ["backup", "./backup", ""] {
            assert!(matches!(
                backups.take(relative).await,
                Err(Error::BadRequest(_))
            ));
        }
        let existing = dir.path().to_str().expect("utf-8");
        assert!(matches!(
            backups.take(existing).await,
            Err(Error::BadRequest(_))
        ));
        // The memory store has no backup of its own: 409, and nothing is left behind.
        let path = dir.path().join("new");
        let path_text = path.to_str().expect("utf-8");
        assert!(matches!(
            backups.take(path_text).await,
            Err(Error::BackupNotSupported)
        ));
        assert!(!path.exists());
    }
}
