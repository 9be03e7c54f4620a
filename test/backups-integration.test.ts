/**
 * Encrypted tenant backups inside workerd with real D1, R2 and conversation
 * objects: the nightly cron, the operator API, restore (what comes back and
 * what must not), expiry, and tampered objects.
 */
import { createExecutionContext, createScheduledController, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { backupObjectMetadata, sealRecords } from "../lib/backup-format";
import type { BackupRecord } from "../lib/backup-tables";
import { importMasterKey, masterKeyId } from "../lib/crypto";
import { DAY_MS } from "../lib/retention";
import worker from "../workers/index";
import type { Conversation } from "../durable-objects/conversation";
import { readBackup, restoreBackup, runBackupExpirySweep, runNightlyBackups, takeBackup } from "../workers/backups";
import { sealEvidenceIp } from "../workers/support/consent-store";
import { eraseConversation } from "../workers/support/erasure";
import { destroySubjectKeysStatement } from "../workers/support/subject-keys";
import { api, createCustomChannel, createTenant, json, PLATFORM_KEY, postCustom } from "./helpers";

const stubFor = (id: string) => env.CONVERSATION.get(env.CONVERSATION.idFromName(id));

/** Runs the object's alarm until nothing is pending, so no background work races the test. */
async function settle(conversationId: string): Promise<void> {
  const stub = stubFor(conversationId);
  for (let i = 0; i < 20; i++) {
    await runInDurableObject(stub, (_i, state) => {
      state.storage.sql.exec("UPDATE tasks SET next_attempt_at = 0 WHERE state = 'pending'");
    });
    if (!(await runDurableObjectAlarm(stub))) return;
  }
}

let seq = 0;
const ALICE = "+393471110001";
const BOB = "+393471110002";
const ALICE_TEXT = "Alice here: my card ends 4242 and I live at Via Roma 12";
const BOB_TEXT = "Bob here: please call me about the blue sofa";

/** A tenant with two conversations (Alice, Bob), a knowledge base, an admin key and an attachment on Alice's conversation. */
async function seed(name = "Backup Shop") {
  const t = await createTenant(name);
  const channel = await createCustomChannel(t.ownerKey);
  const conversations: Record<"alice" | "bob", string> = { alice: "", bob: "" };
  for (const [who, from, text] of [["alice", ALICE, ALICE_TEXT], ["bob", BOB, BOB_TEXT]] as const) {
    seq += 1;
    const res = await postCustom(channel.id, channel.secret, { type: "message", id: `bk-${seq}-${Date.now()}`, from, text });
    expect(res.status).toBe(200);
    conversations[who] = ((await json(res)) as { conversationId: string }).conversationId;
    await settle(conversations[who]);
  }
  expect((await api("PUT", "/v1/knowledge", t.ownerKey, { entries: [{ question: "When do you open?", answer: "Every day from 9 to 18." }] })).status).toBe(200);
  const admin = (await json(await api("POST", "/v1/keys", t.ownerKey, { name: "admin key", role: "admin" }))) as { id: string; key: string };
  // A notice and a consent entry (append-only tables: a restore must never trip their triggers).
  const notice = (await json(await api("POST", "/v1/notices", t.ownerKey, { key: "newsletter", purposes: ["marketing_sms"], locale: "en", text: "SMS offers, unsubscribe any time." }))) as { id: string };
  expect((await api("POST", "/v1/consents", t.ownerKey, { subject: BOB, purpose: "marketing_sms", status: "granted", method: "api", noticeId: notice.id, evidence: { ip: "203.0.113.50" } })).status).toBe(201);
  const subject = await env.DB.prepare("SELECT subject_hash FROM conversations WHERE id = ?").bind(conversations.alice).first<{ subject_hash: string }>();
  const attachmentId = `att_bk_${seq}`;
  const r2Key = `t/${t.tenantId}/a/${attachmentId}`;
  await env.FILES.put(r2Key, new Uint8Array([9, 9, 9]));
  await env.DB.prepare(
    "INSERT INTO attachments (id, tenant_id, conversation_id, subject_hash, category, r2_key, content_type, size, key_id, created_at) VALUES (?, ?, ?, ?, 'attachment', ?, 'image/png', 3, 'sk_x', ?)",
  )
    .bind(attachmentId, t.tenantId, conversations.alice, subject?.subject_hash, r2Key, Date.now())
    .run();
  return { ...t, channel, conversations, admin, aliceSubject: subject?.subject_hash ?? "", attachmentId, r2Key };
}

async function messageTexts(key: string, conversationId: string): Promise<string[]> {
  const res = await api("GET", `/v1/conversations/${conversationId}/messages`, key);
  expect(res.status).toBe(200);
  return ((await json(res)) as { data: { text: string }[] }).data.map((m) => m.text);
}

async function backupNow(tenantId: string): Promise<{ id: string; size: number }> {
  const res = await api("POST", "/v1/operator/backups", PLATFORM_KEY, { tenantId });
  expect(res.status).toBe(201);
  return ((await json(res)) as { backup: { id: string; size: number } }).backup;
}

async function restore(backupId: string) {
  const res = await api("POST", `/v1/operator/backups/${backupId}/restore`, PLATFORM_KEY);
  return { status: res.status, body: (await json(res)) as Record<string, unknown> };
}

/** Loses a conversation the way a bug or an operator mistake would: no deletion-log entry. */
async function loseConversation(tenantId: string, conversationId: string) {
  await stubFor(conversationId).erase();
  await env.DB.prepare("DELETE FROM conversations WHERE id = ? AND tenant_id = ?").bind(conversationId, tenantId).run();
}

const count = async (sql: string, ...params: (string | number)[]) => (await env.DB.prepare(sql).bind(...params).first<{ n: number }>())?.n ?? 0;

async function runCron(cron: string, scheduledTime: number) {
  const controller = createScheduledController({ scheduledTime, cron });
  const ctx = createExecutionContext();
  await worker.scheduled(controller, env, ctx);
  await waitOnExecutionContext(ctx);
}

describe("nightly backups", () => {
  it("writes one encrypted object per tenant from the cron, with no plaintext or identifiers in R2", async () => {
    const t = await seed("Nightly Shop Srl");
    const scheduledTime = Date.UTC(2031, 0, 15, 2, 30);
    await runCron("30 2 * * *", scheduledTime);

    const rows = await env.DB.prepare("SELECT id, r2_key, size, created_at, expires_at FROM backups WHERE tenant_id = ?")
      .bind(t.tenantId)
      .all<{ id: string; r2_key: string; size: number; created_at: number; expires_at: number }>();
    expect(rows.results).toHaveLength(1);
    const row = rows.results[0]!;
    expect(row.created_at).toBe(scheduledTime);
    expect(row.expires_at).toBe(scheduledTime + 30 * DAY_MS);
    expect(row.r2_key).toBe(`backups/${t.tenantId}/2031-01-15T02:30:00.000Z/${row.id}`);
    const object = await env.FILES.get(row.r2_key);
    if (!object) throw new Error("no backup object");
    expect(object.size).toBe(row.size);
    expect(Object.keys(object.customMetadata ?? {}).sort()).toEqual(["cipher", "compression", "format", "keyId"]);
    const raw = new Uint8Array(await object.arrayBuffer());
    const text = new TextDecoder("latin1").decode(raw);
    for (const secret of ["Alice here", "4242", "Via Roma", "blue sofa", ALICE, ALICE.slice(1), BOB, "Nightly Shop", "When do you open", t.aliceSubject, t.channel.secret]) {
      expect(text, secret).not.toContain(secret);
    }
    // Not even gzip in the clear: only the container's magic and header are readable.
    expect(text.startsWith("PRLYBAK1")).toBe(true);

    // Decrypted, it holds the control plane and both conversations, message bodies still sealed under subject keys.
    const records = await readBackup(env, row.id);
    expect(records[0]).toMatchObject({ t: "header", tenantId: t.tenantId, backupId: row.id, createdAt: scheduledTime });
    expect(records.filter((r) => r.t === "conversation").map((r) => (r.t === "conversation" ? r.id : "")).sort()).toEqual([t.conversations.alice, t.conversations.bob].sort());
    const tables = records.filter((r) => r.t === "table").map((r) => (r.t === "table" ? r.table : ""));
    expect(tables).toEqual(expect.arrayContaining(["tenants", "api_keys", "channels", "settings", "knowledge_entries", "consents", "notices", "attachments"]));
    expect(tables).not.toContain("subject_keys");
    expect(tables).not.toContain("deletion_log");
    const decrypted = JSON.stringify(records);
    expect(decrypted).not.toContain("Alice here");
    expect(decrypted).not.toContain(ALICE);
    expect(decrypted).toContain("When do you open?");
    expect(records[records.length - 1]).toMatchObject({ t: "end", conversations: 2 });

    // The day is done; running it again (a retried cron) takes no second backup.
    expect(await env.DB.prepare("SELECT cursor FROM sweep_state WHERE name = 'backup:2031-01-15'").first()).toEqual({ cursor: "~done" });
    await runCron("30 2 * * *", scheduledTime);
    expect(await count("SELECT COUNT(*) AS n FROM backups WHERE tenant_id = ?", t.tenantId)).toBe(1);
    const audit = (await json(await api("GET", "/v1/audit?action=backup.created", t.ownerKey))) as { data: { actorType: string; targetId: string }[] };
    expect(audit.data).toEqual([expect.objectContaining({ actorType: "system", targetId: row.id })]);
  });

  it("stops at its budget and resumes from the cursor: every tenant backed up exactly once per day", async () => {
    const a = await createTenant("Resume A");
    const b = await createTenant("Resume B");
    const scheduledTime = Date.UTC(2031, 1, 3, 2, 30);
    const first = await runNightlyBackups(env, scheduledTime, { maxTenants: 1 });
    expect(first).toMatchObject({ day: "2031-02-03", backups: 1, done: false });
    const runs = [first];
    for (let i = 0; i < 200 && !runs[runs.length - 1]?.done; i++) runs.push(await runNightlyBackups(env, scheduledTime, { maxTenants: 1 }));
    expect(runs[runs.length - 1]?.done).toBe(true);
    const tenants = await count("SELECT COUNT(*) AS n FROM tenants");
    expect(runs.reduce((n, r) => n + r.backups, 0)).toBe(tenants);
    for (const t of [a, b]) {
      expect(await count("SELECT COUNT(*) AS n FROM backups WHERE tenant_id = ? AND created_at = ?", t.tenantId, scheduledTime)).toBe(1);
    }
  });

  it("streams large backups as multipart uploads (equal 5 MiB parts) that read back intact", async () => {
    const t = await seed("Multipart Shop");
    // ~160k rows of incompressible hashes: a backup of several MiB even after gzip.
    await env.DB.prepare(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 160000) INSERT INTO rpo_numbers (tenant_id, subject_hash) SELECT ?, lower(hex(randomblob(32))) FROM n",
    )
      .bind(t.tenantId)
      .run();
    const summary = await takeBackup(env, t.tenantId, Date.now(), { actorType: "system", actorId: null }, { partSize: 5 * 1024 * 1024 });
    expect(summary.size).toBeGreaterThan(5 * 1024 * 1024);
    expect(summary.rows).toBeGreaterThan(160000);
    const records = await readBackup(env, summary.id);
    expect(records.filter((r) => r.t === "conversation")).toHaveLength(2);
    expect(records.filter((r) => r.t === "row")).toHaveLength(summary.rows);
    expect(records[records.length - 1]).toMatchObject({ t: "end", rows: summary.rows, conversations: 2 });
    await env.DB.prepare("DELETE FROM rpo_numbers WHERE tenant_id = ?").bind(t.tenantId).run();
  }, 60_000);
});

