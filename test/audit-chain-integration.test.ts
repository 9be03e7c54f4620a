import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { AUDIT_CHAIN_GENESIS, auditLinkHash, auditStatement, sealAuditChain, verifyAuditChain, type AuditRow } from "../workers/support/audit";
import { api, createCustomChannel, createKey, createTenant, json } from "./helpers";

interface Entry {
  id: number;
  action: string;
  chainHash: string | null;
}

interface Verification {
  intact: boolean;
  checked: number;
  firstBrokenId?: number;
  reason?: string;
  head: { id: number; hash: string } | null;
  pending: number;
}

/** A tenant with a handful of audited writes. */
async function busyTenant() {
  const t = await createTenant("Audited");
  await createCustomChannel(t.ownerKey);
  await createKey(t.ownerKey, "agent");
  await createKey(t.ownerKey, "viewer");
  await api("PATCH", "/v1/settings", t.ownerKey, { ai: { intent: true } });
  return t;
}

async function entries(key: string): Promise<Entry[]> {
  return ((await json(await api("GET", "/v1/audit?limit=500", key))) as { data: Entry[] }).data;
}

async function verify(key: string): Promise<Verification> {
  const res = await api("GET", "/v1/audit/verify", key);
  expect(res.status).toBe(200);
  return (await res.json()) as Verification;
}

async function auditRows(tenantId: string): Promise<AuditRow[]> {
  const { results } = await env.DB.prepare("SELECT * FROM audit_log WHERE tenant_id = ? ORDER BY id").bind(tenantId).all<AuditRow>();
  return results;
}

