import { env } from "cloudflare:workers";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Conversation, MAX_SEND_ATTEMPTS } from "../durable-objects/conversation";
import { api, createCustomChannel, createTenant, json, postCustom } from "./helpers";

interface Msg {
  id: string;
  seq: number;
  status: string;
  attempts: number;
  error: string | null;
  providerMessageId: string | null;
  direction: string;
}

const stubFor = (id: string) => env.CONVERSATION.get(env.CONVERSATION.idFromName(id));

async function conversationWithMessage(callbackUrl = "https://hooks.example.com/parley") {
  const { ownerKey } = await createTenant();
  const channel = await createCustomChannel(ownerKey, callbackUrl);
  const res = (await json(await postCustom(channel.id, channel.secret, { type: "message", id: "first", from: "+393331234567", text: "hello" }))) as { conversationId: string };
  return { ownerKey, channel, conversationId: res.conversationId };
}

async function messages(ownerKey: string, conversationId: string): Promise<Msg[]> {
  const body = (await json(await api("GET", `/v1/conversations/${conversationId}/messages?limit=200`, ownerKey))) as { data: Msg[] };
  return body.data;
}

/** Makes the head of the outbox due now, then runs the alarm (what the runtime does when the backoff expires). */
async function runDueAlarm(conversationId: string): Promise<void> {
  const stub = stubFor(conversationId);
  await runInDurableObject(stub, (_instance, state) => {
    state.storage.sql.exec("UPDATE outbox SET next_attempt_at = 0");
  });
  await runDurableObjectAlarm(stub);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("ordering and dedupe inside the conversation object", () => {
  it("200 concurrent webhooks into one conversation → seq 1..200 without gap", { timeout: 60_000 }, async () => {
    const { ownerKey } = await createTenant();
    const channel = await createCustomChannel(ownerKey);
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => postCustom(channel.id, channel.secret, { type: "message", id: `burst-${i}`, from: "+393330000001", text: `m${i}` })),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    const first = (await json(results[0] as Response)) as { conversationId: string };
    const all = await messages(ownerKey, first.conversationId);
    expect(all.map((m) => m.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    const index = (await json(await api("GET", `/v1/conversations/${first.conversationId}`, ownerKey))) as { messageCount: number };
    expect(index.messageCount).toBe(200);
    // The D1 row exists from the first ack; its count follows from the object's alarm (one index write per run).
    await vi.waitFor(
      async () => {
        const row = await env.DB.prepare("SELECT message_count FROM conversations WHERE id = ?").bind(first.conversationId).first<{ message_count: number }>();
        expect(row?.message_count).toBe(200);
      },
      { timeout: 20_000, interval: 100 },
    );
  });

  it("the same provider message id delivered concurrently is stored once", async () => {
    const { ownerKey } = await createTenant();
    const channel = await createCustomChannel(ownerKey);
    const event = { type: "message", id: "SMdup", from: "+393330000002", text: "once" };
    const results = await Promise.all(Array.from({ length: 10 }, () => postCustom(channel.id, channel.secret, event)));
    const bodies = (await Promise.all(results.map((r) => r.json()))) as { duplicate: boolean; conversationId: string }[];
    expect(bodies.filter((b) => !b.duplicate)).toHaveLength(1);
    expect(await messages(ownerKey, bodies[0]?.conversationId ?? "")).toHaveLength(1);
  });

  it("re-syncs a lost D1 index row from the alarm", async () => {
    const { ownerKey, conversationId } = await conversationWithMessage();
    await env.DB.prepare("DELETE FROM conversations WHERE id = ?").bind(conversationId).run();
    expect((await api("GET", `/v1/conversations/${conversationId}`, ownerKey)).status).toBe(404);
    // What a failed D1 write leaves behind: the index version behind, and an alarm to retry.
    await runInDurableObject(stubFor(conversationId), async (_i, state) => {
      state.storage.sql.exec("UPDATE meta SET value = '0' WHERE key = 'index_version'");
      await state.storage.setAlarm(Date.now() + 60_000);
    });
    await runDurableObjectAlarm(stubFor(conversationId));
    expect((await api("GET", `/v1/conversations/${conversationId}`, ownerKey)).status).toBe(200);
  });
});

describe("index and agent-health pushes from alarm runs", () => {
  const indexCount = async (id: string) =>
    (await env.DB.prepare("SELECT message_count FROM conversations WHERE id = ?").bind(id).first<{ message_count: number }>())?.message_count;
  const unreported = (id: string) =>
    runInDurableObject(stubFor(id), (_i, state) => Number(state.storage.sql.exec("SELECT COUNT(*) AS n FROM tasks WHERE state = 'done' AND reported = 0").one().n));
  const burst = async (channel: { id: string; secret: string }, prefix: string) => {
    for (let i = 0; i < 3; i++) expect((await postCustom(channel.id, channel.secret, { type: "message", id: `${prefix}${i}`, from: "+393331234567", text: `msg ${i}` })).status).toBe(200);
  };

  it("a quiet run pushes at once; a busy one at most every 5 s, and the next run catches up", async () => {
    const { ownerKey, channel, conversationId } = await conversationWithMessage();
    await runDurableObjectAlarm(stubFor(conversationId));
    // One message decided: pushed at once.
    expect(await indexCount(conversationId)).toBe(1);
    expect(await unreported(conversationId)).toBe(0);
    // A burst decided in one run right after a push: held back (nothing lost, still unreported, an alarm stays set).
    await burst(channel, "a");
    await runInDurableObject(stubFor(conversationId), (_i, state) => state.storage.sql.exec("UPDATE tasks SET next_attempt_at = 0 WHERE state = 'pending'"));
    await runDurableObjectAlarm(stubFor(conversationId));
    expect(await indexCount(conversationId)).toBe(1);
    expect(await unreported(conversationId)).toBe(3);
    expect(await runInDurableObject(stubFor(conversationId), (_i, state) => state.storage.getAlarm())).not.toBeNull();
    // The follow-up run (nothing new to decide) pushes everything.
    await runDurableObjectAlarm(stubFor(conversationId));
    expect(await indexCount(conversationId)).toBe(4);
    expect(await unreported(conversationId)).toBe(0);
    const health = (await json(await api("GET", "/v1/agent-health", ownerKey))) as { totals: Record<string, number> };
    expect(Object.values(health.totals).reduce((a, b) => a + b, 0)).toBe(4);
  });
});

describe("outbound delivery from alarms", () => {
  it("retries 5xx with backoff and ends sent, signed for the custom callback", async () => {
    const { ownerKey, channel, conversationId } = await conversationWithMessage();
    const seen: { url: string; headers: Headers; body: string }[] = [];
    let calls = 0;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const req = new Request(input, init);
      // Read inside the object's context: request bodies cannot cross Durable Objects.
      seen.push({ url: req.url, headers: new Headers(req.headers), body: await req.text() });
      calls += 1;
      return calls <= 2 ? new Response("down", { status: 503 }) : Response.json({ id: "ext-42" }, { status: 200 });
    });
    const sent = await api("POST", `/v1/conversations/${conversationId}/messages`, ownerKey, { text: "Your order ships today" });
    expect(sent.status).toBe(201);
    const queued = (await sent.json()) as Msg;
    expect(queued.status).toBe("queued");
    await runDurableObjectAlarm(stubFor(conversationId));
    let out = (await messages(ownerKey, conversationId)).find((m) => m.id === queued.id);
    expect(out).toMatchObject({ status: "queued", attempts: 1, error: "http_503" });
    await runDueAlarm(conversationId);
    await runDueAlarm(conversationId);
    out = (await messages(ownerKey, conversationId)).find((m) => m.id === queued.id);
    expect(out).toMatchObject({ status: "sent", attempts: 3, providerMessageId: "ext-42", error: null });
    expect(seen).toHaveLength(3);
    const last = seen[2];
    expect(last?.url).toBe("https://hooks.example.com/parley");
    expect(last?.headers.get("idempotency-key")).toBe(queued.id);
    const body = last?.body ?? "";
    const sig = last?.headers.get("x-parley-signature") ?? "";
    const { verifyParleySignature } = await import("../lib/signatures");
    expect(await verifyParleySignature([channel.secret], body, sig, Math.floor(Date.now() / 1000))).toEqual({ ok: true });
    expect(JSON.parse(body)).toMatchObject({ type: "message", id: queued.id, to: "+393331234567", text: "Your order ships today" });
  });

  it("a final 4xx fails at once with the reason; it is never silently dropped", async () => {
    const { ownerKey, conversationId } = await conversationWithMessage();
    vi.spyOn(globalThis, "fetch").mockImplementation(async () => new Response("bad", { status: 400 }));
    const queued = (await json(await api("POST", `/v1/conversations/${conversationId}/messages`, ownerKey, { text: "x" }))) as unknown as Msg;
    await runDurableObjectAlarm(stubFor(conversationId));
    const out = (await messages(ownerKey, conversationId)).find((m) => m.id === queued.id);
    expect(out).toMatchObject({ status: "failed", error: "http_400", attempts: 1 });
  });

  it(`gives up after ${MAX_SEND_ATTEMPTS} retryable failures and records why`, async () => {
    const { ownerKey, conversationId } = await conversationWithMessage();
    vi.spyOn(globalThis, "fetch").mockImplementation(async () => new Response("slow down", { status: 429, headers: { "retry-after": "1" } }));
    const queued = (await json(await api("POST", `/v1/conversations/${conversationId}/messages`, ownerKey, { text: "x" }))) as unknown as Msg;
    for (let i = 0; i < MAX_SEND_ATTEMPTS; i++) await runDueAlarm(conversationId);
    const out = (await messages(ownerKey, conversationId)).find((m) => m.id === queued.id);
    expect(out?.status).toBe("failed");
    expect(out?.attempts).toBe(MAX_SEND_ATTEMPTS);
    expect(out?.error).toContain("http_429");
    const outbox = await runInDurableObject(stubFor(conversationId), (_i, state) => state.storage.sql.exec("SELECT COUNT(*) AS n FROM outbox").one().n);
    expect(outbox).toBe(0);
  });

  it("delivers in sequence order and honours Idempotency-Key", async () => {
    const { ownerKey, conversationId } = await conversationWithMessage();
    const bodies: string[] = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      bodies.push(String((JSON.parse(String(init?.body)) as { text: string }).text));
      return Response.json({}, { status: 200 });
    });
    const first = await api("POST", `/v1/conversations/${conversationId}/messages`, ownerKey, { text: "one" }, { "idempotency-key": "k1" });
    const replay = await api("POST", `/v1/conversations/${conversationId}/messages`, ownerKey, { text: "one" }, { "idempotency-key": "k1" });
    expect(first.status).toBe(201);
    expect(replay.status).toBe(200);
    expect(((await replay.json()) as Msg).id).toBe(((await first.json()) as Msg).id);
    await api("POST", `/v1/conversations/${conversationId}/messages`, ownerKey, { text: "two" });
    await api("POST", `/v1/conversations/${conversationId}/messages`, ownerKey, { text: "three" });
    // Alarms also fire on their own here; run them until the outbox is empty.
    for (let i = 0; i < 20 && bodies.length < 3; i++) {
      await runDurableObjectAlarm(stubFor(conversationId));
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(bodies).toEqual(["one", "two", "three"]);
  });

  it("provider statuses move forward only, and a status that beats the send response is kept", async () => {
    const { ownerKey, channel, conversationId } = await conversationWithMessage();
    vi.spyOn(globalThis, "fetch").mockImplementation(async () => Response.json({ id: "ext-1" }, { status: 200 }));
    const queued = (await json(await api("POST", `/v1/conversations/${conversationId}/messages`, ownerKey, { text: "x" }))) as unknown as Msg;
    await runDurableObjectAlarm(stubFor(conversationId));
    const status = (s: string) => postCustom(channel.id, channel.secret, { type: "status", conversationId, messageId: queued.id, status: s });
    expect((await json(await status("delivered"))).applied).toBe(true);
    expect((await json(await status("sent"))).applied).toBe(false);
    expect((await messages(ownerKey, conversationId)).find((m) => m.id === queued.id)?.status).toBe("delivered");
    expect((await json(await status("read"))).applied).toBe(true);
    // Early status: recorded against a provider id before the send completes.
    const stub = stubFor(conversationId);
    await stub.applyStatus({ providerMessageId: "ext-2", status: "delivered" });
    vi.spyOn(globalThis, "fetch").mockImplementation(async () => Response.json({ id: "ext-2" }, { status: 200 }));
    const second = (await json(await api("POST", `/v1/conversations/${conversationId}/messages`, ownerKey, { text: "y" }))) as unknown as Msg;
    await runDurableObjectAlarm(stub);
    expect((await messages(ownerKey, conversationId)).find((m) => m.id === second.id)?.status).toBe("delivered");
  });

  it("a status for an unknown conversation creates nothing", async () => {
    const { channel } = await conversationWithMessage();
    const before = await env.DB.prepare("SELECT COUNT(*) AS n FROM conversations").first<{ n: number }>();
    const res = await postCustom(channel.id, channel.secret, { type: "status", conversationId: "conv_doesnotexist", messageId: "msg_x", status: "delivered" });
    expect(res.status).toBe(200);
    expect((await json(res)).applied).toBe(false);
    const after = await env.DB.prepare("SELECT COUNT(*) AS n FROM conversations").first<{ n: number }>();
    expect(after?.n).toBe(before?.n);
  });
});

