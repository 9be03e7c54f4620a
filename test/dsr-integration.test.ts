import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { addMonths } from "../workers/dsr";
import { api, call, createCustomChannel, createKey, createTenant, json, postCustom } from "./helpers";

const stubFor = (id: string) => env.CONVERSATION.get(env.CONVERSATION.idFromName(id));
const SUBJECT = "+393471112233";

async function subjectWithConversations(n = 3) {
  const t = await createTenant("DSR shop");
  const ids: string[] = [];
  const channels = [];
  for (let i = 0; i < n; i++) channels.push(await createCustomChannel(t.ownerKey));
  for (const [i, ch] of channels.entries()) {
    const res = (await json(await postCustom(ch.id, ch.secret, { type: "message", id: `dsr-${i}`, from: SUBJECT, text: `Message ${i}: my email is mario.rossi@example.com` }))) as { conversationId: string };
    ids.push(res.conversationId);
  }
  const other = (await json(await postCustom(channels[0]?.id ?? "", channels[0]?.secret ?? "", { type: "message", id: "other", from: "+393479999999", text: "someone else" }))) as { conversationId: string };
  // An attachment row + R2 object for the first conversation.
  const subject = await env.DB.prepare("SELECT subject_hash FROM conversations WHERE id = ?").bind(ids[0]).first<{ subject_hash: string }>();
  const attachmentId = `att_${t.tenantId}`;
  await env.FILES.put(`t/${t.tenantId}/a/${attachmentId}`, new Uint8Array([1, 2, 3]));
  await env.DB.prepare(
    "INSERT INTO attachments (id, tenant_id, conversation_id, subject_hash, category, r2_key, content_type, size, key_id, created_at) VALUES (?, ?, ?, ?, 'attachment', ?, 'image/png', 3, 'sk_x', ?)",
  )
    .bind(attachmentId, t.tenantId, ids[0], subject?.subject_hash, `t/${t.tenantId}/a/${attachmentId}`, Date.now())
    .run();
  return { ...t, ids, other: other.conversationId, subjectHash: subject?.subject_hash ?? "", attachmentId };
}

async function newDsr(key: string, body: Record<string, unknown>) {
  const res = await api("POST", "/v1/dsr", key, body);
  return { status: res.status, body: (await res.json()) as { id: string; status: string; dueAt: string; receivedAt: string; result: Record<string, unknown> | null } };
}

