// Demo web chat: one WebSocket to the visitor's conversation object. No third-party code.
"use strict";

const params = new URLSearchParams(location.search);
const channelId = params.get("channel");
const log = document.getElementById("log");
const statusEl = document.getElementById("status");
const form = document.getElementById("composer");
const input = document.getElementById("text");
const button = form.querySelector("button");
const shown = new Set();
const pending = new Map();
let socket = null;
let retry = 0;

/** The visitor's session id: a random bearer token for their own conversation, kept in this browser only. */
function session() {
  let id = localStorage.getItem("parley.session");
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(24));
    id = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    localStorage.setItem("parley.session", id);
  }
  return id;
}

function render(message) {
  if (shown.has(message.id)) return;
  shown.add(message.id);
  const li = document.createElement("li");
  li.className = message.from === "you" ? "you" : "them";
  li.textContent = message.text;
  const meta = document.createElement("small");
  meta.textContent = `${message.from === "you" ? "You" : message.from === "ai" ? "Assistant" : "Demo Shop"} · ${new Date(message.createdAt).toLocaleTimeString()}`;
  li.append(meta);
  log.append(li);
  log.scrollTop = log.scrollHeight;
}

function setReady(ready, text) {
  input.disabled = !ready;
  button.disabled = !ready;
  statusEl.textContent = text;
}

function connect() {
  if (!channelId) {
    setReady(false, "No chat channel: open this page with ?channel=<web chat channel id> (npm start prints the link).");
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/chat/${encodeURIComponent(channelId)}?session=${session()}`);
  socket.addEventListener("open", () => {
    retry = 0;
    setReady(true, "Connected");
    for (const frame of pending.values()) socket.send(JSON.stringify(frame));
  });
  socket.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "history") frame.messages.forEach(render);
    else if (frame.type === "ack") {
      pending.delete(frame.clientId);
      render(frame.message);
    } else if (frame.type === "message") render(frame.message);
    else if (frame.type === "error") statusEl.textContent = `Not sent: ${frame.message}`;
  });
  socket.addEventListener("close", () => {
    setReady(false, "Reconnecting…");
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
  input.value = "";
  input.focus();
});

connect();
