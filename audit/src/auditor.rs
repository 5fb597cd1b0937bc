//! The HTTP auditor behind `pennypost audit --server URL [--state FILE]` and the standalone
//! `pennypost-audit` (same flags, output and exit codes).
//!
//! Trusts nothing but the checkpoint key it pinned on first use (kept in FILE). It fetches the
//! signed checkpoint and verifies its signature, checks that the checkpoint it remembered is
//! consistent with the new one (the server's consistency proof *and* its own recomputation of
//! the old root), downloads every entry page by page (memory bounded by the page size and the
//! checker's sets), recomputes the Merkle root, checks every invariant of the ledger, and
//! compares its totals with the server's `GET /v1/audit`.
//!
//! Exit 0 when all holds, 1 with the list of violations, 2 when it could not finish.
//!
//! It owns the state file, the pinning, the downloads and the printed report. It must not
//! judge entries itself (that is [`crate::check`]): what the server serves is held against the
//! pinned key and the recomputed root, and the server's own totals are only compared.

use std::fs;
use std::io::{IsTerminal as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Args;
use serde::{Deserialize, Serialize};
use tlog_tiles::Hash;

use crate::check::{AuditReport, LedgerChecker, Violation};
use crate::checkpoint;

/// Entries asked for per request (the server may answer fewer; docs/api.md guarantees >= 1000).
pub const PAGE_ENTRIES: u64 = 1000;
/// Pages downloaded ahead of the checker.
const PREFETCH_PAGES: usize = 4;
/// Logs at least this long get a progress bar (on a terminal).
const PROGRESS_MIN_ENTRIES: u64 = 20_000;

#[derive(Args, Debug, Clone)]
pub struct AuditArgs {
    /// The server's base URL.
    #[arg(long)]
    pub server: String,
    /// Where to remember the pinned key and the last trusted checkpoint (created on first use).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Print only the summary line and violations.
    #[arg(long)]
    pub quiet: bool,
}

/// What the auditor remembers between runs.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct AuditState {
    /// The pinned verifier key (`name+id+base64`).
    pub vkey: String,
    pub origin: String,
    pub size: u64,
    /// Standard base64 of the root at `size`.
    pub root: String,
}

/// The outcome of one audit.
#[derive(Debug)]
pub struct Outcome {
    pub report: AuditReport,
    pub checkpoint_size: u64,
    pub elapsed_secs: f64,
}

/// A failure to finish the audit (exit 2), as opposed to a violation found (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unfinished(pub String);

fn load_state(path: &Path) -> Result<Option<AuditState>, Unfinished> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Unfinished(format!("state file {} is not valid: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Unfinished(format!("cannot read {}: {e}", path.display()))),
    }
}

fn save_state(path: &Path, state: &AuditState) -> Result<(), Unfinished> {
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| Unfinished(e.to_string()))?;
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| Unfinished(format!("cannot write {}: {e}", path.display())))
}

/// The answer to `GET url`, whatever its status.
async fn send(client: &reqwest::Client, url: &str) -> Result<reqwest::Response, Unfinished> {
    client
        .get(url)
        .send()
        .await
        .map_err(|e| Unfinished(format!("{url}: {e}")))
}

async fn get(client: &reqwest::Client, url: &str) -> Result<reqwest::Response, Unfinished> {
    send(client, url)
        .await?
        .error_for_status()
        .map_err(|e| Unfinished(format!("{url}: {e}")))
}

/// The JSON body of a successful answer.
async fn json_of(url: &str, response: reqwest::Response) -> Result<serde_json::Value, Unfinished> {
    response
        .error_for_status()
        .map_err(|e| Unfinished(format!("{url}: {e}")))?
        .json()
        .await
        .map_err(|e| Unfinished(format!("{url}: not JSON: {e}")))
}

async fn get_json(client: &reqwest::Client, url: &str) -> Result<serde_json::Value, Unfinished> {
    json_of(url, send(client, url).await?).await
}

/// Longest the auditor waits for a server whose own ledger check is still catching up.
const SERVER_AUDIT_WAIT: Duration = Duration::from_secs(300);

