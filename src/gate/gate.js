// pennypost's gate script (served as /.pennypost/gate.js after the shared wallet, wallet.js):
// one <script src="/.pennypost/gate.js"></script> in a site's pages makes every priced request
// pay by itself from the member's stamps in this origin's localStorage.
//
// - It reads the priced routes from /.pennypost/routes, and matches them as the gate does
//   (unreserved escapes decoded, empty segments dropped, ASCII case ignored; `*` one segment,
//   `**` any number; first match wins).
// - Forms whose method and action are priced get a note of the cost beside their submit
//   buttons; on submit the script adds a hidden `pennypost_stamps` field with the price.
//   Stamps a form took are remembered, and on the next page the mint is asked whether each was
//   spent: those the gate released come back to the wallet.
// - fetch and XMLHttpRequest calls to a priced route get the `Pennypost-Stamps` header. The
//   answer says what became of the stamps: the gate answers only after capture or release.
// - Short of stamps, it asks the member first, then buys the missing ones with the member's
//   API key (asked for once, kept like the board keeps it) through /.pennypost/mint/. A
//   priced call from script sent without stamps (the member bought none) that the gate
//   answers 402 gets a notice on the page: what it costs, and a link to the wallet.
// Nothing from the server is put on the page as HTML.

(function () {
  if (window.PennypostGate) return;
  const W = window.PennypostWallet;
  const MINT = "/.pennypost/mint/v1";
  const realFetch = window.fetch.bind(window);
  const reserved = new Set();
  let table = null;

  // ---------- the routes, matched as the gate matches them ----------

  function normalise(path) {
    const decoded = path.replace(/%([0-9A-Fa-f]{2})/g, (all, hex) => {
      const c = String.fromCharCode(parseInt(hex, 16));
      return /[A-Za-z0-9\-._~]/.test(c) ? c : "%" + hex.toUpperCase();
    });
    return decoded.split("/").filter((s) => s.length > 0).map((s) => s.toLowerCase());
  }

  function matches(parts, segments) {
    if (!parts.length) return segments.length === 0;
    const [part, ...rest] = parts;
    if (part === "**") {
      for (let skip = 0; skip <= segments.length; skip++) if (matches(rest, segments.slice(skip))) return true;
      return false;
    }
    if (!segments.length) return false;
    return (part === "*" || part === segments[0]) && matches(rest, segments.slice(1));
  }

  async function loadRoutes() {
    if (table) return table;
    try {
      const r = await realFetch("/.pennypost/routes", { cache: "no-store", headers: { Accept: "application/json" } });
      const data = await r.json();
      table = {
        routes: (data.routes || []).map((route) => Object.assign({}, route, { parts: normalise(route.path) })),
        wallet: data.wallet_url,
      };
    } catch (e) {
      table = { routes: [], wallet: null };
    }
    return table;
  }

  // The priced route of a request, or null (free, or another origin: stamps never leave it).
  function priceOf(method, url) {
    if (!table) return null;
    let target;
    try { target = new URL(url, document.baseURI); } catch (e) { return null; }
    if (target.origin !== location.origin) return null;
    const m = String(method || "GET").toUpperCase();
    const segments = normalise(target.pathname);
    if (segments[0] === ".pennypost") return null;
    // As the gate: a last segment's format suffix (`posts.json`) is read without it too.
    const readings = [segments];
    const last = segments[segments.length - 1] || "";
    const dot = last.lastIndexOf(".");
    if (dot > 0) readings.push(segments.slice(0, -1).concat([last.slice(0, dot)]));
    return table.routes.find((r) => r.method === m && readings.some((s) => matches(r.parts, s))) || null;
  }

  function captured(route, status) {
    return route.capture === "2xx" ? status >= 200 && status < 300 : status >= 200 && status < 400;
  }

  function stampsWord(n) { return n === 1 ? "1 stamp" : n + " stamps"; }

  // ---------- stamps ----------

  async function mint(method, path, key, body, headers) {
    const h = Object.assign({ Accept: "application/json" }, headers || {});
    if (key) h.Authorization = "Bearer " + key;
    if (body !== undefined) h["Content-Type"] = "application/json";
    try {
      const r = await realFetch(MINT + path, { method, headers: h, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
      let data = null;
      try { data = await r.json(); } catch (e) { data = null; }
      return { ok: r.ok, status: r.status, data: data || {} };
    } catch (e) {
      return { ok: false, status: 0, data: { code: "network_error" } };
    }
  }

  // `n` stamps taken from the wallet (reserved until `settle`), buying the missing ones after
  // asking; null if the member said no or they could not be had (having said why).
  async function take(n, what) {
    let free = W.heldStamps().filter((s) => !reserved.has(s));
    if (free.length < n) {
      const missing = n - free.length;
      let key = W.apiKey();
      const where = table && table.wallet ? " Stamps are sold at " + table.wallet + "." : "";
      if (!key) {
        key = window.prompt(what + " costs " + stampsWord(n) + " and this browser holds " + free.length +
          ". Paste your pennypost API key to buy " + stampsWord(missing) + "." + where);
        if (!key || !key.trim()) return null;
        key = key.trim();
      }
      const prices = await mint("GET", "/prices");
      const each = prices.ok && Number.isInteger(prices.data.stamp_price) ? prices.data.stamp_price : null;
      const total = each === null ? "" : " for " + each * missing + " " + (prices.data.currency || "");
      if (!window.confirm(what + " costs " + stampsWord(n) + " and you hold " + free.length + ". Buy " +
        stampsWord(missing) + total.trimEnd() + "?")) return null;
      const account = await mint("GET", "/account", key);
      if (!account.ok) { window.alert("That API key was not accepted: nothing was bought." + where); return null; }
      W.writeStore(W.STORE.key, key);
      const bought = await mint("POST", "/stamps/purchase", key, { count: missing }, { "Idempotency-Key": W.newRequestId() });
      if (!bought.ok || !Array.isArray(bought.data.stamps)) {
        window.alert("The stamps could not be bought (" + (bought.data.code || bought.status) + "): nothing was sent." + where);
        return null;
      }
      W.addStamps(bought.data.stamps, account.data.account_id);
      free = W.heldStamps().filter((s) => !reserved.has(s));
    }
    const used = free.slice(0, n);
    for (const s of used) reserved.add(s);
    return used;
  }

  // After the gate's answer: spent stamps leave the wallet; released ones stay.
  function settle(route, used, status, code) {
    for (const s of used) reserved.delete(s);
    if (captured(route, status) || W.DEAD_STAMP_CODES.has(code)) W.removeStamps(used);
    if (captured(route, status)) {
      const box = document.querySelector(".pennypost-notice");
      if (box) box.remove(); // paid: the notice of an earlier 402 is stale
    }
  }

  async function problemCode(response) {
    try { return (await response.clone().json()).code; } catch (e) { return undefined; }
  }

  // A priced call from script that the gate answered 402 (the member had too few stamps and
  // bought none): the site's widget shows the JSON answer to nobody, so the member is told
  // here what the action costs and where stamps are sold, as the gate's 402 page tells a form.
  function notice(route) {
    let box = document.querySelector(".pennypost-notice");
    if (!box) {
      box = document.createElement("div");
      box.className = "pennypost-notice";
      box.setAttribute("role", "alert");
      box.style.cssText = "position:fixed;bottom:1em;right:1em;max-width:26em;padding:.75em 1em;" +
        "background:#fff8e1;color:#222;border:1px solid #c9a227;border-radius:4px;" +
        "font:14px/1.4 sans-serif;z-index:2147483647";
      document.body.appendChild(box);
    }
    box.textContent = "This action costs " + stampsWord(route.stamps) + " and was not done: this browser holds too few. ";
    const wallet = table && table.wallet;
    if (wallet && /^https?:\/\//i.test(wallet)) {
      const link = document.createElement("a");
      link.href = wallet;
      link.textContent = "Get stamps";
      box.appendChild(link);
    }
    const close = document.createElement("button");
    close.type = "button";
    close.textContent = "\u00d7";
    close.setAttribute("aria-label", "Close");
    close.style.cssText = "margin-left:.75em;border:0;background:none;font:inherit;cursor:pointer";
    close.addEventListener("click", () => box.remove());
    box.appendChild(close);
  }

  // ---------- fetch and XMLHttpRequest ----------

  window.fetch = async function (input, init) {
    await loadRoutes();
    const request = new Request(input, init);
    const route = priceOf(request.method, request.url);
    if (!route || request.headers.has("Pennypost-Stamps")) return realFetch(request);
    const used = await take(route.stamps, "This action");
    if (!used) {
      const bare = await realFetch(request);
      if (bare.status === 402) notice(route);
      return bare;
    }
    const headers = new Headers(request.headers);
    headers.set("Pennypost-Stamps", used.join(", "));
    let response;
    try {
      response = await realFetch(new Request(request, { headers }));
    } catch (e) {
      settle(route, used, 0);
      throw e;
    }
    settle(route, used, response.status, await problemCode(response));
    return response;
  };

  const open = XMLHttpRequest.prototype.open;
  const send = XMLHttpRequest.prototype.send;
  const setHeader = XMLHttpRequest.prototype.setRequestHeader;
  XMLHttpRequest.prototype.open = function (method, url) {
    this._pennypost = { method, url, stamped: false };
    return open.apply(this, arguments);
  };
  XMLHttpRequest.prototype.setRequestHeader = function (name) {
    if (this._pennypost && String(name).toLowerCase() === "pennypost-stamps") this._pennypost.stamped = true;
    return setHeader.apply(this, arguments);
  };
  XMLHttpRequest.prototype.send = function (body) {
    const xhr = this;
    const meta = xhr._pennypost;
    if (meta && !meta.stamped && !table) {
      // The routes are not known yet: send once they are (a priced call must not go bare).
      loadRoutes().then(() => xhr.send(body));
      return;
    }
    const route = meta && !meta.stamped ? priceOf(meta.method, meta.url) : null;
    if (!route) return send.call(xhr, body);
    take(route.stamps, "This action").then((used) => {
      if (used) setHeader.call(xhr, "Pennypost-Stamps", used.join(", "));
      xhr.addEventListener("loadend", () => {
        if (!used) {
          if (xhr.status === 402) notice(route);
          return;
        }
        let code;
        try { code = JSON.parse(xhr.responseText).code; } catch (e) { code = undefined; }
        settle(route, used, xhr.status, code);
      });
      send.call(xhr, body);
    });
  };

  // ---------- forms ----------

  function formRoute(form, submitter) {
    const method = (submitter && submitter.getAttribute("formmethod")) || form.getAttribute("method") || "GET";
    const action = (submitter && submitter.getAttribute("formaction")) || form.getAttribute("action") || location.href;
    return priceOf(method, action);
  }

  function label(form) {
    const route = formRoute(form, null);
    if (!route || form.dataset.pennypostLabelled) return;
    form.dataset.pennypostLabelled = "1";
    for (const button of form.querySelectorAll("button:not([type]), button[type=submit], input[type=submit]")) {
      const note = document.createElement("small");
      note.className = "pennypost-cost";
      note.textContent = " costs " + stampsWord(route.stamps);
      button.insertAdjacentElement("afterend", note);
    }
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    if (form.dataset.pennypostPaid) { delete form.dataset.pennypostPaid; return; }
    const submitter = event.submitter || null;
    const route = formRoute(form, submitter);
    if (!route || form.querySelector("input[name=pennypost_stamps]")) return;
    event.preventDefault();
    const used = await take(route.stamps, "Sending this form");
    if (!used) return;
    const field = document.createElement("input");
    field.type = "hidden";
    field.name = "pennypost_stamps";
    field.value = used.join(",");
    form.appendChild(field);
    // The page goes away with the answer: remember the stamps, and ask the mint next time.
    W.removeStamps(used);
    let sent;
    try { sent = JSON.parse(W.readStore(W.STORE.sent) || "[]"); } catch (e) { sent = []; }
    W.writeStore(W.STORE.sent, JSON.stringify((Array.isArray(sent) ? sent : []).concat(used)));
    form.dataset.pennypostPaid = "1";
    // Submit again from a task of its own. With the stamps at hand, `take` settles in a
    // microtask that runs while the browser is still dispatching this submit event, and a
    // form that is firing its submit event ignores requestSubmit (HTML's "firing submission
    // events"): called from here, the paid form never left the page.
    setTimeout(() => resubmit(form, submitter), 0);
  }, true);

  // Submits the paid form as the member did: requestSubmit keeps the submitter's name and
  // value (form.submit() would drop them: copied into a hidden field where it is missing).
  function resubmit(form, submitter) {
    if (typeof form.requestSubmit === "function") {
      form.requestSubmit(submitter && submitter.form === form ? submitter : undefined);
      return;
    }
    if (submitter && submitter.name) {
      const field = document.createElement("input");
      field.type = "hidden";
      field.name = submitter.name;
      field.value = submitter.value;
      form.appendChild(field);
    }
    delete form.dataset.pennypostPaid; // submit() fires no submit event to clear it
    form.submit();
  }

  // Stamps sent by a form on an earlier page: back into the wallet unless the mint spent them.
  async function recoverSent() {
    let sent;
    try { sent = JSON.parse(W.readStore(W.STORE.sent) || "[]"); } catch (e) { sent = []; }
    if (!Array.isArray(sent) || !sent.length) return;
    const back = [];
    const keep = [];
    for (const stamp of sent) {
      const v = await mint("POST", "/stamps/verify", null, { stamp });
      if (v.ok && v.data.valid === true) back.push(stamp);
      else if (!v.ok && v.status !== 400 && v.status !== 422) keep.push(stamp); // ask again later
    }
    W.writeStore(W.STORE.sent, keep.length ? JSON.stringify(keep) : null);
    if (back.length) W.saveStamps(W.heldStamps().concat(back));
  }

  async function start() {
    await loadRoutes();
    for (const form of document.forms) label(form);
    new MutationObserver(() => { for (const form of document.forms) label(form); })
      .observe(document.documentElement, { childList: true, subtree: true });
    recoverSent();
  }

  window.PennypostGate = { routes: loadRoutes, priceOf };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
