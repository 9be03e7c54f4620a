/**
 * The AI pipeline end to end: a real `wrangler dev`, the official OpenAI SDK
 * inside the Worker, and a local OpenAI-compatible server that records every
 * request and injects faults.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ParleyClient, readJson, type Tenant } from "./client.ts";
import { ProviderStub, startParley, waitFor, type ParleyServer } from "./harness.ts";
import { OpenAiStub } from "./openai-stub.ts";

let server: ParleyServer | undefined;
let api: ParleyClient;
let openai: OpenAiStub;
let callbacks: ProviderStub;
let tenant: Tenant;
let channel: { id: string; secret: string };

interface Health {
  totals: Record<string, number>;
  days: { reasons: Record<string, number> }[];
}

beforeAll(async () => {
  [openai, callbacks] = await Promise.all([OpenAiStub.start(), ProviderStub.start("callback")]);
  server = await startParley({ vars: { OPENAI_API_KEY: "sk-e2e-test-key", OPENAI_BASE_URL: openai.baseUrl, AI_TIMEOUT_MS: "800" } });
  api = new ParleyClient(server.baseUrl, server.platformKey);
  tenant = await api.createTenant("AI e2e", { aiReplies: true });
  const created = await api.createChannel(tenant.ownerKey, { type: "custom", name: "Bot", config: { callbackUrl: callbacks.url } });
  channel = { id: created.id, secret: created.generatedSecrets.signingSecret ?? "" };
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await Promise.all([openai?.stop(), callbacks?.close()]);
});

let counter = 0;
async function say(from: string, text: string): Promise<string> {
  counter += 1;
  const res = await api.postCustom(channel.id, channel.secret, { type: "message", id: `ai-e2e-${counter}-${Date.now()}`, from, text });
  expect(res.status).toBe(200);
  return (await readJson<{ conversationId: string }>(res)).conversationId;
}

async function health(): Promise<Health> {
  return readJson<Health>(await api.request("GET", "/v1/agent-health", { key: tenant.ownerKey }));
}

async function waitForDecisions(total: number, timeoutMs = 60_000): Promise<Health> {
  return waitFor(`${total} AI decisions`, async () => {
    const h = await health();
    const sum = Object.values(h.totals).reduce((a, b) => a + b, 0);
    return sum >= total ? h : undefined;
  }, { timeoutMs, intervalMs: 200 });
}

const decided = () => health().then((h) => Object.values(h.totals).reduce((a, b) => a + b, 0));

describe("nothing identifying reaches the model", () => {
  it("redacts every identifier type, sets store:false, and restores identifiers in the delivered reply", async () => {
    const identifiers = {
      email: "giulia.verdi@example.org",
      phoneIt: "+39 347 123 4567",
      phoneGb: "+44 20 7946 0958",
      card: "4111 1111 1111 1111",
      iban: "IT60 X054 2811 1010 0000 0123 456",
      fiscalCode: "RSSMRA85T10A562S",
      vat: "IT12345670579", // check digit and provincial office code (057) both valid
      ipv4: "192.168.10.25",
      ipv6: "2001:db8:85a3::8a2e:370:7334",
      ssn: "123-45-6789",
      password: "Tr0ub4dor&3x",
    };
    const before = openai.requests.length;
    const from = "+393400000001";
    await say(from, `Hi, I'm writing from ${identifiers.email}, call me on ${identifiers.phoneIt} or ${identifiers.phoneGb}.`);
    await say(from, `Pay with ${identifiers.card} or IBAN ${identifiers.iban}; codice fiscale ${identifiers.fiscalCode}, P.IVA ${identifiers.vat}.`);
    const conversationId = await say(from, `Router ${identifiers.ipv4} / ${identifiers.ipv6}, SSN ${identifiers.ssn}, password: ${identifiers.password} — where is order 483920?`);
    await waitForDecisions(3);
    const sent = openai.requests.slice(before);
    expect(sent.length).toBeGreaterThanOrEqual(3);
    for (const request of sent) {
      expect(request.body.store).toBe(false);
      expect(request.headers.authorization).toBe("Bearer sk-e2e-test-key");
      for (const value of Object.values(identifiers)) {
        expect(request.raw).not.toContain(value);
        expect(request.raw).not.toContain(value.replace(/\s/g, ""));
      }
    }
    // The business fact survives redaction, so the model can answer about it.
    expect(sent[sent.length - 1]?.raw).toContain("483920");
    const delivered = await waitFor("three AI replies at the callback", () => {
      const replies = callbacks.requests.filter((r) => r.text.includes(conversationId));
      return replies.length >= 3 ? replies : undefined;
    });
    const texts = delivered.map((r) => (JSON.parse(r.text) as { text: string }).text).join("\n");
    expect(texts).toContain(identifiers.email);
    expect(texts).toContain(identifiers.card);
    expect(texts).toContain(identifiers.fiscalCode);
    expect(texts).not.toMatch(/\[[A-Z_]+_\d+\]/);
  });
});

describe("provider faults", () => {
  it("retries a 500 and a 429 (honouring Retry-After) and sends the reply", async () => {
    const start = await decided();
    openai.fail("500");
    await say("+393400000010", "what time do you open tomorrow?");
    await waitForDecisions(start + 1);
    openai.fail("429");
    const t0 = Date.now();
    await say("+393400000011", "what time do you close tomorrow?");
    const h = await waitForDecisions(start + 2);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
    expect(h.days[0]?.reasons["sent:answered"]).toBeGreaterThanOrEqual(2);
  });

  it("a provider that hangs past the timeout, or answers malformed JSON, ends in handoff with nothing lost", async () => {
    const start = await decided();
    openai.fail(...Array.from({ length: 9 }, () => "hang" as const));
    const hungConversation = await say("+393400000020", "can I change my delivery address?");
    await waitForDecisions(start + 1, 90_000);
    openai.fail("malformed", "malformed", "malformed");
    const malformedConversation = await say("+393400000021", "can I change my payment method?");
    const h = await waitForDecisions(start + 2, 90_000);
    expect(h.days[0]?.reasons["handoff:provider_failing"]).toBeGreaterThanOrEqual(2);
    for (const id of [hungConversation, malformedConversation]) {
      const messages = await api.allMessages(tenant.ownerKey, id);
      expect(messages[0]).toMatchObject({ direction: "inbound" });
      const detail = await readJson<{ status: string }>(await api.request("GET", `/v1/conversations/${id}`, { key: tenant.ownerKey }));
      expect(detail.status).toBe("handoff");
    }
  }, 150_000);
});

describe("serialization", () => {
  it("20 messages in a burst to one conversation: provider calls never overlap and follow sequence order", async () => {
    const start = await decided();
    const before = openai.requests.length;
    openai.delayMs = 60;
    const from = "+393400000030";
    await Promise.all(Array.from({ length: 20 }, (_, i) => say(from, `burst question number ${i + 1}: is item ${i + 1} in stock?`)));
    await waitForDecisions(start + 20, 90_000);
    openai.delayMs = 40;
    const calls = openai.requests.slice(before).sort((a, b) => a.startedAt - b.startedAt);
    expect(calls).toHaveLength(20);
    for (let i = 1; i < calls.length; i++) expect(calls[i]?.startedAt).toBeGreaterThanOrEqual(calls[i - 1]?.endedAt ?? 0);
    const numbers = calls.map((c) => {
      const last = [...(c.body.messages ?? [])].reverse().find((m) => m.role === "user")?.content ?? "";
      return Number(/number (\d+)/.exec(last)?.[1]);
    });
    // Sequence order = arrival order in the object; each call answers the next message.
    const conversationId = (await api.listConversations(tenant.ownerKey)).find((c) => c.messageCount >= 20)?.id ?? "";
    const inbound = (await api.allMessages(tenant.ownerKey, conversationId)).filter((m) => m.direction === "inbound");
    const expected = inbound.map((m) => Number(/number (\d+)/.exec(m.text)?.[1]));
    expect(numbers).toEqual(expected);
  }, 120_000);
});
