// Parley admin page: sign-in, navigation and the live conversations view.
// Plain ES modules against the public /v1 API; no third-party code, no inline scripts.
import { api, ApiError, can, el, errorText, field, say, session, when } from "./lib.js";
import { renderers } from "./sections.js";

const $ = (id) => document.getElementById(id);

const state = {
  view: "conversations",
  cursor: null,
  channels: new Map(),
  loaded: [],
  selected: null,
  conversation: null,
  messages: new Map(),
  revealed: new Map(),
  live: null,
};

// ---------------------------------------------------------------- sign-in

async function signIn(key) {
  session.key = key;
  const me = await api("GET", "/v1/keys/me");
  session.me = me;
  sessionStorage.setItem("parley.key", key);
  $("signin").hidden = true;
  $("app").hidden = false;
  $("whoami").textContent = `${me.tenant.name} · ${me.name} (${me.role})`;
  for (const b of document.querySelectorAll("[data-view][data-scope]")) b.hidden = !can(b.dataset.scope);
  // Billing shows only where the deployment answers GET /v1/billing.
  api("GET", "/v1/billing").then(
    () => ($("nav").querySelector('[data-view="billing"]').hidden = false),
    () => ($("nav").querySelector('[data-view="billing"]').hidden = true),
  );
  await loadChannels();
  await loadConversations(true);
}

function signOut() {
  sessionStorage.removeItem("parley.key");
  closeLive();
  location.reload();
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("signin-error").textContent = "";
  try {
    await signIn($("apikey").value.trim());
  } catch (err) {
    session.key = null;
    $("signin-error").textContent = err instanceof ApiError && err.status === 401 ? "That key is not valid (or was revoked)." : errorText(err);
  }
});
$("signout").addEventListener("click", signOut);

// ---------------------------------------------------------------- navigation

async function showView(name, focus = true) {
  state.view = name;
  for (const b of document.querySelectorAll("[data-view]")) b.setAttribute("aria-pressed", String(b.dataset.view === name));
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== `view-${name}`;
  const section = $(`view-${name}`);
  if (name !== "conversations") {
    const body = section.querySelector(".body");
    body.replaceChildren(el("p", { class: "empty" }, "Loading…"));
    try {
      await renderers[name](body, section);
    } catch (err) {
      body.replaceChildren(el("p", { class: "error", role: "alert" }, errorText(err)));
    }
  }
  if (focus) section.querySelector("h2").focus();
}
for (const b of document.querySelectorAll("[data-view]")) b.addEventListener("click", () => showView(b.dataset.view));

// ---------------------------------------------------------------- conversation list

async function loadChannels() {
  if (!can("channels:read")) return;
  const list = await api("GET", "/v1/channels");
  state.channels = new Map(list.data.map((c) => [c.id, c]));
  $("channel-filter").replaceChildren(el("option", { value: "" }, "All channels"), ...list.data.map((c) => el("option", { value: c.id }, `${c.name} (${c.type})`)));
}

const channelName = (id) => (state.channels.get(id) ? state.channels.get(id).name : id);

async function loadConversations(reset) {
  if (reset) {
    state.cursor = null;
    state.loaded = [];
  }
  const qs = new URLSearchParams({ limit: "25" });
  if ($("status-filter").value) qs.set("status", $("status-filter").value);
  if ($("channel-filter").value) qs.set("channelId", $("channel-filter").value);
  if (state.cursor) qs.set("cursor", state.cursor);
  const page = await api("GET", `/v1/conversations?${qs}`);
  state.loaded.push(...page.data);
  state.cursor = page.nextCursor;
  $("more").hidden = !page.nextCursor;
  renderList();
}

function renderList() {
  const q = $("conversation-search").value.trim().toLowerCase();
  const shown = state.loaded.filter((c) => !q || c.id.toLowerCase().includes(q) || channelName(c.channelId).toLowerCase().includes(q) || c.status.includes(q));
  const items = shown.map((c) =>
    el(
      "li",
      {},
      el(
        "button",
        { type: "button", "data-id": c.id, "aria-current": String(c.id === state.selected), onclick: () => openConversation(c.id) },
        el("strong", { class: `badge ${c.status}` }, c.status),
        ` · ${c.messageCount} messages · ${channelName(c.channelId)}${c.specialCategory ? " · special category" : ""}`,
        el("small", {}, `${when(c.lastActivityAt)} · ${c.id}`),
      ),
    ),
  );
  $("conversation-list").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, state.loaded.length ? "No conversation matches." : "No conversations yet.")]));
}

$("status-filter").addEventListener("change", () => loadConversations(true));
$("channel-filter").addEventListener("change", () => loadConversations(true));
$("conversation-search").addEventListener("input", renderList);
$("conversation-filters").addEventListener("submit", (event) => event.preventDefault());
$("more").addEventListener("click", () => loadConversations(false));

// ---------------------------------------------------------------- conversation detail

function statusButton(label, path, status) {
  return el("button", { type: "button", "data-action": path, "aria-pressed": "false", "data-status": status, onclick: () => changeStatus(path) }, label);
}

