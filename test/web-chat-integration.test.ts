import { runDurableObjectAlarm } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { VISITOR_FRAMES_PER_WINDOW } from "../durable-objects/conversation";
import { api, BASE, call, createTenant, json } from "./helpers";

interface Frame {
  type: string;
  [key: string]: unknown;
}

async function webChannel(ownerKey: string) {
  const res = await api("POST", "/v1/channels", ownerKey, { type: "web_chat", name: "Site" });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; webhookUrl: string };
}

async function connect(channelId: string, session: string, origin = BASE) {
  const res = await call(`/chat/${channelId}?session=${session}`, { headers: { upgrade: "websocket", origin } });
  const ws = res.webSocket;
  if (!ws) return { res, ws: null, frames: [] as Frame[], next: async () => ({ type: "none" }) as Frame };
  const frames: Frame[] = [];
  const waiters: ((f: Frame) => void)[] = [];
  ws.addEventListener("message", (event) => {
    const frame = JSON.parse(String(event.data)) as Frame;
    const waiter = waiters.shift();
    if (waiter) waiter(frame);
    else frames.push(frame);
  });
  ws.accept();
  const next = () =>
    new Promise<Frame>((resolve, reject) => {
      const queued = frames.shift();
      if (queued) return resolve(queued);
      const timer = setTimeout(() => reject(new Error("no frame within 3 s")), 3000);
      waiters.push((f) => {
        clearTimeout(timer);
        resolve(f);
      });
    });
  return { res, ws, frames, next };
}

describe("web chat over WebSocket", () => {
  it("stores visitor messages once, acknowledges them, and pushes agent replies live", async () => {
    const { ownerKey } = await createTenant();
    const channel = await webChannel(ownerKey);
    expect(channel.webhookUrl).toBe(`wss://parley.test/chat/${channel.id}`);
    const session = "visitor-session-abcdefghijklmnop";
    const a = await connect(channel.id, session);
    expect(a.res.status).toBe(101);
    expect(await a.next()).toMatchObject({ type: "history", messages: [] });
    a.ws?.send(JSON.stringify({ type: "message", id: "client-msg-0001", text: "Is the shop open on Sunday?" }));
    const ack = await a.next();
    expect(ack).toMatchObject({ type: "ack", clientId: "client-msg-0001", duplicate: false, message: { seq: 1, from: "you" } });
    a.ws?.send(JSON.stringify({ type: "message", id: "client-msg-0001", text: "Is the shop open on Sunday?" }));
    expect(await a.next()).toMatchObject({ type: "ack", duplicate: true });
    a.ws?.send("not json");
    expect(await a.next()).toMatchObject({ type: "error", code: "invalid_json" });
    a.ws?.send(JSON.stringify({ type: "message", id: "short", text: "" }));
    expect(await a.next()).toMatchObject({ type: "error", code: "validation_error" });

    const list = (await json(await api("GET", "/v1/conversations", ownerKey))) as { data: { id: string; messageCount: number }[] };
    expect(list.data).toHaveLength(1);
    const conversationId = list.data[0]?.id ?? "";
    expect(list.data[0]?.messageCount).toBe(1);
    const sent = await api("POST", `/v1/conversations/${conversationId}/messages`, ownerKey, { text: "Yes, 10:00–13:00." });
    expect(sent.status).toBe(201);
    await runDurableObjectAlarm(env.CONVERSATION.get(env.CONVERSATION.idFromName(conversationId)));
    const pushed = await a.next();
    expect(pushed).toMatchObject({ type: "message", message: { from: "agent", text: "Yes, 10:00–13:00." } });
    const msgs = (await json(await api("GET", `/v1/conversations/${conversationId}/messages`, ownerKey))) as { data: { status: string }[] };
    expect(msgs.data[1]?.status).toBe("delivered");

    // A second tab of the same visitor gets the history.
    const b = await connect(channel.id, session);
    const history = await b.next();
    expect((history.messages as unknown[]).length).toBe(2);
    a.ws?.close(1000, "bye");
    b.ws?.close(1000, "bye");
  });

  it("limits a flood of visitor frames per conversation: the excess gets rate_limited and is not stored", async () => {
    const { ownerKey } = await createTenant();
    const channel = await webChannel(ownerKey);
    const a = await connect(channel.id, "visitor-session-flood-0000001");
    expect(await a.next()).toMatchObject({ type: "history" });
    for (let i = 0; i < VISITOR_FRAMES_PER_WINDOW + 5; i++) a.ws?.send(JSON.stringify({ type: "message", id: `flood-${String(i).padStart(4, "0")}`, text: `message ${i}` }));
    const frames: Frame[] = [];
    for (let i = 0; i < VISITOR_FRAMES_PER_WINDOW + 5; i++) frames.push(await a.next());
    expect(frames.filter((f) => f.type === "ack")).toHaveLength(VISITOR_FRAMES_PER_WINDOW);
    const limited = frames.filter((f) => f.type === "error");
    expect(limited).toHaveLength(5);
    expect(limited[0]).toMatchObject({ code: "rate_limited" });
    const list = (await json(await api("GET", "/v1/conversations", ownerKey))) as { data: { id: string }[] };
    const messages = (await json(await api("GET", `/v1/conversations/${list.data[0]?.id}/messages?limit=100`, ownerKey))) as { data: unknown[] };
    expect(messages.data).toHaveLength(VISITOR_FRAMES_PER_WINDOW);
    a.ws?.close(1000, "bye");
  });

  it("tells the visitor at once when the conversation is handed to a person, and on reconnect", async () => {
    const { ownerKey } = await createTenant();
    const channel = await webChannel(ownerKey);
    const session = "visitor-session-handoff-000001";
    const a = await connect(channel.id, session);
    expect(await a.next()).toMatchObject({ type: "history", status: "open", messages: [] });
    a.ws?.send(JSON.stringify({ type: "message", id: "client-msg-h001", text: "I want to speak to someone" }));
    expect(await a.next()).toMatchObject({ type: "ack", duplicate: false });
    const conversationId = ((await json(await api("GET", "/v1/conversations", ownerKey))) as { data: { id: string }[] }).data[0]?.id ?? "";
    expect((await api("POST", `/v1/conversations/${conversationId}/handoff`, ownerKey, {})).status).toBe(200);
    expect(await a.next()).toMatchObject({ type: "status", status: "handoff" });
    const again = await connect(channel.id, session);
    expect(await again.next()).toMatchObject({ type: "history", status: "handoff" });
    a.ws?.close(1000, "bye");
    again.ws?.close(1000, "bye");
  });

  it("refuses foreign origins, bad sessions and plain HTTP", async () => {
    const { ownerKey } = await createTenant();
    const channel = await webChannel(ownerKey);
    const foreign = await connect(channel.id, "visitor-session-abcdefghijklmnop", "https://evil.example");
    expect(foreign.res.status).toBe(403);
    const badSession = await connect(channel.id, "short");
    expect(badSession.res.status).toBe(400);
    const plain = await call(`/chat/${channel.id}?session=visitor-session-abcdefghijklmnop`);
    expect(plain.status).toBe(426);
    const list = (await json(await api("GET", "/v1/conversations", ownerKey))) as { data: unknown[] };
    expect(list.data).toHaveLength(0);
  });
});
