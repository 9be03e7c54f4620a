// Parley admin page: plain JavaScript against the public /v1 API. No third-party code.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { key: sessionStorage.getItem("parley.key"), role: null, selected: null, cursor: null, poll: null, lastSeq: 0 };

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(method, path, body, headers = {}) {
  const init = { method, headers: { authorization: `Bearer ${state.key}`, ...headers } };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const json = res.status === 204 ? null : await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  return node;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

async function signIn(key) {
  state.key = key;
  const keys = await api("GET", "/v1/keys").catch((err) => (err.status === 403 ? null : Promise.reject(err)));
  // Any key can read conversations; only keys with keys:read can list keys (that tells us the role cheaply).
  await api("GET", "/v1/conversations?limit=1");
  const mine = keys && keys.data.find((k) => key.startsWith(k.prefix));
  state.role = mine ? mine.role : "agent or viewer";
  sessionStorage.setItem("parley.key", key);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("whoami").textContent = `${key.slice(0, 12)}… (${state.role})`;
  document.querySelector('[data-view="keys"]').hidden = !keys;
  await loadConversations(true);
}

function signOut() {
  sessionStorage.removeItem("parley.key");
  clearInterval(state.poll);
  location.reload();
}

async function loadConversations(reset) {
  if (reset) {
    state.cursor = null;
    $("conversation-list").replaceChildren();
  }
  const status = $("status-filter").value;
  const qs = new URLSearchParams({ limit: "25" });
  if (status) qs.set("status", status);
  if (state.cursor) qs.set("cursor", state.cursor);
  const page = await api("GET", `/v1/conversations?${qs}`);
  for (const c of page.data) {
    const button = el(
      "button",
      { type: "button", "data-id": c.id, onclick: () => openConversation(c.id) },
      el("strong", {}, c.status),
      ` · ${c.messageCount} messages`,
      el("small", {}, `${when(c.lastActivityAt)} · ${c.id}`),
    );
    $("conversation-list").append(el("li", {}, button));
  }
  if (page.data.length === 0 && reset) $("conversation-list").append(el("li", { class: "empty" }, "No conversations yet."));
  state.cursor = page.nextCursor;
  $("more").hidden = !page.nextCursor;
}

function messageItem(m) {
  return el(
    "li",
    { class: m.direction, "data-seq": m.seq },
    m.text,
    el("small", {}, `#${m.seq} · ${m.author}${m.direction === "outbound" ? ` · ${m.status}${m.error ? ` (${m.error})` : ""}` : ""} · ${when(m.createdAt)}${m.redacted ? " · redacted" : ""}`),
  );
}

async function openConversation(id) {
  state.selected = id;
  state.lastSeq = 0;
  for (const b of document.querySelectorAll("#conversation-list button")) b.setAttribute("aria-current", String(b.dataset.id === id));
  const c = await api("GET", `/v1/conversations/${id}`);
  const transcript = el("ol", { class: "transcript", "aria-label": "Transcript" });
  const action = (label, path) => el("button", { type: "button", onclick: () => changeStatus(id, path) }, label);
  const reply = el(
    "form",
    { class: "reply", onsubmit: (event) => sendReply(event, id) },
    el("label", { for: "reply-text", class: "visually-hidden" }, "Reply"),
    el("textarea", { id: "reply-text", name: "text", maxlength: "4096", required: "", placeholder: "Reply as a human agent…" }),
    el("button", { type: "submit" }, "Send"),
  );
  $("detail").replaceChildren(
    el("h2", {}, `Conversation ${c.id}`),
    el("p", {}, `${c.channelType} · ${c.address} · status `, el("strong", { id: "conv-status" }, c.status), ` · started ${when(c.createdAt)}`),
    el("div", { class: "actions" }, action("Hand off to a human", "handoff"), action("Close", "close"), action("Reopen / return to AI", "reopen")),
    transcript,
    reply,
    el("p", { id: "detail-error", role: "alert" }),
  );
  await refreshMessages();
  clearInterval(state.poll);
  state.poll = setInterval(() => refreshMessages().catch(() => undefined), 3000);
}

async function refreshMessages() {
  if (!state.selected) return;
  const transcript = document.querySelector(".transcript");
  const page = await api("GET", `/v1/conversations/${state.selected}/messages?after=0&limit=200`);
  transcript.replaceChildren(...page.data.map(messageItem));
  const last = page.data[page.data.length - 1];
  if (last && last.seq !== state.lastSeq) {
    state.lastSeq = last.seq;
    transcript.scrollTop = transcript.scrollHeight;
  }
}

async function changeStatus(id, path) {
  try {
    const c = await api("POST", `/v1/conversations/${id}/${path}`);
    $("conv-status").textContent = c.status;
  } catch (err) {
    $("detail-error").textContent = err.message;
  }
}

async function sendReply(event, id) {
  event.preventDefault();
  const form = event.target;
  const text = form.elements.text.value.trim();
  if (!text) return;
  try {
    await api("POST", `/v1/conversations/${id}/messages`, { text }, { "idempotency-key": crypto.randomUUID() });
    form.reset();
    await refreshMessages();
  } catch (err) {
    $("detail-error").textContent = err.message;
  }
}

async function showView(name) {
  for (const b of document.querySelectorAll("[data-view]")) b.setAttribute("aria-pressed", String(b.dataset.view === name));
  for (const v of ["conversations", "channels", "keys"]) $(`view-${v}`).hidden = v !== name;
  if (name === "channels") {
    const list = await api("GET", "/v1/channels");
    $("channel-rows").replaceChildren(...list.data.map((c) => el("tr", {}, el("td", {}, c.name), el("td", {}, c.type), el("td", {}, el("code", {}, c.webhookUrl)))));
  }
  if (name === "keys") {
    const list = await api("GET", "/v1/keys");
    $("key-rows").replaceChildren(
      ...list.data.map((k) => el("tr", {}, el("td", {}, k.name), el("td", {}, el("code", {}, k.prefix)), el("td", {}, k.role), el("td", {}, when(k.lastUsedAt)), el("td", {}, k.revokedAt ? "revoked" : "active"))),
    );
  }
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("signin-error").textContent = "";
  try {
    await signIn($("apikey").value.trim());
  } catch (err) {
    state.key = null;
    $("signin-error").textContent = err.status === 401 ? "That key is not valid (or was revoked)." : err.message;
  }
});
$("signout").addEventListener("click", signOut);
$("status-filter").addEventListener("change", () => loadConversations(true));
$("more").addEventListener("click", () => loadConversations(false));
for (const b of document.querySelectorAll("[data-view]")) b.addEventListener("click", () => showView(b.dataset.view));

if (state.key) signIn(state.key).catch(signOut);
