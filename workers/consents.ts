/**
 * The consent log: append grants and withdrawals, read a subject's current
 * state and history, export as CSV or JSON. There is no update or delete
 * endpoint, and D1 triggers abort any UPDATE or DELETE of the table.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { newId } from "../lib/ids";
import { csvRow } from "../lib/consent/csv";
import { birthDateFromAge, birthDateProblem } from "../lib/consent/minors";
import { API_CONSENT_METHODS, CONSENT_METHODS, CONSENT_PURPOSES, CONSENT_STATUSES, stateOf, type ConsentPurpose, type PurposeState } from "../lib/consent/purposes";
import { auditStatement, keyAudit } from "./support/audit";
import { requireApiKey, requireScope } from "./support/auth";
import {
  consentColumns,
  consentInsert,
  isMinorWithoutAuthorization,
  latestEntries,
  latestEntry,
  loadConsentTenant,
  noticePurposes,
  openEvidenceIp,
  purgeVoiceModels,
  sealEvidenceIp,
  subjectOf,
  type ConsentRow,
  type ConsentTenant,
  type NoticeRow,
} from "./support/consent-store";
import type { AppEnv } from "./support/context";
import { ApiError } from "./support/errors";
import { bearerSecurity, createRouter, errorResponses } from "./support/router";

export const consents = createRouter();
consents.use("*", requireApiKey);

const MAX_EXPIRY_MS = 10 * 366 * 24 * 60 * 60 * 1000;

const ConsentEntrySchema = z
  .object({
    id: z.string(),
    subjectHash: z.string().openapi({ description: "Keyed hash of the normalised subject address (the address itself is never stored)" }),
    purpose: z.enum(CONSENT_PURPOSES),
    status: z.enum(CONSENT_STATUSES),
    method: z.enum(CONSENT_METHODS),
    noticeId: z.string().nullable(),
    evidence: z.object({ messageId: z.string().nullable(), ip: z.string().nullable(), channelId: z.string().nullable() }),
    expiresAt: z.string().nullable(),
    actor: z.object({ type: z.enum(["api_key", "channel"]), id: z.string().nullable() }),
    createdAt: z.string(),
  })
  .openapi("ConsentEntry");

const PurposeStateSchema = z
  .object({
    purpose: z.enum(CONSENT_PURPOSES),
    state: z.enum(["none", "granted", "expired", "withdrawn"]),
    since: z.string().nullable(),
    expiresAt: z.string().nullable(),
    entryId: z.string().nullable(),
    noticeId: z.string().nullable(),
  })
  .openapi("ConsentState");

const iso = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

async function entryView(c: Context<AppEnv>, row: ConsentRow): Promise<z.infer<typeof ConsentEntrySchema>> {
  return {
    id: row.id,
    subjectHash: row.subject_hash,
    purpose: row.purpose,
    status: row.status,
    method: row.method,
    noticeId: row.notice_id,
    evidence: { messageId: row.evidence_message_id, ip: await openEvidenceIp(c.env, row.id, row.evidence_ip), channelId: row.channel_id },
    expiresAt: iso(row.expires_at),
    actor: { type: row.actor_type, id: row.actor_id },
    createdAt: iso(row.created_at) ?? "",
  };
}

function stateView(purpose: ConsentPurpose, state: PurposeState, entry: { id: string; noticeId: string | null } | undefined): z.infer<typeof PurposeStateSchema> {
  return {
    purpose,
    state: state.state,
    since: state.state === "none" ? null : iso(state.since),
    expiresAt: state.state === "granted" || state.state === "expired" ? iso(state.expiresAt) : null,
    entryId: entry?.id ?? null,
    noticeId: entry?.noticeId ?? null,
  };
}

const issue = (path: string, message: string) => new ApiError(400, "validation_error", "request is invalid", [{ path, message }]);

const CreateConsentBody = z
  .object({
    subject: z.string().min(1).max(320).openapi({ description: "Phone (E.164), e-mail or channel address of the person; normalised and hashed, never stored" }),
    purpose: z.enum(CONSENT_PURPOSES),
    status: z.enum(CONSENT_STATUSES),
    method: z.enum(API_CONSENT_METHODS).openapi({ description: "channel_keyword entries are written only by the channels themselves" }),
    noticeId: z.string().max(64).optional().openapi({ description: "Required for grants: the notice version shown. Withdrawals default to the notice of the grant they withdraw." }),
    evidence: z
      .object({
        messageId: z.string().min(1).max(256).optional(),
        ip: z.union([z.ipv4(), z.ipv6()]).optional().openapi({ description: "Required for web_form and banner; stored encrypted" }),
      })
      .strict()
      .optional(),
    expiresAt: z.iso.datetime({ offset: true }).optional().openapi({ description: "End of a time-bound grant (required for voice_clone)" }),
    birthDate: z.iso.date().optional().openapi({ description: "The subject's birth date (minimum-age rule)" }),
    age: z.number().int().min(0).max(130).optional().openapi({ description: "The subject's declared age, when the birth date is unknown" }),
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.status === "granted" && !body.noticeId) ctx.addIssue({ code: "custom", path: ["noticeId"], message: "a grant must name the notice it was given on" });
    if ((body.method === "web_form" || body.method === "banner") && !body.evidence?.ip) {
      ctx.addIssue({ code: "custom", path: ["evidence", "ip"], message: "required for web forms and banners" });
    }
    if (body.status === "withdrawn" && body.expiresAt) ctx.addIssue({ code: "custom", path: ["expiresAt"], message: "only grants expire" });
    if (body.purpose === "voice_clone" && body.status === "granted" && !body.expiresAt) {
      ctx.addIssue({ code: "custom", path: ["expiresAt"], message: "voice cloning consent needs a duration" });
    }
    if (body.birthDate !== undefined && body.age !== undefined) ctx.addIssue({ code: "custom", path: ["age"], message: "give birthDate or age, not both" });
  });

consents.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Consent"],
    summary: "Append a grant or a withdrawal to the consent log",
    description:
      "The log is append-only: withdrawing is a new entry. Withdrawing `voice_clone` deletes the subject's voice models and their source audio. `birthDate` or `age` records the subject's age for the minimum-age rule.",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: CreateConsentBody } } } },
    responses: {
      201: {
        description: "Appended",
        content: { "application/json": { schema: z.object({ entry: ConsentEntrySchema, current: PurposeStateSchema, voiceModelsDeleted: z.number().int() }) } },
      },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const body = c.req.valid("json");
    const now = Date.now();
    const tenant = await loadConsentTenant(c.env, auth.tenantId);
    const subject = await subjectOf(tenant, body.subject);
    if (!subject) throw issue("subject", "not a usable address");
    let expiresAt: number | null = null;
    if (body.expiresAt) {
      expiresAt = Date.parse(body.expiresAt);
      if (expiresAt <= now) throw issue("expiresAt", "must be in the future");
      if (expiresAt - now > MAX_EXPIRY_MS) throw issue("expiresAt", "must be within 10 years");
    }
    let birthDate: { value: string; source: "birth_date" | "declared_age" } | null = null;
    if (body.birthDate !== undefined) {
      const problem = birthDateProblem(body.birthDate, now);
      if (problem) throw issue("birthDate", problem);
      birthDate = { value: body.birthDate, source: "birth_date" };
    } else if (body.age !== undefined) {
      birthDate = { value: birthDateFromAge(body.age, now), source: "declared_age" };
    }

    let noticeId = body.noticeId ?? null;
    if (noticeId) {
      const notice = await c.env.DB.prepare("SELECT * FROM notices WHERE id = ? AND tenant_id = ?").bind(noticeId, auth.tenantId).first<NoticeRow>();
      if (!notice) throw issue("noticeId", "no such notice");
      if (!noticePurposes(notice).includes(body.purpose)) throw issue("noticeId", `the notice does not cover ${body.purpose}`);
      if (body.status === "granted" && notice.kind !== "consent") throw issue("noticeId", "a grant must reference a consent notice");
    } else {
      noticeId = (await latestEntry(c.env, auth.tenantId, subject.subjectHash, body.purpose))?.noticeId ?? null;
    }

    const id = newId("cns", now);
    const row: ConsentRow = {
      seq: 0,
      id,
      tenant_id: auth.tenantId,
      subject_hash: subject.subjectHash,
      purpose: body.purpose,
      status: body.status,
      method: body.method,
      notice_id: noticeId,
      evidence_message_id: body.evidence?.messageId ?? null,
      evidence_ip: body.evidence?.ip ? await sealEvidenceIp(c.env, id, body.evidence.ip) : null,
      channel_id: null,
      expires_at: expiresAt,
      actor_type: "api_key",
      actor_id: auth.keyId,
      created_at: now,
    };
    const statements: D1PreparedStatement[] = [];
    if (birthDate) {
      statements.push(
        c.env.DB.prepare(
          `INSERT INTO subject_profiles (tenant_id, subject_hash, birth_date, birth_date_source, updated_at) VALUES (?, ?, ?, ?, ?)
           ON CONFLICT(tenant_id, subject_hash) DO UPDATE SET birth_date = excluded.birth_date, birth_date_source = excluded.birth_date_source, updated_at = excluded.updated_at`,
        ).bind(auth.tenantId, subject.subjectHash, birthDate.value, birthDate.source, now),
      );
    }
    statements.push(...consentInsert(c.env.DB, row));
    statements.push(
      auditStatement(
        c.env.DB,
        keyAudit(auth, `consent.${body.status}`, "consent", id, { purpose: body.purpose, method: body.method, ageRecorded: birthDate !== null }),
      ),
    );
    const revokesVoice = body.purpose === "voice_clone" && body.status === "withdrawn";
    if (revokesVoice) {
      // Scheduled in the same step as the withdrawal: an interrupted purge is resumed by the next read of voice models.
      statements.push(c.env.DB.prepare("UPDATE voice_models SET status = 'deleting' WHERE tenant_id = ? AND subject_hash = ?").bind(auth.tenantId, subject.subjectHash));
    }
    await c.env.DB.batch(statements);
    const voiceModelsDeleted = revokesVoice
      ? await purgeVoiceModels(c.env, auth.tenantId, { subjectHash: subject.subjectHash, reason: "consent_withdrawn" }, { actorType: "api_key", actorId: auth.keyId })
      : 0;
    const stored = await c.env.DB.prepare(`SELECT ${consentColumns("c")} FROM consents c WHERE c.id = ?`).bind(id).first<ConsentRow>();
    const entry = await entryView(c, stored ?? { ...row });
    const state = stateOf({ purpose: row.purpose, status: row.status, createdAt: row.created_at, expiresAt: row.expires_at }, Date.now());
    return c.json({ entry, current: stateView(row.purpose, state, { id, noticeId }), voiceModelsDeleted }, 201);
  },
);

const SubjectQuery = z.object({
  subject: z.string().min(1).max(320).optional().openapi({ description: "The person's address (normalised and hashed for the lookup)" }),
  subjectHash: z
    .string()
    .regex(/^[0-9a-f]{64}$/, "64 lower-case hex characters")
    .optional()
    .openapi({ description: "Or the keyed subject hash, as shown on consent entries and conversations" }),
});

async function resolveSubject(tenant: ConsentTenant, query: z.infer<typeof SubjectQuery>, required: boolean): Promise<string | null> {
  if (query.subject !== undefined && query.subjectHash !== undefined) throw issue("subjectHash", "give subject or subjectHash, not both");
  if (query.subjectHash !== undefined) return query.subjectHash;
  if (query.subject !== undefined) {
    const subject = await subjectOf(tenant, query.subject);
    if (!subject) throw issue("subject", "not a usable address");
    return subject.subjectHash;
  }
  if (required) throw issue("subject", "subject or subjectHash is required");
  return null;
}

consents.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Consent"],
    summary: "A subject's current consent per purpose and its full history (newest first)",
    security: bearerSecurity,
    request: {
      query: SubjectQuery.extend({
        limit: z.coerce.number().int().min(1).max(1000).default(200),
        before: z.coerce.number().int().min(1).optional().openapi({ description: "History cursor (nextCursor of the previous page)" }),
      }),
    },
    responses: {
      200: {
        description: "State and history",
        content: {
          "application/json": {
            schema: z.object({
              subjectHash: z.string(),
              current: z.array(PurposeStateSchema),
              minorWithoutAuthorization: z.boolean(),
              history: z.array(ConsentEntrySchema),
              nextCursor: z.string().nullable(),
            }),
          },
        },
      },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:read");
    const query = c.req.valid("query");
    const tenant = await loadConsentTenant(c.env, auth.tenantId);
    const subjectHash = (await resolveSubject(tenant, query, true)) ?? "";
    const now = Date.now();
    const latest = (await latestEntries(c.env, auth.tenantId, [subjectHash], CONSENT_PURPOSES)).get(subjectHash);
    const current = CONSENT_PURPOSES.map((purpose) => {
      const entry = latest?.get(purpose);
      return stateView(purpose, stateOf(entry, now), entry);
    });
    const { results } = await c.env.DB.prepare(
      `SELECT ${consentColumns("c")} FROM consents c WHERE c.tenant_id = ? AND c.subject_hash = ? ${query.before ? "AND c.seq < ?" : ""} ORDER BY c.seq DESC LIMIT ?`,
    )
      .bind(...(query.before ? [auth.tenantId, subjectHash, query.before, query.limit + 1] : [auth.tenantId, subjectHash, query.limit + 1]))
      .all<ConsentRow>();
    const page = results.slice(0, query.limit);
    const last = page[page.length - 1];
    return c.json(
      {
        subjectHash,
        current,
        minorWithoutAuthorization: await isMinorWithoutAuthorization(c.env, auth.tenantId, subjectHash),
        history: await Promise.all(page.map((row) => entryView(c, row))),
        nextCursor: results.length > query.limit && last ? String(last.seq) : null,
      },
      200,
    );
  },
);

const EXPORT_COLUMNS = [
  "id",
  "created_at",
  "subject_hash",
  "purpose",
  "status",
  "method",
  "notice_id",
  "notice_key",
  "notice_version",
  "notice_sha256",
  "evidence_message_id",
  "evidence_ip",
  "channel_id",
  "expires_at",
  "actor_type",
  "actor_id",
] as const;
const EXPORT_PAGE = 500;

type ExportRow = ConsentRow & { notice_key: string | null; notice_version: number | null; notice_sha256: string | null };

consents.openapi(
  createRoute({
    method: "get",
    path: "/export",
    tags: ["Consent"],
    summary: "Export the consent log (CSV or JSON), optionally for one subject",
    description: "Streams every entry in log order with its notice version and SHA-256; evidence IPs are decrypted. Audited.",
    security: bearerSecurity,
    request: {
      query: SubjectQuery.extend({
        format: z.enum(["csv", "json"]).default("json"),
        purpose: z.enum(CONSENT_PURPOSES).optional(),
      }),
    },
    responses: {
      200: {
        description: "The log",
        content: {
          "application/json": { schema: z.object({ data: z.array(z.record(z.string(), z.union([z.string(), z.number(), z.null()]))) }) },
          "text/csv": { schema: z.string() },
        },
      },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:read");
    const query = c.req.valid("query");
    const tenant = await loadConsentTenant(c.env, auth.tenantId);
    const subjectHash = await resolveSubject(tenant, query, false);
    await auditStatement(
      c.env.DB,
      keyAudit(auth, "consent.exported", "consent_log", auth.tenantId, { format: query.format, bySubject: subjectHash !== null, byPurpose: query.purpose ?? null }),
    ).run();
    const env = c.env;
    const clauses = ["c.tenant_id = ?", "c.seq > ?"];
    const filters: string[] = [];
    if (subjectHash) {
      clauses.push("c.subject_hash = ?");
      filters.push(subjectHash);
    }
    if (query.purpose) {
      clauses.push("c.purpose = ?");
      filters.push(query.purpose);
    }
    const sql = `SELECT ${consentColumns("c")}, n.key AS notice_key, n.version AS notice_version, n.sha256 AS notice_sha256
                 FROM consents c LEFT JOIN notices n ON n.id = c.notice_id
                 WHERE ${clauses.join(" AND ")} ORDER BY c.seq LIMIT ${EXPORT_PAGE}`;
    const csv = query.format === "csv";
    const encoder = new TextEncoder();
    let after = 0;
    let first = true;
    let done = false;
    // Pages of 500 entries are read as the client consumes the stream: the log is never held in memory.
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(encoder.encode(csv ? csvRow(EXPORT_COLUMNS) : '{"data":['));
      },
      async pull(controller) {
        if (done) return;
        const { results } = await env.DB.prepare(sql)
          .bind(auth.tenantId, after, ...filters)
          .all<ExportRow>();
        let chunk = "";
        for (const row of results) {
          const record: Record<(typeof EXPORT_COLUMNS)[number], string | number | null> = {
            id: row.id,
            created_at: new Date(row.created_at).toISOString(),
            subject_hash: row.subject_hash,
            purpose: row.purpose,
            status: row.status,
            method: row.method,
            notice_id: row.notice_id,
            notice_key: row.notice_key,
            notice_version: row.notice_version,
            notice_sha256: row.notice_sha256,
            evidence_message_id: row.evidence_message_id,
            evidence_ip: await openEvidenceIp(env, row.id, row.evidence_ip),
            channel_id: row.channel_id,
            expires_at: iso(row.expires_at),
            actor_type: row.actor_type,
            actor_id: row.actor_id,
          };
          if (csv) chunk += csvRow(EXPORT_COLUMNS.map((col) => record[col]));
          else {
            chunk += (first ? "" : ",") + JSON.stringify(record);
            first = false;
          }
          after = row.seq;
        }
        if (results.length < EXPORT_PAGE) {
          done = true;
          if (!csv) chunk += "]}";
        }
        if (chunk) controller.enqueue(encoder.encode(chunk));
        if (done) controller.close();
      },
    });
    const stamp = new Date().toISOString().slice(0, 10);
    return new Response(stream, {
      status: 200,
      headers: {
        "content-type": csv ? "text/csv; charset=utf-8" : "application/json; charset=utf-8",
        "content-disposition": `attachment; filename="consents-${stamp}.${csv ? "csv" : "json"}"`,
        "cache-control": "no-store",
      },
    });
  },
);
