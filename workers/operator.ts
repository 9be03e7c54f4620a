/**
 * Operator endpoints (platform admin key only): MASTER_KEY rotation and the
 * platform audit chain.
 *
 * Rotation: deploy the new key as MASTER_KEY and the old one as
 * MASTER_KEY_PREVIOUS (everything keeps opening: envelopes name their key),
 * then call `POST /v1/operator/rotate-master-key` until it answers
 * `done: true` with `remaining: 0`, then delete MASTER_KEY_PREVIOUS. Only
 * D1 envelopes are re-wrapped (same plaintext, same binding, new key);
 * R2 objects are never rewritten: files are encrypted under per-object data
 * keys wrapped by subject keys or by the recording's data key envelope in D1.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { DecryptionError } from "../lib/crypto";
import { auditStatement, sealAuditChain, verifyAuditChain } from "./support/audit";
import { ChainVerificationSchema } from "./audit";
import { requirePlatformKey } from "./support/auth";
import { CRON_EXPRESSIONS, runCron } from "./cron";
import { ApiError, notFound } from "./support/errors";
import { channelSecretsBinding, masterKeyring, previousMasterKeyring, rewrapUnderCurrentMasterKey, tenantHashKeyBinding } from "./support/keyring";
import { bearerSecurity, createRouter, decodeCursor, encodeCursor, errorResponses } from "./support/router";
import { subjectKeyBinding } from "./support/subject-keys";

export const operator = createRouter();
operator.use("*", requirePlatformKey);

/** A D1 column holding envelopes sealed under MASTER_KEY, and the associated data each is bound to. */
interface WrappedColumn {
  /** Stable name reported in results. */
  name: string;
  table: string;
  column: string;
  /** Extra columns the binding needs. */
  extra: readonly string[];
  binding(row: Record<string, unknown>): string;
}

const str = (value: unknown): string => (typeof value === "string" ? value : String(value));

/**
 * Every MASTER_KEY envelope in D1, in rotation order. The bindings must match
 * the modules that seal them: subject-keys.ts, keyring.ts, recordings.ts
 * (`object-key:<object key>`), dsr.ts (`dsr-subject:<id>`) and consent-store.ts
 * (`consent-ip:<consent id>`).
 */
export const WRAPPED_COLUMNS: readonly WrappedColumn[] = [
  { name: "subject_keys", table: "subject_keys", column: "wrapped_key", extra: ["tenant_id", "subject_hash"], binding: (r) => subjectKeyBinding(str(r.tenant_id), str(r.subject_hash), str(r.id)) },
  { name: "tenant_hash_keys", table: "tenants", column: "hash_key", extra: [], binding: (r) => tenantHashKeyBinding(str(r.id)) },
  { name: "channel_secrets", table: "channels", column: "secrets", extra: [], binding: (r) => channelSecretsBinding(str(r.id)) },
  { name: "recording_data_keys", table: "recordings", column: "data_key", extra: ["object_key"], binding: (r) => `object-key:${str(r.object_key)}` },
  { name: "voice_model_data_keys", table: "voice_models", column: "data_key", extra: ["object_key"], binding: (r) => `object-key:${str(r.object_key)}` },
  { name: "dsr_subjects", table: "dsr_requests", column: "subject_sealed", extra: [], binding: (r) => `dsr-subject:${str(r.id)}` },
  { name: "consent_evidence_ips", table: "consent_evidence", column: "ip", extra: [], binding: (r) => `consent-ip:${str(r.id)}` },
];

/** `<column> LIKE 'v1.%' AND <column> NOT LIKE 'v1.<current>.%'`: envelopes under any other key. */
const staleClause = (column: string) => `${column} LIKE 'v1.%' AND ${column} NOT LIKE ?`;

/**
 * Evidence IPs still only in the append-only consent log (its triggers refuse UPDATE), under
 * another key. Migration 0005 copied every one into `consent_evidence`, so this stays 0 unless
 * rows were written there by an older version afterwards.
 */
const NOT_ROTATABLE_SQL = `SELECT COUNT(*) AS n FROM consents c WHERE ${staleClause("c.evidence_ip")} AND NOT EXISTS (SELECT 1 FROM consent_evidence e WHERE e.id = c.id)`;

