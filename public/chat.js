// Demo web chat: one WebSocket to the visitor's conversation object. No third-party code.
"use strict";

const { t } = window.parleyI18n;
const consent = window.parleyConsent;
const params = new URLSearchParams(location.search);
const channelId = params.get("channel");
const log = document.getElementById("log");
const statusEl = document.getElementById("status");
const disclosure = document.getElementById("disclosure");
const form = document.getElementById("composer");
const input = document.getElementById("text");
const button = form.querySelector("button");
const shown = new Set();
const pending = new Map();
let socket = null;
let retry = 0;
let humanJoined = false;
let handedOff = false;

const SESSION_KEY = "parley.session";

/**
 * The visitor's session id: a random bearer token for their own conversation.
 * Technical storage: kept for this tab only (sessionStorage). Remembered across
 * visits (localStorage) only while `cookies_functional` is granted.
 */
function session() {
  const remember = consent.state().cookies_functional;
  let id = (remember ? localStorage.getItem(SESSION_KEY) : null) ?? sessionStorage.getItem(SESSION_KEY);
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(24));
    id = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  sessionStorage.setItem(SESSION_KEY, id);
  if (remember) localStorage.setItem(SESSION_KEY, id);
  return id;
}

consent.onChange((state) => {
  if (state.cookies_functional) localStorage.setItem(SESSION_KEY, session());
  else localStorage.removeItem(SESSION_KEY);
});

function authorLabel(from) {
  if (from === "you") return t("you");
  if (from === "ai") return t("ai");
  if (from === "agent") return t("agent");
  return t("system");
}

/** AI Act art. 50: say so when a person takes over from the automated assistant. */
function noteHuman() {
  if (humanJoined) return;
  humanJoined = true;
  disclosure.dataset.i18n = "disclosureHuman";
  disclosure.textContent = t("disclosureHuman");
  const li = document.createElement("li");
  li.className = "note";
  li.textContent = t("humanJoined");
  log.append(li);
}

/** The conversation was handed to a person: the assistant stops answering, and the visitor is told before anyone replies. */
function noteHandoff() {
  if (handedOff || humanJoined) return;
  handedOff = true;
  const li = document.createElement("li");
  li.className = "note";
  li.dataset.note = "handoff";
  li.textContent = t("handoff");
  log.append(li);
}

function render(message) {
  if (shown.has(message.id)) return;
  shown.add(message.id);
  if (message.from === "agent") noteHuman();
  const li = document.createElement("li");
  li.className = message.from === "you" ? "you" : "them";
  li.dataset.from = message.from;
  li.textContent = message.text;
  const meta = document.createElement("small");
  meta.textContent = `${authorLabel(message.from)} · ${new Date(message.createdAt).toLocaleTimeString()}`;
  li.append(meta);
  log.append(li);
  log.scrollTop = log.scrollHeight;
}

function setReady(ready, text) {
  input.disabled = !ready;
  button.disabled = !ready;
  statusEl.removeAttribute("data-i18n");
  statusEl.textContent = text;
}

function connect() {
  if (!channelId) {
    setReady(false, t("noChannel"));
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/chat/${encodeURIComponent(channelId)}?session=${session()}`);
  socket.addEventListener("open", () => {
    retry = 0;
    setReady(true, t("connected"));
    for (const frame of pending.values()) socket.send(JSON.stringify(frame));
  });
  socket.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "history") {
      if (frame.status === "handoff") noteHandoff();
      frame.messages.forEach(render);
    } else if (frame.type === "status") {
      if (frame.status === "handoff") noteHandoff();
    } else if (frame.type === "ack") {
      pending.delete(frame.clientId);
      render(frame.message);
    } else if (frame.type === "message") render(frame.message);
    else if (frame.type === "error") statusEl.textContent = t("notSent", { reason: frame.message });
  });
  socket.addEventListener("close", () => {
    setReady(false, t("reconnecting"));
    retry = Math.min(retry + 1, 6);
    setTimeout(connect, 500 * 2 ** retry);
  });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  const frame = { type: "message", id: crypto.randomUUID(), text };
  // Kept until acknowledged and re-sent after a reconnect; the server stores it once.
  pending.set(frame.id, frame);
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
  window.parleyAnalytics?.record("message_sent");
  input.value = "";
  input.focus();
});

connect();
