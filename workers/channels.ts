/** Channels: connect Twilio, WhatsApp Cloud, custom webhooks and web chat; rotate secrets; delete. */
import { createRoute, z } from "@hono/zod-openapi";
import {
  callbackUrlProblem,
  customConfigSchema,
  ROTATION_GRACE_MS,
  storedConfigSchema,
  twilioConfigSchema,
  twilioSecretsSchema,
  webChatConfigSchema,
  whatsappConfigSchema,
  whatsappSecretsSchema,
  type StoredSecrets,
} from "../lib/channels/config";
import { randomToken } from "../lib/crypto";
import { newId } from "../lib/ids";
import { CHANNEL_TYPES, type ChannelType } from "../d1/schema";
import { auditStatement, keyAudit } from "./support/audit";
import { requireApiKey, requireScope } from "./support/auth";
import type { AppEnv } from "./support/context";
import { ApiError, badRequest, notFound } from "./support/errors";
import { CHANNEL_CACHE_MS, forgetWebhookChannel } from "./support/ingest";
import { openChannelSecrets, sealChannelSecrets } from "./support/keyring";
import { bearerSecurity, createRouter, errorResponses, publicOrigin } from "./support/router";
import type { Context } from "hono";

export const channels = createRouter();
channels.use("*", requireApiKey);

const name = z.string().trim().min(1).max(100);

const CreateChannelBody = z.discriminatedUnion("type", [
  z.object({ type: z.literal("twilio_sms"), name, config: twilioConfigSchema, secrets: twilioSecretsSchema }).strict(),
  z.object({ type: z.literal("twilio_whatsapp"), name, config: twilioConfigSchema, secrets: twilioSecretsSchema }).strict(),
  z.object({ type: z.literal("whatsapp_cloud"), name, config: whatsappConfigSchema, secrets: whatsappSecretsSchema }).strict(),
  z.object({ type: z.literal("custom"), name, config: customConfigSchema.default({}) }).strict(),
  z.object({ type: z.literal("web_chat"), name, config: webChatConfigSchema.default({ allowedOrigins: [] }) }).strict(),
]);

