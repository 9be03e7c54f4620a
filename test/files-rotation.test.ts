import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { envelopeKeyId, importMasterKey, masterKeyId, openBytes, randomBase64 } from "../lib/crypto";
import { toBase64, utf8 } from "../lib/encoding";
import { sealEvidenceIp } from "../workers/support/consent-store";
import { subjectKeyById } from "../workers/support/subject-keys";
import { api, call, createCustomChannel, createTenant, json, PLATFORM_KEY, postCustom } from "./helpers";

const DAY = 86_400_000;
const mutable = env as { MASTER_KEY: string; MASTER_KEY_PREVIOUS: string | undefined };

/** Every MASTER_KEY envelope column in D1 (what the rotation must re-wrap), with the key id each names. */
async function envelopeKeyIds(): Promise<Record<string, string[]>> {
  const columns: [string, string][] = [
    ["subject_keys", "wrapped_key"],
    ["tenants", "hash_key"],
    ["channels", "secrets"],
    ["recordings", "data_key"],
    ["voice_models", "data_key"],
    ["dsr_requests", "subject_sealed"],
    ["consent_evidence", "ip"],
  ];
  const out: Record<string, string[]> = {};
  for (const [table, column] of columns) {
    const { results } = await env.DB.prepare(`SELECT ${column} AS e FROM ${table} WHERE ${column} IS NOT NULL`).all<{ e: string }>();
    out[table] = [...new Set(results.map((r) => envelopeKeyId(r.e) ?? "?"))].sort();
  }
  return out;
}

async function noticeId(ownerKey: string, key: string): Promise<string> {
  return ((await json(await api("GET", `/v1/notices?key=${key}&locale=en`, ownerKey))) as { data: { id: string }[] }).data[0]?.id ?? "";
}

async function grant(ownerKey: string, subject: string, purpose: string, extra: Record<string, unknown> = {}) {
  const res = await api("POST", "/v1/consents", ownerKey, { subject, purpose, status: "granted", method: "api", noticeId: await noticeId(ownerKey, purpose), ...extra });
  expect(res.status, await res.clone().text()).toBe(201);
}

interface Rotation {
  keyId: string;
  previousKeyId: string | null;
  rotated: number;
  failed: { table: string; id: string; reason: string }[];
  remaining: number;
  remainingByTable: Record<string, number>;
  notRotatable: { consentEvidenceIps: number };
  cursor: string | null;
  done: boolean;
}

async function rotateAll(limit: number): Promise<Rotation[]> {
  const batches: Rotation[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 100; i++) {
    const res = await api("POST", "/v1/operator/rotate-master-key", PLATFORM_KEY, { limit, ...(cursor ? { cursor } : {}) });
    expect(res.status, await res.clone().text()).toBe(200);
    const batch = (await res.json()) as Rotation;
    batches.push(batch);
    if (!batch.cursor) return batches;
    cursor = batch.cursor;
  }
  throw new Error("rotation did not finish");
}

async function objectState(key: string) {
  const object = await env.FILES.get(key);
  return { etag: object?.etag, bytes: toBase64(new Uint8Array((await object?.arrayBuffer()) ?? new ArrayBuffer(0))), meta: object?.customMetadata };
}

