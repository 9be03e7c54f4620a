/**
 * Encrypted tenant backups (DESIGN.md: the `backups` retention row, rules 7 and 8).
 *
 * - `runNightlyBackups` (cron `30 2 * * *`) writes one object per tenant to R2:
 *   the tenant's control-plane rows (lib/backup-tables.ts says which tables and
 *   why the others are left out) and every conversation object's snapshot
 *   (message bodies still sealed under their subject keys), as gzip'd JSON
 *   lines encrypted with a fresh AES-256-GCM data key wrapped by MASTER_KEY
 *   (lib/backup-format.ts). Rows and conversations are streamed page by page
 *   into a multipart upload: memory stays bounded whatever the tenant's size.
 *   Tenants are walked in id order from a cursor in `sweep_state`
 *   (`backup:<YYYY-MM-DD>`), within a per-run budget; a run that stops early is
 *   continued by the 03:00 expiry run.
 * - `runBackupExpirySweep` (cron `0 3 * * *`) deletes backups older than 30
 *   days (by the event's scheduledTime) — object, row, and a deletion-log entry
 *   each (category `backups`, reason `retention_expired`).
 * - Operator API at `/v1/operator/backups`: list, take one now, restore.
 *   A restore first authenticates and validates the whole object (a tampered
 *   or truncated object is refused with 409 before anything is written), then
 *   fills in what the tenant lost without rolling back any decision taken since
 *   (see lib/backup-tables.ts), skips everything the deletion log says was
 *   deleted, imports missing conversation objects, and finally re-applies the
 *   deletion log to what it wrote (without new log entries), so a deletion
 *   that raced with the restore still wins.
 *
 * R2 keys (`backups/<tenantId>/<ISO time>/<backupId>`) and custom metadata
 * (format, cipher, master key id) hold no personal identifiers.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { BackupIntegrityError, BackupKeyUnavailableError, ByteQueue, backupObjectMetadata, openRecords, sealRecords } from "../lib/backup-format";
import {
  BACKUP_TABLES,
  backupRecord,
  DeletionIndex,
  judgeRow,
  primaryKeyColumns,
  tableColumns,
  tableSpec,
  type BackupRecord,
  type BackupTableSpec,
  type ConversationRecord,
  type Scalar,
} from "../lib/backup-tables";
import { newId } from "../lib/ids";
import { DAY_MS, RETENTION_RULES } from "../lib/retention";
import type { ConversationSnapshot } from "../durable-objects/conversation";
import { auditStatement, type AuditEntry } from "./support/audit";
import { requirePlatformKey } from "./support/auth";
import { eraseConversation, type DeletionReason } from "./support/erasure";
import { ApiError, conflict, notFound } from "./support/errors";
import { conversationStub } from "./support/ingest";
import { masterKeyring, previousMasterKeyring } from "./support/keyring";
import { bearerSecurity, createRouter, decodeCursor, encodeCursor, errorResponses } from "./support/router";

/** Backups are kept this long (fixed by the retention policy), then deleted for good. */
export const BACKUP_RETENTION_DAYS = RETENTION_RULES.backups.defaultDays;
/** R2 multipart part size: every part but the last has exactly this size (an R2 rule). */
const PART_SIZE = 8 * 1024 * 1024;
const TABLE_PAGE = 500;
const CONVERSATION_PAGE = 50;
/** Conversation objects exported / imported in parallel (Workers allow 6 open connections). */
const CONCURRENCY = 6;
/** Rows per D1 batch (one statement each) when restoring. */
const RESTORE_BATCH = 50;
/** Deletion-log entries older than the backup by more than this cannot concern its content (see loadDeletions). */
const DELETION_WINDOW_MS = 7 * DAY_MS;
const NIGHTLY_DONE = "~done";

export interface NightlyLimits {
  /** Tenants backed up by one run at most. */
  maxTenants: number;
  /** Wall-clock budget of one run; no new tenant is started after it. */
  budgetMs: number;
}
const NIGHTLY_DEFAULTS: NightlyLimits = { maxTenants: 200, budgetMs: 10 * 60_000 };

export interface ExpiryLimits {
  batchSize: number;
  maxDeleted: number;
  budgetMs: number;
}
const EXPIRY_DEFAULTS: ExpiryLimits = { batchSize: 100, maxDeleted: 5000, budgetMs: 5 * 60_000 };

/** Tuning knobs of one backup (tests use small parts and frames to exercise multipart uploads). */
export interface BackupOptions {
  partSize?: number;
  frameSize?: number;
}

/** A backups row as stored. */
interface BackupRow {
  id: string;
  tenant_id: string;
  r2_key: string;
  size: number;
  created_at: number;
  expires_at: number;
}

/** What one backup holds. */
export interface BackupSummary {
  id: string;
  tenantId: string;
  size: number;
  createdAt: number;
  expiresAt: number;
  rows: number;
  conversations: number;
}

type Actor = Pick<AuditEntry, "actorType" | "actorId">;

const quote = (name: string) => `"${name}"`;
const columnList = (columns: readonly string[]) => columns.map(quote).join(", ");
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** Runs `fn` over `items` with at most `limit` calls in flight, keeping the order of results. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The master key a backup names in its header: MASTER_KEY, or MASTER_KEY_PREVIOUS during a rotation. */
async function masterKeyById(env: Env, keyId: string): Promise<CryptoKey | null> {
  const current = await masterKeyring(env);
  if (current.keyId === keyId) return current.key;
  const previous = await previousMasterKeyring(env);
  return previous?.keyId === keyId ? previous.key : null;
}

// ---------------------------------------------------------------- capture

const CONVERSATIONS = BACKUP_TABLES.find((t) => t.mode === "conversation") as BackupTableSpec;

