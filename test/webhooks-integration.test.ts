import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { metaSignature, twilioSignature } from "../lib/signatures";
import { utf8 } from "../lib/encoding";
import { api, BASE, call, createTenant, json, storeCounts } from "./helpers";

const ACCOUNT_SID = `AC${"a".repeat(32)}`;
const AUTH_TOKEN = "twilio-auth-token-0123456789";
const APP_SECRET = "meta-app-secret-0123456789";

async function twilioChannel(ownerKey: string, type: "twilio_sms" | "twilio_whatsapp" = "twilio_sms") {
  const res = await api("POST", "/v1/channels", ownerKey, { type, name: "SMS", config: { accountSid: ACCOUNT_SID, from: "+15005550006" }, secrets: { authToken: AUTH_TOKEN } });
  expect(res.status).toBe(201);
  return (await res.json()) as { id: string; webhookUrl: string };
}

async function postTwilio(path: string, params: Record<string, string>, token = AUTH_TOKEN, signature?: string | null) {
  const map = new Map(Object.entries(params).map(([k, v]) => [k, [v]] as [string, string[]]));
  const sig = signature === undefined ? await twilioSignature(token, BASE + path, map) : signature;
  const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded" };
  if (sig !== null) headers["x-twilio-signature"] = sig;
  return call(path, { method: "POST", headers, body: new URLSearchParams(params).toString() });
}

const inbound = (sid: string, body = "Ciao!", from = "+393471234567") => ({
  MessageSid: sid,
  AccountSid: ACCOUNT_SID,
  From: from,
  To: "+15005550006",
  Body: body,
  NumMedia: "0",
});

describe("Twilio webhook", () => {
  it("verifies the signature, stores once per MessageSid and answers TwiML", async () => {
    const { ownerKey } = await createTenant();
    const channel = await twilioChannel(ownerKey);
    expect(channel.webhookUrl).toBe(`${BASE}/webhooks/twilio/${channel.id}`);
    const path = `/webhooks/twilio/${channel.id}`;
    const sid = `SM${"1".repeat(32)}`;
    for (let i = 0; i < 3; i++) {
      const res = await postTwilio(path, inbound(sid));
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/xml");
      expect(await res.text()).toContain("<Response>");
    }
    const list = (await json(await api("GET", "/v1/conversations", ownerKey))) as { data: { id: string; messageCount: number }[] };
    expect(list.data).toHaveLength(1);
    expect(list.data[0]?.messageCount).toBe(1);
  });

  it("keeps media references", async () => {
    const { ownerKey } = await createTenant();
    const channel = await twilioChannel(ownerKey, "twilio_whatsapp");
    const params = {
      ...inbound(`MM${"2".repeat(32)}`, "", "whatsapp:+393471234567"),
      NumMedia: "1",
      MediaUrl0: `https://api.twilio.com/2010-04-01/Accounts/${ACCOUNT_SID}/Messages/MM1/Media/ME1`,
      MediaContentType0: "image/jpeg",
    };
    expect((await postTwilio(`/webhooks/twilio/${channel.id}`, params)).status).toBe(200);
    const conv = ((await json(await api("GET", "/v1/conversations", ownerKey))) as { data: { id: string }[] }).data[0];
    const detail = await json(await api("GET", `/v1/conversations/${conv?.id}`, ownerKey));
    expect(detail.address).toBe("tel:+393471234567");
    const msgs = (await json(await api("GET", `/v1/conversations/${conv?.id}/messages`, ownerKey))) as { data: { media: { url: string; contentType: string }[] }[] };
    expect(msgs.data[0]?.media).toEqual([{ url: params.MediaUrl0, contentType: "image/jpeg" }]);
  });

  it("401s bad and missing signatures and stores nothing", async () => {
    const { ownerKey } = await createTenant();
    const channel = await twilioChannel(ownerKey);
    const before = await storeCounts();
    const path = `/webhooks/twilio/${channel.id}`;
    expect((await postTwilio(path, inbound(`SM${"3".repeat(32)}`), "wrong-token-0000000000")).status).toBe(401);
    expect((await postTwilio(path, inbound(`SM${"3".repeat(32)}`), AUTH_TOKEN, null)).status).toBe(401);
    // A valid signature over different params (tampered body) fails too.
    const map = new Map(Object.entries(inbound(`SM${"3".repeat(32)}`)).map(([k, v]) => [k, [v]] as [string, string[]]));
    const sig = await twilioSignature(AUTH_TOKEN, BASE + path, map);
    expect((await postTwilio(path, inbound(`SM${"3".repeat(32)}`, "tampered"), AUTH_TOKEN, sig)).status).toBe(401);
    const after = await storeCounts();
    expect(after.conversations).toBe(before.conversations);
    expect(after.security).toBe(before.security + 3);
  });

  it("rejects wrong content type (415) and invalid params (400) without storing", async () => {
    const { ownerKey } = await createTenant();
    const channel = await twilioChannel(ownerKey);
    const before = await storeCounts();
    const res = await call(`/webhooks/twilio/${channel.id}`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(res.status).toBe(415);
    const bad = await postTwilio(`/webhooks/twilio/${channel.id}`, { ...inbound("not-a-sid"), From: "" });
    expect(bad.status).toBe(400);
    expect((await json(bad)).error).toMatchObject({ code: "validation_error" });
    expect((await storeCounts()).conversations).toBe(before.conversations);
    const huge = await call(`/webhooks/twilio/${channel.id}`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `Body=${"x".repeat(300 * 1024)}`,
    });
    expect(huge.status).toBe(413);
    expect((await json(huge)).error).toMatchObject({ code: "payload_too_large" });
    expect((await call(`/webhooks/twilio/ch_${"a".repeat(26)}`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "" })).status).toBe(404);
  });
});

