import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { toBase64, utf8 } from "../lib/encoding";
import { api, call, createCustomChannel, createKey, createTenant, json, postCustom } from "./helpers";

const DAY = 86_400_000;

interface Recording {
  id: string;
  conversationId: string;
  status: string;
  participants: number;
  consentIds: string[];
  size: number | null;
}

async function noticeId(ownerKey: string, key: string): Promise<string> {
  return ((await json(await api("GET", `/v1/notices?key=${key}&locale=en`, ownerKey))) as { data: { id: string }[] }).data[0]?.id ?? "";
}

async function consent(ownerKey: string, subject: string, purpose: "recording" | "voice_clone", status: "granted" | "withdrawn", extra: Record<string, unknown> = {}) {
  const body = status === "granted" ? { noticeId: await noticeId(ownerKey, purpose) } : {};
  const res = await api("POST", "/v1/consents", ownerKey, { subject, purpose, status, method: "api", ...body, ...extra });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as { entry: { id: string; subjectHash: string }; voiceModelsDeleted: number };
}

async function conversation(ownerKey: string, from = "+393479100001"): Promise<string> {
  const channel = await createCustomChannel(ownerKey);
  const res = await postCustom(channel.id, channel.secret, { type: "message", id: `m-${crypto.randomUUID()}`, from, text: "Can we talk on the phone?" });
  return ((await res.json()) as { conversationId: string }).conversationId;
}

/** Audio with an unmistakable plaintext marker, to search for in the stored bytes. */
function audio(marker: string): Uint8Array<ArrayBuffer> {
  const header = utf8("OggS");
  const body = utf8(`${marker} `.repeat(200));
  const out = new Uint8Array(header.length + body.length);
  out.set(header, 0);
  out.set(body, header.length);
  return out;
}

async function r2Prefix(prefix: string): Promise<string[]> {
  return (await env.FILES.list({ prefix })).objects.map((o) => o.key);
}

function putRawAudio(recordingId: string, key: string, contentType: string, body: Uint8Array): Promise<Response> {
  return call(`/v1/recordings/${recordingId}/audio`, { method: "PUT", headers: { authorization: `Bearer ${key}`, "content-type": contentType }, body });
}

async function expectError(res: Response, status: number, code: string, path?: string) {
  expect(res.status).toBe(status);
  const body = (await res.json()) as { error: { code: string; message: string; issues?: { path: string }[] } };
  expect(body.error.code).toBe(code);
  if (path) expect(body.error.issues?.map((i) => i.path)).toContain(path);
}

