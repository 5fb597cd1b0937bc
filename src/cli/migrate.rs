//! `pennypost migrate --from-data-dir DIR --to-database URL`: copies a sled store into an
//! empty PostgreSQL database, to move a server from one machine's sled to several servers on
//! PostgreSQL.
//!
//! Stop the server first: sled lets one process open a data directory, so a running server's
//! directory is refused. Everything the store keeps is copied: the ledger and the state it
//! decided, and beside it every hold (whatever its state, with each stamp's last hold, so a
//! live hold still keeps its stamps and can be captured once) and every payment record
//! (whatever its status, its `version` included, so a provider's later webhook, a refund or a
//! dispute finds it). The copy runs in one database transaction (a failure leaves the
//! database empty) and is then checked against the source: the same ledger size, every entry
//! byte for byte, the same Merkle root from the stored hashes, the newest checkpoint's root
//! equal to the root at its size (so its signature still verifies), and the same holds, last
//! holds and payment records, field by field. Start the servers with `--database URL` and the
//! same keys directory afterwards.
//!
//! Exit codes: 0 copied and checked; 1 the copy differs from the source (nothing to trust);
//! 2 it could not be made (source unreadable, database unreachable or not empty).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::Args;

use uuid::Uuid;

use crate::domain::{Hold, Payment, PaymentStatus};
use crate::store::{Exported, PgLimits, PgStore, Reads, SledStore, StoreError, StoreHashes};
use crate::time::Timestamp;

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
    let now = Timestamp::now();
    let mut kept = Kept::default();
    let records = target
        .import(|sink| {
            source.export(&mut |record| {
                kept.count(&record, now);
                sink(record)
            })
        })
        .map_err(|e| Failure::Cannot(format!("copy into {target_name}: {e}")))?;
    let copied_in = started.elapsed();
    println!(
        "copied {records} records from {} into {target_name} in {:.1} s",
        args.from_data_dir.display(),
        copied_in.as_secs_f64()
    );
    println!("copied {}", kept.describe());
    let (size, root) = check(&source, &target)?;
    let checked = check_kept(&source, &target, now)?;
    if checked != kept {
        return Err(Failure::Differs(format!(
            "the source read back otherwise than it was copied: {} copied, {} read back",
            kept.describe(),
            checked.describe()
        )));
    }
    println!(
        "checked: ledger size {size}, every entry the same bytes, root {} in both; the same \
         {} payment records, {} holds and {} stamps' last holds in both, field by field; \
         in {:.1} s",
        base64::engine::general_purpose::STANDARD.encode(root.0),
        checked.payments.iter().sum::<u64>(),
        checked.holds,
        checked.stamp_holds,
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

/// What a copy carried beside the ledger, counted as it went by.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Kept {
    /// Payment records by status, in the order of [`PaymentStatus::ALL`].
    payments: [u64; PaymentStatus::ALL.len()],
    holds: u64,
    /// Holds still holding their stamps when the copy started.
    live_holds: u64,
    stamp_holds: u64,
}

impl Kept {
    fn count(&mut self, record: &Exported, now: Timestamp) {
        match record {
            Exported::Payment(payment) => {
                if let Some(at) = PaymentStatus::ALL.iter().position(|s| *s == payment.status) {
                    self.payments[at] += 1;
                }
            }
            Exported::Hold(hold) => {
                self.holds += 1;
                self.live_holds += u64::from(hold.is_live(now));
            }
            Exported::StampHold(..) => self.stamp_holds += 1,
            _ => {}
        }
    }

    /// `12 payment records (3 pending, 9 paid), 4 holds (1 live)`.
    fn describe(&self) -> String {
        let by_status: Vec<String> = PaymentStatus::ALL
            .iter()
            .zip(self.payments)
            .filter(|(_, n)| *n > 0)
            .map(|(status, n)| format!("{n} {}", status.as_str()))
            .collect();
        let total: u64 = self.payments.iter().sum();
        format!(
            "{total} payment records{}, {} holds ({} live)",
            if by_status.is_empty() {
                String::new()
            } else {
                format!(" ({})", by_status.join(", "))
            },
            self.holds,
            self.live_holds
        )
    }
}

