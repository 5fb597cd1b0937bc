//! The HTTP auditor behind `pennypost audit --server URL [--state FILE]` and the standalone
//! `pennypost-audit` (same flags, output and exit codes).
//!
//! Trusts nothing but the checkpoint key it pinned on first use (kept in FILE); a server showing
//! another key stops the audit before any other check, naming both keys and FILE (a state file
//! of another server, or a replaced key: docs/operations.md, re-pinning). It fetches the
//! signed checkpoint and verifies its signature, checks that the checkpoint it remembered is
//! consistent with the new one (the server's consistency proof), downloads the entries page by
//! page (memory bounded by the page size and the checker's sets), recomputes the Merkle root,
//! checks every invariant of the ledger, and compares its totals with the server's
//! `GET /v1/audit`. The recomputed root is a second consistency check: it is computed from the
//! remembered tree (its entries, or its saved right edge) and the new entries, so it matches the
//! signed root only if the remembered tree is a prefix of the signed one.
//!
//! With FILE it keeps up instead of starting over: the checker's state at the remembered
//! checkpoint is saved beside FILE (`FILE.checker`, see [`crate::state`]), so a later run
//! verifies the consistency proof from that checkpoint to the new one, downloads only the
//! entries after it, and pushes them into the restored checker: the root, the invariants and
//! the totals still cover the whole log. A checker state that is missing, damaged or of another
//! checkpoint, or a proof that fails, makes it check every entry from the first again (saying
//! why), and a failed proof is still a violation.
//!
//! Exit 0 when all holds, 1 with the list of violations, 2 when it could not finish.
//!
//! It owns the pinning, the downloads and the printed report. It must not judge entries itself
//! (that is [`crate::check`]): what the server serves is held against the pinned key and the
//! recomputed root, and the server's own totals are only compared.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Args;
use tlog_tiles::Hash;

use crate::check::{AuditReport, LedgerChecker, Violation};
use crate::checkpoint;
pub use crate::state::AuditState;
use crate::state::{self, CheckerLoad};

/// Entries asked for per request (the server may answer fewer; docs/api.md guarantees >= 1000).
pub const PAGE_ENTRIES: u64 = 1000;
/// Pages downloaded ahead of the checker.
const PREFETCH_PAGES: usize = 4;
/// Logs at least this long get a progress bar (on a terminal).
const PROGRESS_MIN_ENTRIES: u64 = 20_000;

#[derive(Args, Debug, Clone)]
pub struct AuditArgs {
    /// The server's base URL (`http://` is added when no scheme is given).
    #[arg(long, value_parser = crate::server_url::base_url)]
    pub server: String,
    /// Where to remember the pinned key and the last trusted checkpoint (created on first use).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Print only the summary line and violations.
    #[arg(long)]
    pub quiet: bool,
}

/// The outcome of one audit.
#[derive(Debug)]
pub struct Outcome {
    pub report: AuditReport,
    pub checkpoint_size: u64,
    pub elapsed_secs: f64,
    /// Index of the first entry this run downloaded and checked: 0 when it checked the whole
    /// log, the remembered size when it went on from the saved checker state.
    pub checked_from: u64,
    /// The key this run pinned (first use with a state file); `None` on later runs.
    pub pinned: Option<Pinned>,
    /// What an earlier run had checked, as FILE remembered it.
    pub previous: Option<AuditState>,
    /// Why every entry was checked again although FILE remembered a checkpoint.
    pub full_recheck: Option<String>,
    /// Size in bytes of the checker state this run saved beside FILE.
    pub checker_state_bytes: Option<u64>,
    /// The server's checkpoint key is not the one pinned in FILE: the audit stopped there,
    /// before any other check (its one violation says which keys and what to do).
    pub key_mismatch: bool,
}

/// The checkpoint key pinned on first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinned {
    /// The verifier key, `name+id+base64`.
    pub vkey: String,
    /// Its key id (8 hex digits).
    pub key_id: String,
    /// The origin of the checkpoint it verified.
    pub origin: String,
}

/// A failure to finish the audit (exit 2), as opposed to a violation found (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unfinished(pub String);

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

/// The wall clock as RFC 3339 UTC in whole seconds, for `checked_at`.
fn now_rfc3339() -> Option<String> {
    let now = ::time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()?;
    now.format(&::time::format_description::well_known::Rfc3339)
        .ok()
}

fn violation(index: u64, code: &str, detail: impl Into<String>) -> Violation {
    Violation {
        index,
        code: code.to_string(),
        detail: detail.into(),
    }
}

