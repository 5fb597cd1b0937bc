"use strict";
// pennypost's page: the board, a stamp wallet and the ledger. Plain JavaScript, no build step.
// Everything from the server is put on the page with textContent, never as HTML.
//
// Before a post or vote the page asks POST /v1/quote what it costs, says the price in words,
// and asks the member to agree when it is above the usual cost or needs stamps they do not
// hold (which it then buys). It spends exactly the quoted number of stamps, all bought by one
// account, as the server requires.

// /app.js is five files, in this order: src/web/wallet.js (the wallet's storage, shared with
// the gate's script), board.js (the board), ledger.js (the ledger panel), money.js ("Add
// money" and debts), then this one, which declares the rest and wires it all up at its end.
// The files before this one only declare functions and constants, so what they use of this
// file is read when they run.
const {
  STORE, DEAD_STAMP_CODES, readStore, writeStore, apiKey, newRequestId, heldStamps, readBuyers,
  saveStamps, addStamps, removeStamps, claimUnknownStamps,
} = window.PennypostWallet;
window.PennypostWallet.onChange(() => renderCounts());

// Fixed server limits (docs/api.md, "Limits"): stamps one post or vote can carry, and stamps
// one purchase can buy.
const STAMPS_PER_REQUEST_MAX = 100;
const PURCHASE_MAX = 1000;

const state = {
  prices: null,        // GET /v1/prices
  account: null,       // GET /v1/account
  nextBefore: null,    // cursor for "Load older"
  olderLoaded: false,  // whether pages beyond the first are on screen
  reserved: new Set(), // stamps attached to a request still in flight
  buying: false,
  postQuote: null,     // {stamps, key}: the last quote of the member's next post
  voteQuotes: new Map(), // post id -> stamps the member's next vote on it costs
  confirm: null,       // the resolver of the question on screen
  auditRetry: null,    // timer asking GET /v1/audit again while it catches up
};

const $ = (id) => document.getElementById(id);

// ---------- words ----------

const NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"];
const ORDINAL_WORDS = ["zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"];

// "1 stamp", "2 stamps"; `many` is the plural when it is not `word` + "s".
function plural(n, word, many) {
  word = word || "stamp";
  return n + " " + (n === 1 ? word : many || word + "s");
}

function entries(n) { return plural(n, "entry", "entries"); }

function ordinal(n) {
  if (n < ORDINAL_WORDS.length) return ORDINAL_WORDS[n];
  const tens = n % 100;
  const suffix = tens >= 11 && tens <= 13 ? "th" : ["th", "st", "nd", "rd"][n % 10] || "th";
  return n + suffix;
}