async function openConversation(id) {
  closeLive();
  state.selected = id;
  state.messages = new Map();
  for (const b of document.querySelectorAll("#conversation-list button")) b.setAttribute("aria-current", String(b.dataset.id === id));
  let c;
  try {
    c = await api("GET", `/v1/conversations/${id}`);
  } catch (err) {
    $("detail").replaceChildren(el("p", { class: "error", role: "alert" }, errorText(err)));
    return;
  }
  state.conversation = c;
  const writer = can("conversations:write");
  const heading = el("h3", { id: "detail-title", tabindex: "-1" }, `Conversation ${c.id}`);
  const parts = [
    heading,
    el(
      "p",
      { class: "meta" },
      `${channelName(c.channelId)} (${c.channelType}) · ${c.address} · status `,
      el("strong", { id: "conv-status" }, c.status),
      ` · started ${when(c.createdAt)} · `,
      el("span", { id: "live-status", class: "live", "data-transport": "connecting", role: "status" }, "connecting…"),
    ),
    writer
      ? el(
          "div",
          { class: "actions", role: "group", "aria-label": "Conversation state" },
          statusButton("Hand off to a human", "handoff", "handoff"),
          statusButton("Close", "close", "closed"),
          statusButton("Reopen / return to AI", "reopen", "open"),
        )
      : null,
    session.me.role === "viewer" ? el("p", { class: "hint" }, "Viewer key: identifiers are masked. Revealing a message needs a reason and is recorded in the audit log.") : null,
    el("ol", { class: "transcript", "aria-label": "Transcript", "aria-live": "polite", "aria-relevant": "additions" }),
    writer
      ? el(
          "form",
          { class: "reply", onsubmit: sendReply },
          el("label", { for: "reply-text", class: "visually-hidden" }, "Reply as a human agent"),
          el("textarea", { id: "reply-text", name: "text", maxlength: "4096", required: true, placeholder: "Reply as a human agent… (Ctrl+Enter sends)", onkeydown: replyKeys }),
          el("button", { type: "submit" }, "Send"),
        )
      : null,
    el("p", { id: "detail-error", role: "alert" }),
  ];
  $("detail").replaceChildren(...parts.filter(Boolean));
  reflectStatus(c.status);
  heading.focus();
  try {
    const page = await api("GET", `/v1/conversations/${id}/messages?after=0&limit=200`);
    for (const m of page.data) upsertMessage(m);
  } catch (err) {
    say($("detail-error"), errorText(err), true);
  }
  openLive(id);
}

function reflectStatus(status, messageCount) {
  if (state.conversation) state.conversation.status = status;
  if ($("conv-status")) $("conv-status").textContent = status;
  for (const b of document.querySelectorAll("#detail [data-action]")) b.setAttribute("aria-pressed", String(b.dataset.status === status));
  const listed = state.loaded.find((c) => c.id === state.selected);
  if (listed && (listed.status !== status || (messageCount !== undefined && listed.messageCount !== messageCount))) {
    listed.status = status;
    if (messageCount !== undefined) listed.messageCount = messageCount;
    renderList();
  }
}

function messageItem(m) {
  const revealed = state.revealed.get(m.id);
  const meta = `#${m.seq} · ${m.author}${m.direction === "outbound" ? ` · ${m.status}${m.error ? ` (${m.error})` : ""}` : ""} · ${when(m.createdAt)}${
    revealed ? " · revealed (audited)" : m.redacted ? " · redacted" : ""
  }`;
  const li = el("li", { class: m.direction, "data-seq": m.seq, "data-id": m.id }, el("span", { class: "text" }, revealed ?? m.text), el("small", {}, meta));
  if (m.redacted && !revealed) li.append(el("button", { type: "button", class: "link reveal", onclick: () => revealForm(li, m) }, "Reveal"));
  return li;
}

const STATUS_RANK = { received: 0, queued: 0, sent: 1, delivered: 2, read: 3, failed: 4 };

/** True when `m` is not newer than what is shown (a REST answer can arrive after a fresher socket frame). */
function isStale(m, previous) {
  if (m.updatedAt < previous.updatedAt) return true;
  if (m.updatedAt > previous.updatedAt) return false;
  if (STATUS_RANK[m.status] !== STATUS_RANK[previous.status]) return STATUS_RANK[m.status] < STATUS_RANK[previous.status];
  return m.text === previous.text && m.redacted === previous.redacted;
}

/** Inserts or replaces a message in the transcript, keeping sequence order. */
function upsertMessage(m) {
  if (m.conversationId && m.conversationId !== state.selected) return;
  const previous = state.messages.get(m.seq);
  if (previous && isStale(m, previous)) return;
  state.messages.set(m.seq, m);
  const transcript = document.querySelector(".transcript");
  if (!transcript) return;
  const existing = transcript.querySelector(`li[data-seq="${m.seq}"]`);
  if (existing && existing.querySelector("form")) return; // a reveal form is open: keep it
  const item = messageItem(m);
  if (existing) {
    existing.replaceWith(item);
    return;
  }
  const after = [...transcript.children].find((li) => Number(li.dataset.seq) > m.seq);
  transcript.insertBefore(item, after ?? null);
  const nearBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 120;
  if (!after && nearBottom) transcript.scrollTop = transcript.scrollHeight;
}