describe("conversation state", () => {
  it("hands off, closes, reopens on inbound, and audits each change", async () => {
    const { ownerKey, channel, conversationId } = await conversationWithMessage();
    expect(((await json(await api("POST", `/v1/conversations/${conversationId}/handoff`, ownerKey, { reason: "billing question" }))) as { status: string }).status).toBe("handoff");
    expect(((await json(await api("POST", `/v1/conversations/${conversationId}/close`, ownerKey))) as { status: string }).status).toBe("closed");
    await postCustom(channel.id, channel.secret, { type: "message", id: "again", from: "+393331234567", text: "one more thing" });
    expect(((await json(await api("GET", `/v1/conversations/${conversationId}`, ownerKey))) as { status: string }).status).toBe("open");
    const audit = (await json(await api("GET", "/v1/audit?limit=50", ownerKey))) as { data: { action: string; targetId: string | null }[] };
    const actions = audit.data.filter((a) => a.targetId === conversationId).map((a) => a.action);
    expect(actions).toEqual(expect.arrayContaining(["conversation.handoff", "conversation.close"]));
  });
});

describe("storage schema", () => {
  it("upgrades an object created under schema 1 in place when it starts, keeping its messages", async () => {
    const stub = stubFor(`schema-upgrade-${crypto.randomUUID()}`);
    await runInDurableObject(stub, async (_instance, state) => {
      const sql = state.storage.sql;
      for (const table of ["messages", "outbox", "early_status", "tasks", "vault", "used_tickets", "meta"]) sql.exec(`DROP TABLE IF EXISTS ${table}`);
      // The storage as schema version 1 left it.
      sql.exec(`
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE messages (
          seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, direction TEXT NOT NULL, author TEXT NOT NULL, author_id TEXT,
          body TEXT NOT NULL, media TEXT NOT NULL DEFAULT '[]', provider_message_id TEXT, status TEXT NOT NULL, error TEXT,
          attempts INTEGER NOT NULL DEFAULT 0, client_key TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
        );
        CREATE UNIQUE INDEX messages_inbound_dedupe ON messages (provider_message_id) WHERE direction = 'inbound';
        CREATE INDEX messages_outbound_provider ON messages (provider_message_id) WHERE direction = 'outbound';
        CREATE UNIQUE INDEX messages_client_key ON messages (client_key) WHERE client_key IS NOT NULL;
        CREATE TABLE outbox (message_seq INTEGER PRIMARY KEY, next_attempt_at INTEGER NOT NULL, last_error TEXT);
        CREATE TABLE early_status (provider_message_id TEXT PRIMARY KEY, status TEXT NOT NULL, error TEXT, received_at INTEGER NOT NULL);
        INSERT INTO meta (key, value) VALUES ('schema_version', '1');
        INSERT INTO messages (seq, id, direction, author, body, provider_message_id, status, created_at, updated_at)
          VALUES (1, 'msg_old', 'inbound', 'end_user', '{"t":"hello"}', 'p-1', 'received', 1, 1);
      `);
      // A new instance on this storage runs the constructor's migration, as after a deploy.
      new Conversation(state, env);
      await state.blockConcurrencyWhile(async () => {});
      expect(sql.exec("SELECT value FROM meta WHERE key = 'schema_version'").one().value).toBe("5");
      const columns = sql.exec("PRAGMA table_info(messages)").toArray().map((c) => String(c.name));
      expect(columns).toEqual(expect.arrayContaining(["intent", "enc"]));
      expect({ ...sql.exec("SELECT id, enc, intent FROM messages").one() }).toEqual({ id: "msg_old", enc: 0, intent: null });
      const objects = sql.exec("SELECT name FROM sqlite_master").toArray().map((r) => String(r.name));
      expect(objects).toEqual(expect.arrayContaining(["tasks", "tasks_pending", "vault", "tasks_unreported", "used_tickets"]));
    });
  });
});
