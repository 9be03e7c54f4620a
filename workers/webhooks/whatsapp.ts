/** WhatsApp Cloud API webhook: the GET verification handshake and signed POST notifications. */
import { Hono } from "hono";
import { z } from "zod";
import { timingSafeEqualStrings } from "../../lib/crypto";
import { verifyMetaSignature } from "../../lib/signatures";
import { importInboundMedia } from "../attachments";
import type { MediaRef } from "../../durable-objects/conversation";
import type { AppEnv } from "../support/context";
import { logSecurityEvent } from "../support/audit";
import { rawBody, requireContentType, strictUtf8 } from "../support/body";
import { ApiError, zodIssues } from "../support/errors";
import { applyStatus, ingestInbound, loadWebhookChannel, verifiedWebhookChannel, type InboundMessage } from "../support/ingest";
import { publicOrigin } from "../support/router";

export const whatsappWebhooks = new Hono<AppEnv>();

whatsappWebhooks.get("/:channelId", async (c) => {
  const channel = await loadWebhookChannel(c.env, c.req.param("channelId"), ["whatsapp_cloud"]);
  const mode = c.req.query("hub.mode");
  const token = c.req.query("hub.verify_token") ?? "";
  const challenge = c.req.query("hub.challenge") ?? "";
  const expected = channel.secrets.verifyToken ?? "";
  if (mode !== "subscribe" || !expected || !timingSafeEqualStrings(token, expected) || !/^[\w-]{1,128}$/.test(challenge)) {
    await logSecurityEvent(c.env.DB, { tenantId: channel.tenantId, channelId: channel.id, kind: "whatsapp_verify", reason: "bad verify token or mode" });
    throw new ApiError(403, "forbidden", "verification failed");
  }
  return c.text(challenge, 200);
});

const mediaSchema = z.object({
  id: z.string().max(128),
  mime_type: z.string().max(128).optional(),
  caption: z.string().max(4096).optional(),
  filename: z.string().max(256).optional(),
});

const messageSchema = z
  .object({
    from: z.string().regex(/^\d{6,16}$/),
    id: z.string().min(1).max(256),
    timestamp: z.string().max(16).optional(),
    type: z.string().max(32),
    text: z.object({ body: z.string().max(8192) }).optional(),
    image: mediaSchema.optional(),
    audio: mediaSchema.optional(),
    video: mediaSchema.optional(),
    document: mediaSchema.optional(),
    sticker: mediaSchema.optional(),
    button: z.object({ text: z.string().max(1024) }).optional(),
    interactive: z
      .object({
        button_reply: z.object({ id: z.string(), title: z.string().max(1024) }).optional(),
        list_reply: z.object({ id: z.string(), title: z.string().max(1024) }).optional(),
      })
      .optional(),
  })
  .loose();

const statusSchema = z
  .object({
    id: z.string().min(1).max(256),
    status: z.string().max(32),
    recipient_id: z.string().regex(/^\d{6,16}$/),
    errors: z.array(z.object({ code: z.number().optional(), title: z.string().optional() }).loose()).optional(),
  })
  .loose();

const payloadSchema = z.object({
  object: z.literal("whatsapp_business_account"),
  entry: z
    .array(
      z.object({
        id: z.string().max(64),
        changes: z
          .array(
            z.object({
              field: z.string().max(64),
              value: z
                .object({
                  messaging_product: z.string().optional(),
                  metadata: z.object({ phone_number_id: z.string().max(64) }).loose().optional(),
                  messages: z.array(messageSchema).max(100).optional(),
                  statuses: z.array(statusSchema).max(100).optional(),
                })
                .loose(),
            }),
          )
          .max(100),
      }),
    )
    .max(100),
});

type WaMessage = z.infer<typeof messageSchema>;

function toInbound(message: WaMessage): InboundMessage {
  const media: MediaRef[] = [];
  let text = message.text?.body ?? message.button?.text ?? message.interactive?.button_reply?.title ?? message.interactive?.list_reply?.title ?? "";
  for (const kind of ["image", "audio", "video", "document", "sticker"] as const) {
    const item = message[kind];
    if (item) {
      media.push({ providerMediaId: item.id, contentType: item.mime_type ?? "application/octet-stream", ...(item.filename ? { filename: item.filename } : {}) });
      if (!text && item.caption) text = item.caption;
    }
  }
  if (!text && media.length === 0) text = `[unsupported WhatsApp message type: ${message.type}]`;
  return { from: `+${message.from}`, providerMessageId: message.id, text, media };
}

const WA_STATUS: Record<string, "sent" | "delivered" | "read" | "failed" | undefined> = {
  sent: "sent",
  delivered: "delivered",
  read: "read",
  failed: "failed",
};

whatsappWebhooks.post("/:channelId", async (c) => {
  requireContentType(c, "application/json");
  const loaded = await loadWebhookChannel(c.env, c.req.param("channelId"), ["whatsapp_cloud"]);
  const bytes = await rawBody(c);
  const signature = c.req.header("x-hub-signature-256");
  const channel = await verifiedWebhookChannel(c.env, loaded, "whatsapp_signature", async (candidate) =>
    candidate.secrets.appSecret && (await verifyMetaSignature(candidate.secrets.appSecret, bytes, signature)) ? null : signature ? "mismatch" : "missing",
  );
  let json: unknown;
  try {
    json = JSON.parse(strictUtf8(bytes));
  } catch (err) {
    if (err instanceof ApiError) throw err;
    throw new ApiError(400, "invalid_json", "body is not valid JSON");
  }
  const parsed = payloadSchema.safeParse(json);
  if (!parsed.success) throw new ApiError(400, "validation_error", "webhook payload is invalid", zodIssues(parsed.error));
  const origin = publicOrigin(c.env, c.req.url);
  let received = 0;
  let duplicates = 0;
  for (const entry of parsed.data.entry) {
    for (const change of entry.changes) {
      // A business account can hold several numbers; only this channel's number is ours to take.
      if (change.field !== "messages" || change.value.metadata?.phone_number_id !== channel.config.phoneNumberId) continue;
      for (const message of change.value.messages ?? []) {
        const inbound = toInbound(message);
        const result = await ingestInbound(c.env, channel, origin, inbound);
        if (result.duplicate) duplicates++;
        else received++;
        // Media is resolved and downloaded (allow-listed hosts only) and stored encrypted after the answer.
        if (!result.duplicate && inbound.media.length > 0) c.executionCtx.waitUntil(importInboundMedia(c.env, channel, result.conversationId, result.messageId, inbound.media));
      }
      for (const status of change.value.statuses ?? []) {
        const mapped = WA_STATUS[status.status];
        if (!mapped) continue;
        const error = status.errors?.[0]?.code !== undefined ? `whatsapp_${status.errors[0].code}` : null;
        await applyStatus(c.env, channel, { address: `+${status.recipient_id}` }, { providerMessageId: status.id, status: mapped, error });
      }
    }
  }
  return c.json({ received, duplicates }, 200);
});
