import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { api, createCustomChannel, createKey, createTenant, json, postCustom, settle } from "./helpers";

interface Msg {
  seq: number;
  direction: string;
  author: string;
  text: string;
  status: string;
  intent: string | null;
}

const stubFor = (id: string) => env.CONVERSATION.get(env.CONVERSATION.idFromName(id));

const KB = [
  { question: "What are your opening hours?", answer: "We are open Monday to Saturday 9:00-19:00, Sunday 10:00-13:00." },
  { question: "Quali sono gli orari di apertura?", answer: "Siamo aperti dal lunedì al sabato 9-19, la domenica 10-13." },
  { question: "How much does shipping cost?", answer: "Shipping is free over €50, otherwise €4.90." },
  { question: "Quanto costa la spedizione?", answer: "La spedizione è gratuita sopra i 50 €, altrimenti costa 4,90 €." },
  { question: "How can I return an item?", answer: "You can return any item within 30 days from the Returns page." },
];

async function aiTenant(settings: Record<string, unknown> = {}) {
  const tenant = await createTenant("AI shop", { aiReplies: true });
  expect((await api("PUT", "/v1/knowledge", tenant.ownerKey, { entries: KB })).status).toBe(200);
  if (Object.keys(settings).length) expect((await api("PATCH", "/v1/settings", tenant.ownerKey, settings)).status).toBe(200);
  const channel = await createCustomChannel(tenant.ownerKey);
  let n = 0;
  const say = async (text: string, from = "+393331234567") => {
    n += 1;
    const res = (await json(await postCustom(channel.id, channel.secret, { type: "message", id: `ai-${Date.now()}-${n}`, from, text }))) as { conversationId: string };
    await settle(res.conversationId);
    return res.conversationId;
  };
  const messages = async (conversationId: string) =>
    ((await json(await api("GET", `/v1/conversations/${conversationId}/messages?limit=200`, tenant.ownerKey))) as { data: Msg[] }).data;
  const health = async () => (await json(await api("GET", "/v1/agent-health", tenant.ownerKey))) as { totals: Record<string, number>; days: { reasons: Record<string, number> }[]; aiCallsToday: number };
  return { ...tenant, channel, say, messages, health };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("AI reply pipeline with the local provider", () => {
  it("answers a knowledge-base question above the threshold, in English and Italian", async () => {
    const t = await aiTenant();
    const conv = await t.say("Hi! what are your opening hours on sunday?");
    const msgs = await t.messages(conv);
    expect(msgs.map((m) => [m.direction, m.author])).toEqual([["inbound", "end_user"], ["outbound", "ai"]]);
    expect(msgs[1]?.text).toContain("Sunday 10:00-13:00");
    expect(msgs[0]?.intent).toBe("opening_hours");
    await t.say("quanto costa la spedizione?");
    const all = await t.messages(conv);
    expect(all[3]?.text).toContain("4,90");
    const health = await t.health();
    expect(health.totals.sent).toBe(2);
    expect(health.days[0]?.reasons["sent:answered"]).toBe(2);
    expect(health.aiCallsToday).toBe(2);
  });

  it("stays silent and hands off on an unrelated question; later messages are skipped while in handoff", async () => {
    const t = await aiTenant();
    const conv = await t.say("Can you recommend a good dentist near the station?");
    const detail = await json(await api("GET", `/v1/conversations/${conv}`, t.ownerKey));
    expect(detail.status).toBe("handoff");
    const msgs = await t.messages(conv);
    expect(msgs.filter((m) => m.author === "ai")).toHaveLength(0);
    expect(msgs[1]).toMatchObject({ author: "system", direction: "outbound" });
    await t.say("Hello? what are your opening hours?");
    expect((await t.messages(conv)).filter((m) => m.author === "ai")).toHaveLength(0);
    const reasons = (await t.health()).days[0]?.reasons ?? {};
    expect(reasons).toEqual({ "handoff:low_confidence": 1, "skipped:in_handoff": 1 });
    // A human returns the conversation to the AI: it answers again.
    await api("POST", `/v1/conversations/${conv}/reopen`, t.ownerKey);
    await t.say("what are your opening hours?");
    expect((await t.messages(conv)).filter((m) => m.author === "ai")).toHaveLength(1);
  });

  it("records exactly one outcome per message for every rule", async () => {
    const t = await aiTenant();
    await t.say("thanks!", "+393330000001");
    await t.say("I want to talk to a human please", "+393330000002");
    await t.say("Ho il diabete, posso mangiare le vostre torte?", "+393330000003");
    const reasons = (await t.health()).days[0]?.reasons ?? {};
    expect(reasons).toEqual({ "silence:nothing_to_answer": 1, "handoff:user_requested_human": 1, "handoff:special_category": 1 });
  });

  it("flags special-category conversations: viewers cannot read them", async () => {
    const t = await aiTenant();
    const viewer = await createKey(t.ownerKey, "viewer");
    const conv = await t.say("I am pregnant and need to change my order");
    const list = (await json(await api("GET", "/v1/conversations", t.ownerKey))) as { data: { id: string; specialCategory: boolean }[] };
    expect(list.data.find((c) => c.id === conv)?.specialCategory).toBe(true);
    expect((await api("GET", `/v1/conversations/${conv}/messages`, viewer)).status).toBe(403);
    expect((await api("GET", `/v1/conversations/${conv}/messages`, t.ownerKey)).status).toBe(200);
  });

  it("obeys settings: replies off → skipped; threshold 1 → handoff; handoffOnLowConfidence off → suppressed; budget → skipped", async () => {
    const off = await aiTenant({ ai: { replies: false } });
    await off.say("what are your opening hours?");
    expect((await off.health()).days[0]?.reasons).toEqual({ "skipped:feature_off": 1 });

    const strict = await aiTenant({ confidenceThreshold: 1, handoffOnLowConfidence: false, handoffMessage: "" });
    const conv = await strict.say("what are the opening hours on sunday for the shop in milan?");
    expect((await strict.health()).days[0]?.reasons).toEqual({ "suppressed:below_threshold": 1 });
    expect((await strict.messages(conv)).filter((m) => m.direction === "outbound")).toHaveLength(0);

    const budget = await aiTenant({ dailyAiCallBudget: 1 });
    await budget.say("what are your opening hours?", "+393330000011");
    await budget.say("how much does shipping cost?", "+393330000012");
    expect((await budget.health()).days[0]?.reasons).toEqual({ "sent:answered": 1, "skipped:budget_exhausted": 1 });
  });

  it("counts a decision once even when the report is retried", async () => {
    const t = await aiTenant();
    const conv = await t.say("what are your opening hours?");
    await runInDurableObject(stubFor(conv), async (_i, state) => {
      state.storage.sql.exec("UPDATE tasks SET reported = 0");
      await state.storage.setAlarm(Date.now() + 60_000);
    });
    await runDurableObjectAlarm(stubFor(conv));
    expect((await t.health()).totals.sent).toBe(1);
  });
});

describe("the openai provider (official SDK) from inside the conversation object", () => {
  it("sends only redacted text with store:false, and restores identifiers in the delivered reply", async () => {
    const t = await aiTenant();
    const bodies: string[] = [];
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      if (!request.url.startsWith("https://ai.test/v1/")) return realFetch(input, init);
      const body = await request.text();
      bodies.push(body);
      const reply = { reply: "Sure, we will email the invoice to [EMAIL_1] and call [PHONE_1] if needed.", confidence: 0.92, handoff: false, intent: "billing" };
      return Response.json({
        id: "chatcmpl-1",
        object: "chat.completion",
        created: 1,
        model: "gpt-4o-mini",
        choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content: JSON.stringify(reply) } }],
      });
    });
    const previous = { key: env.OPENAI_API_KEY, base: env.OPENAI_BASE_URL };
    const mutable = env as { OPENAI_API_KEY: string; OPENAI_BASE_URL: string };
    mutable.OPENAI_API_KEY = "sk-test-0000";
    mutable.OPENAI_BASE_URL = "https://ai.test/v1";
    try {
      const conv = await t.say("Please send the invoice to mario.rossi@example.com, my number is +39 347 123 4567, card 4111 1111 1111 1111");
      expect(bodies).toHaveLength(1);
      const sent = JSON.parse(bodies[0] ?? "{}") as { store: boolean; model: string; messages: { content: string }[] };
      expect(sent.store).toBe(false);
      const raw = bodies[0] ?? "";
      for (const identifier of ["mario.rossi@example.com", "347 123 4567", "3471234567", "4111 1111 1111 1111", "4111111111111111"]) expect(raw).not.toContain(identifier);
      expect(raw).toContain("[EMAIL_1]");
      const msgs = await t.messages(conv);
      expect(msgs[1]?.text).toBe("Sure, we will email the invoice to mario.rossi@example.com and call +39 347 123 4567 if needed.");
    } finally {
      mutable.OPENAI_API_KEY = previous.key;
      mutable.OPENAI_BASE_URL = previous.base;
    }
  });
});

