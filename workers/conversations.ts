/**
 * Conversations: list and read (tenant-scoped), reply as a human, hand off,
 * close, reopen; staff live sockets (signed ticket, then a WebSocket to the
 * conversation's Durable Object) and the audited reveal of a message.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { CONVERSATION_STATUSES, type ConversationStatus } from "../d1/schema";
import { STAFF_HEADER, type ConversationView, type MessageView, type StaffUpgrade } from "../durable-objects/conversation";
import { auditStatement, keyAudit } from "./support/audit";
import { requireApiKey, requireScope } from "./support/auth";
import { LIVE_TICKET_TTL_MS, mintLiveTicket, staffMessageView, verifyLiveTicket } from "./support/live-ticket";
import type { AppEnv, AuthContext } from "./support/context";
import { ApiError, notFound } from "./support/errors";
import { conversationStub } from "./support/ingest";
import { bearerSecurity, createRouter, decodeCursor, encodeCursor, errorResponses, publicOrigin } from "./support/router";
import { maskAddress } from "./support/viewer";

export const conversations = createRouter();
/** `GET /v1/conversations/:id/live` is a WebSocket upgrade authenticated by its signed ticket, not a bearer key. */
const LIVE_PATH = /^\/v1\/conversations\/[^/]+\/live$/;
conversations.use("*", (c, next) => (c.req.method === "GET" && LIVE_PATH.test(c.req.path) ? next() : requireApiKey(c, next)));

const MediaSchema = z.object({
  url: z.string().optional(),
  providerMediaId: z.string().optional(),
  contentType: z.string().optional(),
  filename: z.string().optional(),
});

