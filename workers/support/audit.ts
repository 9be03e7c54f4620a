/**
 * Audit and security log writers, and the audit log's hash chain. Entries carry
 * ids and counts, never message text or identifiers.
 *
 * Tamper evidence: every tenant's entries (and the platform's, tenant NULL)
 * form a chain in `audit_chain`, where each link's hash is SHA-256 over the
 * previous link's hash and a canonical serialisation of the entry. Writers do
 * not touch the chain: {@link sealAuditChain} extends it lazily and
 * idempotently over the entries written since, and {@link verifyAuditChain}
 * recomputes it, reporting the first entry that was altered or removed.
 */
import { sha256Hex } from "../../lib/crypto";
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

function auditValues(entry: AuditEntry): (string | number | null)[] {
  return [
    entry.tenantId,
    entry.actorType,
    entry.actorId,
    entry.action,
    entry.targetType ?? null,
    entry.targetId ?? null,
    entry.detail ? JSON.stringify(entry.detail) : null,
    Date.now(),
  ];
}

/** Prepared insert of an audit entry, so callers can batch it with the write it records. */
export function auditStatement(db: D1Database, entry: AuditEntry): D1PreparedStatement {
  return db
    .prepare(
      "INSERT INTO audit_log (tenant_id, actor_type, actor_id, action, target_type, target_id, detail, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(...auditValues(entry));
}

/**
 * Prepared insert of an audit entry that happens only if `existsSql` (a
 * SELECT) finds a row: batched after a conditional write, it records the
 * write only when the write happened, in the same transaction.
 */
export function auditStatementIfExists(db: D1Database, entry: AuditEntry, existsSql: string, ...params: (string | number | null)[]): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO audit_log (tenant_id, actor_type, actor_id, action, target_type, target_id, detail, created_at) SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (${existsSql})`,
    )
    .bind(...auditValues(entry), ...params);
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

// ---------------------------------------------------------------- hash chain

/** `prev_hash` of a chain's first link. */
export const AUDIT_CHAIN_GENESIS = "0".repeat(64);
/** Entries sealed per call of {@link sealAuditChain} (the rest on the next call). */
export const AUDIT_SEAL_MAX = 2000;
const SEAL_PAGE = 250;
/** Rows per multi-row INSERT: 4 parameters each, within D1's 100 bound parameters per statement. */
const INSERT_ROWS = 25;

/** An audit_log row as stored. */
export interface AuditRow {
  id: number;
  tenant_id: string | null;
  actor_type: string;
  actor_id: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  detail: string | null;
  created_at: number;
}

const AUDIT_COLUMNS = "a.id, a.tenant_id, a.actor_type, a.actor_id, a.action, a.target_type, a.target_id, a.detail, a.created_at";

/**
 * Canonical serialisation of an entry: a JSON array of its stored columns in
 * a fixed order (id, tenant, actor type and id, action, target type and id,
 * detail as the stored text, created_at). Strings, integers and null only, so
 * JSON.stringify is deterministic.
 */
export function canonicalAuditRow(row: AuditRow): string {
  return JSON.stringify([row.id, row.tenant_id, row.actor_type, row.actor_id, row.action, row.target_type, row.target_id, row.detail, row.created_at]);
}

/** A link's hash: SHA-256 (hex) of `prevHash`, a newline and the entry's canonical serialisation. */
export function auditLinkHash(prevHash: string, row: AuditRow): Promise<string> {
  return sha256Hex(`${prevHash}\n${canonicalAuditRow(row)}`);
}

/**
 * The chain's last link for a tenant (null: the platform's chain), as stored.
 * The link of the newest surviving entry is found through the audit_log
 * index; links after it (entries deleted since they were sealed) are looked
 * up only when there is something new to seal, so a quiet tenant costs two
 * index lookups.
 */
async function chainHead(db: D1Database, tenantId: string | null): Promise<{ head: { id: number; hash: string } | null; pending: boolean }> {
  const viaLog = await db
    .prepare(
      "SELECT c.audit_id AS id, c.hash FROM audit_log a JOIN audit_chain c ON c.audit_id = a.id WHERE a.tenant_id IS ? AND c.tenant_id IS a.tenant_id ORDER BY a.id DESC LIMIT 1",
    )
    .bind(tenantId)
    .first<{ id: number; hash: string }>();
  const after = viaLog?.id ?? 0;
  const pending = await db.prepare("SELECT 1 FROM audit_log WHERE tenant_id IS ? AND id > ? LIMIT 1").bind(tenantId, after).first();
  if (!pending) return { head: viaLog ?? null, pending: false };
  const later = await db
    .prepare("SELECT audit_id AS id, hash FROM audit_chain WHERE audit_id > ? AND tenant_id IS ? ORDER BY audit_id DESC LIMIT 1")
    .bind(after, tenantId)
    .first<{ id: number; hash: string }>();
  return { head: later ?? viaLog ?? null, pending: true };
}

/** What {@link sealAuditChain} did. */
export interface SealResult {
  /** Links this call inserted (0 when another sealer got there first). */
  sealed: number;
  /** The chain's last link after this call. */
  head: { id: number; hash: string } | null;
  /** True when unsealed entries remain (more than {@link AUDIT_SEAL_MAX} were pending). */
  more: boolean;
}

/**
 * Extends a tenant's chain (null: the platform's) over the entries written
 * since its last link, in id order. Idempotent and safe to run concurrently:
 * links are inserted with ON CONFLICT DO NOTHING, and after a conflict the
 * next page starts again from the stored chain, so racing sealers converge on
 * one chain. D1 commits writes in id order, so no earlier entry can appear
 * behind the head later.
 */
export async function sealAuditChain(db: D1Database, tenantId: string | null, max = AUDIT_SEAL_MAX): Promise<SealResult> {
  const start = await chainHead(db, tenantId);
  let head = start.head;
  if (!start.pending) return { sealed: 0, head, more: false };
  let sealed = 0;
  let done = 0;
  while (done < max) {
    const page = Math.min(SEAL_PAGE, max - done);
    const { results } = await db
      .prepare(`SELECT ${AUDIT_COLUMNS} FROM audit_log a WHERE a.tenant_id IS ? AND a.id > ? ORDER BY a.id LIMIT ?`)
      .bind(tenantId, head?.id ?? 0, page)
      .all<AuditRow>();
    if (results.length === 0) return { sealed, head, more: false };
    const links: { id: number; prev: string; hash: string }[] = [];
    let prev = head?.hash ?? AUDIT_CHAIN_GENESIS;
    for (const row of results) {
      const hash = await auditLinkHash(prev, row);
      links.push({ id: row.id, prev, hash });
      prev = hash;
    }
    const statements: D1PreparedStatement[] = [];
    for (let i = 0; i < links.length; i += INSERT_ROWS) {
      const chunk = links.slice(i, i + INSERT_ROWS);
      statements.push(
        db
          .prepare(`INSERT INTO audit_chain (audit_id, tenant_id, prev_hash, hash) VALUES ${chunk.map(() => "(?, ?, ?, ?)").join(", ")} ON CONFLICT DO NOTHING`)
          .bind(...chunk.flatMap((l) => [l.id, tenantId, l.prev, l.hash])),
      );
    }
    const outcome = await db.batch(statements);
    const inserted = outcome.reduce((n, r) => n + (r.meta.changes ?? 0), 0);
    sealed += inserted;
    done += results.length;
    const last = links[links.length - 1];
    // All ours: carry on from what we computed. A conflict: someone sealed meanwhile; continue from the stored chain.
    head = inserted === links.length && last ? { id: last.id, hash: last.hash } : (await chainHead(db, tenantId)).head;
    if (results.length < page) return { sealed, head, more: false };
  }
  const more = await db
    .prepare("SELECT 1 FROM audit_log WHERE tenant_id IS ? AND id > ? LIMIT 1")
    .bind(tenantId, head?.id ?? 0)
    .first();
  return { sealed, head, more: more !== null };
}

/** Why {@link verifyAuditChain} found the chain broken. */
export type ChainBreak =
  /** The entry (or its link's hash) changed since it was sealed. */
  | "hash_mismatch"
  /** A sealed entry is gone from the log (deleted, or moved to another tenant). */
  | "entry_missing"
  /** A link does not continue the previous one (links were removed or rewritten). */
  | "link_mismatch"
  /** An entry between sealed ones has no link (its link was deleted, or the entry was inserted later). */
  | "entry_not_sealed";

/** The outcome of a verification. */
export interface ChainVerification {
  intact: boolean;
  /** Entries whose links were recomputed and matched. */
  checked: number;
  firstBrokenId?: number;
  reason?: ChainBreak;
  /** The last verified link: record it elsewhere to detect truncation of the log's tail later. */
  head: { id: number; hash: string } | null;
  /** Entries written after the last link (not sealed yet). */
  pending: number;
}

interface JoinedRow extends AuditRow {
  link_tenant: string | null;
  prev_hash: string | null;
  hash: string | null;
  linked: number | null;
}

const VERIFY_PAGE = 500;

/**
 * Recomputes a tenant's chain (null: the platform's) from its first link and
 * reports the first entry that no longer matches: altered entries, deleted
 * entries (their links remain), removed or rewritten links, and entries that
 * appear between sealed ones without a link. Entries after the last link are
 * counted as `pending`, not as a break. Truncating the tail together with its
 * links cannot be seen from inside the database: compare `head` with a copy
 * kept elsewhere.
 */
export async function verifyAuditChain(db: D1Database, tenantId: string | null): Promise<ChainVerification> {
  let checked = 0;
  let expectedPrev = AUDIT_CHAIN_GENESIS;
  let lastId = 0;
  let head: ChainVerification["head"] = null;
  let firstUnsealed: number | null = null;
  let unsealed = 0;
  const broken = (id: number, reason: ChainBreak): ChainVerification => ({ intact: false, checked, firstBrokenId: id, reason, head, pending: unsealed });
  // A link with no entry between two ids: a sealed entry that was deleted (or moved away).
  const orphanLink = (after: number, before: number | null) =>
    db
      .prepare(`SELECT audit_id FROM audit_chain WHERE audit_id > ? ${before === null ? "" : "AND audit_id < ?"} AND tenant_id IS ? ORDER BY audit_id LIMIT 1`)
      .bind(...(before === null ? [after, tenantId] : [after, before, tenantId]))
      .first<{ audit_id: number }>();
  let cursor = 0;
  for (;;) {
    const { results } = await db
      .prepare(
        `SELECT ${AUDIT_COLUMNS}, c.tenant_id AS link_tenant, c.prev_hash, c.hash, c.audit_id AS linked FROM audit_log a LEFT JOIN audit_chain c ON c.audit_id = a.id
         WHERE a.tenant_id IS ? AND a.id > ? ORDER BY a.id LIMIT ?`,
      )
      .bind(tenantId, cursor, VERIFY_PAGE)
      .all<JoinedRow>();
    for (const row of results) {
      cursor = row.id;
      if (row.linked === null || row.hash === null || row.prev_hash === null) {
        firstUnsealed ??= row.id;
        unsealed++;
        continue;
      }
      if (firstUnsealed !== null) return broken(firstUnsealed, "entry_not_sealed");
      if (row.prev_hash !== expectedPrev) {
        const orphan = await orphanLink(lastId, row.id);
        return orphan ? broken(orphan.audit_id, "entry_missing") : broken(row.id, "link_mismatch");
      }
      if (row.link_tenant !== row.tenant_id || (await auditLinkHash(row.prev_hash, row)) !== row.hash) return broken(row.id, "hash_mismatch");
      checked++;
      expectedPrev = row.hash;
      lastId = row.id;
      head = { id: row.id, hash: row.hash };
    }
    if (results.length < VERIFY_PAGE) break;
  }
  // Links after the last verified one whose entries are gone: the log's tail was deleted but not its links.
  const orphan = await orphanLink(lastId, null);
  if (orphan) return broken(orphan.audit_id, "entry_missing");
  return { intact: true, checked, head, pending: unsealed };
}
