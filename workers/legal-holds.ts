/**
 * Legal holds: a tenant-wide, subject or conversation hold keeps data out of
 * retention sweeps and erasure until it is released. Released holds keep their
 * row (who released it, and when) as evidence.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { normalizeAddress } from "../lib/addresses";
import { newId } from "../lib/ids";
import { auditStatement, auditStatementIfExists, keyAudit } from "./support/audit";
import { requireApiKey, requireScope } from "./support/auth";
import { ApiError, conflict, notFound } from "./support/errors";
import { subjectHash, tenantHashKey } from "./support/keyring";
import { bearerSecurity, createRouter, decodeCursor, encodeCursor, errorResponses } from "./support/router";

/** `/v1/legal-holds` */
export const legalHolds = createRouter();
legalHolds.use("*", requireApiKey);

const SCOPES = ["tenant", "subject", "conversation"] as const;

const HoldSchema = z
  .object({
    id: z.string(),
    scope: z.enum(SCOPES),
    subjectHash: z.string().nullable().openapi({ description: "Keyed hash of the held subject's address (subject holds); the address is never stored" }),
    conversationId: z.string().nullable(),
    reason: z.string(),
    active: z.boolean(),
    createdAt: z.string(),
    createdBy: z.string().nullable().openapi({ description: "API key id that placed the hold" }),
    releasedAt: z.string().nullable(),
    releasedBy: z.string().nullable(),
  })
  .openapi("LegalHold");

const CreateSchema = z
  .object({
    scope: z.enum(SCOPES),
    subject: z.string().min(1).max(320).optional().openapi({ description: "Subject holds: the person's phone (E.164), e-mail or channel address; normalised and hashed, never stored" }),
    conversationId: z.string().min(1).max(64).optional().openapi({ description: "Conversation holds: a conversation of this tenant" }),
    reason: z.string().trim().min(3).max(500).openapi({ description: "Why the data must be kept (case or investigation reference)", example: "Investigation 2026/17" }),
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.scope !== "subject" && body.subject !== undefined) ctx.addIssue({ code: "custom", path: ["subject"], message: "only subject holds take a subject" });
    if (body.scope !== "conversation" && body.conversationId !== undefined) ctx.addIssue({ code: "custom", path: ["conversationId"], message: "only conversation holds take a conversationId" });
    if (body.scope === "subject" && body.subject === undefined) ctx.addIssue({ code: "custom", path: ["subject"], message: "required for a subject hold" });
    if (body.scope === "conversation" && body.conversationId === undefined) ctx.addIssue({ code: "custom", path: ["conversationId"], message: "required for a conversation hold" });
  })
  .openapi("LegalHoldCreate");

const ListQuery = z.object({
  status: z.enum(["active", "released", "all"]).default("all"),
  scope: z.enum(SCOPES).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(512).optional(),
});
const listCursor = z.object({ t: z.number().int(), id: z.string().max(64) });
const idParam = z.object({ id: z.string().min(1).max(64) });

interface HoldRow {
  id: string;
  scope: (typeof SCOPES)[number];
  target: string | null;
  reason: string;
  created_at: number;
  created_by: string | null;
  released_at: number | null;
  released_by: string | null;
}

function view(row: HoldRow): z.infer<typeof HoldSchema> {
  return {
    id: row.id,
    scope: row.scope,
    subjectHash: row.scope === "subject" ? row.target : null,
    conversationId: row.scope === "conversation" ? row.target : null,
    reason: row.reason,
    active: row.released_at === null,
    createdAt: new Date(row.created_at).toISOString(),
    createdBy: row.created_by,
    releasedAt: row.released_at === null ? null : new Date(row.released_at).toISOString(),
    releasedBy: row.released_by,
  };
}

const HOLD_COLUMNS = "id, scope, target, reason, created_at, created_by, released_at, released_by";

