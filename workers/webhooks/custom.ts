/** Custom signed webhook (Zapier, Make, n8n, in-house systems): `X-Parley-Signature: t=…,v1=…`. */
import { Hono } from "hono";
import { z } from "zod";
import { acceptedSigningSecrets } from "../../lib/channels/config";
import { verifyParleySignature } from "../../lib/signatures";
import type { AppEnv } from "../support/context";
import { rawBody, requireContentType, strictUtf8 } from "../support/body";
import { ApiError, zodIssues } from "../support/errors";
import { applyStatus, ingestInbound, loadWebhookChannel, verifiedWebhookChannel } from "../support/ingest";
import { publicOrigin } from "../support/router";

export const customWebhooks = new Hono<AppEnv>();

/** Events a custom integration may post. */
export const customEventSchema = z.discriminatedUnion("type", [
  z
    .object({
      type: z.literal("message"),
      id: z.string().min(1).max(256),
      from: z.string().min(1).max(320),
      text: z.string().max(8192).default(""),
      attachments: z
        .array(z.object({ url: z.url({ protocol: /^https$/ }).max(2048), contentType: z.string().max(128).optional(), filename: z.string().max(256).optional() }).strict())
        .max(10)
        .default([]),
    })
    .strict()
    .refine((m) => m.text.length > 0 || m.attachments.length > 0, { message: "a message needs text or attachments", path: ["text"] }),
  z
    .object({
      type: z.literal("status"),
      conversationId: z.string().min(1).max(64),
      messageId: z.string().min(1).max(64),
      status: z.enum(["sent", "delivered", "read", "failed"]),
      error: z.string().max(200).optional(),
    })
    .strict(),
]);

customWebhooks.post("/:channelId", async (c) => {
  requireContentType(c, "application/json");
  const loaded = await loadWebhookChannel(c.env, c.req.param("channelId"), ["custom"]);
  const body = strictUtf8(await rawBody(c));
  const channel = await verifiedWebhookChannel(c.env, loaded, "parley_signature", async (candidate) => {
    const verdict = await verifyParleySignature(
      acceptedSigningSecrets(candidate.secrets, Date.now()),
      body,
      c.req.header("x-parley-signature"),
      Math.floor(Date.now() / 1000),
    );
    return verdict.ok ? null : verdict.reason;
  });
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new ApiError(400, "invalid_json", "body is not valid JSON");
  }
  const parsed = customEventSchema.safeParse(json);
  if (!parsed.success) throw new ApiError(400, "validation_error", "event is invalid", zodIssues(parsed.error));
  const event = parsed.data;
  if (event.type === "status") {
    const applied = await applyStatus(c.env, channel, { conversationId: event.conversationId }, {
      messageId: event.messageId,
      status: event.status,
      error: event.error ?? null,
    });
    return c.json({ received: true, applied }, 200);
  }
  const result = await ingestInbound(c.env, channel, publicOrigin(c.env, c.req.url), {
    from: event.from,
    providerMessageId: event.id,
    text: event.text,
    media: event.attachments.map((a) => ({ url: a.url, contentType: a.contentType ?? "application/octet-stream", ...(a.filename ? { filename: a.filename } : {}) })),
  });
  return c.json({ received: true, duplicate: result.duplicate, conversationId: result.conversationId, messageId: result.messageId, seq: result.seq }, 200);
});
