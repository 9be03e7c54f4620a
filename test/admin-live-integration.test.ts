/**
 * Staff live sockets and the audited reveal, in workerd: signed tickets
 * (expired, tampered, for another conversation or tenant are refused and open
 * nothing), live frames from the conversation's Durable Object (redacted for
 * viewers), each ticket good for one socket, and `POST …/messages/:id/reveal`
 * (reason required, audited).
 */
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { mintLiveTicket } from "../workers/support/live-ticket";
import { api, call, createCustomChannel, createKey, createTenant, json, postCustom, type Tenant } from "./helpers";

interface Frame {
  type: string;
  [key: string]: unknown;
}

interface Socket {
  res: Response;
  ws: WebSocket | null;
  next: (ms?: number) => Promise<Frame>;
  nextOf: (type: string, ms?: number) => Promise<Frame>;
  /** The next `message` frame for `seq` (frames re-send recently changed messages; clients upsert by seq). */
  messageSeq: (seq: number, ms?: number) => Promise<Frame>;
}

async function openLive(conversationId: string, ticket: string, headers: Record<string, string> = {}): Promise<Socket> {
  const res = await call(`/v1/conversations/${conversationId}/live?ticket=${encodeURIComponent(ticket)}`, { headers: { upgrade: "websocket", ...headers } });
  const ws = res.webSocket;
  const frames: Frame[] = [];
  const waiters: ((f: Frame) => void)[] = [];
  if (ws) {
    ws.addEventListener("message", (event) => {
      const frame = JSON.parse(String(event.data)) as Frame;
      const waiter = waiters.shift();
      if (waiter) waiter(frame);
      else frames.push(frame);
    });
    ws.accept();
  }
  const next = (ms = 3000) =>
    new Promise<Frame>((resolve, reject) => {
      const queued = frames.shift();
      if (queued) return resolve(queued);
      const timer = setTimeout(() => reject(new Error(`no frame within ${ms} ms`)), ms);
      waiters.push((f) => {
        clearTimeout(timer);
        resolve(f);
      });
    });
  const nextOf = async (type: string, ms = 3000) => {
    for (;;) {
      const frame = await next(ms);
      if (frame.type === type) return frame;
    }
  };
  const messageSeq = async (seq: number, ms = 3000) => {
    for (;;) {
      const frame = await nextOf("message", ms);
      if ((frame.message as { seq: number }).seq === seq) return frame;
    }
  };
  return { res, ws, next, nextOf, messageSeq };
}

async function ticketFor(key: string, conversationId: string): Promise<string> {
  const res = await api("POST", `/v1/conversations/${conversationId}/live-ticket`, key);
  expect(res.status).toBe(201);
  const body = (await res.json()) as { ticket: string; url: string; expiresAt: string };
  expect(body.url).toBe(`/v1/conversations/${conversationId}/live?ticket=${encodeURIComponent(body.ticket)}`);
  expect(Date.parse(body.expiresAt) - Date.now()).toBeLessThanOrEqual(60_000);
  return body.ticket;
}

async function revealAudits(tenantId: string): Promise<{ detail: string; actor_id: string }[]> {
  const { results } = await env.DB.prepare("SELECT detail, actor_id FROM audit_log WHERE tenant_id = ? AND action = 'message.revealed' ORDER BY id")
    .bind(tenantId)
    .all<{ detail: string; actor_id: string }>();
  return results;
}

async function keyId(key: string): Promise<string> {
  const res = await api("GET", "/v1/keys/me", key);
  expect(res.status).toBe(200);
  return ((await res.json()) as { id: string }).id;
}

const EMAIL_TEXT = "Please write to mario.rossi@example.com about order 12";

let a: Tenant;
let b: Tenant;
let viewerKey = "";
let agentKey = "";
let channel: { id: string; secret: string };
let conversationId = "";
let otherConversationId = "";
let bConversationId = "";

beforeAll(async () => {
  a = await createTenant("Live A");
  b = await createTenant("Live B");
  viewerKey = await createKey(a.ownerKey, "viewer");
  agentKey = await createKey(a.ownerKey, "agent");
  channel = await createCustomChannel(a.ownerKey);
  const first = await json(await postCustom(channel.id, channel.secret, { type: "message", id: "evt_live_0001", from: "user-live-1", text: EMAIL_TEXT }));
  conversationId = String(first.conversationId);
  const second = await json(await postCustom(channel.id, channel.secret, { type: "message", id: "evt_live_0002", from: "user-live-2", text: "hello" }));
  otherConversationId = String(second.conversationId);
  const bChannel = await createCustomChannel(b.ownerKey);
  const third = await json(await postCustom(bChannel.id, bChannel.secret, { type: "message", id: "evt_live_0003", from: "user-b", text: "hi from b" }));
  bConversationId = String(third.conversationId);
});