describe("restore", () => {
  it("brings back a lost conversation and configuration, keeps newer decisions, and is idempotent", async () => {
    const t = await seed();
    const backup = await backupNow(t.tenantId);
    const before = await messageTexts(t.ownerKey, t.conversations.alice);
    expect(before).toEqual([ALICE_TEXT]);

    // After the backup: a conversation and the knowledge base are lost, the admin key is revoked, a new key appears.
    await loseConversation(t.tenantId, t.conversations.alice);
    expect((await api("GET", `/v1/conversations/${t.conversations.alice}`, t.ownerKey)).status).toBe(404);
    expect((await api("PUT", "/v1/knowledge", t.ownerKey, { entries: [] })).status).toBe(200);
    expect((await api("DELETE", `/v1/keys/${t.admin.id}`, t.ownerKey)).status).toBeLessThan(300);
    const newer = (await json(await api("POST", "/v1/keys", t.ownerKey, { name: "newer", role: "agent" }))) as { key: string };
    const deletionsBefore = await count("SELECT COUNT(*) AS n FROM deletion_log WHERE tenant_id = ?", t.tenantId);
    // The consent's sealed evidence IP is lost too (it lives beside the append-only log).
    const evidenceIp = async () =>
      ((await json(await api("GET", `/v1/consents?subject=${encodeURIComponent(BOB)}`, t.ownerKey))) as { history: { evidence: { ip: string | null } }[] }).history[0]?.evidence.ip;
    expect(await evidenceIp()).toBe("203.0.113.50");
    await env.DB.prepare("DELETE FROM consent_evidence WHERE tenant_id = ?").bind(t.tenantId).run();
    expect(await evidenceIp()).toBeNull();

    const restored = await restore(backup.id);
    expect(restored.status).toBe(200);
    expect(restored.body).toMatchObject({ backupId: backup.id, tenantId: t.tenantId, conversations: { restored: 1, present: 1, skipped: 0 } });
    expect(await messageTexts(t.ownerKey, t.conversations.alice)).toEqual(before);
    expect((await json(await api("GET", `/v1/conversations/${t.conversations.alice}`, t.ownerKey))) as Record<string, unknown>).toMatchObject({ id: t.conversations.alice });
    const knowledge = (await json(await api("GET", "/v1/knowledge", t.ownerKey))) as { entries: { question: string }[] };
    expect(knowledge.entries.map((e) => e.question)).toEqual(["When do you open?"]);
    // Newer security decisions win: the revoked key stays revoked, the newer key keeps working.
    expect((await api("GET", "/v1/knowledge", t.admin.key)).status).toBe(401);
    expect((await api("GET", "/v1/conversations", newer.key)).status).toBe(200);
    // The attachment row is still there (never lost); no deletion-log entries were written.
    expect(await count("SELECT COUNT(*) AS n FROM attachments WHERE id = ?", t.attachmentId)).toBe(1);
    expect(await count("SELECT COUNT(*) AS n FROM deletion_log WHERE tenant_id = ?", t.tenantId)).toBe(deletionsBefore);
    expect((restored.body.tables as Record<string, unknown>).consent_evidence).toEqual({ restored: 1, present: 0, skipped: 0 });
    expect(await evidenceIp()).toBe("203.0.113.50");

    const again = await restore(backup.id);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ conversations: { restored: 0, present: 2, skipped: 0 } });
    const tables = again.body.tables as Record<string, { restored: number; present: number }>;
    expect(tables.consents).toEqual({ restored: 0, present: 1, skipped: 0 });
    expect(tables.notices?.present).toBeGreaterThan(1);
    for (const [name, counts] of Object.entries(tables)) if (name !== "settings" && name !== "knowledge_entries") expect(counts.restored, name).toBe(0);
    const audit = (await json(await api("GET", "/v1/audit?action=backup.restored", t.ownerKey))) as { data: { actorType: string }[] };
    expect(audit.data).toHaveLength(2);
    expect(audit.data[0]?.actorType).toBe("platform");
  });

  it("erasure then restore: the erased conversation does not come back, and its snapshot reads [erased]", async () => {
    const t = await seed();
    const backup = await backupNow(t.tenantId);
    // Erase Alice's conversation and destroy her key, as a DSR erasure does.
    await eraseConversation(env, t.tenantId, t.conversations.alice, "dsr_erasure");
    await env.DB.batch([destroySubjectKeysStatement(env.DB, t.tenantId, t.aliceSubject, Date.now())]);
    expect(await env.FILES.head(t.r2Key)).toBeNull();
    const logBefore = await env.DB.prepare("SELECT id FROM deletion_log WHERE tenant_id = ? ORDER BY id").bind(t.tenantId).all<{ id: string }>();
    expect(logBefore.results.length).toBeGreaterThanOrEqual(2);

    const restored = await restore(backup.id);
    expect(restored.status).toBe(200);
    expect(restored.body).toMatchObject({ conversations: { restored: 0, present: 1, skipped: 1 } });
    expect((restored.body.tables as Record<string, { skipped: number }>).attachments?.skipped).toBe(1);
    expect((await api("GET", `/v1/conversations/${t.conversations.alice}`, t.ownerKey)).status).toBe(404);
    expect(await env.DB.prepare("SELECT 1 FROM conversations WHERE id = ?").bind(t.conversations.alice).first()).toBeNull();
    expect(await env.DB.prepare("SELECT 1 FROM attachments WHERE id = ?").bind(t.attachmentId).first()).toBeNull();
    expect(await stubFor(t.conversations.alice).getConversation()).toBeNull();
    // Bob is untouched; the deletion log gained nothing; the subject key stays destroyed (none recreated).
    expect(await messageTexts(t.ownerKey, t.conversations.bob)).toEqual([BOB_TEXT]);
    const logAfter = await env.DB.prepare("SELECT id FROM deletion_log WHERE tenant_id = ? ORDER BY id").bind(t.tenantId).all<{ id: string }>();
    expect(logAfter.results).toEqual(logBefore.results);
    expect(await count("SELECT COUNT(*) AS n FROM subject_keys WHERE tenant_id = ? AND subject_hash = ? AND wrapped_key IS NOT NULL", t.tenantId, t.aliceSubject)).toBe(0);

    // Even if someone imported the backed-up snapshot by hand, nothing readable would come back.
    const record = (await readBackup(env, backup.id)).find((r) => r.t === "conversation" && r.id === t.conversations.alice);
    if (!record || record.t !== "conversation") throw new Error("snapshot missing from the backup");
    const stub = stubFor(t.conversations.alice);
    await stub.importSnapshot(record.snapshot);
    const page = await stub.listMessages({ limit: 10, order: "asc" });
    expect(page.messages.map((m) => m.text)).toEqual(["[erased]"]);
    expect((await stub.getConversation())?.address).toBe("[erased]");
    await eraseConversation(env, t.tenantId, t.conversations.alice, "dsr_erasure");
  });

  it("fills in a missing consent entry without tripping the append-only triggers (a taken seq is reassigned)", async () => {
    const t = await seed();
    const source = await backupNow(t.tenantId);
    // A backup holding one consent entry the log does not have (same seq as an existing one).
    const id = `bak_crafted${Date.now()}`;
    const out: BackupRecord[] = [];
    let columns: string[] = [];
    let table = "";
    let extra = 0;
    for (const r of await readBackup(env, source.id)) {
      if (r.t === "header") out.push({ ...r, backupId: id });
      else if (r.t === "end") out.push({ ...r, rows: r.rows + extra });
      else {
        out.push(r);
        if (r.t === "table") ({ table, columns } = { table: r.table, columns: r.columns });
        if (r.t === "row" && table === "consents") {
          const copy = [...r.v];
          copy[columns.indexOf("id")] = "cns_only_in_backup";
          // As a backup from before consent_evidence: the evidence IP sealed in the log's own column.
          copy[columns.indexOf("evidence_ip")] = await sealEvidenceIp(env, "cns_only_in_backup", "198.51.100.77");
          out.push({ t: "row", v: copy });
          extra += 1;
        }
      }
    }
    expect(extra).toBe(1);
    const ring = { key: await importMasterKey(env.MASTER_KEY), id: await masterKeyId(env.MASTER_KEY) };
    const sealed = await sealRecords((async function* () { yield* out; })(), { masterKey: ring.key, masterKeyId: ring.id, backupId: id });
    const bytes = new Uint8Array(await new Response(sealed).arrayBuffer());
    const r2Key = `backups/${t.tenantId}/crafted/${id}`;
    await env.FILES.put(r2Key, bytes, { customMetadata: backupObjectMetadata(ring.id) });
    await env.DB.prepare("INSERT INTO backups (id, tenant_id, r2_key, size, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)")
      .bind(id, t.tenantId, r2Key, bytes.length, Date.now(), Date.now() + 30 * DAY_MS)
      .run();

    const restored = await restore(id);
    expect(restored.status).toBe(200);
    expect((restored.body.tables as Record<string, unknown>).consents).toEqual({ restored: 1, present: 1, skipped: 0 });
    const rows = await env.DB.prepare("SELECT id, seq FROM consents WHERE tenant_id = ? ORDER BY seq").bind(t.tenantId).all<{ id: string; seq: number }>();
    expect(rows.results.map((r) => r.id)).toEqual([expect.stringMatching(/^cns_/), "cns_only_in_backup"]);
    expect(rows.results[1]?.seq).toBeGreaterThan(rows.results[0]?.seq ?? 0);
    // Its evidence IP was copied beside the log, where a rotation re-wraps it, and reads back.
    expect(await env.DB.prepare("SELECT ip FROM consent_evidence WHERE id = 'cns_only_in_backup'").first("ip")).toMatch(/^v1\./);
    const history = ((await json(await api("GET", `/v1/consents?subject=${encodeURIComponent(BOB)}`, t.ownerKey))) as { history: { id: string; evidence: { ip: string | null } }[] }).history;
    expect(history.find((e) => e.id === "cns_only_in_backup")?.evidence.ip).toBe("198.51.100.77");
    // Still append-only, and a second restore adds nothing.
    await expect(env.DB.prepare("DELETE FROM consents WHERE id = 'cns_only_in_backup'").run()).rejects.toThrow(/append-only/);
    expect(((await restore(id)).body.tables as Record<string, unknown>).consents).toEqual({ restored: 0, present: 2, skipped: 0 });
  });

  it("a deletion that races with the restore still wins, and is re-applied without a second log entry", async () => {
    const t = await seed();
    const backup = await backupNow(t.tenantId);
    await loseConversation(t.tenantId, t.conversations.bob);
    const bobSubject = (await readBackup(env, backup.id)).find((r) => r.t === "conversation" && r.id === t.conversations.bob);
    const subjectHash = bobSubject?.t === "conversation" ? String(bobSubject.index.subject_hash) : "";
    const logged = await count("SELECT COUNT(*) AS n FROM deletion_log WHERE tenant_id = ?", t.tenantId);
    // Bob is erased by a DSR (key destroyed, logged) while the restore runs: just before his snapshot is imported.
    const racing = {
      idFromName: (name: string) => env.CONVERSATION.idFromName(name),
      get: (id: DurableObjectId) => {
        const stub = env.CONVERSATION.get(id);
        return new Proxy(stub, {
          get(target, prop) {
            if (prop === "importSnapshot") {
              return async (snapshot: Parameters<typeof target.importSnapshot>[0]) => {
                const now = Date.now();
                await env.DB.batch([
                  destroySubjectKeysStatement(env.DB, t.tenantId, subjectHash, now),
                  env.DB.prepare(
                    "INSERT INTO deletion_log (id, tenant_id, target_type, target_id, category, reason, subject_hash, deleted_at) VALUES (?, ?, 'subject_key', ?, 'conversation_logs', 'dsr_erasure', ?, ?)",
                  ).bind(`del_race_${now}`, t.tenantId, subjectHash, subjectHash, now),
                ]);
                return target.importSnapshot(snapshot);
              };
            }
            return Reflect.get(target, prop);
          },
        });
      },
    } as unknown as DurableObjectNamespace<Conversation>;
    const report = await restoreBackup({ ...env, CONVERSATION: racing }, backup.id, { actorType: "platform", actorId: null });
    expect(report.conversations.restored).toBe(1);
    expect(report.reapplied).toEqual({ conversations: 1, files: 0 });
    expect((await api("GET", `/v1/conversations/${t.conversations.bob}`, t.ownerKey)).status).toBe(404);
    expect(await stubFor(t.conversations.bob).getConversation()).toBeNull();
    expect(await env.DB.prepare("SELECT 1 FROM conversations WHERE id = ?").bind(t.conversations.bob).first()).toBeNull();
    // Only the DSR's own entry: re-applying wrote nothing.
    expect(await count("SELECT COUNT(*) AS n FROM deletion_log WHERE tenant_id = ?", t.tenantId)).toBe(logged + 1);
  });

  it("refuses a tampered, truncated or swapped object with 409 and changes nothing", async () => {
    const t = await seed();
    const backup = await backupNow(t.tenantId);
    const other = await backupNow(t.tenantId);
    await loseConversation(t.tenantId, t.conversations.bob);
    const row = await env.DB.prepare("SELECT r2_key FROM backups WHERE id = ?").bind(backup.id).first<{ r2_key: string }>();
    const otherRow = await env.DB.prepare("SELECT r2_key FROM backups WHERE id = ?").bind(other.id).first<{ r2_key: string }>();
    const object = await env.FILES.get(row?.r2_key ?? "");
    if (!object || !row || !otherRow) throw new Error("backup missing");
    const original = new Uint8Array(await object.arrayBuffer());
    const metadata = { customMetadata: object.customMetadata ?? {} };

    const flipped = original.slice();
    flipped[flipped.length >> 1] = (flipped[flipped.length >> 1] ?? 0) ^ 0x40;
    const otherBytes = new Uint8Array(await (await env.FILES.get(otherRow.r2_key))!.arrayBuffer());
    const variants: [string, Uint8Array][] = [
      ["one flipped bit", flipped],
      ["truncated", original.slice(0, original.length - 7)],
      ["another backup's object", otherBytes],
    ];
    for (const [what, bytes] of variants) {
      await env.FILES.put(row.r2_key, bytes, metadata);
      const res = await restore(backup.id);
      expect(res.status, what).toBe(409);
      expect(res.body, what).toMatchObject({ error: { code: "conflict" } });
      expect(String((res.body.error as { message: string }).message), what).toMatch(/integrity check.*Nothing was changed/);
      expect((await api("GET", `/v1/conversations/${t.conversations.bob}`, t.ownerKey)).status, what).toBe(404);
      expect(await stubFor(t.conversations.bob).getConversation(), what).toBeNull();
    }
    const audit = (await json(await api("GET", "/v1/audit?action=backup.restore_refused", t.ownerKey))) as { data: unknown[] };
    expect(audit.data).toHaveLength(3);
    expect(await count("SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = ? AND action = 'backup.restored'", t.tenantId)).toBe(0);

    // The intact object restores.
    await env.FILES.put(row.r2_key, original, metadata);
    expect((await restore(backup.id)).status).toBe(200);
    expect(await messageTexts(t.ownerKey, t.conversations.bob)).toEqual([BOB_TEXT]);
  });
});

