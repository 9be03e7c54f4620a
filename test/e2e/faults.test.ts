/**
 * Faults end to end: a real `wrangler dev` SIGKILLed in the middle of a burst of
 * signed webhooks while AI work and outbound deliveries are pending, and AI and
 * outbound providers that fail for a while. Every acknowledged message must be
 * stored exactly once, pending work must resume from the objects' alarms after
 * the restart, and every delivery must carry a stable Idempotency-Key.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mapPool, ParleyClient, postCustomAsProvider, randomHex, readJson, type CustomWebhookAck, type MessageView, type Tenant } from "./client.ts";
import { ProviderStub, sleep, startParley, waitFor, type ParleyServer, type RecordedRequest } from "./harness.ts";
import { OpenAiStub } from "./openai-stub.ts";

let server: ParleyServer | undefined;
let api: ParleyClient;
let openai: OpenAiStub | undefined;
let callbacks: ProviderStub | undefined;

beforeAll(async () => {
  [openai, callbacks] = await Promise.all([OpenAiStub.start(), ProviderStub.start("callback")]);
  server = await startParley({ vars: { OPENAI_API_KEY: "sk-e2e-faults", OPENAI_BASE_URL: openai.baseUrl, AI_TIMEOUT_MS: "5000" } });
  api = new ParleyClient(server.baseUrl, server.platformKey);
}, 180_000);

afterAll(async () => {
  await server?.stop();
  await Promise.all([openai?.stop(), callbacks?.close()]);
});

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} not started`);
  return value;
}

interface Health {
  totals: Record<string, number>;
  days: { reasons: Record<string, number> }[];
}

const health = async (key: string): Promise<Health> => readJson<Health>(await api.request("GET", "/v1/agent-health", { key }));
const decisions = (h: Health): number => Object.values(h.totals).reduce((a, b) => a + b, 0);
const reasons = (h: Health): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const d of h.days) for (const [k, v] of Object.entries(d.reasons)) out[k] = (out[k] ?? 0) + v;
  return out;
};

async function customTenant(name: string, hookPath: string): Promise<{ tenant: Tenant; channelId: string; secret: string }> {
  const tenant = await api.createTenant(name, { aiReplies: true });
  const channel = await api.createChannel(tenant.ownerKey, { type: "custom", name, config: { callbackUrl: need(callbacks, "callback stand-in").url + hookPath } });
  return { tenant, channelId: channel.id, secret: channel.generatedSecrets.signingSecret ?? "" };
}

/** Deliveries at the callback stand-in grouped by the message id in their body; checks each group's Idempotency-Key. */
function deliveriesByMessage(requests: RecordedRequest[]): Map<string, RecordedRequest[]> {
  const groups = new Map<string, RecordedRequest[]>();
  for (const r of requests) {
    const id = (JSON.parse(r.text) as { id: string }).id;
    groups.set(id, [...(groups.get(id) ?? []), r]);
  }
  for (const [id, group] of groups) {
    // Stable across retries and restarts: the key is the message id.
    for (const r of group) expect(r.headers["idempotency-key"], `Idempotency-Key of a delivery of ${id}`).toBe(id);
  }
  return groups;
}

