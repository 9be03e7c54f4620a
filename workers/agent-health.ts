/** Agent health: AI decision counts per day, outcome and reason. No content, no identifiers. */
import { createRoute, z } from "@hono/zod-openapi";
import { OUTCOMES } from "../lib/ai/rules";
import { requireApiKey, requireScope } from "./support/auth";
import { ApiError } from "./support/errors";
import { bearerSecurity, createRouter, errorResponses } from "./support/router";

export const agentHealth = createRouter();
agentHealth.use("*", requireApiKey);

const day = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "YYYY-MM-DD");

const DaySchema = z
  .object({
    day: z.string(),
    total: z.number().int(),
    outcomes: z.object({ sent: z.number().int(), suppressed: z.number().int(), skipped: z.number().int(), silence: z.number().int(), handoff: z.number().int() }),
    reasons: z.record(z.string(), z.number().int()).openapi({ description: "Counts by `outcome:reason`" }),
  })
  .openapi("AgentHealthDay");

agentHealth.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["AI"],
    summary: "AI decision counts per UTC day (default: the last 30 days)",
    security: bearerSecurity,
    request: { query: z.object({ from: day.optional(), to: day.optional() }) },
    responses: {
      200: {
        description: "Counts",
        content: { "application/json": { schema: z.object({ from: z.string(), to: z.string(), totals: DaySchema.shape.outcomes, days: z.array(DaySchema), aiCallsToday: z.number().int() }) } },
      },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:read");
    const query = c.req.valid("query");
    const today = new Date().toISOString().slice(0, 10);
    const to = query.to ?? today;
    const from = query.from ?? new Date(Date.parse(`${to}T00:00:00Z`) - 29 * 86_400_000).toISOString().slice(0, 10);
    if (from > to) throw new ApiError(400, "validation_error", "from must not be after to", [{ path: "from", message: "after to" }]);
    if (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`) > 366 * 86_400_000) {
      throw new ApiError(400, "validation_error", "range is limited to 366 days", [{ path: "from", message: "range too long" }]);
    }
    const [{ results }, usage] = await Promise.all([
      c.env.DB.prepare("SELECT day, outcome, reason, count FROM agent_health WHERE tenant_id = ? AND day BETWEEN ? AND ? ORDER BY day")
        .bind(auth.tenantId, from, to)
        .all<{ day: string; outcome: (typeof OUTCOMES)[number]; reason: string; count: number }>(),
      c.env.DB.prepare("SELECT calls FROM ai_usage WHERE tenant_id = ? AND day = ?").bind(auth.tenantId, today).first<{ calls: number }>(),
    ]);
    const empty = () => ({ sent: 0, suppressed: 0, skipped: 0, silence: 0, handoff: 0 });
    const totals = empty();
    const days = new Map<string, z.infer<typeof DaySchema>>();
    for (const r of results) {
      const d = days.get(r.day) ?? { day: r.day, total: 0, outcomes: empty(), reasons: {} };
      d.total += r.count;
      d.outcomes[r.outcome] += r.count;
      d.reasons[`${r.outcome}:${r.reason}`] = (d.reasons[`${r.outcome}:${r.reason}`] ?? 0) + r.count;
      totals[r.outcome] += r.count;
      days.set(r.day, d);
    }
    return c.json({ from, to, totals, days: [...days.values()], aiCallsToday: usage?.calls ?? 0 }, 200);
  },
);
