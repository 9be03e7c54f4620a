/**
 * The keyword suite, shared by the consent-keywords-*-integration test files
 * (one per channel kind): a keyword arrives through a real channel webhook,
 * the conversation object hands it to `applyKeyword` right after committing
 * it, queues the confirmation, and never runs the AI for it.
 *
 * One file per channel kind, because requests through the pool's
 * `exports.default.fetch` get slower with every request a workerd instance
 * has served (cloudflare/workers-sdk#15446): each file gets a fresh one.
 */
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { keywordReply } from "../lib/consent/keywords";
import { utf8 } from "../lib/encoding";
import { metaSignature, twilioSignature } from "../lib/signatures";
import type { ChannelType } from "../d1/schema";
import { api, BASE, call, createTenant, json, postCustom, settle } from "./helpers";

const TENANT = "Pizzeria Da Mario";
const ACCOUNT_SID = `AC${"a".repeat(32)}`;
const AUTH_TOKEN = "twilio-auth-token-0123456789";
const APP_SECRET = "meta-app-secret-0123456789";
const PHONE_NUMBER_ID = "106540352242922";

/** The channel kinds the suite runs through. */
export type Kind = "twilio_sms" | "twilio_whatsapp" | "whatsapp_cloud" | "custom";

interface Setup {
  tenantId: string;
  ownerKey: string;
  channelId: string;
  secret: string;
  marketingNoticeId: string;
}

const PURPOSE: Record<Kind, string> = {
  twilio_sms: "marketing_sms",
  twilio_whatsapp: "marketing_whatsapp",
  whatsapp_cloud: "marketing_whatsapp",
  custom: "marketing_email",
};

async function setup(kind: Kind): Promise<Setup> {
  const { tenantId, ownerKey } = await createTenant(TENANT, { aiReplies: true });
  const bodies: Record<Kind, unknown> = {
    twilio_sms: { type: kind, name: "SMS", config: { accountSid: ACCOUNT_SID, from: "+15005550006" }, secrets: { authToken: AUTH_TOKEN } },
    twilio_whatsapp: { type: kind, name: "WA", config: { accountSid: ACCOUNT_SID, from: "+15005550006" }, secrets: { authToken: AUTH_TOKEN } },
    whatsapp_cloud: { type: kind, name: "Cloud", config: { phoneNumberId: PHONE_NUMBER_ID }, secrets: { appSecret: APP_SECRET, accessToken: "EAAG-test-token" } },
    custom: { type: kind, name: "Custom", config: { callbackUrl: "https://hooks.example.com/parley" } },
  };
  const res = await api("POST", "/v1/channels", ownerKey, bodies[kind]);
  expect(res.status).toBe(201);
  const channel = (await res.json()) as { id: string; generatedSecrets: { signingSecret?: string } };
  const notices = (await json(await api("GET", "/v1/notices?key=marketing_keyword&locale=en", ownerKey))) as { data: { id: string }[] };
  return { tenantId, ownerKey, channelId: channel.id, secret: channel.generatedSecrets.signingSecret ?? "", marketingNoticeId: notices.data[0]?.id ?? "" };
}

