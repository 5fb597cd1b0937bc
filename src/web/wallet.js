"use strict";
// pennypost's stamp wallet: the stamps (and who bought each) and the API key kept in this
// origin's localStorage. Shared by the board's page (/app.js is this file followed by app.js)
// and the gate's script (/.pennypost/gate.js is this file followed by gate.js), so both keep
// stamps the same way. Plain JavaScript, no build step; one global, `PennypostWallet`, so a
// site's own scripts are not disturbed.
//
// Storage is read fresh on every call: another tab may have changed it.

window.PennypostWallet = window.PennypostWallet || (function () {
  const STORE = {
    key: "pennypost.api_key",        // the account's API key (Bearer token)
    stamps: "pennypost.stamps",      // JSON array of stamp strings ("pp1.…")
    buyers: "pennypost.stamp_buyers", // JSON object: stamp string -> account id of its buyer
    pending: "pennypost.pending_purchase", // {"id","count"}: a purchase whose answer never came
    author: "pennypost.author",      // the last name posted under, as a convenience
    sent: "pennypost.sent_by_form",  // stamps a form took away; back if the mint says unspent
  };
  // Codes with which the mint says a stamp can never be spent.
  const DEAD_STAMP_CODES = new Set(["stamp_already_spent", "invalid_stamp", "unknown_key", "bad_signature", "stamp_expired"]);
  const listeners = [];

  function readStore(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }

  // Returns false when the browser refused to store (storage disabled or full).
  function writeStore(key, value) {
    try {
      if (value === null || value === undefined) localStorage.removeItem(key);
      else localStorage.setItem(key, value);
      return true;
    } catch (e) {
      return false;
    }
  }

  function apiKey() { return readStore(STORE.key); }

  function newRequestId() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function heldStamps() {
    let list;
    try { list = JSON.parse(readStore(STORE.stamps) || "[]"); } catch (e) { list = []; }
    return Array.isArray(list) ? list.filter((s) => typeof s === "string" && s.length > 0) : [];
  }

  // Who bought each stamp, as far as this browser knows (stamps kept before it recorded buyers
  // have none until an account is loaded: see claimUnknownStamps).
  function readBuyers() {
    try {
      const map = JSON.parse(readStore(STORE.buyers) || "{}");
      return map && typeof map === "object" && !Array.isArray(map) ? map : {};
    } catch (e) {
      return {};
    }
  }

  // Calls `listener` after every change of the stamps held (to show the count).
  function onChange(listener) { listeners.push(listener); }

  function saveStamps(list) {
    const unique = Array.from(new Set(list));
    const ok = writeStore(STORE.stamps, JSON.stringify(unique));
    // Forget the buyers of stamps that left the wallet.
    const buyers = readBuyers();
    const kept = {};
    for (const s of unique) if (typeof buyers[s] === "string") kept[s] = buyers[s];
    writeStore(STORE.buyers, JSON.stringify(kept));
    for (const listener of listeners) listener();
    return ok;
  }

  function addStamps(more, buyer) {
    const buyers = readBuyers();
    for (const s of more) buyers[s] = buyer;
    writeStore(STORE.buyers, JSON.stringify(buyers));
    return saveStamps(heldStamps().concat(more));
  }

  function removeStamps(gone) {
    const drop = new Set(gone);
    return saveStamps(heldStamps().filter((s) => !drop.has(s)));
  }

  // Stamps kept before the page recorded buyers were bought by the member's account: this
  // browser buys with one account at a time.
  function claimUnknownStamps(accountId) {
    const buyers = readBuyers();
    let changed = false;
    for (const s of heldStamps()) {
      if (typeof buyers[s] !== "string") { buyers[s] = accountId; changed = true; }
    }
    if (changed) writeStore(STORE.buyers, JSON.stringify(buyers));
  }

  return {
    STORE, DEAD_STAMP_CODES, readStore, writeStore, apiKey, newRequestId, heldStamps, readBuyers,
    onChange, saveStamps, addStamps, removeStamps, claimUnknownStamps,
  };
})();