/// The server's `GET /v1/audit`, asked again while it answers 503 (its own check is still
/// catching up after a start on a long log), after the Retry-After it gives.
async fn server_totals(
    client: &reqwest::Client,
    base: &str,
) -> Result<serde_json::Value, Unfinished> {
    let url = format!("{base}/v1/audit");
    let deadline = Instant::now() + SERVER_AUDIT_WAIT;
    loop {
        let response = send(client, &url).await?;
        if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE
            && Instant::now() < deadline
        {
            let wait = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(2)
                .clamp(1, 30);
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        return json_of(&url, response).await;
    }
}

fn decode_hashes(doc: &serde_json::Value) -> Option<Vec<Hash>> {
    doc["hashes"]
        .as_array()?
        .iter()
        .map(|h| {
            let bytes = STANDARD.decode(h.as_str()?).ok()?;
            Some(Hash(bytes.try_into().ok()?))
        })
        .collect()
}

/// The wall clock in whole Unix seconds: "now" for the checker's count of expired stamps.
fn now_unix() -> i64 {
    ::time::OffsetDateTime::now_utc().unix_timestamp()
}

fn violation(index: u64, code: &str, detail: impl Into<String>) -> Violation {
    Violation {
        index,
        code: code.to_string(),
        detail: detail.into(),
    }
}

/// Runs the audit against `server`. `state` is read and, when everything held, updated.
pub async fn audit(
    server: &str,
    state_path: Option<&Path>,
    show_progress: bool,
) -> Result<Outcome, Unfinished> {
    let started = Instant::now();
    let base = server.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| Unfinished(e.to_string()))?;
    let previous = match state_path {
        Some(p) => load_state(p)?,
        None => None,
    };
    let mut extra: Vec<Violation> = Vec::new();

    // 1. The key: pinned on first use, never taken from the server again.
    let key_doc = get_json(&client, &format!("{base}/v1/ledger/key")).await?;
    let served_vkey = key_doc["vkey"]
        .as_str()
        .ok_or_else(|| Unfinished("ledger key document has no vkey".into()))?
        .to_string();
    let vkey = match &previous {
        Some(p) => {
            if p.vkey != served_vkey {
                extra.push(violation(
                    0,
                    "checkpoint_key_changed",
                    format!(
                        "the server now publishes key {served_vkey}; pinned {}",
                        p.vkey
                    ),
                ));
            }
            p.vkey.clone()
        }
        None => served_vkey,
    };

    // 2. The checkpoint, verified under the pinned key.
    let note = get(&client, &format!("{base}/v1/ledger/checkpoint"))
        .await?
        .bytes()
        .await
        .map_err(|e| Unfinished(e.to_string()))?;
    let checkpoint = match checkpoint::verify(&note, &vkey) {
        Ok(c) => c,
        Err(e) => {
            let mut report = LedgerChecker::new().report(now_unix());
            report
                .violations
                .push(violation(0, "bad_checkpoint_signature", e.to_string()));
            report.ok = false;
            return Ok(Outcome {
                report,
                checkpoint_size: 0,
                elapsed_secs: started.elapsed().as_secs_f64(),
            });
        }
    };
    let size = checkpoint.size;

    // 3. Consistency with what we trusted before: the log may only have grown.
    if let Some(p) = &previous {
        if p.origin != checkpoint.origin {
            extra.push(violation(
                0,
                "origin_changed",
                format!("{} became {}", p.origin, checkpoint.origin),
            ));
        }
        if size < p.size {
            extra.push(violation(
                size,
                "log_shrank",
                format!("checkpoint size {size} is below the remembered {}", p.size),
            ));
        } else if p.size > 0 {
            let old_root = STANDARD
                .decode(&p.root)
                .ok()
                .and_then(|b| b.try_into().ok())
                .map(Hash)
                .ok_or_else(|| Unfinished("state file root is not a hash".into()))?;
            let proof = get_json(
                &client,
                &format!(
                    "{base}/v1/ledger/proof/consistency?from={}&to={size}",
                    p.size
                ),
            )
            .await?;
            let consistent = decode_hashes(&proof)
                .map(|hashes| {
                    tlog_tiles::check_tree(&hashes, size, checkpoint.root, p.size, old_root).is_ok()
                })
                .unwrap_or(false);
            if !consistent {
                extra.push(violation(
                    p.size,
                    "inconsistent_history",
                    format!(
                        "checkpoint of size {size} is not an extension of the remembered size {}",
                        p.size
                    ),
                ));
            }
        }
    }

    // 4. Every entry, page by page, into the checker.
    let progress = (show_progress && size >= PROGRESS_MIN_ENTRIES).then(|| {
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} entries ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    // The server's own audit is fetched while we download, so its scan overlaps ours.
    let server_audit = tokio::spawn({
        let (client, url) = (client.clone(), format!("{base}/v1/audit"));
        async move { get_json(&client, &url).await }
    });
    // A fetcher task downloads pages ahead (at most PREFETCH_PAGES waiting) while this task
    // checks them: memory stays bounded and the network overlaps the hashing.
    let (pages_tx, mut pages_rx) = tokio::sync::mpsc::channel(PREFETCH_PAGES);
    let fetcher = tokio::spawn({
        let (client, base) = (client.clone(), base.to_string());
        async move {
            let mut start = 0u64;
            while start < size {
                let limit = PAGE_ENTRIES.min(size - start);
                let url = format!("{base}/v1/ledger/entries?start={start}&limit={limit}");
                let page = match get(&client, &url).await {
                    Ok(response) => response
                        .bytes()
                        .await
                        .map_err(|e| Unfinished(e.to_string())),
                    Err(e) => Err(e),
                };
                let served = page.as_ref().map_or(0, |body| {
                    body.split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .count() as u64
                });
                let failed = page.is_err();
                if pages_tx.send(page.map(|body| (start, body))).await.is_err()
                    || failed
                    || served == 0
                {
                    return;
                }
                start += served;
            }
        }
    });
    let mut checker = LedgerChecker::new();
    while checker.size() < size {
        let expected = checker.size();
        let (start, body) = match pages_rx.recv().await {
            Some(page) => page?,
            None => {
                return Err(Unfinished(format!(
                    "the server served no entries at {expected} although its checkpoint has {size}"
                )))
            }
        };
        if start != expected {
            return Err(Unfinished(format!(
                "page at {start} arrived while expecting {expected}"
            )));
        }
        let mut got = 0u64;
        for line in body.split(|b| *b == b'\n') {
            if line.is_empty() || checker.size() >= size {
                continue;
            }
            checker.push(line);
            got += 1;
            if let Some(p) = &previous {
                if checker.size() == p.size {
                    let recomputed = STANDARD.encode(checker.root().0);
                    if recomputed != p.root {
                        extra.push(violation(
                            p.size - 1,
                            "rewritten_history",
                            format!(
                                "the first {} entries no longer hash to the remembered root",
                                p.size
                            ),
                        ));
                    }
                }
            }
        }
        if got == 0 {
            return Err(Unfinished(format!(
                "the server served no entries at {start} although its checkpoint has {size}"
            )));
        }
        if let Some(bar) = &progress {
            bar.set_position(checker.size());
        }
    }
    fetcher.abort();
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if checker.root() != checkpoint.root {
        extra.push(violation(
            size.saturating_sub(1),
            "root_mismatch",
            "the entries served do not hash to the signed checkpoint's root",
        ));
    }

    // 5. The server's own totals must match ours.
    let now = now_unix();
    let mut report = checker.report(now);
    // The early answer may be for another size (the log grew meanwhile) or missing (the
    // server was still catching up on a long log): ask once more now that we are done.
    let server_audit = match server_audit.await {
        Ok(Ok(answer)) if answer["ledger_size"].as_u64() == Some(size) => answer,
        _ => server_totals(&client, base).await?,
    };
    let served_size = server_audit["ledger_size"].as_u64().unwrap_or(0);
    if served_size == size {
        // `refunds_total` came with the economy: a server older than it does not report it and
        // is not faulted for that (its refunds, if any, are still checked entry by entry).
        let compared = [
            "stamps_issued",
            "stamps_spent",
            "credits_total",
            "purchases_total",
            "refunds_total",
        ];
        for field in compared {
            if field == "refunds_total" && server_audit.get(field).is_none() {
                continue;
            }
            let ours = serde_json::to_value(&report)
                .ok()
                .and_then(|v| v[field].as_u64());
            let theirs = server_audit[field].as_u64();
            if ours != theirs {
                extra.push(violation(
                    size.saturating_sub(1),
                    "audit_totals_mismatch",
                    format!("{field}: the server says {theirs:?}, the entries say {ours:?}"),
                ));
            }
        }
    }
    // Sizes differ when the log grew between our requests; the totals are then not comparable.

    report.violations.extend(extra);
    report.ok = report.violations.is_empty() && report.ok;
    if report.ok {
        if let Some(path) = state_path {
            save_state(
                path,
                &AuditState {
                    vkey,
                    origin: checkpoint.origin,
                    size,
                    root: STANDARD.encode(checkpoint.root.0),
                },
            )?;
        }
    }
    Ok(Outcome {
        report,
        checkpoint_size: size,
        elapsed_secs: started.elapsed().as_secs_f64(),
    })
}

fn print_report(outcome: &Outcome, quiet: bool) {
    let r = &outcome.report;
    if !quiet {
        println!("ledger size          {}", outcome.checkpoint_size);
        println!("stamps issued        {}", r.stamps_issued);
        println!("  spent              {}", r.stamps_spent);
        println!("  outstanding        {}", r.stamps_outstanding);
        println!("  expired            {}", r.stamps_expired);
        println!("credits total        {}", r.credits_total);
        println!("purchases total      {}", r.purchases_total);
        println!("refunds total        {}", r.refunds_total);
        println!(
            "audited in           {:.2} s ({:.0} entries/s)",
            outcome.elapsed_secs,
            outcome.checkpoint_size as f64 / outcome.elapsed_secs.max(1e-9)
        );
    }
    if r.ok {
        println!("OK: every check holds");
    } else {
        println!("FAILED: {} violation(s)", r.violations.len());
        for v in &r.violations {
            println!("  entry {:>8}  {:<26} {}", v.index, v.code, v.detail);
        }
    }
}

/// The whole command: runs the audit on a current-thread runtime, prints the report, and
/// returns the exit code (0 all holds, 1 violations, 2 could not finish).
pub fn main(args: AuditArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let show_progress = std::io::stderr().is_terminal();
    match runtime.block_on(audit(&args.server, args.state.as_deref(), show_progress)) {
        Ok(outcome) => {
            print_report(&outcome, args.quiet);
            if outcome.report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: could not finish the audit: {e}");
            ExitCode::from(2)
        }
    }
}
