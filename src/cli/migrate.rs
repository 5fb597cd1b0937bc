//! `pennypost migrate --from-data-dir DIR --to-database URL`: copies a sled store into an
//! empty PostgreSQL database, to move a server from one machine's sled to several servers on
//! PostgreSQL.
//!
//! Stop the server first: sled lets one process open a data directory, so a running server's
//! directory is refused. The copy runs in one database transaction (a failure leaves the
//! database empty) and is then checked against the source: the same ledger size, every entry
//! byte for byte, the same Merkle root from the stored hashes, and the newest checkpoint's root
//! equal to the root at its size (so its signature still verifies). Start the servers with
//! `--database URL` and the same keys directory afterwards.
//!
//! Exit codes: 0 copied and checked; 1 the copy differs from the source (nothing to trust);
//! 2 it could not be made (source unreadable, database unreachable or not empty).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::Args;

use crate::store::{PgLimits, PgStore, Reads, SledStore, StoreHashes};

#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The data directory of the sled store to copy (a stopped server's `--data-dir`).
    #[arg(long, value_name = "DIR")]
    pub from_data_dir: PathBuf,
    /// The PostgreSQL database to copy into (`postgres://user@host:port/dbname`); it must hold
    /// no pennypost store yet. The schema is created.
    #[arg(long, value_name = "URL", env = "PENNYPOST_DATABASE_URL")]
    pub to_database: String,
    /// PEM file of the certificate authorities that sign the database server's certificate:
    /// TLS, checked, as `serve --database-ca-file`.
    #[arg(long, value_name = "FILE", env = "PENNYPOST_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,
}

/// Why the command failed, with its exit code.
enum Failure {
    Differs(String),
    Cannot(String),
}

pub fn main(args: MigrateArgs) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Differs(why)) => {
            eprintln!("error: the copy differs from the source: {why}");
            ExitCode::from(1)
        }
        Err(Failure::Cannot(why)) => {
            eprintln!("error: {why}");
            ExitCode::from(2)
        }
    }
}

/// Entries compared per page.
const COMPARE_PAGE: u64 = 1000;

fn run(args: &MigrateArgs) -> Result<(), Failure> {
    let db_dir = args.from_data_dir.join("db");
    if !db_dir.join("db").exists() {
        return Err(Failure::Cannot(format!(
            "{} holds no sled store (no {})",
            args.from_data_dir.display(),
            db_dir.join("db").display()
        )));
    }
    let started = Instant::now();
    let source = SledStore::open(&db_dir)
        .map_err(|e| Failure::Cannot(format!("source {}: {e}", args.from_data_dir.display())))?;
    let target_name = super::serve::redact_url(&args.to_database);
    let limits = PgLimits {
        ca_file: args.database_ca_file.clone(),
        pool_size: 2,
        statement_timeout: Duration::from_secs(600),
        ..PgLimits::default()
    };
    let target = PgStore::open(&args.to_database, &limits)
        .map_err(|e| Failure::Cannot(format!("database {target_name}: {e}")))?;
    let records = target
        .import(|sink| source.export(sink))
        .map_err(|e| Failure::Cannot(format!("copy into {target_name}: {e}")))?;
    let copied_in = started.elapsed();
    println!(
        "copied {records} records from {} into {target_name} in {:.1} s",
        args.from_data_dir.display(),
        copied_in.as_secs_f64()
    );
    let (size, root) = check(&source, &target)?;
    println!(
        "checked: ledger size {size}, every entry the same bytes, root {} in both, in {:.1} s",
        base64::engine::general_purpose::STANDARD.encode(root.0),
        (started.elapsed() - copied_in).as_secs_f64()
    );
    println!("start the servers with --database {target_name} and the same keys directory");
    Ok(())
}

/// Compares the copy with the source; returns the ledger size and its root.
fn check(source: &SledStore, target: &PgStore) -> Result<(u64, tlog_tiles::Hash), Failure> {
    let read = |e: crate::store::StoreError| Failure::Cannot(format!("reading back: {e}"));
    let size = source.ledger_size().map_err(read)?;
    let copied = target.ledger_size().map_err(read)?;
    if size != copied {
        return Err(Failure::Differs(format!(
            "ledger size {copied}, the source's {size}"
        )));
    }
    let mut start = 0;
    while start < size {
        let want = source.entries(start, COMPARE_PAGE).map_err(read)?;
        let got = target.entries(start, COMPARE_PAGE).map_err(read)?;
        if want.is_empty() || want.len() != got.len() {
            return Err(Failure::Differs(format!(
                "{} entries from {start}, the source has {}",
                got.len(),
                want.len()
            )));
        }
        if let Some(i) = (0..want.len()).find(|i| want[*i] != got[*i]) {
            return Err(Failure::Differs(format!(
                "entry {} differs",
                start + i as u64
            )));
        }
        start += want.len() as u64;
    }
    let (want, got) = (root(source, size)?, root(target, size)?);
    if want != got {
        return Err(Failure::Differs(format!("root at size {size}")));
    }
    for store in [source as &dyn Reads, target as &dyn Reads] {
        if let Some((at, note)) = store.checkpoint().map_err(read)? {
            let root_line = note.lines().nth(2).unwrap_or_default();
            let expected = base64::engine::general_purpose::STANDARD.encode(root(store, at)?.0);
            if root_line != expected {
                return Err(Failure::Differs(format!(
                    "the checkpoint at size {at} names another root than the log's"
                )));
            }
        }
    }
    if source.checkpoint().map_err(read)? != target.checkpoint().map_err(read)? {
        return Err(Failure::Differs("the newest checkpoint".into()));
    }
    Ok((size, got))
}

/// The Merkle root of the first `size` entries from a store's stored hashes.
fn root(store: &dyn Reads, size: u64) -> Result<tlog_tiles::Hash, Failure> {
    tlog_tiles::tree_hash(size, &StoreHashes::new(store))
        .map_err(|e| Failure::Cannot(format!("root at size {size}: {e}")))
}
