/**
 * Property tests over every webhook parser and the web-chat socket: Twilio forms,
 * WhatsApp Cloud JSON, custom signed JSON (routes enumerated from /v1/openapi.json),
 * and chat frames. Hostile input, signed or not, never produces a 5xx or a stack
 * trace; errors carry `{ error: { code, message } }`; a refused delivery stores
 * nothing (D1 rows and the conversation's messages are unchanged).
 */
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { metaSignature, parleySignature, twilioSignature } from "../lib/signatures";
import { WEBHOOK_BODY_LIMIT } from "../workers/app";
import { deepArray, deepObject, hostileStrings, PROTO_KEYS } from "./fuzz-values";
import { api, BASE, call, createCustomChannel, createTenant, json, settle, type Tenant } from "./helpers";

const ACCOUNT_SID = `AC${"b".repeat(32)}`;
const AUTH_TOKEN = "fuzz-twilio-auth-token-0123456789";
const APP_SECRET = "fuzz-meta-app-secret-0123456789";
const PHONE_NUMBER_ID = "106540352242999";

// ------------------------------------------------------------------ hostile values

const hostileString = hostileStrings(["<Response><Say>hi</Say></Response>", "STOP", "+393331234567", "393331234567", "whatsapp:+393331234567", "mario@example.com"], 1000);
const hostileUrl = fc.constantFrom("javascript:alert(1)", "http://169.254.169.254/latest/meta-data", "file:///etc/passwd", "https://evil.example/x", "not a url", "", "https://", "https://user:pass@evil.example/");
/** Stands for a body one byte over the webhook limit (built only when sent, so failure reports stay short). */
const HUGE = "<huge body>";
const anyJson = fc.jsonValue({ maxDepth: 3 });
const maybe = <T>(arb: fc.Arbitrary<T>, other: fc.Arbitrary<unknown> = fc.oneof(hostileString, anyJson)) => fc.oneof({ arbitrary: arb, weight: 4 }, { arbitrary: other, weight: 1 });

/** JSON text with `__proto__` / `constructor` as own keys (JSON.stringify cannot produce them). */
function withProtoKeys(json: string): string {
  const pollution = '"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}';
  return json.startsWith("{") && json.length > 2 ? `{${pollution},${json.slice(1)}` : `{${pollution}}`;
}

/** Turns a structured value into the raw body text, sometimes made hostile on the way. */
function rawJson(value: fc.Arbitrary<unknown>): fc.Arbitrary<{ kind: string; text: string }> {
  return fc.oneof(
    { arbitrary: value.map((v) => ({ kind: "shaped", text: JSON.stringify(v) ?? "null" })), weight: 6 },
    { arbitrary: value.map((v) => ({ kind: "proto", text: withProtoKeys(JSON.stringify(v) ?? "") })), weight: 2 },
    { arbitrary: fc.constantFrom({ kind: "deep-array", text: deepArray }, { kind: "deep-object", text: deepObject }), weight: 1 },
    { arbitrary: fc.constantFrom({ kind: "empty", text: "" }, { kind: "truncated", text: '{"object":' }, { kind: "nul", text: "{}\u0000" }, { kind: "null", text: "null" }), weight: 1 },
    { arbitrary: anyJson.map((v) => ({ kind: "json", text: JSON.stringify(v) })), weight: 1 },
  );
}

// ------------------------------------------------------------------ checks

const STACK = /\bat [\w$.<>[\]]+ \([^)]*:\d+:\d+\)|\.(?:ts|js|mjs|c\+\+):\d+|node_modules\/|\b(?:TypeError|RangeError|SyntaxError|ReferenceError|URIError|D1_ERROR|SQLITE_\w+)\b/;
const stats = { sent: 0, byStatus: new Map<number, number>(), frames: 0 };

/** Checks the response contract; returns status and body text. */
async function expectContract(res: Response, what: string): Promise<{ status: number; text: string }> {
  stats.sent++;
  stats.byStatus.set(res.status, (stats.byStatus.get(res.status) ?? 0) + 1);
  const text = await res.text();
  const where = `${what} → ${res.status}: ${text.slice(0, 300)}`;
  expect(res.status, where).toBeLessThan(500);
  expect(STACK.test(text), `internals leaked: ${where}`).toBe(false);
  if (res.status >= 400) {
    expect(res.headers.get("content-type") ?? "", where).toContain("application/json");
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    expect(typeof body.error?.code, where).toBe("string");
    expect(typeof body.error?.message, where).toBe("string");
  }
  return { status: res.status, text };
}

