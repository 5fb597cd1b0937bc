"use strict";
// "Add money" in the wallet of pennypost's page: an amount and one button per payment provider
// the server takes (GET /v1/payments/providers); a button creates the payment
// (POST /v1/payments) and opens its pay_url. The provider sends the member back to
// /?payment=<id>; the page then asks GET /v1/payments/<id> every PAYMENT_POLL_MS until the
// payment is paid, expired or failed (said plainly), for at most PAYMENT_WAIT_MS, and shows
// the new balance. A balance below zero (money that went back after stamps were bought) is a
// debt, shown plainly.
//
// Part of /app.js, before app.js (see board.js): its constants are set before app.js runs,
// and app.js's wiring calls initMoney().

// How often the page asks about a payment it waits for. The server asks the provider at most
// once per 10 s per payment however often it is asked, so this only sets how soon the page
// shows an answer the server already has.
const PAYMENT_POLL_MS = 2000;
// How long the page waits for a payment before it stops asking and offers "Check again".
const PAYMENT_WAIT_MS = 10 * 60 * 1000;
// Failed asks in a row (the server unreachable or unavailable) after which the page stops.
const PAYMENT_FAILURES_MAX = 15;
// Statuses after which a payment no longer changes by itself.
const PAYMENT_PENDING = "pending";
// What each provider's button says.
const PROVIDER_LABELS = {
  stripe: "Pay by card (Stripe)",
  btcpay: "Pay in Bitcoin or Lightning (BTCPay)",
  test: "Pay with the test provider (test mode)",
};

const moneyState = {
  providers: null, // GET /v1/payments/providers: [] when the server takes no payments
  waiting: null,   // {id, started, timer, failures}: the payment the page waits for
  creating: false,
};

function providerLabel(p) {
  const label = PROVIDER_LABELS[p.provider] || ("Pay with " + p.provider);
  return p.test_mode && !/test mode/.test(label) ? label + " (test mode)" : label;
}

// Whether members can add money here (after the providers were loaded).
function canAddMoney() {
  return Array.isArray(moneyState.providers) && moneyState.providers.length > 0;
}

// What a member short of money should do, in words, to end a sentence.
function topUpWords() {
  return canAddMoney() ? "add money to your account (Add money, in the wallet)" : "ask the operator to credit your account";
}

// A debt in words, or "" when the balance is not below zero.
function debtWords(balance) {
  if (typeof balance !== "number" || balance >= 0) return "";
  return "You owe " + money(-balance) + "; purchases are refused until it is paid.";
}

function renderDebt(a) {
  const text = a ? debtWords(a.balance) : "";
  $("debt").textContent = text ? text + " Add money to pay it." : "";
  $("debt").hidden = !text;
  $("balance").classList.toggle("owing", !!text);
}

// The bounds of one payment over every provider, for the amount field's hint.
function paymentBounds() {
  const list = moneyState.providers || [];
  if (!list.length) return null;
  return {
    min: Math.min(...list.map((p) => p.min)),
    max: Math.max(...list.map((p) => p.max)),
    currency: list[0].currency,
  };
}

function renderProviders() {
  const list = moneyState.providers;
  const none = Array.isArray(list) && list.length === 0;
  $("add-money-none").hidden = !none;
  $("add-money-form").hidden = !canAddMoney();
  $("signed-out-how").textContent = canAddMoney()
    ? "Create an account (free), add money to it, then buy stamps here."
    : "Create an account (free), ask the operator to credit it, then buy stamps here.";
  const buttons = $("add-money-buttons");
  buttons.textContent = "";
  if (!canAddMoney()) return;
  for (const p of list) {
    const b = document.createElement("button");
    b.type = "button";
    b.id = "pay-" + p.provider;
    b.className = p.test_mode ? "secondary" : "";
    b.textContent = providerLabel(p);
    b.addEventListener("click", () => addMoney(p));
    buttons.append(b);
  }
  const bounds = paymentBounds();
  const field = $("add-amount");
  field.min = String(bounds.min);
  field.max = String(bounds.max);
  if (!field.value) field.value = String(Math.min(Math.max(500, bounds.min), bounds.max));
  const c = bounds.currency || "";
  // The field takes minor units; an ISO currency is shown in decimals, so say how they match.
  $("add-amount-label").textContent = isoMoney(1, c) !== null
    ? "Amount, in minor units of " + c.toUpperCase() + " (500 is " + money(500, c) + ")"
    : "Amount, in " + (c || "minor units");
  let hint = "From " + money(bounds.min, bounds.currency) + " to " + money(bounds.max, bounds.currency) + ".";
  if (list.some((p) => p.test_mode)) {
    hint += " Test mode: the test provider moves no money; its page has a “Pay (test mode)” button.";
  }
  $("add-money-bounds").textContent = hint;
}