describe("data subject requests", () => {
  it("computes the due date one calendar month after receipt", () => {
    expect(new Date(addMonths(Date.UTC(2026, 0, 31), 1)).toISOString().slice(0, 10)).toBe("2026-02-28");
    expect(new Date(addMonths(Date.UTC(2026, 10, 23), 1)).toISOString().slice(0, 10)).toBe("2026-12-23");
  });

  it("verifies identity with a code sent over the subject's channel, then exports everything as JSON and CSV", async () => {
    const t = await subjectWithConversations(2);
    const created = await newDsr(t.ownerKey, { type: "access", subject: SUBJECT, verification: "channel_code" });
    expect(created.status).toBe(201);
    expect(created.body.status).toBe("received");
    expect(Date.parse(created.body.dueAt) - Date.parse(created.body.receivedAt)).toBeGreaterThan(27 * 86_400_000);
    // The code went out as a system message in the subject's latest conversation.
    let code = "";
    for (const id of t.ids) {
      const msgs = (await json(await api("GET", `/v1/conversations/${id}/messages`, t.ownerKey))) as { data: { author: string; text: string }[] };
      const m = msgs.data.find((x) => x.author === "system" && /verification code/.test(x.text));
      if (m) code = /(\d{6})/.exec(m.text)?.[1] ?? "";
    }
    expect(code).toMatch(/^\d{6}$/);
    expect((await api("POST", `/v1/dsr/${created.body.id}/export`, t.ownerKey)).status).toBe(404);
    expect((await api("GET", `/v1/dsr/${created.body.id}/export`, t.ownerKey)).status).toBe(409);
    expect((await api("POST", `/v1/dsr/${created.body.id}/verify`, t.ownerKey, { code: code === "000000" ? "111111" : "000000" })).status).toBe(400);
    expect(((await json(await api("POST", `/v1/dsr/${created.body.id}/verify`, t.ownerKey, { code }))) as { status: string }).status).toBe("verified");
    const done = (await json(await api("POST", `/v1/dsr/${created.body.id}/execute`, t.ownerKey))) as { status: string; result: { messages: number } };
    expect(done.status).toBe("completed");
    const exported = (await json(await api("GET", `/v1/dsr/${created.body.id}/export?format=json`, t.ownerKey))) as {
      subject: string;
      conversations: { messages: { text: string }[] }[];
      attachments: unknown[];
    };
    expect(exported.subject).toBe(`tel:${SUBJECT}`);
    expect(exported.conversations).toHaveLength(2);
    expect(JSON.stringify(exported)).toContain("mario.rossi@example.com");
    expect(JSON.stringify(exported)).not.toContain("someone else");
    expect(exported.attachments).toHaveLength(1);
    const csv = await api("GET", `/v1/dsr/${created.body.id}/export?format=csv`, t.ownerKey);
    expect(csv.headers.get("content-type")).toContain("text/csv");
    const text = await csv.text();
    expect(text.split("\r\n")[0]).toBe("record,conversation_id,seq,direction,author,created_at,text_or_purpose,status,detail");
    expect(text).toContain("Message 0: my email is mario.rossi@example.com");
    const audit = (await json(await api("GET", "/v1/audit?limit=100", t.ownerKey))) as { data: { action: string }[] };
    expect(audit.data.map((a) => a.action)).toEqual(expect.arrayContaining(["dsr.received", "dsr.verified", "dsr.completed", "dsr.exported"]));
  });

  it("erasure reaches every store and destroys the subject key; the export afterwards is empty", async () => {
    const t = await subjectWithConversations(3);
    // A snapshot taken before erasure, as a backup would hold it.
    const snapshot = await stubFor(t.ids[1] ?? "").exportSnapshot();
    const req = await newDsr(t.ownerKey, { type: "erasure", subject: SUBJECT, verification: "attested", note: "ID card checked at the counter" });
    expect(req.body.status).toBe("verified");
    const done = (await json(await api("POST", `/v1/dsr/${req.body.id}/execute`, t.ownerKey))) as { status: string; result: Record<string, unknown> };
    expect(done).toMatchObject({ status: "completed", result: { held: false, erasedConversations: 3, subjectKeyDestroyed: true } });
    for (const id of t.ids) {
      expect((await api("GET", `/v1/conversations/${id}`, t.ownerKey)).status).toBe(404);
      const left = await runInDurableObject(stubFor(id), (_i, state) => state.storage.sql.exec("SELECT COUNT(*) AS n FROM messages").one().n);
      expect(left).toBe(0);
    }
    expect(await env.FILES.get(`t/${t.tenantId}/a/${t.attachmentId}`)).toBeNull();
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM attachments WHERE id = ?").bind(t.attachmentId).first<{ n: number }>()).toEqual({ n: 0 });
    const key = await env.DB.prepare("SELECT wrapped_key, destroyed_at FROM subject_keys WHERE tenant_id = ? AND subject_hash = ?").bind(t.tenantId, t.subjectHash).first<{ wrapped_key: string | null; destroyed_at: number | null }>();
    expect(key?.wrapped_key).toBeNull();
    expect(key?.destroyed_at).not.toBeNull();
    const log = await env.DB.prepare("SELECT target_type, reason, subject_hash FROM deletion_log WHERE tenant_id = ?").bind(t.tenantId).all<{ target_type: string; reason: string; subject_hash: string }>();
    expect(log.results.filter((r) => r.target_type === "conversation")).toHaveLength(3);
    expect(JSON.stringify(log.results)).not.toContain(SUBJECT);
    // Restoring a pre-erasure snapshot brings back nothing readable: the key is gone.
    if (!snapshot) throw new Error("no snapshot");
    await stubFor(t.ids[1] ?? "").importSnapshot(snapshot);
    const restored = await stubFor(t.ids[1] ?? "").listMessages({ limit: 10, order: "asc" });
    expect(restored.messages.map((m) => m.text)).toEqual(["[erased]"]);
    const view = await stubFor(t.ids[1] ?? "").getConversation();
    expect(view?.address).toBe("[erased]");
    // The other subject is untouched; a new access request finds nothing.
    expect((await api("GET", `/v1/conversations/${t.other}`, t.ownerKey)).status).toBe(200);
    await env.DB.prepare("DELETE FROM conversations WHERE id = ?").bind(t.ids[1]).run();
    const access = await newDsr(t.ownerKey, { type: "access", subject: SUBJECT, verification: "attested", note: "same person, same ID" });
    await api("POST", `/v1/dsr/${access.body.id}/execute`, t.ownerKey);
    const exported = (await json(await api("GET", `/v1/dsr/${access.body.id}/export`, t.ownerKey))) as { conversations: unknown[]; attachments: unknown[] };
    expect(exported.conversations).toEqual([]);
    expect(exported.attachments).toEqual([]);
  });

  it("a legal hold keeps the subject's data and the request answers held with the reason", async () => {
    const t = await subjectWithConversations(1);
    await env.DB.prepare("INSERT INTO legal_holds (id, tenant_id, scope, target, reason, created_at) VALUES (?, ?, 'subject', ?, 'Investigation 2026/17', ?)")
      .bind(`hold_${t.tenantId}`, t.tenantId, t.subjectHash, Date.now())
      .run();
    const req = await newDsr(t.ownerKey, { type: "erasure", subject: SUBJECT, verification: "attested", note: "verified by phone call" });
    const done = (await json(await api("POST", `/v1/dsr/${req.body.id}/execute`, t.ownerKey))) as { result: Record<string, unknown> };
    expect(done.result).toMatchObject({ held: true, holdReason: "Investigation 2026/17" });
    expect((await api("GET", `/v1/conversations/${t.ids[0]}`, t.ownerKey)).status).toBe(200);
  });

  it("restriction stops AI processing until lifted", async () => {
    const t = await createTenant("Restricted", { aiReplies: true });
    await api("PUT", "/v1/knowledge", t.ownerKey, { entries: [{ question: "What are your opening hours?", answer: "9 to 18." }] });
    const ch = await createCustomChannel(t.ownerKey);
    const first = (await json(await postCustom(ch.id, ch.secret, { type: "message", id: "r1", from: SUBJECT, text: "hello" }))) as { conversationId: string };
    const req = await newDsr(t.ownerKey, { type: "restriction", subject: SUBJECT, verification: "attested", note: "signed letter received" });
    await api("POST", `/v1/dsr/${req.body.id}/execute`, t.ownerKey);
    await postCustom(ch.id, ch.secret, { type: "message", id: "r2", from: SUBJECT, text: "what are your opening hours?" });
    for (let i = 0; i < 10; i++) {
      await runInDurableObject(stubFor(first.conversationId), (_i, state) => state.storage.sql.exec("UPDATE tasks SET next_attempt_at = 0 WHERE state = 'pending'"));
      await runDurableObjectAlarm(stubFor(first.conversationId));
    }
    const health = (await json(await api("GET", "/v1/agent-health", t.ownerKey))) as { days: { reasons: Record<string, number> }[] };
    expect(health.days[0]?.reasons["skipped:subject_restricted"]).toBeGreaterThanOrEqual(1);
    expect(((await json(await api("POST", `/v1/dsr/${req.body.id}/lift`, t.ownerKey))) as { status: string }).status).toBe("completed");
    const row = await env.DB.prepare("SELECT lifted_at FROM subject_restrictions WHERE dsr_id = ?").bind(req.body.id).first<{ lifted_at: number | null }>();
    expect(row?.lifted_at).not.toBeNull();
  });

  it("extends once with a reason, rejects bad input with nothing stored, and scopes to the tenant", async () => {
    const t = await subjectWithConversations(1);
    const other = await createTenant("Other");
    const viewer = await createKey(t.ownerKey, "viewer");
    const before = await env.DB.prepare("SELECT COUNT(*) AS n FROM dsr_requests").first<{ n: number }>();
    for (const bad of [{ type: "delete", subject: SUBJECT, verification: "attested", note: "xxxxx" }, { type: "access", subject: "", verification: "attested", note: "xxxxx" }, { type: "access", subject: SUBJECT, verification: "attested" }]) {
      const res = await api("POST", "/v1/dsr", t.ownerKey, bad);
      expect(res.status).toBe(400);
      expect((await json(res)).error).toMatchObject({ code: "validation_error" });
    }
    expect((await api("POST", "/v1/dsr", viewer, { type: "access", subject: SUBJECT, verification: "attested", note: "xxxxx" })).status).toBe(403);
    const noConversation = await api("POST", "/v1/dsr", t.ownerKey, { type: "access", subject: "+393400000000", verification: "channel_code" });
    expect(noConversation.status).toBe(409);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM dsr_requests").first<{ n: number }>()).toEqual(before);
    const req = await newDsr(t.ownerKey, { type: "access", subject: SUBJECT, verification: "attested", note: "checked" });
    const extended = (await json(await api("POST", `/v1/dsr/${req.body.id}/extend`, t.ownerKey, { reason: "Large volume of records across channels" }))) as { dueAt: string; extended: boolean };
    expect(extended.extended).toBe(true);
    expect(Date.parse(extended.dueAt) - Date.parse(req.body.dueAt)).toBeGreaterThan(58 * 86_400_000);
    expect((await api("POST", `/v1/dsr/${req.body.id}/extend`, t.ownerKey, { reason: "again please" })).status).toBe(409);
    expect((await api("GET", `/v1/dsr/${req.body.id}`, other.ownerKey)).status).toBe(404);
    expect((await call(`/v1/dsr/${req.body.id}/export`)).status).toBe(401);
  });
});