legalHolds.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Privacy"],
    summary: "Place a legal hold on the whole tenant, a subject or a conversation",
    description:
      "Held data survives retention sweeps and erasure requests until the hold is released. A conversation must belong to the tenant (404 otherwise); a subject is given by address and stored only as its keyed hash.",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: CreateSchema } } } },
    responses: { 201: { description: "The hold", content: { "application/json": { schema: HoldSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const body = c.req.valid("json");
    let target: string | null = null;
    if (body.scope === "subject") {
      const address = normalizeAddress(body.subject ?? "");
      if (!address) throw new ApiError(400, "validation_error", "request is invalid", [{ path: "subject", message: "not a usable address" }]);
      const tenant = await c.env.DB.prepare("SELECT hash_key FROM tenants WHERE id = ?").bind(auth.tenantId).first<{ hash_key: string }>();
      if (!tenant) throw notFound("tenant");
      target = await subjectHash(await tenantHashKey(c.env, auth.tenantId, tenant.hash_key), address);
    } else if (body.scope === "conversation") {
      const conversationId = body.conversationId ?? "";
      const owned = await c.env.DB.prepare("SELECT 1 AS ok FROM conversations WHERE id = ? AND tenant_id = ?").bind(conversationId, auth.tenantId).first<{ ok: number }>();
      if (!owned) throw notFound("conversation");
      target = conversationId;
    }
    const now = Date.now();
    const row: HoldRow = { id: newId("hold", now), scope: body.scope, target, reason: body.reason, created_at: now, created_by: auth.keyId, released_at: null, released_by: null };
    await c.env.DB.batch([
      c.env.DB.prepare("INSERT INTO legal_holds (id, tenant_id, scope, target, reason, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)").bind(
        row.id,
        auth.tenantId,
        row.scope,
        row.target,
        row.reason,
        row.created_at,
        row.created_by,
      ),
      // The reason is free text and may name people: the audit entry carries only the scope.
      auditStatement(c.env.DB, keyAudit(auth, "legal_hold.created", "legal_hold", row.id, { scope: row.scope })),
    ]);
    return c.json(view(row), 201);
  },
);

legalHolds.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Privacy"],
    summary: "List legal holds (active and released), newest first",
    security: bearerSecurity,
    request: { query: ListQuery },
    responses: {
      200: { description: "A page of holds", content: { "application/json": { schema: z.object({ data: z.array(HoldSchema), nextCursor: z.string().nullable() }) } } },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:read");
    const query = c.req.valid("query");
    const clauses = ["tenant_id = ?"];
    const params: (string | number)[] = [auth.tenantId];
    if (query.status === "active") clauses.push("released_at IS NULL");
    if (query.status === "released") clauses.push("released_at IS NOT NULL");
    if (query.scope) {
      clauses.push("scope = ?");
      params.push(query.scope);
    }
    if (query.cursor) {
      const cursor = decodeCursor(query.cursor, listCursor);
      clauses.push("(created_at < ? OR (created_at = ? AND id < ?))");
      params.push(cursor.t, cursor.t, cursor.id);
    }
    const { results } = await c.env.DB.prepare(`SELECT ${HOLD_COLUMNS} FROM legal_holds WHERE ${clauses.join(" AND ")} ORDER BY created_at DESC, id DESC LIMIT ?`)
      .bind(...params, query.limit + 1)
      .all<HoldRow>();
    const page = results.slice(0, query.limit);
    const last = page[page.length - 1];
    return c.json({ data: page.map(view), nextCursor: results.length > query.limit && last ? encodeCursor({ t: last.created_at, id: last.id }) : null }, 200);
  },
);

legalHolds.openapi(
  createRoute({
    method: "delete",
    path: "/{id}",
    tags: ["Privacy"],
    summary: "Release a legal hold (the hold is kept, with who released it and when)",
    security: bearerSecurity,
    request: { params: idParam },
    responses: {
      200: { description: "The released hold", content: { "application/json": { schema: HoldSchema } } },
      409: { description: "Already released" },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const { id } = c.req.valid("param");
    const select = () => c.env.DB.prepare(`SELECT ${HOLD_COLUMNS} FROM legal_holds WHERE id = ? AND tenant_id = ?`).bind(id, auth.tenantId).first<HoldRow>();
    const row = await select();
    if (!row) throw notFound("legal hold");
    if (row.released_at !== null) throw conflict("legal hold is already released");
    const now = Date.now();
    const [released] = await c.env.DB.batch([
      c.env.DB.prepare("UPDATE legal_holds SET released_at = ?, released_by = ? WHERE id = ? AND tenant_id = ? AND released_at IS NULL").bind(now, auth.keyId, id, auth.tenantId),
      // Written only if this request is the one that released it (a concurrent release is audited once).
      auditStatementIfExists(
        c.env.DB,
        keyAudit(auth, "legal_hold.released", "legal_hold", id, { scope: row.scope }),
        "SELECT 1 FROM legal_holds WHERE id = ? AND tenant_id = ? AND released_at = ? AND released_by = ?",
        id,
        auth.tenantId,
        now,
        auth.keyId,
      ),
    ]);
    if (released?.meta.changes !== 1) throw conflict("legal hold is already released");
    const after = await select();
    if (!after) throw notFound("legal hold");
    return c.json(view(after), 200);
  },
);
