/**
 * What a tenant backup holds and how a restore writes it back (pure: the D1
 * schema and zod only).
 *
 * Every D1 table is either backed up (BACKUP_TABLES, in foreign-key order) or
 * deliberately left out (EXCLUDED_TABLES, with the reason); a unit test fails
 * when a new table is added to the schema without a decision here.
 *
 * Restore principle: a restore brings back what was lost; it never rolls back a
 * privacy or security decision taken since the backup, and nothing that was
 * deleted (per the deletion log) comes back. So most tables are *filled in*
 * (backup rows that are missing are inserted, rows that exist are left as they
 * are: a revoked key stays revoked, a released hold stays released, a completed
 * erasure keeps its destroyed address), append-only tables are filled in
 * without ever touching an existing row, and only the tenant's own
 * configuration (settings, knowledge base) is put back as it was.
 */
import { getTableConfig, type SQLiteTable } from "drizzle-orm/sqlite-core";
import { z } from "zod";
import * as core from "../d1/schema";
import * as privacy from "../d1/schema-privacy";

/**
 * How a table's rows are written back:
 * - `fill`: insert backup rows whose key is missing; existing rows win.
 * - `fill_if_empty`: like `fill`, but only when the tenant has no row in `emptyCheck` now
 *   (a set that is replaced as a whole, like the RPO copy: never mix two consultations).
 * - `append_only`: like `fill`, written as INSERT … SELECT … WHERE NOT EXISTS so the
 *   append-only triggers (which abort on any collision) never fire.
 * - `overwrite`: the backup's row replaces the current one (tenant settings).
 * - `replace`: the tenant's rows are deleted and the backup's inserted, in one batch
 *   (the knowledge base, which the API also replaces as a whole).
 * - `conversation`: index rows travel with each conversation object's snapshot and are
 *   rebuilt by the object itself on import.
 */
export type RestoreMode = "fill" | "fill_if_empty" | "append_only" | "overwrite" | "replace" | "conversation";

export interface BackupTableSpec {
  name: string;
  table: SQLiteTable;
  /** How rows belong to a tenant. */
  scope: "id" | "tenant_id" | "campaign";
  mode: RestoreMode;
  /** For `fill_if_empty`: the table whose (current) emptiness allows the restore. */
  emptyCheck?: string;
  /** Deletion-log target types naming a row of this table by its `id`. */
  entities?: readonly string[];
  /** Column holding the conversation a row belongs to (skipped when that conversation was deleted). */
  conversationColumn?: string;
  /** Column holding the row's subject hash (skipped, or redacted, when the subject was erased). */
  subjectColumn?: string;
  /** Instead of skipping a row of an erased subject, null these columns (and keep the row). */
  redactOnErasure?: readonly string[];
  /** When the row came into being: deletions older than that concern an earlier incarnation. */
  timeColumn?: string;
  /** Column holding an R2 object key: the row is restored only while the object still exists. */
  objectColumn?: string;
  /** Rows that are not restored whatever else holds (e.g. a voice model being deleted). */
  skipWhen?: { column: string; equals: string };
}

const spec = (name: string, table: SQLiteTable, rest: Omit<BackupTableSpec, "name" | "table">): BackupTableSpec => ({ name, table, ...rest });

/** Backed-up tables, in the order they are written and restored (parents before children). */
export const BACKUP_TABLES: readonly BackupTableSpec[] = [
  spec("tenants", core.tenants, { scope: "id", mode: "fill" }),
  spec("settings", core.settings, { scope: "tenant_id", mode: "overwrite" }),
  spec("api_keys", core.apiKeys, { scope: "tenant_id", mode: "fill", entities: ["api_key"] }),
  spec("channels", core.channels, { scope: "tenant_id", mode: "fill", entities: ["channel"] }),
  spec("knowledge_entries", core.knowledgeEntries, { scope: "tenant_id", mode: "replace" }),
  spec("retention_policies", privacy.retentionPolicies, { scope: "tenant_id", mode: "fill" }),
  spec("legal_holds", privacy.legalHolds, { scope: "tenant_id", mode: "fill", entities: ["legal_hold"] }),
  spec("notices", core.notices, { scope: "tenant_id", mode: "append_only", entities: ["notice"] }),
  spec("consents", core.consents, { scope: "tenant_id", mode: "append_only", entities: ["consent"] }),
  spec("consent_evidence", core.consentEvidence, { scope: "tenant_id", mode: "fill" }),
  spec("subject_profiles", core.subjectProfiles, { scope: "tenant_id", mode: "fill", subjectColumn: "subject_hash", timeColumn: "updated_at" }),
  spec("subject_restrictions", privacy.subjectRestrictions, { scope: "tenant_id", mode: "fill" }),
  spec("dsr_requests", privacy.dsrRequests, {
    scope: "tenant_id",
    mode: "fill",
    entities: ["dsr_request"],
    subjectColumn: "subject_hash",
    redactOnErasure: ["subject_sealed", "verification_code_hash"],
    timeColumn: "received_at",
  }),
  spec("rpo_registers", core.rpoRegisters, { scope: "tenant_id", mode: "fill_if_empty", emptyCheck: "rpo_registers" }),
  spec("rpo_numbers", core.rpoNumbers, { scope: "tenant_id", mode: "fill_if_empty", emptyCheck: "rpo_registers" }),
  spec("campaigns", core.campaigns, { scope: "tenant_id", mode: "fill", entities: ["campaign"] }),
  spec("campaign_recipients", core.campaignRecipients, { scope: "campaign", mode: "fill" }),
  spec("voice_models", core.voiceModels, {
    scope: "tenant_id",
    mode: "fill",
    entities: ["voice_model"],
    subjectColumn: "subject_hash",
    timeColumn: "created_at",
    objectColumn: "object_key",
    skipWhen: { column: "status", equals: "deleting" },
  }),
  spec("recordings", core.recordings, { scope: "tenant_id", mode: "fill", entities: ["recording"], conversationColumn: "conversation_id", timeColumn: "started_at", objectColumn: "object_key" }),
  spec("attachments", privacy.attachments, {
    scope: "tenant_id",
    mode: "fill",
    entities: ["attachment", "recording"],
    conversationColumn: "conversation_id",
    subjectColumn: "subject_hash",
    timeColumn: "created_at",
    objectColumn: "r2_key",
  }),
  spec("conversations", core.conversations, { scope: "tenant_id", mode: "conversation", entities: ["conversation"], subjectColumn: "subject_hash", timeColumn: "created_at" }),
];