function scopeClause(spec: BackupTableSpec): string {
  switch (spec.scope) {
    case "id":
      return `"id" = ?1`;
    case "tenant_id":
      return `"tenant_id" = ?1`;
    case "campaign":
      return `"campaign_id" IN (SELECT id FROM campaigns WHERE tenant_id = ?1)`;
  }
}

/** Primary-key columns a table is paged by (the tenant column is fixed by the scope). */
function keysetColumns(spec: BackupTableSpec): string[] {
  const fixed = spec.scope === "id" ? "id" : spec.scope === "tenant_id" ? "tenant_id" : null;
  return primaryKeyColumns(spec).filter((c) => c !== fixed);
}

/** A tenant's rows of one table, page by page in primary-key order. */
async function* tableRows(env: Env, spec: BackupTableSpec, columns: string[], tenantId: string): AsyncGenerator<Record<string, Scalar>> {
  const keys = keysetColumns(spec);
  const select = `SELECT ${columnList(columns)} FROM ${quote(spec.name)} WHERE ${scopeClause(spec)}`;
  if (keys.length === 0) {
    const { results } = await env.DB.prepare(select).bind(tenantId).all<Record<string, Scalar>>();
    yield* results;
    return;
  }
  const order = columnList(keys);
  let after: Scalar[] | null = null;
  for (;;) {
    const bound: Scalar[] = [tenantId];
    let sql = select;
    if (after) {
      sql += ` AND (${order}) > (${keys.map((_, i) => `?${i + 2}`).join(", ")})`;
      bound.push(...after);
    }
    sql += ` ORDER BY ${order} LIMIT ${TABLE_PAGE}`;
    const { results } = await env.DB.prepare(sql)
      .bind(...bound)
      .all<Record<string, Scalar>>();
    yield* results;
    const last = results[results.length - 1];
    if (!last || results.length < TABLE_PAGE) return;
    after = keys.map((k) => last[k] ?? null);
  }
}

interface CaptureStats {
  rows: number;
  conversations: number;
}

/** The records of a tenant backup, produced lazily (one table page / conversation page in memory at a time). */
async function* captureRecords(env: Env, tenantId: string, backupId: string, createdAt: number, stats: CaptureStats): AsyncGenerator<BackupRecord> {
  yield { t: "header", format: "parley-tenant-backup", version: 1, tenantId, backupId, createdAt, capturedAt: Date.now() };
  for (const spec of BACKUP_TABLES) {
    if (spec.mode === "conversation") continue;
    const columns = tableColumns(spec);
    yield { t: "table", table: spec.name, columns };
    for await (const row of tableRows(env, spec, columns, tenantId)) {
      stats.rows += 1;
      yield { t: "row", v: columns.map((c) => row[c] ?? null) };
    }
  }
  const columns = tableColumns(CONVERSATIONS);
  let after = "";
  for (;;) {
    const { results } = await env.DB.prepare(`SELECT ${columnList(columns)} FROM conversations WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`)
      .bind(tenantId, after, CONVERSATION_PAGE)
      .all<Record<string, Scalar>>();
    // A few snapshots in memory at a time: each is written out before the next group is exported.
    for (let start = 0; start < results.length; start += CONCURRENCY) {
      const group = results.slice(start, start + CONCURRENCY);
      const snapshots = await Promise.all(group.map(async (row) => (await conversationStub(env, String(row.id)).exportSnapshot()) as ConversationSnapshot | null));
      for (const [i, index] of group.entries()) {
        const snapshot = snapshots[i];
        snapshots[i] = null;
        // An index row whose object holds nothing (or someone else's data) has nothing to back up.
        if (!snapshot || snapshot.meta.conversation_id !== index.id || snapshot.meta.tenant_id !== tenantId) continue;
        stats.conversations += 1;
        yield { t: "conversation", id: String(index.id), index, snapshot };
      }
    }
    const last = results[results.length - 1];
    if (!last || results.length < CONVERSATION_PAGE) break;
    after = String(last.id);
  }
  yield { t: "end", rows: stats.rows, conversations: stats.conversations };
}

/**
 * Streams bytes into one R2 object: a single put when they fit in one part,
 * otherwise a multipart upload of equal-sized parts (aborted on failure).
 * Returns the object's size.
 */
async function putStream(bucket: R2Bucket, key: string, stream: ReadableStream<Uint8Array>, customMetadata: Record<string, string>, partSize = PART_SIZE): Promise<number> {
  const reader = stream.getReader();
  const queue = new ByteQueue();
  let upload: R2MultipartUpload | null = null;
  const parts: R2UploadedPart[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      queue.push(value);
      size += value.byteLength;
      while (queue.length >= partSize) {
        upload ??= await bucket.createMultipartUpload(key, { customMetadata });
        parts.push(await upload.uploadPart(parts.length + 1, queue.take(partSize)));
      }
    }
    if (!upload) {
      await bucket.put(key, queue.take(queue.length), { customMetadata });
      return size;
    }
    if (queue.length > 0) parts.push(await upload.uploadPart(parts.length + 1, queue.take(queue.length)));
    await upload.complete(parts);
    return size;
  } catch (err) {
    await reader.cancel(err).catch(() => undefined);
    if (upload) await upload.abort().catch(() => undefined);
    throw err;
  }
}

/**
 * Takes one backup of a tenant now. The row is written first (size 0 marks an
 * unfinished backup), so every object has a row and expires with it even if
 * the run dies half-way.
 */