// 600 -> "ten minutes", 3600 -> "one hour", 90 -> "90 seconds".
function duration(secs) {
  const units = [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
  for (const [size, unit] of units) {
    if (secs >= size && secs % size === 0) {
      const n = secs / size;
      return (n < NUMBER_WORDS.length ? NUMBER_WORDS[n] : String(n)) + " " + (n === 1 ? unit : unit + "s");
    }
  }
  return plural(secs, "second");
}

function currency() {
  return (state.prices && state.prices.currency) || (state.account && state.account.currency) || "";
}

// An amount of minor units in words: in an ISO 4217 currency as its decimal ("USD 5.00", what
// a member recognises), otherwise as the server names its unit ("500 cents").
// `c` is the currency when the amount's own answer names it; else the server's.
function money(n, c) {
  c = c || currency();
  const iso = isoMoney(n, c);
  if (iso !== null) return iso;
  return n + " " + (n === 1 && /s$/.test(c) ? c.slice(0, -1) : c);
}

function isoMoney(n, code) {
  if (!/^[A-Za-z]{3}$/.test(code) || typeof Intl === "undefined" || typeof Intl.supportedValuesOf !== "function") return null;
  try {
    // Only the codes the browser knows as currencies: `BTC` counted in satoshis is none.
    if (!Intl.supportedValuesOf("currency").includes(code.toUpperCase())) return null;
    const f = new Intl.NumberFormat("en", { style: "currency", currency: code.toUpperCase(), currencyDisplay: "code" });
    return f.format(n / Math.pow(10, f.resolvedOptions().maximumFractionDigits));
  } catch (e) {
    return null; // not a currency code Intl knows
  }
}

function say(text, kind) {
  const m = $("message");
  m.textContent = text;
  m.className = kind || "";
}

function policy() {
  return state.prices && state.prices.policy ? state.prices.policy : null;
}

// How many earlier posts in the window make a post cost `n`, or null when `n` is no flood price.
function floodCount(n) {
  const p = policy();
  if (!p || p.repeat_factor <= 1 || p.post_cost < 1) return null;
  let price = p.post_cost;
  for (let k = 0; k <= 64; k++) {
    if (price === n) return k;
    if (price > n) return null;
    price *= p.repeat_factor;
  }
  return null;
}

// Which vote of the member's on one post costs `n` (quadratic pricing), or null.
function voteNumber(n) {
  const p = policy();
  if (!p || p.vote_pricing !== "quadratic" || p.vote_cost < 1 || n % p.vote_cost !== 0) return null;
  const odd = n / p.vote_cost;
  return odd % 2 === 1 ? (odd + 1) / 2 : null;
}

// The price of a post or vote in words: "This post costs 4 stamps: your third in ten minutes."
function priceWords(what, n) {
  const p = policy();
  const verb = n > STAMPS_PER_REQUEST_MAX ? " would cost " : " costs ";
  if (what === "post") {
    const k = floodCount(n);
    let s = "This post" + verb + plural(n);
    if (k !== null && k > 0) {
      s += ": your " + ordinal(k + 1) + " in " + duration(p.repeat_window_secs) + ". Each post within " +
        duration(p.repeat_window_secs) + " of your others costs " + (p.repeat_factor === 2 ? "twice" : p.repeat_factor + " times") +
        " as much as the one before; after " + duration(p.repeat_window_secs) + " without posting, a post costs " +
        plural(p.post_cost) + " again.";
    } else {
      s += ".";
    }
    return s;
  }
  const m = voteNumber(n);
  if (m !== null && m > 1) {
    return "Your " + ordinal(m) + " vote on this post" + verb + plural(n) + ": each further vote of yours on one post costs more (" +
      [1, 3, 5, 7].map((x) => x * p.vote_cost).join(", ") + " … stamps), so many votes from one member cost a lot.";
  }
  return "This vote" + verb + plural(n) + ".";
}

function policyWords() {
  const p = policy();
  if (!p) return "";
  let s = "One stamp costs " + money(p.stamp_price) + ". A post costs " + plural(p.post_cost);
  if (p.repeat_factor > 1 && p.repeat_window_secs > 0) {
    s += ", and each further post within " + duration(p.repeat_window_secs) + " costs " +
      (p.repeat_factor === 2 ? "twice" : p.repeat_factor + " times") + " the one before";
  }
  s += ". A vote costs " + plural(p.vote_cost);
  if (p.vote_pricing === "quadratic") s += ", and your second, third … vote on the same post cost 3, 5 … times that";
  s += ".";
  if (p.refund_voters > 0) {
    s += " When " + plural(p.refund_voters, "other member") + " up-vote a post, its author gets the post's base postage back.";
  }
  return s;
}

// ---------- the wallet's stamps: see wallet.js ----------

function me() {
  return apiKey() && state.account ? state.account.account_id : null;
}

// The stamps one request can spend, all bought by one account: the member's own when an API
// key is in use; otherwise those of the buyer of the first stamp held.
function spendable() {
  const free = heldStamps().filter((s) => !state.reserved.has(s));
  const buyers = readBuyers();
  const mine = me();
  if (mine) return free.filter((s) => buyers[s] === mine);
  if (!free.length) return [];
  const first = buyers[free[0]] || "";
  return free.filter((s) => (buyers[s] || "") === first);
}

function cost(action) {
  const c = state.prices && state.prices.costs ? state.prices.costs[action] : undefined;
  return Number.isInteger(c) && c >= 0 ? c : null;
}

// ---------- talking to the server ----------

async function api(method, path, opts) {
  opts = opts || {};
  const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (opts.key) headers.Authorization = "Bearer " + opts.key;
  let response;
  let text;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      cache: "no-store",
    });
    text = await response.text();
  } catch (e) {
    return { ok: false, network: true, status: 0, problem: { code: "network_error" } };
  }
  let data = null;
  if (!opts.text || !response.ok) {
    try { data = JSON.parse(text); } catch (e) { data = null; }
  }
  if (response.ok) return { ok: true, status: response.status, data: opts.text ? text : (data || {}) };
  let problem = data && typeof data === "object" ? data : {};
  if (typeof problem.code !== "string") {
    const code = response.status === 503 ? "service_unavailable"
      : response.status >= 500 ? "internal_error"
      : response.status === 429 ? "rate_limited" : "http_" + response.status;
    problem = Object.assign({}, problem, { code });
  }
  return { ok: false, status: response.status, problem, retryAfter: response.headers.get("Retry-After") };
}

