/** Retention policies and legal holds APIs: validation, scopes, tenancy, audit. */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { RETENTION_CATEGORIES, RETENTION_RULES, effectiveDays, retentionProblem, conversationRetentionDays, SPECIAL_CATEGORY_MAX_DAYS, resolvePolicy } from "../lib/retention";
import { api, createCustomChannel, createKey, createTenant, json, postCustom } from "./helpers";

interface Policy {
  category: string;
  defaultDays: number;
  minDays: number;
  maxDays: number;
  configurable: boolean;
  overrideDays: number | null;
  effectiveDays: number;
  updatedAt: string | null;
}
interface Hold {
  id: string;
  scope: string;
  subjectHash: string | null;
  conversationId: string | null;
  reason: string;
  active: boolean;
  createdBy: string | null;
  releasedAt: string | null;
  releasedBy: string | null;
}

const policies = async (key: string) => ((await json(await api("GET", "/v1/retention-policies", key))) as { policies: Policy[] }).policies;
const byCategory = (list: Policy[], category: string) => list.find((p) => p.category === category);
const overrideRows = async (tenantId: string) =>
  (await env.DB.prepare("SELECT category, days FROM retention_policies WHERE tenant_id = ? ORDER BY category").bind(tenantId).all<{ category: string; days: number }>()).results;
const auditActions = async (tenantId: string, prefix: string) =>
  (await env.DB.prepare("SELECT action, detail FROM audit_log WHERE tenant_id = ? AND action LIKE ? ORDER BY id").bind(tenantId, `${prefix}%`).all<{ action: string; detail: string | null }>()).results;

describe("retention rules (pure)", () => {
  it("enforces floors, maxima and fixed periods; clamps stored overrides; shortens special categories", () => {
    expect(retentionProblem("billing_invoices", 365 * 9)).toMatch(/legal floor/);
    expect(retentionProblem("billing_invoices", RETENTION_RULES.billing_invoices.minDays)).toBeNull();
    expect(retentionProblem("api_logs", RETENTION_RULES.api_logs.maxDays + 1)).toMatch(/more than/);
    expect(retentionProblem("backups", 60)).toMatch(/fixed/);
    expect(retentionProblem("backups", 30)).toBeNull();
    expect(retentionProblem("conversation_logs", 1.5)).toMatch(/whole number/);
    expect(effectiveDays("billing_invoices", 10)).toBe(RETENTION_RULES.billing_invoices.minDays);
    expect(effectiveDays("backups", 90)).toBe(30);
    expect(effectiveDays("conversation_logs", undefined)).toBe(731);
    expect(conversationRetentionDays(731, true)).toBe(SPECIAL_CATEGORY_MAX_DAYS);
    expect(conversationRetentionDays(90, true)).toBe(90);
    expect(resolvePolicy([{ category: "recordings", days: 100 }, { category: "nonsense", days: 1 }]).recordings).toBe(100);
  });
});