async function staleCounts(db: D1Database, currentKeyId: string): Promise<{ byTable: Record<string, number>; notRotatable: number }> {
  const like = `v1.${currentKeyId}.%`;
  const statements = [
    ...WRAPPED_COLUMNS.map((w) => db.prepare(`SELECT COUNT(*) AS n FROM ${w.table} WHERE ${staleClause(w.column)}`).bind(like)),
    db.prepare(NOT_ROTATABLE_SQL).bind(like),
  ];
  const results = await db.batch<{ n: number }>(statements);
  const byTable: Record<string, number> = {};
  WRAPPED_COLUMNS.forEach((w, i) => {
    byTable[w.name] = results[i]?.results[0]?.n ?? 0;
  });
  return { byTable, notRotatable: results[WRAPPED_COLUMNS.length]?.results[0]?.n ?? 0 };
}

const RotateBody = z
  .object({
    cursor: z.string().max(512).optional().openapi({ description: "`cursor` of the previous answer; omit to start a pass" }),
    limit: z.number().int().min(1).max(500).default(100).openapi({ description: "Envelopes re-wrapped by this call" }),
  })
  .strict();

const cursorSchema = z.object({ t: z.number().int().min(0).max(WRAPPED_COLUMNS.length), id: z.string().max(128) });

const RotationSchema = z
  .object({
    keyId: z.string().openapi({ description: "Id of the current MASTER_KEY (every re-wrapped envelope names it)" }),
    previousKeyId: z.string().nullable(),
    rotated: z.number().int(),
    failed: z.array(z.object({ table: z.string(), id: z.string(), reason: z.string() })),
    remaining: z.number().int().openapi({ description: "Envelopes in D1 still sealed under another key (including failures)" }),
    remainingByTable: z.record(z.string(), z.number().int()),
    notRotatable: z
      .object({ consentEvidenceIps: z.number().int() })
      .openapi({
        description:
          "Consent-evidence IPs under another key that exist only in the append-only consent log (written by a version before `consent_evidence`, after its migration): they stay readable only while their key is MASTER_KEY_PREVIOUS. 0 in normal operation.",
      }),
    cursor: z.string().nullable().openapi({ description: "Pass it back to continue; null when this pass is complete" }),
    done: z.boolean().openapi({ description: "True when the pass is complete and nothing remains under another key" }),
  })
  .openapi("MasterKeyRotation");