// A problem in words a forum member understands; `what` says what was being done.
function words(r, what) {
  const p = r.problem || {};
  const detail = typeof p.detail === "string" && p.detail ? p.detail : "";
  switch (p.code) {
    case "bad_request":
      return "The server could not accept that" + (detail ? ": " + detail : "") + ".";
    case "unauthorized":
      return "That API key was not accepted. Check that you pasted the whole key, or create a new account.";
    case "insufficient_funds": {
      const debt = state.account ? debtWords(state.account.balance) : "";
      if (debt) return debt + " To buy stamps, " + topUpWords() + ".";
      let s = "Your balance is too low to buy that many stamps.";
      if (state.account && state.prices) {
        s += " Your balance is " + money(state.account.balance) + " and one stamp costs " + money(state.prices.stamp_price) + ".";
      }
      const how = topUpWords();
      return s + " " + how.charAt(0).toUpperCase() + how.slice(1) + ".";
    }
    case "not_found":
      return what === "vote" ? "That post no longer exists, so the vote was not made. Nothing was spent."
        : what === "account" ? "The server no longer knows this account."
        : "The server could not find that.";
    case "stamp_already_spent":
      return "A stamp in your wallet had already been used (in another tab or device, or by an earlier try that did go through).";
    case "invalid_stamp":
      return "A stamp in your wallet is not a valid stamp for this server.";
    case "unknown_key":
      return "A stamp in your wallet was signed by a key this server does not know (it may come from another server).";
    case "bad_signature":
      return "A stamp in your wallet is damaged: its signature does not check out.";
    case "stamp_expired":
      return "A stamp in your wallet has expired.";
    case "idempotency_conflict":
      return "That purchase clashed with an earlier request that had the same request id. Nothing more was charged; click Buy again.";
    case "payload_too_large":
      return "That is too long to send. Shorten it and try again.";
    case "wrong_stamp_count":
      return Number.isInteger(p.required)
        ? "The price changed: this " + (what === "vote" ? "vote" : "post") + " now costs " + plural(p.required) + ". Nothing was spent."
        : "The price of this action changed on the server. Nothing was spent: please try again.";
    case "mixed_payers":
      return "The stamps for one " + (what === "vote" ? "vote" : "post") + " must all be bought by the same account, and these were bought by " +
        "different accounts. Nothing was spent. Stamps of another account are spent when you use that account's API key here.";
    case "name_taken":
      return "That name is already taken by another account. Choose another name.";
    case "rate_limited": {
      const secs = parseInt(r.retryAfter, 10);
      return "Too many requests from here. Wait " + (secs > 0 ? plural(secs, "second") : "a minute") + " and try again.";
    }
    case "method_not_allowed":
      return "The page asked the server for something it does not offer. Reload the page; if it keeps happening, tell the operator.";
    case "request_timeout":
      return "The server took too long to answer. Try again in a moment.";
    case "audit_catching_up":
      return "The server is still checking its ledger after a restart. The result will show in a moment.";
    case "service_unavailable":
      return "The server cannot take changes right now (it may be restarting). Try again in a minute.";
    case "internal_error":
      return "The server had a problem and could not finish. Try again in a moment; if it keeps happening, tell the operator.";
    case "network_error":
      return "Could not reach the server. Check your connection and try again.";
    default:
      return detail || p.title || ("The server answered with an error (" + (p.code || r.status) + ").");
  }
}

// ---------- asking the member ----------

// Shows `text` with a yes button labelled `yes` and a Cancel button; resolves to the answer.
// A new question replaces one still on screen (which counts as Cancel).
function ask(text, yes) {
  if (state.confirm) state.confirm(false);
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = yes;
  $("confirm").hidden = false;
  $("confirm-yes").focus();
  return new Promise((resolve) => {
    state.confirm = (answer) => {
      state.confirm = null;
      $("confirm").hidden = true;
      resolve(answer);
    };
  });
}

function answer(yes) {
  if (state.confirm) state.confirm(yes);
}

// ---------- rendering ----------