describe("GET/PUT /v1/retention-policies", () => {
  it("lists every category with default, floor, maximum, override and the period in force", async () => {
    const t = await createTenant("Policies");
    const list = await policies(t.ownerKey);
    expect(list.map((p) => p.category)).toEqual([...RETENTION_CATEGORIES]);
    expect(byCategory(list, "conversation_logs")).toMatchObject({ defaultDays: 731, overrideDays: null, effectiveDays: 731, updatedAt: null });
    expect(byCategory(list, "billing_invoices")).toMatchObject({ minDays: 3653, effectiveDays: 3653 });
    expect(byCategory(list, "backups")).toMatchObject({ configurable: false, effectiveDays: 30 });
  });

  it("stores valid overrides (audited) and resets them with null", async () => {
    const t = await createTenant("Policies write");
    const res = await api("PUT", "/v1/retention-policies", t.ownerKey, {
      policies: [
        { category: "conversation_logs", days: 365 },
        { category: "billing_invoices", days: 4000 },
        { category: "backups", days: 30 },
      ],
    });
    expect(res.status).toBe(200);
    const list = ((await json(res)) as { policies: Policy[] }).policies;
    expect(byCategory(list, "conversation_logs")).toMatchObject({ overrideDays: 365, effectiveDays: 365 });
    expect(byCategory(list, "billing_invoices")).toMatchObject({ overrideDays: 4000, effectiveDays: 4000 });
    expect(byCategory(list, "conversation_logs")?.updatedAt).not.toBeNull();
    expect(await overrideRows(t.tenantId)).toEqual([
      { category: "billing_invoices", days: 4000 },
      { category: "conversation_logs", days: 365 },
    ]);
    const audit = await auditActions(t.tenantId, "retention_policies.");
    expect(audit).toHaveLength(1);
    expect(JSON.parse(audit[0]?.detail ?? "{}")).toEqual({ conversation_logs: 365, billing_invoices: 4000 });

    expect((await api("PUT", "/v1/retention-policies", t.ownerKey, { policies: [{ category: "conversation_logs", days: null }] })).status).toBe(200);
    expect(byCategory(await policies(t.ownerKey), "conversation_logs")).toMatchObject({ overrideDays: null, effectiveDays: 731 });
    expect(await overrideRows(t.tenantId)).toEqual([{ category: "billing_invoices", days: 4000 }]);
  });

  it("refuses periods outside the legal bounds with 400 and stores nothing", async () => {
    const t = await createTenant("Policies invalid");
    expect((await api("PUT", "/v1/retention-policies", t.ownerKey, { policies: [{ category: "recordings", days: 200 }] })).status).toBe(200);
    const before = await overrideRows(t.tenantId);
    const auditBefore = await auditActions(t.tenantId, "retention_policies.");
    const bad: unknown[] = [
      // Billing below 10 years, alongside a valid entry: nothing at all is stored.
      { policies: [{ category: "conversation_logs", days: 100 }, { category: "billing_invoices", days: 3650 }] },
      { policies: [{ category: "backups", days: 60 }] },
      { policies: [{ category: "backups", days: null }] },
      { policies: [{ category: "api_logs", days: 600 }] },
      { policies: [{ category: "security_logs", days: 30 }] },
      { policies: [{ category: "conversation_logs", days: 0 }] },
      { policies: [{ category: "conversation_logs", days: 30.5 }] },
      { policies: [{ category: "conversation_logs", days: 30 }, { category: "conversation_logs", days: 40 }] },
      { policies: [{ category: "chat_logs", days: 30 }] },
      { policies: [{ category: "conversation_logs", days: "30" }] },
      { policies: [] },
      { policies: [{ category: "conversation_logs", days: 30 }], extra: true },
      {},
    ];
    for (const body of bad) {
      const res = await api("PUT", "/v1/retention-policies", t.ownerKey, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await json(res)) as { error: { code: string } }).error.code).toBe("validation_error");
    }
    const billing = await api("PUT", "/v1/retention-policies", t.ownerKey, { policies: [{ category: "conversation_logs", days: 100 }, { category: "billing_invoices", days: 3650 }] });
    expect(((await json(billing)) as { error: { issues: { path: string; message: string }[] } }).error.issues).toEqual([
      { path: "policies.1.days", message: expect.stringMatching(/legal floor/) },
    ]);
    expect(await overrideRows(t.tenantId)).toEqual(before);
    expect(await auditActions(t.tenantId, "retention_policies.")).toEqual(auditBefore);
    expect(byCategory(await policies(t.ownerKey), "conversation_logs")?.overrideDays).toBeNull();
  });

  it("needs privacy scopes: viewers and agents get 403, other tenants never see an override", async () => {
    const t = await createTenant("Policies scopes");
    const other = await createTenant("Policies other");
    const viewer = await createKey(t.ownerKey, "viewer");
    const agent = await createKey(t.ownerKey, "agent");
    expect((await api("GET", "/v1/retention-policies", viewer)).status).toBe(403);
    expect((await api("PUT", "/v1/retention-policies", agent, { policies: [{ category: "recordings", days: 100 }] })).status).toBe(403);
    expect((await api("GET", "/v1/retention-policies")).status).toBe(401);
    expect(await overrideRows(t.tenantId)).toEqual([]);
    expect((await api("PUT", "/v1/retention-policies", t.ownerKey, { policies: [{ category: "recordings", days: 100 }] })).status).toBe(200);
    expect(byCategory(await policies(other.ownerKey), "recordings")?.overrideDays).toBeNull();
  });
});