export async function takeBackup(env: Env, tenantId: string, createdAt: number, actor: Actor, options: BackupOptions = {}): Promise<BackupSummary> {
  const tenant = await env.DB.prepare("SELECT id FROM tenants WHERE id = ?").bind(tenantId).first();
  if (!tenant) throw notFound("tenant");
  const id = newId("bak", createdAt);
  const r2Key = `backups/${tenantId}/${new Date(createdAt).toISOString()}/${id}`;
  const expiresAt = createdAt + BACKUP_RETENTION_DAYS * DAY_MS;
  const { key, keyId } = await masterKeyring(env);
  await env.DB.prepare("INSERT INTO backups (id, tenant_id, r2_key, size, created_at, expires_at) VALUES (?, ?, ?, 0, ?, ?)")
    .bind(id, tenantId, r2Key, createdAt, expiresAt)
    .run();
  const stats: CaptureStats = { rows: 0, conversations: 0 };
  try {
    const sealed = await sealRecords(captureRecords(env, tenantId, id, createdAt, stats), {
      masterKey: key,
      masterKeyId: keyId,
      backupId: id,
      ...(options.frameSize ? { frameSize: options.frameSize } : {}),
    });
    const size = await putStream(env.FILES, r2Key, sealed, backupObjectMetadata(keyId), options.partSize);
    await env.DB.batch([
      env.DB.prepare("UPDATE backups SET size = ? WHERE id = ?").bind(size, id),
      auditStatement(env.DB, { tenantId, ...actor, action: "backup.created", targetType: "backup", targetId: id, detail: { size, rows: stats.rows, conversations: stats.conversations } }),
    ]);
    return { id, tenantId, size, createdAt, expiresAt, rows: stats.rows, conversations: stats.conversations };
  } catch (err) {
    // Nothing half-written: no object, no row.
    await env.FILES.delete(r2Key).catch(() => undefined);
    await env.DB.prepare("DELETE FROM backups WHERE id = ?").bind(id).run().catch(() => undefined);
    throw err;
  }
}

// ---------------------------------------------------------------- nightly run and expiry

export interface NightlyResult {
  day: string;
  backups: number;
  failed: number;
  /** True once every tenant has been handled for the day. */
  done: boolean;
}

/**
 * Backs up every tenant once per (UTC) day of `nowMs`, in tenant-id order from
 * the day's cursor in `sweep_state`, within the run's budget.
 */
export async function runNightlyBackups(env: Env, nowMs: number, limits: Partial<NightlyLimits> = {}): Promise<NightlyResult> {
  const day = isoDay(nowMs);
  await env.DB.prepare("INSERT INTO sweep_state (name, cursor, last_run_at, last_deleted) VALUES (?, '', ?, 0) ON CONFLICT(name) DO NOTHING")
    .bind(`backup:${day}`, nowMs)
    .run();
  return continueNightly(env, day, nowMs, { ...NIGHTLY_DEFAULTS, ...limits });
}

async function continueNightly(env: Env, day: string, nowMs: number, limits: NightlyLimits): Promise<NightlyResult> {
  const name = `backup:${day}`;
  const dayStart = Date.parse(`${day}T00:00:00.000Z`);
  const started = Date.now();
  const result: NightlyResult = { day, backups: 0, failed: 0, done: false };
  for (let handled = 0; handled < limits.maxTenants && Date.now() - started < limits.budgetMs; handled++) {
    const state = await env.DB.prepare("SELECT cursor FROM sweep_state WHERE name = ?").bind(name).first<{ cursor: string | null }>();
    if (!state) return result;
    const cursor = state.cursor ?? "";
    if (cursor === NIGHTLY_DONE) return { ...result, done: true };
    const next = await env.DB.prepare("SELECT id FROM tenants WHERE id > ? ORDER BY id LIMIT 1").bind(cursor).first<{ id: string }>();
    if (next) {
      // A backup already finished today (an earlier, interrupted run; or an operator's) is enough.
      const existing = await env.DB.prepare("SELECT 1 FROM backups WHERE tenant_id = ? AND created_at >= ? AND created_at < ? AND size > 0 LIMIT 1")
        .bind(next.id, dayStart, dayStart + DAY_MS)
        .first();
      if (!existing) {
        try {
          await takeBackup(env, next.id, nowMs, { actorType: "system", actorId: null });
          result.backups += 1;
        } catch (err) {
          // One tenant's failure must not stop the others; it is audited for the operator and retried tomorrow.
          result.failed += 1;
          console.error("nightly backup failed", next.id, err instanceof Error ? err.message : String(err));
          await env.DB.batch([
            auditStatement(env.DB, { tenantId: next.id, actorType: "system", actorId: null, action: "backup.failed", targetType: "tenant", targetId: next.id, detail: { day } }),
          ]).catch(() => undefined);
        }
      }
    }
    // Compare-and-set: a concurrent run that moved the cursor first makes this one stop.
    const moved = await env.DB.prepare("UPDATE sweep_state SET cursor = ?, last_run_at = ? WHERE name = ? AND cursor IS ?")
      .bind(next?.id ?? NIGHTLY_DONE, nowMs, name, state.cursor)
      .run();
    if (moved.meta.changes !== 1) return result;
    if (!next) return { ...result, done: true };
  }
  return result;
}

export interface ExpiryResult {
  deleted: number;
  /** False when the run stopped at its budget with expired backups left (the next run continues). */
  done: boolean;
  /** The day's nightly run, continued when it had stopped early. */
  nightly: NightlyResult | null;
}

/**
 * Deletes every backup whose 30 days are over at `nowMs` (the event's
 * scheduledTime): the R2 object, then the row together with its deletion-log
 * entry. Backups are copies, not primary data: a legal hold preserves the
 * held data itself (sweeps and erasure skip it), so it does not extend the
 * fixed 30-day backup period. Also continues the same day's nightly backup run
 * if it stopped early, and prunes old nightly cursors.
 */