/** Tables a backup deliberately does not contain, and why. */
export const EXCLUDED_TABLES: Readonly<Record<string, string>> = {
  // Crypto-shredding: erasing a subject destroys its data key, and that must hold against every copy.
  // A backup that carried wrapped subject keys would let a restore undo an erasure; without them,
  // restored content of an erased subject stays sealed under a key that no longer exists ("[erased]").
  subject_keys: "crypto-shredding: destroyed subject keys must stay destroyed, so keys are never copied into backups",
  deletion_log: "the authority a restore re-applies; it is only ever appended to and never rolled back",
  audit_log: "append-only evidence with its own retention; restoring rows would rewrite history (and break the hash chain)",
  audit_chain: "hash chain of the audit log; derived from it and never rewritten",
  security_log: "append-only evidence with its own retention (security logs); never rewritten by a restore",
  agent_health: "derived counters (no content), rebuilt by use",
  agent_health_keys: "ephemeral dedupe keys, pruned after a week",
  ai_usage: "derived usage counters for the daily budget",
  sweep_state: "sweep cursors: platform bookkeeping, not tenant data",
  backups: "the catalogue of backups itself (a backup does not contain backups)",
  billing_events: "Stripe keeps the authoritative event history (and redelivers); the plan it set travels with `tenants`",
};

/** SQL column names of a backed-up table, from the drizzle schema. */
export function tableColumns(spec: BackupTableSpec): string[] {
  return getTableConfig(spec.table).columns.map((c) => c.name);
}

/** Primary-key columns of a table (single-column `primaryKey()` or a composite `primaryKey({ columns })`). */
export function primaryKeyColumns(spec: BackupTableSpec): string[] {
  const config = getTableConfig(spec.table);
  const single = config.columns.filter((c) => c.primary).map((c) => c.name);
  if (single.length > 0) return single;
  return config.primaryKeys[0]?.columns.map((c) => c.name) ?? [];
}

export const tableSpec = (name: string): BackupTableSpec | undefined => BACKUP_TABLES.find((t) => t.name === name);

// ---------------------------------------------------------------- records

const scalar = z.union([z.string(), z.number(), z.null()]);
export type Scalar = z.infer<typeof scalar>;

/** First record: what the backup is. */
export const headerRecord = z.object({
  t: z.literal("header"),
  format: z.literal("parley-tenant-backup"),
  version: z.literal(1),
  tenantId: z.string().min(1),
  backupId: z.string().min(1),
  /** The backup's time (the scheduled time for nightly backups): retention counts from it. */
  createdAt: z.number().int(),
  /** Wall-clock time the capture started. */
  capturedAt: z.number().int(),
});

/** Starts a table's rows (written even when the table is empty, so `replace` knows it was empty). */
export const tableRecord = z.object({ t: z.literal("table"), table: z.string(), columns: z.array(z.string().regex(/^[a-z_][a-z0-9_]*$/)).min(1) });

/** One row, positional in the columns of the preceding table record. */
export const rowRecord = z.object({ t: z.literal("row"), v: z.array(scalar) });

/** A conversation object's snapshot as exported (bodies sealed under the subject key), with its index row. */
export const snapshotSchema = z.object({
  version: z.literal(1),
  meta: z.record(z.string(), z.string()),
  messages: z.array(z.record(z.string(), scalar)),
  vault: z.array(z.object({ placeholder: z.string(), original: z.string() })),
});

export const conversationRecord = z.object({
  t: z.literal("conversation"),
  id: z.string().min(1),
  index: z.record(z.string(), scalar),
  snapshot: snapshotSchema,
});