describe("recordings", () => {
  it("is refused while any participant lacks a current recording consent, and allowed once all have it", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const conv = await conversation(ownerKey);
    const count = async () => (await env.DB.prepare("SELECT COUNT(*) AS n FROM recordings WHERE tenant_id = ?").bind(tenantId).first<{ n: number }>())?.n ?? 0;

    const none = await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey, { participants: [{ address: "agent.luca@shop.example" }] });
    expect(none.status).toBe(409);
    const refused = (await none.json()) as {
      error: { code: string; message: string; issues: { path: string; message: string }[] };
      missingConsent: { participant: string; state: string }[];
      withoutRecording: { allowed: boolean; noticeIds: Record<string, string> };
    };
    expect(refused.error.code).toBe("conflict");
    expect(refused.missingConsent.map((m) => m.participant)).toEqual(["end_user", "participants.0"]);
    expect(refused.error.issues.map((i) => i.path)).toEqual(["end_user", "participants.0"]);
    expect(refused.withoutRecording.allowed).toBe(true);
    expect(refused.withoutRecording.noticeIds.en).toBe(await noticeId(ownerKey, "recording"));
    expect(JSON.stringify(refused)).not.toContain("luca@shop");

    await consent(ownerKey, "+393479100001", "recording", "granted");
    const partial = await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey, { participants: [{ address: "agent.luca@shop.example" }] });
    expect(partial.status).toBe(409);
    expect(((await partial.json()) as { missingConsent: { participant: string }[] }).missingConsent.map((m) => m.participant)).toEqual(["participants.0"]);
    // An expired grant is not current either.
    await consent(ownerKey, "agent.luca@shop.example", "recording", "granted", { expiresAt: new Date(Date.now() + 1500).toISOString() });
    await new Promise((r) => setTimeout(r, 1600));
    const expired = await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey, { participants: [{ address: "agent.luca@shop.example" }] });
    expect(((await expired.json()) as { missingConsent: { state: string }[] }).missingConsent).toMatchObject([{ state: "expired" }]);
    expect(await count()).toBe(0);

    await consent(ownerKey, "Agent.Luca@shop.example", "recording", "granted");
    const ok = await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey, { participants: [{ address: "agent.luca@shop.example" }] });
    expect(ok.status).toBe(201);
    expect(await ok.json()).toMatchObject({ conversationId: conv, status: "recording", participants: 2 });
    // Without extra participants only the end user's consent is needed.
    expect((await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey)).status).toBe(201);
    expect(await count()).toBe(2);
  });

  it("stores the audio encrypted in R2 (no plaintext in the bucket) and plays it back decrypted", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const conv = await conversation(ownerKey);
    await consent(ownerKey, "+393479100001", "recording", "granted");
    const rec = (await json(await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey))) as unknown as Recording;
    const bytes = audio("PLAINTEXT-AUDIO-MARKER");
    const up = await api("PUT", `/v1/recordings/${rec.id}/audio`, ownerKey, { contentType: "audio/ogg", data: toBase64(bytes) });
    expect(up.status).toBe(200);
    expect(await up.json()).toMatchObject({ status: "stored", size: bytes.length });
    const stored = await env.DB.prepare("SELECT object_key FROM recordings WHERE id = ?").bind(rec.id).first<{ object_key: string }>();
    const key = stored?.object_key ?? "";
    expect(key).toMatch(new RegExp(`^tenants/${tenantId}/recordings/${rec.id}/dk_`));
    const object = await env.FILES.get(key);
    expect(object).not.toBeNull();
    const raw = new Uint8Array(await object!.arrayBuffer());
    expect(new TextDecoder("latin1").decode(raw)).not.toContain("PLAINTEXT-AUDIO-MARKER");
    expect(new TextDecoder("latin1").decode(raw)).not.toContain("OggS");
    expect(raw.length).toBe(bytes.length + 12 + 16);
    expect(object!.customMetadata).toMatchObject({ cipher: "AES-256-GCM", format: "1" });
    expect(object!.customMetadata?.keyId).toMatch(/^dk_/);
    // The data key in D1 is wrapped by MASTER_KEY, never stored in clear.
    const row = await env.DB.prepare("SELECT data_key, data_key_id FROM recordings WHERE id = ?").bind(rec.id).first<{ data_key: string; data_key_id: string }>();
    expect(row?.data_key).toMatch(/^v1\./);
    expect(row?.data_key_id).toBe(object!.customMetadata?.keyId);

    const back = await api("GET", `/v1/recordings/${rec.id}/audio`, ownerKey);
    expect(back.status).toBe(200);
    expect(back.headers.get("content-type")).toBe("audio/ogg");
    expect(new Uint8Array(await back.arrayBuffer())).toEqual(bytes);
    await expectError(await api("GET", `/v1/recordings/${rec.id}/audio`, await createKey(ownerKey, "viewer")), 403, "forbidden");
    expect((await api("GET", `/v1/recordings/${rec.id}`, await createKey(ownerKey, "viewer"))).status).toBe(200);
    await expectError(await api("PUT", `/v1/recordings/${rec.id}/audio`, ownerKey, { contentType: "audio/ogg", data: toBase64(bytes) }), 409, "conflict");
    // Tampered ciphertext is refused, not played.
    const tampered = raw.slice();
    tampered[40] = (tampered[40] ?? 0) ^ 0xff;
    await env.FILES.put(key, tampered, { customMetadata: object!.customMetadata ?? {} });
    expect((await api("GET", `/v1/recordings/${rec.id}/audio`, ownerKey)).status).toBe(500);
  });

  it("takes the audio as raw bytes, beyond what the JSON form allows, encrypted, and plays it back", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const conv = await conversation(ownerKey);
    await consent(ownerKey, "+393479100001", "recording", "granted");
    const rec = (await json(await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey))) as unknown as Recording;
    // 3 MiB: over the JSON form's 700 KiB and the API's 1 MiB JSON body limit.
    const marker = audio("RAW-AUDIO-MARKER");
    const bytes = new Uint8Array(3 * 1024 * 1024);
    for (let i = 0; i < bytes.length; i += marker.length) bytes.set(marker.subarray(0, Math.min(marker.length, bytes.length - i)), i);
    const up = await putRawAudio(rec.id, ownerKey, "audio/ogg; codecs=opus", bytes);
    expect(up.status, await up.clone().text()).toBe(200);
    expect(await up.json()).toMatchObject({ status: "stored", size: bytes.length });
    const [key] = await r2Prefix(`tenants/${tenantId}/recordings/${rec.id}/`);
    const raw = new Uint8Array(await (await env.FILES.get(key ?? ""))!.arrayBuffer());
    expect(raw.length).toBe(bytes.length + 12 + 16);
    expect(new TextDecoder("latin1").decode(raw.subarray(0, 65536))).not.toContain("RAW-AUDIO-MARKER");
    const back = await api("GET", `/v1/recordings/${rec.id}/audio`, ownerKey);
    expect(back.status).toBe(200);
    expect(back.headers.get("content-type")).toBe("audio/ogg");
    const sha256 = async (b: BufferSource) => toBase64(new Uint8Array(await crypto.subtle.digest("SHA-256", b)));
    const played = new Uint8Array(await back.arrayBuffer());
    expect(played.length).toBe(bytes.length);
    expect(await sha256(played)).toBe(await sha256(bytes));
    // Once only, whatever the form.
    await expectError(await putRawAudio(rec.id, ownerKey, "audio/ogg", marker), 409, "conflict");
  });

  it("stores nothing if a participant withdrew between the start and the upload", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const conv = await conversation(ownerKey);
    await consent(ownerKey, "+393479100001", "recording", "granted");
    const rec = (await json(await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey))) as unknown as Recording;
    await consent(ownerKey, "+393479100001", "recording", "withdrawn");
    await expectError(await api("PUT", `/v1/recordings/${rec.id}/audio`, ownerKey, { contentType: "audio/ogg", data: toBase64(audio("X")) }), 409, "conflict");
    expect(await r2Prefix(`tenants/${tenantId}/recordings/`)).toEqual([]);
  });

  it("refuses bad input with the error shape and stores nothing", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const conv = await conversation(ownerKey);
    await consent(ownerKey, "+393479100001", "recording", "granted");
    const rec = (await json(await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey))) as unknown as Recording;
    const other = await createTenant();
    const foreignConv = await conversation(other.ownerKey, "+393479100002");
    const recordings = async () => (await env.DB.prepare("SELECT COUNT(*) AS n FROM recordings WHERE tenant_id = ?").bind(tenantId).first<{ n: number }>())?.n;
    const before = await recordings();
    await expectError(await api("POST", `/v1/conversations/conv_unknown/recordings`, ownerKey), 404, "not_found");
    await expectError(await api("POST", `/v1/conversations/${foreignConv}/recordings`, ownerKey), 404, "not_found");
    await expectError(await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey, { participants: [{ address: "bad\u0001" }] }), 400, "validation_error", "participants.0.address");
    await expectError(await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey, { participants: Array.from({ length: 11 }, (_, i) => ({ address: `p${i}@example.com` })) }), 400, "validation_error", "participants");
    await expectError(await api("POST", `/v1/conversations/${conv}/recordings`, ownerKey, { participants: [], extra: 1 }), 400, "validation_error");
    await expectError(await api("POST", `/v1/conversations/${conv}/recordings`, await createKey(ownerKey, "viewer")), 403, "forbidden");
    await expectError(await api("POST", `/v1/conversations/${conv}/recordings`), 401, "unauthorized");
    expect(await recordings()).toBe(before);
    for (const [body, path] of [
      [{ contentType: "audio/ogg", data: "!!!not base64!!!" }, "data"],
      [{ contentType: "video/mp4", data: toBase64(audio("x")) }, "contentType"],
      [{ contentType: "audio/ogg", data: "" }, "data"],
      [{ contentType: "audio/ogg" }, "data"],
      [{ contentType: "audio/ogg", data: toBase64(new Uint8Array(700 * 1024 + 1)) }, "data"],
    ] as const) {
      await expectError(await api("PUT", `/v1/recordings/${rec.id}/audio`, ownerKey, body), 400, "validation_error", path);
    }
    // Raw bytes: an audio/* type, not empty, at most 10 MiB.
    await expectError(await putRawAudio(rec.id, ownerKey, "text/plain", audio("x")), 415, "unsupported_media_type");
    await expectError(await putRawAudio(rec.id, ownerKey, "application/octet-stream", audio("x")), 415, "unsupported_media_type");
    await expectError(await putRawAudio(rec.id, ownerKey, `audio/${"x".repeat(61)}`, audio("x")), 415, "unsupported_media_type");
    await expectError(await putRawAudio(rec.id, ownerKey, "audio/ogg", new Uint8Array(0)), 400, "validation_error", "(body)");
    await expectError(await putRawAudio(rec.id, ownerKey, "audio/ogg", new Uint8Array(10 * 1024 * 1024 + 1)), 413, "payload_too_large");
    await expectError(await putRawAudio(rec.id, await createKey(ownerKey, "viewer"), "audio/ogg", audio("x")), 403, "forbidden");
    await expectError(await putRawAudio("rec_unknown", ownerKey, "audio/ogg", audio("x")), 404, "not_found");
    await expectError(await api("PUT", `/v1/recordings/${rec.id}/audio`, ownerKey), 400, "validation_error");
    await expectError(await api("PUT", `/v1/recordings/rec_unknown/audio`, ownerKey, { contentType: "audio/ogg", data: toBase64(audio("x")) }), 404, "not_found");
    await expectError(await api("PUT", `/v1/recordings/${rec.id}/audio`, other.ownerKey, { contentType: "audio/ogg", data: toBase64(audio("x")) }), 404, "not_found");
    await expectError(await api("PUT", `/v1/recordings/${rec.id}/audio`, await createKey(ownerKey, "viewer"), { contentType: "audio/ogg", data: toBase64(audio("x")) }), 403, "forbidden");
    expect(await r2Prefix(`tenants/${tenantId}/`)).toEqual([]);
    expect(await json(await api("GET", `/v1/recordings/${rec.id}`, ownerKey))).toMatchObject({ status: "recording" });
  });
});