export async function runBackupExpirySweep(env: Env, nowMs: number, limits: Partial<ExpiryLimits> = {}): Promise<ExpiryResult> {
  const opts = { ...EXPIRY_DEFAULTS, ...limits };
  const started = Date.now();
  let deleted = 0;
  let done = false;
  while (deleted < opts.maxDeleted && Date.now() - started < opts.budgetMs) {
    const { results } = await env.DB.prepare("SELECT id, tenant_id, r2_key FROM backups WHERE expires_at <= ? ORDER BY expires_at, id LIMIT ?")
      .bind(nowMs, Math.min(opts.batchSize, opts.maxDeleted - deleted))
      .all<{ id: string; tenant_id: string; r2_key: string }>();
    if (results.length === 0) {
      done = true;
      break;
    }
    // Objects first: if the run dies here, the rows still point at them and the next run finishes the job.
    await env.FILES.delete(results.map((r) => r.r2_key));
    const statements = results.flatMap((r) => [
      // Logged only if the row is still there, so two overlapping runs never log one deletion twice.
      env.DB.prepare(
        `INSERT INTO deletion_log (id, tenant_id, target_type, target_id, category, reason, subject_hash, deleted_at)
         SELECT ?, ?, 'backup', ?, 'backups', 'retention_expired', NULL, ? WHERE EXISTS (SELECT 1 FROM backups WHERE id = ?)`,
      ).bind(newId("del", nowMs), r.tenant_id, r.id, nowMs, r.id),
      env.DB.prepare("DELETE FROM backups WHERE id = ?").bind(r.id),
    ]);
    const outcome = await env.DB.batch(statements);
    for (let i = 1; i < outcome.length; i += 2) deleted += outcome[i]?.meta.changes ?? 0;
    if (results.length < opts.batchSize) {
      done = true;
      break;
    }
  }
  await env.DB.batch([
    env.DB.prepare(
      "INSERT INTO sweep_state (name, cursor, last_run_at, last_deleted) VALUES ('backup-expiry', NULL, ?1, ?2) ON CONFLICT(name) DO UPDATE SET last_run_at = ?1, last_deleted = ?2",
    ).bind(nowMs, deleted),
    // Nightly cursors are only needed for their own day.
    env.DB.prepare("DELETE FROM sweep_state WHERE name GLOB 'backup:[0-9]*' AND name < ?").bind(`backup:${isoDay(nowMs - 40 * DAY_MS)}`),
  ]);
  const day = isoDay(nowMs);
  const pending = await env.DB.prepare("SELECT cursor FROM sweep_state WHERE name = ?").bind(`backup:${day}`).first<{ cursor: string | null }>();
  const nightly = pending && pending.cursor !== NIGHTLY_DONE ? await continueNightly(env, day, nowMs, NIGHTLY_DEFAULTS) : null;
  return { deleted, done, nightly };
}

// ---------------------------------------------------------------- reading and verifying

/** The validated records of a backup object (authenticated, decompressed, parsed). */
async function* backupRecords(env: Env, backupId: string, body: ReadableStream<Uint8Array>): AsyncGenerator<BackupRecord> {
  for await (const value of openRecords(body, { backupId, masterKeyFor: (keyId) => masterKeyById(env, keyId) })) {
    const parsed = backupRecord.safeParse(value);
    if (!parsed.success) throw new BackupIntegrityError("backup holds a record this version does not understand");
    yield parsed.data;
  }
}

/**
 * Decrypts and parses a backup for inspection (tests, tooling): its records,
 * after the same authentication a restore does.
 */
export async function readBackup(env: Env, backupId: string): Promise<BackupRecord[]> {
  const row = await loadBackupRow(env, backupId);
  const object = await env.FILES.get(row.r2_key);
  if (!object) throw conflict("backup object is missing");
  const out: BackupRecord[] = [];
  for await (const record of backupRecords(env, row.id, object.body)) out.push(record);
  return out;
}

async function loadBackupRow(env: Env, backupId: string): Promise<BackupRow> {
  const row = await env.DB.prepare("SELECT id, tenant_id, r2_key, size, created_at, expires_at FROM backups WHERE id = ?").bind(backupId).first<BackupRow>();
  if (!row) throw notFound("backup");
  return row;
}

const toRow = (columns: readonly string[], values: readonly Scalar[]): Record<string, Scalar> => Object.fromEntries(columns.map((c, i) => [c, values[i] ?? null]));

function ownedBy(spec: BackupTableSpec, row: Record<string, Scalar>, tenantId: string): boolean {
  if (spec.scope === "id") return row.id === tenantId;
  if (spec.scope === "tenant_id") return row.tenant_id === tenantId;
  return true; // campaign recipients: restored only under a campaign of this tenant
}

interface Verified {
  header: Extract<BackupRecord, { t: "header" }>;
  rows: number;
  conversations: number;
  etag: string;
}

/**
 * Reads the whole object once without writing anything: every frame must
 * authenticate, every record must parse, belong to this backup and tenant and
 * fit the current schema, and the end record's counts must match.
 */
