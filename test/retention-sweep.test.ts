/**
 * Retention sweep, inside workerd with real D1, R2 and conversation objects.
 * Time travel is done by running the sweep at a future scheduledTime, as the
 * cron does with controller.scheduledTime.
 */
import { createExecutionContext, createScheduledController, runDurableObjectAlarm, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DAY_MS } from "../lib/retention";
import worker from "../workers/index";
import { runRetentionSweep, type RetentionSweepReport } from "../workers/sweeps";
import { api, createCustomChannel, createTenant, json, postCustom } from "./helpers";

const MONTH_MS = 30.4375 * DAY_MS;
const CRON = "*/15 * * * *";

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
/** A conversation created through a real signed webhook; returns its id once its object is idle. */
async function converse(channel: { id: string; secret: string }, from: string, text = "hello, is my order on its way?"): Promise<string> {
  seq += 1;
  const res = await postCustom(channel.id, channel.secret, { type: "message", id: `ret-${seq}-${Date.now()}`, from, text });
  expect(res.status).toBe(200);
  const { conversationId } = (await json(res)) as { conversationId: string };
  await settle(conversationId);
  return conversationId;
}

/** Moves a conversation's last activity back in time, in its object (the source of truth) and in the D1 index. */
async function backdate(conversationId: string, at: number): Promise<void> {
  await runInDurableObject(stubFor(conversationId), (_i, state) => {
    state.storage.sql.exec("UPDATE meta SET value = ? WHERE key IN ('last_activity_at', 'created_at')", String(at));
  });
  await env.DB.prepare("UPDATE conversations SET last_activity_at = ?, created_at = ? WHERE id = ?").bind(at, at, conversationId).run();
}

async function messagesInObject(conversationId: string): Promise<number> {
  return runInDurableObject(stubFor(conversationId), (_i, state) => Number(state.storage.sql.exec("SELECT COUNT(*) AS n FROM messages").one().n));
}

async function indexRow(conversationId: string) {
  return env.DB.prepare("SELECT id, subject_hash, special_category FROM conversations WHERE id = ?").bind(conversationId).first<{ id: string; subject_hash: string; special_category: number }>();
}

async function deletionLog(tenantId: string) {
  const { results } = await env.DB.prepare("SELECT target_type, target_id, category, reason, subject_hash, deleted_at FROM deletion_log WHERE tenant_id = ? ORDER BY deleted_at, id")
    .bind(tenantId)
    .all<{ target_type: string; target_id: string; category: string; reason: string; subject_hash: string | null; deleted_at: number }>();
  return results;
}

/** Runs sweeps at `now` until a cycle completes (bounded). */
async function sweepUntilDone(now: number, options: Parameters<typeof runRetentionSweep>[2] = {}): Promise<RetentionSweepReport[]> {
  const reports: RetentionSweepReport[] = [];
  for (let i = 0; i < 50; i++) {
    const report = await runRetentionSweep(env, now, options);
    reports.push(report);
    if (report.done) return reports;
  }
  throw new Error("sweep did not finish");
}