describe("voice models", () => {
  const model = (marker: string) => ({ subject: "+393479200001", name: "Voce di Giulia", metadata: { provider: "in-house", language: "it" }, sourceAudio: { contentType: "audio/wav", data: toBase64(audio(marker)) } });

  it("registers a model only under a current voice_clone consent, encrypted", async () => {
    const { tenantId, ownerKey } = await createTenant();
    await expectError(await api("POST", "/v1/voice-models", ownerKey, model("A")), 409, "conflict");
    await consent(ownerKey, "+393479200001", "recording", "granted");
    await expectError(await api("POST", "/v1/voice-models", ownerKey, model("A")), 409, "conflict");
    expect(await r2Prefix(`tenants/${tenantId}/`)).toEqual([]);
    const expiresAt = new Date(Date.now() + 90 * DAY).toISOString();
    const granted = await consent(ownerKey, "+393479200001", "voice_clone", "granted", { expiresAt });
    const res = await api("POST", "/v1/voice-models", ownerKey, model("VOICE-SOURCE-MARKER"));
    expect(res.status).toBe(201);
    const vm = (await res.json()) as { id: string; consentId: string; expiresAt: string; subjectHash: string; status: string };
    expect(vm).toMatchObject({ consentId: granted.entry.id, expiresAt, subjectHash: granted.entry.subjectHash, status: "active" });
    const keys = await r2Prefix(`tenants/${tenantId}/voice-models/${vm.id}/`);
    expect(keys).toHaveLength(1);
    const raw = new TextDecoder("latin1").decode(await (await env.FILES.get(keys[0] ?? ""))!.arrayBuffer());
    expect(raw).not.toContain("VOICE-SOURCE-MARKER");
    const row = JSON.stringify(await env.DB.prepare("SELECT * FROM voice_models WHERE id = ?").bind(vm.id).first());
    expect(row).not.toContain("3479200001");
    expect((await json(await api("GET", "/v1/voice-models", ownerKey))) as { data: unknown[] }).toMatchObject({ data: [{ id: vm.id }] });
  });

  it("revoking the consent deletes the model and its source audio for real, and logs the deletion without identifiers", async () => {
    const { tenantId, ownerKey } = await createTenant();
    await consent(ownerKey, "+393479200001", "voice_clone", "granted", { expiresAt: new Date(Date.now() + 30 * DAY).toISOString() });
    const first = (await json(await api("POST", "/v1/voice-models", ownerKey, model("one")))) as { id: string; subjectHash: string };
    const second = (await json(await api("POST", "/v1/voice-models", ownerKey, { ...model("two"), name: "Voce 2" }))) as { id: string };
    // Another person's model stays.
    await consent(ownerKey, "+393479200009", "voice_clone", "granted", { expiresAt: new Date(Date.now() + 30 * DAY).toISOString() });
    const kept = (await json(await api("POST", "/v1/voice-models", ownerKey, { ...model("kept"), subject: "+393479200009" }))) as { id: string };
    expect(await r2Prefix(`tenants/${tenantId}/voice-models/`)).toHaveLength(3);

    const revocation = await noticeId(ownerKey, "voice_clone_revocation");
    const res = await api("POST", "/v1/consents", ownerKey, { subject: "+39 347 920 0001", purpose: "voice_clone", status: "withdrawn", method: "api", noticeId: revocation });
    expect(res.status).toBe(201);
    expect(await res.json()).toMatchObject({ voiceModelsDeleted: 2, entry: { noticeId: revocation, status: "withdrawn" } });

    const keptKey = (await env.DB.prepare("SELECT object_key FROM voice_models WHERE id = ?").bind(kept.id).first<{ object_key: string }>())?.object_key;
    expect(await r2Prefix(`tenants/${tenantId}/voice-models/`)).toEqual([keptKey]);
    const rows = await env.DB.prepare("SELECT id FROM voice_models WHERE tenant_id = ?").bind(tenantId).all<{ id: string }>();
    expect(rows.results.map((r) => r.id)).toEqual([kept.id]);
    await expectError(await api("GET", `/v1/voice-models/${first.id}`, ownerKey), 404, "not_found");
    const log = await env.DB.prepare("SELECT target_type, target_id, category, reason, subject_hash FROM deletion_log WHERE tenant_id = ?").bind(tenantId).all();
    const entry = (target_type: string, target_id: unknown, category: string) => ({ target_type, target_id, category, reason: "consent_withdrawn", subject_hash: first.subjectHash });
    expect(log.results).toHaveLength(4);
    expect(log.results).toEqual(
      expect.arrayContaining([
        entry("voice_model", first.id, "voice_models"),
        entry("voice_model", second.id, "voice_models"),
        entry("r2_object", expect.stringMatching(new RegExp(`^tenants/${tenantId}/voice-models/${first.id}/dk_`)), "voice_source_audio"),
        entry("r2_object", expect.stringMatching(new RegExp(`^tenants/${tenantId}/voice-models/${second.id}/dk_`)), "voice_source_audio"),
      ]),
    );
    expect(JSON.stringify(log.results)).not.toContain("3479200001");
    // After the revocation no new model can be registered.
    await expectError(await api("POST", "/v1/voice-models", ownerKey, model("again")), 409, "conflict");
  });

  it("an expired consent, an interrupted deletion and a tenant's request all end in real deletion", async () => {
    const { tenantId, ownerKey } = await createTenant();
    await consent(ownerKey, "+393479200001", "voice_clone", "granted", { expiresAt: new Date(Date.now() + 30 * DAY).toISOString() });
    const a = (await json(await api("POST", "/v1/voice-models", ownerKey, model("a")))) as { id: string };
    const b = (await json(await api("POST", "/v1/voice-models", ownerKey, model("b")))) as { id: string };
    const c = (await json(await api("POST", "/v1/voice-models", ownerKey, model("c")))) as { id: string };
    // a: its consent period is over; b: a withdrawal marked it but the purge was interrupted.
    await env.DB.prepare("UPDATE voice_models SET expires_at = ? WHERE id = ?").bind(Date.now() - 1, a.id).run();
    await env.DB.prepare("UPDATE voice_models SET status = 'deleting' WHERE id = ?").bind(b.id).run();
    const list = (await json(await api("GET", "/v1/voice-models", ownerKey))) as { data: { id: string }[] };
    expect(list.data.map((m) => m.id)).toEqual([c.id]);
    expect((await api("DELETE", `/v1/voice-models/${c.id}`, ownerKey)).status).toBe(200);
    await expectError(await api("DELETE", `/v1/voice-models/${c.id}`, ownerKey), 404, "not_found");
    expect(await r2Prefix(`tenants/${tenantId}/`)).toEqual([]);
    const reasons = await env.DB.prepare("SELECT target_id, reason FROM deletion_log WHERE tenant_id = ? AND target_type = 'voice_model'").bind(tenantId).all<{ target_id: string; reason: string }>();
    expect(Object.fromEntries(reasons.results.map((r) => [r.target_id, r.reason]))).toEqual({ [a.id]: "consent_expired", [b.id]: "consent_withdrawn", [c.id]: "tenant_request" });
  });

  it("refuses bad input with the error shape and stores nothing", async () => {
    const { tenantId, ownerKey } = await createTenant();
    await consent(ownerKey, "+393479200001", "voice_clone", "granted", { expiresAt: new Date(Date.now() + 30 * DAY).toISOString() });
    const cases: [unknown, string | undefined][] = [
      [{ ...model("x"), subject: "" }, "subject"],
      [{ ...model("x"), name: "" }, "name"],
      [{ ...model("x"), sourceAudio: { contentType: "audio/wav", data: "%%%" } }, "sourceAudio.data"],
      [{ ...model("x"), sourceAudio: { contentType: "text/plain", data: "aGVsbG8=" } }, "sourceAudio.contentType"],
      [{ ...model("x"), metadata: Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`k${i}`, i])) }, "metadata"],
      [{ ...model("x"), metadata: { nested: { no: true } } }, "metadata.nested"],
      [{ ...model("x"), extra: 1 }, undefined],
    ];
    for (const [body, path] of cases) await expectError(await api("POST", "/v1/voice-models", ownerKey, body), 400, "validation_error", path);
    await expectError(await api("POST", "/v1/voice-models", await createKey(ownerKey, "agent"), model("x")), 403, "forbidden");
    await expectError(await api("GET", "/v1/voice-models", await createKey(ownerKey, "viewer")), 403, "forbidden");
    expect(await r2Prefix(`tenants/${tenantId}/`)).toEqual([]);
    expect((await env.DB.prepare("SELECT COUNT(*) AS n FROM voice_models WHERE tenant_id = ?").bind(tenantId).first<{ n: number }>())?.n).toBe(0);
  });
});