describe("expiry", () => {
  it("deletes backups older than 30 days at the cron's scheduledTime, with a deletion-log entry each", async () => {
    const t = await createTenant("Expiry Shop");
    const now = Date.now();
    const old = await backupNow(t.tenantId);
    const young = await takeBackup(env, t.tenantId, now + 10 * DAY_MS, { actorType: "system", actorId: null });
    const oldRow = await env.DB.prepare("SELECT r2_key FROM backups WHERE id = ?").bind(old.id).first<{ r2_key: string }>();
    expect(await env.FILES.head(oldRow?.r2_key ?? "")).not.toBeNull();

    const scheduledTime = now + 31 * DAY_MS;
    await runCron("0 3 * * *", scheduledTime);

    expect(await env.DB.prepare("SELECT 1 FROM backups WHERE id = ?").bind(old.id).first()).toBeNull();
    expect(await env.FILES.head(oldRow?.r2_key ?? "")).toBeNull();
    const log = await env.DB.prepare("SELECT target_type, category, reason, subject_hash, deleted_at FROM deletion_log WHERE tenant_id = ? AND target_id = ?")
      .bind(t.tenantId, old.id)
      .all();
    expect(log.results).toEqual([{ target_type: "backup", category: "backups", reason: "retention_expired", subject_hash: null, deleted_at: scheduledTime }]);
    // The younger backup stays, and an expired one can no longer be restored.
    expect(await env.DB.prepare("SELECT 1 FROM backups WHERE id = ?").bind(young.id).first()).not.toBeNull();
    expect((await restore(old.id)).status).toBe(404);
    const state = await env.DB.prepare("SELECT last_run_at FROM sweep_state WHERE name = 'backup-expiry'").first<{ last_run_at: number }>();
    expect(state?.last_run_at).toBe(scheduledTime);
    // A second run finds nothing more and logs nothing twice.
    const again = await runBackupExpirySweep(env, scheduledTime);
    expect(again).toMatchObject({ deleted: 0, done: true });
    expect(await count("SELECT COUNT(*) AS n FROM deletion_log WHERE target_id = ?", old.id)).toBe(1);
  });
});

