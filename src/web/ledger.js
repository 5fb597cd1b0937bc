"use strict";
// The ledger panel of pennypost's page: the signed checkpoint's size and time, the server's
// own audit, and the command to audit it from outside. Part of /app.js (see board.js); only
// declares functions.

async function loadLedger() {
  clearTimeout(state.auditRetry);
  $("audit-command").textContent = "pennypost audit --server " + window.location.origin;
  const cp = await api("GET", "/v1/ledger/checkpoint", { text: true });
  if (cp.ok) {
    // A C2SP checkpoint: origin, size, root hash, then the signatures.
    const lines = String(cp.data).split("\n");
    const size = parseInt(lines[1], 10);
    $("ledger-size").textContent = Number.isInteger(size) ? String(size) : "–";
    $("checkpoint-time").textContent = Number.isInteger(size) ? (size === 0 ? "no entries yet" : "covers " + entries(size)) : "–";
    if (size > 0) {
      // A checkpoint carries no time of its own: it is as recent as the last entry it covers.
      const last = await api("GET", "/v1/ledger/entries?start=" + (size - 1) + "&limit=1", { text: true });
      let time = null;
      if (last.ok) {
        try { time = JSON.parse(String(last.data).split("\n")[0]).time; } catch (e) { time = null; }
      }
      if (time) {
        const el = $("checkpoint-time");
        el.textContent = formatTime(time) + " (covers " + entries(size) + ")";
        el.title = "The latest signed checkpoint covers entries 0 to " + (size - 1) + "; the last of them is from " + time + ". Root " + (lines[2] || "");
      }
    }
  } else {
    $("ledger-size").textContent = "–";
    $("checkpoint-time").textContent = "could not load: " + words(cp, "ledger");
  }

  const audit = await api("GET", "/v1/audit");
  const result = $("audit-result");
  const list = $("audit-violations");
  list.textContent = "";
  list.hidden = true;
  if (!audit.ok) {
    result.className = "";
    result.textContent = audit.problem.code === "audit_catching_up" ? "still checking…" : "could not load";
    $("audit-totals").textContent = words(audit, "ledger");
    const secs = parseInt(audit.retryAfter, 10);
    if (audit.problem.code === "audit_catching_up") {
      state.auditRetry = setTimeout(loadLedger, 1000 * Math.min(Math.max(secs || 2, 1), 30));
    }
    return;
  }
  const a = audit.data;
  if (a.ok) {
    result.className = "ok";
    result.textContent = "OK: every check holds";
  } else {
    result.className = "bad";
    const total = Number(a.violations_total) || (a.violations || []).length;
    result.textContent = "PROBLEMS: " + plural(total, "violation") + " found";
    for (const v of (a.violations || []).slice(0, 10)) {
      const li = document.createElement("li");
      li.textContent = "Entry " + v.index + " (" + v.code + "): " + v.detail;
      list.append(li);
    }
    list.hidden = false;
  }
  $("audit-totals").textContent = "Checked " + entries(Number(a.ledger_size) || 0) +
    ". Stamps sold: " + a.stamps_issued + " (spent " + a.stamps_spent + ", unspent " + a.stamps_outstanding + ", expired " + a.stamps_expired +
    "). Money credited: " + money(a.credits_total) + "; paid for stamps: " + money(a.purchases_total) +
    "; refunded to authors: " + money(Number(a.refunds_total) || 0) + ".";
}