describe("WhatsApp Cloud webhook", () => {
  async function waChannel(ownerKey: string) {
    const res = await api("POST", "/v1/channels", ownerKey, {
      type: "whatsapp_cloud",
      name: "WA",
      config: { phoneNumberId: "106540352242922" },
      secrets: { appSecret: APP_SECRET, accessToken: "EAAG-test-access-token" },
    });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string; generatedSecrets: { verifyToken: string } };
  }

  const payload = (id: string, text: string, phoneNumberId = "106540352242922") => ({
    object: "whatsapp_business_account",
    entry: [
      {
        id: "102290129340398",
        changes: [
          {
            field: "messages",
            value: {
              messaging_product: "whatsapp",
              metadata: { display_phone_number: "15550783881", phone_number_id: phoneNumberId },
              contacts: [{ profile: { name: "Mario" }, wa_id: "393471234567" }],
              messages: [{ from: "393471234567", id, timestamp: "1700000000", type: "text", text: { body: text } }],
            },
          },
        ],
      },
    ],
  });

  async function postWa(channelId: string, body: unknown, secret = APP_SECRET) {
    const raw = JSON.stringify(body);
    return call(`/webhooks/whatsapp/${channelId}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-hub-signature-256": await metaSignature(secret, utf8(raw)) },
      body: raw,
    });
  }

  it("answers the verification handshake only with the right token", async () => {
    const { ownerKey } = await createTenant();
    const channel = await waChannel(ownerKey);
    const ok = await call(`/webhooks/whatsapp/${channel.id}?hub.mode=subscribe&hub.verify_token=${channel.generatedSecrets.verifyToken}&hub.challenge=1158201444`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("1158201444");
    const bad = await call(`/webhooks/whatsapp/${channel.id}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1158201444`);
    expect(bad.status).toBe(403);
  });

  it("stores signed messages once, ignores other numbers, and 401s bad signatures", async () => {
    const { ownerKey } = await createTenant();
    const channel = await waChannel(ownerKey);
    const before = await storeCounts();
    expect((await postWa(channel.id, payload("wamid.A", "hi"), "wrong-secret-0000")).status).toBe(401);
    expect((await storeCounts()).conversations).toBe(before.conversations);
    for (let i = 0; i < 2; i++) {
      const res = await postWa(channel.id, payload("wamid.A", "hi"));
      expect(res.status).toBe(200);
    }
    expect((await json(await postWa(channel.id, payload("wamid.B", "other number", "999999")))).received).toBe(0);
    const list = (await json(await api("GET", "/v1/conversations", ownerKey))) as { data: { id: string; messageCount: number }[] };
    expect(list.data.map((d) => d.messageCount)).toEqual([1]);
    const bad = await postWa(channel.id, { object: "something_else" });
    expect(bad.status).toBe(400);
    const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM conversations").first<{ n: number }>();
    expect(row?.n).toBe(before.conversations + 1);
  });
});