function renderCounts() {
  const held = heldStamps().length;
  $("stamp-count").textContent = String(held);
  $("stamp-count-label").textContent = (held === 1 ? "stamp" : "stamps") + " held in this browser";
  for (const el of document.querySelectorAll(".held-count")) el.textContent = String(held);
  for (const el of document.querySelectorAll(".held-word")) el.textContent = held === 1 ? "stamp" : "stamps";

  const mine = me();
  const buyers = readBuyers();
  const foreign = mine ? heldStamps().filter((s) => typeof buyers[s] === "string" && buyers[s] !== mine).length : 0;
  $("foreign-hint").hidden = foreign === 0;
  $("foreign-hint").textContent = foreign === 0 ? "" : plural(foreign) + " of these " + (foreign === 1 ? "was" : "were") +
    " bought by another account. One post or vote is paid by one account, so " + (foreign === 1 ? "it is" : "they are") +
    " spent only when you use that account's API key here (or forget this one).";

  const base = cost("post");
  const quoted = state.postQuote && state.postQuote.key === apiKey() ? state.postQuote.stamps : null;
  const post = quoted !== null ? quoted : base;
  $("post-submit").textContent = post === null ? "Post (loading price…)" : "Post (" + plural(post) + ")";
  const k = quoted !== null ? floodCount(quoted) : null;
  $("post-price").textContent = post === null ? ""
    : (quoted !== null && base !== null && quoted > base && k !== null && k > 0
      ? "Your next post costs " + plural(quoted) + ": it would be your " + ordinal(k + 1) + " in " + duration(policy().repeat_window_secs) + "."
      : "Your next post costs " + plural(post) + ".") + " You have " + plural(spendable().length) + " to spend.";

  const vote = cost("vote");
  for (const li of document.querySelectorAll("#posts .post")) {
    const n = state.voteQuotes.has(li.dataset.postId) ? state.voteQuotes.get(li.dataset.postId) : vote;
    const price = n === null ? "" : " (" + plural(n) + ")";
    const title = n === null ? "" : "Costs " + plural(n) + " — you have " + held;
    for (const [css, label, aria] of [[".vote-up", "▲ Up", "Vote up"], [".vote-down", "▼ Down", "Vote down"]]) {
      const b = li.querySelector(css);
      b.textContent = label + price;
      b.title = title;
      b.setAttribute("aria-label", aria + (title ? ", " + title.toLowerCase() : ""));
    }
  }
  $("vote-hint").textContent = "Newest first." + (vote === null ? "" :
    " A vote costs " + plural(vote) + (policy() && policy().vote_pricing === "quadratic" ? "; your further votes on the same post cost more" : "") +
    ". You have " + held + ".");
  renderBuyTotal();
}

function buyCount() {
  const raw = $("buy-count").value.trim();
  const n = Number(raw);
  return raw !== "" && Number.isInteger(n) && n >= 1 && n <= PURCHASE_MAX ? n : null;
}

function renderBuyTotal() {
  const n = buyCount();
  if (!state.prices || n === null) {
    $("buy-total").textContent = state.prices ? "Choose a whole number from 1 to 1000." : "";
    $("buy").textContent = "Buy stamps";
    return;
  }
  const total = n * state.prices.stamp_price;
  let text = plural(n) + " × " + money(state.prices.stamp_price) + " = " + money(total) + ".";
  if (state.account && typeof state.account.balance === "number") {
    text += total > state.account.balance
      ? " Your balance (" + money(state.account.balance) + ") is not enough."
      : " Your balance after: " + money(state.account.balance - total) + ".";
  }
  $("buy-total").textContent = text;
  $("buy").textContent = "Buy " + plural(n) + " for " + money(total);
}

function renderPrices() {
  const p = state.prices;
  if (!p) return;
  $("prices").textContent = "One stamp costs " + money(p.stamp_price) + ". A post usually costs " +
    plural(p.costs.post) + ", a vote " + plural(p.costs.vote) + ".";
  $("policy-words").textContent = policyWords();
  renderCounts();
}

function readPending() {
  try {
    const p = JSON.parse(readStore(STORE.pending) || "null");
    return p && typeof p.id === "string" && Number.isInteger(p.count) ? p : null;
  } catch (e) {
    return null;
  }
}

function renderPending() {
  const p = readPending();
  const hint = $("pending-hint");
  hint.hidden = !p;
  if (p) {
    hint.textContent = "A purchase of " + plural(p.count) + " may not have finished. Buy " +
      plural(p.count) + " again to finish it: if it did go through, you get those stamps without paying twice.";
  }
}

function renderSignedIn() {
  const key = apiKey();
  $("signed-out").hidden = !!key;
  $("signed-in").hidden = !key;
  renderPostAs();
}

// Who a post will be written by: the account's name, verified, when the member uses the API
// key of a named account; otherwise the name typed, not verified.
function postAs() {
  const key = apiKey();
  const a = state.account;
  if (key && a && a.name) return { key, name: a.name, verified: true };
  return { key: null, name: $("post-author").value.trim(), verified: false };
}

function renderPostAs() {
  const who = postAs();
  $("post-as").hidden = !who.verified;
  $("post-author-row").hidden = who.verified;
  $("post-as-name").textContent = who.verified ? who.name : "";
  $("post-author-hint").textContent = apiKey() && state.account && !state.account.name
    ? "This account has no name, so your posts show the name you type, marked as not verified."
    : "Without an account's API key, the name you type is shown as not verified.";
}

