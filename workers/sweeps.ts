/**
 * The retention sweep, run by the `*\/15 * * * *` cron with the event's
 * scheduledTime as "now" (DESIGN.md rule 7).
 *
 * One sweep *cycle* walks every tenant (in id order) and then the platform-wide
 * tables. For each tenant it deletes, in bounded batches:
 *
 * - conversations whose last activity is older than the tenant's
 *   `conversation_logs` period (or the shorter special-category period when
 *   the conversation was flagged), through {@link eraseConversation}: the
 *   conversation object (storage and alarm), its R2 files and their rows, the
 *   D1 index row, one deletion-log entry each;
 * - recordings (rows of `recordings` and `attachments` of category
 *   `recording`) older than the `recordings` period: R2 object, row, log entry;
 * - security-log lines older than `security_logs` (one log entry per batch);
 * - voice models whose consent lapsed;
 *
 * and, once per cycle, tenant-less security-log lines, agent-health dedupe
 * keys older than 7 days, and Stripe event metadata older than its tenant's
 * `payment_metadata` period. Anything under an active legal hold (tenant, subject
 * or conversation) is skipped and counted.
 *
 * A run stops at a wall-clock and subrequest budget and stores its position in
 * `sweep_state`; the next run resumes there. The position is a keyset
 * (tenant, phase, last (time, id) processed), so held or still-active rows
 * never block progress. Every deletion is idempotent and logged in the same D1
 * transaction as the row it removes, so a run that crashes anywhere is simply
 * finished by the next one, without double deletions or double log entries. A
 * lease in `sweep_state` keeps two runs from sweeping at once.
 */
import { z } from "zod";
import {
  AGENT_HEALTH_KEY_DAYS,
  conversationRetentionDays,
  DAY_MS,
  expiryCutoff,
  isExpired,
  resolvePolicy,
  RETENTION_RULES,
  SPECIAL_CATEGORY_MAX_DAYS,
} from "../lib/retention";
import { newId } from "../lib/ids";
import { purgeLapsedVoiceModels, purgeVoiceModels } from "./support/consent-store";
import { auditStatement } from "./support/audit";
import { eraseConversation, type DeletionReason } from "./support/erasure";
import { conversationStub } from "./support/ingest";

/** Limits of one run. The defaults keep a run far inside the Workers limits for a cron invocation. */
export interface SweepOptions {
  /** Rows fetched and deleted per batch (conversations, recordings). */
  batchSize: number;
  /** Conversations erased in parallel within a batch (Workers allow 6 open connections). */
  concurrency: number;
  /** Wall-clock budget of a run; no new batch starts after it. */
  budgetMs: number;
  /** Upper bound on subrequests (D1 queries, Durable Object and R2 calls) a run may issue. */
  maxSubrequests: number;
  /** Upper bound on conversations erased by one run. */
  maxConversations: number;
}

/**
 * Production defaults. The cron limits are 30 s of CPU (the sweep uses a few
 * ms per batch) and 15 minutes of wall time; 45 s of wall time leaves room for
 * the slowest batch. 900 subrequests stays under both the older 1,000
 * subrequests per invocation and D1's 1,000 queries per invocation.
 */
export const SWEEP_DEFAULTS: Readonly<SweepOptions> = {
  batchSize: 50,
  concurrency: 6,
  budgetMs: 45_000,
  maxSubrequests: 900,
  maxConversations: Number.POSITIVE_INFINITY,
};

/** Tenants examined per probe query. */
const TENANT_PROBE = 50;
/** Index rows scanned per query when looking for special-category conversations. */
const SPECIAL_SCAN_PAGE = 1000;
/** The special-category window is scanned by at most one cycle this often. */
const SPECIAL_SCAN_INTERVAL_MS = 6 * 3_600_000;
const SECURITY_LOG_BATCH = 500;
const AGENT_HEALTH_KEY_BATCH = 1000;
const BILLING_EVENT_BATCH = 500;
/** Subrequests one conversation costs: the object check, three reads, the erase call, R2, the D1 batch. */
const CONVERSATION_COST = 7;
/** A crashed run's lease expires this long after its budget. */
const LEASE_MARGIN_MS = 120_000;
const STATE_NAME = "retention";
const LEASE_NAME = "retention.lease";
/** Tenant id recorded in the deletion log for platform-wide tables that belong to no tenant. */
export const PLATFORM_DELETION_TENANT = "platform";
const REASON: DeletionReason = "retention_expired";

const TENANT_PHASES = ["conversations", "special", "recordings", "recording_files", "security_log", "voice_models"] as const;
type TenantPhase = (typeof TENANT_PHASES)[number];
const PHASES = ["tenants", ...TENANT_PHASES, "platform_security_log", "agent_health_keys", "billing_events"] as const;
type Phase = (typeof PHASES)[number];

const cursorSchema = z.object({
  tenantId: z.string().nullable(),
  phase: z.enum(PHASES),
  /** Tenant phases still to run after the current one. */
  pending: z.array(z.enum(TENANT_PHASES)),
  /** Keyset position inside the phase: the last (time, id) processed. */
  at: z.number().nullable(),
  id: z.string().nullable(),
});
type Cursor = z.infer<typeof cursorSchema>;

const stateSchema = z.object({
  v: z.literal(1),
  cursor: cursorSchema.nullable(),
  cycleStartedAt: z.number().nullable(),
  cycleSpecial: z.boolean(),
  lastSpecialScanAt: z.number().nullable(),
});
type SweepState = z.infer<typeof stateSchema>;

