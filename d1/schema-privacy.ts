/**
 * D1 tables for retention, erasure and data-subject rights (issue 5): subject
 * data keys, retention policies, legal holds, sweep cursors, attachments,
 * data-subject requests and backups. Like the rest of D1: no message text, and
 * subjects only as keyed hashes (or encrypted, where the address must be usable).
 */
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/** Per-subject AES-256 data keys, wrapped by MASTER_KEY; destroying one crypto-shreds the subject's content. */
export const subjectKeys = sqliteTable(
  "subject_keys",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    subjectHash: text("subject_hash").notNull(),
    /** Envelope of the raw key; NULL once destroyed. */
    wrappedKey: text("wrapped_key"),
    createdAt: integer("created_at").notNull(),
    destroyedAt: integer("destroyed_at"),
  },
  (t) => [uniqueIndex("subject_keys_live_unique").on(t.tenantId, t.subjectHash).where(sql`destroyed_at IS NULL`), index("subject_keys_subject_idx").on(t.tenantId, t.subjectHash)],
);

/** Tenant overrides of the default retention periods (days), within each category's legal bounds. */
export const retentionPolicies = sqliteTable(
  "retention_policies",
  {
    tenantId: text("tenant_id").notNull(),
    category: text("category").notNull(),
    days: integer("days").notNull(),
    updatedAt: integer("updated_at").notNull(),
    updatedBy: text("updated_by"),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.category] })],
);

/** Legal holds: held data survives sweeps and erasure until released. */
export const legalHolds = sqliteTable(
  "legal_holds",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    scope: text("scope", { enum: ["tenant", "subject", "conversation"] }).notNull(),
    /** Subject hash or conversation id; NULL for a tenant-wide hold. */
    target: text("target"),
    reason: text("reason").notNull(),
    createdAt: integer("created_at").notNull(),
    createdBy: text("created_by"),
    releasedAt: integer("released_at"),
    releasedBy: text("released_by"),
  },
  (t) => [index("legal_holds_active_idx").on(t.tenantId, t.releasedAt, t.scope, t.target)],
);

/** Where each sweep stopped, so the next run resumes there. */
export const sweepState = sqliteTable("sweep_state", {
  name: text("name").primaryKey(),
  cursor: text("cursor"),
  lastRunAt: integer("last_run_at"),
  lastDeleted: integer("last_deleted").notNull().default(0),
});

/** Files in R2 (attachments, recordings), encrypted per object; the R2 key and metadata hold no identifiers. */
export const attachments = sqliteTable(
  "attachments",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    conversationId: text("conversation_id").notNull(),
    subjectHash: text("subject_hash").notNull(),
    category: text("category", { enum: ["attachment", "recording"] }).notNull(),
    r2Key: text("r2_key").notNull(),
    contentType: text("content_type").notNull(),
    size: integer("size").notNull(),
    /** Subject key the object's data key is wrapped with. */
    keyId: text("key_id").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("attachments_conversation_idx").on(t.tenantId, t.conversationId), index("attachments_subject_idx").on(t.tenantId, t.subjectHash), index("attachments_created_idx").on(t.tenantId, t.category, t.createdAt)],
);

/** Data-subject requests (GDPR arts. 15–21). */
export const dsrRequests = sqliteTable(
  "dsr_requests",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    type: text("type", { enum: ["access", "portability", "erasure", "rectification", "restriction", "objection"] }).notNull(),
    status: text("status", { enum: ["received", "verified", "in_progress", "completed", "rejected"] }).notNull(),
    subjectHash: text("subject_hash").notNull(),
    /** The subject's address, sealed under MASTER_KEY: needed to verify and to export, destroyed on completion of an erasure. */
    subjectSealed: text("subject_sealed"),
    verificationMethod: text("verification_method").notNull(),
    /** SHA-256 of the one-time verification code. */
    verificationCodeHash: text("verification_code_hash"),
    verificationAttempts: integer("verification_attempts").notNull().default(0),
    details: text("details"),
    receivedAt: integer("received_at").notNull(),
    dueAt: integer("due_at").notNull(),
    extensionReason: text("extension_reason"),
    verifiedAt: integer("verified_at"),
    completedAt: integer("completed_at"),
    rejectedReason: text("rejected_reason"),
    /** JSON: counts and the reason a held subject was not erased. */
    result: text("result"),
  },
  (t) => [index("dsr_tenant_idx").on(t.tenantId, t.status, t.dueAt), index("dsr_subject_idx").on(t.tenantId, t.subjectHash)],
);

/** Active restrictions (GDPR art. 18) and objections (art. 21): no AI processing or marketing. */
export const subjectRestrictions = sqliteTable(
  "subject_restrictions",
  {
    tenantId: text("tenant_id").notNull(),
    subjectHash: text("subject_hash").notNull(),
    kind: text("kind", { enum: ["restriction", "objection"] }).notNull(),
    dsrId: text("dsr_id"),
    createdAt: integer("created_at").notNull(),
    liftedAt: integer("lifted_at"),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.subjectHash, t.kind] })],
);

/** Encrypted tenant backups in R2 (rolling 30 days). */
export const backups = sqliteTable(
  "backups",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    r2Key: text("r2_key").notNull(),
    size: integer("size").notNull(),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [index("backups_tenant_idx").on(t.tenantId, t.createdAt), index("backups_expiry_idx").on(t.expiresAt)],
);

/** Hash chain of the audit log: each entry's hash covers the previous one. */
export const auditChain = sqliteTable("audit_chain", {
  auditId: integer("audit_id").primaryKey(),
  tenantId: text("tenant_id"),
  prevHash: text("prev_hash").notNull(),
  hash: text("hash").notNull(),
});
