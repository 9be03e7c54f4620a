/** Tenant settings: AI features, provider, model, thresholds, persona, budget, contact text, minimum age. */
import { createRoute, z } from "@hono/zod-openapi";
import { AI_PROVIDERS, applySettingsPatch, effectiveProvider, parseSettings, settingsPatchSchema, type Settings } from "../lib/ai/settings";
import { auditStatement, keyAudit } from "./support/audit";
import { requireApiKey, requireScope } from "./support/auth";
import { bearerSecurity, createRouter, errorResponses } from "./support/router";

export const settings = createRouter();
settings.use("*", requireApiKey);

const SettingsSchema = z
  .object({
    ai: z.object({ replies: z.boolean(), summaries: z.boolean(), intent: z.boolean() }),
    provider: z.enum(AI_PROVIDERS).nullable().openapi({ description: "null: openai when OPENAI_API_KEY is set, else local" }),
    effectiveProvider: z.enum(AI_PROVIDERS),
    model: z.string(),
    confidenceThreshold: z.number(),
    contextMessages: z.number().int(),
    knowledgeEntries: z.number().int(),
    persona: z.string(),
    dailyAiCallBudget: z.number().int(),
    handoffOnLowConfidence: z.boolean(),
    specialCategoryHandoff: z.boolean(),
    handoffMessage: z.string(),
    contactText: z.string(),
    minimumAge: z.number().int(),
    updatedAt: z.string().nullable(),
  })
  .openapi("Settings");

function view(env: Env, value: Settings, updatedAt: number | null): z.infer<typeof SettingsSchema> {
  return {
    ...value,
    provider: value.provider ?? null,
    effectiveProvider: effectiveProvider(value, (env.OPENAI_API_KEY ?? "") !== ""),
    updatedAt: updatedAt ? new Date(updatedAt).toISOString() : null,
  };
}

async function load(db: D1Database, tenantId: string): Promise<{ value: Settings; updatedAt: number | null }> {
  const row = await db.prepare("SELECT data, updated_at FROM settings WHERE tenant_id = ?").bind(tenantId).first<{ data: string; updated_at: number }>();
  return { value: parseSettings(row?.data), updatedAt: row?.updated_at ?? null };
}

settings.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["AI"],
    summary: "Read the tenant's settings (defaults filled in)",
    security: bearerSecurity,
    responses: { 200: { description: "Settings", content: { "application/json": { schema: SettingsSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "settings:read");
    const { value, updatedAt } = await load(c.env.DB, auth.tenantId);
    return c.json(view(c.env, value, updatedAt), 200);
  },
);

settings.openapi(
  createRoute({
    method: "patch",
    path: "/",
    tags: ["AI"],
    summary: "Change some settings (unknown keys are rejected)",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: settingsPatchSchema } } } },
    responses: { 200: { description: "Updated settings", content: { "application/json": { schema: SettingsSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "settings:write");
    const patch = c.req.valid("json");
    const { value } = await load(c.env.DB, auth.tenantId);
    const next = applySettingsPatch(value, patch);
    const now = Date.now();
    await c.env.DB.batch([
      c.env.DB.prepare(
        "INSERT INTO settings (tenant_id, data, updated_at) VALUES (?, ?, ?) ON CONFLICT(tenant_id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
      ).bind(auth.tenantId, JSON.stringify(next), now),
      auditStatement(c.env.DB, keyAudit(auth, "settings.updated", "settings", auth.tenantId, { fields: Object.keys(patch).sort().join(",") })),
    ]);
    return c.json(view(c.env, next, now), 200);
  },
);