describe("MASTER_KEY rotation", () => {
  it("re-wraps every D1 secret in bounded batches; with MASTER_KEY_PREVIOUS removed everything still opens, and R2 objects are untouched", async () => {
    const oldKey = env.MASTER_KEY;
    const newKey = randomBase64(32);
    const oldId = await masterKeyId(oldKey);
    const newId = await masterKeyId(newKey);

    // Data under the old key: tenant hash key, channel secrets, subject keys (messages), an attachment,
    // a recording and a voice model (data keys), a DSR (sealed subject), a consent with a sealed IP.
    const { tenantId, ownerKey } = await createTenant("Rotation");
    const channel = await createCustomChannel(ownerKey);
    const from = "+393471110001";
    const conv = ((await json(await postCustom(channel.id, channel.secret, { type: "message", id: "rot-1", from, text: "Text sealed before the rotation" }))) as { conversationId: string }).conversationId;
    const fileBytes = utf8("attachment sealed before the rotation");
    const uploaded = await call(`/v1/conversations/${conv}/attachments`, { method: "POST", headers: { authorization: `Bearer ${ownerKey}`, "content-type": "text/plain" }, body: fileBytes });
    expect(uploaded.status).toBe(201);
    const att = (await uploaded.json()) as { id: string; download: string };
    await grant(ownerKey, from, "recording");
    const rec = (await json(await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey))) as { id: string };
    const audio = utf8("OggS recording sealed before the rotation");
    expect((await api("PUT", `/v1/recordings/${rec.id}/audio`, ownerKey, { contentType: "audio/ogg", data: toBase64(audio) })).status).toBe(200);
    await grant(ownerKey, from, "voice_clone", { expiresAt: new Date(Date.now() + 30 * DAY).toISOString() });
    const vmRes = await api("POST", "/v1/voice-models", ownerKey, { subject: from, name: "Voice", sourceAudio: { contentType: "audio/wav", data: toBase64(utf8("RIFF voice")) } });
    expect(vmRes.status, await vmRes.clone().text()).toBe(201);
    const dsr = (await json(await api("POST", "/v1/dsr", ownerKey, { type: "access", subject: from, verification: "attested", note: "ID checked at the desk" }))) as { id: string };
    const marketing = await api("POST", "/v1/consents", ownerKey, {
      subject: from,
      purpose: "marketing_sms",
      status: "granted",
      method: "web_form",
      noticeId: await noticeId(ownerKey, "marketing_keyword"),
      evidence: { ip: "203.0.113.9", messageId: "form-9" },
    });
    expect(marketing.status).toBe(201);
    // An entry written before consent_evidence existed: its IP sealed in the append-only log itself.
    const legacyId = "cns_legacy_rotation";
    await env.DB.prepare(
      `INSERT INTO consents (id, tenant_id, subject_hash, purpose, status, method, notice_id, evidence_message_id, evidence_ip, channel_id, expires_at, actor_type, actor_id, created_at)
       SELECT ?, tenant_id, subject_hash, purpose, status, method, notice_id, 'form-legacy', ?, channel_id, expires_at, actor_type, actor_id, created_at - 1 FROM consents WHERE evidence_message_id = 'form-9'`,
    )
      .bind(legacyId, await sealEvidenceIp(env, legacyId, "198.51.100.4"))
      .run();
    const evidenceIps = async () => {
      const body = (await json(await api("GET", `/v1/consents?subject=${encodeURIComponent(from)}`, ownerKey))) as { history: { evidence: { messageId: string | null; ip: string | null } }[] };
      return Object.fromEntries(body.history.filter((e) => e.evidence.messageId?.startsWith("form-")).map((e) => [e.evidence.messageId, e.evidence.ip]));
    };
    expect(await evidenceIps()).toEqual({ "form-9": "203.0.113.9", "form-legacy": "198.51.100.4" });
    // New entries keep the IP out of the log, where a rotation can re-wrap it.
    expect(await env.DB.prepare("SELECT evidence_ip FROM consents WHERE evidence_message_id = 'form-9'").first("evidence_ip")).toBeNull();
    for (const ids of Object.values(await envelopeKeyIds())) expect(ids).toEqual([oldId]);

    const recordingKey = (await env.DB.prepare("SELECT object_key FROM recordings WHERE id = ?").bind(rec.id).first<{ object_key: string }>())?.object_key ?? "";
    const objectKeys = [`t/${tenantId}/a/${att.id}`, recordingKey];
    const objectsBefore = await Promise.all(objectKeys.map(objectState));
    expect(objectsBefore.every((o) => o.etag)).toBe(true);

    try {
      // 1. Deploy the new key without the previous one (operator mistake): stored secrets answer 503, never 500, nothing is lost.
      mutable.MASTER_KEY = newKey;
      mutable.MASTER_KEY_PREVIOUS = undefined;
      const misconfigured = await api("GET", att.download, ownerKey);
      expect(misconfigured.status).toBe(503);
      expect(((await misconfigured.json()) as { error: { code: string } }).error.code).toBe("misconfigured");

      // 2. New key + previous key: everything opens before any re-wrapping.
      mutable.MASTER_KEY_PREVIOUS = oldKey;
      expect(new Uint8Array(await (await api("GET", att.download, ownerKey)).arrayBuffer())).toEqual(fileBytes);
      expect((await postCustom(channel.id, channel.secret, { type: "message", id: "rot-2", from, text: "During the rotation" })).status).toBe(200);
      const recordingDuring = await api("GET", `/v1/recordings/${rec.id}/audio`, ownerKey);
      expect(recordingDuring.status).toBe(200);
      expect(new Uint8Array(await recordingDuring.arrayBuffer())).toEqual(audio);
      expect(await evidenceIps()).toEqual({ "form-9": "203.0.113.9", "form-legacy": "198.51.100.4" });
      const executed = await api("POST", `/v1/dsr/${dsr.id}/execute`, ownerKey);
      expect(executed.status, await executed.clone().text()).toBe(200);
      expect(((await json(await api("GET", `/v1/dsr/${dsr.id}/export?format=json`, ownerKey))) as { subject: string }).subject).toBe(`tel:${from}`);

      // Bad requests change nothing.
      expect((await api("POST", "/v1/operator/rotate-master-key", ownerKey, {})).status).toBe(401);
      expect((await api("POST", "/v1/operator/rotate-master-key", undefined, {})).status).toBe(401);
      expect((await api("POST", "/v1/operator/rotate-master-key", PLATFORM_KEY, { limit: 0 })).status).toBe(400);
      expect((await api("POST", "/v1/operator/rotate-master-key", PLATFORM_KEY, { limit: 10, extra: true })).status).toBe(400);
      expect((await api("POST", "/v1/operator/rotate-master-key", PLATFORM_KEY, { cursor: "not-a-cursor" })).status).toBe(400);
      for (const ids of Object.values(await envelopeKeyIds())) expect(ids).toEqual([oldId]);

      // 3. Rotate in small batches until the pass completes.
      const batches = await rotateAll(3);
      expect(batches.length).toBeGreaterThan(2);
      expect(batches.every((b) => b.rotated <= 3 && b.failed.length === 0 && b.keyId === newId && b.previousKeyId === oldId)).toBe(true);
      const last = batches[batches.length - 1];
      // Only the legacy entry's IP (in the append-only log, with no copy) cannot be re-wrapped.
      expect(last).toMatchObject({ remaining: 0, done: true, cursor: null, notRotatable: { consentEvidenceIps: 1 } });
      expect(batches[0]?.remaining).toBeGreaterThan(last?.remaining ?? 0);
      for (const [table, ids] of Object.entries(await envelopeKeyIds())) expect(ids, table).toEqual([newId]);
      // A second pass finds nothing left.
      expect((await rotateAll(100)).reduce((n, b) => n + b.rotated, 0)).toBe(0);

      // 4. Remove the previous key: everything still decrypts.
      mutable.MASTER_KEY_PREVIOUS = "";
      expect(new Uint8Array(await (await api("GET", att.download, ownerKey)).arrayBuffer())).toEqual(fileBytes);
      // The consent evidence IP was re-wrapped; only the legacy copy in the log is lost with the old key.
      expect(await evidenceIps()).toEqual({ "form-9": "203.0.113.9", "form-legacy": null });
      const played = await api("GET", `/v1/recordings/${rec.id}/audio`, ownerKey);
      expect(played.status).toBe(200);
      expect(new Uint8Array(await played.arrayBuffer())).toEqual(audio);
      expect((await postCustom(channel.id, channel.secret, { type: "message", id: "rot-3", from, text: "After the rotation" })).status).toBe(200);
      const messages = (await json(await api("GET", `/v1/conversations/${conv}/messages`, ownerKey))) as { data: { text: string }[] };
      expect(messages.data.map((m) => m.text)).toEqual(expect.arrayContaining(["Text sealed before the rotation", "During the rotation", "After the rotation"]));
      // Every subject key unwraps from D1 with the new key alone (not from any cache).
      const { results: keys } = await env.DB.prepare("SELECT id FROM subject_keys WHERE tenant_id = ? AND destroyed_at IS NULL").bind(tenantId).all<{ id: string }>();
      expect(keys.length).toBeGreaterThan(0);
      for (const k of keys) expect(await subjectKeyById(env, tenantId, k.id)).not.toBeNull();
      const vm = await env.DB.prepare("SELECT object_key, data_key FROM voice_models WHERE tenant_id = ?").bind(tenantId).first<{ object_key: string; data_key: string }>();
      expect((await openBytes(await importMasterKey(newKey), vm?.data_key ?? "", `object-key:${vm?.object_key}`)).length).toBe(32);
      expect(((await json(await api("GET", `/v1/dsr/${dsr.id}/export?format=json`, ownerKey))) as { subject: string }).subject).toBe(`tel:${from}`);
      const newConversation = await postCustom(channel.id, channel.secret, { type: "message", id: "rot-4", from: "+393471110002", text: "A new subject" });
      expect(newConversation.status).toBe(200);

      // 5. The R2 objects were never rewritten.
      expect(await Promise.all(objectKeys.map(objectState))).toEqual(objectsBefore);

      // Audited, as platform actions, in the platform's own hash chain.
      const { results: audits } = await env.DB.prepare("SELECT detail FROM audit_log WHERE tenant_id IS NULL AND action = 'master_key.rotated' ORDER BY id").all<{ detail: string }>();
      expect(audits.length).toBeGreaterThanOrEqual(batches.length);
      expect(JSON.parse(audits[batches.length - 1]?.detail ?? "{}")).toMatchObject({ previousKeyId: oldId, remaining: 0, complete: true });
      const platform = await api("GET", "/v1/operator/audit/verify", PLATFORM_KEY);
      expect(await platform.json()).toMatchObject({ intact: true });
    } finally {
      // Rotate back, so the rest of this file's isolate runs under the configured key again.
      mutable.MASTER_KEY = oldKey;
      mutable.MASTER_KEY_PREVIOUS = newKey;
      await rotateAll(500);
      mutable.MASTER_KEY_PREVIOUS = undefined;
    }
    for (const [table, ids] of Object.entries(await envelopeKeyIds())) expect(ids, table).toEqual([oldId]);
  }, 60_000);

  it("migration 0005 copies evidence IPs written into the consent log itself where the rotation re-wraps them", async () => {
    const oldKey = env.MASTER_KEY;
    const newKey = randomBase64(32);
    const { tenantId, ownerKey } = await createTenant("Legacy evidence");
    const subject = "+393471110077";
    await grant(ownerKey, subject, "recording");
    // As a version before consent_evidence wrote it: the envelope in consents.evidence_ip, no copy.
    const legacyId = "cns_legacy_migration";
    await env.DB.prepare(
      `INSERT INTO consents (id, tenant_id, subject_hash, purpose, status, method, notice_id, evidence_message_id, evidence_ip, channel_id, expires_at, actor_type, actor_id, created_at)
       SELECT ?, tenant_id, subject_hash, purpose, status, 'web_form', notice_id, 'form-old', ?, channel_id, expires_at, actor_type, actor_id, created_at FROM consents WHERE tenant_id = ?`,
    )
      .bind(legacyId, await sealEvidenceIp(env, legacyId, "192.0.2.44"), tenantId)
      .run();
    const legacy = await env.DB.prepare("SELECT evidence_ip FROM consents WHERE id = ?").bind(legacyId).first<{ evidence_ip: string }>();
    const ipOf = async () =>
      ((await json(await api("GET", `/v1/consents?subject=${encodeURIComponent(subject)}`, ownerKey))) as { history: { id: string; evidence: { ip: string | null } }[] }).history.find((e) => e.id === legacyId)?.evidence.ip;
    expect(await ipOf()).toBe("192.0.2.44");

    const migration = env.TEST_MIGRATIONS.find((m) => m.name.startsWith("0005_"));
    const copy = migration?.queries.find((q) => q.includes("INSERT INTO `consent_evidence`"));
    expect(copy).toBeDefined();
    await env.DB.prepare(copy ?? "").run();
    expect(await env.DB.prepare("SELECT tenant_id, ip FROM consent_evidence WHERE id = ?").bind(legacyId).first()).toEqual({ tenant_id: tenantId, ip: legacy?.evidence_ip });

    try {
      mutable.MASTER_KEY = newKey;
      mutable.MASTER_KEY_PREVIOUS = oldKey;
      const last = (await rotateAll(500)).at(-1);
      expect(last).toMatchObject({ done: true, remaining: 0 });
      mutable.MASTER_KEY_PREVIOUS = "";
      // Readable with the new key alone: the copy was re-wrapped (the log's own copy was not, and is no longer read).
      expect(await ipOf()).toBe("192.0.2.44");
      expect(envelopeKeyId((await env.DB.prepare("SELECT ip FROM consent_evidence WHERE id = ?").bind(legacyId).first<{ ip: string }>())?.ip ?? "")).toBe(await masterKeyId(newKey));
    } finally {
      mutable.MASTER_KEY = oldKey;
      mutable.MASTER_KEY_PREVIOUS = newKey;
      await rotateAll(500);
      mutable.MASTER_KEY_PREVIOUS = undefined;
    }
    expect(await ipOf()).toBe("192.0.2.44");
  });
});
