/**
 * Per-subject data keys (crypto-shredding). Message text, addresses and files of
 * a data subject are encrypted under the subject's own AES-256 key, kept in D1
 * only wrapped by MASTER_KEY. Erasing the subject destroys the wrapped key, so
 * no backup or point-in-time restore of D1, Durable Objects or R2 can bring the
 * content back.
 */
import { randomBytes, sealBytes } from "../../lib/crypto";
import { newId } from "../../lib/ids";
import { masterKeyring, openWithMasterKey } from "./keyring";

/** A usable subject key. */
export interface SubjectKey {
  id: string;
  key: CryptoKey;
}

/** Associated data binding a wrapped subject key to its tenant, subject and id (a copied key fails to unwrap). */
export const subjectKeyBinding = (tenantId: string, subjectHash: string, id: string): string => `subject-key:${tenantId}:${subjectHash}:${id}`;
const bound = subjectKeyBinding;

/** Imports unwrapped key bytes (non-extractable) and wipes the bytes. */
async function importAes(raw: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  try {
    return await crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
  } finally {
    raw.fill(0);
  }
}

/**
 * The subject's live key, created on first use (concurrent first uses converge on one key).
 * `likelyNew` (a first contact): create-or-read in one D1 round trip instead of reading first.
 */
export async function subjectKeyFor(env: Env, tenantId: string, subjectHash: string, likelyNew = false): Promise<SubjectKey> {
  const select = env.DB.prepare("SELECT id, wrapped_key FROM subject_keys WHERE tenant_id = ? AND subject_hash = ? AND destroyed_at IS NULL").bind(
    tenantId,
    subjectHash,
  );
  let row = likelyNew ? null : await select.first<{ id: string; wrapped_key: string }>();
  if (!row) {
    const { key, keyId } = await masterKeyring(env);
    const id = newId("sk");
    const wrapped = await sealBytes(key, keyId, randomBytes(32), bound(tenantId, subjectHash, id));
    // The partial unique index allows one live key per subject: a concurrent creator's insert is ignored,
    // and the select in the same batch reads whichever key won.
    const [, selected] = await env.DB.batch<{ id: string; wrapped_key: string }>([
      env.DB.prepare("INSERT INTO subject_keys (id, tenant_id, subject_hash, wrapped_key, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING").bind(
        id,
        tenantId,
        subjectHash,
        wrapped,
        Date.now(),
      ),
      select,
    ]);
    row = selected?.results[0] ?? null;
    if (!row) throw new Error("subject key could not be created");
  }
  return { id: row.id, key: await importAes(await openWithMasterKey(env, row.wrapped_key, bound(tenantId, subjectHash, row.id))) };
}

/** A subject key by id, or null when it was destroyed (the subject was erased). */
export async function subjectKeyById(env: Env, tenantId: string, id: string): Promise<CryptoKey | null> {
  const row = await env.DB.prepare("SELECT subject_hash, wrapped_key FROM subject_keys WHERE id = ? AND tenant_id = ? AND destroyed_at IS NULL")
    .bind(id, tenantId)
    .first<{ subject_hash: string; wrapped_key: string | null }>();
  if (!row?.wrapped_key) return null;
  return importAes(await openWithMasterKey(env, row.wrapped_key, bound(tenantId, row.subject_hash, id)));
}

/** Destroys every key of a subject: the wrapped key bytes are overwritten, the row stays as proof. */
export function destroySubjectKeysStatement(db: D1Database, tenantId: string, subjectHash: string, now: number): D1PreparedStatement {
  return db
    .prepare("UPDATE subject_keys SET wrapped_key = NULL, destroyed_at = ? WHERE tenant_id = ? AND subject_hash = ? AND destroyed_at IS NULL")
    .bind(now, tenantId, subjectHash);
}