describe("settings, knowledge, redact and summary endpoints", () => {
  it("validates settings patches and stores nothing on error", async () => {
    const t = await createTenant();
    const before = await json(await api("GET", "/v1/settings", t.ownerKey));
    for (const bad of [{ confidenceThreshold: 2 }, { unknown: true }, { ai: { replies: "yes" } }, { provider: "gpt" }]) {
      const res = await api("PATCH", "/v1/settings", t.ownerKey, bad);
      expect(res.status).toBe(400);
      expect((await json(res)).error).toMatchObject({ code: "validation_error" });
    }
    expect(await json(await api("GET", "/v1/settings", t.ownerKey))).toEqual(before);
    const agent = await createKey(t.ownerKey, "agent");
    expect((await api("PATCH", "/v1/settings", agent, { confidenceThreshold: 0.9 })).status).toBe(403);
    const ok = await json(await api("PATCH", "/v1/settings", t.ownerKey, { confidenceThreshold: 0.8, ai: { summaries: false } }));
    expect(ok).toMatchObject({ confidenceThreshold: 0.8, ai: { replies: false, summaries: false, intent: true }, effectiveProvider: "local" });
  });

  it("replaces the knowledge base atomically and validates entries", async () => {
    const t = await createTenant();
    expect((await api("PUT", "/v1/knowledge", t.ownerKey, { entries: KB })).status).toBe(200);
    const bad = await api("PUT", "/v1/knowledge", t.ownerKey, { entries: [{ question: "ok?", answer: "" }] });
    expect(bad.status).toBe(400);
    const list = (await json(await api("GET", "/v1/knowledge", t.ownerKey))) as { entries: unknown[] };
    expect(list.entries).toHaveLength(KB.length);
  });

  it("redacts text on demand", async () => {
    const t = await createTenant();
    const res = (await json(await api("POST", "/v1/redact", t.ownerKey, { text: "Scrivimi a anna@example.it, ordine 483920" }))) as { text: string; entities: { type: string }[] };
    expect(res.text).toBe("Scrivimi a [EMAIL_1], ordine 483920");
    expect(res.entities.map((e) => e.type)).toEqual(["EMAIL"]);
    expect((await api("POST", "/v1/redact", t.ownerKey, { text: 42 })).status).toBe(400);
  });

  it("summarizes a conversation with identifiers masked, only when summaries are on", async () => {
    const t = await aiTenant();
    const conv = await t.say("My email is anna.bianchi@example.com, where is order 483920?");
    const res = await api("POST", `/v1/conversations/${conv}/summary`, t.ownerKey);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { summary: string; redacted: boolean };
    expect(body.redacted).toBe(true);
    expect(body.summary).not.toContain("anna.bianchi@example.com");
    expect(body.summary).toContain("483920");
    await api("PATCH", "/v1/settings", t.ownerKey, { ai: { summaries: false } });
    expect((await api("POST", `/v1/conversations/${conv}/summary`, t.ownerKey)).status).toBe(409);
  });
});