async function verifyBackup(env: Env, row: BackupRow): Promise<Verified> {
  const object = await env.FILES.get(row.r2_key);
  if (!object) throw new BackupIntegrityError("backup object is missing from storage");
  let header: Verified["header"] | null = null;
  let table: { spec: BackupTableSpec; columns: string[] } | null = null;
  const seen = new Set<string>();
  let rows = 0;
  let conversations = 0;
  let ended = false;
  for await (const record of backupRecords(env, row.id, object.body)) {
    if (ended) throw new BackupIntegrityError("records after the end of the backup");
    if (!header) {
      if (record.t !== "header") throw new BackupIntegrityError("backup does not start with its header");
      if (record.backupId !== row.id || record.tenantId !== row.tenant_id) throw new BackupIntegrityError("object belongs to another backup");
      header = record;
      continue;
    }
    switch (record.t) {
      case "header":
        throw new BackupIntegrityError("backup has a second header");
      case "table": {
        const spec = tableSpec(record.table);
        if (!spec || spec.mode === "conversation" || seen.has(record.table)) throw new BackupIntegrityError(`unexpected table ${record.table}`);
        const known = new Set(tableColumns(spec));
        const unknown = record.columns.find((c) => !known.has(c));
        if (unknown) throw new BackupIntegrityError(`backup has a column this version does not know (${record.table}.${unknown})`);
        const needed = [...primaryKeyColumns(spec), ...(spec.scope === "tenant_id" ? ["tenant_id"] : [])].find((c) => !record.columns.includes(c));
        if (needed) throw new BackupIntegrityError(`backup lacks ${record.table}.${needed}`);
        if (new Set(record.columns).size !== record.columns.length) throw new BackupIntegrityError(`backup repeats a column of ${record.table}`);
        seen.add(record.table);
        table = { spec, columns: record.columns };
        break;
      }
      case "row": {
        if (!table) throw new BackupIntegrityError("row outside a table");
        if (record.v.length !== table.columns.length) throw new BackupIntegrityError(`row of ${table.spec.name} has the wrong number of values`);
        if (!ownedBy(table.spec, toRow(table.columns, record.v), row.tenant_id)) throw new BackupIntegrityError(`a row of ${table.spec.name} belongs to another tenant`);
        rows += 1;
        break;
      }
      case "conversation": {
        table = null;
        const meta = record.snapshot.meta;
        if (record.index.id !== record.id || record.index.tenant_id !== row.tenant_id || meta.conversation_id !== record.id || meta.tenant_id !== row.tenant_id) {
          throw new BackupIntegrityError("a conversation does not belong to this tenant");
        }
        conversations += 1;
        break;
      }
      case "end":
        if (record.rows !== rows || record.conversations !== conversations) throw new BackupIntegrityError("backup is incomplete (its counts do not match)");
        ended = true;
        break;
    }
  }
  if (!header || !ended) throw new BackupIntegrityError("backup is incomplete (no end record)");
  return { header, rows, conversations, etag: object.etag };
}

// ---------------------------------------------------------------- restore

/**
 * The tenant's deletion log since `since`. Older entries cannot concern the
 * backup's content: everything in it was alive when it was captured, later
 * than `since` (ids of deleted rows are never reused; a conversation id that
 * is reused belongs to a conversation created after its deletion, which
 * `deletionCovers` tells apart). Bounded by one window of deletions, not the
 * tenant's whole history.
 */
async function loadDeletions(env: Env, tenantId: string, since: number): Promise<DeletionIndex> {
  const index = new DeletionIndex();
  let after: { at: number; id: string } | null = null;
  for (;;) {
    const page: { results: { id: string; target_type: string; target_id: string; reason: string; deleted_at: number }[] } = await env.DB.prepare(
      `SELECT id, target_type, target_id, reason, deleted_at FROM deletion_log WHERE tenant_id = ?1 AND deleted_at >= ?2
       ${after ? "AND (deleted_at, id) > (?3, ?4)" : ""} ORDER BY deleted_at, id LIMIT 1000`,
    )
      .bind(tenantId, since, ...(after ? [after.at, after.id] : []))
      .all();
    for (const r of page.results) index.add(r.target_type, r.target_id, r.deleted_at, r.reason);
    const last = page.results[page.results.length - 1];
    if (!last || page.results.length < 1000) return index;
    after = { at: last.deleted_at, id: last.id };
  }
}

interface TableCounts {
  /** Backup rows written back. */
  restored: number;
  /** Backup rows already present (left as they are). */
  present: number;
  /** Backup rows not restored: deleted since, of an erased subject, file gone from R2, or superseded. */
  skipped: number;
}

export interface RestoreReport {
  backupId: string;
  tenantId: string;
  backupCreatedAt: number;
  tables: Record<string, TableCounts>;
  conversations: TableCounts;
  /** Deletions re-applied after the import because they raced with it. */
  reapplied: { conversations: number; files: number };
}

/** Statement writing one backed-up row back, per the table's restore mode. */
function insertStatement(db: D1Database, spec: BackupTableSpec, columns: readonly string[], row: Record<string, Scalar>, tenantId: string): D1PreparedStatement {
  const table = quote(spec.name);
  const values = columns.map((c) => row[c] ?? null);
  const marks = columns.map(() => "?").join(", ");
  switch (spec.mode) {
    case "overwrite":
      return db.prepare(`INSERT OR REPLACE INTO ${table} (${columnList(columns)}) VALUES (${marks})`).bind(...values);
    case "append_only": {
      // INSERT … SELECT … WHERE NOT EXISTS: a present row produces no insert at all, so the
      // append-only triggers (which abort on any collision, even under ON CONFLICT) never fire.
      // A surrogate key (consents.seq) taken by another row is left to AUTOINCREMENT.
      const pk = primaryKeyColumns(spec);
      const exprs: string[] = [];
      const bound: Scalar[] = [];
      for (const [i, column] of columns.entries()) {
        if (pk.includes(column) && column !== "id") {
          exprs.push(`CASE WHEN EXISTS (SELECT 1 FROM ${table} WHERE ${quote(column)} = ?) THEN NULL ELSE ? END`);
          bound.push(values[i] ?? null, values[i] ?? null);
        } else {
          exprs.push("?");
          bound.push(values[i] ?? null);
        }
      }
      return db
        .prepare(`INSERT INTO ${table} (${columnList(columns)}) SELECT ${exprs.join(", ")} WHERE NOT EXISTS (SELECT 1 FROM ${table} WHERE "id" = ?)`)
        .bind(...bound, row.id ?? null);
    }
    default:
      if (spec.scope === "campaign") {
        return db
          .prepare(`INSERT INTO ${table} (${columnList(columns)}) SELECT ${marks} WHERE EXISTS (SELECT 1 FROM campaigns WHERE id = ? AND tenant_id = ?) ON CONFLICT DO NOTHING`)
          .bind(...values, row.campaign_id ?? null, tenantId);
      }
      return db.prepare(`INSERT INTO ${table} (${columnList(columns)}) VALUES (${marks}) ON CONFLICT DO NOTHING`).bind(...values);
  }
}

