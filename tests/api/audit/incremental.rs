//! The auditor keeping up: with its state file, a later run verifies the consistency proof from
//! the remembered checkpoint, downloads only the new entries (counted by the fake server) and
//! checks them against the saved checker state, so a violation that depends on entries checked
//! in an earlier run is still caught; a damaged or missing checker state means a full re-check.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use serde_json::json;

use super::*;

/// A fake serving `entries`, its state file, and a way to audit it.
struct Audited {
    url: String,
    fake: Fake,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

impl Audited {
    async fn start(entries: Vec<String>) -> Self {
        let (url, fake) = start_fake(entries).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state.json");
        Audited {
            url,
            fake,
            state,
            _dir: dir,
        }
    }

    fn checker_file(&self) -> PathBuf {
        checker_file(&self.state)
    }

    /// Appends an entry written at its index.
    fn append(&self, entry: impl FnOnce(u64) -> String) {
        let mut log = self.fake.entries.lock().expect("lock");
        let index = log.len() as u64;
        log.push(entry(index));
    }

    /// Makes `GET /v1/audit` answer what an honest server would for the whole log.
    fn report_honestly(&self) {
        let entries = self.fake.entries.lock().expect("lock").clone();
        *self.fake.audit.lock().expect("lock") = Some(served_report(&entries, |_| {}));
    }

    /// Runs the auditor: (exit code, output, entries it downloaded).
    async fn run(&self) -> (i32, String, u64) {
        let before = self.fake.served.load(Ordering::SeqCst);
        let (url, state) = (self.url.clone(), self.state.clone());
        let (code, out) = tokio::task::spawn_blocking(move || audit_printed(&url, &state))
            .await
            .expect("join");
        let downloaded = self.fake.served.load(Ordering::SeqCst) - before;
        (code, out, downloaded)
    }
}

fn checker_file(state: &Path) -> PathBuf {
    state.with_extension("json.checker")
}

fn credit_5(index: u64) -> String {
    credit(index, 5, &reference(5)).replace("00:00:01Z", "00:00:09Z")
}

fn spend_b(index: u64) -> String {
    spend(index, STAMP_B).replace("00:00:03Z", "00:00:09Z")
}

fn spend_a_again(index: u64) -> String {
    spend(index, STAMP_A).replace("00:00:03Z", "00:00:09Z")
}

#[tokio::test]
async fn a_second_run_checks_only_the_new_entries() {
    let audited = Audited::start(honest()).await;
    audited.report_honestly();
    let (code, out, downloaded) = audited.run().await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(downloaded, 4, "{out}");
    let vkey = checkpoint::verifier_key(ORIGIN, &audited.fake.key.signing.verifying_key());
    assert!(
        out.contains(&format!("pinned key           {vkey} (first use")),
        "{out}"
    );
    let key_id = vkey.split('+').nth(1).expect("key id");
    assert!(
        out.contains(&format!("  key id             {key_id}\n")),
        "{out}"
    );
    assert!(
        out.contains(&format!("  origin             {ORIGIN}\n")),
        "{out}"
    );
    assert!(out.contains("checked entries      0 to 3 (4)\n"), "{out}");
    assert!(audited.checker_file().exists(), "{out}");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(&audited.state).expect("state")).expect("json");
    let checked_at = saved["checked_at"]
        .as_str()
        .expect("checked_at")
        .to_string();

    // B, sold before the first run, is spent now: accepted, although this run never sees the
    // purchase. The totals the server reports are the whole log's, and must match.
    audited.append(spend_b);
    audited.append(credit_5);
    audited.report_honestly();
    let (code, out, downloaded) = audited.run().await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(downloaded, 2, "only the new entries: {out}");
    assert!(
        out.contains(&format!("pinned key           {key_id} ({ORIGIN})")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "already checked      4 entries, root {}, at {checked_at}\n",
            saved["root"].as_str().expect("root")
        )),
        "{out}"
    );
    assert!(out.contains("new entries          4 to 5 (2)\n"), "{out}");
    let going_on = format!(
        "checked entries      4 to 5 (2), going on from {}\n",
        audited.checker_file().display()
    );
    assert!(out.contains(&going_on), "{out}");
    assert!(out.contains("stamps issued        2\n"), "{out}");
    assert!(out.contains("  spent              2\n"), "{out}");
    assert!(out.contains("credits total        15\n"), "{out}");

    // Nothing new: nothing downloaded, and still every check holds.
    let (code, out, downloaded) = audited.run().await;
    assert_eq!(code, 0, "{out}");
    assert_eq!(downloaded, 0, "{out}");
    assert!(out.contains("new entries          none\n"), "{out}");
}

