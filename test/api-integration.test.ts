import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { CHANNEL_CACHE_MS } from "../workers/support/ingest";
import { sealChannelSecrets } from "../workers/support/keyring";
import { api, call, createCustomChannel, createKey, createTenant, json, PLATFORM_KEY, postCustom, storeCounts } from "./helpers";

describe("operator and tenancy", () => {
  it("creates a tenant with an owner key shown once and stored hashed", async () => {
    const res = await api("POST", "/v1/tenants", PLATFORM_KEY, { name: "Pizzeria Da Mario", slug: "da-mario" });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { tenant: { id: string; slug: string }; apiKey: { key: string; prefix: string; role: string } };
    expect(body.tenant.slug).toBe("da-mario");
    expect(body.apiKey.key).toMatch(/^prly_[a-z2-7]{32}$/);
    expect(body.apiKey.key.startsWith(body.apiKey.prefix)).toBe(true);
    const stored = await env.DB.prepare("SELECT key_hash, prefix FROM api_keys WHERE tenant_id = ?").bind(body.tenant.id).first<{ key_hash: string; prefix: string }>();
    expect(stored?.key_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(stored)).not.toContain(body.apiKey.key);
    const again = await api("POST", "/v1/tenants", PLATFORM_KEY, { name: "Other", slug: "da-mario" });
    expect(again.status).toBe(409);
    expect((await json(again)).error).toMatchObject({ code: "conflict" });
  });

  it("refuses tenant creation without the platform key", async () => {
    const before = await env.DB.prepare("SELECT COUNT(*) AS n FROM tenants").first<{ n: number }>();
    for (const key of [undefined, "wrong", "prly_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]) {
      const res = await api("POST", "/v1/tenants", key, { name: "Nope" });
      expect(res.status).toBe(401);
      expect((await json(res)).error).toMatchObject({ code: "unauthorized" });
    }
    const after = await env.DB.prepare("SELECT COUNT(*) AS n FROM tenants").first<{ n: number }>();
    expect(after?.n).toBe(before?.n);
  });

  it("validates bodies with field paths, and stores nothing", async () => {
    const res = await api("POST", "/v1/tenants", PLATFORM_KEY, { name: "", slug: "Bad Slug!", extra: 1 });
    expect(res.status).toBe(400);
    const body = (await json(res)) as { error: { code: string; issues: { path: string }[] } };
    expect(body.error.code).toBe("validation_error");
    const paths = body.error.issues.map((i) => i.path);
    expect(paths).toContain("name");
    expect(paths).toContain("slug");
  });

  it("answers malformed JSON, wrong content types and oversized bodies with the error shape", async () => {
    const malformed = await call("/v1/tenants", { method: "POST", headers: { authorization: `Bearer ${PLATFORM_KEY}`, "content-type": "application/json" }, body: "{nope" });
    expect(malformed.status).toBe(400);
    expect((await json(malformed)).error).toMatchObject({ code: "invalid_json" });
    const form = await call("/v1/tenants", { method: "POST", headers: { authorization: `Bearer ${PLATFORM_KEY}`, "content-type": "text/plain" }, body: "name=x" });
    expect(form.status).toBe(415);
    expect((await json(form)).error).toMatchObject({ code: "unsupported_media_type" });
    const huge = await call("/v1/tenants", {
      method: "POST",
      headers: { authorization: `Bearer ${PLATFORM_KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "x".repeat(1024 * 1024 + 10) }),
    });
    expect(huge.status).toBe(413);
    expect((await json(huge)).error).toMatchObject({ code: "payload_too_large" });
    const unknown = await call("/v1/nothing-here");
    expect(unknown.status).toBe(404);
    expect((await json(unknown)).error).toMatchObject({ code: "not_found" });
  });

  it("enforces roles: viewers and agents cannot write what they may not", async () => {
    const { ownerKey } = await createTenant();
    const viewer = await createKey(ownerKey, "viewer");
    const agent = await createKey(ownerKey, "agent");
    const byViewer = await api("POST", "/v1/channels", viewer, { type: "custom", name: "x" });
    expect(byViewer.status).toBe(403);
    const keyByAgent = await api("POST", "/v1/keys", agent, { name: "x", role: "viewer" });
    expect(keyByAgent.status).toBe(403);
    const adminKey = await createKey(ownerKey, "admin");
    const ownerByAdmin = await api("POST", "/v1/keys", adminKey, { name: "escalate", role: "owner" });
    expect(ownerByAdmin.status).toBe(403);
    const channels = await env.DB.prepare("SELECT COUNT(*) AS n FROM channels c JOIN api_keys k ON k.tenant_id = c.tenant_id WHERE k.key_hash IS NOT NULL AND c.name = 'x'").first<{ n: number }>();
    expect(channels?.n).toBe(0);
  });

  it("lists and revokes keys; a revoked key stops working; the last owner key cannot be revoked", async () => {
    const { ownerKey } = await createTenant();
    const agent = await createKey(ownerKey, "agent");
    const list = (await json(await api("GET", "/v1/keys", ownerKey))) as { data: { id: string; role: string; prefix: string }[] };
    expect(list.data).toHaveLength(2);
    expect(JSON.stringify(list)).not.toContain(agent);
    const agentId = list.data.find((k) => k.role === "agent")?.id ?? "";
    expect((await api("GET", "/v1/conversations", agent)).status).toBe(200);
    expect((await api("DELETE", `/v1/keys/${agentId}`, ownerKey)).status).toBe(200);
    expect((await api("GET", "/v1/conversations", agent)).status).toBe(401);
    const ownerId = list.data.find((k) => k.role === "owner")?.id ?? "";
    const last = await api("DELETE", `/v1/keys/${ownerId}`, ownerKey);
    expect(last.status).toBe(409);
  });
});

describe("channels", () => {
  it("creates a custom channel with a webhook URL and a one-time signing secret, stored encrypted", async () => {
    const { ownerKey } = await createTenant();
    const res = await api("POST", "/v1/channels", ownerKey, { type: "custom", name: "Zapier", config: { callbackUrl: "https://hooks.example.com/parley" } });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { id: string; webhookUrl: string; generatedSecrets: { signingSecret: string }; secretHints: Record<string, string> };
    expect(body.webhookUrl).toBe(`https://parley.test/webhooks/custom/${body.id}`);
    expect(body.generatedSecrets.signingSecret).toMatch(/^whsec_/);
    const row = await env.DB.prepare("SELECT secrets FROM channels WHERE id = ?").bind(body.id).first<{ secrets: string }>();
    expect(row?.secrets).toMatch(/^v1\./);
    expect(row?.secrets).not.toContain(body.generatedSecrets.signingSecret);
    const got = await json(await api("GET", `/v1/channels/${body.id}`, ownerKey));
    expect(JSON.stringify(got)).not.toContain(body.generatedSecrets.signingSecret);
  });

  it("validates per-type config", async () => {
    const { ownerKey } = await createTenant();
    const res = await api("POST", "/v1/channels", ownerKey, { type: "twilio_sms", name: "SMS", config: { accountSid: "nope" }, secrets: { authToken: "short" } });
    expect(res.status).toBe(400);
    const issues = ((await json(res)) as { error: { issues: { path: string }[] } }).error.issues.map((i) => i.path);
    expect(issues).toEqual(expect.arrayContaining(["config.accountSid", "secrets.authToken"]));
    const count = await env.DB.prepare("SELECT COUNT(*) AS n FROM channels WHERE name = 'SMS'").first<{ n: number }>();
    expect(count?.n).toBe(0);
  });

  it("rotates a custom signing secret with a grace period for the old one", async () => {
    const { ownerKey } = await createTenant();
    const channel = await createCustomChannel(ownerKey);
    const rotated = (await json(await api("POST", `/v1/channels/${channel.id}/rotate-secret`, ownerKey))) as { generatedSecrets: { signingSecret: string } };
    const next = rotated.generatedSecrets.signingSecret;
    expect(next).not.toBe(channel.secret);
    const viaOld = await postCustom(channel.id, channel.secret, { type: "message", id: "m-old", from: "+393331112222", text: "old secret" });
    expect(viaOld.status).toBe(200);
    const viaNew = await postCustom(channel.id, next, { type: "message", id: "m-new", from: "+393331112222", text: "new secret" });
    expect(viaNew.status).toBe(200);
  });

  it("refuses private callback URLs unless insecure callbacks are allowed", async () => {
    const { ownerKey } = await createTenant();
    const prev = env.ALLOW_INSECURE_CALLBACKS;
    (env as { ALLOW_INSECURE_CALLBACKS: string }).ALLOW_INSECURE_CALLBACKS = "false";
    try {
      const res = await api("POST", "/v1/channels", ownerKey, { type: "custom", name: "internal", config: { callbackUrl: "http://169.254.169.254/latest" } });
      expect(res.status).toBe(400);
    } finally {
      (env as { ALLOW_INSECURE_CALLBACKS: string }).ALLOW_INSECURE_CALLBACKS = prev;
    }
  });

  it("accepts a secret rotated through another isolate at once, and stops a channel deleted elsewhere within the cache time", async () => {
    const { ownerKey } = await createTenant();
    const channel = await createCustomChannel(ownerKey);
    // The first event puts the channel row in this isolate's cache.
    expect((await postCustom(channel.id, channel.secret, { type: "message", id: "c1", from: "+393331112222", text: "one" })).status).toBe(200);
    // Another isolate rotates the secret: only D1 changes, this isolate's copy is stale.
    const next = "rotated-elsewhere-0123456789abcdef";
    const sealed = await sealChannelSecrets(env, channel.id, { signingSecret: next });
    await env.DB.prepare("UPDATE channels SET secrets = ? WHERE id = ?").bind(sealed, channel.id).run();
    expect((await postCustom(channel.id, next, { type: "message", id: "c2", from: "+393331112222", text: "two" })).status).toBe(200);
    const before = await storeCounts();
    const stale = await postCustom(channel.id, channel.secret, { type: "message", id: "c3", from: "+393331112222", text: "three" });
    expect(stale.status).toBe(401);
    expect((await storeCounts()).security).toBe(before.security + 1);
    // Another isolate deletes the channel: served from the cache at most CHANNEL_CACHE_MS more.
    await env.DB.prepare("UPDATE channels SET status = 'deleted' WHERE id = ?").bind(channel.id).run();
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(Date.now() + CHANNEL_CACHE_MS + 1);
      const gone = await postCustom(channel.id, next, { type: "message", id: "c4", from: "+393331112222", text: "four" });
      expect(gone.status).toBe(404);
    } finally {
      vi.useRealTimers();
    }
  });

  it("deleted channels answer 404 on their webhook", async () => {
    const { ownerKey } = await createTenant();
    const channel = await createCustomChannel(ownerKey);
    expect((await api("DELETE", `/v1/channels/${channel.id}`, ownerKey)).status).toBe(200);
    const res = await postCustom(channel.id, channel.secret, { type: "message", id: "m1", from: "+393331112222", text: "hi" });
    expect(res.status).toBe(404);
  });
});

describe("custom webhook ingest and conversations", () => {
  it("stores a message once, lists it, and scopes it to the tenant", async () => {
    const a = await createTenant("A");
    const b = await createTenant("B");
    const channel = await createCustomChannel(a.ownerKey);
    const event = { type: "message", id: "evt-1", from: "+39 333 123 4567", text: "Ciao, dov'è il mio ordine 483920?" };
    const first = await postCustom(channel.id, channel.secret, event);
    expect(first.status).toBe(200);
    const firstBody = (await first.json()) as { conversationId: string; duplicate: boolean; seq: number };
    expect(firstBody).toMatchObject({ duplicate: false, seq: 1 });
    for (let i = 0; i < 2; i++) {
      const dup = (await json(await postCustom(channel.id, channel.secret, event))) as { duplicate: boolean };
      expect(dup.duplicate).toBe(true);
    }
    const list = (await json(await api("GET", "/v1/conversations", a.ownerKey))) as { data: { id: string; messageCount: number }[] };
    expect(list.data).toEqual([expect.objectContaining({ id: firstBody.conversationId, messageCount: 1 })]);
    const messages = (await json(await api("GET", `/v1/conversations/${firstBody.conversationId}/messages`, a.ownerKey))) as { data: { text: string; seq: number }[] };
    expect(messages.data.map((m) => [m.seq, m.text])).toEqual([[1, event.text]]);
    const detail = await json(await api("GET", `/v1/conversations/${firstBody.conversationId}`, a.ownerKey));
    expect(detail).toMatchObject({ address: "tel:+393331234567", status: "open" });
    // Another tenant sees nothing, and the id answers 404.
    expect(((await json(await api("GET", "/v1/conversations", b.ownerKey))) as { data: unknown[] }).data).toHaveLength(0);
    expect((await api("GET", `/v1/conversations/${firstBody.conversationId}`, b.ownerKey)).status).toBe(404);
    expect((await api("GET", `/v1/conversations/${firstBody.conversationId}/messages`, b.ownerKey)).status).toBe(404);
    expect((await api("POST", `/v1/conversations/${firstBody.conversationId}/handoff`, b.ownerKey)).status).toBe(404);
    // The D1 index holds no text and no raw identifier.
    const row = await env.DB.prepare("SELECT * FROM conversations WHERE id = ?").bind(firstBody.conversationId).first();
    expect(JSON.stringify(row)).not.toMatch(/483920|3331234567|ordine/);
  });

  it("refuses bad, missing and stale signatures with 401 and stores nothing but a security-log line", async () => {
    const { ownerKey } = await createTenant();
    const channel = await createCustomChannel(ownerKey);
    const before = await storeCounts();
    const event = { type: "message", id: "evt-bad", from: "+393331234567", text: "hi" };
    const wrong = await postCustom(channel.id, "whsec_wrong_secret_value", event);
    expect(wrong.status).toBe(401);
    expect((await json(wrong)).error).toMatchObject({ code: "invalid_signature" });
    const missing = await call(`/webhooks/custom/${channel.id}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(event) });
    expect(missing.status).toBe(401);
    const stale = await postCustom(channel.id, channel.secret, event, Math.floor(Date.now() / 1000) - 301);
    expect(stale.status).toBe(401);
    const after = await storeCounts();
    expect(after.conversations).toBe(before.conversations);
    expect(after.security).toBe(before.security + 3);
  });

  it("rejects malformed events after verifying the signature, storing nothing", async () => {
    const { ownerKey } = await createTenant();
    const channel = await createCustomChannel(ownerKey);
    const before = await storeCounts();
    for (const event of [{ type: "message", id: "", from: "x" }, { type: "nope" }, { type: "message", id: "e", from: "+393331234567", text: "" }, [1, 2]]) {
      const res = await postCustom(channel.id, channel.secret, event);
      expect(res.status).toBe(400);
      expect((await json(res)).error).toMatchObject({ code: "validation_error" });
    }
    expect((await storeCounts()).conversations).toBe(before.conversations);
  });

  it("paginates conversations with a cursor and filters by status", async () => {
    const { ownerKey } = await createTenant();
    const channel = await createCustomChannel(ownerKey);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const res = (await json(await postCustom(channel.id, channel.secret, { type: "message", id: `p-${i}`, from: `+3933300000${i}0`, text: `hello ${i}` }))) as { conversationId: string };
      ids.push(res.conversationId);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = (await json(await api("GET", `/v1/conversations?limit=2${cursor ? `&cursor=${cursor}` : ""}`, ownerKey))) as { data: { id: string }[]; nextCursor: string | null };
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((d) => d.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen.sort()).toEqual([...ids].sort());
    expect((await api("POST", `/v1/conversations/${ids[0]}/close`, ownerKey)).status).toBe(200);
    const closed = (await json(await api("GET", "/v1/conversations?status=closed", ownerKey))) as { data: { id: string }[] };
    expect(closed.data.map((d) => d.id)).toEqual([ids[0]]);
    expect((await api("GET", "/v1/conversations?cursor=garbage!", ownerKey)).status).toBe(400);
    expect((await api("GET", "/v1/conversations?limit=5000", ownerKey)).status).toBe(400);
  });

  it("viewers read transcripts with identifiers masked and cannot reply", async () => {
    const { ownerKey } = await createTenant();
    const viewer = await createKey(ownerKey, "viewer");
    const channel = await createCustomChannel(ownerKey);
    const res = (await json(await postCustom(channel.id, channel.secret, { type: "message", id: "v-1", from: "mario.rossi@example.com", text: "write me at mario.rossi@example.com" }))) as { conversationId: string };
    const page = (await json(await api("GET", `/v1/conversations/${res.conversationId}/messages`, viewer))) as { data: { text: string; redacted: boolean }[] };
    expect(page.data[0]?.redacted).toBe(true);
    expect(page.data[0]?.text).not.toContain("mario.rossi@example.com");
    const detail = await json(await api("GET", `/v1/conversations/${res.conversationId}`, viewer));
    expect(String(detail.address)).not.toContain("mario.rossi");
    const send = await api("POST", `/v1/conversations/${res.conversationId}/messages`, viewer, { text: "hi" });
    expect(send.status).toBe(403);
  });

  it("serves the OpenAPI document and health", async () => {
    const doc = (await json(await call("/v1/openapi.json"))) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/webhooks/custom/{channelId}", "/webhooks/twilio/{channelId}", "/v1/conversations", "/v1/conversations/{id}/messages", "/v1/channels", "/v1/keys", "/v1/tenants"]));
    const health = await call("/health");
    expect(health.status).toBe(200);
  });
});