describe("operator API", () => {
  it("needs the platform key, validates input, lists newest first with a cursor", async () => {
    const t = await createTenant("Listing Shop");
    expect((await api("GET", `/v1/operator/backups?tenantId=${t.tenantId}`)).status).toBe(401);
    expect((await api("GET", `/v1/operator/backups?tenantId=${t.tenantId}`, t.ownerKey)).status).toBe(401);
    expect((await api("POST", "/v1/operator/backups", t.ownerKey, { tenantId: t.tenantId })).status).toBe(401);
    expect((await api("POST", "/v1/operator/backups/bak_x/restore", t.ownerKey)).status).toBe(401);
    expect((await api("GET", "/v1/operator/backups", PLATFORM_KEY)).status).toBe(400);
    expect((await api("POST", "/v1/operator/backups", PLATFORM_KEY, {})).status).toBe(400);
    expect((await api("POST", "/v1/operator/backups", PLATFORM_KEY, { tenantId: "ten_nope" })).status).toBe(404);
    expect((await api("POST", "/v1/operator/backups/bak_nope/restore", PLATFORM_KEY)).status).toBe(404);

    const ids = [(await backupNow(t.tenantId)).id, (await backupNow(t.tenantId)).id, (await backupNow(t.tenantId)).id];
    const first = (await json(await api("GET", `/v1/operator/backups?tenantId=${t.tenantId}&limit=2`, PLATFORM_KEY))) as {
      data: { id: string; complete: boolean; size: number; expiresAt: string; createdAt: string }[];
      nextCursor: string | null;
    };
    expect(first.data.map((b) => b.id)).toEqual([ids[2], ids[1]]);
    expect(first.data.every((b) => b.complete && b.size > 0 && Date.parse(b.expiresAt) - Date.parse(b.createdAt) === 30 * DAY_MS)).toBe(true);
    const second = (await json(await api("GET", `/v1/operator/backups?tenantId=${t.tenantId}&limit=2&cursor=${first.nextCursor}`, PLATFORM_KEY))) as { data: { id: string }[]; nextCursor: string | null };
    expect(second.data.map((b) => b.id)).toEqual([ids[0]]);
    expect(second.nextCursor).toBeNull();
    const doc = (await json(await api("GET", "/v1/openapi.json"))) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/v1/operator/backups", "/v1/operator/backups/{id}/restore"]));
  });
});
