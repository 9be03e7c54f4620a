/**
 * Retention policies: the period per data category (privacy policy defaults),
 * the tenant's overrides within legal floors and maxima, and the period in force.
 */
import { createRoute, z } from "@hono/zod-openapi";
import {
  effectiveDays,
  isRetentionCategory,
  RETENTION_CATEGORIES,
  RETENTION_RULES,
  retentionProblem,
  SPECIAL_CATEGORY_MAX_DAYS,
  type RetentionCategory,
} from "../lib/retention";
import { auditStatement, keyAudit } from "./support/audit";
import { requireApiKey, requireScope } from "./support/auth";
import { ApiError, type FieldIssue } from "./support/errors";
import { bearerSecurity, createRouter, errorResponses } from "./support/router";

/** `/v1/retention-policies` */
export const retentionPolicies = createRouter();
retentionPolicies.use("*", requireApiKey);

const PolicySchema = z
  .object({
    category: z.enum(RETENTION_CATEGORIES),
    defaultDays: z.number().int(),
    minDays: z.number().int().openapi({ description: "Legal floor: the data cannot be kept for less" }),
    maxDays: z.number().int(),
    configurable: z.boolean().openapi({ description: "False for fixed periods (backups: rolling 30 days)" }),
    from: z.string().openapi({ description: "What the period counts from", example: "last activity" }),
    note: z.string(),
    overrideDays: z.number().int().nullable().openapi({ description: "The tenant's own period, or null for the default" }),
    effectiveDays: z.number().int().openapi({ description: "The period in force" }),
    updatedAt: z.string().nullable(),
  })
  .openapi("RetentionPolicy");

const PoliciesSchema = z
  .object({
    policies: z.array(PolicySchema),
    specialCategoryMaxDays: z.number().int().openapi({
      description: "Conversations where special categories of data were detected are kept at most this long (or the conversation_logs period, if shorter)",
    }),
  })
  .openapi("RetentionPolicies");

const PutSchema = z
  .object({
    policies: z
      .array(
        z
          .object({
            category: z.enum(RETENTION_CATEGORIES),
            days: z.number().int().nullable().openapi({ description: "Days to keep; null resets the category to its default" }),
          })
          .strict(),
      )
      .min(1)
      .max(RETENTION_CATEGORIES.length),
  })
  .strict()
  .openapi("RetentionPoliciesUpdate");

interface OverrideRow {
  category: string;
  days: number;
  updated_at: number;
}

async function loadView(db: D1Database, tenantId: string): Promise<z.infer<typeof PoliciesSchema>> {
  const { results } = await db.prepare("SELECT category, days, updated_at FROM retention_policies WHERE tenant_id = ?").bind(tenantId).all<OverrideRow>();
  const overrides = new Map<RetentionCategory, OverrideRow>();
  for (const row of results) if (isRetentionCategory(row.category)) overrides.set(row.category, row);
  return {
    policies: RETENTION_CATEGORIES.map((category) => {
      const rule = RETENTION_RULES[category];
      const override = overrides.get(category);
      return {
        category,
        defaultDays: rule.defaultDays,
        minDays: rule.minDays,
        maxDays: rule.maxDays,
        configurable: rule.configurable,
        from: rule.from,
        note: rule.note,
        overrideDays: override?.days ?? null,
        effectiveDays: effectiveDays(category, override?.days),
        updatedAt: override ? new Date(override.updated_at).toISOString() : null,
      };
    }),
    specialCategoryMaxDays: SPECIAL_CATEGORY_MAX_DAYS,
  };
}

retentionPolicies.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Privacy"],
    summary: "Retention period of every data category: default, legal floor, maximum, the tenant's override and the period in force",
    security: bearerSecurity,
    responses: { 200: { description: "Policies", content: { "application/json": { schema: PoliciesSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:read");
    return c.json(await loadView(c.env.DB, auth.tenantId), 200);
  },
);

retentionPolicies.openapi(
  createRoute({
    method: "put",
    path: "/",
    tags: ["Privacy"],
    summary: "Set retention periods for some categories (others are unchanged)",
    description:
      "Each period must lie within the category's legal floor and maximum (billing and invoices: at least 10 years; backups are fixed at 30 days). Any invalid entry refuses the whole request and nothing is stored. `days: null` resets a category to its default.",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: PutSchema } } } },
    responses: { 200: { description: "Policies after the change", content: { "application/json": { schema: PoliciesSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const { policies } = c.req.valid("json");
    const issues: FieldIssue[] = [];
    const seen = new Set<RetentionCategory>();
    policies.forEach((p, i) => {
      if (seen.has(p.category)) issues.push({ path: `policies.${i}.category`, message: `${p.category} is listed more than once` });
      seen.add(p.category);
      if (p.days === null) {
        if (!RETENTION_RULES[p.category].configurable) issues.push({ path: `policies.${i}.days`, message: `${p.category} retention is fixed` });
        return;
      }
      const problem = retentionProblem(p.category, p.days);
      if (problem) issues.push({ path: `policies.${i}.days`, message: problem });
    });
    if (issues.length > 0) throw new ApiError(400, "validation_error", "retention policy is invalid", issues);

    const now = Date.now();
    const statements: D1PreparedStatement[] = [];
    const detail: Record<string, number | null> = {};
    for (const p of policies) {
      // A fixed category's own period is accepted but there is nothing to store.
      if (!RETENTION_RULES[p.category].configurable) continue;
      detail[p.category] = p.days;
      statements.push(
        p.days === null
          ? c.env.DB.prepare("DELETE FROM retention_policies WHERE tenant_id = ? AND category = ?").bind(auth.tenantId, p.category)
          : c.env.DB.prepare(
              `INSERT INTO retention_policies (tenant_id, category, days, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT(tenant_id, category) DO UPDATE SET days = excluded.days, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
            ).bind(auth.tenantId, p.category, p.days, now, auth.keyId),
      );
    }
    if (statements.length > 0) {
      statements.push(auditStatement(c.env.DB, keyAudit(auth, "retention_policies.updated", "retention_policies", auth.tenantId, detail)));
      await c.env.DB.batch(statements);
    }
    return c.json(await loadView(c.env.DB, auth.tenantId), 200);
  },
);