/** Writes a verified backup back, record by record, in bounded batches. */
class Restorer {
  readonly tables: Record<string, TableCounts> = {};
  readonly conversations: TableCounts = { restored: 0, present: 0, skipped: 0 };
  /** Conversations this restore imported (with what the deletion check needs). */
  readonly importedConversations: Record<string, Scalar>[] = [];
  /** R2-backed rows this restore inserted. */
  readonly insertedFiles: { spec: BackupTableSpec; row: Record<string, Scalar> }[] = [];
  #table: { spec: BackupTableSpec; columns: string[]; rows: Record<string, Scalar>[] } | null = null;
  #conversationQueue: ConversationRecord[] = [];

  constructor(
    private readonly env: Env,
    private readonly tenantId: string,
    private readonly deletions: DeletionIndex,
    /** Tables the tenant has rows in now (for `fill_if_empty`). */
    private readonly nonEmpty: ReadonlySet<string>,
  ) {}

  async record(record: BackupRecord): Promise<void> {
    switch (record.t) {
      case "table": {
        await this.#flushTable();
        const spec = tableSpec(record.table) as BackupTableSpec;
        this.tables[spec.name] ??= { restored: 0, present: 0, skipped: 0 };
        this.#table = { spec, columns: record.columns, rows: [] };
        break;
      }
      case "row": {
        const table = this.#table;
        if (!table) throw new BackupIntegrityError("row outside a table");
        table.rows.push(toRow(table.columns, record.v));
        // A replaced table is written in one batch (delete + inserts) when it ends.
        if (table.spec.mode !== "replace" && table.rows.length >= RESTORE_BATCH) await this.#writeRows(table.spec, table.columns, table.rows.splice(0));
        break;
      }
      case "conversation":
        await this.#flushTable();
        this.#conversationQueue.push(record);
        if (this.#conversationQueue.length >= CONCURRENCY) await this.#flushConversations();
        break;
      default:
        break;
    }
  }

  async finish(): Promise<void> {
    await this.#flushTable();
    await this.#flushConversations();
    // A backup from before migration 0005 carries evidence IPs in the consent log itself: copy them
    // beside it, where a MASTER_KEY rotation can re-wrap them (as the migration did).
    await this.env.DB.prepare(
      "INSERT INTO consent_evidence (id, tenant_id, ip) SELECT c.id, c.tenant_id, c.evidence_ip FROM consents c WHERE c.tenant_id = ? AND c.evidence_ip IS NOT NULL AND NOT EXISTS (SELECT 1 FROM consent_evidence e WHERE e.id = c.id)",
    )
      .bind(this.tenantId)
      .run();
  }

  async #flushTable(): Promise<void> {
    const table = this.#table;
    this.#table = null;
    if (!table) return;
    if (table.spec.mode === "replace") await this.#replaceRows(table.spec, table.columns, table.rows);
    else if (table.rows.length > 0) await this.#writeRows(table.spec, table.columns, table.rows);
  }

  /** The rows the deletion log allows back, counting the others as skipped. */
  #allowed(spec: BackupTableSpec, rows: Record<string, Scalar>[]): Record<string, Scalar>[] {
    const counts = this.tables[spec.name] as TableCounts;
    const allowed: Record<string, Scalar>[] = [];
    for (const row of rows) {
      const verdict = judgeRow(spec, row, this.deletions);
      if (verdict.action === "restore") allowed.push(verdict.row);
      else counts.skipped += 1;
    }
    return allowed;
  }

  async #replaceRows(spec: BackupTableSpec, columns: string[], rows: Record<string, Scalar>[]): Promise<void> {
    const counts = this.tables[spec.name] as TableCounts;
    const allowed = this.#allowed(spec, rows);
    const statements = [this.env.DB.prepare(`DELETE FROM ${quote(spec.name)} WHERE "tenant_id" = ?`).bind(this.tenantId), ...allowed.map((r) => insertStatement(this.env.DB, spec, columns, r, this.tenantId))];
    const results = await this.env.DB.batch(statements);
    counts.restored += results.slice(1).reduce((n, r) => n + (r.meta.changes ?? 0), 0);
  }

  async #writeRows(spec: BackupTableSpec, columns: string[], rows: Record<string, Scalar>[]): Promise<void> {
    const counts = this.tables[spec.name] as TableCounts;
    if (spec.mode === "fill_if_empty" && spec.emptyCheck && this.nonEmpty.has(spec.emptyCheck)) {
      // The tenant has a newer set (e.g. a newer RPO consultation): never mix it with the backup's.
      counts.skipped += rows.length;
      return;
    }
    let allowed = this.#allowed(spec, rows);
    if (spec.objectColumn && allowed.length > 0) {
      // A missing row whose R2 object is gone (deleted or lost) would be a dangling pointer: not restored.
      const objectColumn = spec.objectColumn;
      const ids = allowed.map((r) => String(r.id));
      const { results } = await this.env.DB.prepare(`SELECT id FROM ${quote(spec.name)} WHERE id IN (${ids.map(() => "?").join(", ")})`)
        .bind(...ids)
        .all<{ id: string }>();
      const present = new Set(results.map((r) => r.id));
      const kept = await mapLimit(allowed, CONCURRENCY, async (r) => {
        const key = r[objectColumn];
        if (present.has(String(r.id)) || typeof key !== "string") return r;
        return (await this.env.FILES.head(key)) ? r : null;
      });
      counts.skipped += kept.filter((r) => r === null).length;
      allowed = kept.filter((r): r is Record<string, Scalar> => r !== null);
    }
    if (allowed.length === 0) return;
    const results = await this.env.DB.batch(allowed.map((r) => insertStatement(this.env.DB, spec, columns, r, this.tenantId)));
    for (const [i, result] of results.entries()) {
      const row = allowed[i] as Record<string, Scalar>;
      if ((result.meta.changes ?? 0) > 0) {
        counts.restored += 1;
        if (spec.objectColumn) this.insertedFiles.push({ spec, row });
      } else {
        counts.present += 1;
      }
    }
  }

  async #flushConversations(): Promise<void> {
    const queue = this.#conversationQueue.splice(0);
    await mapLimit(queue, CONCURRENCY, async (record) => {
      const verdict = judgeRow(CONVERSATIONS, record.index, this.deletions);
      if (verdict.action === "skip") {
        this.conversations.skipped += 1;
        return;
      }
      const stub = conversationStub(this.env, record.id);
      // A conversation object that holds a conversation now is newer than the backup: it is kept.
      if (await stub.getConversation()) {
        this.conversations.present += 1;
        return;
      }
      // The object rebuilds its D1 index row itself (status, counts, version) on import.
      await stub.importSnapshot(record.snapshot);
      this.conversations.restored += 1;
      this.importedConversations.push(record.index);
    });
  }
}

