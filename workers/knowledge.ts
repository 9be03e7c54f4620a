/** The knowledge base the AI answers from: question/answer entries, replaced as a whole. */
import { createRoute, z } from "@hono/zod-openapi";
import { newId } from "../lib/ids";
import { auditStatement, keyAudit } from "./support/audit";
import { requireApiKey, requireScope } from "./support/auth";
import { bearerSecurity, createRouter, errorResponses } from "./support/router";

export const knowledge = createRouter();
knowledge.use("*", requireApiKey);

/** Most entries a tenant can have (the local ranker loads them all per decision). */
export const MAX_ENTRIES = 500;

const EntryInput = z.object({ question: z.string().trim().min(3).max(500), answer: z.string().trim().min(1).max(4000) }).strict();
const EntrySchema = EntryInput.extend({ id: z.string() }).openapi("KnowledgeEntry");
const PutBody = z.object({ entries: z.array(EntryInput).max(MAX_ENTRIES) }).strict();

knowledge.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["AI"],
    summary: "List knowledge-base entries",
    security: bearerSecurity,
    responses: { 200: { description: "Entries", content: { "application/json": { schema: z.object({ entries: z.array(EntrySchema) }) } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "settings:read");
    const { results } = await c.env.DB.prepare("SELECT id, question, answer FROM knowledge_entries WHERE tenant_id = ? ORDER BY position LIMIT ?")
      .bind(auth.tenantId, MAX_ENTRIES)
      .all<{ id: string; question: string; answer: string }>();
    return c.json({ entries: results }, 200);
  },
);

knowledge.openapi(
  createRoute({
    method: "put",
    path: "/",
    tags: ["AI"],
    summary: "Replace the knowledge base (atomically)",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: PutBody } } } },
    responses: { 200: { description: "The new entries", content: { "application/json": { schema: z.object({ entries: z.array(EntrySchema) }) } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "settings:write");
    const { entries } = c.req.valid("json");
    const now = Date.now();
    const stored = entries.map((e) => ({ id: newId("kb", now), ...e }));
    // One batch is one transaction: readers see the old base or the new one, never a mix.
    await c.env.DB.batch([
      c.env.DB.prepare("DELETE FROM knowledge_entries WHERE tenant_id = ?").bind(auth.tenantId),
      ...stored.map((e, i) =>
        c.env.DB.prepare("INSERT INTO knowledge_entries (id, tenant_id, question, answer, position, created_at) VALUES (?, ?, ?, ?, ?, ?)").bind(
          e.id,
          auth.tenantId,
          e.question,
          e.answer,
          i,
          now,
        ),
      ),
      auditStatement(c.env.DB, keyAudit(auth, "knowledge.replaced", "knowledge", auth.tenantId, { entries: stored.length })),
    ]);
    return c.json({ entries: stored }, 200);
  },
);
