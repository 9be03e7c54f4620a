/**
 * Data-subject requests (GDPR arts. 15–21): access, portability, erasure,
 * rectification, restriction and objection, with identity verification, a due
 * date one month after receipt (extendable once by two months), and exports.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { normalizeAddress } from "../lib/addresses";
import { randomBytes, sha256Hex, timingSafeEqualStrings } from "../lib/crypto";
import { newId } from "../lib/ids";
import type { MessageView } from "../durable-objects/conversation";
import { auditStatement, keyAudit } from "./support/audit";
import { requireApiKey, requireScope } from "./support/auth";
import type { AppEnv } from "./support/context";
import { ApiError, conflict, notFound } from "./support/errors";
import { eraseConversation } from "./support/erasure";
import { conversationStub } from "./support/ingest";
import { masterKeyring, openWithMasterKey, subjectHash, tenantHashKey } from "./support/keyring";
import { activeHold } from "./support/legal-holds";
import { destroySubjectKeysStatement } from "./support/subject-keys";
import { purgeVoiceModels } from "./support/consent-store";
import { sealBytes } from "../lib/crypto";
import { fromUtf8, utf8 } from "../lib/encoding";
import { bearerSecurity, createRouter, errorResponses, publicOrigin } from "./support/router";

export const dsr = createRouter();
dsr.use("*", requireApiKey);

const TYPES = ["access", "portability", "erasure", "rectification", "restriction", "objection"] as const;
const STATUSES = ["received", "verified", "in_progress", "completed", "rejected"] as const;
const MAX_CODE_ATTEMPTS = 5;

/** One month after `ms` (calendar month, clamped to the month's last day). */
export function addMonths(ms: number, months: number): number {
  const d = new Date(ms);
  const day = d.getUTCDate();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() + months);
  const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  d.setUTCDate(Math.min(day, last));
  return d.getTime();
}

const DsrSchema = z
  .object({
    id: z.string(),
    type: z.enum(TYPES),
    status: z.enum(STATUSES),
    verificationMethod: z.string(),
    receivedAt: z.string(),
    dueAt: z.string(),
    extended: z.boolean(),
    extensionReason: z.string().nullable(),
    verifiedAt: z.string().nullable(),
    completedAt: z.string().nullable(),
    rejectedReason: z.string().nullable(),
    overdue: z.boolean(),
    result: z.record(z.string(), z.unknown()).nullable(),
  })
  .openapi("DataSubjectRequest");