/**
 * Re-applies the deletion log to what this restore wrote, without new log
 * entries (they are already logged): catches deletions that happened while
 * the restore ran. Crypto-shredded content would be unreadable anyway; this
 * also removes the restored copy and its index row.
 */
async function reapplyDeletions(env: Env, tenantId: string, since: number, restorer: Restorer): Promise<RestoreReport["reapplied"]> {
  const deletions = await loadDeletions(env, tenantId, since);
  const reapplied = { conversations: 0, files: 0 };
  for (const index of restorer.importedConversations) {
    if (judgeRow(CONVERSATIONS, index, deletions).action === "restore") continue;
    const id = String(index.id);
    const logged = deletions.latest(["conversation"], id);
    const reason = (logged?.reason ?? "dsr_erasure") as DeletionReason;
    await eraseConversation(env, tenantId, id, reason, Date.now(), { log: false });
    reapplied.conversations += 1;
  }
  for (const { spec, row } of restorer.insertedFiles) {
    if (judgeRow(spec, row, deletions).action === "restore") continue;
    const key = spec.objectColumn ? row[spec.objectColumn] : null;
    if (typeof key === "string") await env.FILES.delete(key);
    await env.DB.prepare(`DELETE FROM ${quote(spec.name)} WHERE id = ? AND tenant_id = ?`).bind(row.id ?? null, tenantId).run();
    reapplied.files += 1;
  }
  return reapplied;
}

function refused(backupId: string, err: BackupIntegrityError): ApiError {
  if (err instanceof BackupKeyUnavailableError) {
    return new ApiError(409, "conflict", `backup ${backupId} cannot be restored: ${err.message} (set MASTER_KEY_PREVIOUS to it). Nothing was changed.`);
  }
  return new ApiError(409, "conflict", `backup ${backupId} failed its integrity check: ${err.message}. Nothing was changed.`);
}

/**
 * Restores a tenant from one of its backups (see the module comment). Refuses
 * with 409, before writing anything, an object that does not authenticate or
 * validate in full. Idempotent: running it again writes nothing new.
 */
export async function restoreBackup(env: Env, backupId: string, actor: Actor): Promise<RestoreReport> {
  const row = await loadBackupRow(env, backupId);
  const audit = (action: string, detail: AuditEntry["detail"]) => auditStatement(env.DB, { tenantId: row.tenant_id, ...actor, action, targetType: "backup", targetId: row.id, detail });
  if (row.size === 0) throw conflict(`backup ${row.id} never finished; choose another`);
  let verified: Verified;
  try {
    verified = await verifyBackup(env, row);
  } catch (err) {
    if (!(err instanceof BackupIntegrityError)) throw err;
    await env.DB.batch([audit("backup.restore_refused", { reason: err instanceof BackupKeyUnavailableError ? "key_unavailable" : "integrity" })]);
    throw refused(row.id, err);
  }
  const since = Math.min(verified.header.capturedAt, verified.header.createdAt, row.created_at) - DELETION_WINDOW_MS;
  const deletions = await loadDeletions(env, row.tenant_id, since);
  const nonEmpty = new Set<string>();
  for (const spec of BACKUP_TABLES) {
    if (spec.emptyCheck && !nonEmpty.has(spec.emptyCheck)) {
      const found = await env.DB.prepare(`SELECT 1 FROM ${quote(spec.emptyCheck)} WHERE tenant_id = ? LIMIT 1`).bind(row.tenant_id).first();
      if (found) nonEmpty.add(spec.emptyCheck);
    }
  }
  // The same bytes that were verified (R2 is strongly consistent; the etag pins the version).
  const object = await env.FILES.get(row.r2_key, { onlyIf: { etagMatches: verified.etag } });
  if (!object || !("body" in object)) throw conflict(`backup ${row.id} changed while it was being restored; nothing was changed`);
  const restorer = new Restorer(env, row.tenant_id, deletions, nonEmpty);
  try {
    for await (const record of backupRecords(env, row.id, object.body)) await restorer.record(record);
    await restorer.finish();
  } catch (err) {
    if (!(err instanceof BackupIntegrityError)) throw err;
    // Only possible if the object changed between the two reads despite the etag: what was written is consistent, and a rerun is safe.
    throw new ApiError(409, "conflict", `backup ${row.id} became unreadable during the restore (${err.message}); the restore is idempotent: retry it`);
  }
  const reapplied = await reapplyDeletions(env, row.tenant_id, since, restorer);
  const report: RestoreReport = {
    backupId: row.id,
    tenantId: row.tenant_id,
    backupCreatedAt: row.created_at,
    tables: restorer.tables,
    conversations: restorer.conversations,
    reapplied,
  };
  const restoredRows = Object.values(report.tables).reduce((n, t) => n + t.restored, 0);
  await env.DB.batch([
    audit("backup.restored", {
      rows: restoredRows,
      conversations: report.conversations.restored,
      conversationsKept: report.conversations.present,
      conversationsSkipped: report.conversations.skipped,
      reapplied: reapplied.conversations + reapplied.files,
    }),
  ]);
  return report;
}