function renderAccount(a) {
  const before = state.account ? state.account.account_id : null;
  if (!a || a.account_id !== before) state.voteQuotes.clear();
  state.account = a;
  if (a && apiKey()) claimUnknownStamps(a.account_id);
  $("account-id").textContent = a ? a.account_id : "";
  $("account-name-shown").textContent = a && a.name ? a.name : "–";
  $("balance").textContent = a ? money(a.balance) : "–";
  $("stamps-purchased").textContent = a ? String(a.stamps_purchased) : "–";
  $("stamps-spent").textContent = a ? String(a.stamps_spent) : "–";
  $("refunds-total").textContent = a ? money(a.refunds_total || 0) : "–";
  renderDebt(a);
  renderPostAs();
  renderCounts();
}

// ---------- the account ----------

async function loadPrices() {
  const r = await api("GET", "/v1/prices");
  if (!r.ok || !r.data.costs) {
    $("prices").textContent = "Could not load prices.";
    say("Could not load stamp prices. " + words(r, "prices"), "error");
    return false;
  }
  state.prices = r.data;
  renderPrices();
  return true;
}

async function loadAccount() {
  renderSignedIn();
  const key = apiKey();
  if (!key) { renderAccount(null); return; }
  const r = await api("GET", "/v1/account", { key });
  if (key !== apiKey()) return; // the key changed meanwhile
  if (!r.ok) {
    if (r.problem.code === "unauthorized" || r.problem.code === "not_found") {
      writeStore(STORE.key, null);
      writeStore(STORE.pending, null);
      renderSignedIn();
      renderAccount(null);
      renderPending();
      say("The saved API key is no longer accepted, so this browser forgot it. Your stamps are still in the wallet.", "error");
    } else {
      say("Could not load your account. " + words(r, "account"), "error");
    }
    return;
  }
  renderAccount(r.data);
}

// Asks what the member's next post costs, to show it on the Post button (spends nothing).
async function loadPostPrice() {
  const key = apiKey();
  const stamps = spendable();
  const body = { action: "post" };
  if (!key) {
    if (!stamps.length) { state.postQuote = null; renderCounts(); return; }
    body.stamp = stamps[0];
  }
  const r = await api("POST", "/v1/quote", { key: key || undefined, body });
  state.postQuote = r.ok && Number.isFinite(r.data.stamps) ? { stamps: r.data.stamps, key } : null;
  renderCounts();
}

async function refreshAll() {
  await Promise.all([loadBoard(false), loadAccount().then(loadPostPrice), loadLedger()]);
}

// ---------- spending stamps ----------

// The server said a stamp in `used` can never be spent; find which (verifying spends nothing).
async function deadAmong(used) {
  if (used.length === 1) return used.slice();
  const dead = [];
  for (const stamp of used) {
    const v = await api("POST", "/v1/stamps/verify", { body: { stamp } });
    if (v.ok && v.data.valid === false) dead.push(stamp);
  }
  // If none can be singled out, drop all that the server refused rather than fail forever.
  return dead.length ? dead : used.slice();
}

// What `what` costs the member now (POST /v1/quote), or null having said why not.
async function quote(what, postId) {
  const key = apiKey();
  const body = { action: what };
  if (what === "vote") body.post_id = postId;
  if (!key) {
    const stamps = spendable();
    if (!stamps.length) {
      say("You are out of stamps: " + (what === "post" ? "a post" : "a vote") + " costs at least " + plural(cost(what) || 1) +
        " and you have none. To buy some, create an account or paste your API key in the wallet.", "error");
      return null;
    }
    body.stamp = stamps[0];
  }
  const r = await api("POST", "/v1/quote", { key: key || undefined, body });
  if (r.ok && Number.isFinite(r.data.stamps)) return r.data.stamps;
  if (!key && DEAD_STAMP_CODES.has(r.problem.code)) {
    removeStamps([body.stamp]);
    say(words(r, what) + " It was removed from your wallet; nothing was spent. Try again.", "error");
    return null;
  }
  if (r.problem.code === "unauthorized") { await loadAccount(); return null; }
  say("Could not find out what this " + what + " costs. " + words(r, what), "error");
  if (r.problem.code === "not_found") loadBoard(false);
  return null;
}