/** Last record: counts to check the backup is complete. */
export const endRecord = z.object({ t: z.literal("end"), rows: z.number().int().min(0), conversations: z.number().int().min(0) });

export const backupRecord = z.discriminatedUnion("t", [headerRecord, tableRecord, rowRecord, conversationRecord, endRecord]);
export type BackupRecord = z.infer<typeof backupRecord>;
export type ConversationRecord = z.infer<typeof conversationRecord>;

// ---------------------------------------------------------------- deletion log

/**
 * The tenant's deletion log, as a restore needs it: when each target was last
 * deleted, and when each subject was erased (subject key destroyed).
 */
export class DeletionIndex {
  readonly #targets = new Map<string, { at: number; reason: string }>();
  readonly #subjects = new Map<string, number>();

  add(targetType: string, targetId: string, deletedAt: number, reason = ""): void {
    if (targetType === "subject_key") {
      this.#subjects.set(targetId, Math.max(this.#subjects.get(targetId) ?? -Infinity, deletedAt));
      return;
    }
    const key = `${targetType}\n${targetId}`;
    const known = this.#targets.get(key);
    if (!known || deletedAt >= known.at) this.#targets.set(key, { at: deletedAt, reason });
  }

  /** Latest deletion of `id` as any of `types`, or undefined. */
  deletedAt(types: readonly string[], id: string): number | undefined {
    return this.latest(types, id)?.at;
  }

  /** Latest deletion of `id` as any of `types` (time and logged reason), or undefined. */
  latest(types: readonly string[], id: string): { at: number; reason: string } | undefined {
    let found: { at: number; reason: string } | undefined;
    for (const type of types) {
      const entry = this.#targets.get(`${type}\n${id}`);
      if (entry && (!found || entry.at > found.at)) found = entry;
    }
    return found;
  }

  /** Latest erasure of a subject, or undefined. */
  erasedAt(subjectHash: string): number | undefined {
    return this.#subjects.get(subjectHash);
  }

  get size(): number {
    return this.#targets.size + this.#subjects.size;
  }
}

/**
 * Whether a deletion applies to a row that came into being at `bornAt`.
 * Conversation ids are deterministic (one per channel and person), so a person
 * who writes again after an erasure gets a new conversation with the same id:
 * a deletion logged before that conversation was created concerns the earlier
 * one. Deletion times are never later than the real deletion (sweeps log their
 * scheduled time, erasures the time they started), so this errs on the side of
 * keeping things deleted. Rows without a known birth time are always covered.
 */
export function deletionCovers(deletedAt: number | undefined, bornAt: number | null | undefined): boolean {
  if (deletedAt === undefined) return false;
  return bornAt === null || bornAt === undefined || !Number.isFinite(bornAt) || deletedAt >= bornAt;
}

export type RowVerdict = { action: "restore"; row: Record<string, Scalar> } | { action: "skip"; reason: "deleted" | "erased_subject" | "deleted_conversation" | "excluded" };

/** What the deletion log says about one backed-up row (before any R2 or D1 check). */
export function judgeRow(spec: BackupTableSpec, row: Record<string, Scalar>, deletions: DeletionIndex): RowVerdict {
  if (spec.skipWhen && row[spec.skipWhen.column] === spec.skipWhen.equals) return { action: "skip", reason: "excluded" };
  const bornAt = spec.timeColumn ? numberOrNull(row[spec.timeColumn]) : null;
  const id = typeof row.id === "string" ? row.id : null;
  if (spec.entities && id) {
    const at = deletions.deletedAt(spec.entities, id);
    // Random ids never come back, except conversation ids (see deletionCovers).
    if (spec.mode === "conversation" ? deletionCovers(at, bornAt) : at !== undefined) return { action: "skip", reason: "deleted" };
  }
  if (spec.objectColumn) {
    const objectKey = row[spec.objectColumn];
    if (typeof objectKey === "string" && deletions.deletedAt(["r2_object"], objectKey) !== undefined) return { action: "skip", reason: "deleted" };
  }
  if (spec.conversationColumn) {
    const conversationId = row[spec.conversationColumn];
    if (typeof conversationId === "string" && deletionCovers(deletions.deletedAt(["conversation"], conversationId), bornAt)) {
      return { action: "skip", reason: "deleted_conversation" };
    }
  }
  if (spec.subjectColumn) {
    const subject = row[spec.subjectColumn];
    if (typeof subject === "string" && deletionCovers(deletions.erasedAt(subject), bornAt)) {
      if (!spec.redactOnErasure) return { action: "skip", reason: "erased_subject" };
      const redacted = { ...row };
      for (const column of spec.redactOnErasure) if (column in redacted) redacted[column] = null;
      return { action: "restore", row: redacted };
    }
  }
  return { action: "restore", row };
}

function numberOrNull(value: Scalar | undefined): number | null {
  if (typeof value === "number") return value;
  if (typeof value === "string" && /^\d+$/.test(value)) return Number(value);
  return null;
}