const ChannelSchema = z
  .object({
    id: z.string(),
    type: z.enum(CHANNEL_TYPES),
    name: z.string(),
    status: z.enum(["active", "deleted"]),
    config: z.record(z.string(), z.unknown()),
    webhookUrl: z.string().openapi({ description: "Where the provider must send events for this channel" }),
    secretHints: z.record(z.string(), z.string()).openapi({ description: "Last characters of each stored secret, to tell them apart" }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Channel");

const ChannelWithSecrets = ChannelSchema.extend({
  generatedSecrets: z
    .record(z.string(), z.string())
    .openapi({ description: "Secrets Parley generated (signing secret, verify token). Shown once." }),
});

interface ChannelRow {
  id: string;
  tenant_id: string;
  type: ChannelType;
  name: string;
  config: string;
  secrets: string;
  status: "active" | "deleted";
  created_at: number;
  updated_at: number;
}

/** Public path a channel's provider posts to. */
export function webhookPath(type: ChannelType, id: string): string {
  switch (type) {
    case "twilio_sms":
    case "twilio_whatsapp":
      return `/webhooks/twilio/${id}`;
    case "whatsapp_cloud":
      return `/webhooks/whatsapp/${id}`;
    case "custom":
      return `/webhooks/custom/${id}`;
    case "web_chat":
      return `/chat/${id}`;
  }
}

function hints(secrets: StoredSecrets): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(secrets)) {
    if (typeof value === "string" && key !== "previousSigningSecret") out[key] = `…${value.slice(-4)}`;
  }
  return out;
}

async function channelView(c: Context<AppEnv>, row: ChannelRow) {
  const secrets = await openChannelSecrets(c.env, row.id, row.secrets);
  const origin = publicOrigin(c.env, c.req.url);
  const path = webhookPath(row.type, row.id);
  const webhookUrl = row.type === "web_chat" ? origin.replace(/^http/, "ws") + path : origin + path;
  return {
    id: row.id,
    type: row.type,
    name: row.name,
    status: row.status,
    config: storedConfigSchema.parse(JSON.parse(row.config)),
    webhookUrl,
    secretHints: hints(secrets),
    createdAt: new Date(row.created_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
  };
}

async function loadChannel(c: Context<AppEnv>, id: string): Promise<ChannelRow> {
  const row = await c.env.DB.prepare("SELECT * FROM channels WHERE id = ? AND tenant_id = ? AND status = 'active'")
    .bind(id, c.get("auth").tenantId)
    .first<ChannelRow>();
  if (!row) throw notFound("channel");
  return row;
}

function checkCallbackUrl(env: Env, url: string | undefined): void {
  if (!url) return;
  const problem = callbackUrlProblem(url, env.ALLOW_INSECURE_CALLBACKS === "true");
  if (problem) throw new ApiError(400, "validation_error", problem, [{ path: "config.callbackUrl", message: problem }]);
}

channels.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Channels"],
    summary: "Connect a channel; returns its webhook URL",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: CreateChannelBody } } } },
    responses: { 201: { description: "Created", content: { "application/json": { schema: ChannelWithSecrets } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "channels:write");
    const body = c.req.valid("json");
    const generated: Record<string, string> = {};
    let secrets: StoredSecrets = {};
    switch (body.type) {
      case "twilio_sms":
      case "twilio_whatsapp":
        secrets = { authToken: body.secrets.authToken };
        break;
      case "whatsapp_cloud": {
        const verifyToken = body.secrets.verifyToken ?? randomToken(20);
        if (!body.secrets.verifyToken) generated.verifyToken = verifyToken;
        secrets = { appSecret: body.secrets.appSecret, accessToken: body.secrets.accessToken, verifyToken };
        break;
      }
      case "custom":
        checkCallbackUrl(c.env, body.config.callbackUrl);
        secrets = { signingSecret: `whsec_${randomToken(24)}` };
        generated.signingSecret = secrets.signingSecret ?? "";
        break;
      case "web_chat":
        break;
    }
    const now = Date.now();
    const id = newId("ch", now);
    const row: ChannelRow = {
      id,
      tenant_id: auth.tenantId,
      type: body.type,
      name: body.name,
      config: JSON.stringify(body.config),
      secrets: await sealChannelSecrets(c.env, id, secrets),
      status: "active",
      created_at: now,
      updated_at: now,
    };
    await c.env.DB.batch([
      c.env.DB.prepare(
        "INSERT INTO channels (id, tenant_id, type, name, config, secrets, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?)",
      ).bind(row.id, row.tenant_id, row.type, row.name, row.config, row.secrets, now, now),
      auditStatement(c.env.DB, keyAudit(auth, "channel.created", "channel", id, { type: body.type })),
    ]);
    return c.json({ ...(await channelView(c, row)), generatedSecrets: generated }, 201);
  },
);

channels.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Channels"],
    summary: "List active channels",
    security: bearerSecurity,
    responses: { 200: { description: "Channels", content: { "application/json": { schema: z.object({ data: z.array(ChannelSchema) }) } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "channels:read");
    const { results } = await c.env.DB.prepare("SELECT * FROM channels WHERE tenant_id = ? AND status = 'active' ORDER BY created_at LIMIT 500")
      .bind(auth.tenantId)
      .all<ChannelRow>();
    return c.json({ data: await Promise.all(results.map((row) => channelView(c, row))) }, 200);
  },
);

const IdParam = z.object({ id: z.string().max(64) });

channels.openapi(
  createRoute({
    method: "get",
    path: "/{id}",
    tags: ["Channels"],
    summary: "Get a channel",
    security: bearerSecurity,
    request: { params: IdParam },
    responses: { 200: { description: "The channel", content: { "application/json": { schema: ChannelSchema } } }, ...errorResponses },
  }),
  async (c) => {
    requireScope(c, "channels:read");
    return c.json(await channelView(c, await loadChannel(c, c.req.valid("param").id)), 200);
  },
);

const RotateBody = z
  .object({
    authToken: z.string().min(8).max(512).optional(),
    appSecret: z.string().min(8).max(512).optional(),
    accessToken: z.string().min(8).max(4096).optional(),
    regenerateVerifyToken: z.boolean().optional(),
  })
  .strict();