#[tokio::test]
async fn a_double_spend_of_a_stamp_spent_before_the_first_run_is_caught() {
    let audited = Audited::start(honest()).await;
    let (code, out, _) = audited.run().await;
    assert_eq!(code, 0, "{out}");
    let state = std::fs::read(&audited.state).expect("state");
    let checker = std::fs::read(audited.checker_file()).expect("checker");

    audited.append(spend_a_again);
    let (code, out, downloaded) = audited.run().await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(downloaded, 1, "{out}");
    assert!(out.contains("stamp_spent_twice"), "{out}");
    assert!(out.contains("entry        4"), "names the entry: {out}");
    // A run that found a violation remembers nothing new: the next one checks it again.
    assert_eq!(std::fs::read(&audited.state).expect("state"), state);
    assert_eq!(
        std::fs::read(audited.checker_file()).expect("checker"),
        checker
    );
    let (code, out, downloaded) = audited.run().await;
    assert_eq!((code, downloaded), (1, 1), "{out}");
}

#[tokio::test]
async fn the_servers_totals_must_be_the_whole_logs() {
    let audited = Audited::start(honest()).await;
    let (code, out, _) = audited.run().await;
    assert_eq!(code, 0, "{out}");
    audited.append(spend_b);
    audited.append(credit_5);
    // A server whose totals count only the entries since the last audit.
    let entries = audited.fake.entries.lock().expect("lock").clone();
    let report = served_report(&entries, |r| {
        r["credits_total"] = json!(5);
    });
    *audited.fake.audit.lock().expect("lock") = Some(report);
    let (code, out, downloaded) = audited.run().await;
    assert_eq!((code, downloaded), (1, 2), "{out}");
    assert!(out.contains("audit_totals_mismatch"), "{out}");
    assert!(out.contains("credits_total"), "{out}");
}

#[tokio::test]
async fn a_history_rewritten_at_the_same_size_is_caught() {
    let audited = Audited::start(honest()).await;
    let (code, out, _) = audited.run().await;
    assert_eq!(code, 0, "{out}");
    // No entry appended, so no entry downloaded would differ from the checkpoint's; only the
    // remembered root can tell.
    audited.fake.entries.lock().expect("lock")[1] = credit(1, 9, &reference(1));
    let (code, out, downloaded) = audited.run().await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("inconsistent_history"), "{out}");
    assert!(out.contains("rewritten_history"), "{out}");
    assert!(out.contains("full re-check"), "{out}");
    assert_eq!(downloaded, 4, "{out}");
}

#[tokio::test]
async fn a_damaged_checker_state_means_a_full_re_check_that_passes() {
    let audited = Audited::start(honest()).await;
    let (code, out, _) = audited.run().await;
    assert_eq!(code, 0, "{out}");
    let file = audited.checker_file();
    let good = std::fs::read(&file).expect("checker");

    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 1;
    let truncated = good[..good.len() - 10].to_vec();
    let cases: [(&[u8], &str); 3] = [
        (&flipped, "it is damaged (its checksum does not match)"),
        (&truncated, "it is damaged"),
        (b"", "it is damaged"),
    ];
    for (n, (bytes, why)) in cases.into_iter().enumerate() {
        std::fs::write(&file, bytes).expect("damage");
        // A new credit, with a reference of its own.
        audited.append(|i| credit_5(i).replace(&reference(5), &reference(10 + n as u8)));
        let size = audited.fake.size();
        let (code, out, downloaded) = audited.run().await;
        assert_eq!(code, 0, "case {n}: {out}");
        assert_eq!(downloaded, size, "case {n}: every entry again: {out}");
        assert!(
            out.contains(&format!(
                "full re-check        the checker state cannot be used: {why}"
            )),
            "case {n}: {out}"
        );
        assert!(
            out.contains(&format!("checked entries      0 to {}", size - 1)),
            "case {n}: {out}"
        );
    }

    // Removed: said so, checked whole, and saved again, so the next run goes on from it.
    std::fs::remove_file(&file).expect("remove");
    let size = audited.fake.size();
    let (code, out, downloaded) = audited.run().await;
    assert_eq!((code, downloaded), (0, size), "{out}");
    assert!(
        out.contains("full re-check        there is no checker state"),
        "{out}"
    );
    let (code, out, downloaded) = audited.run().await;
    assert_eq!((code, downloaded), (0, 0), "{out}");
    assert!(!out.contains("full re-check"), "{out}");
}

#[tokio::test]
async fn a_checker_state_of_another_checkpoint_is_not_used() {
    // The checker file of a longer log, beside a state file that remembers a shorter one (what a
    // crash between writing the two would leave).
    let audited = Audited::start(honest()).await;
    let (code, out, _) = audited.run().await;
    assert_eq!(code, 0, "{out}");
    let short_state = std::fs::read(&audited.state).expect("state");
    audited.append(spend_b);
    let (code, out, _) = audited.run().await;
    assert_eq!(code, 0, "{out}");
    std::fs::write(&audited.state, short_state).expect("write");
    let (code, out, downloaded) = audited.run().await;
    assert_eq!((code, downloaded), (0, 5), "{out}");
    assert!(
        out.contains("it was taken at size 5, not at the remembered checkpoint of size 4"),
        "{out}"
    );
}
