/** Audit and security log writers. Entries carry ids and counts, never message text or identifiers. */
import type { AuthContext } from "./context";

export interface AuditEntry {
  tenantId: string | null;
  actorType: "api_key" | "platform" | "system" | "provider";
  actorId: string | null;
  action: string;
  targetType?: string;
  targetId?: string;
  detail?: Record<string, string | number | boolean | null>;
}

/** Prepared insert of an audit entry, so callers can batch it with the write it records. */
export function auditStatement(db: D1Database, entry: AuditEntry): D1PreparedStatement {
  return db
    .prepare(
      "INSERT INTO audit_log (tenant_id, actor_type, actor_id, action, target_type, target_id, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(
      entry.tenantId,
      entry.actorType,
      entry.actorId,
      entry.action,
      entry.targetType ?? null,
      entry.targetId ?? null,
      entry.detail ? JSON.stringify(entry.detail) : null,
      Date.now(),
    );
}

/** Audit entry for an action taken with a tenant API key. */
export function keyAudit(auth: AuthContext, action: string, targetType: string, targetId: string, detail?: AuditEntry["detail"]): AuditEntry {
  return { tenantId: auth.tenantId, actorType: "api_key", actorId: auth.keyId, action, targetType, targetId, ...(detail ? { detail } : {}) };
}

/** Records a refused request (bad signature, replay…). The only trace a refused webhook leaves. */
export async function logSecurityEvent(
  db: D1Database,
  event: { tenantId: string | null; channelId: string | null; kind: string; reason: string },
): Promise<void> {
  try {
    await db
      .prepare("INSERT INTO security_log (tenant_id, channel_id, kind, reason, created_at) VALUES (?, ?, ?, ?, ?)")
      .bind(event.tenantId, event.channelId, event.kind, event.reason, Date.now())
      .run();
  } catch (err) {
    console.error("security log write failed", err instanceof Error ? err.message : String(err));
  }
}