const MessageSchema = z
  .object({
    id: z.string(),
    conversationId: z.string(),
    seq: z.number().int().openapi({ description: "Per-conversation sequence number, 1, 2, 3… without gaps" }),
    direction: z.enum(["inbound", "outbound"]),
    author: z.enum(["end_user", "agent", "ai", "system"]),
    authorId: z.string().nullable(),
    text: z.string(),
    redacted: z.boolean().openapi({ description: "True when identifiers were masked because the key is a viewer" }),
    media: z.array(MediaSchema),
    status: z.enum(["received", "queued", "sent", "delivered", "read", "failed"]),
    error: z.string().nullable(),
    providerMessageId: z.string().nullable(),
    attempts: z.number().int(),
    intent: z.string().nullable().openapi({ description: "Coarse intent of an inbound message (intent feature)" }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi("Message");

const ConversationSchema = z
  .object({
    id: z.string(),
    channelId: z.string(),
    status: z.enum(CONVERSATION_STATUSES),
    messageCount: z.number().int(),
    specialCategory: z.boolean().openapi({ description: "Special categories of data were detected; viewers cannot read it" }),
    createdAt: z.string(),
    lastActivityAt: z.string(),
  })
  .openapi("ConversationSummary");

const ConversationDetailSchema = ConversationSchema.extend({
  channelType: z.string(),
  address: z.string().openapi({ description: "The end user's address (masked for viewers)" }),
  lastInboundAt: z.string().nullable(),
}).openapi("Conversation");

interface IndexRow {
  id: string;
  channel_id: string;
  status: ConversationStatus;
  message_count: number;
  special_category: number;
  created_at: number;
  last_activity_at: number;
}

function summary(row: IndexRow): z.infer<typeof ConversationSchema> {
  return {
    id: row.id,
    channelId: row.channel_id,
    status: row.status,
    messageCount: row.message_count,
    specialCategory: row.special_category === 1,
    createdAt: new Date(row.created_at).toISOString(),
    lastActivityAt: new Date(row.last_activity_at).toISOString(),
  };
}

function detail(auth: AuthContext, view: ConversationView): z.infer<typeof ConversationDetailSchema> {
  return {
    id: view.id,
    channelId: view.channelId,
    channelType: view.channelType,
    status: view.status,
    messageCount: view.messageCount,
    specialCategory: view.specialCategory,
    createdAt: view.createdAt,
    lastActivityAt: view.lastActivityAt,
    lastInboundAt: view.lastInboundAt,
    address: auth.role === "viewer" ? maskAddress(view.address) : view.address,
  };
}

function present(auth: AuthContext, message: MessageView): z.infer<typeof MessageSchema> {
  return staffMessageView(auth.role, message);
}

/**
 * The conversation's object, after checking it belongs to the caller's tenant
 * (404 otherwise). Viewers cannot open conversations flagged with special categories.
 */
async function ownedConversation(c: Context<AppEnv>, id: string) {
  const auth = c.get("auth");
  const row = await c.env.DB.prepare("SELECT special_category FROM conversations WHERE id = ? AND tenant_id = ?")
    .bind(id, auth.tenantId)
    .first<{ special_category: number }>();
  if (!row) throw notFound("conversation");
  if (row.special_category === 1 && auth.role === "viewer") {
    throw new ApiError(403, "forbidden", "this conversation contains special categories of personal data; viewer keys cannot open it");
  }
  return conversationStub(c.env, id);
}

const ListQuery = z.object({
  status: z.enum(CONVERSATION_STATUSES).optional(),
  channelId: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
});
const listCursor = z.object({ t: z.number().int(), id: z.string().max(64) });

conversations.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Conversations"],
    summary: "List conversations, most recent activity first",
    security: bearerSecurity,
    request: { query: ListQuery },
    responses: {
      200: {
        description: "A page of conversations",
        content: { "application/json": { schema: z.object({ data: z.array(ConversationSchema), nextCursor: z.string().nullable() }) } },
      },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:read");
    const query = c.req.valid("query");
    const clauses = ["tenant_id = ?"];
    const params: (string | number)[] = [auth.tenantId];
    if (query.status) {
      clauses.push("status = ?");
      params.push(query.status);
    }
    if (query.channelId) {
      clauses.push("channel_id = ?");
      params.push(query.channelId);
    }
    if (query.cursor) {
      const cursor = decodeCursor(query.cursor, listCursor);
      clauses.push("(last_activity_at < ? OR (last_activity_at = ? AND id < ?))");
      params.push(cursor.t, cursor.t, cursor.id);
    }
    const { results } = await c.env.DB.prepare(
      `SELECT id, channel_id, status, message_count, special_category, created_at, last_activity_at FROM conversations
       WHERE ${clauses.join(" AND ")} ORDER BY last_activity_at DESC, id DESC LIMIT ?`,
    )
      .bind(...params, query.limit + 1)
      .all<IndexRow>();
    const page = results.slice(0, query.limit);
    const last = page[page.length - 1];
    const nextCursor = results.length > query.limit && last ? encodeCursor({ t: last.last_activity_at, id: last.id }) : null;
    return c.json({ data: page.map(summary), nextCursor }, 200);
  },
);

const IdParam = z.object({ id: z.string().max(64) });

conversations.openapi(
  createRoute({
    method: "get",
    path: "/{id}",
    tags: ["Conversations"],
    summary: "Get a conversation",
    security: bearerSecurity,
    request: { params: IdParam },
    responses: { 200: { description: "The conversation", content: { "application/json": { schema: ConversationDetailSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:read");
    const view = await (await ownedConversation(c, c.req.valid("param").id)).getConversation();
    if (!view) throw notFound("conversation");
    return c.json(detail(auth, view), 200);
  },
);

const MessagesQuery = z.object({
  after: z.coerce.number().int().min(0).optional().openapi({ description: "Only messages with seq greater than this" }),
  before: z.coerce.number().int().min(1).optional().openapi({ description: "Only messages with seq lower than this" }),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  order: z.enum(["asc", "desc"]).default("asc"),
});

conversations.openapi(
  createRoute({
    method: "get",
    path: "/{id}/messages",
    tags: ["Conversations"],
    summary: "Read a conversation's messages (seq cursor)",
    description: "Viewer keys receive text with identifiers masked.",
    security: bearerSecurity,
    request: { params: IdParam, query: MessagesQuery },
    responses: {
      200: {
        description: "A page of messages",
        content: { "application/json": { schema: z.object({ data: z.array(MessageSchema), hasMore: z.boolean(), nextCursor: z.string().nullable() }) } },
      },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:read");
    const query = c.req.valid("query");
    const stub = await ownedConversation(c, c.req.valid("param").id);
    const page = await stub.listMessages({
      limit: query.limit,
      order: query.order,
      ...(query.after !== undefined ? { after: query.after } : {}),
      ...(query.before !== undefined ? { before: query.before } : {}),
    });
    const last = page.messages[page.messages.length - 1];
    const nextCursor = page.hasMore && last ? String(last.seq) : null;
    return c.json({ data: page.messages.map((m) => present(auth, m)), hasMore: page.hasMore, nextCursor }, 200);
  },
);

const SendBody = z.object({ text: z.string().trim().min(1).max(4096) }).strict();

conversations.openapi(
  createRoute({
    method: "post",
    path: "/{id}/messages",
    tags: ["Conversations"],
    summary: "Send a message as a human agent",
    description:
      "Queued and delivered through the conversation's channel, retried with backoff. Send an `Idempotency-Key` header to make retries of this call safe.",
    security: bearerSecurity,
    request: {
      params: IdParam,
      headers: z.object({ "idempotency-key": z.string().min(1).max(128).optional() }),
      body: { required: true, content: { "application/json": { schema: SendBody } } },
    },
    responses: {
      201: { description: "Queued", content: { "application/json": { schema: MessageSchema } } },
      200: { description: "Already queued with this Idempotency-Key", content: { "application/json": { schema: MessageSchema } } },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:write");
    const { id } = c.req.valid("param");
    const stub = await ownedConversation(c, id);
    const outcome = await stub.send({
      text: c.req.valid("json").text,
      author: "agent",
      authorId: auth.keyId,
      idempotencyKey: c.req.valid("header")["idempotency-key"] ?? null,
      publicOrigin: publicOrigin(c.env, c.req.url),
    });
    if (!outcome.ok) {
      if (outcome.code === "not_found") throw notFound("conversation");
      throw new ApiError(409, "conflict", outcome.message);
    }
    if (outcome.created) await auditStatement(c.env.DB, keyAudit(auth, "message.sent", "conversation", id, { messageId: outcome.message.id })).run();
    return c.json(present(auth, outcome.message), outcome.created ? 201 : 200);
  },
);

const ActionBody = z.object({ reason: z.string().trim().max(500).optional() }).strict();

function statusRoute(path: "handoff" | "close" | "reopen", status: ConversationStatus, summaryText: string) {
  conversations.openapi(
    createRoute({
      method: "post",
      path: `/{id}/${path}`,
      tags: ["Conversations"],
      summary: summaryText,
      security: bearerSecurity,
      request: { params: IdParam, body: { required: false, content: { "application/json": { schema: ActionBody } } } },
      responses: { 200: { description: "New state", content: { "application/json": { schema: ConversationDetailSchema } } }, ...errorResponses },
    }),
    async (c) => {
      const auth = requireScope(c, "conversations:write");
      const { id } = c.req.valid("param");
      const view = await (await ownedConversation(c, id)).setStatus(status);
      if (!view) throw notFound("conversation");
      const reason = c.req.valid("json")?.reason;
      await auditStatement(c.env.DB, keyAudit(auth, `conversation.${path}`, "conversation", id, reason ? { reason } : undefined)).run();
      return c.json(detail(auth, view), 200);
    },
  );
}

statusRoute("handoff", "handoff", "Hand the conversation to a human (the AI stays silent)");
statusRoute("close", "closed", "Close the conversation (a new inbound message reopens it)");
statusRoute("reopen", "open", "Reopen the conversation, or return it from a human to the AI");

// ---------------------------------------------------------------- staff live updates

const TicketSchema = z
  .object({
    ticket: z.string().openapi({ description: "Signed, valid for 60 seconds, bound to this conversation, your key and its role" }),
    expiresAt: z.string(),
    url: z.string().openapi({ description: "Path to open as a WebSocket (same origin, ws: or wss:)" }),
  })
  .openapi("LiveTicket");

conversations.openapi(
  createRoute({
    method: "post",
    path: "/{id}/live-ticket",
    tags: ["Conversations"],
    summary: "Get a short-lived ticket for the conversation's live socket",
    description:
      "Browsers cannot send Authorization on a WebSocket: ask for a ticket with your key, then open `GET /v1/conversations/{id}/live?ticket=…` within 60 seconds. The socket receives `history`, then `message` (new or updated messages; redacted for viewer keys) and `conversation` (state) frames.",
    security: bearerSecurity,
    request: { params: IdParam },
    responses: { 201: { description: "The ticket", content: { "application/json": { schema: TicketSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:read");
    const { id } = c.req.valid("param");
    await ownedConversation(c, id);
    const { ticket, expiresAt } = await mintLiveTicket(c.env, { tenantId: auth.tenantId, conversationId: id, keyId: auth.keyId, role: auth.role });
    return c.json({ ticket, expiresAt: new Date(expiresAt).toISOString(), url: `/v1/conversations/${encodeURIComponent(id)}/live?ticket=${encodeURIComponent(ticket)}` }, 201);
  },
);

conversations.openapi(
  createRoute({
    method: "get",
    path: "/{id}/live",
    tags: ["Conversations"],
    summary: "Live updates of a conversation (WebSocket)",
    description: `Authenticated by \`ticket\` from \`POST /v1/conversations/{id}/live-ticket\` (valid ${LIVE_TICKET_TTL_MS / 1000} s), not by a bearer key. Expired, tampered or foreign tickets get 401 and no socket.`,
    request: { params: IdParam, query: z.object({ ticket: z.string().min(1).max(1024) }) },
    responses: {
      101: { description: "Switching protocols" },
      ...errorResponses,
      426: { description: "Not a WebSocket upgrade", content: { "application/json": { schema: z.object({ error: z.object({ code: z.string(), message: z.string() }) }) } } },
    },
  }),
  async (c) => {
    if (c.req.header("upgrade")?.toLowerCase() !== "websocket") throw new ApiError(426, "bad_request", "this endpoint speaks WebSocket");
    const { id } = c.req.valid("param");
    const check = await verifyLiveTicket(c.env, c.req.valid("query").ticket);
    if (!check.ok) throw new ApiError(401, "unauthorized", check.reason === "expired" ? "the ticket expired; ask for a new one" : "invalid ticket");
    const claims = check.claims;
    if (claims.conversationId !== id) throw new ApiError(401, "unauthorized", "the ticket is for another conversation");
    const origin = c.req.header("origin");
    if (origin && origin !== new URL(c.req.url).origin && origin !== publicOrigin(c.env, c.req.url)) {
      throw new ApiError(403, "forbidden", "origin not allowed");
    }
    // The key must still be live, with the role the ticket was issued for.
    const key = await c.env.DB.prepare(
      `SELECT k.role, k.scopes FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
       WHERE k.id = ? AND k.tenant_id = ? AND k.revoked_at IS NULL AND t.status = 'active'`,
    )
      .bind(claims.keyId, claims.tenantId)
      .first<{ role: string; scopes: string }>();
    if (!key || key.role !== claims.role || !key.scopes.includes('"conversations:read"')) {
      throw new ApiError(401, "unauthorized", "the key behind this ticket was revoked or changed");
    }
    const row = await c.env.DB.prepare("SELECT special_category FROM conversations WHERE id = ? AND tenant_id = ?")
      .bind(id, claims.tenantId)
      .first<{ special_category: number }>();
    if (!row) throw notFound("conversation");
    if (row.special_category === 1 && claims.role === "viewer") {
      throw new ApiError(403, "forbidden", "this conversation contains special categories of personal data; viewer keys cannot open it");
    }
    const upgrade: StaffUpgrade = {
      tenantId: claims.tenantId,
      conversationId: id,
      keyId: claims.keyId,
      role: claims.role,
      ticket: { nonce: claims.nonce, expiresAt: claims.expiresAt },
    };
    const upstream = await conversationStub(c.env, id).fetch(
      new Request(c.req.url, { headers: { upgrade: "websocket", [STAFF_HEADER]: JSON.stringify(upgrade) } }),
    );
    if (upstream.status !== 101 || !upstream.webSocket) {
      return new Response(upstream.body, { status: upstream.status, headers: { "content-type": "application/json" } });
    }
    // A fresh Response: the object's has immutable headers, and the security-headers middleware adds some.
    return new Response(null, { status: 101, webSocket: upstream.webSocket });
  },
);

// ---------------------------------------------------------------- audited reveal

const RevealBody = z
  .object({
    reason: z.string().trim().min(5).max(500).openapi({ description: "Why the unredacted text is needed; stored in the audit log" }),
  })
  .strict();

conversations.openapi(
  createRoute({
    method: "post",
    path: "/{id}/messages/{messageId}/reveal",
    tags: ["Conversations"],
    summary: "Reveal one message's unredacted text (audited, with a reason)",
    description:
      "Viewer keys read transcripts with identifiers masked; this returns one message as stored and writes a `message.revealed` audit entry with the reason and the key's role before answering. Conversations with special categories of data stay closed to viewers (403).",
    security: bearerSecurity,
    request: {
      params: z.object({ id: z.string().max(64), messageId: z.string().max(64) }),
      body: { required: true, content: { "application/json": { schema: RevealBody } } },
    },
    responses: {
      200: {
        description: "The message as stored",
        content: { "application/json": { schema: z.object({ messageId: z.string(), seq: z.number().int(), text: z.string(), audited: z.literal(true) }) } },
      },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:read");
    const { id, messageId } = c.req.valid("param");
    const { reason } = c.req.valid("json");
    const message = await (await ownedConversation(c, id)).getMessage(messageId);
    if (!message) throw notFound("message");
    // Audited before the text leaves: if the audit write fails, nothing is revealed.
    await auditStatement(c.env.DB, keyAudit(auth, "message.revealed", "conversation", id, { messageId, seq: message.seq, role: auth.role, reason })).run();
    return c.json({ messageId, seq: message.seq, text: message.text, audited: true as const }, 200);
  },
);

conversations.openapi(
  createRoute({
    method: "post",
    path: "/{id}/summary",
    tags: ["AI"],
    summary: "Summarize the conversation (redacted)",
    description: "Uses the tenant's AI provider on the redacted transcript; identifiers stay as placeholders. Requires the summaries feature.",
    security: bearerSecurity,
    request: { params: IdParam },
    responses: {
      200: {
        description: "Summary",
        content: { "application/json": { schema: z.object({ summary: z.string(), provider: z.string(), messages: z.number().int(), redacted: z.literal(true) }) } },
      },
      ...errorResponses,
      409: { description: "Summaries are off, or the AI budget is spent", content: { "application/json": { schema: z.object({ error: z.object({ code: z.string(), message: z.string() }) }) } } },
      503: { description: "The AI provider is failing", content: { "application/json": { schema: z.object({ error: z.object({ code: z.string(), message: z.string() }) }) } } },
    },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:read");
    const { id } = c.req.valid("param");
    const result = await (await ownedConversation(c, id)).summarize();
    if (!result.ok) {
      if (result.code === "not_found") throw notFound("conversation");
      if (result.code === "provider_failing") throw new ApiError(503, "internal_error", "the AI provider is failing; try again later");
      const reasons = { feature_off: "summaries are turned off in settings", plan_canceled: "the subscription is canceled: AI features are off until it is renewed", budget_exhausted: "the daily AI budget is spent" } as const;
      throw new ApiError(409, "conflict", reasons[result.code]);
    }
    await auditStatement(c.env.DB, keyAudit(auth, "conversation.summarized", "conversation", id)).run();
    return c.json({ summary: result.summary, provider: result.provider, messages: result.messages, redacted: true as const }, 200);
  },
);