function revealForm(li, m) {
  const reason = el("input", { name: "reason", minlength: "5", maxlength: "500", required: true, autocomplete: "off" });
  const status = el("span", { class: "status", role: "status" });
  const form = el(
    "form",
    {
      class: "reveal-form",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const out = await api("POST", `/v1/conversations/${state.selected}/messages/${m.id}/reveal`, { reason: reason.value.trim() });
          state.revealed.set(m.id, out.text);
          li.replaceWith(messageItem(m));
        } catch (err) {
          say(status, errorText(err), true);
        }
      },
    },
    field("Reason for revealing (recorded in the audit log)", reason),
    el("button", { type: "submit" }, "Reveal text"),
    el("button", { type: "button", onclick: () => li.replaceWith(messageItem(m)) }, "Cancel"),
    status,
  );
  li.querySelector("button.reveal")?.remove();
  li.append(form);
  reason.focus();
}

async function changeStatus(path) {
  try {
    const c = await api("POST", `/v1/conversations/${state.selected}/${path}`);
    reflectStatus(c.status);
  } catch (err) {
    say($("detail-error"), errorText(err), true);
  }
}

function replyKeys(event) {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    event.target.form.requestSubmit();
  }
}

async function sendReply(event) {
  event.preventDefault();
  const form = event.target;
  const text = form.elements.text.value.trim();
  if (!text) return;
  try {
    const m = await api("POST", `/v1/conversations/${state.selected}/messages`, { text }, { "idempotency-key": crypto.randomUUID() });
    form.reset();
    say($("detail-error"), "");
    upsertMessage({ ...m, conversationId: state.selected });
  } catch (err) {
    say($("detail-error"), errorText(err), true);
  }
}

// ---------------------------------------------------------------- live updates

/**
 * Live transcript over a WebSocket to the conversation's Durable Object: a
 * short-lived signed ticket is fetched with the API key (browsers cannot send
 * Authorization on a socket), then the socket pushes messages and state. Only
 * while the socket is down does the page poll, and it reconnects with backoff.
 */
function openLive(id) {
  const live = { id, ws: null, closed: false, attempts: 0, poll: null, retry: null, ping: null };
  state.live = live;
  connect(live);
}

function closeLive() {
  const live = state.live;
  if (!live) return;
  live.closed = true;
  clearInterval(live.poll);
  clearInterval(live.ping);
  clearTimeout(live.retry);
  if (live.ws) live.ws.close(1000, "closed by the page");
  state.live = null;
}

function setTransport(mode, text) {
  const node = $("live-status");
  if (!node) return;
  node.dataset.transport = mode;
  node.textContent = text;
}

async function connect(live) {
  if (live.closed) return;
  let ticket;
  try {
    ticket = await api("POST", `/v1/conversations/${live.id}/live-ticket`);
  } catch (err) {
    return socketDown(live, err instanceof ApiError && (err.status === 403 || err.status === 404));
  }
  if (live.closed) return;
  const ws = new WebSocket(`${location.origin.replace(/^http/, "ws")}${ticket.url}`);
  live.ws = ws;
  ws.addEventListener("open", () => {
    live.attempts = 0;
    clearInterval(live.poll);
    live.poll = null;
    setTransport("websocket", "live");
    live.ping = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send("ping"), 25_000);
  });
  ws.addEventListener("message", (event) => {
    if (live.closed) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame.type === "history") {
      for (const m of frame.messages) upsertMessage(m);
      if (frame.conversation) reflectStatus(frame.conversation.status, frame.conversation.messageCount);
    } else if (frame.type === "message") upsertMessage(frame.message);
    else if (frame.type === "conversation") reflectStatus(frame.conversation.status, frame.conversation.messageCount);
  });
  ws.addEventListener("close", (event) => {
    clearInterval(live.ping);
    if (live.closed) return;
    socketDown(live, event.code === 4403);
  });
}

function socketDown(live, final) {
  if (live.closed) return;
  if (final) {
    setTransport("none", "not live");
    return;
  }
  setTransport("polling", "reconnecting… (polling meanwhile)");
  if (!live.poll) live.poll = setInterval(() => pollOnce(live), 5000);
  live.attempts += 1;
  const wait = Math.min(30_000, 1000 * 2 ** live.attempts);
  live.retry = setTimeout(() => connect(live), wait);
}

async function pollOnce(live) {
  if (live.closed || state.selected !== live.id) return;
  try {
    const last = Math.max(0, ...state.messages.keys());
    const page = await api("GET", `/v1/conversations/${live.id}/messages?after=${Math.max(0, last - 5)}&limit=200`);
    for (const m of page.data) upsertMessage(m);
  } catch {
    // still down; the next tick tries again
  }
}

// ---------------------------------------------------------------- start

if (session.key) {
  $("apikey").value = "";
  signIn(session.key).catch(() => {
    sessionStorage.removeItem("parley.key");
    session.key = null;
    $("signin").hidden = false;
  });
}
