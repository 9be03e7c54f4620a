/**
 * Deleting a conversation from every store: its Durable Object (storage and
 * alarm), its D1 index row, its R2 objects (attachments, recordings) and their
 * rows, with one deletion-log entry each (keyed subject hash, never the identifier).
 */
import { newId } from "../../lib/ids";
import { conversationStub } from "./ingest";

/** Why something was deleted: recorded in the deletion log and replayed after a backup restore. */
export type DeletionReason = "retention_expired" | "dsr_erasure" | "tenant_request" | "consent_withdrawn" | "consent_expired";

export interface ErasedCounts {
  messages: number;
  attachments: number;
  recordings: number;
}

function logEntry(db: D1Database, tenantId: string, targetType: string, targetId: string, category: string, reason: DeletionReason, subjectHash: string | null, now: number): D1PreparedStatement {
  return db
    .prepare("INSERT INTO deletion_log (id, tenant_id, target_type, target_id, category, reason, subject_hash, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    .bind(newId("del", now), tenantId, targetType, targetId, category, reason, subjectHash, now);
}

/** Options of {@link eraseConversation}. */
export interface EraseOptions {
  /**
   * false: write no deletion-log entries. Only for re-applying deletions that
   * are already in the log (a backup restore); every first deletion is logged.
   */
  log?: boolean;
}

/**
 * Erases one conversation everywhere. Idempotent: running it again on a gone
 * conversation deletes nothing and logs nothing new (at-least-once sweeps).
 */
export async function eraseConversation(
  env: Env,
  tenantId: string,
  conversationId: string,
  reason: DeletionReason,
  now = Date.now(),
  options: EraseOptions = {},
): Promise<ErasedCounts> {
  const log = options.log !== false;
  const index = await env.DB.prepare("SELECT subject_hash, special_category FROM conversations WHERE id = ? AND tenant_id = ?")
    .bind(conversationId, tenantId)
    .first<{ subject_hash: string; special_category: number }>();
  const { results: files } = await env.DB.prepare("SELECT id, r2_key, category, subject_hash FROM attachments WHERE tenant_id = ? AND conversation_id = ?")
    .bind(tenantId, conversationId)
    .all<{ id: string; r2_key: string; category: string; subject_hash: string }>();
  const { results: recordings } = await env.DB.prepare("SELECT id, object_key FROM recordings WHERE tenant_id = ? AND conversation_id = ?")
    .bind(tenantId, conversationId)
    .all<{ id: string; object_key: string | null }>();
  // Objects first: if we crash after this, the rows still point at them and the next run finishes the job.
  const objectKeys = [...files.map((f) => f.r2_key), ...recordings.flatMap((r) => (r.object_key ? [r.object_key] : []))];
  for (let i = 0; i < objectKeys.length; i += 1000) await env.FILES.delete(objectKeys.slice(i, i + 1000));
  const { messages } = await conversationStub(env, conversationId).erase();
  const subjectHash = index?.subject_hash ?? files[0]?.subject_hash ?? null;
  const statements: D1PreparedStatement[] = [];
  for (const f of files) {
    statements.push(env.DB.prepare("DELETE FROM attachments WHERE id = ?").bind(f.id));
    if (log) statements.push(logEntry(env.DB, tenantId, f.category, f.id, f.category === "recording" ? "recordings" : "conversation_logs", reason, subjectHash, now));
  }
  for (const r of recordings) {
    statements.push(env.DB.prepare("DELETE FROM recordings WHERE id = ?").bind(r.id));
    if (log) statements.push(logEntry(env.DB, tenantId, "recording", r.id, "recordings", reason, subjectHash, now));
  }
  if (index) {
    statements.push(env.DB.prepare("DELETE FROM conversations WHERE id = ? AND tenant_id = ?").bind(conversationId, tenantId));
    if (log) statements.push(logEntry(env.DB, tenantId, "conversation", conversationId, "conversation_logs", reason, subjectHash, now));
  }
  if (statements.length > 0) await env.DB.batch(statements);
  return { messages, attachments: files.length, recordings: recordings.length };
}
