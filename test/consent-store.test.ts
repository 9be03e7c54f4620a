import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { keywordReply } from "../lib/consent/keywords";
import type { ChannelType } from "../d1/schema";
import { applyKeyword, isMinorWithoutAuthorization, isRestricted, restrictedSubjects } from "../workers/support/consent-store";
import { api, createTenant, json } from "./helpers";

const TENANT = "Pizzeria Da Mario";

async function channel(ownerKey: string, type: ChannelType): Promise<string> {
  const body: Record<ChannelType, unknown> = {
    twilio_sms: { type, name: "SMS", config: { accountSid: `AC${"a".repeat(32)}`, from: "+15005550006" }, secrets: { authToken: "twilio-auth-token-0123456789" } },
    twilio_whatsapp: { type, name: "WA", config: { accountSid: `AC${"a".repeat(32)}`, from: "+15005550006" }, secrets: { authToken: "twilio-auth-token-0123456789" } },
    whatsapp_cloud: { type, name: "Cloud", config: { phoneNumberId: "106540352242922" }, secrets: { appSecret: "meta-app-secret-0123456789", accessToken: "EAAG-test-token" } },
    custom: { type, name: "Custom", config: {} },
    web_chat: { type, name: "Chat", config: { allowedOrigins: [] } },
  };
  const res = await api("POST", "/v1/channels", ownerKey, body[type]);
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function subjectHash(ownerKey: string, subject: string): Promise<string> {
  return ((await json(await api("GET", `/v1/consents?subject=${encodeURIComponent(subject)}`, ownerKey))) as { subjectHash: string }).subjectHash;
}

async function current(ownerKey: string, hash: string, purpose: string): Promise<string | undefined> {
  const body = (await json(await api("GET", `/v1/consents?subjectHash=${hash}`, ownerKey))) as { current: { purpose: string; state: string }[] };
  return body.current.find((s) => s.purpose === purpose)?.state;
}

describe("applyKeyword (the conversation object's hook)", () => {
  const cases: [ChannelType, string][] = [
    ["twilio_sms", "marketing_sms"],
    ["twilio_whatsapp", "marketing_whatsapp"],
    ["whatsapp_cloud", "marketing_whatsapp"],
    ["custom", "marketing_email"],
    ["web_chat", "marketing_email"],
  ];
  for (const [type, purpose] of cases) {
    it(`${type}: an opt-out withdraws ${purpose} at once, with the message id as evidence, and confirms in the keyword's language`, async () => {
      const { tenantId, ownerKey } = await createTenant(TENANT);
      const channelId = await channel(ownerKey, type);
      const hash = await subjectHash(ownerKey, "+393471234567");
      const input = { tenantId, channelId, channelType: type, subjectHash: hash, providerMessageId: `msg-${type}-1`, text: " Cancellà! " };
      const outcome = await applyKeyword(env, input);
      expect(outcome).toEqual({ action: "opt_out", reply: keywordReply("opt_out", "it", { tenantName: TENANT }) });
      expect(await current(ownerKey, hash, purpose)).toBe("withdrawn");
      const entry = await env.DB.prepare("SELECT * FROM consents WHERE tenant_id = ?").bind(tenantId).first<Record<string, unknown>>();
      expect(entry).toMatchObject({ purpose, status: "withdrawn", method: "channel_keyword", evidence_message_id: `msg-${type}-1`, channel_id: channelId, actor_type: "channel" });
      // A retried hook (same provider message) appends nothing and answers the same.
      expect(await applyKeyword(env, input)).toEqual(outcome);
      const n = await env.DB.prepare("SELECT COUNT(*) AS n FROM consents WHERE tenant_id = ?").bind(tenantId).first<{ n: number }>();
      expect(n?.n).toBe(1);
      // In D1 itself: a second entry for the same message is dropped, and the first can never be replaced.
      const copy = (id: string) =>
        env.DB.prepare(
          `INSERT OR REPLACE INTO consents (id, tenant_id, subject_hash, purpose, status, method, channel_id, evidence_message_id, actor_type, created_at)
           SELECT ?, tenant_id, subject_hash, purpose, 'granted', method, channel_id, evidence_message_id, actor_type, created_at FROM consents WHERE tenant_id = ?`,
        ).bind(id, tenantId);
      expect((await copy("cns_other").run()).meta.changes).toBe(0);
      await expect(copy(String(entry?.id)).run()).rejects.toThrow(/append-only/);
      expect(await current(ownerKey, hash, purpose)).toBe("withdrawn");
    });
  }

  it("opt-in re-subscribes only someone who opted out; a bare YES is otherwise an ordinary message", async () => {
    const { tenantId, ownerKey } = await createTenant(TENANT);
    const channelId = await channel(ownerKey, "twilio_sms");
    const hash = await subjectHash(ownerKey, "+393479990000");
    const base = { tenantId, channelId, channelType: "twilio_sms" as const, subjectHash: hash };
    expect(await applyKeyword(env, { ...base, providerMessageId: "m1", text: "yes" })).toBeNull();
    expect(await applyKeyword(env, { ...base, providerMessageId: "m2", text: "START" })).toBeNull();
    expect(await current(ownerKey, hash, "marketing_sms")).toBe("none");
    await applyKeyword(env, { ...base, providerMessageId: "m3", text: "STOP" });
    const back = await applyKeyword(env, { ...base, providerMessageId: "m4", text: "Iscrivimi" });
    expect(back).toEqual({ action: "opt_in", reply: keywordReply("opt_in", "it", { tenantName: TENANT }) });
    expect(await current(ownerKey, hash, "marketing_sms")).toBe("granted");
    // The re-subscription is recorded on the default keyword-marketing notice, in the keyword's language.
    const grant = await env.DB.prepare("SELECT n.key, n.locale FROM consents c JOIN notices n ON n.id = c.notice_id WHERE c.tenant_id = ? AND c.status = 'granted'")
      .bind(tenantId)
      .first<{ key: string; locale: string }>();
    expect(grant).toEqual({ key: "marketing_keyword", locale: "it" });
    // Retrying the opt-in message answers the same even though the state is no longer "withdrawn".
    expect(await applyKeyword(env, { ...base, providerMessageId: "m4", text: "Iscrivimi" })).toEqual(back);
    // The withdrawal that follows references the notice of the grant it withdraws.
    await applyKeyword(env, { ...base, providerMessageId: "m5", text: "stop" });
    const last = await env.DB.prepare("SELECT notice_id FROM consents WHERE tenant_id = ? ORDER BY seq DESC LIMIT 1").bind(tenantId).first<{ notice_id: string | null }>();
    expect(last?.notice_id).toMatch(/^ntc_/);
  });

  it("HELP answers with the tenant's contact text (or a localised default) and writes nothing", async () => {
    const { tenantId, ownerKey } = await createTenant(TENANT);
    const channelId = await channel(ownerKey, "custom");
    const hash = await subjectHash(ownerKey, "cliente@example.com");
    const base = { tenantId, channelId, channelType: "custom" as const, subjectHash: hash, providerMessageId: "h1" };
    expect(await applyKeyword(env, { ...base, text: "aiuto" })).toEqual({ action: "help", reply: keywordReply("help", "it", { tenantName: TENANT }) });
    expect(await applyKeyword(env, { ...base, text: "HELP?" })).toEqual({ action: "help", reply: keywordReply("help", "en", { tenantName: TENANT }) });
    await env.DB.prepare("UPDATE settings SET data = ? WHERE tenant_id = ?").bind(JSON.stringify({ contactText: "Call us on +39 02 1234567 (9-18)." }), tenantId).run();
    expect(await applyKeyword(env, { ...base, text: "Aiuto!" })).toEqual({ action: "help", reply: "Call us on +39 02 1234567 (9-18)." });
    const n = await env.DB.prepare("SELECT COUNT(*) AS n FROM consents WHERE tenant_id = ?").bind(tenantId).first<{ n: number }>();
    expect(n?.n).toBe(0);
  });

  it("leaves ordinary messages alone and honours the conversation's language when given", async () => {
    const { tenantId, ownerKey } = await createTenant(TENANT);
    const channelId = await channel(ownerKey, "twilio_sms");
    const hash = await subjectHash(ownerKey, "+393470000001");
    const base = { tenantId, channelId, channelType: "twilio_sms" as const, subjectHash: hash };
    expect(await applyKeyword(env, { ...base, providerMessageId: "o1", text: "Can you stop by tomorrow?" })).toBeNull();
    expect(await applyKeyword(env, { ...base, providerMessageId: "o2", text: "STOP", locale: "it" })).toEqual({
      action: "opt_out",
      reply: keywordReply("opt_out", "it", { tenantName: TENANT }),
    });
  });
});

describe("hooks for the AI pipeline", () => {
  it("restriction lookups answer false until data-subject requests exist", async () => {
    const { tenantId } = await createTenant();
    expect(await isRestricted(env, tenantId, "a".repeat(64))).toBe(false);
    expect((await restrictedSubjects(env, tenantId, ["a".repeat(64), "b".repeat(64)])).size).toBe(0);
  });

  it("isMinorWithoutAuthorization is false for a subject with no recorded age", async () => {
    const { tenantId } = await createTenant();
    expect(await isMinorWithoutAuthorization(env, tenantId, "c".repeat(64))).toBe(false);
  });
});