operator.openapi(
  createRoute({
    method: "post",
    path: "/rotate-master-key",
    tags: ["Operator"],
    summary: "Re-wrap D1 secrets under the current MASTER_KEY, in batches",
    description:
      "Re-seals subject keys, tenant hash keys, channel secrets, recording and voice-model data keys, DSR subjects and consent-evidence IPs that are sealed under MASTER_KEY_PREVIOUS. Call repeatedly with the returned cursor until `cursor` is null; R2 objects are not touched. Audited (`master_key.rotated`).",
    security: bearerSecurity,
    request: { body: { required: false, content: { "application/json": { schema: RotateBody } } } },
    responses: { 200: { description: "One batch", content: { "application/json": { schema: RotationSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const body = RotateBody.parse(c.req.valid("json") ?? {});
    const current = await masterKeyring(c.env);
    const previous = await previousMasterKeyring(c.env);
    const start = body.cursor ? decodeCursor(body.cursor, cursorSchema) : { t: 0, id: "" };
    const like = `v1.${current.keyId}.%`;
    const failed: { table: string; id: string; reason: string }[] = [];
    const updates: D1PreparedStatement[] = [];
    let budget = body.limit;
    let t = start.t;
    let after = start.id;
    while (t < WRAPPED_COLUMNS.length && budget > 0) {
      const w = WRAPPED_COLUMNS[t];
      if (!w) break;
      const { results } = await c.env.DB.prepare(
        `SELECT id, ${w.column} AS envelope${w.extra.map((e) => `, ${e}`).join("")} FROM ${w.table} WHERE id > ? AND ${staleClause(w.column)} ORDER BY id LIMIT ?`,
      )
        .bind(after, like, budget)
        .all<Record<string, unknown>>();
      for (const row of results) {
        const id = str(row.id);
        const envelope = str(row.envelope);
        after = id;
        budget--;
        try {
          const rewrapped = await rewrapUnderCurrentMasterKey(c.env, envelope, w.binding(row));
          // Compare-and-swap: a row changed meanwhile (a secret rotated, a key destroyed) is left as it now is.
          if (rewrapped) updates.push(c.env.DB.prepare(`UPDATE ${w.table} SET ${w.column} = ? WHERE id = ? AND ${w.column} = ?`).bind(rewrapped, id, envelope));
        } catch (err) {
          if (err instanceof DecryptionError) failed.push({ table: w.name, id, reason: "does_not_authenticate" });
          else if (err instanceof ApiError && err.code === "misconfigured") failed.push({ table: w.name, id, reason: "unknown_master_key" });
          else throw err;
        }
      }
      if (budget > 0) {
        // This table is exhausted: the next one starts from its first id.
        t++;
        after = "";
      }
    }
    let rotated = 0;
    if (updates.length > 0) {
      const results = await c.env.DB.batch(updates);
      rotated = results.reduce((n, r) => n + (r.meta.changes ?? 0), 0);
    }
    const counts = await staleCounts(c.env.DB, current.keyId);
    const remaining = Object.values(counts.byTable).reduce((a, b) => a + b, 0);
    const cursor = t < WRAPPED_COLUMNS.length ? encodeCursor({ t, id: after }) : null;
    await auditStatement(c.env.DB, {
      tenantId: null,
      actorType: "platform",
      actorId: null,
      action: "master_key.rotated",
      targetType: "master_key",
      targetId: current.keyId,
      detail: { previousKeyId: previous?.keyId ?? null, rotated, failed: failed.length, remaining, complete: cursor === null },
    }).run();
    return c.json(
      {
        keyId: current.keyId,
        previousKeyId: previous?.keyId ?? null,
        rotated,
        failed,
        remaining,
        remainingByTable: counts.byTable,
        notRotatable: { consentEvidenceIps: counts.notRotatable },
        cursor,
        done: cursor === null && remaining === 0,
      },
      200,
    );
  },
);

operator.openapi(
  createRoute({
    method: "get",
    path: "/audit/verify",
    tags: ["Operator"],
    summary: "Verify the platform audit chain (entries without a tenant: operator actions)",
    security: bearerSecurity,
    responses: { 200: { description: "The verification", content: { "application/json": { schema: ChainVerificationSchema } } }, ...errorResponses },
  }),
  async (c) => {
    await sealAuditChain(c.env.DB, null);
    return c.json(await verifyAuditChain(c.env.DB, null), 200);
  },
);

operator.openapi(
  createRoute({
    method: "post",
    path: "/scheduled",
    tags: ["Operator"],
    summary: "Local development only: run a cron job now, as if it were scheduled at `time`",
    description:
      "Answers 404 unless the Worker runs with `DEV_SCHEDULED_ENDPOINT=true` (set by `npm start` in .dev.vars; never in production). " +
      "wrangler 4.86's `/cdn-cgi/handler/scheduled` cannot reach a Worker that has static assets (cloudflare/workers-sdk#9882); this runs the same jobs and returns their report.",
    security: bearerSecurity,
    request: {
      body: {
        content: {
          "application/json": {
            schema: z
              .object({
                cron: z.enum(CRON_EXPRESSIONS as [string, ...string[]]).openapi({ description: "One of the cron expressions in wrangler.toml" }),
                time: z.number().int().min(0).max(8.64e15).optional().openapi({ description: "The scheduled time (Unix ms) the job takes as now; default now" }),
              })
              .strict(),
          },
        },
        required: true,
      },
    },
    responses: { 200: { description: "The job's report", content: { "application/json": { schema: z.object({ cron: z.string(), time: z.number(), report: z.unknown() }) } } }, ...errorResponses },
  }),
  async (c) => {
    if (c.env.DEV_SCHEDULED_ENDPOINT !== "true") throw notFound("route");
    const { cron, time = Date.now() } = c.req.valid("json");
    return c.json({ cron, time, report: await runCron(c.env, cron, time) }, 200);
  },
);