// Buys `count` stamps with the member's API key. Returns true, or false having said why.
// A fresh request id per purchase; only when an earlier purchase of the same count got no
// answer (network failure or 5xx) is its id reused, so the server answers that purchase again
// instead of charging twice.
async function purchase(count) {
  const key = apiKey();
  if (!key) { say("First create an account or paste your API key.", "error"); return false; }
  if (!state.account) await loadAccount();
  if (!state.account) return false;
  const buyer = state.account.account_id;
  const pending = readPending();
  const id = pending && pending.count === count ? pending.id : newRequestId();
  writeStore(STORE.pending, JSON.stringify({ id, count }));
  state.buying = true;
  $("buy").disabled = true;
  let r;
  try {
    r = await api("POST", "/v1/stamps/purchase", { key, body: { count }, headers: { "Idempotency-Key": id } });
  } finally {
    state.buying = false;
    $("buy").disabled = false;
  }
  if (r.ok) {
    const stamps = Array.isArray(r.data.stamps) ? r.data.stamps : [];
    if (!addStamps(stamps, buyer)) {
      renderPending();
      say("The stamps were bought, but this browser refused to store them (its storage is full or disabled). " +
        "Free some space, then buy " + plural(count) + " again: you will get these stamps without paying twice.", "error");
      return false;
    }
    writeStore(STORE.pending, null);
    renderPending();
    if (state.account && typeof r.data.balance === "number") {
      renderAccount(Object.assign({}, state.account, { balance: r.data.balance }));
    }
    return r;
  }
  const unknownOutcome = r.network || r.status >= 500;
  if (!unknownOutcome) writeStore(STORE.pending, null);
  renderPending();
  if (r.problem.code === "unauthorized") { await loadAccount(); return false; } // it says why and forgets the key
  if (r.problem.code === "insufficient_funds") await loadAccount(); // so the message has the current balance
  let text = words(r, "buy");
  if (unknownOutcome) text += " If the purchase did go through, buy " + plural(count) + " again: you will get those stamps without paying twice.";
  say(text, "error");
  return false;
}

// Quotes, asks, buys what is missing, and spends exactly the price on one request: `send`
// makes the request from the stamps. Returns {r, n} on success, null otherwise (having told
// the member why). Stamps leave the wallet on 201, or when the server says they can never be
// spent; on any other failure (network, rate limit, 5xx) they stay.
async function act(what, postId, send, label) {
  say("");
  if (!state.prices && !(await loadPrices())) return null;
  if (apiKey() && !state.account) await loadAccount();
  if (apiKey() && !state.account) return null;
  let n = await quote(what, postId);
  if (n === null) return null;
  let changed = null; // the price the member agreed to before the server asked for another
  for (let attempt = 0; attempt < 2; attempt++) {
    const base = cost(what);
    const have = spendable().length;
    const missing = Math.max(0, n - have);
    let price = priceWords(what, n);
    if (changed !== null) {
      price = "The price changed before your " + what + " went out: it now costs " + plural(n) + ", not " + changed +
        (what === "post" ? " (you probably posted from another tab or device meanwhile)"
          : " (you probably voted on this post from another tab or device meanwhile)") + ". No stamp was spent. " + price;
    }
    if (n > STAMPS_PER_REQUEST_MAX) {
      say(price + " One " + what + " can carry at most " + STAMPS_PER_REQUEST_MAX + " stamps, so it cannot be paid" +
        (what === "post" ? ": wait until " + duration(policy().repeat_window_secs) + " have passed since your recent posts." : "."), "error");
      return null;
    }
    if (missing > 0) {
      const lacking = price + " You have " + (have === 0 ? "none" : plural(have)) + ", so you need " + missing + " more";
      if (!apiKey()) {
        say("You are out of stamps. " + lacking + ". To buy some, create an account or paste your API key in the wallet.", "error");
        return null;
      }
      const total = missing * state.prices.stamp_price;
      await loadAccount(); // the balance now: the operator may have credited it meanwhile
      if (!state.account) return null;
      if (state.account.balance < total) {
        say("You are out of stamps. " + lacking + ". Buying " + plural(missing) + " costs " + money(total) + ", and your balance is " +
          money(state.account.balance) + ": " + topUpWords() + ", then buy stamps.", "error");
        return null;
      }
      const yes = await ask(lacking + ": buy " + plural(missing) + " for " + money(total) + " (your balance is " +
        money(state.account.balance) + ") and " + label + "?", "Buy " + plural(missing) + " and " + label);
      if (!yes) { say("Nothing was bought or spent.", "ok"); return null; }
      if (!(await purchase(missing))) return null;
    } else if (changed !== null || base === null || n > base) {
      const yes = await ask(price + " You have " + plural(have) + ". " + label.charAt(0).toUpperCase() + label.slice(1) +
        " for " + plural(n) + "?", label.charAt(0).toUpperCase() + label.slice(1) + " for " + plural(n));
      if (!yes) { say("Nothing was spent.", "ok"); return null; }
    }

    const used = spendable().slice(0, n);
    if (used.length < n) {
      say("You are out of stamps: this " + what + " costs " + plural(n) + " and you have " + used.length +
        " free to spend (others may be in use by an action still in progress).", "error");
      return null;
    }
    for (const s of used) state.reserved.add(s);
    let r;
    try {
      r = await send(used);
    } finally {
      for (const s of used) state.reserved.delete(s);
    }
    if (r.ok) {
      removeStamps(used);
      return { r, n };
    }
    const code = r.problem.code;
    if (DEAD_STAMP_CODES.has(code)) {
      const dead = await deadAmong(used);
      removeStamps(dead);
      say(words(r, what) + " " + (dead.length === 1 ? "It was" : "They were") + " removed from your wallet (" +
        plural(dead.length) + "); you now hold " + heldStamps().length + ". Your " + what +
        " was not made and nothing else was spent: try again.", "error");
      return null;
    }
    renderCounts();
    if (code === "wrong_stamp_count" && attempt === 0 && Number.isInteger(r.problem.required)) {
      // The price moved between the quote and the request: ask again at the server's price.
      changed = n;
      n = r.problem.required;
      continue;
    }
    let text = words(r, what);
    if (r.network) text += " Your stamps are still in your wallet.";
    say(text, "error");
    if (code === "not_found") loadBoard(false);
    return null;
  }
  return null;
}

