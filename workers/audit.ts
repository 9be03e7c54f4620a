/** Audit log reads (append-only; written by every feature) and verification of its hash chain. */
import { createRoute, z } from "@hono/zod-openapi";
import { requireApiKey, requireScope } from "./support/auth";
import { sealAuditChain, verifyAuditChain } from "./support/audit";
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
    chainHash: z
      .string()
      .nullable()
      .openapi({ description: "SHA-256 link of this entry in the tenant's audit hash chain (null only while the entry is not sealed yet)" }),
  })
  .openapi("AuditEntry");

audit.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Audit"],
    summary: "Read the tenant's audit log, newest first",
    description: "Entries written since the last read are first sealed into the tenant's hash chain; each entry carries its `chainHash`.",
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
    await sealAuditChain(c.env.DB, auth.tenantId);
    const clauses = ["a.tenant_id = ?"];
    const params: (string | number)[] = [auth.tenantId];
    if (query.before) {
      clauses.push("a.id < ?");
      params.push(query.before);
    }
    if (query.action) {
      clauses.push("a.action = ?");
      params.push(query.action);
    }
    const { results } = await c.env.DB.prepare(
      `SELECT a.id, a.actor_type, a.actor_id, a.action, a.target_type, a.target_id, a.detail, a.created_at, c.hash AS chain_hash
       FROM audit_log a LEFT JOIN audit_chain c ON c.audit_id = a.id WHERE ${clauses.join(" AND ")} ORDER BY a.id DESC LIMIT ?`,
    )
      .bind(...params, query.limit + 1)
      .all<{
        id: number;
        actor_type: string;
        actor_id: string | null;
        action: string;
        target_type: string | null;
        target_id: string | null;
        detail: string | null;
        created_at: number;
        chain_hash: string | null;
      }>();
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
        chainHash: r.chain_hash,
      };
    });
    const last = page[page.length - 1];
    return c.json({ data, nextCursor: results.length > query.limit && last ? String(last.id) : null }, 200);
  },
);

/** The answer of an audit-chain verification (tenant or platform). */
export const ChainVerificationSchema = z
  .object({
    intact: z.boolean(),
    checked: z.number().int().openapi({ description: "Entries whose chain links were recomputed and matched" }),
    firstBrokenId: z.number().int().optional().openapi({ description: "The first entry that was altered or removed" }),
    reason: z
      .enum(["hash_mismatch", "entry_missing", "link_mismatch", "entry_not_sealed"])
      .optional()
      .openapi({
        description:
          "`hash_mismatch`: the entry changed after it was sealed; `entry_missing`: a sealed entry was deleted; `link_mismatch`: chain links were removed or rewritten; `entry_not_sealed`: an entry between sealed ones has no link",
      }),
    head: z
      .object({ id: z.number().int(), hash: z.string() })
      .nullable()
      .openapi({ description: "The last verified link. Keep a copy outside Parley: a later head that does not extend it means the log's tail was cut." }),
    pending: z.number().int().openapi({ description: "Entries not sealed yet (more than one call seals)" }),
  })
  .openapi("AuditChainVerification");

audit.openapi(
  createRoute({
    method: "get",
    path: "/verify",
    tags: ["Audit"],
    summary: "Verify the tenant's audit hash chain",
    description:
      "Seals entries written since the last seal, then recomputes every link from the first: an entry changed or deleted after it was sealed is reported as `firstBrokenId` with a `reason`.",
    security: bearerSecurity,
    responses: { 200: { description: "The verification", content: { "application/json": { schema: ChainVerificationSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "audit:read");
    await sealAuditChain(c.env.DB, auth.tenantId);
    return c.json(await verifyAuditChain(c.env.DB, auth.tenantId), 200);
  },
);
