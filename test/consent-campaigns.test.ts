import { env } from "cloudflare:workers";
import { runDurableObjectAlarm } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { optOutLine } from "../lib/consent/campaign-rules";
import { utf8 } from "../lib/encoding";
import { metaSignature } from "../lib/signatures";
import { api, call, createKey, createTenant, json } from "./helpers";

const DAY = 86_400_000;

interface Recipient {
  position: number;
  subjectHash: string;
  decision: string;
  detail: string | null;
  conversationId: string | null;
  messageId: string | null;
}
interface Campaign {
  id: string;
  counts: Record<string, number>;
  total: number;
}
interface Batch {
  campaign: Campaign;
  recipients: Recipient[];
  skippedDuplicates: number;
}

let providerCalls: { url: string; body: string }[] = [];

beforeEach(() => {
  providerCalls = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const req = new Request(input, init);
    providerCalls.push({ url: req.url, body: await req.text() });
    if (req.url.includes("api.twilio.com")) return Response.json({ sid: `SM${crypto.randomUUID().replace(/-/g, "")}`, status: "queued" }, { status: 201 });
    if (req.url.includes("graph.facebook.com")) return Response.json({ messages: [{ id: `wamid.${crypto.randomUUID()}` }] });
    if (req.url.startsWith("https://mailer.example.com/")) return Response.json({ id: crypto.randomUUID() });
    return new Response("unexpected", { status: 599 });
  });
});

afterEach(() => {
  vi.restoreAllMocks();
});

