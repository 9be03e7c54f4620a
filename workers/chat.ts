/** Web chat: a visitor's WebSocket, handed to their conversation's Durable Object. */
import { Hono } from "hono";
import { IDENTITY_HEADER, type WebChatIdentity } from "../durable-objects/conversation";
import type { AppEnv } from "./support/context";
import { ApiError } from "./support/errors";
import { conversationStub, loadWebhookChannel } from "./support/ingest";
import { conversationIdFor, subjectHash } from "./support/keyring";
import { publicOrigin } from "./support/router";

export const chat = new Hono<AppEnv>();

/** Visitor session ids are random, client-kept bearer tokens for their own conversation. */
const SESSION = /^[A-Za-z0-9_-]{22,64}$/;

chat.get("/:channelId", async (c) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new ApiError(426, "bad_request", "this endpoint speaks WebSocket");
  }
  const channel = await loadWebhookChannel(c.env, c.req.param("channelId"), ["web_chat"]);
  const origin = publicOrigin(c.env, c.req.url);
  const allowed = channel.config.allowedOrigins?.length ? channel.config.allowedOrigins : [origin, new URL(c.req.url).origin];
  const requestOrigin = c.req.header("origin");
  // Browsers always send Origin on WebSocket upgrades; refusing foreign ones stops cross-site hijacking.
  if (!requestOrigin || !allowed.includes(requestOrigin)) throw new ApiError(403, "forbidden", "origin not allowed for this chat channel");
  const session = c.req.query("session") ?? "";
  if (!SESSION.test(session)) {
    throw new ApiError(400, "validation_error", "session is invalid", [{ path: "session", message: "22–64 URL-safe characters" }]);
  }
  const address = `id:web:${session}`;
  const conversationId = await conversationIdFor(channel.hashKey, channel.id, address);
  const identity: WebChatIdentity = {
    conversationId,
    tenantId: channel.tenantId,
    channelId: channel.id,
    subjectHash: await subjectHash(channel.hashKey, address),
    address,
    publicOrigin: origin,
  };
  const headers = new Headers({ upgrade: "websocket", [IDENTITY_HEADER]: JSON.stringify(identity) });
  return conversationStub(c.env, conversationId).fetch(new Request(c.req.url, { headers }));
});
