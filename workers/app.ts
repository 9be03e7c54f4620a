/** The Hono application: middleware, feature routers, OpenAPI document and error mapping. */
import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { secureHeaders } from "hono/secure-headers";
import { agentHealth } from "./agent-health";
import { attachments, conversationAttachments, isAttachmentUpload } from "./attachments";
import { audit } from "./audit";
import { billing } from "./billing";
import { operatorBackups } from "./backups";
import { campaigns, rpoRegister } from "./campaigns";
import { channels } from "./channels";
import { dsr } from "./dsr";
import { chat } from "./chat";
import { consents } from "./consents";
import { conversations } from "./conversations";
import { keys } from "./keys";
import { knowledge } from "./knowledge";
import { legalHolds } from "./legal-holds";
import { notices } from "./notices";
import { operator } from "./operator";
import { conversationRecordings, isRawAudioUpload, recordings, voiceModels } from "./recordings";
import { redaction } from "./redact";
import { retentionPolicies } from "./retention";
import { settings } from "./settings";
import { tenants } from "./tenants";
import { customWebhooks } from "./webhooks/custom";
import { stripeWebhooks } from "./webhooks/stripe";
import { twilioWebhooks } from "./webhooks/twilio";
import { whatsappWebhooks } from "./webhooks/whatsapp";
import type { AppEnv } from "./support/context";
import { ApiError, errorBody, handleError, zodIssues } from "./support/errors";
import { rateLimit } from "./support/rate-limit";
import type { Context, Next } from "hono";

/** Largest JSON body the API accepts. */
export const API_BODY_LIMIT = 1024 * 1024;
/** Largest webhook body accepted (provider payloads are a few KB). */
export const WEBHOOK_BODY_LIMIT = 256 * 1024;

const tooLarge = (limit: number) => () => {
  throw new ApiError(413, "payload_too_large", `request body exceeds ${limit} bytes`);
};

/** 415 for a /v1 request that carries a body which is not JSON. */
async function jsonOnly(c: Context<AppEnv>, next: Next): Promise<void> {
  const hasBody = (c.req.header("content-length") ?? "0") !== "0" || c.req.header("transfer-encoding") !== undefined;
  if (hasBody && ["POST", "PUT", "PATCH", "DELETE"].includes(c.req.method)) {
    const type = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json") throw new ApiError(415, "unsupported_media_type", "Content-Type must be application/json");
  }
  await next();
}

export const app = new OpenAPIHono<AppEnv>({
  defaultHook: (result) => {
    if (!result.success) throw new ApiError(400, "validation_error", "request is invalid", zodIssues(result.error));
  },
});

const securityHeaders = secureHeaders({ crossOriginResourcePolicy: "same-origin", referrerPolicy: "no-referrer" });
// WebSocket upgrade responses come back from the Durable Object with immutable headers. Webhook
// answers go to providers' servers, never to a browser, and are the hot path: browser headers are skipped there.
app.use("*", (c, next) => (c.req.path.startsWith("/chat/") || c.req.path.startsWith("/webhooks/") ? next() : securityHeaders(c, next)));
// Rate limits before any body is read: per API key on /v1, per channel on webhooks and web-chat upgrades (429 + Retry-After).
app.use("/v1/*", rateLimit);
app.use("/webhooks/*", rateLimit);
app.use("/chat/*", rateLimit);
const jsonBodyLimit = bodyLimit({ maxSize: API_BODY_LIMIT, onError: tooLarge(API_BODY_LIMIT) });
// The attachment upload and a recording's raw audio take bytes: they are exempt from the JSON-only
// rule and apply their own (larger) body limits.
const rawUpload = (c: Context<AppEnv>) => isAttachmentUpload(c.req.method, c.req.path) || isRawAudioUpload(c.req.method, c.req.path, c.req.header("content-type"));
app.use("/v1/*", (c, next) => (rawUpload(c) ? next() : jsonBodyLimit(c, next)));
app.use("/v1/*", (c, next) => (rawUpload(c) ? next() : jsonOnly(c, next)));
app.use("/webhooks/*", bodyLimit({ maxSize: WEBHOOK_BODY_LIMIT, onError: tooLarge(WEBHOOK_BODY_LIMIT) }));

app.get("/health", async (c) => {
  const d1 = await c.env.DB.prepare("SELECT 1 AS ok").first<{ ok: number }>().then(
    (row) => row?.ok === 1,
    () => false,
  );
  return c.json({ status: d1 ? "ok" : "degraded", checks: { d1 }, time: new Date().toISOString() }, d1 ? 200 : 503);
});