async function submitPost(event) {
  event.preventDefault();
  if (apiKey() && !state.account) await loadAccount();
  const who = postAs();
  const body = $("post-body").value;
  if (!who.name) { say("Write your name first.", "error"); $("post-author").focus(); return; }
  if (!body.trim()) { say("Write something to post first.", "error"); $("post-body").focus(); return; }
  const button = $("post-submit");
  if (button.disabled) return;
  button.disabled = true;
  let done;
  try {
    done = await act("post", null, (stamps) => api("POST", "/v1/posts", {
      key: who.key || undefined,
      body: who.key ? { body, stamps } : { author: who.name, body, stamps },
    }), "post");
  } finally {
    button.disabled = false;
  }
  if (!done) return;
  $("post-body").value = "";
  if (!who.verified) writeStore(STORE.author, who.name);
  say("Posted" + (done.r.data.verified ? " as " + done.r.data.author + " (verified)" : "") + ". It cost " +
    plural(done.n) + "; you have " + heldStamps().length + " left.", "ok");
  await refreshAll();
}

async function vote(li, direction) {
  const postId = li.dataset.postId;
  const buttons = li.querySelectorAll(".actions button");
  if (li.dataset.busy) return;
  li.dataset.busy = "1";
  for (const b of buttons) b.disabled = true;
  let done;
  try {
    done = await act("vote", postId, (stamps) => api("POST", "/v1/posts/" + encodeURIComponent(postId) + "/votes", {
      body: { direction, stamps },
    }), "vote " + direction);
    if (done && done.r.data.score !== undefined) li.querySelector(".score").textContent = String(done.r.data.score);
  } finally {
    delete li.dataset.busy;
    for (const b of buttons) b.disabled = false;
  }
  if (!done) return;
  let text = "Voted " + direction + ". It cost " + plural(done.n) + "; you have " + heldStamps().length + " left.";
  if (Number.isInteger(done.r.data.refund_ledger_index)) {
    text += " Your up-vote completed the votes this post needed: its author got the postage back.";
  }
  say(text, "ok");
  // The member's next vote on this post, for its buttons.
  if (apiKey()) {
    const q = await api("POST", "/v1/quote", { key: apiKey(), body: { action: "vote", post_id: postId } });
    if (q.ok && Number.isFinite(q.data.stamps)) state.voteQuotes.set(postId, q.data.stamps);
  }
  await refreshAll();
}

// ---------- buying ----------

async function buy(event) {
  event.preventDefault();
  if (state.buying) return;
  if (!apiKey()) { say("First create an account or paste your API key.", "error"); return; }
  const count = buyCount();
  if (count === null) { say("Choose a whole number of stamps from 1 to 1000.", "error"); $("buy-count").focus(); return; }
  if (!state.prices) await loadPrices();
  const r = await purchase(count);
  if (!r) return;
  say("Bought " + plural(r.data.count || count) + " for " + money(r.data.total) + ". You now hold " +
    heldStamps().length + ".", "ok");
  await refreshAll();
}

// ---------- the account: create, use a key, forget it ----------

