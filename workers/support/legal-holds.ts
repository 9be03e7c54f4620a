/** Legal-hold lookups: held data survives retention sweeps and erasure requests. */

/** An active hold that covers the target, or null. */
export interface ActiveHold {
  id: string;
  scope: "tenant" | "subject" | "conversation";
  reason: string;
}

/**
 * The first active hold covering a tenant, a subject or a conversation
 * (a tenant-wide hold covers everything of the tenant).
 */
export async function activeHold(env: Env, tenantId: string, target: { subjectHash?: string | null; conversationId?: string | null }): Promise<ActiveHold | null> {
  const row = await env.DB.prepare(
    `SELECT id, scope, reason FROM legal_holds WHERE tenant_id = ?1 AND released_at IS NULL AND (
       scope = 'tenant' OR (scope = 'subject' AND target = ?2) OR (scope = 'conversation' AND target = ?3)
     ) ORDER BY created_at LIMIT 1`,
  )
    .bind(tenantId, target.subjectHash ?? null, target.conversationId ?? null)
    .first<ActiveHold>();
  return row ?? null;
}