app.route("/v1/tenants", tenants);
app.route("/v1/operator/backups", operatorBackups);
app.route("/v1/operator", operator);
app.route("/v1/keys", keys);
app.route("/v1/channels", channels);
app.route("/v1/conversations", conversations);
app.route("/v1/audit", audit);
app.route("/v1/notices", notices);
app.route("/v1/consents", consents);
app.route("/v1/campaigns", campaigns);
app.route("/v1/rpo-register", rpoRegister);
app.route("/v1/conversations", conversationRecordings);
app.route("/v1/recordings", recordings);
app.route("/v1/voice-models", voiceModels);
app.route("/v1/conversations", conversationAttachments);
app.route("/v1/attachments", attachments);
app.route("/v1/settings", settings);
app.route("/v1/knowledge", knowledge);
app.route("/v1/agent-health", agentHealth);
app.route("/v1/redact", redaction);
app.route("/v1/retention-policies", retentionPolicies);
app.route("/v1/legal-holds", legalHolds);
app.route("/v1/dsr", dsr);
app.route("/v1/billing", billing);
app.route("/webhooks/twilio", twilioWebhooks);
app.route("/webhooks/whatsapp", whatsappWebhooks);
app.route("/webhooks/custom", customWebhooks);
app.route("/webhooks/stripe", stripeWebhooks);
app.route("/chat", chat);

app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
  type: "http",
  scheme: "bearer",
  description: "A tenant API key (`prly_…`), or the platform admin key for operator routes.",
});

const webhookResponses = {
  200: { description: "Accepted (duplicates are acknowledged and dropped)" },
  401: { description: "Signature missing, invalid or older than 300 s; nothing stored" },
  404: { description: "Unknown or deleted channel" },
  413: { description: "Body over 256 KiB" },
  415: { description: "Wrong content type" },
};
const channelParam = [{ name: "channelId", in: "path" as const, required: true, schema: { type: "string" as const } }];
for (const [method, path, summary, description] of [
  ["post", "/webhooks/twilio/{channelId}", "Twilio SMS / WhatsApp inbound message", "Form-encoded, verified with X-Twilio-Signature (HMAC-SHA1 over the public URL plus sorted params). Answers empty TwiML."],
  ["post", "/webhooks/twilio/{channelId}/status", "Twilio delivery status callback", "Set by Parley as StatusCallback on every send; verified like inbound messages."],
  ["get", "/webhooks/whatsapp/{channelId}", "WhatsApp Cloud API verification handshake", "Echoes hub.challenge when hub.mode=subscribe and hub.verify_token matches the channel's verify token."],
  ["post", "/webhooks/whatsapp/{channelId}", "WhatsApp Cloud API notifications", "JSON, verified with X-Hub-Signature-256 (HMAC-SHA256 of the raw body with the app secret). Messages and statuses."],
  ["post", "/webhooks/custom/{channelId}", "Custom signed webhook", "JSON event, verified with X-Parley-Signature: t=<unix>,v1=<hex HMAC-SHA256 of \"t.body\">, 300 s tolerance."],
  ["get", "/chat/{channelId}", "Web chat WebSocket", "Upgrade with ?session=<22–64 URL-safe chars> from an allowed Origin."],
] as const) {
  app.openAPIRegistry.registerPath({ method, path, tags: ["Webhooks"], summary, description, request: { params: undefined }, parameters: channelParam, responses: webhookResponses });
}
const visitorResponses = {
  400: { description: "Invalid query or body, or a notice that is not this tenant's cookie notice; nothing stored" },
  403: { description: "Origin not allowed for this web-chat channel" },
  404: { description: "Unknown channel, or not a web-chat channel" },
};
app.openAPIRegistry.registerPath({
  method: "get",
  path: "/chat/{channelId}/notice",
  tags: ["Web chat"],
  summary: "The current cookie notice shown by the banner (no key: for visitors)",
  description: "Query: purpose=cookies, locale=en|it (falls back to English). Returns the notice id, version, text and SHA-256 the banner must send back.",
  parameters: channelParam,
  responses: { 200: { description: "The notice" }, ...visitorResponses },
});
app.openAPIRegistry.registerPath({
  method: "post",
  path: "/chat/{channelId}/consents",
  tags: ["Web chat"],
  summary: "Record a visitor's cookie-banner choice (no key: for visitors)",
  description:
    "JSON `{ subject, choices: { cookies_functional, cookies_analytics, cookies_marketing, cookies_profiling }, noticeId }`: one consent-log entry per category (granted or withdrawn), method `banner`, the notice shown, the IP as evidence. Body ≤ 2 KiB.",
  parameters: channelParam,
  responses: {
    201: { description: "Recorded" },
    ...visitorResponses,
    409: { description: "The notice is no longer the current version: show the new one" },
    413: { description: "Body too large" },
    415: { description: "Not JSON" },
    429: { description: "Too many choices from this visitor or address" },
  },
});

app.doc31("/v1/openapi.json", (c) => ({
  openapi: "3.1.0",
  info: {
    title: "Parley API",
    version: "1.0.0",
    description:
      "Privacy-by-design conversation backend. Errors are `{ \"error\": { \"code\", \"message\" } }`. Webhook endpoints (/webhooks/…) are documented in the README.",
  },
  servers: [{ url: new URL(c.req.url).origin }],
}));

app.get("/docs", (c) => c.redirect("/docs/", 302));

app.notFound((c) => c.json(errorBody("not_found", "no such route"), 404));
app.onError(handleError);