async function createAccount(event) {
  event.preventDefault();
  const button = $("create-account");
  if (button.disabled) return;
  const name = $("account-name").value.trim();
  if (!name) { say("Choose a name first: your posts appear under it, marked as verified.", "error"); $("account-name").focus(); return; }
  button.disabled = true;
  let r;
  try {
    r = await api("POST", "/v1/accounts", { body: { name } });
  } finally {
    button.disabled = false;
  }
  if (!r.ok) {
    if (r.problem.code === "name_taken") {
      say("The name “" + name + "” is already taken by another account. Choose another name.", "error");
      $("account-name").focus();
    } else {
      say("Could not create the account. " + words(r, "account"), "error");
    }
    return;
  }
  if (!writeStore(STORE.key, r.data.api_key)) {
    say("The account was created, but this browser would not save its API key. Copy the key below now.", "error");
  }
  writeStore(STORE.pending, null);
  renderPending();
  $("api-key-shown").textContent = r.data.api_key;
  $("new-key").hidden = false;
  $("account-name").value = "";
  renderSignedIn();
  $("account-id").textContent = r.data.account_id;
  say("Account created for " + name + ". Copy your API key from the wallet now: it is shown only once. Then " +
    (canAddMoney() ? "add money in the wallet" : "ask the operator to credit account " + r.data.account_id) + " and buy stamps.", "ok");
  await loadAccount();
  loadPostPrice();
}

async function useKey(event) {
  event.preventDefault();
  const key = $("api-key-input").value.trim();
  if (!key) { say("Paste your API key first.", "error"); $("api-key-input").focus(); return; }
  const button = $("use-key");
  button.disabled = true;
  let r;
  try {
    r = await api("GET", "/v1/account", { key });
  } finally {
    button.disabled = false;
  }
  if (!r.ok) { say(words(r, "account"), "error"); return; }
  if (key !== apiKey()) writeStore(STORE.pending, null);
  writeStore(STORE.key, key);
  $("api-key-input").value = "";
  $("new-key").hidden = true;
  renderSignedIn();
  renderAccount(r.data);
  renderPending();
  say("Using your API key" + (r.data.name ? " (account " + r.data.name + ")" : "") + ".", "ok");
  loadPostPrice();
  checkAgain(); // a payment the page could not show without the key
}

function signOut() {
  writeStore(STORE.key, null);
  writeStore(STORE.pending, null);
  $("new-key").hidden = true;
  $("api-key-shown").textContent = "";
  state.voteQuotes.clear();
  renderSignedIn();
  renderAccount(null);
  renderPending();
  say("This browser forgot your API key. Your stamps stay in the wallet.", "ok");
  loadPostPrice();
}

async function copyKey() {
  const text = $("api-key-shown").textContent;
  try {
    await navigator.clipboard.writeText(text);
    say("API key copied. Keep it somewhere safe.", "ok");
  } catch (e) {
    const range = document.createRange();
    range.selectNodeContents($("api-key-shown"));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    say("The key is selected: copy it with Ctrl+C (or Cmd+C).", "ok");
  }
}

// ---------- wiring ----------

$("post-form").addEventListener("submit", submitPost);
$("post-body").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); $("post-form").requestSubmit(); }
});
// The flood price falls as time passes: ask again when the member starts writing.
$("post-body").addEventListener("focus", () => loadPostPrice());
$("buy-form").addEventListener("submit", buy);
$("buy-count").addEventListener("input", renderBuyTotal);
$("create-form").addEventListener("submit", createAccount);
$("key-form").addEventListener("submit", useKey);
$("sign-out").addEventListener("click", signOut);
$("copy-key").addEventListener("click", copyKey);
$("hide-key").addEventListener("click", () => { $("new-key").hidden = true; $("api-key-shown").textContent = ""; });
$("load-more").addEventListener("click", () => loadBoard(true));
$("refresh").addEventListener("click", () => refreshAll());
$("ledger-refresh").addEventListener("click", () => loadLedger());
$("confirm-yes").addEventListener("click", () => answer(true));
$("confirm-no").addEventListener("click", () => answer(false));
document.addEventListener("keydown", (e) => { if (e.key === "Escape") answer(false); });
window.addEventListener("storage", (e) => {
  if (e.key === STORE.stamps || e.key === STORE.buyers || e.key === null) renderCounts();
  if (e.key === STORE.key || e.key === null) loadAccount().then(loadPostPrice);
  if (e.key === STORE.pending) renderPending();
});

$("post-author").value = readStore(STORE.author) || "";
renderSignedIn();
renderCounts();
renderPending();
loadPrices();
loadAccount().then(loadPostPrice);
loadBoard(false);
loadLedger();
initMoney();