async function loadProviders() {
  const r = await api("GET", "/v1/payments/providers");
  if (r.ok && Array.isArray(r.data.providers)) {
    moneyState.providers = r.data.providers.filter((p) => p && typeof p.provider === "string");
  } else if (r.status === 404) {
    moneyState.providers = []; // a server without payments
  } else {
    moneyState.providers = null;
    $("add-money-none").hidden = false;
    $("add-money-none").textContent = "Could not load the ways to pay. " + words(r, "payment");
    $("add-money-form").hidden = true;
    return;
  }
  $("add-money-none").textContent = "This server takes no payments online: ask the operator to credit your account.";
  renderProviders();
}

function amountToAdd() {
  const raw = $("add-amount").value.trim();
  const n = Number(raw);
  return raw !== "" && Number.isInteger(n) && n > 0 ? n : null;
}

// Creates a payment with provider `p` and opens its pay_url (this tab: the provider sends the
// member back to /?payment=<id>).
async function addMoney(p) {
  if (moneyState.creating) return;
  const key = apiKey();
  if (!key) { say("First create an account or paste your API key.", "error"); return; }
  const amount = amountToAdd();
  if (amount === null || amount < p.min || amount > p.max) {
    say("Choose a whole amount from " + money(p.min, p.currency) + " to " + money(p.max, p.currency) + " to pay with " + p.provider + ".", "error");
    $("add-amount").focus();
    return;
  }
  moneyState.creating = true;
  for (const b of $("add-money-buttons").querySelectorAll("button")) b.disabled = true;
  let r;
  try {
    r = await api("POST", "/v1/payments", {
      key, body: { provider: p.provider, amount }, headers: { "Idempotency-Key": newRequestId() },
    });
  } finally {
    moneyState.creating = false;
    for (const b of $("add-money-buttons").querySelectorAll("button")) b.disabled = false;
  }
  if (!r.ok) {
    if (r.problem.code === "unauthorized") { await loadAccount(); return; }
    if (r.problem.code === "service_unavailable") {
      say("The payment provider (" + p.provider + ") could not be reached. Nothing was charged and nothing is pending: try again in a minute.", "error");
      return;
    }
    say("The payment could not be started. " + words(r, "payment"), "error");
    return;
  }
  const url = typeof r.data.pay_url === "string" ? r.data.pay_url : "";
  if (!/^https?:\/\//i.test(url) && !url.startsWith("/")) {
    say("The server gave no address to pay at. Nothing was charged; tell the operator.", "error");
    return;
  }
  say("Opening the payment page for " + money(amount, p.currency) + (p.test_mode ? " (test mode)" : "") + "…", "ok");
  window.location.assign(url);
}

// The payment id of a return from a provider (/?payment=<id>), or null.
function returningPayment() {
  const id = new URLSearchParams(window.location.search).get("payment");
  return id && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id) ? id.toLowerCase() : null;
}

function showPaymentStatus(text) {
  $("payment-status").textContent = text;
  $("payment-status").hidden = !text;
  $("payment-check").hidden = true;
}

// Waits for the payment `id`: asks now, then every PAYMENT_POLL_MS while it is pending, for
// at most PAYMENT_WAIT_MS.
function waitForPayment(id) {
  if (moneyState.waiting) clearTimeout(moneyState.waiting.timer);
  moneyState.waiting = { id, started: Date.now(), timer: null, failures: 0 };
  showPaymentStatus("Checking your payment…");
  checkPayment();
}

