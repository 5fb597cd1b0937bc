"use strict";
// The board on pennypost's page: its posts, newest first, each with its score, cost, votes,
// refund and verified mark. Served as part of /app.js (wallet.js, board.js, ledger.js,
// money.js, then app.js, which wires everything up): this file only declares functions, so
// the names it uses from app.js (state, $, api, words, plural…) are read when they run.

function formatTime(iso) {
  const d = new Date(iso);
  if (isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function newPostElement(postId) {
  const li = document.createElement("li");
  li.className = "post";
  li.dataset.postId = postId;

  const box = document.createElement("div");
  box.className = "score-box";
  const score = document.createElement("span");
  score.className = "score";
  const label = document.createElement("span");
  label.className = "score-label";
  label.textContent = "score";
  box.append(score, label);

  const main = document.createElement("div");
  const meta = document.createElement("div");
  meta.className = "meta";
  const author = document.createElement("span");
  author.className = "author";
  const mark = document.createElement("span");
  const time = document.createElement("time");
  time.className = "created-at";
  const postCost = document.createElement("span");
  postCost.className = "post-cost";
  meta.append(author, mark, document.createTextNode(" · "), time, document.createTextNode(" · "), postCost);
  const body = document.createElement("div");
  body.className = "post-body";
  const tally = document.createElement("p");
  tally.className = "tally";
  const votes = document.createElement("span");
  votes.className = "votes";
  const refund = document.createElement("span");
  refund.className = "refund";
  tally.append(votes, refund);
  const actions = document.createElement("div");
  actions.className = "actions";
  const up = document.createElement("button");
  up.type = "button";
  up.className = "vote-up secondary";
  const down = document.createElement("button");
  down.type = "button";
  down.className = "vote-down secondary";
  up.addEventListener("click", () => vote(li, "up"));
  down.addEventListener("click", () => vote(li, "down"));
  actions.append(up, down);
  main.append(meta, body, tally, actions);

  li.append(box, main);
  return li;
}

function fillPost(li, p) {
  li.querySelector(".score").textContent = String(p.score);
  li.querySelector(".author").textContent = String(p.author);
  const mark = li.querySelector(".author + span");
  if (p.verified) {
    mark.className = "verified-mark";
    mark.textContent = "✓ verified";
    mark.title = "Posted by the account named " + p.author + " with its API key";
  } else {
    mark.className = "unverified";
    mark.textContent = "(name not verified)";
    mark.title = "Posted without an account's API key: anyone can use this name";
  }
  const time = li.querySelector(".created-at");
  time.textContent = formatTime(p.created_at);
  time.dateTime = String(p.created_at);
  time.title = String(p.created_at);
  li.querySelector(".post-cost").textContent = "cost " + plural(Number(p.cost) || 0);
  li.querySelector(".post-body").textContent = String(p.body); // text, never HTML
  const up = Number(p.votes_up) || 0;
  const down = Number(p.votes_down) || 0;
  const voters = Number(p.voters) || 0;
  li.querySelector(".votes").textContent = up + down === 0 ? "No votes yet."
    : up + " up, " + down + " down: " + plural(up + down, "vote") + " from " + plural(voters, "voter") + ".";
  const refunded = p.refunded === true;
  const refund = li.querySelector(".refund");
  refund.textContent = refunded ? " Postage refunded to the author: enough other members up-voted it." : "";
  refund.hidden = !refunded;
  li.classList.toggle("refunded", refunded);
  li.classList.toggle("verified", p.verified === true);
}

// ---------- the board ----------

async function loadBoard(older) {
  let path = "/v1/posts?limit=50";
  if (older) {
    if (!state.nextBefore) return;
    path += "&before=" + encodeURIComponent(state.nextBefore);
  }
  const r = await api("GET", path);
  $("posts-loading").hidden = true;
  if (!r.ok) { say("Could not load the board. " + words(r, "board"), "error"); return; }
  const posts = Array.isArray(r.data.posts) ? r.data.posts : [];
  const list = $("posts");
  const onScreen = new Map();
  for (const el of list.children) onScreen.set(el.dataset.postId, el);

  if (older) {
    for (const p of posts) {
      const el = onScreen.get(p.post_id) || newPostElement(p.post_id);
      fillPost(el, p);
      list.append(el);
    }
    state.nextBefore = r.data.next_before || null;
    state.olderLoaded = true;
  } else {
    // The newest page goes first; elements are reused (not rebuilt) so nothing flickers.
    const wanted = posts.map((p) => {
      const el = onScreen.get(p.post_id) || newPostElement(p.post_id);
      fillPost(el, p);
      onScreen.delete(p.post_id);
      return el;
    });
    wanted.forEach((el, i) => {
      if (list.children[i] !== el) list.insertBefore(el, list.children[i] || null);
    });
    // What is left on screen is older than the newest page: keep it if older pages were loaded.
    for (const el of onScreen.values()) if (!state.olderLoaded) el.remove();
    if (!state.olderLoaded) state.nextBefore = r.data.next_before || null;
  }
  $("posts-empty").hidden = list.children.length > 0;
  $("load-more").hidden = !state.nextBefore;
  renderCounts();
}