/// Reads a page of a table of the copy: up to a count of records after a key, in key order.
type ReadPage<'a, T> = Box<dyn Fn(Option<Uuid>, u64) -> Result<Vec<T>, StoreError> + 'a>;

/// The copy's records of one table, read a page at a time in key order.
struct Copied<'a, T> {
    page: std::vec::IntoIter<T>,
    after: Option<Uuid>,
    ended: bool,
    read: ReadPage<'a, T>,
    key: fn(&T) -> Uuid,
}

impl<'a, T> Copied<'a, T> {
    fn new(
        read: impl Fn(Option<Uuid>, u64) -> Result<Vec<T>, StoreError> + 'a,
        key: fn(&T) -> Uuid,
    ) -> Copied<'a, T> {
        Copied {
            page: Vec::new().into_iter(),
            after: None,
            ended: false,
            read: Box::new(read),
            key,
        }
    }

    fn next(&mut self) -> Result<Option<T>, StoreError> {
        if let Some(item) = self.page.next() {
            return Ok(Some(item));
        }
        if self.ended {
            return Ok(None);
        }
        let page = (self.read)(self.after, COMPARE_PAGE)?;
        self.ended = (page.len() as u64) < COMPARE_PAGE;
        self.after = page.last().map(self.key).or(self.after);
        self.page = page.into_iter();
        Ok(self.page.next())
    }
}

/// Compares the copy's holds, stamps' last holds and payment records with the source's, one
/// by one in key order (both stores list them so): the same records, every field equal, none
/// more. Returns what it compared.
fn check_kept(source: &SledStore, target: &PgStore, now: Timestamp) -> Result<Kept, Failure> {
    let mut holds = Copied::new(|a, n| target.holds_after(a, n), |h: &Hold| h.hold_id);
    let mut stamp_holds = Copied::new(
        |a, n| target.stamp_holds_after(a, n),
        |s: &(Uuid, Uuid)| s.0,
    );
    let mut payments = Copied::new(
        |a, n| target.payments_after(a, n),
        |p: &Payment| p.payment_id,
    );
    let mut kept = Kept::default();
    let mut differs = None;
    let read = source.export_holds_and_payments(&mut |record| {
        kept.count(&record, now);
        let difference = match record {
            Exported::Hold(want) => match holds.next()? {
                Some(got) if got == want => None,
                got => Some(format!(
                    "hold {}: {}",
                    want.hold_id,
                    got.map_or("missing".into(), |g| format!("copied as {g:?}"))
                )),
            },
            Exported::StampHold(stamp_id, hold_id) => match stamp_holds.next()? {
                Some(got) if got == (stamp_id, hold_id) => None,
                _ => Some(format!("the last hold of stamp {stamp_id}")),
            },
            Exported::Payment(want) => match payments.next()? {
                Some(got) if got == want => None,
                got => Some(format!(
                    "payment {}: {}",
                    want.payment_id,
                    got.map_or("missing".into(), |g| format!("copied as {g:?}"))
                )),
            },
            _ => None,
        };
        match difference {
            Some(what) => {
                differs = Some(what);
                Err(StoreError::Storage("the copy differs".into()))
            }
            None => Ok(()),
        }
    });
    if let Some(what) = differs {
        return Err(Failure::Differs(what));
    }
    read.map_err(|e| Failure::Cannot(format!("reading back: {e}")))?;
    let more = |found: Result<bool, StoreError>, what: &str| match found {
        Ok(false) => Ok(()),
        Ok(true) => Err(Failure::Differs(format!("the copy holds more {what}"))),
        Err(e) => Err(Failure::Cannot(format!("reading back: {e}"))),
    };
    more(holds.next().map(|h| h.is_some()), "holds")?;
    more(
        stamp_holds.next().map(|h| h.is_some()),
        "stamps' last holds",
    )?;
    more(payments.next().map(|p| p.is_some()), "payment records")?;
    Ok(kept)
}
