/** Notices: the exact, versioned texts people see when asked for consent (defaults seeded per tenant on first use). */
import { createRoute, z } from "@hono/zod-openapi";
import { sha256Hex } from "../lib/crypto";
import { newId } from "../lib/ids";
import { defaultNoticeKey, NOTICE_KEY, NOTICE_KINDS, NOTICE_LOCALE } from "../lib/consent/notices";
import { CONSENT_PURPOSES } from "../lib/consent/purposes";
import { auditStatement, keyAudit } from "./support/audit";
import { requireApiKey, requireScope } from "./support/auth";
import { ensureDefaultNotices, loadConsentTenant, noticePurposes, type NoticeRow } from "./support/consent-store";
import { conflict, notFound } from "./support/errors";
import { bearerSecurity, createRouter, errorResponses } from "./support/router";

export const notices = createRouter();
notices.use("*", requireApiKey);

/** A notice as the API shows it. */
export const NoticeSchema = z
  .object({
    id: z.string().openapi({ description: "The version id consents reference" }),
    key: z.string().openapi({ description: "The series this version belongs to" }),
    purposes: z.array(z.enum(CONSENT_PURPOSES)),
    kind: z.enum(NOTICE_KINDS),
    locale: z.string(),
    version: z.number().int(),
    text: z.string(),
    sha256: z.string().openapi({ description: "SHA-256 (hex) of the UTF-8 text" }),
    source: z.enum(["default", "tenant"]),
    createdAt: z.string(),
  })
  .openapi("Notice");

/** API view of a stored notice. */
export function noticeView(row: NoticeRow): z.infer<typeof NoticeSchema> {
  return {
    id: row.id,
    key: row.key,
    purposes: noticePurposes(row),
    kind: row.kind,
    locale: row.locale,
    version: row.version,
    text: row.text,
    sha256: row.sha256,
    source: row.source,
    createdAt: new Date(row.created_at).toISOString(),
  };
}

const CreateNoticeBody = z
  .object({
    purposes: z.array(z.enum(CONSENT_PURPOSES)).min(1).max(CONSENT_PURPOSES.length),
    kind: z.enum(NOTICE_KINDS).default("consent"),
    locale: z.string().regex(NOTICE_LOCALE, "a language tag such as en, it or it-IT"),
    text: z.string().min(20, "a notice must say what it asks for").max(20_000),
    key: z.string().regex(NOTICE_KEY, "lower-case letters, digits, '.', '_' and '-'").optional().openapi({
      description: "Series key; a new text for an existing key and locale becomes its next version. Default: the purpose (`recording`), `cookies`, or the purposes joined.",
    }),
  })
  .strict();

notices.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Consent"],
    summary: "Store a notice text as shown to people; returns its version id and SHA-256",
    description: "The text is stored exactly as sent (never trimmed or changed afterwards). Each (key, locale) series is versioned 1, 2, 3…",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: CreateNoticeBody } } } },
    responses: { 201: { description: "Stored", content: { "application/json": { schema: NoticeSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const body = c.req.valid("json");
    const tenant = await loadConsentTenant(c.env, auth.tenantId);
    await ensureDefaultNotices(c.env, tenant);
    const purposes = [...new Set(body.purposes)];
    const key = body.key ?? defaultNoticeKey(purposes, body.kind);
    const series = await c.env.DB.prepare("SELECT * FROM notices WHERE tenant_id = ? AND key = ? ORDER BY created_at DESC LIMIT 1")
      .bind(auth.tenantId, key)
      .first<NoticeRow>();
    if (series && (series.kind !== body.kind || [...noticePurposes(series)].sort().join() !== [...purposes].sort().join())) {
      throw conflict(`notice key "${key}" already names a ${series.kind} notice for other purposes; choose another key`);
    }
    const now = Date.now();
    const id = newId("ntc", now);
    const sha256 = await sha256Hex(body.text);
    // The version is computed inside the insert; a concurrent insert of the same series loses on the unique index and retries.
    for (let attempt = 0; attempt < 3; attempt++) {
      const inserted = await c.env.DB.prepare(
        `INSERT OR IGNORE INTO notices (id, tenant_id, key, purposes, kind, locale, version, text, sha256, source, created_at, created_by)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, COALESCE(MAX(version), 0) + 1, ?7, ?8, 'tenant', ?9, ?10 FROM notices WHERE tenant_id = ?2 AND key = ?3 AND locale = ?6`,
      )
        .bind(id, auth.tenantId, key, JSON.stringify(purposes), body.kind, body.locale, body.text, sha256, now, auth.keyId)
        .run();
      if (inserted.meta.changes > 0) {
        await auditStatement(c.env.DB, keyAudit(auth, "notice.created", "notice", id)).run();
        const row = await c.env.DB.prepare("SELECT * FROM notices WHERE id = ?").bind(id).first<NoticeRow>();
        if (!row) throw notFound("notice");
        return c.json(noticeView(row), 201);
      }
    }
    throw conflict("the notice series changed concurrently; retry");
  },
);

const ListQuery = z.object({
  key: z.string().regex(NOTICE_KEY).optional(),
  locale: z.string().regex(NOTICE_LOCALE).optional(),
  purpose: z.enum(CONSENT_PURPOSES).optional(),
  current: z
    .enum(["true", "false"])
    .optional()
    .openapi({ description: "true: only the latest version of each (key, locale) series" }),
});

notices.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Consent"],
    summary: "List notices (the defaults are created on first use)",
    security: bearerSecurity,
    request: { query: ListQuery },
    responses: {
      200: { description: "Notices by key, locale and version (newest first)", content: { "application/json": { schema: z.object({ data: z.array(NoticeSchema) }) } } },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:read");
    const query = c.req.valid("query");
    await ensureDefaultNotices(c.env, await loadConsentTenant(c.env, auth.tenantId));
    const clauses = ["n.tenant_id = ?"];
    const params: string[] = [auth.tenantId];
    if (query.key) {
      clauses.push("n.key = ?");
      params.push(query.key);
    }
    if (query.locale) {
      clauses.push("n.locale = ?");
      params.push(query.locale);
    }
    if (query.purpose) {
      clauses.push("EXISTS (SELECT 1 FROM json_each(n.purposes) WHERE value = ?)");
      params.push(query.purpose);
    }
    if (query.current === "true") {
      clauses.push("n.version = (SELECT MAX(version) FROM notices m WHERE m.tenant_id = n.tenant_id AND m.key = n.key AND m.locale = n.locale)");
    }
    const { results } = await c.env.DB.prepare(`SELECT n.* FROM notices n WHERE ${clauses.join(" AND ")} ORDER BY n.key, n.locale, n.version DESC LIMIT 1000`)
      .bind(...params)
      .all<NoticeRow>();
    return c.json({ data: results.map(noticeView) }, 200);
  },
);

notices.openapi(
  createRoute({
    method: "get",
    path: "/{id}",
    tags: ["Consent"],
    summary: "Get one notice version",
    security: bearerSecurity,
    request: { params: z.object({ id: z.string().max(64) }) },
    responses: { 200: { description: "The notice", content: { "application/json": { schema: NoticeSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:read");
    await ensureDefaultNotices(c.env, await loadConsentTenant(c.env, auth.tenantId));
    const row = await c.env.DB.prepare("SELECT * FROM notices WHERE id = ? AND tenant_id = ?").bind(c.req.valid("param").id, auth.tenantId).first<NoticeRow>();
    if (!row) throw notFound("notice");
    return c.json(noticeView(row), 200);
  },
);