/** What a refused delivery must not change: D1 rows (logs of refusals aside) and messages anywhere. */
async function storeSnapshot(): Promise<Record<string, number>> {
  // Accepted messages finish in their objects' alarms (a "STOP" withdraws consent there): let that land
  // first, so only what the request under test did can show up between two snapshots.
  const { results: conversations } = await env.DB.prepare("SELECT id FROM conversations").all<{ id: string }>();
  for (const c of conversations) await settle(c.id);
  const { results } = await env.DB.prepare(
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'd1_%' AND name NOT IN ('security_log', 'audit_log', 'audit_chain', 'sweep_state', 'agent_health', 'agent_health_keys')",
  ).all<{ name: string }>();
  const select = results.map((r) => `(SELECT COUNT(*) FROM "${r.name}") AS "${r.name}"`).join(", ");
  // Row counts, not the index's message counts: those follow accepted messages from the objects' alarms,
  // so they may catch up while a refused request is answered. The seeded conversation's messages are read from its object.
  const row = await env.DB.prepare(`SELECT ${select}`).first<Record<string, number>>();
  const seeded = await api("GET", `/v1/conversations/${fx.seedConversation}/messages?limit=100`, fx.tenant.ownerKey);
  const messages = seeded.status === 200 ? ((await seeded.json()) as { data: unknown[] }).data.length : -1;
  return { ...row, seed_messages: messages };
}

async function expectUnchangedIfRefused(status: number, before: Record<string, number>, what: string): Promise<void> {
  if (status >= 400) expect(await storeSnapshot(), `${what} → ${status} stored something`).toEqual(before);
}

// ------------------------------------------------------------------ fixtures

interface Fixtures {
  tenant: Tenant;
  twilio: string;
  whatsapp: string;
  verifyToken: string;
  custom: { id: string; secret: string };
  webChat: string;
  seedConversation: string;
}
let fx: Fixtures;
let webhookTemplates: string[] = [];

beforeAll(async () => {
  // Nothing leaves the process: media downloads, Graph lookups and callbacks get a quick 404.
  const realFetch = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input, init);
    if (request.url.startsWith(BASE)) return realFetch(input, init);
    return new Response("not here", { status: 404 });
  });
  const doc = (await (await call("/v1/openapi.json")).json()) as { paths: Record<string, unknown> };
  webhookTemplates = Object.keys(doc.paths).filter((p) => p.startsWith("/webhooks/") || p.startsWith("/chat/"));
  const tenant = await createTenant("Fuzz hooks");
  const twilio = await api("POST", "/v1/channels", tenant.ownerKey, { type: "twilio_sms", name: "SMS", config: { accountSid: ACCOUNT_SID, from: "+15005550006" }, secrets: { authToken: AUTH_TOKEN } });
  const whatsapp = await api("POST", "/v1/channels", tenant.ownerKey, {
    type: "whatsapp_cloud",
    name: "WA",
    config: { phoneNumberId: PHONE_NUMBER_ID },
    secrets: { appSecret: APP_SECRET, accessToken: "EAAG-fuzz-access-token" },
  });
  const webChat = await api("POST", "/v1/channels", tenant.ownerKey, { type: "web_chat", name: "Site" });
  const custom = await createCustomChannel(tenant.ownerKey);
  const wa = (await json(whatsapp)) as { id: string; generatedSecrets: { verifyToken: string } };
  const seed = await postCustomRaw(custom, JSON.stringify({ type: "message", id: "seed", from: "+393330000100", text: "seed" }));
  fx = {
    tenant,
    twilio: String((await json(twilio)).id),
    whatsapp: wa.id,
    verifyToken: wa.generatedSecrets.verifyToken,
    custom,
    webChat: String((await json(webChat)).id),
    seedConversation: String((await json(seed)).conversationId),
  };
}, 60_000);

afterAll(() => {
  vi.restoreAllMocks();
  console.log(`fuzz-webhooks: ${stats.sent} requests, ${stats.frames} chat frames; statuses ${JSON.stringify(Object.fromEntries([...stats.byStatus].sort((a, b) => a[0] - b[0])))}`);
});