async function checkPayment() {
  const w = moneyState.waiting;
  if (!w) return;
  const key = apiKey();
  if (!key) {
    // The wallet's "Add money" is hidden without a key: say it at the top as well.
    const text = "Your payment is known only to the account that made it: paste that account's API key in the wallet to see it.";
    stopWaiting(text, true);
    say(text, "error");
    return;
  }
  const r = await api("GET", "/v1/payments/" + encodeURIComponent(w.id), { key });
  if (moneyState.waiting !== w) return; // another wait began meanwhile
  if (r.ok) {
    w.failures = 0;
    const p = r.data;
    const what = money(Number(p.amount) || 0, p.currency) + (p.test_mode || p.provider === "test" ? " (test mode)" : "");
    if (p.status === "paid") {
      moneyState.waiting = null;
      await loadAccount();
      const balance = state.account ? " Your balance is now " + money(state.account.balance) + "." : "";
      const debt = state.account ? debtWords(state.account.balance) : "";
      showPaymentStatus("Paid: " + what + " added to your account.");
      say("Your payment of " + what + " arrived." + balance + (debt ? " " + debt : ""), debt ? "error" : "ok");
      forgetReturn();
      renderBuyTotal();
      return;
    }
    if (p.status !== PAYMENT_PENDING) {
      const why = {
        expired: "Your payment of " + what + " expired before it was paid. Nothing was charged; start a new one to add money.",
        failed: "Your payment of " + what + " failed, so nothing was added. If money did leave your account, tell the operator the payment id " + w.id + ".",
        refunded: "Your payment of " + what + " was refunded: the money went back to you and was taken off your balance.",
        disputed: "Your payment of " + what + " is disputed with the card issuer; its money was taken off your balance.",
      }[p.status] || ("Your payment of " + what + " is " + p.status + ".");
      stopWaiting(why);
      say(why, "error");
      forgetReturn();
      loadAccount();
      return;
    }
    showPaymentStatus("Waiting for your payment of " + what + " to arrive (" + Math.round((Date.now() - w.started) / 1000) + " s)…");
  } else if (r.problem.code === "not_found") {
    stopWaiting("That payment is not one of this account's. Use the API key of the account that paid.");
    forgetReturn();
    return;
  } else if (r.problem.code === "unauthorized") {
    stopWaiting("");
    await loadAccount(); // it says why and forgets the key
    return;
  } else {
    w.failures += 1;
    showPaymentStatus("Waiting for your payment… (" + words(r, "payment") + ")");
    if (w.failures >= PAYMENT_FAILURES_MAX) {
      stopWaiting("Could not ask the server about your payment. " + words(r, "payment") + " It is credited when paid: check again later.", true);
      return;
    }
  }
  if (Date.now() - w.started + PAYMENT_POLL_MS > PAYMENT_WAIT_MS) {
    stopWaiting("Your payment has not arrived after " + duration(PAYMENT_WAIT_MS / 1000) +
      ", so the page stopped asking. It is credited as soon as it is paid: check again later.", true);
    return;
  }
  w.timer = setTimeout(checkPayment, PAYMENT_POLL_MS);
}

// Stops waiting, saying `text`; `again` offers a "Check again" button.
function stopWaiting(text, again) {
  const w = moneyState.waiting;
  if (w) clearTimeout(w.timer);
  moneyState.waiting = again ? Object.assign({}, w, { stopped: true }) : null;
  showPaymentStatus(text);
  $("payment-check").hidden = !again;
}

// After a final answer the address loses its ?payment=, so a reload does not ask again.
function forgetReturn() {
  if (returningPayment() && window.history && history.replaceState) {
    history.replaceState(null, "", window.location.pathname);
  }
}

function checkAgain() {
  const w = moneyState.waiting;
  if (w) waitForPayment(w.id);
}

function initMoney() {
  $("payment-check").addEventListener("click", checkAgain);
  $("add-money-form").addEventListener("submit", (e) => e.preventDefault());
  loadProviders();
  const id = returningPayment();
  if (id) waitForPayment(id);
}