async function channel(ownerKey: string, type: "twilio_sms" | "whatsapp_cloud" | "custom"): Promise<string> {
  const bodies = {
    twilio_sms: { type, name: "SMS", config: { accountSid: `AC${"a".repeat(32)}`, from: "+15005550006" }, secrets: { authToken: "twilio-auth-token-0123456789" } },
    whatsapp_cloud: { type, name: "WA", config: { phoneNumberId: "106540352242922" }, secrets: { appSecret: "meta-app-secret-0123456789", accessToken: "EAAG-test-token" } },
    custom: { type, name: "Mailer", config: { callbackUrl: "https://mailer.example.com/parley" } },
  };
  const res = await api("POST", "/v1/channels", ownerKey, bodies[type]);
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function marketingNotice(ownerKey: string): Promise<string> {
  return ((await json(await api("GET", "/v1/notices?key=marketing_keyword&locale=it", ownerKey))) as { data: { id: string }[] }).data[0]?.id ?? "";
}

async function consent(ownerKey: string, subject: string, purpose: string, status: "granted" | "withdrawn", extra: Record<string, unknown> = {}): Promise<void> {
  let noticeId: string | undefined;
  if (status === "granted") {
    if (purpose.startsWith("marketing_")) noticeId = await marketingNotice(ownerKey);
    else {
      const created = await api("POST", "/v1/notices", ownerKey, { purposes: [purpose], locale: "it", text: `Informativa di prova per la finalità ${purpose}, versione di test.` });
      noticeId = ((await created.json()) as { id: string }).id;
    }
  }
  const res = await api("POST", "/v1/consents", ownerKey, { subject, purpose, status, method: "api", ...(noticeId ? { noticeId } : {}), ...extra });
  expect(res.status, await res.clone().text()).toBe(201);
}

async function hashOf(ownerKey: string, subject: string): Promise<string> {
  return ((await json(await api("GET", `/v1/consents?subject=${encodeURIComponent(subject)}`, ownerKey))) as { subjectHash: string }).subjectHash;
}

async function settle(conversationId: string): Promise<void> {
  const stub = env.CONVERSATION.get(env.CONVERSATION.idFromName(conversationId));
  for (let i = 0; i < 3; i++) if (!(await runDurableObjectAlarm(stub))) return;
}

async function outboundTexts(ownerKey: string, conversationId: string): Promise<{ text: string; author: string; authorId: string | null }[]> {
  const body = (await json(await api("GET", `/v1/conversations/${conversationId}/messages`, ownerKey))) as unknown as {
    data: { direction: string; text: string; author: string; authorId: string | null }[];
  };
  return body.data.filter((m) => m.direction === "outbound").map(({ text, author, authorId }) => ({ text, author, authorId }));
}

async function stored(tenantId: string) {
  const q = (sql: string) => env.DB.prepare(sql).bind(tenantId).first<{ n: number }>().then((r) => r?.n ?? 0);
  return {
    campaigns: await q("SELECT COUNT(*) AS n FROM campaigns WHERE tenant_id = ?"),
    recipients: await q("SELECT COUNT(*) AS n FROM campaign_recipients r JOIN campaigns c ON c.id = r.campaign_id WHERE c.tenant_id = ?"),
    conversations: await q("SELECT COUNT(*) AS n FROM conversations WHERE tenant_id = ?"),
    rpo: await q("SELECT COUNT(*) AS n FROM rpo_numbers WHERE tenant_id = ?"),
  };
}

async function expectError(res: Response, status: number, code: string, path?: string) {
  expect(res.status).toBe(status);
  const body = (await res.json()) as { error: { code: string; message: string; issues?: { path: string }[] } };
  expect(body.error.code).toBe(code);
  if (path) expect(body.error.issues?.map((i) => i.path)).toContain(path);
}

describe("campaign decisions", () => {
  it("an SMS campaign over a mixed audience yields exactly the expected per-recipient decisions, and sends only to those allowed", async () => {
    const { tenantId, ownerKey } = await createTenant("Bottega Rossi");
    const sms = await channel(ownerKey, "twilio_sms");
    const p = (n: number) => `+39347200000${n}`;
    await consent(ownerKey, p(0), "marketing_sms", "granted");
    // p(1): nothing on file.
    await consent(ownerKey, p(2), "marketing_sms", "granted");
    await consent(ownerKey, p(2), "marketing_sms", "withdrawn");
    await consent(ownerKey, p(3), "marketing_sms", "granted"); // declared 12 in the audience entry
    await consent(ownerKey, p(4), "marketing_sms", "granted", { age: 13 });
    await consent(ownerKey, p(4), "parental_authorization", "granted");
    await consent(ownerKey, p(5), "marketing_sms", "granted", { birthDate: new Date(Date.now() - 12 * 365.25 * DAY).toISOString().slice(0, 10) });
    await consent(ownerKey, p(6), "marketing_email", "granted"); // another channel's purpose
    await consent(ownerKey, p(7), "marketing_sms", "granted");
    const before = await stored(tenantId);
    const audience = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => ({ address: p(n), variables: { name: `Cliente ${n}` }, ...(n === 3 ? { age: 12 } : {}) }));
    const res = await api("POST", "/v1/campaigns", ownerKey, {
      name: "Saldi",
      purpose: "marketing_sms",
      channelId: sms,
      locale: "it",
      template: "Ciao {{name}}, da Bottega Rossi i saldi al 30% iniziano sabato!",
      audience,
    });
    expect(res.status).toBe(201);
    const batch = (await res.json()) as Batch;
    expect(batch.recipients.map((r) => [r.position, r.decision, r.detail])).toEqual([
      [0, "sent", "consent"],
      [1, "no_consent", null],
      [2, "opted_out", null],
      [3, "minor_without_authorization", null],
      [4, "sent", "consent"],
      [5, "minor_without_authorization", null],
      [6, "no_consent", null],
      [7, "sent", "consent"],
    ]);
    const expectedCounts = { sent: 3, failed: 0, no_consent: 2, opted_out: 1, rpo_registered: 0, minor_without_authorization: 2, restricted: 0 };
    expect(batch.campaign).toMatchObject({ counts: expectedCounts, total: 8 });
    for (const [i, r] of batch.recipients.entries()) expect(r.subjectHash).toBe(await hashOf(ownerKey, p(i)));

    // GET lists the same, with filters and a position cursor.
    const got = (await json(await api("GET", `/v1/campaigns/${batch.campaign.id}`, ownerKey))) as unknown as Campaign & { recipients: Recipient[] };
    expect(got.counts).toEqual(expectedCounts);
    expect(got.recipients).toEqual(batch.recipients);
    const sentOnly = (await json(await api("GET", `/v1/campaigns/${batch.campaign.id}?decision=sent&limit=2`, ownerKey))) as unknown as { recipients: Recipient[]; nextCursor: string };
    expect(sentOnly.recipients.map((r) => r.position)).toEqual([0, 4]);
    const rest = (await json(await api("GET", `/v1/campaigns/${batch.campaign.id}?decision=sent&after=${sentOnly.nextCursor}`, ownerKey))) as unknown as { recipients: Recipient[]; nextCursor: string | null };
    expect(rest.recipients.map((r) => r.position)).toEqual([7]);
    expect(rest.nextCursor).toBeNull();
    const list = (await json(await api("GET", "/v1/campaigns", ownerKey))) as { data: Campaign[] };
    expect(list.data.map((c) => c.id)).toEqual([batch.campaign.id]);

    // The allowed recipients got the rendered message with the opt-out line, from the system, through Twilio.
    for (const r of batch.recipients.filter((x) => x.decision === "sent")) {
      expect(r.conversationId).toMatch(/^conv_/);
      await settle(r.conversationId ?? "");
      const texts = await outboundTexts(ownerKey, r.conversationId ?? "");
      const expected = `Ciao Cliente ${r.position}, da Bottega Rossi i saldi al 30% iniziano sabato!\n\n${optOutLine("it", "consent")}`;
      expect(texts).toEqual([{ text: expected, author: "system", authorId: batch.campaign.id }]);
      expect(providerCalls.some((c) => new URLSearchParams(c.body).get("Body") === expected && new URLSearchParams(c.body).get("To") === p(r.position))).toBe(true);
    }
    // Blocked recipients: no conversation, nothing sent.
    expect((await stored(tenantId)).conversations - before.conversations).toBe(3);
    expect(providerCalls.filter((c) => c.url.includes("api.twilio.com"))).toHaveLength(3);
    // D1 keeps subject hashes only.
    const rows = JSON.stringify((await env.DB.prepare("SELECT * FROM campaign_recipients WHERE campaign_id = ?").bind(batch.campaign.id).all()).results);
    expect(rows).not.toMatch(/347200000/);
    expect(rows).not.toContain("Cliente");
  });

  it("e-mail: soft spam reaches existing customers without consent (never after an opt-out), with an opt-out line", async () => {
    const { ownerKey } = await createTenant("Bottega Rossi");
    const mailer = await channel(ownerKey, "custom");
    await consent(ownerKey, "ex-optout@example.com", "marketing_email", "withdrawn");
    await consent(ownerKey, "fan@example.com", "marketing_email", "granted");
    const res = await api("POST", "/v1/campaigns", ownerKey, {
      purpose: "marketing_email",
      channelId: mailer,
      template: "New arrivals similar to what you bought last time.",
      audience: [
        { address: "Customer@Example.com", existingCustomer: true },
        { address: "ex-optout@example.com", existingCustomer: true },
        { address: "stranger@example.com" },
        { address: "fan@example.com" },
      ],
    });
    expect(res.status).toBe(201);
    const batch = (await res.json()) as Batch;
    expect(batch.recipients.map((r) => [r.decision, r.detail])).toEqual([
      ["sent", "soft_spam"],
      ["opted_out", null],
      ["no_consent", null],
      ["sent", "consent"],
    ]);
    const softSpam = await outboundTexts(ownerKey, batch.recipients[0]?.conversationId ?? "");
    expect(softSpam[0]?.text).toBe(`New arrivals similar to what you bought last time.\n\n${optOutLine("en", "soft_spam")}`);
    const consented = await outboundTexts(ownerKey, batch.recipients[3]?.conversationId ?? "");
    expect(consented[0]?.text).toBe(`New arrivals similar to what you bought last time.\n\n${optOutLine("en", "consent")}`);
    await settle(batch.recipients[0]?.conversationId ?? "");
    const delivered = providerCalls.find((c) => c.url === "https://mailer.example.com/parley");
    expect(JSON.parse(delivered?.body ?? "{}")).toMatchObject({ to: "customer@example.com", text: softSpam[0]?.text });
  });

  it("WhatsApp: a consented recipient outside the 24-hour window is recorded as failed with its code", async () => {
    const { ownerKey } = await createTenant();
    const wa = await channel(ownerKey, "whatsapp_cloud");
    await consent(ownerKey, "+393473000001", "marketing_whatsapp", "granted");
    await consent(ownerKey, "+393473000002", "marketing_whatsapp", "granted");
    // +393473000002 wrote to the business a moment ago: its service window is open.
    const raw = JSON.stringify({
      object: "whatsapp_business_account",
      entry: [{ id: "1", changes: [{ field: "messages", value: { messaging_product: "whatsapp", metadata: { display_phone_number: "1", phone_number_id: "106540352242922" }, messages: [{ from: "393473000002", id: "wamid.in1", timestamp: "1", type: "text", text: { body: "ciao" } }] } }] }],
    });
    const hook = await call(`/webhooks/whatsapp/${wa}`, { method: "POST", headers: { "content-type": "application/json", "x-hub-signature-256": await metaSignature("meta-app-secret-0123456789", utf8(raw)) }, body: raw });
    expect(hook.status).toBe(200);
    const res = await api("POST", "/v1/campaigns", ownerKey, { purpose: "marketing_whatsapp", channelId: wa, template: "Offerta!", audience: [{ address: "+393473000001" }, { address: "+393473000002" }] });
    const batch = (await res.json()) as Batch;
    expect(batch.recipients.map((r) => [r.decision, r.detail])).toEqual([
      ["failed", "outside_service_window"],
      ["sent", "consent"],
    ]);
    expect(batch.campaign.counts).toMatchObject({ sent: 1, failed: 1 });
  });

  it("more recipients can be added; people already in the campaign are skipped and never messaged twice", async () => {
    const { ownerKey } = await createTenant();
    const sms = await channel(ownerKey, "twilio_sms");
    await consent(ownerKey, "+393474000001", "marketing_sms", "granted");
    await consent(ownerKey, "+393474000002", "marketing_sms", "granted");
    const first = (await json(await api("POST", "/v1/campaigns", ownerKey, { purpose: "marketing_sms", channelId: sms, template: "Promo", audience: [{ address: "+393474000001" }] }))) as unknown as Batch;
    const more = await api("POST", `/v1/campaigns/${first.campaign.id}/recipients`, ownerKey, { audience: [{ address: "00393474000001" }, { address: "+39 347 400 0002" }, { address: "+393474000003" }] });
    expect(more.status).toBe(200);
    const batch = (await more.json()) as Batch;
    expect(batch.skippedDuplicates).toBe(1);
    expect(batch.recipients.map((r) => [r.position, r.decision])).toEqual([
      [2, "sent"],
      [3, "no_consent"],
    ]);
    expect(batch.campaign).toMatchObject({ total: 3, counts: { sent: 2, no_consent: 1 } });
    expect(await outboundTexts(ownerKey, first.recipients[0]?.conversationId ?? "")).toHaveLength(1);
    await expectError(await api("POST", `/v1/campaigns/cmp_nope/recipients`, ownerKey, { audience: [{ address: "+393474000009" }] }), 404, "not_found");
    await expectError(await api("POST", `/v1/campaigns/${first.campaign.id}/recipients`, ownerKey, { audience: [{ address: "+393474000009", existingCustomer: true }] }), 400, "validation_error", "audience.0.existingCustomer");
    const other = await createTenant();
    await expectError(await api("GET", `/v1/campaigns/${first.campaign.id}`, other.ownerKey), 404, "not_found");
  });
});

