import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { utf8 } from "../lib/encoding";
import { app } from "../workers/app";
import { ATTACHMENT_MAX_BYTES } from "../workers/attachments";
import { destroySubjectKeysStatement } from "../workers/support/subject-keys";
import { api, BASE, call, createCustomChannel, createKey, createTenant, json, postCustom } from "./helpers";

const MARKER = "CONFIDENTIAL-PAYSLIP-MARIO-ROSSI";

/** A file with an unmistakable plaintext marker, to search for in the stored bytes. */
function fileBytes(marker = MARKER, repeat = 50): Uint8Array<ArrayBuffer> {
  return utf8(`%PDF-1.7\n${`${marker}\n`.repeat(repeat)}%%EOF\n`);
}

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

async function conversation(ownerKey: string, from = "+393471234567"): Promise<string> {
  const channel = await createCustomChannel(ownerKey);
  const res = await postCustom(channel.id, channel.secret, { type: "message", id: `m-${crypto.randomUUID()}`, from, text: "Here is the document" });
  expect(res.status).toBe(200);
  return ((await res.json()) as { conversationId: string }).conversationId;
}

function upload(key: string | undefined, conversationId: string, body: BodyInit | null, contentType: string | null = "application/pdf", extra: Record<string, string> = {}) {
  const headers: Record<string, string> = { ...extra };
  if (key) headers.authorization = `Bearer ${key}`;
  if (contentType !== null) headers["content-type"] = contentType;
  return call(`/v1/conversations/${conversationId}/attachments`, { method: "POST", headers, body });
}

interface Attachment {
  id: string;
  conversationId: string;
  contentType: string;
  size: number;
  download: string;
}

async function stored(tenantId: string) {
  const rows = await env.DB.prepare("SELECT COUNT(*) AS n FROM attachments WHERE tenant_id = ?").bind(tenantId).first<{ n: number }>();
  const objects = await env.FILES.list({ prefix: `t/${tenantId}/` });
  const audits = await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = ? AND action LIKE 'attachment.%'").bind(tenantId).first<{ n: number }>();
  return { rows: rows?.n ?? 0, objects: objects.objects.length, audits: audits?.n ?? 0 };
}

async function expectError(res: Response, status: number, code: string) {
  expect(res.status, await res.clone().text()).toBe(status);
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
}