/// Whether the checkpoint FILE remembered is a prefix of the new one (same origin, not
/// larger, and the server's consistency proof verifies against both roots); the violations
/// that say why not.
async fn consistency(
    client: &reqwest::Client,
    base: &str,
    previous: &AuditState,
    checkpoint: &checkpoint::Verified,
) -> Result<Vec<Violation>, Unfinished> {
    let (p, size) = (previous, checkpoint.size);
    let mut found = Vec::new();
    if p.origin != checkpoint.origin {
        found.push(violation(
            0,
            "origin_changed",
            format!("{} became {}", p.origin, checkpoint.origin),
        ));
    }
    if size < p.size {
        found.push(violation(
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
        let url = format!(
            "{base}/v1/ledger/proof/consistency?from={}&to={size}",
            p.size
        );
        let proof = get_json(client, &url).await?;
        let consistent = decode_hashes(&proof)
            .map(|hashes| {
                tlog_tiles::check_tree(&hashes, size, checkpoint.root, p.size, old_root).is_ok()
            })
            .unwrap_or(false);
        if !consistent {
            found.push(violation(
                p.size,
                "inconsistent_history",
                format!(
                    "checkpoint of size {size} is not an extension of the remembered size {}",
                    p.size
                ),
            ));
        }
    }
    Ok(found)
}

/// Downloads entries `checker.size()..size` page by page into `checker`. `previous` is the
/// remembered checkpoint: when the download passes its size, the root so far must be its root.
async fn download_into(
    checker: &mut LedgerChecker,
    client: &reqwest::Client,
    base: &str,
    size: u64,
    previous: Option<&AuditState>,
    show_progress: bool,
) -> Result<Vec<Violation>, Unfinished> {
    let first = checker.size();
    let mut found = Vec::new();
    let progress = (show_progress && size - first >= PROGRESS_MIN_ENTRIES).then(|| {
        let bar = indicatif::ProgressBar::new(size - first);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} entries ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    // A fetcher task downloads pages ahead (at most PREFETCH_PAGES waiting) while this task
    // checks them: memory stays bounded and the network overlaps the hashing.
    let (pages_tx, mut pages_rx) = tokio::sync::mpsc::channel(PREFETCH_PAGES);
    let fetcher = tokio::spawn({
        let (client, base) = (client.clone(), base.to_string());
        async move {
            let mut start = first;
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
            if let Some(p) = previous {
                if checker.size() == p.size && STANDARD.encode(checker.root().0) != p.root {
                    found.push(violation(
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
        if got == 0 {
            return Err(Unfinished(format!(
                "the server served no entries at {start} although its checkpoint has {size}"
            )));
        }
        if let Some(bar) = &progress {
            bar.set_position(checker.size() - first);
        }
    }
    fetcher.abort();
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(found)
}

/// Invariant 7: the server's totals (`GET /v1/audit`) must be ours, over the whole log.
fn compare_totals(report: &AuditReport, server_audit: &serde_json::Value) -> Vec<Violation> {
    let size = report.ledger_size;
    let mut found = Vec::new();
    // Sizes differ when the log grew between our requests; the totals are then not comparable.
    if server_audit["ledger_size"].as_u64() != Some(size) {
        return found;
    }
    // `refunds_total` came with the economy, the debits, revokes and credits by source with
    // payments: a server older than them does not report them and is not faulted for that
    // (its entries are still checked one by one).
    let compared = [
        "stamps_issued",
        "stamps_spent",
        "credits_total",
        "purchases_total",
        "refunds_total",
        "debits_total",
        "revoked_total",
        "credits_by_source",
    ];
    let optional = [
        "refunds_total",
        "debits_total",
        "revoked_total",
        "credits_by_source",
    ];
    let ours = serde_json::to_value(report).unwrap_or_default();
    for field in compared {
        if optional.contains(&field) && server_audit.get(field).is_none() {
            continue;
        }
        if field == "credits_by_source" {
            if ours[field] != server_audit[field] {
                found.push(violation(
                    size.saturating_sub(1),
                    "audit_totals_mismatch",
                    format!(
                        "{field}: the server says {}, the entries say {}",
                        server_audit[field], ours[field]
                    ),
                ));
            }
            continue;
        }
        let (ours, theirs) = (ours[field].as_u64(), server_audit[field].as_u64());
        if ours != theirs {
            found.push(violation(
                size.saturating_sub(1),
                "audit_totals_mismatch",
                format!("{field}: the server says {theirs:?}, the entries say {ours:?}"),
            ));
        }
    }
    found
}

/// What a server's checkpoint key that is not the pinned one means, and where to read on.
fn key_mismatch_text(served: &str, state_path: &Path, pinned: &str) -> String {
    format!(
        "this server's checkpoint key {served} is not the key pinned in {} ({pinned}): a \
         different server, or a rotated key; see operations.md on re-pinning (\"The checkpoint \
         key\")",
        state_path.display()
    )
}

/// Runs the audit against `server`. `state` is read and, when everything held, updated
/// together with the checker state beside it.
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
        Some(p) => state::load_state(p)?,
        None => None,
    };
    // The checker as the last run left it, if it can be trusted to be that.
    let mut saved = match (state_path, &previous) {
        (Some(path), Some(p)) => state::load_checker(path, p),
        _ => CheckerLoad::Missing,
    };
    let mut extra: Vec<Violation> = Vec::new();

    // 1. The key: pinned on first use, never taken from the server again.
    let key_doc = get_json(&client, &format!("{base}/v1/ledger/key")).await?;
    let served_vkey = key_doc["vkey"]
        .as_str()
        .ok_or_else(|| Unfinished("ledger key document has no vkey".into()))?
        .to_string();
    let mut outcome = Outcome {
        report: LedgerChecker::new().report(now_unix()),
        checkpoint_size: 0,
        elapsed_secs: 0.0,
        checked_from: 0,
        pinned: None,
        previous: previous.clone(),
        full_recheck: None,
        checker_state_bytes: None,
        key_mismatch: false,
    };
    let vkey = match (&previous, state_path) {
        // Another key than the pinned one: most often the state file of another server, or a
        // server whose key was replaced. Nothing else can be checked under the pinned key (the
        // checkpoint would only fail its signature), so the audit stops here and says so.
        (Some(p), Some(path)) if p.vkey != served_vkey => {
            outcome.report.violations.push(violation(
                0,
                "checkpoint_key_changed",
                key_mismatch_text(&served_vkey, path, &p.vkey),
            ));
            outcome.report.ok = false;
            outcome.key_mismatch = true;
            outcome.elapsed_secs = started.elapsed().as_secs_f64();
            return Ok(outcome);
        }
        (Some(p), _) => p.vkey.clone(),
        (None, _) => served_vkey,
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
            let found = violation(0, "bad_checkpoint_signature", e.to_string());
            outcome.report.violations.push(found);
            outcome.report.ok = false;
            outcome.elapsed_secs = started.elapsed().as_secs_f64();
            return Ok(outcome);
        }
    };
    let size = checkpoint.size;
    if previous.is_none() && state_path.is_some() {
        outcome.pinned = Some(Pinned {
            key_id: state::key_id(&vkey).to_string(),
            vkey: vkey.clone(),
            origin: checkpoint.origin.clone(),
        });
    }

    // 3. Consistency with what we trusted before: the log may only have grown. Going on from
    // the saved checker needs exactly that; otherwise every entry is checked again, which
    // also shows where the history was rewritten.
    if let Some(p) = &previous {
        let found = consistency(&client, base, p, &checkpoint).await?;
        if !found.is_empty() {
            if let CheckerLoad::Restored(_) = saved {
                saved = CheckerLoad::Unusable(
                    "the remembered checkpoint is not a prefix of the new one".into(),
                );
            }
        }
        extra.extend(found);
    }
    let mut checker = match saved {
        CheckerLoad::Restored(checker) => *checker,
        CheckerLoad::Missing => {
            if previous.is_some() {
                outcome.full_recheck = Some("there is no checker state".into());
            }
            LedgerChecker::new()
        }
        CheckerLoad::Unusable(why) => {
            outcome.full_recheck = Some(format!("the checker state cannot be used: {why}"));
            LedgerChecker::new()
        }
    };
    outcome.checked_from = checker.size();

    // 4. The new entries (all of them without a usable checker state), page by page. The
    // server's own audit is fetched while we download, so its scan overlaps ours.
    let server_audit = tokio::spawn({
        let (client, url) = (client.clone(), format!("{base}/v1/audit"));
        async move { get_json(&client, &url).await }
    });
    let found = download_into(
        &mut checker,
        &client,
        base,
        size,
        previous.as_ref(),
        show_progress,
    )
    .await?;
    extra.extend(found);
    if checker.root() != checkpoint.root {
        extra.push(violation(
            size.saturating_sub(1),
            "root_mismatch",
            "the entries served do not hash to the signed checkpoint's root",
        ));
    }

    // 5. The server's own totals must match ours, over the whole log.
    let mut report = checker.report(now_unix());
    // The early answer may be for another size (the log grew meanwhile) or missing (the
    // server was still catching up on a long log): ask once more now that we are done.
    let server_audit = match server_audit.await {
        Ok(Ok(answer)) if answer["ledger_size"].as_u64() == Some(size) => answer,
        _ => server_totals(&client, base).await?,
    };
    extra.extend(compare_totals(&report, &server_audit));

    report.violations.extend(extra);
    report.ok = report.violations.is_empty() && report.ok;
    // 6. Remember this checkpoint, and the checker at it, only when everything held. The
    // checker state goes first: a crash between the two leaves it ahead of FILE, which the
    // next run detects (it names another checkpoint) and answers with a full check.
    if report.ok {
        if let Some(path) = state_path {
            let new_state = AuditState {
                vkey,
                origin: checkpoint.origin,
                size,
                root: STANDARD.encode(checkpoint.root.0),
                checked_at: now_rfc3339(),
            };
            outcome.checker_state_bytes = Some(state::save_checker(path, &new_state, &checker)?);
            state::save_state(path, &new_state)?;
        }
    }
    outcome.report = report;
    outcome.checkpoint_size = size;
    outcome.elapsed_secs = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// `from` to `to - 1` and how many, or "none".
fn range_text(from: u64, to: u64) -> String {
    match to.checked_sub(from) {
        Some(n) if n > 0 => format!("{from} to {} ({n})", to - 1),
        _ => "none".to_string(),
    }
}

fn print_report(outcome: &Outcome, quiet: bool, state_path: Option<&Path>) {
    let r = &outcome.report;
    let size = outcome.checkpoint_size;
    // Stopped at the key: what FILE remembers is of another key, so nothing of it is shown.
    if !quiet && !outcome.key_mismatch {
        if let Some(pin) = &outcome.pinned {
            println!(
                "pinned key           {} (first use: compare it with one obtained out of band)",
                pin.vkey
            );
            println!("  key id             {}", pin.key_id);
            println!("  origin             {}", pin.origin);
        }
        if let Some(p) = &outcome.previous {
            println!("pinned key           {} ({})", p.key_id(), p.origin);
            println!(
                "already checked      {} entries, root {}, at {}",
                p.size,
                p.root,
                p.checked_at.as_deref().unwrap_or("an unknown time")
            );
            println!("new entries          {}", range_text(p.size, size));
        }
        if let Some(why) = &outcome.full_recheck {
            println!("full re-check        {why}");
        }
        let checked = range_text(outcome.checked_from, size);
        match (outcome.checked_from, state_path) {
            (0, _) => println!("checked entries      {checked}"),
            (_, Some(path)) => println!(
                "checked entries      {checked}, going on from {}",
                state::checker_path(path).display()
            ),
            (_, None) => println!("checked entries      {checked}"),
        }
        println!("ledger size          {size}");
        println!("stamps issued        {}", r.stamps_issued);
        println!("  spent              {}", r.stamps_spent);
        println!("  outstanding        {}", r.stamps_outstanding);
        println!("  expired            {}", r.stamps_expired);
        println!("credits total        {}", r.credits_total);
        println!("purchases total      {}", r.purchases_total);
        println!("refunds total        {}", r.refunds_total);
        println!("debits total         {}", r.debits_total);
        println!("revoked total        {}", r.revoked_total);
        let by_source: Vec<String> = r
            .credits_by_source
            .iter()
            .filter(|(_, total)| **total > 0)
            .map(|(source, total)| format!("{source} {total}"))
            .collect();
        if !by_source.is_empty() {
            println!("credits by source    {}", by_source.join(", "));
        }
        let checked = size.saturating_sub(outcome.checked_from);
        println!(
            "audited in           {:.2} s ({:.0} entries/s)",
            outcome.elapsed_secs,
            checked as f64 / outcome.elapsed_secs.max(1e-9)
        );
        if let (Some(bytes), Some(path)) = (outcome.checker_state_bytes, state_path) {
            println!(
                "checker state        {} ({bytes} bytes)",
                state::checker_path(path).display()
            );
        }
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
    let state = args.state.as_deref();
    match runtime.block_on(audit(&args.server, state, show_progress)) {
        Ok(outcome) => {
            print_report(&outcome, args.quiet, state);
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