describe("telemarketing and the opposition register (RPO)", () => {
  it("is refused while the register is absent or older than 15 days", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const body = { purpose: "telemarketing", audience: [{ address: "+393475000001", publicDirectory: true }] };
    await expectError(await api("POST", "/v1/campaigns", ownerKey, body), 409, "conflict");
    const stale = new Date(Date.now() - 16 * DAY).toISOString();
    const put = await api("PUT", "/v1/rpo-register", ownerKey, { consultedAt: stale, numbers: ["+393475000009"] });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ numbers: 1, fresh: false, consultedAt: stale });
    await expectError(await api("POST", "/v1/campaigns", ownerKey, body), 409, "conflict");
    const s = await stored(tenantId);
    expect(s.campaigns).toBe(0);
    expect(s.recipients).toBe(0);
  });

  it("decides against a fresh register: numbers on it are blocked unless they consented after the consultation", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const n = (i: number) => `+39347600000${i}`;
    const yesterday = new Date(Date.now() - DAY).toISOString();
    expect((await api("PUT", "/v1/rpo-register", ownerKey, { consultedAt: yesterday, numbers: [n(1), n(2)] })).status).toBe(200);
    await consent(ownerKey, n(2), "telemarketing", "granted"); // granted after the consultation
    await consent(ownerKey, n(5), "telemarketing", "withdrawn");
    const audience = [{ address: n(1) }, { address: n(2) }, { address: n(3), publicDirectory: true }, { address: n(4) }, { address: n(5), publicDirectory: true }];
    const res = await api("POST", "/v1/campaigns", ownerKey, { purpose: "telemarketing", audience });
    expect(res.status).toBe(201);
    const batch = (await res.json()) as Batch;
    expect(batch.recipients.map((r) => [r.decision, r.detail, r.conversationId])).toEqual([
      ["rpo_registered", null, null],
      ["sent", "consent", null],
      ["sent", "public_directory", null],
      ["no_consent", null, null],
      ["opted_out", null, null],
    ]);
    // Nothing is messaged for telemarketing: "sent" releases the number to the tenant's callers.
    expect((await stored(tenantId)).conversations).toBe(0);
    // Consulting the register again after n(2)'s consent: that consent predates the registration it shows.
    expect((await api("PUT", "/v1/rpo-register", ownerKey, { consultedAt: new Date().toISOString(), numbers: [n(2)] })).status).toBe(200);
    const again = (await json(await api("POST", "/v1/campaigns", ownerKey, { purpose: "telemarketing", audience: [{ address: n(2) }, { address: n(1), publicDirectory: true }] }))) as unknown as Batch;
    expect(again.recipients.map((r) => r.decision)).toEqual(["rpo_registered", "sent"]);
  });

  it("stores the register as keyed hashes, appends chunks of one consultation, and refuses bad uploads", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const at = new Date(Date.now() - 2 * DAY).toISOString();
    expect((await api("PUT", "/v1/rpo-register", ownerKey, { consultedAt: at, numbers: ["+393477000001", "+39 347 700 0002"] })).status).toBe(200);
    const appended = await api("PUT", "/v1/rpo-register", ownerKey, { consultedAt: at, numbers: ["+393477000003", "+393477000001"], append: true });
    expect(await appended.json()).toMatchObject({ numbers: 3, fresh: true });
    const rows = JSON.stringify((await env.DB.prepare("SELECT * FROM rpo_numbers WHERE tenant_id = ?").bind(tenantId).all()).results);
    expect(rows).not.toMatch(/347700000/);
    const before = await stored(tenantId);
    await expectError(await api("PUT", "/v1/rpo-register", ownerKey, { consultedAt: at, numbers: ["+393477000004", "not a number"] }), 400, "validation_error", "numbers.1");
    await expectError(await api("PUT", "/v1/rpo-register", ownerKey, { consultedAt: at, numbers: ["mario@example.com"] }), 400, "validation_error", "numbers.0");
    await expectError(await api("PUT", "/v1/rpo-register", ownerKey, { consultedAt: new Date(Date.now() + DAY).toISOString(), numbers: [] }), 400, "validation_error", "consultedAt");
    await expectError(await api("PUT", "/v1/rpo-register", ownerKey, { consultedAt: "yesterday", numbers: [] }), 400, "validation_error", "consultedAt");
    await expectError(await api("PUT", "/v1/rpo-register", ownerKey, { consultedAt: new Date().toISOString(), numbers: ["+393477000005"], append: true }), 400, "validation_error", "append");
    await expectError(await api("PUT", "/v1/rpo-register", ownerKey, { consultedAt: at, numbers: Array.from({ length: 5001 }, (_, i) => `+39347${String(i).padStart(7, "0")}`) }), 400, "validation_error", "numbers");
    await expectError(await api("PUT", "/v1/rpo-register", await createKey(ownerKey, "viewer"), { consultedAt: at, numbers: [] }), 403, "forbidden");
    expect(await stored(tenantId)).toEqual(before);
    expect(await json(await api("GET", "/v1/rpo-register", ownerKey))).toMatchObject({ numbers: 3, consultedAt: at });
  });
});