/** Where a run started or stopped. */
export interface SweepPosition {
  tenantId: string | null;
  phase: Phase;
  at: number | null;
  id: string | null;
}

/** What one run did. */
export interface RetentionSweepReport {
  /** The run's "now" (the scheduled time), ISO 8601. */
  now: string;
  deleted: {
    conversations: number;
    messages: number;
    attachments: number;
    recordings: number;
    recordingFiles: number;
    securityLogs: number;
    voiceModels: number;
    agentHealthKeys: number;
    billingEvents: number;
  };
  skippedHeld: { tenants: number; conversations: number; recordings: number; recordingFiles: number; voiceModels: number };
  /** Conversations the index showed as expired whose object had newer activity (the index was catching up). */
  skippedActive: number;
  /** Items whose deletion failed; they are retried by the next cycle. */
  failed: number;
  /** Position the run resumed from; null when it started a new cycle. */
  resumedFrom: SweepPosition | null;
  /** Position the next run resumes from; null when the cycle finished. */
  stoppedAt: SweepPosition | null;
  /** The cycle finished in this run. */
  done: boolean;
  /** Another run held the lease: this one did nothing. */
  locked: boolean;
  /** Bounded steps run (tenant probes and batches). */
  steps: number;
  /** Subrequests issued (D1 queries and batches, Durable Object and R2 calls), as counted by the sweep. */
  subrequests: number;
  elapsedMs: number;
}

function emptyReport(nowMs: number): RetentionSweepReport {
  return {
    now: new Date(nowMs).toISOString(),
    deleted: { conversations: 0, messages: 0, attachments: 0, recordings: 0, recordingFiles: 0, securityLogs: 0, voiceModels: 0, agentHealthKeys: 0, billingEvents: 0 },
    skippedHeld: { tenants: 0, conversations: 0, recordings: 0, recordingFiles: 0, voiceModels: 0 },
    skippedActive: 0,
    failed: 0,
    resumedFrom: null,
    stoppedAt: null,
    done: false,
    locked: false,
    steps: 0,
    subrequests: 0,
    elapsedMs: 0,
  };
}

const position = (c: Cursor): SweepPosition => ({ tenantId: c.tenantId, phase: c.phase, at: c.at, id: c.id });
const totalDeleted = (r: RetentionSweepReport): number =>
  r.deleted.conversations + r.deleted.recordings + r.deleted.recordingFiles + r.deleted.securityLogs + r.deleted.voiceModels + r.deleted.agentHealthKeys + r.deleted.billingEvents;

/** Periods (days) the sweep needs for one tenant. */
interface TenantDays {
  conversations: number;
  recordings: number;
  security: number;
}

/** Active holds that matter to one batch. */
interface Holds {
  tenant: boolean;
  subjects: Set<string>;
  conversations: Set<string>;
}

const covers = (h: Holds, conversationId: string | null, subjects: readonly (string | null)[]): boolean =>
  h.tenant || (conversationId !== null && h.conversations.has(conversationId)) || subjects.some((s) => s !== null && h.subjects.has(s));

