/** Twilio SMS and WhatsApp webhooks: inbound messages and delivery-status callbacks, verified with X-Twilio-Signature. */
import { Hono } from "hono";
import { z } from "zod";
import { verifyTwilioSignature } from "../../lib/signatures";
import { importInboundMedia } from "../attachments";
import type { AppEnv } from "../support/context";
import { requireContentType, rawBody, strictUtf8 } from "../support/body";
import { ApiError, zodIssues } from "../support/errors";
import { applyStatus, ingestInbound, loadWebhookChannel, verifiedWebhookChannel, type WebhookChannel } from "../support/ingest";
import { publicOrigin } from "../support/router";
import type { Context } from "hono";
import type { MediaRef } from "../../durable-objects/conversation";

export const twilioWebhooks = new Hono<AppEnv>();

const TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>';
const sid = (prefix: string) => z.string().regex(new RegExp(`^${prefix}[0-9a-fA-F]{32}$`), `must be a Twilio SID starting with ${prefix}`);

const inboundSchema = z.object({
  MessageSid: z.string().regex(/^(SM|MM)[0-9a-fA-F]{32}$/, "must be a Twilio message SID"),
  AccountSid: sid("AC"),
  From: z.string().min(3).max(64),
  Body: z.string().max(8192).default(""),
  NumMedia: z.coerce.number().int().min(0).max(10).default(0),
});

const statusSchema = z.object({
  MessageSid: z.string().regex(/^(SM|MM)[0-9a-fA-F]{32}$/),
  AccountSid: sid("AC"),
  MessageStatus: z.string().max(32),
  ErrorCode: z.string().max(16).optional(),
});

const TWILIO_STATUS: Record<string, "sent" | "delivered" | "read" | "failed" | undefined> = {
  sent: "sent",
  delivered: "delivered",
  read: "read",
  undelivered: "failed",
  failed: "failed",
};

/** Reads, verifies and parses a Twilio form post; nothing is stored before the signature checks out. */
async function verifiedForm(c: Context<AppEnv>): Promise<{ channel: WebhookChannel; params: Map<string, string[]> }> {
  requireContentType(c, "application/x-www-form-urlencoded");
  const loaded = await loadWebhookChannel(c.env, c.req.param("channelId") ?? "", ["twilio_sms", "twilio_whatsapp"]);
  const text = strictUtf8(await rawBody(c));
  const params = new Map<string, string[]>();
  for (const [key, value] of new URLSearchParams(text)) params.set(key, [...(params.get(key) ?? []), value]);
  const url = new URL(c.req.url);
  const signedUrl = publicOrigin(c.env, c.req.url) + url.pathname + url.search;
  const signature = c.req.header("x-twilio-signature");
  const channel = await verifiedWebhookChannel(c.env, loaded, "twilio_signature", async (candidate) => {
    const valid = candidate.secrets.authToken ? await verifyTwilioSignature(candidate.secrets.authToken, signedUrl, params, signature) : false;
    return valid ? null : signature ? "mismatch" : "missing";
  });
  return { channel, params };
}

function single(params: Map<string, string[]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, values] of params) if (values[0] !== undefined) out[key] = values[0];
  return out;
}

function parseOrThrow<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ApiError(400, "validation_error", "webhook payload is invalid", zodIssues(parsed.error));
  return parsed.data;
}

twilioWebhooks.post("/:channelId", async (c) => {
  const { channel, params } = await verifiedForm(c);
  const fields = single(params);
  const data = parseOrThrow(inboundSchema, fields);
  if (data.AccountSid.toLowerCase() !== (channel.config.accountSid ?? "").toLowerCase()) {
    throw new ApiError(400, "bad_request", "AccountSid does not match this channel");
  }
  const media: MediaRef[] = [];
  for (let i = 0; i < data.NumMedia; i++) {
    const url = fields[`MediaUrl${i}`];
    if (url) media.push({ url, contentType: fields[`MediaContentType${i}`] ?? "application/octet-stream" });
  }
  if (!data.Body && media.length === 0) throw new ApiError(400, "validation_error", "message has neither text nor media", [{ path: "Body", message: "empty" }]);
  const result = await ingestInbound(c.env, channel, publicOrigin(c.env, c.req.url), {
    from: data.From,
    providerMessageId: data.MessageSid,
    text: data.Body,
    media,
  });
  // Media is downloaded (allow-listed hosts only) and stored encrypted after the answer; a duplicate was imported the first time.
  if (!result.duplicate && media.length > 0) c.executionCtx.waitUntil(importInboundMedia(c.env, channel, result.conversationId, result.messageId, media));
  return c.body(TWIML_EMPTY, 200, { "content-type": "text/xml; charset=utf-8" });
});

twilioWebhooks.post("/:channelId/status", async (c) => {
  const { channel, params } = await verifiedForm(c);
  const data = parseOrThrow(statusSchema, single(params));
  const status = TWILIO_STATUS[data.MessageStatus];
  const conversationId = c.req.query("conversation");
  const messageId = c.req.query("message");
  if (status && conversationId) {
    await applyStatus(c.env, channel, { conversationId }, {
      ...(messageId ? { messageId } : { providerMessageId: data.MessageSid }),
      status,
      error: data.ErrorCode ? `twilio_${data.ErrorCode}` : null,
    });
  }
  return c.body(null, 204);
});