beforeEach(async () => {
  // Each test starts a fresh cycle (tests in this file share one D1 database).
  await env.DB.prepare("DELETE FROM sweep_state").run();
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe("retention sweep: conversations", () => {
  it("time travel from the cron: deletes only the conversation past 24 months (object, files, index), logs it, and keeps held ones", { timeout: 60_000 }, async () => {
    const t = await createTenant("Retention time travel");
    const channel = await createCustomChannel(t.ownerKey);
    const old = await converse(channel, "+393330000101");
    const young = await converse(channel, "+393330000102");
    const heldConversation = await converse(channel, "+393330000103");
    const heldSubject = await converse(channel, "+393330000104");
    const created = Date.now();
    // The cron fires 23 months and 5 days after the conversations were created; three of them are backdated 2 months more.
    const scheduledTime = created + 23 * MONTH_MS + 5 * DAY_MS;
    for (const id of [old, heldConversation, heldSubject]) await backdate(id, created - 2 * MONTH_MS);

    // An encrypted attachment of the old conversation, in R2 and in D1.
    const oldIndex = await indexRow(old);
    const r2Key = `attachments/${t.tenantId}/att_retention_1`;
    await env.FILES.put(r2Key, new Uint8Array([1, 2, 3, 4]));
    await env.DB.prepare(
      "INSERT INTO attachments (id, tenant_id, conversation_id, subject_hash, category, r2_key, content_type, size, key_id, created_at) VALUES (?, ?, ?, ?, 'attachment', ?, 'image/png', 4, 'sk_test', ?)",
    )
      .bind("att_retention_1", t.tenantId, old, oldIndex?.subject_hash ?? "", r2Key, created)
      .run();

    // Legal holds through the API: one on a conversation, one on a person (given by address).
    const convHold = await api("POST", "/v1/legal-holds", t.ownerKey, { scope: "conversation", conversationId: heldConversation, reason: "Dispute 2026/3" });
    expect(convHold.status).toBe(201);
    const convHoldId = ((await json(convHold)) as { id: string }).id;
    expect((await api("POST", "/v1/legal-holds", t.ownerKey, { scope: "subject", subject: "+39 333 000 0104", reason: "Police request 77/2026" })).status).toBe(201);

    const logSpy = vi.spyOn(console, "log");
    const controller = createScheduledController({ scheduledTime, cron: CRON });
    const ctx = createExecutionContext();
    await worker.scheduled(controller, env, ctx);
    await waitOnExecutionContext(ctx);

    // Only the old, unheld conversation is gone: index row, object storage, R2 object and attachment row.
    expect(await indexRow(old)).toBeNull();
    expect((await api("GET", `/v1/conversations/${old}`, t.ownerKey)).status).toBe(404);
    expect(await messagesInObject(old)).toBe(0);
    expect(await stubFor(old).getConversation()).toBeNull();
    expect(await env.FILES.get(r2Key)).toBeNull();
    expect(await env.DB.prepare("SELECT 1 FROM attachments WHERE id = 'att_retention_1'").first()).toBeNull();
    for (const kept of [young, heldConversation, heldSubject]) {
      expect(await indexRow(kept)).not.toBeNull();
      expect(await messagesInObject(kept)).toBe(1);
    }

    // One deletion-log entry per thing deleted: keyed subject hash, never the address.
    const log = await deletionLog(t.tenantId);
    expect(log.map((e) => [e.target_type, e.target_id, e.category, e.reason]).sort()).toEqual([
      ["attachment", "att_retention_1", "conversation_logs", "retention_expired"],
      ["conversation", old, "conversation_logs", "retention_expired"],
    ]);
    expect(log.every((e) => e.subject_hash === oldIndex?.subject_hash && e.deleted_at === scheduledTime)).toBe(true);
    expect(JSON.stringify(log)).not.toContain("393330000101");

    // The run's report (logged as one JSON line) and its sweep_state row.
    const line = logSpy.mock.calls.map((c) => String(c[0])).find((l) => l.includes('"event":"retention_sweep"'));
    const report = JSON.parse(line ?? "{}") as RetentionSweepReport;
    expect(report.done).toBe(true);
    expect(report.now).toBe(new Date(scheduledTime).toISOString());
    expect(report.deleted.conversations).toBeGreaterThanOrEqual(1);
    expect(report.skippedHeld.conversations).toBeGreaterThanOrEqual(2);
    const state = await env.DB.prepare("SELECT cursor, last_run_at, last_deleted FROM sweep_state WHERE name = 'retention'").first<{ cursor: string; last_run_at: number; last_deleted: number }>();
    expect(state?.last_run_at).toBe(scheduledTime);
    expect(state?.last_deleted).toBeGreaterThanOrEqual(1);
    expect((JSON.parse(state?.cursor ?? "{}") as { cursor: unknown }).cursor).toBeNull();
    // The run is in the platform's audit log, with counts only.
    const audit = await env.DB.prepare("SELECT detail FROM audit_log WHERE tenant_id IS NULL AND action = 'retention.swept' ORDER BY id DESC LIMIT 1").first<{ detail: string }>();
    expect(JSON.parse(audit?.detail ?? "{}")).toMatchObject({ now: new Date(scheduledTime).toISOString(), conversations: report.deleted.conversations, done: true });

    // A re-run deletes nothing more; releasing the conversation hold lets the next sweep take that one (the subject hold still protects the other).
    const again = await runRetentionSweep(env, scheduledTime);
    expect(again.deleted.conversations).toBe(0);
    expect((await api("DELETE", `/v1/legal-holds/${convHoldId}`, t.ownerKey)).status).toBe(200);
    await runRetentionSweep(env, scheduledTime);
    expect(await indexRow(heldConversation)).toBeNull();
    expect(await indexRow(heldSubject)).not.toBeNull();
    expect((await deletionLog(t.tenantId)).filter((e) => e.target_type === "conversation")).toHaveLength(2);
  });

  it("more conversations than a batch: runs resume where the last stopped, survive a crash, and delete and log each exactly once", { timeout: 120_000 }, async () => {
    const t = await createTenant("Retention batches");
    const channel = await createCustomChannel(t.ownerKey);
    const ids: string[] = [];
    for (let i = 0; i < 120; i++) ids.push(await converse(channel, `+39333100${String(i).padStart(4, "0")}`));
    // Three objects were already erased by an earlier run that died before removing their index rows.
    for (const id of ids.slice(0, 3)) await stubFor(id).erase();
    const scheduledTime = Date.now() + 25 * MONTH_MS;

    // A run that dies right after erasing its first batch of this tenant's conversations (the position save fails) …
    const crashingDb = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "prepare") {
          return (sql: string) => {
            const statement = target.prepare(sql);
            if (!sql.includes("INSERT INTO sweep_state") || !sql.includes("last_deleted = excluded.last_deleted")) return statement;
            return new Proxy(statement, {
              get(stmt, key) {
                if (key !== "bind") {
                  const value: unknown = Reflect.get(stmt, key);
                  return typeof value === "function" ? value.bind(stmt) : value;
                }
                return (...args: unknown[]) => {
                  const saved = String(args[1]);
                  if (saved.includes(`"tenantId":"${t.tenantId}","phase":"conversations"`) && !saved.includes('"at":null')) throw new Error("simulated crash");
                  return stmt.bind(...args);
                };
              },
            });
          };
        }
        const value: unknown = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    await expect(runRetentionSweep({ ...env, DB: crashingDb }, scheduledTime, { batchSize: 50 })).rejects.toThrow("simulated crash");
    const afterCrash = await env.DB.prepare("SELECT COUNT(*) AS n FROM conversations WHERE tenant_id = ?").bind(t.tenantId).first<{ n: number }>();
    expect(afterCrash?.n).toBeLessThan(120);

    // … is finished by the next runs, each bounded to 50 conversations.
    const reports = await sweepUntilDone(scheduledTime, { batchSize: 50, maxConversations: 50 });
    expect(reports.length).toBeGreaterThanOrEqual(2);
    expect(reports[0]?.resumedFrom).not.toBeNull();
    for (const r of reports) expect(r.deleted.conversations).toBeLessThanOrEqual(50);
    for (const r of reports.slice(1)) expect(r.resumedFrom).toEqual(reports[reports.indexOf(r) - 1]?.stoppedAt);

    const remaining = await env.DB.prepare("SELECT COUNT(*) AS n FROM conversations WHERE tenant_id = ?").bind(t.tenantId).first<{ n: number }>();
    expect(remaining?.n).toBe(0);
    const logged = (await deletionLog(t.tenantId)).filter((e) => e.target_type === "conversation");
    expect(logged).toHaveLength(120);
    expect(new Set(logged.map((e) => e.target_id))).toEqual(new Set(ids));
    for (const id of [ids[0] ?? "", ids[60] ?? "", ids[119] ?? ""]) expect(await messagesInObject(id)).toBe(0);

    // Nothing left: a further cycle deletes and logs nothing.
    const extra = await sweepUntilDone(scheduledTime);
    expect(extra.reduce((n, r) => n + r.deleted.conversations, 0)).toBe(0);
    expect((await deletionLog(t.tenantId)).filter((e) => e.target_type === "conversation")).toHaveLength(120);
  });

  it("special-category conversations use the shorter period", { timeout: 60_000 }, async () => {
    const t = await createTenant("Retention special");
    const channel = await createCustomChannel(t.ownerKey);
    const special = await converse(channel, "+393330000201", "I am pregnant and need to change my delivery date");
    const ordinary = await converse(channel, "+393330000202");
    expect((await indexRow(special))?.special_category).toBe(1);
    expect((await indexRow(ordinary))?.special_category).toBe(0);

    // Five months on, both stay; seven months on, the special-category one (kept at most 6 months) goes.
    await sweepUntilDone(Date.now() + 5 * MONTH_MS);
    expect(await indexRow(special)).not.toBeNull();
    await sweepUntilDone(Date.now() + 7 * MONTH_MS);
    expect(await indexRow(special)).toBeNull();
    expect(await messagesInObject(special)).toBe(0);
    expect(await indexRow(ordinary)).not.toBeNull();
    expect((await deletionLog(t.tenantId)).map((e) => [e.target_type, e.target_id])).toEqual([["conversation", special]]);
  });

  it("follows the tenant's own period, and never trusts a stale index over the conversation object", { timeout: 60_000 }, async () => {
    const t = await createTenant("Retention policy");
    const channel = await createCustomChannel(t.ownerKey);
    expect((await api("PUT", "/v1/retention-policies", t.ownerKey, { policies: [{ category: "conversation_logs", days: 90 }] })).status).toBe(200);
    const quiet = await converse(channel, "+393330000301");
    const active = await converse(channel, "+393330000302");
    const now = Date.now() + 100 * DAY_MS;
    // The object saw activity the D1 index has not caught up with yet.
    await runInDurableObject(stubFor(active), (_i, state) => {
      state.storage.sql.exec("UPDATE meta SET value = ? WHERE key = 'last_activity_at'", String(now - DAY_MS));
    });
    const reports = await sweepUntilDone(now);
    expect(await indexRow(quiet)).toBeNull();
    expect(await indexRow(active)).not.toBeNull();
    expect(await messagesInObject(active)).toBe(1);
    expect(reports.reduce((n, r) => n + r.skippedActive, 0)).toBeGreaterThanOrEqual(1);
  });

  it("a tenant-wide hold keeps everything of the tenant, and a second concurrent run is refused by the lease", { timeout: 60_000 }, async () => {
    const t = await createTenant("Retention tenant hold");
    const channel = await createCustomChannel(t.ownerKey);
    const conv = await converse(channel, "+393330000401");
    expect((await api("POST", "/v1/legal-holds", t.ownerKey, { scope: "tenant", reason: "Regulator investigation" })).status).toBe(201);
    const now = Date.now() + 30 * MONTH_MS;
    await env.DB.prepare("INSERT INTO security_log (tenant_id, channel_id, kind, reason, created_at) VALUES (?, NULL, 'custom_signature', 'bad signature', ?)").bind(t.tenantId, now - 20 * MONTH_MS).run();
    const [a, b] = await Promise.all([runRetentionSweep(env, now), runRetentionSweep(env, now)]);
    expect([a?.locked, b?.locked].filter(Boolean)).toHaveLength(1);
    await sweepUntilDone(now);
    expect(await indexRow(conv)).not.toBeNull();
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM security_log WHERE tenant_id = ?").bind(t.tenantId).first<{ n: number }>()).toEqual({ n: 1 });
    expect(await deletionLog(t.tenantId)).toEqual([]);
  });
});

describe("retention sweep: recordings, security logs, dedupe keys, voice models", () => {
  it("deletes what is past its period (R2 object, row, one log entry) and keeps the rest", { timeout: 60_000 }, async () => {
    const t = await createTenant("Retention other data");
    const now = Date.now();
    const insertRecording = async (id: string, startedAt: number) => {
      const key = `recordings/${t.tenantId}/${id}`;
      await env.FILES.put(key, new Uint8Array([9, 9, 9]));
      await env.DB.prepare(
        "INSERT INTO recordings (id, tenant_id, conversation_id, status, participant_hashes, consent_ids, object_key, data_key, data_key_id, content_type, size, started_at, uploaded_at) VALUES (?, ?, 'conv_none', 'stored', '[]', '[]', ?, 'wrapped', 'dk', 'audio/ogg', 3, ?, ?)",
      )
        .bind(id, t.tenantId, key, startedAt, startedAt)
        .run();
      return key;
    };
    const oldRecording = await insertRecording("rec_old_1", now - 13 * MONTH_MS);
    const newRecording = await insertRecording("rec_new_1", now - 11 * MONTH_MS);
    const fileKey = `attachments/${t.tenantId}/att_rec_old`;
    await env.FILES.put(fileKey, new Uint8Array([7]));
    await env.DB.prepare(
      "INSERT INTO attachments (id, tenant_id, conversation_id, subject_hash, category, r2_key, content_type, size, key_id, created_at) VALUES ('att_rec_old', ?, 'conv_none', 'subj', 'recording', ?, 'audio/ogg', 1, 'sk', ?)",
    )
      .bind(t.tenantId, fileKey, now - 14 * MONTH_MS)
      .run();
    for (const age of [14, 13, 13, 1]) {
      await env.DB.prepare("INSERT INTO security_log (tenant_id, channel_id, kind, reason, created_at) VALUES (?, NULL, 'custom_signature', 'bad signature', ?)").bind(t.tenantId, now - age * MONTH_MS).run();
    }
    await env.DB.prepare("INSERT INTO agent_health_keys (key, created_at) VALUES ('ahk_old_retention', ?), ('ahk_new_retention', ?)").bind(now - 8 * DAY_MS, now - DAY_MS).run();
    const voiceKey = `voice/${t.tenantId}/vm_lapsed`;
    await env.FILES.put(voiceKey, new Uint8Array([5]));
    await env.DB.prepare(
      "INSERT INTO voice_models (id, tenant_id, subject_hash, name, status, consent_id, expires_at, metadata, object_key, data_key, data_key_id, content_type, size, created_at) VALUES ('vm_lapsed', ?, 'subj', 'Voice', 'active', 'cns_1', ?, '{}', ?, 'wrapped', 'dk', 'audio/wav', 1, ?)",
    )
      .bind(t.tenantId, now - DAY_MS, voiceKey, now - 100 * DAY_MS)
      .run();

    const reports = await sweepUntilDone(now);
    const total = (k: keyof RetentionSweepReport["deleted"]) => reports.reduce((n, r) => n + r.deleted[k], 0);
    expect(total("recordings")).toBeGreaterThanOrEqual(1);

    expect(await env.FILES.get(oldRecording)).toBeNull();
    expect(await env.FILES.get(newRecording)).not.toBeNull();
    expect(await env.FILES.get(fileKey)).toBeNull();
    expect(await env.FILES.get(voiceKey)).toBeNull();
    const { results: recs } = await env.DB.prepare("SELECT id FROM recordings WHERE tenant_id = ?").bind(t.tenantId).all<{ id: string }>();
    expect(recs.map((r) => r.id)).toEqual(["rec_new_1"]);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM security_log WHERE tenant_id = ?").bind(t.tenantId).first<{ n: number }>()).toEqual({ n: 1 });
    expect(await env.DB.prepare("SELECT key FROM agent_health_keys WHERE key LIKE 'ahk_%_retention'").all()).toMatchObject({ results: [{ key: "ahk_new_retention" }] });
    expect(await env.DB.prepare("SELECT 1 FROM voice_models WHERE id = 'vm_lapsed'").first()).toBeNull();

    const log = await deletionLog(t.tenantId);
    const kinds = log.map((e) => `${e.target_type}:${e.category}:${e.reason}`).sort();
    expect(kinds).toEqual(
      [
        "r2_object:voice_source_audio:consent_expired",
        "recording:recordings:retention_expired",
        "recording:recordings:retention_expired",
        "security_log_range:security_logs:retention_expired",
        "voice_model:voice_models:consent_expired",
      ].sort(),
    );
    expect(log.find((e) => e.target_type === "security_log_range")?.target_id).toMatch(/^\d+\.\.\d+ \(3 lines\)$/);

    // Platform-wide deletions (no tenant) are logged under the "platform" tenant, one entry per batch, with the count.
    const platform = await env.DB.prepare("SELECT target_id FROM deletion_log WHERE tenant_id = 'platform' AND target_type = 'agent_health_keys' AND deleted_at = ?").bind(now).all<{ target_id: string }>();
    expect(platform.results.map((r) => r.target_id)).toEqual([`${total("agentHealthKeys")} keys`]);

    // Run again: nothing more, nothing logged twice.
    await sweepUntilDone(now);
    expect(await deletionLog(t.tenantId)).toHaveLength(log.length);
  });
});

describe("retention sweep: payment event metadata", () => {
  it("deletes Stripe event rows past the tenant's payment_metadata period, keeps held tenants' rows, and logs per tenant", { timeout: 60_000 }, async () => {
    const a = await createTenant("Billing retention A");
    const b = await createTenant("Billing retention B");
    const held = await createTenant("Billing retention held");
    // Tenant A keeps payment metadata for 12 months (the floor); B keeps the default 36.
    expect((await api("PUT", "/v1/retention-policies", a.ownerKey, { policies: [{ category: "payment_metadata", days: 365 }] })).status).toBe(200);
    expect((await api("POST", "/v1/legal-holds", held.ownerKey, { scope: "tenant", reason: "Tax audit 2026" })).status).toBe(201);
    const now = Date.now();
    const insert = (id: string, tenantId: string | null, ageMonths: number) =>
      env.DB.prepare(
        "INSERT INTO billing_events (id, tenant_id, type, outcome, event_created_at, received_at, claim) VALUES (?, ?, 'invoice.paid', 'applied', ?, ?, 'c')",
      )
        .bind(id, tenantId, now - ageMonths * MONTH_MS, now - ageMonths * MONTH_MS)
        .run();
    await insert("evt_ret_a_old", a.tenantId, 13);
    await insert("evt_ret_a_new", a.tenantId, 11);
    await insert("evt_ret_b_13", b.tenantId, 13);
    await insert("evt_ret_b_37", b.tenantId, 37);
    await insert("evt_ret_held_40", held.tenantId, 40);
    await insert("evt_ret_none_37", null, 37);

    const reports = await sweepUntilDone(now);
    expect(reports.reduce((n, r) => n + r.deleted.billingEvents, 0)).toBeGreaterThanOrEqual(3);
    const { results } = await env.DB.prepare("SELECT id FROM billing_events WHERE id LIKE 'evt_ret_%' ORDER BY id").all<{ id: string }>();
    expect(results.map((r) => r.id)).toEqual(["evt_ret_a_new", "evt_ret_b_13", "evt_ret_held_40"]);
    for (const t of [a, b]) {
      const log = await deletionLog(t.tenantId);
      expect(log.map((e) => [e.target_type, e.target_id, e.category, e.reason, e.subject_hash])).toEqual([["billing_events", "1 events", "payment_metadata", "retention_expired", null]]);
    }
    expect(await deletionLog(held.tenantId)).toEqual([]);

    // Idempotent: a second cycle deletes and logs nothing more.
    await sweepUntilDone(now);
    expect(await deletionLog(a.tenantId)).toHaveLength(1);
  });
});