describe("encrypted attachments", () => {
  it("stores only ciphertext in R2 under an identifier-free key, and round-trips for owner, admin and agent keys", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const conv = await conversation(ownerKey);
    const bytes = fileBytes();
    const res = await upload(ownerKey, conv, bytes, "application/pdf; name=payslip.pdf");
    expect(res.status, await res.clone().text()).toBe(201);
    const att = (await res.json()) as Attachment;
    expect(att).toMatchObject({ conversationId: conv, contentType: "application/pdf", size: bytes.length, download: `/v1/attachments/${att.id}` });

    const row = await env.DB.prepare("SELECT * FROM attachments WHERE id = ?").bind(att.id).first<{ r2_key: string; category: string; key_id: string; subject_hash: string }>();
    expect(row?.category).toBe("attachment");
    expect(row?.r2_key).toBe(`t/${tenantId}/a/${att.id}`);
    const conversationRow = await env.DB.prepare("SELECT subject_hash FROM conversations WHERE id = ?").bind(conv).first<{ subject_hash: string }>();
    expect(row?.subject_hash).toBe(conversationRow?.subject_hash);
    const subjectKey = await env.DB.prepare("SELECT id FROM subject_keys WHERE tenant_id = ? AND subject_hash = ? AND destroyed_at IS NULL")
      .bind(tenantId, conversationRow?.subject_hash)
      .first<{ id: string }>();
    expect(row?.key_id).toBe(subjectKey?.id);

    // The raw object: no plaintext, no identifiers in its key or metadata; it names its keys.
    const raw = await env.FILES.get(row?.r2_key ?? "");
    expect(raw).not.toBeNull();
    const rawBytes = new Uint8Array((await raw?.arrayBuffer()) ?? new ArrayBuffer(0));
    expect(rawBytes.length).toBe(bytes.length + 28);
    expect(contains(rawBytes, utf8(MARKER))).toBe(false);
    expect(contains(rawBytes, utf8("%PDF"))).toBe(false);
    expect(raw?.httpMetadata?.contentType).toBe("application/octet-stream");
    expect(raw?.customMetadata).toMatchObject({ cipher: "AES-256-GCM", format: "file-v1", keyId: subjectKey?.id });
    const described = JSON.stringify({ key: raw?.key, meta: raw?.customMetadata });
    for (const identifier of ["393471234567", conv, conversationRow?.subject_hash ?? "?", MARKER]) expect(described).not.toContain(identifier);

    for (const key of [ownerKey, await createKey(ownerKey, "admin"), await createKey(ownerKey, "agent")]) {
      const got = await api("GET", att.download, key);
      expect(got.status).toBe(200);
      expect(got.headers.get("content-type")).toBe("application/pdf");
      expect(got.headers.get("cache-control")).toBe("no-store");
      expect(got.headers.get("content-disposition")).toBe(`attachment; filename="${att.id}"`);
      expect(got.headers.get("content-security-policy")).toContain("sandbox");
      expect(new Uint8Array(await got.arrayBuffer())).toEqual(bytes);
    }
    const audit = (await json(await api("GET", "/v1/audit?limit=20", ownerKey))) as { data: { action: string; targetId: string; detail: Record<string, unknown> }[] };
    expect(audit.data.filter((a) => a.action === "attachment.downloaded")).toHaveLength(3);
    expect(audit.data.find((a) => a.action === "attachment.uploaded")).toMatchObject({ targetId: att.id, detail: { conversationId: conv, bytes: bytes.length } });
    expect(JSON.stringify(audit.data)).not.toContain(MARKER);

    const list = (await json(await api("GET", `/v1/conversations/${conv}/attachments`, ownerKey))) as { data: Attachment[] };
    expect(list.data.map((a) => a.id)).toEqual([att.id]);
  });

  it("accepts a file up to 10 MiB (chunked, no Content-Length) and refuses one byte more with 413", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const conv = await conversation(ownerKey);
    const big = new Uint8Array(ATTACHMENT_MAX_BYTES);
    big.fill(0x41);
    big.set(utf8(MARKER), 5_000_000);
    const ok = await upload(ownerKey, conv, big, "application/octet-stream");
    expect(ok.status).toBe(201);
    const att = (await ok.json()) as Attachment;
    const raw = new Uint8Array((await (await env.FILES.get(`t/${tenantId}/a/${att.id}`))?.arrayBuffer()) ?? new ArrayBuffer(0));
    expect(contains(raw.subarray(4_999_000, 5_001_000), utf8(MARKER))).toBe(false);
    const back = new Uint8Array(await (await api("GET", att.download, ownerKey)).arrayBuffer());
    expect(back.length).toBe(big.length);
    expect(back.subarray(5_000_000, 5_000_000 + MARKER.length)).toEqual(utf8(MARKER));

    const before = await stored(tenantId);
    await expectError(await upload(ownerKey, conv, new Uint8Array(ATTACHMENT_MAX_BYTES + 1), "application/octet-stream"), 413, "payload_too_large");
    // Streamed without a Content-Length: counted while reading.
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 11) controller.enqueue(new Uint8Array(1024 * 1024));
        else controller.close();
      },
    });
    // Straight into the app (a service-binding hop would log the cut-off pipe as an error).
    const streamed = new Request(`${BASE}/v1/conversations/${conv}/attachments`, {
      method: "POST",
      headers: { authorization: `Bearer ${ownerKey}`, "content-type": "application/octet-stream" },
      body: stream,
      duplex: "half",
    } as RequestInit);
    await expectError(await app.fetch(streamed, env, createExecutionContext()), 413, "payload_too_large");
    expect(await stored(tenantId)).toEqual(before);
  });

  it("refuses bad input with a 4xx and stores nothing", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const other = await createTenant("Other");
    const conv = await conversation(ownerKey);
    const viewer = await createKey(ownerKey, "viewer");
    const before = await stored(tenantId);
    await expectError(await upload(undefined, conv, fileBytes()), 401, "unauthorized");
    await expectError(await upload(viewer, conv, fileBytes()), 403, "forbidden");
    await expectError(await upload(ownerKey, conv, fileBytes(), null), 415, "unsupported_media_type");
    await expectError(await upload(ownerKey, conv, fileBytes(), "not a media type"), 415, "unsupported_media_type");
    await expectError(await upload(ownerKey, conv, fileBytes(), "multipart/form-data; boundary=x"), 415, "unsupported_media_type");
    await expectError(await upload(ownerKey, conv, new Uint8Array(0)), 400, "validation_error");
    await expectError(await upload(ownerKey, "conv_doesnotexist", fileBytes()), 404, "not_found");
    await expectError(await upload(other.ownerKey, conv, fileBytes()), 404, "not_found");
    await expectError(await upload(ownerKey, "x".repeat(65), fileBytes()), 400, "validation_error");
    // The exemption is for the upload only: other /v1 routes still take JSON alone.
    await expectError(await call(`/v1/conversations/${conv}/messages`, { method: "POST", headers: { authorization: `Bearer ${ownerKey}`, "content-type": "application/pdf" }, body: "x" }), 415, "unsupported_media_type");
    expect(await stored(tenantId)).toEqual(before);
    expect((await stored(other.tenantId)).rows).toBe(0);
    expect((await env.FILES.list({ prefix: `t/${other.tenantId}/` })).objects).toHaveLength(0);
  });

  it("is tenant-scoped (404 for another tenant's id), closed to viewers (403), and 404 for unknown ids", async () => {
    const { ownerKey } = await createTenant();
    const other = await createTenant("Other");
    const conv = await conversation(ownerKey);
    const att = (await (await upload(ownerKey, conv, fileBytes())).json()) as Attachment;
    await expectError(await api("GET", att.download, other.ownerKey), 404, "not_found");
    await expectError(await api("GET", `/v1/conversations/${conv}/attachments`, other.ownerKey), 404, "not_found");
    await expectError(await api("GET", att.download, await createKey(ownerKey, "viewer")), 403, "forbidden");
    await expectError(await api("GET", "/v1/attachments/att_unknown", ownerKey), 404, "not_found");
    await expectError(await api("GET", att.download), 401, "unauthorized");
    // Recordings share the table but have their own endpoint, with its consent rules.
    await env.DB.prepare("UPDATE attachments SET category = 'recording' WHERE id = ?").bind(att.id).run();
    await expectError(await api("GET", att.download, ownerKey), 404, "not_found");
  });

  it("answers 410 Gone once the subject's key is destroyed (a restored row can never be read)", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const conv = await conversation(ownerKey);
    const att = (await (await upload(ownerKey, conv, fileBytes())).json()) as Attachment;
    const before = await env.FILES.get(`t/${tenantId}/a/${att.id}`);
    const subject = await env.DB.prepare("SELECT subject_hash FROM conversations WHERE id = ?").bind(conv).first<{ subject_hash: string }>();
    await destroySubjectKeysStatement(env.DB, tenantId, subject?.subject_hash ?? "", Date.now()).run();
    const res = await api("GET", att.download, ownerKey);
    await expectError(res, 410, "subject_erased");
    // The ciphertext may survive in a backup; without the key it is noise.
    expect((await env.FILES.get(`t/${tenantId}/a/${att.id}`))?.etag).toBe(before?.etag);
  });

  it("refuses a tampered object, stripped metadata, another object's bytes or a swapped subject key with 409 integrity_check_failed, and logs it", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const conv = await conversation(ownerKey);
    const first = (await (await upload(ownerKey, conv, fileBytes("FIRST"))).json()) as Attachment;
    const second = (await (await upload(ownerKey, conv, fileBytes("SECOND"))).json()) as Attachment;
    const keyOf = (a: Attachment) => `t/${tenantId}/a/${a.id}`;
    const original = await env.FILES.get(keyOf(first));
    const originalBytes = new Uint8Array((await original?.arrayBuffer()) ?? new ArrayBuffer(0));
    const meta = original?.customMetadata ?? {};
    const securityBefore = (await env.DB.prepare("SELECT COUNT(*) AS n FROM security_log WHERE tenant_id = ? AND kind = 'attachment_integrity'").bind(tenantId).first<{ n: number }>())?.n ?? 0;

    // One flipped bit in the ciphertext.
    const flipped = originalBytes.slice();
    flipped[100] = (flipped[100] ?? 0) ^ 0x01;
    await env.FILES.put(keyOf(first), flipped, { customMetadata: meta });
    await expectError(await api("GET", first.download, ownerKey), 409, "integrity_check_failed");
    // The second file's bytes and metadata copied over the first (bound to its own key: refused).
    const other = await env.FILES.get(keyOf(second));
    await env.FILES.put(keyOf(first), new Uint8Array((await other?.arrayBuffer()) ?? new ArrayBuffer(0)), { customMetadata: other?.customMetadata ?? {} });
    await expectError(await api("GET", first.download, ownerKey), 409, "integrity_check_failed");
    // Stripped metadata.
    await env.FILES.put(keyOf(first), originalBytes);
    await expectError(await api("GET", first.download, ownerKey), 409, "integrity_check_failed");
    // Restored: readable again.
    await env.FILES.put(keyOf(first), originalBytes, { customMetadata: meta });
    expect(new Uint8Array(await (await api("GET", first.download, ownerKey)).arrayBuffer())).toEqual(fileBytes("FIRST"));
    // Another subject's wrapped key copied over this subject's (bound to its own subject: refused).
    await conversation(ownerKey, "+393479999000");
    const { results: keys } = await env.DB.prepare("SELECT id, wrapped_key FROM subject_keys WHERE tenant_id = ? ORDER BY created_at").bind(tenantId).all<{ id: string; wrapped_key: string }>();
    const [mine, theirs] = keys;
    expect(keys).toHaveLength(2);
    await env.DB.prepare("UPDATE subject_keys SET wrapped_key = ? WHERE id = ?").bind(theirs?.wrapped_key, mine?.id).run();
    await expectError(await api("GET", first.download, ownerKey), 409, "integrity_check_failed");
    await env.DB.prepare("UPDATE subject_keys SET wrapped_key = ? WHERE id = ?").bind(mine?.wrapped_key, mine?.id).run();
    expect((await api("GET", first.download, ownerKey)).status).toBe(200);
    const securityAfter = (await env.DB.prepare("SELECT COUNT(*) AS n FROM security_log WHERE tenant_id = ? AND kind = 'attachment_integrity'").bind(tenantId).first<{ n: number }>())?.n ?? 0;
    expect(securityAfter - securityBefore).toBe(4);
    const downloads = await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = ? AND action = 'attachment.downloaded'").bind(tenantId).first<{ n: number }>();
    expect(downloads?.n).toBe(2);
  });

  it("is erased with the conversation by a DSR erasure (row and object)", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const conv = await conversation(ownerKey, "+393470000111");
    const att = (await (await upload(ownerKey, conv, fileBytes())).json()) as Attachment;
    const dsr = (await json(await api("POST", "/v1/dsr", ownerKey, { type: "erasure", subject: "+393470000111", verification: "attested", note: "verified by phone call" }))) as { id: string; status: string };
    expect(dsr.status, JSON.stringify(dsr)).toBe("verified");
    expect((await api("POST", `/v1/dsr/${dsr.id}/execute`, ownerKey)).status).toBe(200);
    expect(await env.FILES.get(`t/${tenantId}/a/${att.id}`)).toBeNull();
    await expectError(await api("GET", att.download, ownerKey), 404, "not_found");
  });
});