describe("bad campaign input", () => {
  it("answers 4xx with the error shape and stores and sends nothing", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const sms = await channel(ownerKey, "twilio_sms");
    const mailer = await channel(ownerKey, "custom");
    const other = await createTenant();
    const foreign = await channel(other.ownerKey, "twilio_sms");
    await consent(ownerKey, "+393478000001", "marketing_sms", "granted");
    const ok = { purpose: "marketing_sms", channelId: sms, template: "Ciao {{name}}", audience: [{ address: "+393478000001", variables: { name: "Anna" } }] };
    const before = await stored(tenantId);
    const cases: [unknown, string | undefined][] = [
      [{ ...ok, channelId: mailer }, "channelId"],
      [{ ...ok, channelId: foreign }, "channelId"],
      [{ ...ok, channelId: "ch_doesnotexist" }, "channelId"],
      [{ ...ok, channelId: undefined }, "channelId"],
      [{ ...ok, template: undefined }, "template"],
      [{ ...ok, template: "" }, "template"],
      [{ ...ok, purpose: "telemarketing" }, "channelId"],
      [{ ...ok, purpose: "recording" }, "purpose"],
      [{ ...ok, locale: "de" }, "locale"],
      [{ ...ok, audience: [] }, "audience"],
      [{ ...ok, audience: Array.from({ length: 1001 }, (_, i) => ({ address: `+39347${String(i).padStart(7, "0")}`, variables: { name: "x" } })) }, "audience"],
      [{ ...ok, audience: [{ address: "+393478000001" }] }, "audience.0.variables"],
      [{ ...ok, audience: [ok.audience[0], { address: "bad\u0000", variables: { name: "x" } }] }, "audience.1.address"],
      [{ ...ok, audience: [{ address: "anna@example.com", variables: { name: "x" } }] }, "audience.0.address"],
      [{ ...ok, audience: [ok.audience[0], { address: "0039 347 800 0001", variables: { name: "x" } }] }, "audience.1.address"],
      [{ ...ok, audience: [{ ...ok.audience[0], existingCustomer: true }] }, "audience.0.existingCustomer"],
      [{ ...ok, audience: [{ ...ok.audience[0], publicDirectory: true }] }, "audience.0.publicDirectory"],
      [{ ...ok, audience: [{ ...ok.audience[0], birthDate: "2099-01-01" }] }, "audience.0.birthDate"],
      [{ ...ok, audience: [{ ...ok.audience[0], birthDate: "2010-01-01", age: 15 }] }, "audience.0.age"],
      [{ ...ok, audience: [{ ...ok.audience[0], variables: { "bad name": "x" } }] }, "audience.0.variables.bad name"],
      [{ ...ok, audience: [{ ...ok.audience[0], variables: { name: "x".repeat(4100) } }] }, undefined],
      [{ ...ok, extra: 1 }, undefined],
    ];
    for (const [body, path] of cases) {
      await expectError(await api("POST", "/v1/campaigns", ownerKey, body), 400, "validation_error", path);
    }
    for (const role of ["viewer", "agent"] as const) {
      const key = await createKey(ownerKey, role);
      await expectError(await api("POST", "/v1/campaigns", key, ok), 403, "forbidden");
      await expectError(await api("GET", "/v1/campaigns", key), 403, "forbidden");
    }
    await expectError(await api("POST", "/v1/campaigns", undefined, ok), 401, "unauthorized");
    await expectError(await call("/v1/campaigns", { method: "POST", headers: { authorization: `Bearer ${ownerKey}`, "content-type": "application/json" }, body: "{" }), 400, "invalid_json");
    await expectError(await api("GET", "/v1/campaigns?cursor=nope", ownerKey), 400, "validation_error", "cursor");
    await expectError(await api("GET", "/v1/campaigns/cmp_unknown", ownerKey), 404, "not_found");
    expect(await stored(tenantId)).toEqual(before);
    expect(providerCalls).toEqual([]);
    // And the valid body does go through.
    expect((await api("POST", "/v1/campaigns", ownerKey, ok)).status).toBe(201);
  });
});