/** Runs `fn` over `items` with at most `limit` in flight. */
async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (;;) {
      const item = items[next++];
      if (item === undefined) return;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

/** Prepared deletion-log insert that writes only if the row it records still exists (exactly once, even when two deleters race). */
function logIfPresent(
  db: D1Database,
  entry: { tenantId: string; targetType: string; targetId: string; category: string; subjectHash: string | null },
  table: "recordings" | "attachments",
  now: number,
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO deletion_log (id, tenant_id, target_type, target_id, category, reason, subject_hash, deleted_at)
       SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE EXISTS (SELECT 1 FROM ${table} WHERE id = ?4 AND tenant_id = ?2)`,
    )
    .bind(newId("del", now), entry.tenantId, entry.targetType, entry.targetId, entry.category, REASON, entry.subjectHash, now);
}

class SweepRun {
  readonly started = Date.now();
  readonly report: RetentionSweepReport;
  readonly days = new Map<string, TenantDays>();
  erased = 0;

  constructor(
    readonly env: Env,
    readonly now: number,
    readonly opts: SweepOptions,
    readonly state: SweepState,
    readonly lease: string,
  ) {
    this.report = emptyReport(now);
  }

  spend(n: number): void {
    this.report.subrequests += n;
  }

  outOfTime(): boolean {
    return Date.now() - this.started >= this.opts.budgetMs;
  }

  /** How many items costing `each` subrequests fit in what is left, after `overhead` (capped at the batch size). */
  room(each: number, overhead: number): number {
    const left = this.opts.maxSubrequests - this.report.subrequests - overhead - 3; // 3: this step's state save, the final save, the lease release
    return Math.max(0, Math.min(this.opts.batchSize, Math.floor(left / each)));
  }

  async tenantDays(tenantId: string): Promise<TenantDays> {
    const known = this.days.get(tenantId);
    if (known) return known;
    this.spend(1);
    const { results } = await this.env.DB.prepare("SELECT category, days FROM retention_policies WHERE tenant_id = ?").bind(tenantId).all<{ category: string; days: number }>();
    const policy = resolvePolicy(results);
    const days = { conversations: policy.conversation_logs, recordings: policy.recordings, security: policy.security_logs };
    this.days.set(tenantId, days);
    return days;
  }

  async holds(tenantId: string, conversationIds: readonly string[], subjects: readonly string[]): Promise<Holds> {
    this.spend(1);
    const { results } = await this.env.DB.prepare(
      `SELECT scope, target FROM legal_holds WHERE tenant_id = ?1 AND released_at IS NULL AND (
         scope = 'tenant'
         OR (scope = 'conversation' AND target IN (SELECT value FROM json_each(?2)))
         OR (scope = 'subject' AND target IN (SELECT value FROM json_each(?3))))`,
    )
      .bind(tenantId, JSON.stringify([...new Set(conversationIds)]), JSON.stringify([...new Set(subjects)]))
      .all<{ scope: string; target: string | null }>();
    const holds: Holds = { tenant: false, subjects: new Set(), conversations: new Set() };
    for (const row of results) {
      if (row.scope === "tenant") holds.tenant = true;
      else if (row.scope === "subject" && row.target) holds.subjects.add(row.target);
      else if (row.scope === "conversation" && row.target) holds.conversations.add(row.target);
    }
    return holds;
  }

  /**
   * Saves the position (fenced by the lease: a run that lost it stops instead
   * of overwriting). The final save also records the run in the platform's
   * audit log when it deleted anything (counts only), in the same transaction.
   */
  async save(cursor: Cursor | null, extra: Partial<SweepState> = {}, final = false): Promise<void> {
    Object.assign(this.state, extra, { cursor });
    this.spend(1);
    const statements = [
      this.env.DB.prepare(
        `INSERT INTO sweep_state (name, cursor, last_run_at, last_deleted) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(name) DO UPDATE SET cursor = excluded.cursor, last_run_at = excluded.last_run_at, last_deleted = excluded.last_deleted
         WHERE EXISTS (SELECT 1 FROM sweep_state WHERE name = ?5 AND json_extract(cursor, '$.token') = ?6)`,
      ).bind(STATE_NAME, JSON.stringify(this.state), this.now, totalDeleted(this.report), LEASE_NAME, this.lease),
    ];
    const d = this.report.deleted;
    if (final && totalDeleted(this.report) > 0) {
      statements.push(
        auditStatement(this.env.DB, {
          tenantId: null,
          actorType: "system",
          actorId: null,
          action: "retention.swept",
          targetType: "sweep",
          targetId: STATE_NAME,
          detail: {
            now: this.report.now,
            conversations: d.conversations,
            recordings: d.recordings + d.recordingFiles,
            securityLogs: d.securityLogs,
            voiceModels: d.voiceModels,
            agentHealthKeys: d.agentHealthKeys,
            billingEvents: d.billingEvents,
            done: cursor === null,
          },
        }),
      );
    }
    const [result] = await this.env.DB.batch(statements);
    if (result?.meta.changes !== 1) throw new Error("retention sweep lost its lease");
  }
}

// ---------------------------------------------------------------- phases

type Step = { cursor: Cursor | null; stop?: boolean };

const nextPhase = (c: Cursor): Cursor => {
  const [next, ...rest] = c.pending;
  return next ? { tenantId: c.tenantId, phase: next, pending: rest, at: null, id: null } : { tenantId: c.tenantId, phase: "tenants", pending: [], at: null, id: null };
};
const cycleEnd = (): Cursor => ({ tenantId: null, phase: "platform_security_log", pending: [], at: null, id: null });

interface ProbeRow {
  id: string;
  conv_days: number;
  rec_days: number;
  sec_days: number;
  held: number;
  conv_due: number;
  special_window: number;
  rec_due: number;
  recfile_due: number;
  sec_due: number;
  voice_due: number;
}

/** Finds the next tenant with anything due, TENANT_PROBE tenants per query (index seeks only). */
async function stepTenants(run: SweepRun, cursor: Cursor): Promise<Step> {
  if (run.room(1, 0) < 1) return { cursor, stop: true };
  const conv = RETENTION_RULES.conversation_logs;
  const rec = RETENTION_RULES.recordings;
  const sec = RETENTION_RULES.security_logs;
  run.spend(1);
  const { results } = await run.env.DB.prepare(
    `WITH t AS (
       SELECT id,
         MIN(?4, MAX(?5, COALESCE((SELECT days FROM retention_policies p WHERE p.tenant_id = tenants.id AND p.category = 'conversation_logs'), ?6))) AS conv_days,
         MIN(?7, MAX(?8, COALESCE((SELECT days FROM retention_policies p WHERE p.tenant_id = tenants.id AND p.category = 'recordings'), ?9))) AS rec_days,
         MIN(?10, MAX(?11, COALESCE((SELECT days FROM retention_policies p WHERE p.tenant_id = tenants.id AND p.category = 'security_logs'), ?12))) AS sec_days
       FROM tenants WHERE id > ?2 ORDER BY id LIMIT ?3)
     SELECT id, conv_days, rec_days, sec_days,
       EXISTS (SELECT 1 FROM legal_holds h WHERE h.tenant_id = t.id AND h.released_at IS NULL AND h.scope = 'tenant') AS held,
       EXISTS (SELECT 1 FROM conversations c WHERE c.tenant_id = t.id AND c.last_activity_at <= ?1 - conv_days * ?13) AS conv_due,
       EXISTS (SELECT 1 FROM conversations c WHERE c.tenant_id = t.id AND c.last_activity_at > ?1 - conv_days * ?13
               AND c.last_activity_at <= ?1 - MIN(conv_days, ?14) * ?13) AS special_window,
       EXISTS (SELECT 1 FROM recordings r WHERE r.tenant_id = t.id AND r.started_at <= ?1 - rec_days * ?13) AS rec_due,
       EXISTS (SELECT 1 FROM attachments a WHERE a.tenant_id = t.id AND a.category = 'recording' AND a.created_at <= ?1 - rec_days * ?13) AS recfile_due,
       COALESCE((SELECT s.created_at FROM security_log s WHERE s.tenant_id = t.id ORDER BY s.id LIMIT 1) <= ?1 - sec_days * ?13, 0) AS sec_due,
       EXISTS (SELECT 1 FROM voice_models v WHERE v.tenant_id = t.id AND (v.status = 'deleting' OR (v.expires_at IS NOT NULL AND v.expires_at <= ?1))) AS voice_due
     FROM t ORDER BY id`,
  )
    .bind(run.now, cursor.tenantId ?? "", TENANT_PROBE, conv.maxDays, conv.minDays, conv.defaultDays, rec.maxDays, rec.minDays, rec.defaultDays, sec.maxDays, sec.minDays, sec.defaultDays, DAY_MS, SPECIAL_CATEGORY_MAX_DAYS)
    .all<ProbeRow>();
  for (const row of results) {
    run.days.set(row.id, { conversations: row.conv_days, recordings: row.rec_days, security: row.sec_days });
    const phases: TenantPhase[] = [];
    if (row.conv_due) phases.push("conversations");
    if (row.special_window && run.state.cycleSpecial) phases.push("special");
    if (row.rec_due) phases.push("recordings");
    if (row.recfile_due) phases.push("recording_files");
    if (row.sec_due) phases.push("security_log");
    if (row.voice_due) phases.push("voice_models");
    if (phases.length === 0) continue;
    // A tenant-wide hold (an investigation) keeps everything of the tenant, security logs included.
    if (row.held) {
      run.report.skippedHeld.tenants += 1;
      continue;
    }
    const [first, ...rest] = phases;
    if (first) return { cursor: { tenantId: row.id, phase: first, pending: rest, at: null, id: null } };
  }
  const last = results[results.length - 1];
  if (!last || results.length < TENANT_PROBE) return { cursor: cycleEnd() };
  return { cursor: { tenantId: last.id, phase: "tenants", pending: [], at: null, id: null } };
}

interface ConversationRow {
  id: string;
  subject_hash: string;
  last_activity_at: number;
  special_category: number;
}

/** Erases expired conversations of one batch, skipping held ones and ones whose object shows newer activity. */
async function eraseBatch(run: SweepRun, tenantId: string, rows: readonly ConversationRow[], conversationDays: number): Promise<void> {
  if (rows.length === 0) return;
  const { env, now, report } = run;
  const holds = await run.holds(
    tenantId,
    rows.map((r) => r.id),
    rows.map((r) => r.subject_hash),
  );
  await forEachLimit(rows, run.opts.concurrency, async (row) => {
    if (covers(holds, row.id, [row.subject_hash])) {
      report.skippedHeld.conversations += 1;
      return;
    }
    try {
      // The object is the source of truth: its index row may lag by a few seconds behind new activity.
      run.spend(1);
      const view = await conversationStub(env, row.id).getConversation();
      if (view) {
        const lastActivity = Math.max(row.last_activity_at, Date.parse(view.lastActivityAt) || 0);
        const special = view.specialCategory || row.special_category === 1;
        if (!isExpired(lastActivity, conversationRetentionDays(conversationDays, special), now)) {
          report.skippedActive += 1;
          return;
        }
      }
      run.spend(CONVERSATION_COST - 1);
      const erased = await eraseConversation(env, tenantId, row.id, REASON, now);
      run.erased += 1;
      report.deleted.conversations += 1;
      report.deleted.messages += erased.messages;
      report.deleted.attachments += erased.attachments;
      report.deleted.recordings += erased.recordings;
    } catch (err) {
      report.failed += 1;
      console.error("retention sweep: conversation erasure failed; retried next cycle", err instanceof Error ? err.message : String(err));
    }
  });
}

/** Conversations older than the tenant's period (every one of them is due, special or not). */
async function stepConversations(run: SweepRun, cursor: Cursor, tenantId: string): Promise<Step> {
  const days = await run.tenantDays(tenantId);
  const limit = Math.min(run.room(CONVERSATION_COST, 2), run.opts.maxConversations - run.erased);
  if (limit < 1) return { cursor, stop: true };
  run.spend(1);
  const { results } = await run.env.DB.prepare(
    `SELECT id, subject_hash, last_activity_at, special_category FROM conversations
     WHERE tenant_id = ?1 AND last_activity_at <= ?2 AND (last_activity_at, id) > (?3, ?4)
     ORDER BY last_activity_at, id LIMIT ?5`,
  )
    .bind(tenantId, expiryCutoff(run.now, days.conversations), cursor.at ?? -1, cursor.id ?? "", limit)
    .all<ConversationRow>();
  await eraseBatch(run, tenantId, results, days.conversations);
  const last = results[results.length - 1];
  if (!last || results.length < limit) return { cursor: nextPhase(cursor) };
  return { cursor: { ...cursor, at: last.last_activity_at, id: last.id } };
}

/**
 * Special-category conversations between the special period and the normal
 * one. There is no index on the flag, so the window is scanned in bounded
 * pages of the (tenant, last activity, id) index.
 */
async function stepSpecial(run: SweepRun, cursor: Cursor, tenantId: string): Promise<Step> {
  const days = await run.tenantDays(tenantId);
  const specialDays = conversationRetentionDays(days.conversations, true);
  if (specialDays >= days.conversations) return { cursor: nextPhase(cursor) };
  const limit = Math.min(run.room(CONVERSATION_COST, 2), run.opts.maxConversations - run.erased);
  if (limit < 1) return { cursor, stop: true };
  run.spend(1);
  const { results } = await run.env.DB.prepare(
    `WITH page AS (
       SELECT id, subject_hash, last_activity_at, special_category FROM conversations
       WHERE tenant_id = ?1 AND last_activity_at > ?2 AND last_activity_at <= ?3 AND (last_activity_at, id) > (?4, ?5)
       ORDER BY last_activity_at, id LIMIT ?6)
     SELECT * FROM (SELECT 'hit' AS kind, id, subject_hash, last_activity_at, special_category, 0 AS scanned FROM page
                    WHERE special_category = 1 ORDER BY last_activity_at, id LIMIT ?7)
     UNION ALL
     SELECT * FROM (SELECT 'end' AS kind, id, subject_hash, last_activity_at, special_category, (SELECT COUNT(*) FROM page) AS scanned FROM page
                    ORDER BY last_activity_at DESC, id DESC LIMIT 1)`,
  )
    .bind(tenantId, expiryCutoff(run.now, days.conversations), expiryCutoff(run.now, specialDays), cursor.at ?? -1, cursor.id ?? "", SPECIAL_SCAN_PAGE, limit)
    .all<ConversationRow & { kind: "hit" | "end"; scanned: number }>();
  const hits = results.filter((r) => r.kind === "hit");
  const end = results.find((r) => r.kind === "end");
  await eraseBatch(run, tenantId, hits, days.conversations);
  const lastHit = hits[hits.length - 1];
  // A full batch of hits may leave more in the page: resume right after the last hit.
  if (lastHit && hits.length >= limit) return { cursor: { ...cursor, at: lastHit.last_activity_at, id: lastHit.id } };
  if (!end || end.scanned < SPECIAL_SCAN_PAGE) return { cursor: nextPhase(cursor) };
  return { cursor: { ...cursor, at: end.last_activity_at, id: end.id } };
}

/** Deletes R2 objects, then rows with their log entries (one D1 transaction). Objects first: a crash leaves rows that point at nothing, finished next time. */
async function deleteFiles(run: SweepRun, keys: readonly string[], statements: D1PreparedStatement[]): Promise<void> {
  if (keys.length > 0) {
    run.spend(1);
    await run.env.FILES.delete([...keys]);
  }
  if (statements.length > 0) {
    run.spend(1);
    await run.env.DB.batch(statements);
  }
}

const participantsSchema = z.array(z.string());

/** Recordings (call audio) older than the `recordings` period. */
async function stepRecordings(run: SweepRun, cursor: Cursor, tenantId: string): Promise<Step> {
  // One batch costs at most 5 subrequests: the policy, the rows, the holds, R2, the D1 batch.
  if (run.room(5, 0) < 1) return { cursor, stop: true };
  const days = await run.tenantDays(tenantId);
  run.spend(1);
  const { results } = await run.env.DB.prepare(
    `SELECT r.id, r.conversation_id, r.object_key, r.participant_hashes, r.started_at, c.subject_hash
     FROM recordings r LEFT JOIN conversations c ON c.id = r.conversation_id AND c.tenant_id = r.tenant_id
     WHERE r.tenant_id = ?1 AND r.started_at <= ?2 AND (r.started_at, r.id) > (?3, ?4)
     ORDER BY r.started_at, r.id LIMIT ?5`,
  )
    .bind(tenantId, expiryCutoff(run.now, days.recordings), cursor.at ?? -1, cursor.id ?? "", run.opts.batchSize)
    .all<{ id: string; conversation_id: string; object_key: string | null; participant_hashes: string; started_at: number; subject_hash: string | null }>();
  if (results.length > 0) {
    const participants = (raw: string): string[] => {
      try {
        const parsed = participantsSchema.safeParse(JSON.parse(raw));
        return parsed.success ? parsed.data : [];
      } catch {
        return [];
      }
    };
    const rows = results.map((r) => ({ ...r, subjects: [r.subject_hash, ...participants(r.participant_hashes)] }));
    const holds = await run.holds(
      tenantId,
      rows.map((r) => r.conversation_id),
      rows.flatMap((r) => r.subjects.filter((s): s is string => s !== null)),
    );
    const keys: string[] = [];
    const statements: D1PreparedStatement[] = [];
    for (const r of rows) {
      if (covers(holds, r.conversation_id, r.subjects)) {
        run.report.skippedHeld.recordings += 1;
        continue;
      }
      if (r.object_key) keys.push(r.object_key);
      statements.push(
        logIfPresent(run.env.DB, { tenantId, targetType: "recording", targetId: r.id, category: "recordings", subjectHash: r.subject_hash }, "recordings", run.now),
        run.env.DB.prepare("DELETE FROM recordings WHERE id = ? AND tenant_id = ?").bind(r.id, tenantId),
      );
      run.report.deleted.recordings += 1;
    }
    await deleteFiles(run, keys, statements);
  }
  const last = results[results.length - 1];
  if (!last || results.length < run.opts.batchSize) return { cursor: nextPhase(cursor) };
  return { cursor: { ...cursor, at: last.started_at, id: last.id } };
}

/** Recording files stored as attachments (category `recording`) older than the `recordings` period. */
async function stepRecordingFiles(run: SweepRun, cursor: Cursor, tenantId: string): Promise<Step> {
  if (run.room(5, 0) < 1) return { cursor, stop: true };
  const days = await run.tenantDays(tenantId);
  run.spend(1);
  const { results } = await run.env.DB.prepare(
    `SELECT id, conversation_id, subject_hash, r2_key, created_at FROM attachments
     WHERE tenant_id = ?1 AND category = 'recording' AND created_at <= ?2 AND (created_at, id) > (?3, ?4)
     ORDER BY created_at, id LIMIT ?5`,
  )
    .bind(tenantId, expiryCutoff(run.now, days.recordings), cursor.at ?? -1, cursor.id ?? "", run.opts.batchSize)
    .all<{ id: string; conversation_id: string; subject_hash: string; r2_key: string; created_at: number }>();
  if (results.length > 0) {
    const holds = await run.holds(
      tenantId,
      results.map((r) => r.conversation_id),
      results.map((r) => r.subject_hash),
    );
    const keys: string[] = [];
    const statements: D1PreparedStatement[] = [];
    for (const r of results) {
      if (covers(holds, r.conversation_id, [r.subject_hash])) {
        run.report.skippedHeld.recordingFiles += 1;
        continue;
      }
      keys.push(r.r2_key);
      statements.push(
        logIfPresent(run.env.DB, { tenantId, targetType: "recording", targetId: r.id, category: "recordings", subjectHash: r.subject_hash }, "attachments", run.now),
        run.env.DB.prepare("DELETE FROM attachments WHERE id = ? AND tenant_id = ?").bind(r.id, tenantId),
      );
      run.report.deleted.recordingFiles += 1;
    }
    await deleteFiles(run, keys, statements);
  }
  const last = results[results.length - 1];
  if (!last || results.length < run.opts.batchSize) return { cursor: nextPhase(cursor) };
  return { cursor: { ...cursor, at: last.created_at, id: last.id } };
}

/**
 * Security-log lines older than the period, oldest first. Ids grow with time,
 * so the expired lines are a prefix of the tenant's lines in id order: each
 * batch deletes that prefix and records it as one deletion-log entry (the id
 * range), in the same transaction.
 */
async function deleteSecurityLogPrefix(run: SweepRun, tenantId: string | null, days: number): Promise<"more" | "done" | "budget"> {
  if (run.room(2, 0) < 1) return "budget";
  // Tenant-less lines (refusals before a tenant was known) are matched with IS NULL; ?1 is then unused.
  const owned = tenantId === null ? "tenant_id IS NULL" : "tenant_id = ?1";
  run.spend(1);
  const { results } = await run.env.DB.prepare(`SELECT id, created_at FROM security_log WHERE ${owned} ORDER BY id LIMIT ?2`)
    .bind(tenantId, SECURITY_LOG_BATCH)
    .all<{ id: number; created_at: number }>();
  const cutoff = expiryCutoff(run.now, days);
  let expired = 0;
  while (expired < results.length && (results[expired]?.created_at ?? Number.POSITIVE_INFINITY) <= cutoff) expired += 1;
  const first = results[0];
  const last = results[expired - 1];
  if (first && last) {
    run.spend(1);
    await run.env.DB.batch([
      run.env.DB.prepare(
        `INSERT INTO deletion_log (id, tenant_id, target_type, target_id, category, reason, subject_hash, deleted_at)
         SELECT ?4, ?5, 'security_log_range', ?8 || ' (' || n || ' lines)', 'security_logs', ?6, NULL, ?7
         FROM (SELECT COUNT(*) AS n FROM security_log WHERE ${owned} AND id BETWEEN ?2 AND ?3) WHERE n > 0`,
      ).bind(tenantId, first.id, last.id, newId("del", run.now), tenantId ?? PLATFORM_DELETION_TENANT, REASON, run.now, `${first.id}..${last.id}`),
      run.env.DB.prepare(`DELETE FROM security_log WHERE ${owned} AND id BETWEEN ?2 AND ?3`).bind(tenantId, first.id, last.id),
    ]);
    run.report.deleted.securityLogs += expired;
  }
  // More to do only if the whole page was expired.
  return expired === SECURITY_LOG_BATCH ? "more" : "done";
}

async function stepSecurityLog(run: SweepRun, cursor: Cursor, tenantId: string): Promise<Step> {
  if (run.room(4, 0) < 1) return { cursor, stop: true };
  const days = await run.tenantDays(tenantId);
  const holds = await run.holds(tenantId, [], []);
  if (holds.tenant) return { cursor: nextPhase(cursor) };
  const outcome = await deleteSecurityLogPrefix(run, tenantId, days.security);
  if (outcome === "budget") return { cursor, stop: true };
  return { cursor: outcome === "more" ? cursor : nextPhase(cursor) };
}

/** Voice models whose consent lapsed (or whose withdrawal was interrupted), except held ones. */
async function stepVoiceModels(run: SweepRun, cursor: Cursor, tenantId: string): Promise<Step> {
  // A lapsed model costs about 4 subrequests (its row, R2, the D1 batch, the next read); lapses are rare.
  if (run.room(4, 2) < 1) return { cursor, stop: true };
  run.spend(1);
  const { results: holdRows } = await run.env.DB.prepare("SELECT scope, target FROM legal_holds WHERE tenant_id = ? AND released_at IS NULL AND scope IN ('tenant', 'subject')")
    .bind(tenantId)
    .all<{ scope: string; target: string | null }>();
  if (holdRows.length === 0) {
    const deleted = await purgeLapsedVoiceModels(run.env, tenantId, run.now);
    run.spend(2 + 4 * deleted);
    run.report.deleted.voiceModels += deleted;
    return { cursor: nextPhase(cursor) };
  }
  const heldSubjects = new Set(holdRows.filter((h) => h.scope === "subject" && h.target).map((h) => h.target));
  const tenantHeld = holdRows.some((h) => h.scope === "tenant");
  run.spend(1);
  const { results } = await run.env.DB.prepare(
    `SELECT id, subject_hash, status FROM voice_models WHERE tenant_id = ?1 AND (status = 'deleting' OR (expires_at IS NOT NULL AND expires_at <= ?2)) AND id > ?3
     ORDER BY id LIMIT ?4`,
  )
    .bind(tenantId, run.now, cursor.id ?? "", run.opts.batchSize)
    .all<{ id: string; subject_hash: string; status: "active" | "deleting" }>();
  for (const model of results) {
    if (tenantHeld || heldSubjects.has(model.subject_hash)) {
      run.report.skippedHeld.voiceModels += 1;
      continue;
    }
    run.spend(4);
    run.report.deleted.voiceModels += await purgeVoiceModels(
      run.env,
      tenantId,
      { id: model.id, reason: model.status === "deleting" ? "consent_withdrawn" : "consent_expired" },
      { actorType: "system", actorId: null },
    );
  }
  const last = results[results.length - 1];
  if (!last || results.length < run.opts.batchSize) return { cursor: nextPhase(cursor) };
  return { cursor: { ...cursor, id: last.id } };
}

/** Agent-health dedupe keys (no tenant, no personal data) older than a week; one deletion-log entry per batch. */
async function stepAgentHealthKeys(run: SweepRun): Promise<Step> {
  if (run.room(1, 1) < 1) return { cursor: { tenantId: null, phase: "agent_health_keys", pending: [], at: null, id: null }, stop: true };
  run.spend(1);
  const [deleted] = await run.env.DB.batch([
    run.env.DB.prepare("DELETE FROM agent_health_keys WHERE key IN (SELECT key FROM agent_health_keys WHERE created_at <= ?1 ORDER BY created_at LIMIT ?2)").bind(
      expiryCutoff(run.now, AGENT_HEALTH_KEY_DAYS),
      AGENT_HEALTH_KEY_BATCH,
    ),
    // changes() is the DELETE's row count: the entry is written only when something was deleted.
    run.env.DB.prepare(
      `INSERT INTO deletion_log (id, tenant_id, target_type, target_id, category, reason, subject_hash, deleted_at)
       SELECT ?1, ?2, 'agent_health_keys', changes() || ' keys', 'agent_health', ?3, NULL, ?4 WHERE changes() > 0`,
    ).bind(newId("del", run.now), PLATFORM_DELETION_TENANT, REASON, run.now),
  ]);
  const count = deleted?.meta.changes ?? 0;
  run.report.deleted.agentHealthKeys += count;
  return { cursor: { tenantId: null, phase: count === AGENT_HEALTH_KEY_BATCH ? "agent_health_keys" : "billing_events", pending: [], at: null, id: null } };
}

/**
 * Stripe event metadata (`payment_metadata`) older than its tenant's period
 * (events naming no tenant: the default period), except for tenants under a
 * legal hold. One deletion-log entry per tenant and batch, written in the same
 * D1 batch as the delete; the rows hold no personal data, so no subject hash.
 */
async function stepBillingEvents(run: SweepRun): Promise<Step> {
  const here: Cursor = { tenantId: null, phase: "billing_events", pending: [], at: null, id: null };
  if (run.room(2, 1) < 1) return { cursor: here, stop: true };
  const rule = RETENTION_RULES.payment_metadata;
  run.spend(1);
  const { results } = await run.env.DB.prepare(
    `SELECT b.id, b.tenant_id FROM billing_events b
     WHERE b.received_at <= ?1 - ?2 * COALESCE(
             (SELECT MIN(MAX(p.days, ?3), ?4) FROM retention_policies p WHERE p.tenant_id = b.tenant_id AND p.category = 'payment_metadata'), ?5)
       AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.tenant_id = b.tenant_id AND h.released_at IS NULL AND h.scope = 'tenant')
     ORDER BY b.received_at LIMIT ?6`,
  )
    .bind(run.now, DAY_MS, rule.minDays, rule.maxDays, rule.defaultDays, BILLING_EVENT_BATCH)
    .all<{ id: string; tenant_id: string | null }>();
  const byTenant = new Map<string, string[]>();
  for (const row of results) {
    const owner = row.tenant_id ?? PLATFORM_DELETION_TENANT;
    byTenant.set(owner, [...(byTenant.get(owner) ?? []), row.id]);
  }
  const statements: D1PreparedStatement[] = [];
  for (const [owner, ids] of byTenant) {
    const list = JSON.stringify(ids);
    statements.push(
      run.env.DB.prepare(
        `INSERT INTO deletion_log (id, tenant_id, target_type, target_id, category, reason, subject_hash, deleted_at)
         SELECT ?1, ?2, 'billing_events', n || ' events', 'payment_metadata', ?3, NULL, ?4
         FROM (SELECT COUNT(*) AS n FROM billing_events WHERE id IN (SELECT value FROM json_each(?5))) WHERE n > 0`,
      ).bind(newId("del", run.now), owner, REASON, run.now, list),
      run.env.DB.prepare("DELETE FROM billing_events WHERE id IN (SELECT value FROM json_each(?1))").bind(list),
    );
  }
  if (statements.length > 0) {
    run.spend(1);
    const outcomes = await run.env.DB.batch(statements);
    run.report.deleted.billingEvents += outcomes.filter((_, i) => i % 2 === 1).reduce((n, r) => n + (r.meta.changes ?? 0), 0);
  }
  return { cursor: results.length === BILLING_EVENT_BATCH ? here : null };
}

async function step(run: SweepRun, cursor: Cursor): Promise<Step> {
  const tenantId = cursor.tenantId;
  switch (cursor.phase) {
    case "tenants":
      return stepTenants(run, cursor);
    case "platform_security_log": {
      const outcome = await deleteSecurityLogPrefix(run, null, RETENTION_RULES.security_logs.defaultDays);
      if (outcome === "budget") return { cursor, stop: true };
      return { cursor: outcome === "more" ? cursor : { tenantId: null, phase: "agent_health_keys", pending: [], at: null, id: null } };
    }
    case "agent_health_keys":
      return stepAgentHealthKeys(run);
    case "billing_events":
      return stepBillingEvents(run);
    default:
      if (tenantId === null) return { cursor: cycleEnd() };
      switch (cursor.phase) {
        case "conversations":
          return stepConversations(run, cursor, tenantId);
        case "special":
          return stepSpecial(run, cursor, tenantId);
        case "recordings":
          return stepRecordings(run, cursor, tenantId);
        case "recording_files":
          return stepRecordingFiles(run, cursor, tenantId);
        case "security_log":
          return stepSecurityLog(run, cursor, tenantId);
        case "voice_models":
          return stepVoiceModels(run, cursor, tenantId);
      }
  }
}

// ---------------------------------------------------------------- state and lease

async function loadState(env: Env): Promise<SweepState> {
  const row = await env.DB.prepare("SELECT cursor FROM sweep_state WHERE name = ?").bind(STATE_NAME).first<{ cursor: string | null }>();
  if (row?.cursor) {
    try {
      const parsed = stateSchema.safeParse(JSON.parse(row.cursor));
      if (parsed.success) return parsed.data;
    } catch {
      // unreadable: start a new cycle
    }
    console.warn("retention sweep: stored state unreadable; starting a new cycle");
  }
  return { v: 1, cursor: null, cycleStartedAt: null, cycleSpecial: false, lastSpecialScanAt: null };
}

/** Takes the sweep lease (wall clock, not the scheduled time: runs may simulate any "now"). Null when another run holds it. */
async function acquireLease(env: Env, budgetMs: number): Promise<string | null> {
  const token = crypto.randomUUID();
  const wall = Date.now();
  const result = await env.DB.prepare(
    `INSERT INTO sweep_state (name, cursor, last_run_at, last_deleted) VALUES (?1, ?2, ?3, 0)
     ON CONFLICT(name) DO UPDATE SET cursor = excluded.cursor, last_run_at = excluded.last_run_at
     WHERE sweep_state.cursor IS NULL OR COALESCE(json_extract(sweep_state.cursor, '$.until'), 0) < ?3`,
  )
    .bind(LEASE_NAME, JSON.stringify({ token, until: wall + budgetMs + LEASE_MARGIN_MS }), wall)
    .run();
  return result.meta.changes === 1 ? token : null;
}

async function releaseLease(env: Env, token: string): Promise<void> {
  await env.DB.prepare("UPDATE sweep_state SET cursor = NULL WHERE name = ? AND json_extract(cursor, '$.token') = ?").bind(LEASE_NAME, token).run();
}

/**
 * Runs the retention sweep for `nowMs` (the cron event's scheduledTime): one
 * bounded slice of the current cycle, resuming where the previous run stopped.
 * Safe to run again at any time; returns what it did.
 */
export async function runRetentionSweep(env: Env, nowMs: number, options: Partial<SweepOptions> = {}): Promise<RetentionSweepReport> {
  const opts: SweepOptions = { ...SWEEP_DEFAULTS, ...options };
  const lease = await acquireLease(env, opts.budgetMs);
  if (!lease) {
    const report = emptyReport(nowMs);
    report.locked = true;
    console.log(JSON.stringify({ event: "retention_sweep", ...report }));
    return report;
  }
  const state = await loadState(env);
  const run = new SweepRun(env, nowMs, opts, state, lease);
  run.spend(2);
  try {
    let cursor: Cursor | null = state.cursor;
    if (cursor) {
      run.report.resumedFrom = position(cursor);
    } else {
      cursor = { tenantId: null, phase: "tenants", pending: [], at: null, id: null };
      state.cycleStartedAt = nowMs;
      // The special-category window has no index: scan it in at most one cycle every few hours (or when the clock moved back).
      state.cycleSpecial = state.lastSpecialScanAt === null || nowMs - state.lastSpecialScanAt >= SPECIAL_SCAN_INTERVAL_MS || nowMs < state.lastSpecialScanAt;
    }
    while (cursor) {
      if (run.outOfTime()) break;
      const result: Step = await step(run, cursor);
      run.report.steps += 1;
      if (result.stop) break;
      cursor = result.cursor;
      if (cursor) await run.save(cursor);
    }
    if (cursor) {
      run.report.stoppedAt = position(cursor);
      await run.save(cursor, {}, true);
    } else {
      run.report.done = true;
      await run.save(null, state.cycleSpecial ? { lastSpecialScanAt: state.cycleStartedAt } : {}, true);
    }
  } finally {
    run.report.elapsedMs = Date.now() - run.started;
    await releaseLease(env, lease).catch((err: unknown) => console.error("retention sweep: lease release failed", err instanceof Error ? err.message : String(err)));
  }
  console.log(JSON.stringify({ event: "retention_sweep", ...run.report }));
  return run.report;
}