describe("GET /v1/keys/me", () => {
  it("tells any key its role, scopes and tenant", async () => {
    const res = await api("GET", "/v1/keys/me", viewerKey);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ role: "viewer", scopes: ["channels:read", "conversations:read", "settings:read"], tenant: { id: a.tenantId, name: "Live A" } });
    expect((await api("GET", "/v1/keys/me", "prly_" + "a".repeat(32))).status).toBe(401);
  });
});

describe("live tickets", () => {
  it("opens a staff socket that receives history, then new messages and state changes live", async () => {
    const live = await openLive(conversationId, await ticketFor(a.ownerKey, conversationId));
    expect(live.res.status).toBe(101);
    const history = await live.nextOf("history");
    expect(history).toMatchObject({ conversation: { id: conversationId, status: "open" }, messages: [{ seq: 1, text: EMAIL_TEXT, redacted: false }] });
    expect(JSON.stringify(history)).not.toContain("user-live-1");
    await postCustom(channel.id, channel.secret, { type: "message", id: "evt_live_0004", from: "user-live-1", text: "Anyone there?" });
    const pushed = await live.messageSeq(2);
    expect(pushed).toMatchObject({ message: { seq: 2, text: "Anyone there?", direction: "inbound", redacted: false } });
    expect((await api("POST", `/v1/conversations/${conversationId}/handoff`, agentKey)).status).toBe(200);
    await expect.poll(async () => ((await live.nextOf("conversation")).conversation as { status: string }).status, { timeout: 5000 }).toBe("handoff");
    live.ws?.send("ping");
    expect(await live.nextOf("pong")).toMatchObject({ type: "pong" });
    live.ws?.close();
  });

  it("opens one socket per ticket: a used ticket is refused, with nothing opened", async () => {
    const ticket = await ticketFor(agentKey, conversationId);
    const first = await openLive(conversationId, ticket);
    expect(first.res.status).toBe(101);
    expect((await first.nextOf("history")).type).toBe("history");
    for (let i = 0; i < 2; i++) {
      const again = await openLive(conversationId, ticket);
      expect(again.res.status).toBe(401);
      expect(again.ws).toBeNull();
      expect(await again.res.json()).toMatchObject({ error: { code: "unauthorized", message: expect.stringContaining("already used") } });
    }
    // A fresh ticket for the same key still works, and the first socket stays open.
    const second = await openLive(conversationId, await ticketFor(agentKey, conversationId));
    expect(second.res.status).toBe(101);
    expect((await second.nextOf("history")).type).toBe("history");
    first.ws?.send("ping");
    expect((await first.nextOf("pong")).type).toBe("pong");
    first.ws?.close();
    second.ws?.close();
  });

  it("gives viewers redacted text on the socket", async () => {
    const live = await openLive(conversationId, await ticketFor(viewerKey, conversationId));
    expect(live.res.status).toBe(101);
    const history = await live.nextOf("history");
    const text = JSON.stringify(history);
    expect(text).not.toContain("mario.rossi@example.com");
    expect(history).toMatchObject({ messages: expect.arrayContaining([expect.objectContaining({ seq: 1, redacted: true, text: expect.stringContaining("[EMAIL_1]") })]) });
    await postCustom(channel.id, channel.secret, { type: "message", id: "evt_live_0005", from: "user-live-1", text: "or call +39 333 123 4567" });
    const pushed = await live.messageSeq(3);
    expect(JSON.stringify(pushed)).not.toContain("333 123 4567");
    expect(pushed).toMatchObject({ message: { redacted: true } });
    live.ws?.close();
  });

  it("refuses expired, tampered, foreign and other-tenant tickets with nothing opened", async () => {
    const owner = await keyId(a.ownerKey);
    const claims = { tenantId: a.tenantId, conversationId, keyId: owner, role: "owner" as const };

    const expired = await mintLiveTicket(env, claims, Date.now() - 61_000);
    const e = await openLive(conversationId, expired.ticket);
    expect(e.res.status).toBe(401);
    expect(e.ws).toBeNull();
    expect(await e.res.json()).toMatchObject({ error: { code: "unauthorized" } });

    const good = await ticketFor(a.ownerKey, conversationId);
    const [v, payload = "", mac = ""] = good.split(".");
    // Tampered payload (the role raised, the tenant swapped) and a tampered mac.
    const forged = (body: Record<string, unknown>) => `${v}.${btoa(JSON.stringify(body)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}.${mac}`;
    const decoded = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as Record<string, unknown>;
    for (const ticket of [
      forged({ ...decoded, r: "admin" }),
      forged({ ...decoded, e: Date.now() + 3_600_000 }),
      `${v}.${payload}.${mac.slice(0, -2)}${mac.endsWith("AA") ? "BB" : "AA"}`,
      `${v}.${payload}`,
      "garbage",
    ]) {
      const t = await openLive(conversationId, ticket);
      expect(t.res.status, ticket).toBe(401);
      expect(t.ws).toBeNull();
    }

    // A valid ticket for one conversation does not open another.
    const wrong = await openLive(otherConversationId, good);
    expect(wrong.res.status).toBe(401);
    expect(wrong.ws).toBeNull();

    // Another tenant cannot get a ticket for this conversation, nor use its own ticket here.
    expect((await api("POST", `/v1/conversations/${conversationId}/live-ticket`, b.ownerKey)).status).toBe(404);
    const bTicket = await ticketFor(b.ownerKey, bConversationId);
    expect((await openLive(conversationId, bTicket)).res.status).toBe(401);
    // Even a correctly signed ticket naming tenant B and this conversation answers 404: the conversation is not B's.
    const bKey = await keyId(b.ownerKey);
    const crossed = await mintLiveTicket(env, { tenantId: b.tenantId, conversationId, keyId: bKey, role: "owner" });
    const x = await openLive(conversationId, crossed.ticket);
    expect(x.res.status).toBe(404);
    expect(x.ws).toBeNull();

    // A revoked key's ticket stops working at once.
    const temp = await createKey(a.ownerKey, "agent");
    const tempTicket = await ticketFor(temp, conversationId);
    expect((await api("DELETE", `/v1/keys/${await keyId(temp)}`, a.ownerKey)).status).toBe(200);
    const revoked = await openLive(conversationId, tempTicket);
    expect(revoked.res.status).toBe(401);
    expect(revoked.ws).toBeNull();

    // Not an upgrade, or a foreign origin.
    expect((await call(`/v1/conversations/${conversationId}/live?ticket=${encodeURIComponent(good)}`)).status).toBe(426);
    expect((await openLive(conversationId, good, { origin: "https://evil.example" })).res.status).toBe(403);
    // No ticket at all: a validation error, still no socket.
    expect((await call(`/v1/conversations/${conversationId}/live`, { headers: { upgrade: "websocket" } })).status).toBe(400);
  });
});