/** Posts one inbound message through the channel's real webhook, signed as the provider signs it. */
async function inbound(kind: Kind, s: Setup, phone: string, messageId: string, text: string): Promise<void> {
  let res: Response;
  if (kind === "custom") {
    res = await postCustom(s.channelId, s.secret, { type: "message", id: messageId, from: phone, text });
  } else if (kind === "whatsapp_cloud") {
    const raw = JSON.stringify({
      object: "whatsapp_business_account",
      entry: [
        {
          id: "102290129340398",
          changes: [
            {
              field: "messages",
              value: {
                messaging_product: "whatsapp",
                metadata: { display_phone_number: "15550783881", phone_number_id: PHONE_NUMBER_ID },
                contacts: [{ profile: { name: "Cliente" }, wa_id: phone.slice(1) }],
                messages: [{ from: phone.slice(1), id: messageId, timestamp: String(Math.floor(Date.now() / 1000)), type: "text", text: { body: text } }],
              },
            },
          ],
        },
      ],
    });
    res = await call(`/webhooks/whatsapp/${s.channelId}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": await metaSignature(APP_SECRET, utf8(raw)) },
      body: raw,
    });
  } else {
    const params: Record<string, string> = {
      // Twilio ids are SM + 32 hex characters.
      MessageSid: `SM${Array.from(utf8(messageId), (b) => b.toString(16).padStart(2, "0")).join("").padEnd(32, "0").slice(-32)}`,
      AccountSid: ACCOUNT_SID,
      From: kind === "twilio_whatsapp" ? `whatsapp:${phone}` : phone,
      To: kind === "twilio_whatsapp" ? "whatsapp:+15005550006" : "+15005550006",
      Body: text,
      NumMedia: "0",
    };
    const path = `/webhooks/twilio/${s.channelId}`;
    const map = new Map(Object.entries(params).map(([k, v]) => [k, [v]] as [string, string[]]));
    res = await call(path, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": await twilioSignature(AUTH_TOKEN, BASE + path, map) },
      body: new URLSearchParams(params).toString(),
    });
  }
  expect(res.status).toBe(200);
}

/** Provider calls the conversation objects made (outbound deliveries), and any call to an AI provider. */
let providerCalls: { url: string; body: string }[] = [];

/** Stands in for the providers (Twilio, Meta, a custom callback) for every test of the calling file. */
export function stubProviders(): void {
  beforeEach(() => {
    providerCalls = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const req = new Request(input, init);
      const body = await req.text();
      providerCalls.push({ url: req.url, body });
      if (req.url.includes("api.twilio.com")) return Response.json({ sid: `SM${crypto.randomUUID().replace(/-/g, "")}`, status: "queued" }, { status: 201 });
      if (req.url.includes("graph.facebook.com")) return Response.json({ messages: [{ id: `wamid.${crypto.randomUUID()}` }] });
      if (req.url.startsWith("https://hooks.example.com/")) return Response.json({ id: crypto.randomUUID() });
      return new Response("unexpected request in test", { status: 599 });
    });
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });
}

async function conversationOf(s: Setup, phone: string): Promise<string> {
  const { subjectHash } = (await json(await api("GET", `/v1/consents?subject=${encodeURIComponent(phone)}`, s.ownerKey))) as { subjectHash: string };
  const row = await env.DB.prepare("SELECT id FROM conversations WHERE tenant_id = ? AND channel_id = ? AND subject_hash = ?")
    .bind(s.tenantId, s.channelId, subjectHash)
    .first<{ id: string }>();
  if (!row) throw new Error("conversation not indexed");
  return row.id;
}

/** Runs the conversation object's alarm until nothing is due (AI tasks, outbox). */
/** Runs the object's alarm until no decision or delivery is pending (an alarm may also be running on its own). */
async function stateFor(s: Setup, phone: string, purpose: string): Promise<string | undefined> {
  const body = (await json(await api("GET", `/v1/consents?subject=${encodeURIComponent(phone)}`, s.ownerKey))) as { current: { purpose: string; state: string }[] };
  return body.current.find((c) => c.purpose === purpose)?.state;
}

interface Msg {
  direction: string;
  author: string;
  text: string;
  status: string;
}

async function messagesOf(s: Setup, conversationId: string): Promise<Msg[]> {
  return ((await json(await api("GET", `/v1/conversations/${conversationId}/messages?limit=200`, s.ownerKey))) as unknown as { data: Msg[] }).data;
}

/** The AI made no decision for this tenant: agent-health has no counts and no provider call was made. */
async function expectNoAiDecision(s: Setup): Promise<void> {
  const res = await api("GET", "/v1/agent-health", s.ownerKey);
  expect(res.status).toBe(200);
  const health = (await res.json()) as { totals: Record<string, number>; days: unknown[]; aiCallsToday: number };
  expect(health.totals).toEqual({ sent: 0, suppressed: 0, skipped: 0, silence: 0, handoff: 0 });
  expect(health.days).toEqual([]);
  expect(health.aiCallsToday).toBe(0);
  const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM agent_health WHERE tenant_id = ?").bind(s.tenantId).first<{ n: number }>();
  expect(rows?.n).toBe(0);
  expect(providerCalls.filter((c) => c.url.startsWith(env.OPENAI_BASE_URL))).toEqual([]);
}

/** The confirmation is an outbound message in the conversation and was handed to the provider. */
async function expectConfirmation(s: Setup, conversationId: string, reply: string): Promise<void> {
  const all = await messagesOf(s, conversationId);
  const outbound = all.filter((m) => m.direction === "outbound");
  expect(outbound.map((m) => m.text)).toContain(reply);
  expect(outbound.find((m) => m.text === reply)).toMatchObject({ author: "system" });
  // Nothing else was said: no AI reply, no hand-off message.
  expect(outbound.filter((m) => m.text !== reply)).toEqual([]);
  expect(providerCalls.some((c) => c.body.includes(reply) || new URLSearchParams(c.body).get("Body") === reply)).toBe(true);
}

const OPT_OUT: [string, "en" | "it"][] = [
  ["STOP", "en"],
  ["STOPALL", "en"],
  ["UNSUBSCRIBE", "en"],
  ["CANCEL", "en"],
  ["END", "en"],
  ["QUIT", "en"],
  ["REVOKE", "en"],
  ["OPTOUT", "en"],
  ["ANNULLA", "it"],
  ["CANCELLA", "it"],
  ["BASTA", "it"],
  ["DISISCRIVIMI", "it"],
];
const OPT_IN: [string, "en" | "it"][] = [
  ["START", "en"],
  ["YES", "en"],
  ["UNSTOP", "en"],
  ["ISCRIVIMI", "it"],
];
const HELP: [string, "en" | "it"][] = [
  ["HELP", "en"],
  ["AIUTO", "it"],
];

/** Upper case, lower case, and accented with punctuation ("Cancellà!"). */
function spellings(word: string): string[] {
  const lower = word.toLowerCase();
  const title = lower.charAt(0).toUpperCase() + lower.slice(1);
  const i = /[aeiou]$/.test(title) ? title.length - 1 : title.search(/[aeiou]/i);
  const accents: Record<string, string> = { a: "à", e: "è", i: "ì", o: "ò", u: "ù", A: "À", E: "È", I: "Ì", O: "Ò", U: "Ù" };
  const accented = title.slice(0, i) + (accents[title[i] ?? ""] ?? "") + title.slice(i + 1);
  return [word, lower, ` ${accented}! `];
}

let phoneCounter = 0;
const nextPhone = () => `+39347${String(1_000_000 + ++phoneCounter * 7).padStart(7, "0")}`;

/** Every keyword, in three spellings, through the webhook of one channel kind. */
export function keywordSuite(kind: Kind): void {
  // Each test drives three spellings through real webhooks and alarms: allow for a loaded machine.
  describe(`keywords through the ${kind} webhook`, { timeout: 90_000 }, () => {
    let s: Setup;
    beforeAll(async () => {
      s = await setup(kind);
    });

    for (const [word, locale] of OPT_OUT) {
      it(`${word} (any case, accented) withdraws ${PURPOSE[kind]}, confirms in ${locale}, and never reaches the AI`, async () => {
        for (const text of spellings(word)) {
          const phone = nextPhone();
          const granted = await api("POST", "/v1/consents", s.ownerKey, { subject: phone, purpose: PURPOSE[kind], status: "granted", method: "api", noticeId: s.marketingNoticeId });
          expect(granted.status).toBe(201);
          await inbound(kind, s, phone, `in-${phone}-1`, text);
          const conversationId = await conversationOf(s, phone);
          await settle(conversationId, 10);
          expect(await stateFor(s, phone, PURPOSE[kind]), text).toBe("withdrawn");
          await expectConfirmation(s, conversationId, keywordReply("opt_out", locale, { tenantName: TENANT }));
          await expectNoAiDecision(s);
        }
      });
    }

    for (const [word, locale] of OPT_IN) {
      it(`${word} (any case, accented) opts back in after a STOP, confirms in ${locale}, and never reaches the AI`, async () => {
        for (const text of spellings(word)) {
          const phone = nextPhone();
          await inbound(kind, s, phone, `in-${phone}-1`, "STOP");
          const conversationId = await conversationOf(s, phone);
          await settle(conversationId, 10);
          expect(await stateFor(s, phone, PURPOSE[kind])).toBe("withdrawn");
          await inbound(kind, s, phone, `in-${phone}-2`, text);
          await settle(conversationId, 10);
          expect(await stateFor(s, phone, PURPOSE[kind]), text).toBe("granted");
          const replies = (await messagesOf(s, conversationId)).filter((m) => m.direction === "outbound").map((m) => m.text);
          expect(replies).toEqual([keywordReply("opt_out", "en", { tenantName: TENANT }), keywordReply("opt_in", locale, { tenantName: TENANT })]);
          await expectNoAiDecision(s);
        }
      });
    }

    for (const [word, locale] of HELP) {
      it(`${word} (any case, accented) answers with the contact text in ${locale}, changes no consent, and never reaches the AI`, async () => {
        for (const text of spellings(word)) {
          const phone = nextPhone();
          await inbound(kind, s, phone, `in-${phone}-1`, text);
          const conversationId = await conversationOf(s, phone);
          await settle(conversationId, 10);
          expect(await stateFor(s, phone, PURPOSE[kind])).toBe("none");
          await expectConfirmation(s, conversationId, keywordReply("help", locale, { tenantName: TENANT }));
          await expectNoAiDecision(s);
        }
      });
    }

    it("a duplicate delivery of the keyword webhook appends one entry and sends one confirmation", async () => {
      const phone = nextPhone();
      await inbound(kind, s, phone, `in-${phone}-dup`, "Stop");
      await inbound(kind, s, phone, `in-${phone}-dup`, "Stop");
      const conversationId = await conversationOf(s, phone);
      await settle(conversationId, 10);
      const { history } = (await json(await api("GET", `/v1/consents?subject=${encodeURIComponent(phone)}`, s.ownerKey))) as { history: unknown[] };
      expect(history).toHaveLength(1);
      const replies = (await messagesOf(s, conversationId)).filter((m) => m.direction === "outbound");
      expect(replies.map((m) => m.text)).toEqual([keywordReply("opt_out", "en", { tenantName: TENANT })]);
      await expectNoAiDecision(s);
    });
  });
}

/** The control: an ordinary message is decided by the AI, so the keyword checks are not vacuous. */
export function controlSuite(): void {
  describe("control: an ordinary message does reach the AI", { timeout: 90_000 }, () => {
    it("is decided by the AI pipeline and leaves consent untouched (so the checks above are not vacuous)", async () => {
      for (const kind of ["twilio_sms", "custom"] as const satisfies readonly ChannelType[]) {
        const s = await setup(kind);
        const phone = nextPhone();
        await inbound(kind, s, phone, `in-${phone}-1`, "Please stop by the shop tomorrow, what time do you open?");
        const conversationId = await conversationOf(s, phone);
        await settle(conversationId, 10);
        expect(await stateFor(s, phone, PURPOSE[kind])).toBe("none");
        const health = (await json(await api("GET", "/v1/agent-health", s.ownerKey))) as { totals: Record<string, number> };
        expect(Object.values(health.totals).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
      }
    });
  });
}