interface DsrRow {
  id: string;
  tenant_id: string;
  type: (typeof TYPES)[number];
  status: (typeof STATUSES)[number];
  subject_hash: string;
  subject_sealed: string | null;
  verification_method: string;
  verification_code_hash: string | null;
  verification_attempts: number;
  details: string | null;
  received_at: number;
  due_at: number;
  extension_reason: string | null;
  verified_at: number | null;
  completed_at: number | null;
  rejected_reason: string | null;
  result: string | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function view(row: DsrRow): z.infer<typeof DsrSchema> {
  const result: unknown = row.result ? JSON.parse(row.result) : null;
  return {
    id: row.id,
    type: row.type,
    status: row.status,
    verificationMethod: row.verification_method,
    receivedAt: new Date(row.received_at).toISOString(),
    dueAt: new Date(row.due_at).toISOString(),
    extended: row.extension_reason !== null,
    extensionReason: row.extension_reason,
    verifiedAt: iso(row.verified_at),
    completedAt: iso(row.completed_at),
    rejectedReason: row.rejected_reason,
    overdue: row.status !== "completed" && row.status !== "rejected" && Date.now() > row.due_at,
    result: result && typeof result === "object" && !Array.isArray(result) ? (result as Record<string, unknown>) : null,
  };
}

async function load(c: Context<AppEnv>, id: string): Promise<DsrRow> {
  const row = await c.env.DB.prepare("SELECT * FROM dsr_requests WHERE id = ? AND tenant_id = ?").bind(id, c.get("auth").tenantId).first<DsrRow>();
  if (!row) throw notFound("data subject request");
  return row;
}

async function sealSubject(env: Env, dsrId: string, address: string): Promise<string> {
  const { key, keyId } = await masterKeyring(env);
  return sealBytes(key, keyId, utf8(address), `dsr-subject:${dsrId}`);
}

async function openSubject(env: Env, row: DsrRow): Promise<string | null> {
  if (!row.subject_sealed) return null;
  return fromUtf8(await openWithMasterKey(env, row.subject_sealed, `dsr-subject:${row.id}`));
}

async function conversationsOf(env: Env, tenantId: string, hash: string): Promise<{ id: string; channel_id: string; status: string; created_at: number; last_activity_at: number }[]> {
  const { results } = await env.DB.prepare(
    "SELECT id, channel_id, status, created_at, last_activity_at FROM conversations WHERE tenant_id = ? AND subject_hash = ? ORDER BY created_at LIMIT 1000",
  )
    .bind(tenantId, hash)
    .all<{ id: string; channel_id: string; status: string; created_at: number; last_activity_at: number }>();
  return results;
}

const idParam = z.object({ id: z.string().max(64) });

const CreateBody = z
  .object({
    type: z.enum(TYPES),
    subject: z.string().trim().min(3).max(320).openapi({ description: "Phone number, e-mail or channel address of the data subject" }),
    verification: z.enum(["channel_code", "attested"]).openapi({
      description: "channel_code: Parley sends a one-time code over the subject's latest conversation; attested: staff verified the identity out of band (note required)",
    }),
    note: z.string().trim().max(1000).optional(),
    birthDate: z.string().regex(/^\d{4}-\d{2}-\d{2}$/).optional().openapi({ description: "rectification: the corrected birth date" }),
  })
  .strict()
  .refine((b) => b.verification !== "attested" || (b.note?.length ?? 0) >= 5, { message: "attested verification needs a note saying how identity was checked", path: ["note"] })
  .refine((b) => b.type !== "rectification" || b.birthDate !== undefined || (b.note?.length ?? 0) > 0, { message: "rectification needs the corrected data", path: ["birthDate"] });

dsr.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Privacy"],
    summary: "Receive a data-subject request",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: CreateBody } } } },
    responses: { 201: { description: "Received", content: { "application/json": { schema: DsrSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const body = c.req.valid("json");
    const address = normalizeAddress(body.subject);
    if (!address) throw new ApiError(400, "validation_error", "subject is not a usable address", [{ path: "subject", message: "invalid" }]);
    const tenant = await c.env.DB.prepare("SELECT hash_key FROM tenants WHERE id = ?").bind(auth.tenantId).first<{ hash_key: string }>();
    if (!tenant) throw notFound("tenant");
    const hash = await subjectHash(await tenantHashKey(c.env, auth.tenantId, tenant.hash_key), address);
    const now = Date.now();
    const id = newId("dsr", now);
    let status: DsrRow["status"] = "received";
    let codeHash: string | null = null;
    if (body.verification === "attested") status = "verified";
    else {
      const conversation = (await conversationsOf(c.env, auth.tenantId, hash)).sort((a, b) => b.last_activity_at - a.last_activity_at)[0];
      if (!conversation) throw conflict("no conversation with this subject to send a code to; verify out of band and use verification \"attested\"");
      const code = String(100000 + (new DataView(randomBytes(4).buffer).getUint32(0) % 900000));
      codeHash = await sha256Hex(`${id}:${code}`);
      const sent = await conversationStub(c.env, conversation.id).send({
        text: `Your verification code for your data protection request is ${code}. If you did not ask for this, ignore this message.`,
        author: "system",
        authorId: id,
        idempotencyKey: `dsr-code:${id}`,
        publicOrigin: publicOrigin(c.env, c.req.url),
      });
      if (!sent.ok) throw conflict(`the verification code could not be sent (${sent.code}); use verification "attested"`);
    }
    const details = JSON.stringify({ ...(body.note ? { note: body.note } : {}), ...(body.birthDate ? { birthDate: body.birthDate } : {}) });
    await c.env.DB.batch([
      c.env.DB.prepare(
        `INSERT INTO dsr_requests (id, tenant_id, type, status, subject_hash, subject_sealed, verification_method, verification_code_hash, verification_attempts, details, received_at, due_at, verified_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)`,
      ).bind(id, auth.tenantId, body.type, status, hash, await sealSubject(c.env, id, address), body.verification, codeHash, details, now, addMonths(now, 1), status === "verified" ? now : null),
      auditStatement(c.env.DB, keyAudit(auth, "dsr.received", "dsr", id, { type: body.type, verification: body.verification })),
    ]);
    return c.json(view(await load(c, id)), 201);
  },
);

dsr.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Privacy"],
    summary: "List data-subject requests, soonest due first",
    security: bearerSecurity,
    request: { query: z.object({ status: z.enum(STATUSES).optional() }) },
    responses: { 200: { description: "Requests", content: { "application/json": { schema: z.object({ data: z.array(DsrSchema) }) } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:read");
    const { status } = c.req.valid("query");
    const { results } = await c.env.DB.prepare(`SELECT * FROM dsr_requests WHERE tenant_id = ? ${status ? "AND status = ?" : ""} ORDER BY due_at LIMIT 500`)
      .bind(...(status ? [auth.tenantId, status] : [auth.tenantId]))
      .all<DsrRow>();
    return c.json({ data: results.map(view) }, 200);
  },
);

dsr.openapi(
  createRoute({
    method: "get",
    path: "/{id}",
    tags: ["Privacy"],
    summary: "Get a data-subject request",
    security: bearerSecurity,
    request: { params: idParam },
    responses: { 200: { description: "The request", content: { "application/json": { schema: DsrSchema } } }, ...errorResponses },
  }),
  async (c) => {
    requireScope(c, "privacy:read");
    return c.json(view(await load(c, c.req.valid("param").id)), 200);
  },
);

dsr.openapi(
  createRoute({
    method: "post",
    path: "/{id}/verify",
    tags: ["Privacy"],
    summary: "Verify the subject's identity with the code they received",
    security: bearerSecurity,
    request: { params: idParam, body: { required: true, content: { "application/json": { schema: z.object({ code: z.string().regex(/^\d{6}$/) }).strict() } } } },
    responses: { 200: { description: "Verified", content: { "application/json": { schema: DsrSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const row = await load(c, c.req.valid("param").id);
    if (row.status !== "received" || !row.verification_code_hash) throw conflict(`request is ${row.status}; nothing to verify`);
    const ok = timingSafeEqualStrings(await sha256Hex(`${row.id}:${c.req.valid("json").code}`), row.verification_code_hash);
    const now = Date.now();
    if (!ok) {
      const attempts = row.verification_attempts + 1;
      const rejected = attempts >= MAX_CODE_ATTEMPTS;
      await c.env.DB.batch([
        c.env.DB.prepare("UPDATE dsr_requests SET verification_attempts = ?, status = ?, rejected_reason = ? WHERE id = ?").bind(
          attempts,
          rejected ? "rejected" : "received",
          rejected ? "identity could not be verified" : null,
          row.id,
        ),
        auditStatement(c.env.DB, keyAudit(auth, rejected ? "dsr.rejected" : "dsr.verification_failed", "dsr", row.id, { attempts })),
      ]);
      throw new ApiError(400, "bad_request", rejected ? "wrong code; too many attempts, the request was rejected" : "wrong code");
    }
    await c.env.DB.batch([
      c.env.DB.prepare("UPDATE dsr_requests SET status = 'verified', verified_at = ?, verification_code_hash = NULL WHERE id = ?").bind(now, row.id),
      auditStatement(c.env.DB, keyAudit(auth, "dsr.verified", "dsr", row.id)),
    ]);
    return c.json(view(await load(c, row.id)), 200);
  },
);

dsr.openapi(
  createRoute({
    method: "post",
    path: "/{id}/extend",
    tags: ["Privacy"],
    summary: "Extend the due date by two months (once, with a reason)",
    security: bearerSecurity,
    request: { params: idParam, body: { required: true, content: { "application/json": { schema: z.object({ reason: z.string().trim().min(5).max(1000) }).strict() } } } },
    responses: { 200: { description: "Extended", content: { "application/json": { schema: DsrSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const row = await load(c, c.req.valid("param").id);
    if (row.status === "completed" || row.status === "rejected") throw conflict(`request is ${row.status}`);
    if (row.extension_reason !== null) throw conflict("the due date was already extended once (art. 12(3): by two further months at most)");
    await c.env.DB.batch([
      c.env.DB.prepare("UPDATE dsr_requests SET due_at = ?, extension_reason = ? WHERE id = ?").bind(addMonths(row.due_at, 2), c.req.valid("json").reason, row.id),
      auditStatement(c.env.DB, keyAudit(auth, "dsr.extended", "dsr", row.id)),
    ]);
    return c.json(view(await load(c, row.id)), 200);
  },
);

dsr.openapi(
  createRoute({
    method: "post",
    path: "/{id}/reject",
    tags: ["Privacy"],
    summary: "Reject a request (with the reason the subject is told)",
    security: bearerSecurity,
    request: { params: idParam, body: { required: true, content: { "application/json": { schema: z.object({ reason: z.string().trim().min(5).max(1000) }).strict() } } } },
    responses: { 200: { description: "Rejected", content: { "application/json": { schema: DsrSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const row = await load(c, c.req.valid("param").id);
    if (row.status === "completed" || row.status === "rejected") throw conflict(`request is ${row.status}`);
    await c.env.DB.batch([
      c.env.DB.prepare("UPDATE dsr_requests SET status = 'rejected', rejected_reason = ?, completed_at = ?, subject_sealed = NULL WHERE id = ?").bind(c.req.valid("json").reason, Date.now(), row.id),
      auditStatement(c.env.DB, keyAudit(auth, "dsr.rejected", "dsr", row.id)),
    ]);
    return c.json(view(await load(c, row.id)), 200);
  },
);

/** Every record Parley holds about the subject, decrypted, for access and portability. */
async function collectExport(env: Env, tenantId: string, hash: string) {
  const conversations = [];
  for (const conv of await conversationsOf(env, tenantId, hash)) {
    const stub = conversationStub(env, conv.id);
    const messages: MessageView[] = [];
    let after = 0;
    for (;;) {
      const page = await stub.listMessages({ after, limit: 200, order: "asc" });
      messages.push(...page.messages);
      const last = page.messages[page.messages.length - 1];
      if (!page.hasMore || !last) break;
      after = last.seq;
    }
    conversations.push({
      id: conv.id,
      channelId: conv.channel_id,
      status: conv.status,
      createdAt: new Date(conv.created_at).toISOString(),
      messages: messages.map((m) => ({ seq: m.seq, direction: m.direction, author: m.author, text: m.text, media: m.media, status: m.status, createdAt: m.createdAt })),
    });
  }
  const { results: consents } = await env.DB.prepare(
    "SELECT id, purpose, status, method, notice_id, channel_id, expires_at, created_at FROM consents WHERE tenant_id = ? AND subject_hash = ? ORDER BY seq",
  )
    .bind(tenantId, hash)
    .all<{ id: string; purpose: string; status: string; method: string; notice_id: string | null; channel_id: string | null; expires_at: number | null; created_at: number }>();
  const { results: attachments } = await env.DB.prepare(
    "SELECT id, conversation_id, category, content_type, size, created_at FROM attachments WHERE tenant_id = ? AND subject_hash = ? ORDER BY created_at",
  )
    .bind(tenantId, hash)
    .all<{ id: string; conversation_id: string; category: string; content_type: string; size: number; created_at: number }>();
  return {
    conversations,
    consents: consents.map((r) => ({ id: r.id, purpose: r.purpose, status: r.status, method: r.method, noticeId: r.notice_id, channelId: r.channel_id, expiresAt: iso(r.expires_at), createdAt: new Date(r.created_at).toISOString() })),
    attachments: attachments.map((a) => ({ id: a.id, conversationId: a.conversation_id, category: a.category, contentType: a.content_type, size: a.size, createdAt: new Date(a.created_at).toISOString(), download: `/v1/attachments/${a.id}` })),
  };
}

const csvCell = (v: unknown) => {
  const s = v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v);
  // Leading =,+,-,@ would run as formulas in spreadsheets.
  const safe = /^[=+\-@]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
};

dsr.openapi(
  createRoute({
    method: "post",
    path: "/{id}/execute",
    tags: ["Privacy"],
    summary: "Carry out a verified request",
    description:
      "erasure: every conversation, message, attachment and recording of the subject is deleted from the conversation objects, D1 and R2, voice models purged, and the subject's data key destroyed (crypto-shredding) — unless a legal hold covers it (result.held). restriction/objection: AI processing and marketing stop until lifted. rectification: the recorded birth date is corrected. access/portability: the export becomes available.",
    security: bearerSecurity,
    request: { params: idParam },
    responses: { 200: { description: "Completed", content: { "application/json": { schema: DsrSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const row = await load(c, c.req.valid("param").id);
    if (row.status !== "verified") throw conflict(row.status === "received" ? "verify the subject's identity first" : `request is ${row.status}`);
    const claimed = await c.env.DB.prepare("UPDATE dsr_requests SET status = 'in_progress' WHERE id = ? AND status = 'verified'").bind(row.id).run();
    if (claimed.meta.changes !== 1) throw conflict("request is already being processed");
    const now = Date.now();
    let result: Record<string, unknown> = {};
    let keepSubject = true;
    switch (row.type) {
      case "access":
      case "portability": {
        const data = await collectExport(c.env, auth.tenantId, row.subject_hash);
        result = { conversations: data.conversations.length, messages: data.conversations.reduce((n, cv) => n + cv.messages.length, 0), consents: data.consents.length, attachments: data.attachments.length };
        break;
      }
      case "erasure": {
        const subjectHold = await activeHold(c.env, auth.tenantId, { subjectHash: row.subject_hash });
        if (subjectHold) {
          result = { held: true, holdScope: subjectHold.scope, holdReason: subjectHold.reason, erasedConversations: 0 };
          break;
        }
        let conversations = 0;
        let messages = 0;
        const held: { conversationId: string; reason: string }[] = [];
        for (const conv of await conversationsOf(c.env, auth.tenantId, row.subject_hash)) {
          const hold = await activeHold(c.env, auth.tenantId, { conversationId: conv.id });
          if (hold) {
            held.push({ conversationId: conv.id, reason: hold.reason });
            continue;
          }
          const erased = await eraseConversation(c.env, auth.tenantId, conv.id, "dsr_erasure", now);
          conversations += 1;
          messages += erased.messages;
        }
        const voiceModels = await purgeVoiceModels(c.env, auth.tenantId, { subjectHash: row.subject_hash, reason: "tenant_request" }, { actorType: "api_key", actorId: auth.keyId });
        if (held.length === 0) {
          await c.env.DB.batch([
            destroySubjectKeysStatement(c.env.DB, auth.tenantId, row.subject_hash, now),
            c.env.DB.prepare("DELETE FROM subject_profiles WHERE tenant_id = ? AND subject_hash = ?").bind(auth.tenantId, row.subject_hash),
            c.env.DB.prepare(
              "INSERT INTO deletion_log (id, tenant_id, target_type, target_id, category, reason, subject_hash, deleted_at) VALUES (?, ?, 'subject_key', ?, 'conversation_logs', 'dsr_erasure', ?, ?)",
            ).bind(newId("del", now), auth.tenantId, row.subject_hash, row.subject_hash, now),
          ]);
          keepSubject = false;
        }
        result = { held: held.length > 0, heldConversations: held, erasedConversations: conversations, erasedMessages: messages, voiceModels, subjectKeyDestroyed: held.length === 0 };
        break;
      }
      case "restriction":
      case "objection": {
        await c.env.DB.prepare(
          "INSERT INTO subject_restrictions (tenant_id, subject_hash, kind, dsr_id, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(tenant_id, subject_hash, kind) DO UPDATE SET dsr_id = excluded.dsr_id, created_at = excluded.created_at, lifted_at = NULL",
        )
          .bind(auth.tenantId, row.subject_hash, row.type, row.id, now)
          .run();
        result = { restricted: true };
        break;
      }
      case "rectification": {
        const details = z.object({ birthDate: z.string().optional(), note: z.string().optional() }).parse(JSON.parse(row.details ?? "{}"));
        if (details.birthDate) {
          await c.env.DB.prepare(
            "INSERT INTO subject_profiles (tenant_id, subject_hash, birth_date, birth_date_source, updated_at) VALUES (?, ?, ?, 'birth_date', ?) ON CONFLICT DO UPDATE SET birth_date = excluded.birth_date, birth_date_source = excluded.birth_date_source, updated_at = excluded.updated_at",
          )
            .bind(auth.tenantId, row.subject_hash, details.birthDate, now)
            .run();
        }
        result = { rectified: details.birthDate ? ["birthDate"] : [], note: details.note ?? null };
        break;
      }
    }
    await c.env.DB.batch([
      c.env.DB.prepare(`UPDATE dsr_requests SET status = 'completed', completed_at = ?, result = ?${keepSubject ? "" : ", subject_sealed = NULL"} WHERE id = ?`).bind(now, JSON.stringify(result), row.id),
      auditStatement(c.env.DB, keyAudit(auth, "dsr.completed", "dsr", row.id, { type: row.type, held: result.held === true })),
    ]);
    return c.json(view(await load(c, row.id)), 200);
  },
);

dsr.openapi(
  createRoute({
    method: "post",
    path: "/{id}/lift",
    tags: ["Privacy"],
    summary: "Lift a restriction or objection",
    security: bearerSecurity,
    request: { params: idParam },
    responses: { 200: { description: "Lifted", content: { "application/json": { schema: DsrSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const row = await load(c, c.req.valid("param").id);
    if ((row.type !== "restriction" && row.type !== "objection") || row.status !== "completed") throw conflict("only a completed restriction or objection can be lifted");
    await c.env.DB.batch([
      c.env.DB.prepare("UPDATE subject_restrictions SET lifted_at = ? WHERE tenant_id = ? AND subject_hash = ? AND kind = ? AND lifted_at IS NULL").bind(Date.now(), auth.tenantId, row.subject_hash, row.type),
      auditStatement(c.env.DB, keyAudit(auth, "dsr.lifted", "dsr", row.id)),
    ]);
    return c.json(view(row), 200);
  },
);

dsr.openapi(
  createRoute({
    method: "get",
    path: "/{id}/export",
    tags: ["Privacy"],
    summary: "Export everything held about the subject (access, portability)",
    security: bearerSecurity,
    request: { params: idParam, query: z.object({ format: z.enum(["json", "csv"]).default("json") }) },
    responses: {
      200: { description: "The export (JSON, or CSV with one row per record)", content: { "application/json": { schema: z.record(z.string(), z.unknown()) }, "text/csv": { schema: z.string() } } },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:read");
    const row = await load(c, c.req.valid("param").id);
    if (row.type !== "access" && row.type !== "portability") throw conflict("only access and portability requests have an export");
    if (row.status !== "in_progress" && row.status !== "completed") throw conflict("the request must be verified and executed first");
    const subject = await openSubject(c.env, row);
    const data = await collectExport(c.env, auth.tenantId, row.subject_hash);
    await auditStatement(c.env.DB, keyAudit(auth, "dsr.exported", "dsr", row.id, { format: c.req.valid("query").format })).run();
    const meta = { request: row.id, subject, generatedAt: new Date().toISOString() };
    if (c.req.valid("query").format === "json") {
      return c.json({ ...meta, ...data }, 200, { "content-disposition": `attachment; filename="dsr-${row.id}.json"` });
    }
    const lines = [["record", "conversation_id", "seq", "direction", "author", "created_at", "text_or_purpose", "status", "detail"].join(",")];
    for (const conv of data.conversations) {
      for (const m of conv.messages) lines.push(["message", conv.id, m.seq, m.direction, m.author, m.createdAt, m.text, m.status, m.media.length ? m.media : ""].map(csvCell).join(","));
    }
    for (const k of data.consents) lines.push(["consent", "", "", "", k.method, k.createdAt, k.purpose, k.status, k.noticeId ?? ""].map(csvCell).join(","));
    for (const a of data.attachments) lines.push(["attachment", a.conversationId, "", "", "", a.createdAt, a.contentType, a.category, a.download].map(csvCell).join(","));
    return c.body(`${lines.join("\r\n")}\r\n`, 200, { "content-type": "text/csv; charset=utf-8", "content-disposition": `attachment; filename="dsr-${row.id}.csv"` });
  },
);