describe("when decisions run: coalescing, keywords and special categories", () => {
  const alarmIn = async (conversationId: string) => {
    const at = await runInDurableObject(stubFor(conversationId), (_i, state) => state.storage.getAlarm());
    return at === null ? null : at - Date.now();
  };
  const sender = async (aiReplies: boolean) => {
    const tenant = await createTenant("Timing", { aiReplies });
    const channel = await createCustomChannel(tenant.ownerKey);
    let n = 0;
    const post = async (text: string, from = "+393339876543") => {
      const res = await postCustom(channel.id, channel.secret, { type: "message", id: `timing-${Date.now()}-${++n}`, from, text });
      expect(res.status).toBe(200);
      return ((await res.json()) as { conversationId: string }).conversationId;
    };
    return { ...tenant, post };
  };
  /** A conversation whose first message was just decided by a run (the window is picked from that run's settings read). */
  const afterARun = async (aiReplies: boolean) => {
    const t = await sender(aiReplies);
    const conv = await t.post("first message");
    await settle(conv);
    return { t, conv };
  };

  it("replies off: a busy conversation's next run waits 5 s; an opt-out keyword is decided within 1 s", async () => {
    const { t, conv } = await afterARun(false);
    // Right after a run that found replies off, the next message joins a batch about 5 s after it.
    await t.post("second message");
    expect(await alarmIn(conv)).toBeGreaterThan(3_500);
    // STOP withdraws consent at once: it pulls the run forward to the 1 s window.
    await t.post("STOP");
    const stopIn = await alarmIn(conv);
    expect(stopIn).not.toBeNull();
    expect(stopIn ?? Infinity).toBeLessThanOrEqual(1_000);
    await settle(conv);
    const msgs = (await json(await api("GET", `/v1/conversations/${conv}/messages?limit=50`, t.ownerKey))) as { data: { author: string; text: string }[] };
    expect(msgs.data.filter((m) => m.author === "system")).toHaveLength(1);
  });

  it("replies off: a new conversation's first message joins a 5 s batch once a run has found replies off; replies on: it is decided at once", async () => {
    for (const aiReplies of [false, true]) {
      const { t } = await afterARun(aiReplies);
      // Another sender of the same tenant: a new conversation object, which has never read the settings itself.
      const fresh = await t.post("hello", "+393331112223");
      const due = await alarmIn(fresh);
      // (Replies on: the alarm may already have fired by now.)
      if (aiReplies) expect(due ?? 0).toBeLessThanOrEqual(50);
      else expect(due).toBeGreaterThan(3_500);
      // Either way the decision uses settings read by its own run, and is recorded once.
      await settle(fresh);
      const reasons = await runInDurableObject(stubFor(fresh), (_i, state) => state.storage.sql.exec("SELECT reason FROM tasks").toArray().map((r) => r.reason));
      expect(reasons).toHaveLength(1);
      if (aiReplies) expect(reasons[0]).not.toBe("feature_off");
      else expect(reasons[0]).toBe("feature_off");
    }
  });

  it("replies off: one run decides a batch as one task at a time would (keywords answered once, labels, the special-category flag, counted once)", async () => {
    const { t, conv } = await afterARun(false);
    const texts = ["what are your opening hours?", "how much is shipping?", "Ho il diabete, posso ordinare?", "STOP", "where is my order?", "thanks"];
    for (const text of texts) await t.post(text);
    // As if these tasks were queued before ingest flagged special categories: the run must flag it itself.
    await runInDurableObject(stubFor(conv), (_i, state) => {
      state.storage.sql.exec("UPDATE meta SET value = '0' WHERE key = 'special_category'");
    });
    await env.DB.prepare("UPDATE conversations SET special_category = 0 WHERE id = ?").bind(conv).run();
    const tasks = () =>
      runInDurableObject(stubFor(conv), (_i, state) =>
        state.storage.sql.exec("SELECT t.state, t.reason, m.intent FROM tasks t JOIN messages m ON m.seq = t.message_seq ORDER BY t.message_seq").toArray(),
      );
    expect((await tasks()).filter((r) => r.state === "pending")).toHaveLength(texts.length);
    await runDurableObjectAlarm(stubFor(conv));
    const after = await tasks();
    expect(after.map((r) => r.state)).toEqual(Array(texts.length + 1).fill("done"));
    expect(after.map((r) => r.reason)).toEqual(["feature_off", "feature_off", "feature_off", "feature_off", "keyword", "feature_off", "feature_off"]);
    // Intent labels on every decided message (a keyword message is answered, not labelled).
    expect(after.map((r) => r.intent === null)).toEqual([false, false, false, false, true, false, false]);
    expect((await env.DB.prepare("SELECT special_category FROM conversations WHERE id = ?").bind(conv).first<{ special_category: number }>())?.special_category).toBe(1);
    await settle(conv);
    const msgs = (await json(await api("GET", `/v1/conversations/${conv}/messages?limit=50`, t.ownerKey))) as { data: { author: string }[] };
    expect(msgs.data.filter((m) => m.author === "system")).toHaveLength(1);
    const health = (await json(await api("GET", "/v1/agent-health", t.ownerKey))) as { days: { reasons: Record<string, number> }[] };
    expect(health.days[0]?.reasons).toEqual({ "skipped:feature_off": texts.length });
  });

  it("replies on: the next run after a busy one waits at most 1 s", async () => {
    const { t, conv } = await afterARun(true);
    await t.post("second message");
    expect(await alarmIn(conv)).toBeLessThanOrEqual(1_000);
  });

  it("flags a special category at ingest: viewers are refused before any decision runs", async () => {
    const { t, conv } = await afterARun(false);
    const viewer = await createKey(t.ownerKey, "viewer");
    await t.post("Ho il diabete, posso ordinare lo stesso?");
    // No run has decided it yet (it waits for the next batch) ...
    const pending = await runInDurableObject(stubFor(conv), (_i, state) => Number(state.storage.sql.exec("SELECT COUNT(*) AS n FROM tasks WHERE state = 'pending'").one().n));
    expect(pending).toBe(1);
    // ... yet the index row is flagged and viewers cannot read the transcript.
    const row = await env.DB.prepare("SELECT special_category FROM conversations WHERE id = ?").bind(conv).first<{ special_category: number }>();
    expect(row?.special_category).toBe(1);
    expect((await api("GET", `/v1/conversations/${conv}/messages`, viewer)).status).toBe(403);
    expect((await api("GET", `/v1/conversations/${conv}/messages`, t.ownerKey)).status).toBe(200);
  });
});