describe("/v1/legal-holds", () => {
  async function tenantWithConversation(name: string, from: string) {
    const t = await createTenant(name);
    const channel = await createCustomChannel(t.ownerKey);
    const res = await postCustom(channel.id, channel.secret, { type: "message", id: `lh-${Date.now()}-${from}`, from, text: "hi" });
    const { conversationId } = (await json(res)) as { conversationId: string };
    return { ...t, conversationId };
  }

  it("places tenant, subject and conversation holds; lists active and released; releases keep the row; all audited", async () => {
    const t = await tenantWithConversation("Holds", "+393330000501");
    const tenantHold = await api("POST", "/v1/legal-holds", t.ownerKey, { scope: "tenant", reason: "Regulator audit 2026" });
    expect(tenantHold.status).toBe(201);
    const subject = await api("POST", "/v1/legal-holds", t.ownerKey, { scope: "subject", subject: "+39 333 000 0501", reason: "Court order 12/2026" });
    expect(subject.status).toBe(201);
    const subjectBody = (await json(subject)) as unknown as Hold;
    // The held subject is the conversation's subject (same keyed hash), and the address is not stored or returned.
    const index = await env.DB.prepare("SELECT subject_hash FROM conversations WHERE id = ?").bind(t.conversationId).first<{ subject_hash: string }>();
    expect(subjectBody).toMatchObject({ scope: "subject", subjectHash: index?.subject_hash, conversationId: null, active: true });
    const stored = await env.DB.prepare("SELECT * FROM legal_holds WHERE tenant_id = ?").bind(t.tenantId).all();
    expect(JSON.stringify(stored.results)).not.toContain("3330000501");
    const conv = await api("POST", "/v1/legal-holds", t.ownerKey, { scope: "conversation", conversationId: t.conversationId, reason: "Complaint 55" });
    expect(conv.status).toBe(201);
    const convBody = (await json(conv)) as unknown as Hold;
    expect(convBody).toMatchObject({ scope: "conversation", conversationId: t.conversationId, subjectHash: null, reason: "Complaint 55" });

    const released = await api("DELETE", `/v1/legal-holds/${convBody.id}`, t.ownerKey);
    expect(released.status).toBe(200);
    expect((await json(released)) as unknown as Hold).toMatchObject({ id: convBody.id, active: false, releasedBy: expect.stringMatching(/.+/), releasedAt: expect.any(String) });
    expect((await api("DELETE", `/v1/legal-holds/${convBody.id}`, t.ownerKey)).status).toBe(409);
    const row = await env.DB.prepare("SELECT released_at, released_by FROM legal_holds WHERE id = ?").bind(convBody.id).first<{ released_at: number; released_by: string }>();
    expect(row?.released_at).toBeGreaterThan(0);

    const all = ((await json(await api("GET", "/v1/legal-holds", t.ownerKey))) as { data: Hold[] }).data;
    expect(all).toHaveLength(3);
    const active = ((await json(await api("GET", "/v1/legal-holds?status=active", t.ownerKey))) as { data: Hold[] }).data;
    expect(active.map((h) => h.scope).sort()).toEqual(["subject", "tenant"]);
    const releasedList = ((await json(await api("GET", "/v1/legal-holds?status=released", t.ownerKey))) as { data: Hold[] }).data;
    expect(releasedList.map((h) => h.id)).toEqual([convBody.id]);
    // Pagination with an opaque cursor.
    const first = (await json(await api("GET", "/v1/legal-holds?limit=2", t.ownerKey))) as { data: Hold[]; nextCursor: string | null };
    expect(first.data).toHaveLength(2);
    const second = (await json(await api("GET", `/v1/legal-holds?limit=2&cursor=${first.nextCursor ?? ""}`, t.ownerKey))) as { data: Hold[]; nextCursor: string | null };
    expect(second.data).toHaveLength(1);
    expect(second.nextCursor).toBeNull();
    expect((await api("GET", "/v1/legal-holds?cursor=garbage!", t.ownerKey)).status).toBe(400);

    const audit = await auditActions(t.tenantId, "legal_hold.");
    expect(audit.map((a) => a.action)).toEqual(["legal_hold.created", "legal_hold.created", "legal_hold.created", "legal_hold.released"]);
    // Reasons are free text: they stay out of the audit log.
    expect(JSON.stringify(audit)).not.toContain("Court order");
  });

  it("404 for another tenant's (or an unknown) conversation or hold; 400 on bad input; viewers 403; nothing stored", async () => {
    const a = await tenantWithConversation("Holds A", "+393330000601");
    const b = await tenantWithConversation("Holds B", "+393330000602");
    const viewer = await createKey(a.ownerKey, "viewer");
    expect((await api("POST", "/v1/legal-holds", a.ownerKey, { scope: "conversation", conversationId: b.conversationId, reason: "Not mine" })).status).toBe(404);
    expect((await api("POST", "/v1/legal-holds", a.ownerKey, { scope: "conversation", conversationId: "conv_doesnotexist", reason: "Nope" })).status).toBe(404);
    const bHold = (await json(await api("POST", "/v1/legal-holds", b.ownerKey, { scope: "tenant", reason: "B's own" }))) as unknown as Hold;
    expect((await api("DELETE", `/v1/legal-holds/${bHold.id}`, a.ownerKey)).status).toBe(404);
    expect((await api("DELETE", "/v1/legal-holds/hold_unknown", a.ownerKey)).status).toBe(404);
    for (const body of [
      { scope: "subject", reason: "missing subject" },
      { scope: "conversation", reason: "missing conversation" },
      { scope: "tenant", subject: "+393330000601", reason: "subject on tenant hold" },
      { scope: "subject", subject: "+393330000601", conversationId: a.conversationId, reason: "both" },
      { scope: "subject", subject: "   ", reason: "blank subject" },
      { scope: "everything", reason: "bad scope" },
      { scope: "tenant", reason: "" },
      { scope: "tenant" },
    ]) {
      const res = await api("POST", "/v1/legal-holds", a.ownerKey, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await json(res)) as { error: { code: string } }).error.code).toBe("validation_error");
    }
    expect((await api("POST", "/v1/legal-holds", viewer, { scope: "tenant", reason: "viewer tries" })).status).toBe(403);
    expect((await api("GET", "/v1/legal-holds", viewer)).status).toBe(403);
    expect((await api("DELETE", `/v1/legal-holds/${bHold.id}`, viewer)).status).toBe(403);
    expect(await env.DB.prepare("SELECT COUNT(*) AS n FROM legal_holds WHERE tenant_id = ?").bind(a.tenantId).first<{ n: number }>()).toEqual({ n: 0 });
    // B's hold is still active.
    expect(((await json(await api("GET", "/v1/legal-holds?status=active", b.ownerKey))) as { data: Hold[] }).data.map((h) => h.id)).toEqual([bHold.id]);
  });
});