channels.openapi(
  createRoute({
    method: "post",
    path: "/{id}/rotate-secret",
    tags: ["Channels"],
    summary: "Rotate a channel's secrets",
    description:
      "Custom channels get a new signing secret (the previous one stays valid for 24 hours). Twilio channels take the new auth token; WhatsApp Cloud channels take a new app secret and/or access token, or regenerate the verify token.",
    security: bearerSecurity,
    request: { params: IdParam, body: { required: false, content: { "application/json": { schema: RotateBody } } } },
    responses: { 200: { description: "Rotated", content: { "application/json": { schema: ChannelWithSecrets } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "channels:write");
    const row = await loadChannel(c, c.req.valid("param").id);
    const body = c.req.valid("json") ?? {};
    const secrets = await openChannelSecrets(c.env, row.id, row.secrets);
    const generated: Record<string, string> = {};
    const now = Date.now();
    switch (row.type) {
      case "custom": {
        if (Object.keys(body).length > 0) throw badRequest("custom channels take no body: a new signing secret is generated");
        const next = `whsec_${randomToken(24)}`;
        if (secrets.signingSecret) {
          secrets.previousSigningSecret = secrets.signingSecret;
          secrets.previousExpiresAt = now + ROTATION_GRACE_MS;
        }
        secrets.signingSecret = next;
        generated.signingSecret = next;
        break;
      }
      case "twilio_sms":
      case "twilio_whatsapp":
        if (!body.authToken || body.appSecret || body.accessToken || body.regenerateVerifyToken) {
          throw new ApiError(400, "validation_error", "Twilio channels rotate with { authToken }", [{ path: "authToken", message: "required" }]);
        }
        secrets.authToken = body.authToken;
        break;
      case "whatsapp_cloud":
        if (body.authToken || (!body.appSecret && !body.accessToken && !body.regenerateVerifyToken)) {
          throw new ApiError(400, "validation_error", "WhatsApp channels rotate with appSecret, accessToken and/or regenerateVerifyToken", [
            { path: "(root)", message: "nothing to rotate" },
          ]);
        }
        if (body.appSecret) secrets.appSecret = body.appSecret;
        if (body.accessToken) secrets.accessToken = body.accessToken;
        if (body.regenerateVerifyToken) {
          secrets.verifyToken = randomToken(20);
          generated.verifyToken = secrets.verifyToken;
        }
        break;
      case "web_chat":
        throw badRequest("web chat channels have no secrets to rotate");
    }
    const sealed = await sealChannelSecrets(c.env, row.id, secrets);
    await c.env.DB.batch([
      c.env.DB.prepare("UPDATE channels SET secrets = ?, updated_at = ? WHERE id = ? AND tenant_id = ?").bind(sealed, now, row.id, auth.tenantId),
      auditStatement(c.env.DB, keyAudit(auth, "channel.secret_rotated", "channel", row.id)),
    ]);
    forgetWebhookChannel(row.id);
    return c.json({ ...(await channelView(c, { ...row, secrets: sealed, updated_at: now })), generatedSecrets: generated }, 200);
  },
);

channels.openapi(
  createRoute({
    method: "delete",
    path: "/{id}",
    tags: ["Channels"],
    summary: `Disconnect a channel (its webhooks answer 404 from now on; isolates still holding a copy stop within ${CHANNEL_CACHE_MS / 1000} s)`,
    security: bearerSecurity,
    request: { params: IdParam },
    responses: { 200: { description: "Deleted", content: { "application/json": { schema: ChannelSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "channels:write");
    const row = await loadChannel(c, c.req.valid("param").id);
    const now = Date.now();
    // The secrets are dropped with the channel: a deleted channel can never verify or send again.
    const emptied = await sealChannelSecrets(c.env, row.id, {});
    await c.env.DB.batch([
      c.env.DB.prepare("UPDATE channels SET status = 'deleted', secrets = ?, updated_at = ? WHERE id = ? AND tenant_id = ?").bind(emptied, now, row.id, auth.tenantId),
      auditStatement(c.env.DB, keyAudit(auth, "channel.deleted", "channel", row.id)),
    ]);
    forgetWebhookChannel(row.id);
    return c.json(await channelView(c, { ...row, status: "deleted", secrets: emptied, updated_at: now }), 200);
  },
);