describe("audit hash chain", () => {
  it("seals every entry lazily; each chainHash is SHA-256 over the previous link and the entry, from a zero genesis", async () => {
    const t = await busyTenant();
    const unsealed = await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_chain WHERE tenant_id = ?").bind(t.tenantId).first<{ n: number }>();
    expect(unsealed?.n).toBe(0);
    const list = await entries(t.ownerKey);
    expect(list.length).toBeGreaterThanOrEqual(5);
    expect(list.every((e) => /^[0-9a-f]{64}$/.test(e.chainHash ?? ""))).toBe(true);
    const rows = await auditRows(t.tenantId);
    let prev = AUDIT_CHAIN_GENESIS;
    const byId = new Map(list.map((e) => [e.id, e.chainHash]));
    for (const row of rows) {
      const hash = await auditLinkHash(prev, row);
      expect(byId.get(row.id)).toBe(hash);
      prev = hash;
    }
    const v = await verify(t.ownerKey);
    expect(v).toEqual({ intact: true, checked: rows.length, head: { id: rows[rows.length - 1]?.id, hash: prev }, pending: 0 });
    // Reading does not change the chain; new writes extend it.
    await createKey(t.ownerKey, "agent");
    const after = await verify(t.ownerKey);
    expect(after).toMatchObject({ intact: true, checked: rows.length + 1 });
    const newest = await env.DB.prepare("SELECT prev_hash FROM audit_chain WHERE audit_id = ?").bind(after.head?.id).first<{ prev_hash: string }>();
    expect(newest?.prev_hash).toBe(prev);
  });

  it("reports an altered entry at its id, whichever column changed; restoring it makes the chain intact again", async () => {
    const t = await busyTenant();
    const other = await busyTenant();
    expect((await verify(t.ownerKey)).intact).toBe(true);
    expect((await verify(other.ownerKey)).intact).toBe(true);
    const rows = await auditRows(t.tenantId);
    const target = rows[2];
    if (!target) throw new Error("no entry");
    for (const [column, value] of [
      ["detail", JSON.stringify({ role: "owner" })],
      ["action", "key.revoked"],
      ["actor_id", "key_someone_else"],
      ["target_id", "key_other"],
      ["created_at", target.created_at + 1],
      ["actor_type", "system"],
    ] as const) {
      await env.DB.prepare(`UPDATE audit_log SET ${column} = ? WHERE id = ?`).bind(value, target.id).run();
      expect(await verify(t.ownerKey), column).toMatchObject({ intact: false, firstBrokenId: target.id, reason: "hash_mismatch", checked: 2 });
      await env.DB.prepare(`UPDATE audit_log SET ${column} = ? WHERE id = ?`).bind(target[column], target.id).run();
      expect((await verify(t.ownerKey)).intact, column).toBe(true);
    }
    // Another tenant's chain is unaffected by tampering here.
    await env.DB.prepare("UPDATE audit_log SET detail = '{}' WHERE id = ?").bind(target.id).run();
    expect((await verify(t.ownerKey)).firstBrokenId).toBe(target.id);
    expect((await verify(other.ownerKey)).intact).toBe(true);
  });

  it("reports a deleted entry at its id: first, middle, newest (even after later entries were sealed)", async () => {
    for (const position of ["first", "middle", "newest"] as const) {
      const t = await busyTenant();
      expect((await verify(t.ownerKey)).intact).toBe(true);
      const rows = await auditRows(t.tenantId);
      const victim = position === "first" ? rows[0] : position === "middle" ? rows[Math.floor(rows.length / 2)] : rows[rows.length - 1];
      if (!victim) throw new Error("no entry");
      await env.DB.prepare("DELETE FROM audit_log WHERE id = ?").bind(victim.id).run();
      expect(await verify(t.ownerKey), position).toMatchObject({ intact: false, firstBrokenId: victim.id, reason: "entry_missing" });
      // Later entries are sealed after the gap: the deletion stays visible.
      await createKey(t.ownerKey, "agent");
      await createKey(t.ownerKey, "viewer");
      expect(await verify(t.ownerKey), position).toMatchObject({ intact: false, firstBrokenId: victim.id, reason: "entry_missing" });
    }
  });

  it("reports removed or rewritten links, and an entry moved to another tenant", async () => {
    const t = await busyTenant();
    const other = await busyTenant();
    expect((await verify(t.ownerKey)).intact).toBe(true);
    expect((await verify(other.ownerKey)).intact).toBe(true);
    const rows = await auditRows(t.tenantId);
    const [a, b, c] = [rows[1], rows[2], rows[3]];
    if (!a || !b || !c) throw new Error("not enough entries");

    const link = await env.DB.prepare("SELECT * FROM audit_chain WHERE audit_id = ?").bind(b.id).first<{ audit_id: number; tenant_id: string; prev_hash: string; hash: string }>();
    await env.DB.prepare("DELETE FROM audit_chain WHERE audit_id = ?").bind(b.id).run();
    expect(await verify(t.ownerKey)).toMatchObject({ intact: false, firstBrokenId: b.id, reason: "entry_not_sealed" });
    await env.DB.prepare("INSERT INTO audit_chain (audit_id, tenant_id, prev_hash, hash) VALUES (?, ?, ?, ?)").bind(link?.audit_id, link?.tenant_id, link?.prev_hash, link?.hash).run();
    expect((await verify(t.ownerKey)).intact).toBe(true);

    // A rewritten link hash (as if someone recomputed only one link after editing its entry).
    await env.DB.prepare("UPDATE audit_chain SET hash = ? WHERE audit_id = ?").bind("f".repeat(64), a.id).run();
    expect(await verify(t.ownerKey)).toMatchObject({ intact: false, firstBrokenId: a.id, reason: "hash_mismatch" });
    await env.DB.prepare("UPDATE audit_chain SET hash = ? WHERE audit_id = ?").bind(link?.prev_hash, a.id).run();
    expect((await verify(t.ownerKey)).intact).toBe(true);

    // The entry and its link both deleted: the next link no longer continues the chain.
    await env.DB.batch([env.DB.prepare("DELETE FROM audit_log WHERE id = ?").bind(b.id), env.DB.prepare("DELETE FROM audit_chain WHERE audit_id = ?").bind(b.id)]);
    expect(await verify(t.ownerKey)).toMatchObject({ intact: false, firstBrokenId: c.id, reason: "link_mismatch" });

    // An entry moved into another tenant's log breaks both chains at that entry.
    const otherRows = await auditRows(other.tenantId);
    const moved = otherRows[1];
    if (!moved) throw new Error("no entry");
    await env.DB.prepare("UPDATE audit_log SET tenant_id = ? WHERE id = ?").bind(t.tenantId, moved.id).run();
    expect(await verify(other.ownerKey)).toMatchObject({ intact: false, firstBrokenId: moved.id, reason: "entry_missing" });
  });

  it("converges when many sealers race, in bounded batches", async () => {
    const t = await createTenant("Racing");
    const statements: D1PreparedStatement[] = [];
    for (let i = 0; i < 700; i++) statements.push(auditStatement(env.DB, { tenantId: t.tenantId, actorType: "system", actorId: null, action: "test.event", targetType: "n", targetId: String(i), detail: { i } }));
    for (let i = 0; i < statements.length; i += 100) await env.DB.batch(statements.slice(i, i + 100));
    const total = (await auditRows(t.tenantId)).length;
    // Bounded: one call seals at most `max` entries and says more are pending.
    const first = await sealAuditChain(env.DB, t.tenantId, 100);
    expect(first).toMatchObject({ sealed: 100, more: true });
    expect((await verifyAuditChain(env.DB, t.tenantId)).pending).toBe(total - 100);
    // Eight sealers at once, some of them interleaving with new writes.
    const results = await Promise.all([
      ...Array.from({ length: 8 }, () => sealAuditChain(env.DB, t.tenantId)),
      auditStatement(env.DB, { tenantId: t.tenantId, actorType: "system", actorId: null, action: "test.late" }).run(),
    ]);
    const sealed = results.slice(0, 8).reduce((n, r) => n + ("sealed" in r ? r.sealed : 0), 0);
    await sealAuditChain(env.DB, t.tenantId);
    const links = await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_chain WHERE tenant_id = ?").bind(t.tenantId).first<{ n: number }>();
    expect(links?.n).toBe(total + 1);
    expect(sealed).toBeLessThanOrEqual(total + 1 - 100);
    expect(await verifyAuditChain(env.DB, t.tenantId)).toMatchObject({ intact: true, checked: total + 1, pending: 0 });
    expect((await verify(t.ownerKey)).intact).toBe(true);
  });

  it("needs audit:read: viewers 403, no key 401", async () => {
    const t = await createTenant();
    expect((await api("GET", "/v1/audit/verify", await createKey(t.ownerKey, "viewer"))).status).toBe(403);
    expect((await api("GET", "/v1/audit/verify")).status).toBe(401);
  });
});
