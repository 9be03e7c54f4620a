/** Audit log reads (append-only; written by every feature). */
import { createRoute, z } from "@hono/zod-openapi";
import { requireApiKey, requireScope } from "./support/auth";
import { bearerSecurity, createRouter, errorResponses } from "./support/router";

export const audit = createRouter();
audit.use("*", requireApiKey);

const AuditEntrySchema = z
  .object({
    id: z.number().int(),
    actorType: z.string(),
    actorId: z.string().nullable(),
    action: z.string(),
    targetType: z.string().nullable(),
    targetId: z.string().nullable(),
    detail: z.record(z.string(), z.unknown()).nullable(),
    createdAt: z.string(),
  })
  .openapi("AuditEntry");

audit.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Audit"],
    summary: "Read the tenant's audit log, newest first",
    security: bearerSecurity,
    request: {
      query: z.object({
        before: z.coerce.number().int().min(1).optional().openapi({ description: "Only entries with an id lower than this (cursor)" }),
        action: z.string().max(64).optional(),
        limit: z.coerce.number().int().min(1).max(500).default(100),
      }),
    },
    responses: {
      200: { description: "Entries", content: { "application/json": { schema: z.object({ data: z.array(AuditEntrySchema), nextCursor: z.string().nullable() }) } } },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "audit:read");
    const query = c.req.valid("query");
    const clauses = ["tenant_id = ?"];
    const params: (string | number)[] = [auth.tenantId];
    if (query.before) {
      clauses.push("id < ?");
      params.push(query.before);
    }
    if (query.action) {
      clauses.push("action = ?");
      params.push(query.action);
    }
    const { results } = await c.env.DB.prepare(
      `SELECT id, actor_type, actor_id, action, target_type, target_id, detail, created_at FROM audit_log WHERE ${clauses.join(" AND ")} ORDER BY id DESC LIMIT ?`,
    )
      .bind(...params, query.limit + 1)
      .all<{ id: number; actor_type: string; actor_id: string | null; action: string; target_type: string | null; target_id: string | null; detail: string | null; created_at: number }>();
    const page = results.slice(0, query.limit);
    const data = page.map((r) => {
      const detail: unknown = r.detail ? JSON.parse(r.detail) : null;
      return {
        id: r.id,
        actorType: r.actor_type,
        actorId: r.actor_id,
        action: r.action,
        targetType: r.target_type,
        targetId: r.target_id,
        detail: detail && typeof detail === "object" && !Array.isArray(detail) ? (detail as Record<string, unknown>) : null,
        createdAt: new Date(r.created_at).toISOString(),
      };
    });
    const last = page[page.length - 1];
    return c.json({ data, nextCursor: results.length > query.limit && last ? String(last.id) : null }, 200);
  },
);