describe("wrangler dev killed mid-burst", () => {
  it("stores every acknowledged webhook once, resumes AI work and deliveries from alarms, and keeps Idempotency-Keys stable", async () => {
    const srv = need(server, "server");
    const ai = need(openai, "OpenAI stand-in");
    const cb = need(callbacks, "callback stand-in");
    const hookPath = `/faults-kill/${randomHex(4)}`;
    const { tenant, channelId, secret } = await customTenant("Kill tenant", hookPath);
    const isHook = (r: { path: string }) => r.path === hookPath;

    // Slow providers: AI calls take 1 s (so tasks queue up behind each other in every
    // conversation) and callbacks 1.5 s (so deliveries are in flight when the server dies).
    ai.delayMs = 1_000;
    let callbackArrivals = 0;
    let slowCallbacks = true;
    for (let i = 0; i < 200; i++) {
      cb.interceptNext(isHook, async () => {
        callbackArrivals++;
        if (slowCallbacks) await sleep(1_500);
      });
    }

    const CONVERSATIONS = 4;
    const PER_CONVERSATION = 10;
    const run = randomHex(3);
    const events = Array.from({ length: CONVERSATIONS * PER_CONVERSATION }, (_, i) => ({
      type: "message",
      id: `kill_${run}_${i}`,
      from: `kill-${run}-user-${i % CONVERSATIONS}`,
      text: `question ${i}: is item ${i} in stock?`,
    }));

    // The "provider": 4 in flight, each event resent (same bytes, fresh signature) until it is
    // acknowledged — through the kill (connection refused / reset) and the restart.
    let killed = false;
    const ackedBeforeKill = new Set<string>();
    const resent = new Set<string>();
    const burst = mapPool(events, 4, async (event, i) => {
      await sleep(i < 4 ? 0 : 150); // spread the burst over a few seconds
      const res = await postCustomAsProvider(api, channelId, secret, event, {
        attempts: 200,
        retryNetworkErrors: true,
        delayMs: 200,
        onRetry: () => resent.add(event.id),
      });
      expect(res.status, `webhook ${event.id}`).toBe(200);
      const ack = await readJson<CustomWebhookAck>(res);
      if (!killed) ackedBeforeKill.add(event.id);
      return ack;
    });

    // Kill once a third of the burst is acknowledged and a delivery is in flight.
    await waitFor("a third of the burst acknowledged and a delivery in flight", () =>
      ackedBeforeKill.size >= events.length / 3 && callbackArrivals >= 1 ? true : undefined,
      { timeoutMs: 60_000, intervalMs: 20 },
    );
    const decidedAtKill = decisions(await health(tenant.ownerKey));
    killed = true;
    await srv.kill();
    const acknowledgedAtKill = ackedBeforeKill.size;
    expect(decidedAtKill, "AI work was still pending when the server died").toBeLessThan(acknowledgedAtKill);
    await sleep(500);
    await srv.restart();
    slowCallbacks = false;
    ai.delayMs = 40;

    const acks = await burst;
    expect(acknowledgedAtKill).toBeGreaterThan(0);
    expect(resent.size, "some webhooks had to be resent across the kill").toBeGreaterThan(0);

    // Every event — acknowledged before the kill, or resent after it — is stored exactly once,
    // and as the message its (last) acknowledgement named.
    const conversations = new Set(acks.map((a) => a.conversationId));
    expect(conversations.size).toBe(CONVERSATIONS);
    const stored = new Map<string, MessageView[]>();
    for (const conversationId of conversations) stored.set(conversationId, await api.allMessages(tenant.ownerKey, conversationId));
    const inbound = [...stored.values()].flat().filter((m) => m.direction === "inbound");
    expect(inbound.map((m) => m.providerMessageId).sort()).toEqual(events.map((e) => e.id).sort());
    const byProviderId = new Map(inbound.map((m) => [m.providerMessageId, m]));
    acks.forEach((ack, i) => expect(byProviderId.get(events[i]?.id ?? "")?.id).toBe(ack.messageId));
    for (const messages of stored.values()) {
      const seqs = messages.map((m) => m.seq);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, k) => k + 1));
    }

    // Pending AI work resumes from the alarms: one decision per inbound message, no more.
    const final = await waitFor(
      "an AI decision for every message",
      async () => {
        const h = await health(tenant.ownerKey);
        return decisions(h) >= events.length ? h : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    await sleep(1_000);
    expect(decisions(await health(tenant.ownerKey))).toBe(events.length);
    expect(reasons(final)["sent:answered"]).toBe(events.length);

    // Every reply is delivered (status sent), at least once, always with the same Idempotency-Key.
    const outbound = await waitFor(
      "every AI reply delivered",
      async () => {
        const all: MessageView[] = [];
        for (const conversationId of conversations) all.push(...(await api.allMessages(tenant.ownerKey, conversationId)).filter((m) => m.direction === "outbound"));
        return all.length === events.length && all.every((m) => m.status === "sent") ? all : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    const groups = deliveriesByMessage(cb.matching(isHook));
    for (const m of outbound) {
      const group = groups.get(m.id) ?? [];
      expect(group.filter((r) => r.response.status === 200).length, `deliveries of ${m.id}`).toBeGreaterThanOrEqual(1);
      // At-least-once: a delivery cut by the kill may be repeated, never more than its attempts.
      expect(group.length).toBeLessThanOrEqual(Math.max(1, m.attempts) + 1);
    }
    expect([...groups.keys()].sort()).toEqual(outbound.map((m) => m.id).sort());
    const repeated = [...groups.values()].filter((g) => g.length > 1).length;
    console.info(
      `faults/kill: ${acknowledgedAtKill}/${events.length} acknowledged before the kill, ${decidedAtKill} AI decisions made by then, ` +
        `${resent.size} webhooks resent, ${acks.filter((a) => a.duplicate).length} resends acknowledged as duplicates, ` +
        `${outbound.length} replies delivered (${repeated} delivered more than once, same Idempotency-Key)`,
    );
  }, 170_000);
});

describe("providers failing for a while", () => {
  it("retries the AI provider and the outbound provider until they recover, and counts it", async () => {
    const ai = need(openai, "OpenAI stand-in");
    const cb = need(callbacks, "callback stand-in");
    ai.delayMs = 40;
    const hookPath = `/faults-flaky/${randomHex(4)}`;
    const { tenant, channelId, secret } = await customTenant("Flaky providers tenant", hookPath);
    const isHook = (r: { path: string }) => r.path === hookPath;

    // The outbound provider answers 503 for the next 5 seconds, then recovers.
    const outageEnds = Date.now() + 5_000;
    for (let i = 0; i < 40; i++) {
      cb.interceptNext(isHook, async (_req, reply) => (Date.now() < outageEnds ? { status: 503, headers: { "retry-after": "1" }, body: { error: "maintenance" } } : reply));
    }
    // The AI provider fails its next 5 calls (500, 429, 500, 500, 500): with the SDK's own
    // retries that spans several seconds and more than one attempt of a message, but never
    // the 3 attempts (9 calls) after which a message is handed to a human.
    const callsBefore = ai.requests.length;
    ai.fail("500", "429", "500", "500", "500");

    const before = reasons(await health(tenant.ownerKey));
    const run = randomHex(3);
    const sent = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const res = await postCustomAsProvider(api, channelId, secret, { type: "message", id: `flaky_${run}_${i}`, from: `flaky-${run}-${i}`, text: `what time do you open on day ${i}?` });
        expect(res.status).toBe(200);
        return readJson<CustomWebhookAck>(res);
      }),
    );

    const h = await waitFor(
      "three AI decisions",
      async () => {
        const now = await health(tenant.ownerKey);
        return decisions(now) >= 3 ? now : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const after = reasons(h);
    expect((after["sent:answered"] ?? 0) - (before["sent:answered"] ?? 0)).toBe(3);
    expect(after["handoff:provider_failing"] ?? 0).toBe(before["handoff:provider_failing"] ?? 0);
    const calls = ai.requests.slice(callsBefore);
    expect(calls.filter((c) => c.answer !== "ok")).toHaveLength(5);
    expect(calls.filter((c) => c.answer === "ok").length).toBeGreaterThanOrEqual(3);

    // Each reply waited out the outage in the object's outbox and was then delivered.
    const replies = await waitFor(
      "three replies delivered after the outage",
      async () => {
        const all: MessageView[] = [];
        for (const ack of sent) all.push(...(await api.allMessages(tenant.ownerKey, ack.conversationId)).filter((m) => m.direction === "outbound"));
        return all.length === 3 && all.every((m) => m.status === "sent") ? all : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const groups = deliveriesByMessage(cb.matching(isHook));
    let retried = 0;
    for (const m of replies) {
      const group = groups.get(m.id) ?? [];
      const statuses = group.map((r) => r.response.status);
      // Failed attempts first, then exactly one success; the API shows how many attempts it took.
      expect(statuses[statuses.length - 1]).toBe(200);
      expect(statuses.slice(0, -1).every((s) => s === 503)).toBe(true);
      expect(m.attempts).toBe(group.length);
      expect(m.error).toBeNull();
      if (group.length > 1) retried++;
      expect(group[group.length - 1]?.receivedAt ?? 0).toBeGreaterThanOrEqual(outageEnds - 50);
    }
    expect(retried, "replies that hit the outage and were retried").toBeGreaterThanOrEqual(1);
  }, 120_000);
});