async function postCustomRaw(channel: { id: string; secret: string }, body: string, at = Math.floor(Date.now() / 1000)): Promise<Response> {
  return call(`/webhooks/custom/${channel.id}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-parley-signature": await parleySignature(channel.secret, body, at) },
    body,
  });
}

// ------------------------------------------------------------------ properties

describe("webhook fuzzing", () => {
  it("the OpenAPI document lists every webhook route", () => {
    expect(webhookTemplates).toEqual(
      expect.arrayContaining(["/webhooks/twilio/{channelId}", "/webhooks/twilio/{channelId}/status", "/webhooks/whatsapp/{channelId}", "/webhooks/custom/{channelId}", "/chat/{channelId}"]),
    );
  });

  it("unsigned, mis-signed and malformed deliveries to every webhook route: 4xx, nothing stored", { timeout: 120_000 }, async () => {
    const channelFor = (template: string) =>
      template.includes("twilio") ? fx.twilio : template.includes("whatsapp") ? fx.whatsapp : template.includes("custom") ? fx.custom.id : fx.webChat;
    const bodies = fc.oneof(
      rawJson(anyJson).map((b): string | Uint8Array<ArrayBuffer> => b.text),
      fc.constantFrom<string | Uint8Array<ArrayBuffer>>(
        HUGE,
        new Uint8Array([0x42, 0x6f, 0x64, 0x79, 0x3d, 0xff, 0xfe]),
        new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc0, 0xaf, 0x22, 0x7d]),
        "Body=hi&From=%2B393331234567&MessageSid=SM" + "1".repeat(32) + "&AccountSid=" + ACCOUNT_SID,
        "a=%ff%fe&b=%",
      ),
    );
    const sample = fc.record({
      template: fc.constantFrom(...webhookTemplates),
      channel: fc.oneof({ arbitrary: fc.constant<string | null>(null), weight: 4 }, { arbitrary: fc.constantFrom<string | null>("ch_" + "a".repeat(26), "%ff", "..%2F..%2Fv1%2Ftenants", "__proto__", "x".repeat(3000)), weight: 1 }),
      method: fc.constantFrom("GET", "POST", "PUT", "DELETE"),
      query: fc.oneof(fc.constant(""), fc.constantFrom("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=123", "hub.mode=subscribe&hub.challenge=%ff", "session=short", "session=" + "a".repeat(30), "conversation=__proto__&message=x")),
      contentType: fc.constantFrom<string | null>(null, "application/json", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x", "application/json; charset=latin1"),
      signature: fc.oneof(
        fc.constant<string | null>(null),
        fc.constantFrom<string | null>("", "t=abc,v1=zz", `t=${"9".repeat(30)},v1=${"0".repeat(64)}`, "sha256=" + "0".repeat(64), "sha256=zz", "v1=,t=", "x".repeat(5000), "t=1,v1=a\r\nX: y"),
      ),
      upgrade: fc.boolean(),
      origin: fc.constantFrom<string | null>(null, BASE, "https://evil.example", "null"),
      body: bodies,
    });
    await fc.assert(
      fc.asyncProperty(sample, async (s) => {
        const path = s.template.replace("{channelId}", s.channel ?? channelFor(s.template)) + (s.query ? `?${s.query}` : "");
        const headers: Record<string, string> = {};
        if (s.contentType) headers["content-type"] = s.contentType;
        if (s.signature !== null) for (const h of ["x-twilio-signature", "x-hub-signature-256", "x-parley-signature"]) headers[h] = s.signature;
        if (s.upgrade) headers.upgrade = "websocket";
        if (s.origin) headers.origin = s.origin;
        const body = s.body === HUGE ? "x".repeat(WEBHOOK_BODY_LIMIT + 1) : s.body;
        let request: Request;
        try {
          request = new Request(BASE + path, { method: s.method, headers, ...(s.method === "GET" ? {} : { body }) });
        } catch {
          return; // the fetch API refuses CR/LF in header values: such a request cannot be sent
        }
        const before = await storeSnapshot();
        const res = await call(path, { method: request.method, headers: request.headers, ...(s.method === "GET" ? {} : { body }) });
        if (res.webSocket) {
          // A well-formed upgrade from an allowed origin is legitimate: close it and move on.
          res.webSocket.accept();
          res.webSocket.close(1000, "fuzz");
          expect(res.status).toBe(101);
          return;
        }
        const { status, text } = await expectContract(res, `${s.method} ${path.slice(0, 120)}`);
        if (status === 200 && s.template === "/webhooks/whatsapp/{channelId}" && s.method === "GET") {
          expect(text).toMatch(/^[\w-]{1,128}$/);
          return;
        }
        // Public chat routes (the banner's cookie notice, say) may answer 200; a webhook delivery never does without a signature.
        if (s.method === "POST" && s.template.startsWith("/webhooks/")) expect(status, `${s.method} ${path.slice(0, 120)} accepted without a valid signature: ${text.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
        await expectUnchangedIfRefused(status, before, `${s.method} ${path.slice(0, 80)}`);
      }),
      { numRuns: 60, endOnFailure: true },
    );
  });

  it("signed Twilio forms with hostile fields: TwiML 200 or a 4xx, never a 5xx", { timeout: 120_000 }, async () => {
    const sid = fc.oneof(
      fc.stringMatching(/^(SM|MM)[0-9a-f]{32}$/),
      hostileString,
      fc.constantFrom("SM" + "g".repeat(32), "SM" + "1".repeat(31), "sm" + "1".repeat(32)),
    );
    const form = fc.record(
      {
        MessageSid: sid,
        AccountSid: maybe(fc.constant(ACCOUNT_SID), hostileString),
        From: maybe(fc.constantFrom("+393471234567", "whatsapp:+393471234567", "+15005550006"), hostileString),
        To: hostileString,
        Body: hostileString,
        NumMedia: fc.oneof(fc.constantFrom("0", "1", "2", "10", "11", "-1", "1e3", "0x1", "1.5", "NaN", "Infinity", ""), hostileString),
        MediaUrl0: fc.oneof(hostileUrl, hostileString),
        MediaContentType0: hostileString,
        MediaUrl1: hostileUrl,
        MessageStatus: fc.oneof(fc.constantFrom("sent", "delivered", "read", "undelivered", "failed", "queued"), hostileString),
        ErrorCode: hostileString,
      },
      { requiredKeys: [] },
    );
    const extra = fc.dictionary(fc.oneof(fc.constantFrom(...PROTO_KEYS, "__proto__[polluted]", "constructor[prototype][x]"), hostileString), hostileString, { maxKeys: 3 });
    await fc.assert(
      fc.asyncProperty(form, extra, fc.boolean(), fc.constantFrom("", "?conversation=__proto__", "?conversation=conv_x&message=%ff"), async (fields, more, status, query) => {
        const params = new Map<string, string[]>();
        for (const [k, v] of [...Object.entries(more), ...Object.entries(fields)]) params.set(k, [...(params.get(k) ?? []), String(v)]);
        const path = `/webhooks/twilio/${fx.twilio}${status ? "/status" : ""}${query}`;
        const body = new URLSearchParams([...params].flatMap(([k, vs]) => vs.map((v) => [k, v] as [string, string]))).toString();
        // Sign what the server will parse (URLSearchParams normalises lone surrogates the same way on both sides).
        const parsed = new Map<string, string[]>();
        for (const [k, v] of new URLSearchParams(body)) parsed.set(k, [...(parsed.get(k) ?? []), v]);
        const signature = await twilioSignature(AUTH_TOKEN, BASE + path, parsed);
        const before = await storeSnapshot();
        const res = await call(path, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": signature }, body });
        const { status: code, text } = await expectContract(res, `twilio ${status ? "status" : "inbound"} ${body.slice(0, 160)}`);
        if (code === 200) expect(text).toContain("<Response>");
        if (code === 401) throw new Error(`a correctly signed form was refused: ${body.slice(0, 200)}`);
        await expectUnchangedIfRefused(code, before, "twilio");
      }),
      { numRuns: 40, endOnFailure: true },
    );
  });

  it("signed WhatsApp notifications with hostile structure: 200 or a 4xx, never a 5xx", { timeout: 120_000 }, async () => {
    const media = fc.record({ id: maybe(fc.string({ maxLength: 20 })), mime_type: maybe(fc.constantFrom("image/jpeg", "application/x-msdownload")), caption: hostileString, filename: hostileString }, { requiredKeys: [] });
    const message = fc.record(
      {
        from: maybe(fc.constantFrom("393471234567", "15550001111"), hostileString),
        id: maybe(fc.string({ minLength: 1, maxLength: 30 }).map((s) => `wamid.${s}`), hostileString),
        timestamp: maybe(fc.constantFrom("1700000000", "-1", "99999999999999999")),
        type: maybe(fc.constantFrom("text", "image", "audio", "document", "sticker", "button", "interactive", "reaction", "unknown")),
        text: maybe(fc.record({ body: hostileString })),
        image: media,
        document: media,
        button: maybe(fc.record({ text: hostileString })),
        interactive: maybe(fc.record({ button_reply: fc.record({ id: hostileString, title: hostileString }) }, { requiredKeys: [] })),
      },
      { requiredKeys: [] },
    );
    const status = fc.record({ id: hostileString, status: maybe(fc.constantFrom("sent", "delivered", "read", "failed", "deleted")), recipient_id: maybe(fc.constantFrom("393471234567"), hostileString), errors: maybe(fc.array(fc.record({ code: maybe(fc.integer()), title: hostileString }, { requiredKeys: [] }), { maxLength: 2 })) }, { requiredKeys: [] });
    const payload = fc.record({
      object: maybe(fc.constant("whatsapp_business_account")),
      entry: maybe(
        fc.array(
          fc.record({
            id: maybe(fc.constant("102290129340398")),
            changes: maybe(
              fc.array(
                fc.record({
                  field: maybe(fc.constantFrom("messages", "account_update")),
                  value: maybe(
                    fc.record(
                      {
                        messaging_product: maybe(fc.constant("whatsapp")),
                        metadata: maybe(fc.record({ phone_number_id: maybe(fc.constantFrom(PHONE_NUMBER_ID, "1")) })),
                        messages: maybe(fc.array(message, { maxLength: 3 })),
                        statuses: maybe(fc.array(status, { maxLength: 2 })),
                      },
                      { requiredKeys: [] },
                    ),
                  ),
                }),
                { maxLength: 2 },
              ),
            ),
          }),
          { maxLength: 2 },
        ),
      ),
    });
    const bodies = fc.oneof(
      { arbitrary: rawJson(payload).map((b) => ({ kind: b.kind, bytes: new Uint8Array(new TextEncoder().encode(b.text)) })), weight: 8 },
      { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => ({ kind: "bytes", bytes: new Uint8Array([0x7b, 0xff, ...b]) })), weight: 1 },
    );
    await fc.assert(
      fc.asyncProperty(bodies, async ({ kind, bytes }) => {
        const before = await storeSnapshot();
        const res = await call(`/webhooks/whatsapp/${fx.whatsapp}`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-hub-signature-256": await metaSignature(APP_SECRET, bytes) },
          body: bytes,
        });
        const { status: code, text } = await expectContract(res, `whatsapp [${kind}] ${new TextDecoder().decode(bytes.slice(0, 160))}`);
        if (code === 200) expect(JSON.parse(text)).toEqual({ received: expect.any(Number), duplicates: expect.any(Number) });
        if (code === 401) throw new Error("a correctly signed notification was refused");
        await expectUnchangedIfRefused(code, before, `whatsapp [${kind}]`);
      }),
      { numRuns: 40, endOnFailure: true },
    );
  });

  it("signed custom events with hostile fields: 200 or a 4xx, never a 5xx", { timeout: 120_000 }, async () => {
    const message = fc.record(
      {
        type: maybe(fc.constant("message")),
        id: maybe(fc.string({ minLength: 1, maxLength: 30 }), hostileString),
        from: maybe(fc.constantFrom("+393471234567", "mario@example.com", "id:crm-42"), hostileString),
        text: maybe(hostileString),
        attachments: maybe(fc.array(fc.record({ url: maybe(fc.constant("https://files.example.com/a.pdf"), hostileUrl), contentType: maybe(hostileString), filename: maybe(hostileString) }, { requiredKeys: ["url"] }), { maxLength: 11 })),
      },
      { requiredKeys: ["type"] },
    );
    const status = fc.record(
      {
        type: maybe(fc.constant("status")),
        conversationId: maybe(fc.constantFrom("conv_nope", "__proto__"), hostileString),
        messageId: hostileString,
        status: maybe(fc.constantFrom("sent", "delivered", "read", "failed")),
        error: hostileString,
      },
      { requiredKeys: ["type"] },
    );
    const bodies = rawJson(fc.oneof(message, status, anyJson));
    await fc.assert(
      fc.asyncProperty(bodies, fc.constantFrom(0, 0, 0, -301, 301), async ({ kind, text }, skew) => {
        const before = await storeSnapshot();
        const res = await postCustomRaw(fx.custom, text, Math.floor(Date.now() / 1000) + skew);
        const { status: code, text: answer } = await expectContract(res, `custom [${kind}] ${text.slice(0, 160)}`);
        if (code === 200) expect(JSON.parse(answer)).toMatchObject({ received: true });
        if (code === 401 && skew === 0) throw new Error("a correctly signed event was refused");
        await expectUnchangedIfRefused(code, before, `custom [${kind}]`);
      }),
      { numRuns: 40, endOnFailure: true },
    );
  });

  it("web-chat frames: every hostile frame gets an error frame, the socket survives, nothing is stored", { timeout: 120_000 }, async () => {
    const session = "fuzz-visitor-session-000000001";
    const res = await call(`/chat/${fx.webChat}?session=${session}`, { headers: { upgrade: "websocket", origin: BASE } });
    const ws = res.webSocket;
    if (!ws) throw new Error(`no socket: ${res.status}`);
    const inbox: string[] = [];
    const waiters: ((frame: string) => void)[] = [];
    let closed: number | null = null;
    ws.addEventListener("message", (event) => {
      const data = typeof event.data === "string" ? event.data : "<binary>";
      const waiter = waiters.shift();
      if (waiter) waiter(data);
      else inbox.push(data);
    });
    ws.addEventListener("close", (event) => {
      closed = event.code;
    });
    ws.accept();
    const next = () =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const parse = (frame: string) => resolve(JSON.parse(frame) as Record<string, unknown>);
        const queued = inbox.shift();
        if (queued !== undefined) return parse(queued);
        const timer = setTimeout(() => reject(new Error("no frame within 5 s")), 5000);
        waiters.push((frame) => {
          clearTimeout(timer);
          parse(frame);
        });
      });
    const history = await next();
    expect(history).toMatchObject({ type: "history" });
    const conversationId = String(history.conversationId);
    const conversations = () => env.DB.prepare("SELECT COUNT(*) AS n FROM conversations").first<{ n: number }>().then((r) => r?.n ?? 0);
    const before = await conversations();
    const frameBody = fc.record(
      {
        type: maybe(fc.constant("message")),
        id: maybe(fc.string({ minLength: 1, maxLength: 70 }), hostileString),
        text: maybe(hostileString),
      },
      { requiredKeys: [] },
    );
    const frames = fc.oneof(
      { arbitrary: rawJson(frameBody).map((b) => b.text), weight: 6 },
      { arbitrary: fc.constantFrom("x".repeat(16 * 1024 + 1), "[".repeat(7000) + "]".repeat(7000), "\u0000", "\uD800", ""), weight: 1 },
      { arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => b.buffer as ArrayBuffer), weight: 1 },
    );
    let stored = 0;
    await fc.assert(
      fc.asyncProperty(frames, async (frame) => {
        ws.send(frame);
        stats.frames++;
        const answer = await next();
        const where = `frame ${typeof frame === "string" ? frame.slice(0, 120) : "<binary>"} → ${JSON.stringify(answer).slice(0, 200)}`;
        expect(STACK.test(JSON.stringify(answer)), where).toBe(false);
        if (answer.type === "ack") {
          if (answer.duplicate === false) stored++;
          return;
        }
        expect(answer.type, where).toBe("error");
        expect(["payload_too_large", "invalid_json", "validation_error", "rate_limited"], where).toContain(answer.code);
        expect(typeof answer.message, where).toBe("string");
      }),
      { numRuns: 60, endOnFailure: true },
    );
    expect(closed).toBeNull();
    // The socket still works, and only acknowledged frames were stored.
    const final = JSON.stringify({ type: "message", id: "fuzz-final-0001", text: "still here" });
    ws.send(final);
    let answer = await next();
    if (answer.type === "error" && answer.code === "rate_limited") {
      // 60 frames in a few seconds exceed the per-conversation frame limit: wait out the window, as a client must.
      await new Promise((resolve) => setTimeout(resolve, Number(answer.retryAfter ?? 10) * 1000 + 100));
      ws.send(final);
      answer = await next();
    }
    expect(answer).toMatchObject({ type: "ack", duplicate: false });
    const page = (await json(await api("GET", `/v1/conversations/${conversationId}/messages?limit=100`, fx.tenant.ownerKey))) as { data: unknown[] };
    expect(page.data).toHaveLength(stored + 1);
    expect(await conversations()).toBeLessThanOrEqual(before + 1);
    ws.close(1000, "done");
  });
});