// ---------------------------------------------------------------- operator API

export const operatorBackups = createRouter();
operatorBackups.use("*", requirePlatformKey);

const BackupSchema = z
  .object({
    id: z.string(),
    tenantId: z.string(),
    size: z.number().int().openapi({ description: "Bytes of the encrypted object; 0 while (or if never) finished" }),
    complete: z.boolean(),
    createdAt: z.string(),
    expiresAt: z.string(),
  })
  .openapi("Backup");

const present = (row: BackupRow): z.infer<typeof BackupSchema> => ({
  id: row.id,
  tenantId: row.tenant_id,
  size: row.size,
  complete: row.size > 0,
  createdAt: new Date(row.created_at).toISOString(),
  expiresAt: new Date(row.expires_at).toISOString(),
});

const CountsSchema = z.object({ restored: z.number().int(), present: z.number().int(), skipped: z.number().int() });
const listCursor = z.object({ t: z.number().int(), id: z.string().max(64) });
const conflictResponse = { 409: { description: "The backup cannot be restored (tampered, truncated, unfinished or its key is gone); nothing was changed", content: errorResponses[400].content } };

operatorBackups.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Operator"],
    summary: "List a tenant's backups, newest first",
    security: bearerSecurity,
    request: {
      query: z.object({
        tenantId: z.string().min(1).max(64),
        limit: z.coerce.number().int().min(1).max(200).default(50),
        cursor: z.string().max(512).optional(),
      }),
    },
    responses: {
      200: { description: "Backups", content: { "application/json": { schema: z.object({ data: z.array(BackupSchema), nextCursor: z.string().nullable() }) } } },
      ...errorResponses,
    },
  }),
  async (c) => {
    const query = c.req.valid("query");
    const after = query.cursor ? decodeCursor(query.cursor, listCursor) : null;
    const { results } = await c.env.DB.prepare(
      `SELECT id, tenant_id, r2_key, size, created_at, expires_at FROM backups WHERE tenant_id = ?1 ${after ? "AND (created_at, id) < (?3, ?4)" : ""}
       ORDER BY created_at DESC, id DESC LIMIT ?2`,
    )
      .bind(query.tenantId, query.limit + 1, ...(after ? [after.t, after.id] : []))
      .all<BackupRow>();
    const page = results.slice(0, query.limit);
    const last = page[page.length - 1];
    return c.json({ data: page.map(present), nextCursor: results.length > query.limit && last ? encodeCursor({ t: last.created_at, id: last.id }) : null }, 200);
  },
);

operatorBackups.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Operator"],
    summary: "Take a backup of a tenant now",
    description: "Encrypted (AES-256-GCM, data key wrapped by MASTER_KEY) and kept 30 days like the nightly ones.",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: z.object({ tenantId: z.string().min(1).max(64) }).strict() } } } },
    responses: {
      201: {
        description: "Taken",
        content: { "application/json": { schema: z.object({ backup: BackupSchema, contents: z.object({ rows: z.number().int(), conversations: z.number().int() }) }) } },
      },
      ...errorResponses,
    },
  }),
  async (c) => {
    const { tenantId } = c.req.valid("json");
    const taken = await takeBackup(c.env, tenantId, Date.now(), { actorType: "platform", actorId: null });
    const backup = present({ id: taken.id, tenant_id: taken.tenantId, r2_key: "", size: taken.size, created_at: taken.createdAt, expires_at: taken.expiresAt });
    return c.json({ backup, contents: { rows: taken.rows, conversations: taken.conversations } }, 201);
  },
);

operatorBackups.openapi(
  createRoute({
    method: "post",
    path: "/{id}/restore",
    tags: ["Operator"],
    summary: "Restore a tenant from one of its backups",
    description:
      "Brings back what the tenant lost since the backup: missing rows and conversation objects. Rows that exist are kept (no revoked key, released hold or completed erasure is rolled back); settings and the knowledge base are put back as they were. Nothing in the deletion log comes back, and destroyed subject keys stay destroyed. The whole object is authenticated before anything is written.",
    security: bearerSecurity,
    request: { params: z.object({ id: z.string().min(1).max(64) }) },
    responses: {
      200: {
        description: "Restored",
        content: {
          "application/json": {
            schema: z.object({
              backupId: z.string(),
              tenantId: z.string(),
              backupCreatedAt: z.string(),
              tables: z.record(z.string(), CountsSchema),
              conversations: CountsSchema,
              reapplied: z.object({ conversations: z.number().int(), files: z.number().int() }),
            }),
          },
        },
      },
      ...errorResponses,
      ...conflictResponse,
    },
  }),
  async (c) => {
    const report = await restoreBackup(c.env, c.req.valid("param").id, { actorType: "platform", actorId: null });
    return c.json({ ...report, backupCreatedAt: new Date(report.backupCreatedAt).toISOString() }, 200);
  },
);