describe("POST /v1/conversations/:id/messages/:messageId/reveal", () => {
  it("needs a reason (nothing audited without one), then returns the text and audits the reason", async () => {
    const page = (await json(await api("GET", `/v1/conversations/${conversationId}/messages`, viewerKey))) as { data: { id: string; text: string; redacted: boolean }[] };
    const first = page.data[0];
    if (!first) throw new Error("no message");
    expect(first.redacted).toBe(true);
    expect(first.text).not.toContain("mario.rossi@example.com");
    const path = `/v1/conversations/${conversationId}/messages/${first.id}/reveal`;
    const before = (await revealAudits(a.tenantId)).length;

    const missing = await call(path, { method: "POST", headers: { authorization: `Bearer ${viewerKey}` } });
    expect(missing.status).toBe(400);
    expect((await api("POST", path, viewerKey, {})).status).toBe(400);
    const short = await api("POST", path, viewerKey, { reason: "abc" });
    expect(short.status).toBe(400);
    expect(await short.json()).toMatchObject({ error: { code: "validation_error" } });
    expect((await api("POST", path, viewerKey, { reason: "   x   " })).status).toBe(400);
    expect((await api("POST", path, viewerKey, { reason: "Customer asked to confirm their e-mail", extra: 1 })).status).toBe(400);
    expect(await revealAudits(a.tenantId)).toHaveLength(before);

    // Unknown message, other tenant: 404 and nothing audited.
    expect((await api("POST", `/v1/conversations/${conversationId}/messages/msg_nope/reveal`, viewerKey, { reason: "checking something" })).status).toBe(404);
    expect((await api("POST", path, b.ownerKey, { reason: "checking something" })).status).toBe(404);
    expect((await api("POST", path)).status).toBe(401);
    expect(await revealAudits(a.tenantId)).toHaveLength(before);

    const res = await api("POST", path, viewerKey, { reason: "Customer asked to confirm their e-mail" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ messageId: first.id, seq: 1, text: EMAIL_TEXT, audited: true });
    const audits = await revealAudits(a.tenantId);
    expect(audits).toHaveLength(before + 1);
    const last = audits[audits.length - 1];
    expect(last?.actor_id).toBe(await keyId(viewerKey));
    expect(JSON.parse(last?.detail ?? "{}")).toEqual({ messageId: first.id, seq: 1, role: "viewer", reason: "Customer asked to confirm their e-mail" });
    // It is visible in the tenant's audit log API too.
    const log = (await json(await api("GET", "/v1/audit?action=message.revealed", a.ownerKey))) as { data: { detail: { reason: string } }[] };
    expect(log.data[0]?.detail.reason).toBe("Customer asked to confirm their e-mail");
  });
});
