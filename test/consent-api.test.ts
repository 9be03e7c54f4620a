import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { sha256Hex } from "../lib/crypto";
import { isMinorWithoutAuthorization, isRestricted } from "../workers/support/consent-store";
import { api, call, createKey, createTenant, json } from "./helpers";

interface Notice {
  id: string;
  key: string;
  purposes: string[];
  kind: string;
  locale: string;
  version: number;
  text: string;
  sha256: string;
  source: string;
}
interface Entry {
  id: string;
  subjectHash: string;
  purpose: string;
  status: string;
  method: string;
  noticeId: string | null;
  evidence: { messageId: string | null; ip: string | null; channelId: string | null };
  expiresAt: string | null;
}
interface State {
  purpose: string;
  state: string;
  entryId: string | null;
  noticeId: string | null;
  expiresAt: string | null;
}
interface Lookup {
  subjectHash: string;
  current: State[];
  history: Entry[];
  minorWithoutAuthorization: boolean;
  nextCursor: string | null;
}

async function noticesOf(key: string, query = ""): Promise<Notice[]> {
  const res = await api("GET", `/v1/notices${query}`, key);
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: Notice[] }).data;
}

async function noticeFor(key: string, series: string, locale = "en"): Promise<Notice> {
  const found = (await noticesOf(key, `?key=${series}&locale=${locale}&current=true`))[0];
  if (!found) throw new Error(`no ${series} notice`);
  return found;
}

async function lookup(key: string, subject: string): Promise<Lookup> {
  const res = await api("GET", `/v1/consents?subject=${encodeURIComponent(subject)}`, key);
  expect(res.status).toBe(200);
  return (await res.json()) as Lookup;
}

const stateOf = (l: Lookup, purpose: string) => l.current.find((s) => s.purpose === purpose)?.state;

async function counts(tenantId: string) {
  const q = (sql: string) => env.DB.prepare(sql).bind(tenantId).first<{ n: number }>().then((r) => r?.n ?? 0);
  return {
    consents: await q("SELECT COUNT(*) AS n FROM consents WHERE tenant_id = ?"),
    notices: await q("SELECT COUNT(*) AS n FROM notices WHERE tenant_id = ?"),
    profiles: await q("SELECT COUNT(*) AS n FROM subject_profiles WHERE tenant_id = ?"),
  };
}

async function expectError(res: Response, status: number, code: string, path?: string) {
  expect(res.status).toBe(status);
  const body = (await res.json()) as { error: { code: string; message: string; issues?: { path: string }[] } };
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
  if (path) expect(body.error.issues?.map((i) => i.path)).toContain(path);
}

describe("notices", () => {
  it("seeds the default notices once per tenant, with the tenant's name and the SHA-256 of the exact text", async () => {
    const { ownerKey } = await createTenant("Bottega Rossi");
    const [first, second] = [await noticesOf(ownerKey), await noticesOf(ownerKey)];
    expect(first).toHaveLength(10);
    expect(second.map((n) => n.id).sort()).toEqual(first.map((n) => n.id).sort());
    const series = new Set(first.map((n) => `${n.key}/${n.locale}`));
    for (const key of ["recording", "voice_clone", "voice_clone_revocation", "cookies", "marketing_keyword"]) {
      expect(series.has(`${key}/en`) && series.has(`${key}/it`)).toBe(true);
    }
    for (const n of first) {
      expect(n).toMatchObject({ version: 1, source: "default" });
      expect(n.text).toContain("Bottega Rossi");
      expect(n.sha256).toBe(await sha256Hex(n.text));
    }
    expect(first.find((n) => n.key === "cookies" && n.locale === "it")?.purposes).toEqual([
      "cookies_functional",
      "cookies_analytics",
      "cookies_marketing",
      "cookies_profiling",
    ]);
    expect(await noticesOf(ownerKey, "?purpose=voice_clone")).toHaveLength(4);
  });

  it("stores a new text as the next version of its series, byte for byte", async () => {
    const { ownerKey } = await createTenant();
    const text = "  Registriamo la chiamata per finalità di qualità.\nPuoi rifiutare: la chiamata prosegue senza registrazione.  ";
    const res = await api("POST", "/v1/notices", ownerKey, { purposes: ["recording"], locale: "it", text });
    expect(res.status).toBe(201);
    const created = (await res.json()) as Notice;
    expect(created).toMatchObject({ key: "recording", locale: "it", version: 2, kind: "consent", source: "tenant", text });
    expect(created.sha256).toBe(await sha256Hex(text));
    expect((await noticeFor(ownerKey, "recording", "it")).id).toBe(created.id);
    const own = await api("POST", "/v1/notices", ownerKey, { key: "newsletter-form", purposes: ["marketing_email"], locale: "en", text: "Subscribe to our monthly newsletter; unsubscribe any time." });
    expect(((await own.json()) as Notice).version).toBe(1);
    expect((await api("GET", `/v1/notices/${created.id}`, ownerKey)).status).toBe(200);
  });

  it("refuses bad notices with the error shape and stores nothing", async () => {
    const { tenantId, ownerKey } = await createTenant();
    await noticesOf(ownerKey);
    const before = await counts(tenantId);
    const ok = { purposes: ["recording"], locale: "en", text: "We record calls for quality, if everyone agrees." };
    await expectError(await api("POST", "/v1/notices", ownerKey, { ...ok, purposes: [] }), 400, "validation_error", "purposes");
    await expectError(await api("POST", "/v1/notices", ownerKey, { ...ok, purposes: ["spam"] }), 400, "validation_error", "purposes.0");
    await expectError(await api("POST", "/v1/notices", ownerKey, { ...ok, locale: "english" }), 400, "validation_error", "locale");
    await expectError(await api("POST", "/v1/notices", ownerKey, { ...ok, text: "short" }), 400, "validation_error", "text");
    await expectError(await api("POST", "/v1/notices", ownerKey, { ...ok, key: "Bad Key" }), 400, "validation_error", "key");
    await expectError(await api("POST", "/v1/notices", ownerKey, { ...ok, extra: true }), 400, "validation_error");
    await expectError(await api("POST", "/v1/notices", ownerKey, { ...ok, key: "recording", purposes: ["marketing_sms"] }), 409, "conflict");
    await expectError(await api("POST", "/v1/notices", await createKey(ownerKey, "viewer"), ok), 403, "forbidden");
    await expectError(await api("POST", "/v1/notices", await createKey(ownerKey, "agent"), ok), 403, "forbidden");
    expect(await counts(tenantId)).toEqual(before);
    const other = await createTenant();
    const mine = (await noticesOf(ownerKey))[0];
    await expectError(await api("GET", `/v1/notices/${mine?.id}`, other.ownerKey), 404, "not_found");
  });

  it("cannot be changed or deleted, even directly in D1", async () => {
    const { ownerKey } = await createTenant();
    const notice = await noticeFor(ownerKey, "recording");
    await expect(env.DB.prepare("UPDATE notices SET text = 'changed' WHERE id = ?").bind(notice.id).run()).rejects.toThrow(/immutable/);
    await expect(env.DB.prepare("DELETE FROM notices WHERE id = ?").bind(notice.id).run()).rejects.toThrow(/immutable/);
    await expect(
      env.DB.prepare(
        "INSERT OR REPLACE INTO notices (id, tenant_id, key, purposes, kind, locale, version, text, sha256, source, created_at) SELECT id, tenant_id, key, purposes, kind, locale, version, 'changed', sha256, source, created_at FROM notices WHERE id = ?",
      )
        .bind(notice.id)
        .run(),
    ).rejects.toThrow(/immutable/);
    expect((await noticeFor(ownerKey, "recording")).text).toBe(notice.text);
  });
});

describe("consent log", () => {
  it("appends grants and withdrawals; the current state follows the latest entry", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const notice = await noticeFor(ownerKey, "marketing_keyword");
    const subject = "+39 347 123 4567";
    const grant = await api("POST", "/v1/consents", ownerKey, {
      subject,
      purpose: "marketing_sms",
      status: "granted",
      method: "web_form",
      noticeId: notice.id,
      evidence: { ip: "203.0.113.7", messageId: "form-1" },
    });
    expect(grant.status).toBe(201);
    const granted = (await grant.json()) as { entry: Entry; current: State };
    expect(granted.entry).toMatchObject({ purpose: "marketing_sms", status: "granted", method: "web_form", noticeId: notice.id, evidence: { ip: "203.0.113.7", messageId: "form-1" } });
    expect(granted.current.state).toBe("granted");
    const withdraw = await api("POST", "/v1/consents", ownerKey, { subject: "393471234567", purpose: "marketing_sms", status: "withdrawn", method: "api" });
    expect(withdraw.status).toBe(201);
    const withdrawn = (await withdraw.json()) as { entry: Entry };
    // Same person (normalised), and the withdrawal names the notice of the grant it withdraws.
    expect(withdrawn.entry).toMatchObject({ subjectHash: granted.entry.subjectHash, status: "withdrawn", noticeId: notice.id });
    const state = await lookup(ownerKey, "+393471234567");
    expect(state.subjectHash).toBe(granted.entry.subjectHash);
    expect(stateOf(state, "marketing_sms")).toBe("withdrawn");
    expect(stateOf(state, "marketing_email")).toBe("none");
    expect(state.current).toHaveLength(12);
    expect(state.history.map((e) => e.status)).toEqual(["withdrawn", "granted"]);
    const byHash = (await json(await api("GET", `/v1/consents?subjectHash=${state.subjectHash}`, ownerKey))) as unknown as Lookup;
    expect(byHash.history).toHaveLength(2);
    // D1 holds the keyed hash and a sealed IP, never the number or the IP in clear.
    const rows = await env.DB.prepare("SELECT * FROM consents WHERE tenant_id = ?").bind(tenantId).all();
    const raw = JSON.stringify(rows.results);
    expect(raw).not.toMatch(/3471234567|203\.0\.113\.7/);
    expect(raw).toContain(state.subjectHash);
    // The audit log records ids and purposes only.
    const audit = JSON.stringify((await env.DB.prepare("SELECT * FROM audit_log WHERE tenant_id = ?").bind(tenantId).all()).results);
    expect(audit).toContain("consent.granted");
    expect(audit).not.toMatch(/3471234567|203\.0\.113\.7/);
  });

  it("has no endpoint that alters or removes an entry", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const notice = await noticeFor(ownerKey, "recording");
    const created = (await json(
      await api("POST", "/v1/consents", ownerKey, { subject: "anna@example.com", purpose: "recording", status: "granted", method: "api", noticeId: notice.id }),
    )) as { entry: Entry };
    const before = JSON.stringify((await env.DB.prepare("SELECT * FROM consents WHERE tenant_id = ?").bind(tenantId).all()).results);
    const id = created.entry.id;
    for (const [method, path, body] of [
      ["PUT", `/v1/consents/${id}`, { status: "withdrawn" }],
      ["PATCH", `/v1/consents/${id}`, { status: "withdrawn" }],
      ["DELETE", `/v1/consents/${id}`, undefined],
      ["DELETE", "/v1/consents?subject=anna@example.com", undefined],
      ["PUT", "/v1/consents", { subject: "anna@example.com", purpose: "recording", status: "withdrawn", method: "api" }],
      ["PATCH", "/v1/consents", { status: "withdrawn" }],
      ["DELETE", "/v1/consents", undefined],
      ["POST", `/v1/consents/${id}`, { status: "withdrawn" }],
      ["DELETE", "/v1/consents/export", undefined],
    ] as const) {
      const res = await api(method, path, ownerKey, body);
      expect([404, 405], `${method} ${path}`).toContain(res.status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toMatch(/not_found|method_not_allowed/);
    }
    const after = JSON.stringify((await env.DB.prepare("SELECT * FROM consents WHERE tenant_id = ?").bind(tenantId).all()).results);
    expect(after).toBe(before);
  });

  it("D1 triggers abort any UPDATE or DELETE of the log", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const notice = await noticeFor(ownerKey, "recording");
    await api("POST", "/v1/consents", ownerKey, { subject: "+393330001111", purpose: "recording", status: "granted", method: "api", noticeId: notice.id });
    await expect(env.DB.prepare("UPDATE consents SET status = 'withdrawn' WHERE tenant_id = ?").bind(tenantId).run()).rejects.toThrow(/append-only/);
    await expect(env.DB.prepare("UPDATE consents SET created_at = 0").run()).rejects.toThrow(/append-only/);
    await expect(env.DB.prepare("DELETE FROM consents WHERE tenant_id = ?").bind(tenantId).run()).rejects.toThrow(/append-only/);
    await expect(env.DB.prepare("DELETE FROM consents").run()).rejects.toThrow(/append-only/);
    // REPLACE deletes the row it collides with without firing DELETE triggers: an INSERT trigger refuses it.
    const copy = "SELECT seq, id, tenant_id, subject_hash, purpose, 'withdrawn', method, actor_type, created_at FROM consents WHERE tenant_id = ?";
    const columns = "(seq, id, tenant_id, subject_hash, purpose, status, method, actor_type, created_at)";
    await expect(env.DB.prepare(`INSERT OR REPLACE INTO consents ${columns} ${copy}`).bind(tenantId).run()).rejects.toThrow(/append-only/);
    await expect(env.DB.prepare(`REPLACE INTO consents ${columns} ${copy}`).bind(tenantId).run()).rejects.toThrow(/append-only/);
    await expect(env.DB.prepare(`INSERT INTO consents ${columns} ${copy} ON CONFLICT(seq) DO UPDATE SET status = 'withdrawn'`).bind(tenantId).run()).rejects.toThrow(/append-only/);
    await expect(
      env.DB.prepare(`INSERT OR REPLACE INTO consents (id, tenant_id, subject_hash, purpose, status, method, actor_type, created_at) SELECT id, tenant_id, subject_hash, purpose, 'withdrawn', method, actor_type, created_at FROM consents WHERE tenant_id = ?`)
        .bind(tenantId)
        .run(),
    ).rejects.toThrow(/append-only/);
    await expect(
      env.DB.batch([
        env.DB.prepare("INSERT INTO audit_log (tenant_id, actor_type, action, created_at) VALUES (?, 'system', 'x', 0)").bind(tenantId),
        env.DB.prepare("DELETE FROM consents WHERE tenant_id = ?").bind(tenantId),
      ]),
    ).rejects.toThrow(/append-only/);
    const row = await env.DB.prepare("SELECT status FROM consents WHERE tenant_id = ?").bind(tenantId).first<{ status: string }>();
    expect(row?.status).toBe("granted");
    const audit = await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = ? AND action = 'x'").bind(tenantId).first<{ n: number }>();
    expect(audit?.n).toBe(0);
  });

  it("records time-bound grants that lapse, and is per tenant", async () => {
    const { ownerKey } = await createTenant();
    const notice = await noticeFor(ownerKey, "voice_clone");
    const expiresAt = new Date(Date.now() + 30 * 86_400_000).toISOString();
    const res = await api("POST", "/v1/consents", ownerKey, { subject: "+393330002222", purpose: "voice_clone", status: "granted", method: "api", noticeId: notice.id, expiresAt });
    expect(res.status).toBe(201);
    const state = await lookup(ownerKey, "+393330002222");
    expect(state.current.find((s) => s.purpose === "voice_clone")).toMatchObject({ state: "granted", expiresAt, noticeId: notice.id });
    const other = await createTenant();
    const elsewhere = await lookup(other.ownerKey, "+393330002222");
    expect(elsewhere.subjectHash).not.toBe(state.subjectHash);
    expect(elsewhere.history).toHaveLength(0);
    const byForeignHash = (await json(await api("GET", `/v1/consents?subjectHash=${state.subjectHash}`, other.ownerKey))) as unknown as Lookup;
    expect(byForeignHash.history).toHaveLength(0);
  });

  it("refuses every bad input with the error shape and stores nothing", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const recording = await noticeFor(ownerKey, "recording");
    const revocation = await noticeFor(ownerKey, "voice_clone_revocation");
    const voice = await noticeFor(ownerKey, "voice_clone");
    const other = await createTenant();
    const foreign = await noticeFor(other.ownerKey, "recording");
    const before = await counts(tenantId);
    const ok = { subject: "+393331112222", purpose: "recording", status: "granted", method: "api", noticeId: recording.id };
    const cases: [unknown, string | undefined, number?][] = [
      [{ ...ok, noticeId: undefined }, "noticeId"],
      [{ ...ok, noticeId: "ntc_nope" }, "noticeId"],
      [{ ...ok, noticeId: foreign.id }, "noticeId"],
      [{ ...ok, purpose: "marketing_sms" }, "noticeId"],
      [{ ...ok, purpose: "voice_clone", noticeId: revocation.id, expiresAt: new Date(Date.now() + 86_400_000).toISOString() }, "noticeId"],
      [{ ...ok, purpose: "voice_clone", noticeId: voice.id }, "expiresAt"],
      [{ ...ok, purpose: "voice_clone", noticeId: voice.id, expiresAt: new Date(Date.now() - 1000).toISOString() }, "expiresAt"],
      [{ ...ok, purpose: "voice_clone", noticeId: voice.id, expiresAt: "2099-01-01T00:00:00Z" }, "expiresAt"],
      [{ ...ok, purpose: "voice_clone", noticeId: voice.id, expiresAt: "tomorrow" }, "expiresAt"],
      [{ ...ok, status: "withdrawn", expiresAt: new Date(Date.now() + 86_400_000).toISOString() }, "expiresAt"],
      [{ ...ok, method: "web_form" }, "evidence.ip"],
      [{ ...ok, method: "banner", evidence: { ip: "999.1.1.1" } }, "evidence.ip"],
      [{ ...ok, method: "channel_keyword" }, "method"],
      [{ ...ok, purpose: "everything" }, "purpose"],
      [{ ...ok, status: "maybe" }, "status"],
      [{ ...ok, subject: "" }, "subject"],
      [{ ...ok, subject: "bad\u0000address" }, "subject"],
      [{ ...ok, birthDate: "2030-01-01" }, "birthDate"],
      [{ ...ok, birthDate: "2012-02-30" }, "birthDate"],
      [{ ...ok, birthDate: "2012-01-01", age: 12 }, "age"],
      [{ ...ok, age: -1 }, "age"],
      [{ ...ok, evidence: { messageId: "x", extra: 1 } }, "evidence"],
      [{ ...ok, unknown: true }, undefined],
      [[ok], undefined],
    ];
    for (const [body, path] of cases) {
      const res = await api("POST", "/v1/consents", ownerKey, body);
      await expectError(res, 400, "validation_error", path);
    }
    const malformed = await call("/v1/consents", { method: "POST", headers: { authorization: `Bearer ${ownerKey}`, "content-type": "application/json" }, body: "{nope" });
    await expectError(malformed, 400, "invalid_json");
    const form = await call("/v1/consents", { method: "POST", headers: { authorization: `Bearer ${ownerKey}`, "content-type": "text/plain" }, body: "subject=x" });
    await expectError(form, 415, "unsupported_media_type");
    await expectError(await api("POST", "/v1/consents", undefined, ok), 401, "unauthorized");
    for (const role of ["viewer", "agent"] as const) {
      const key = await createKey(ownerKey, role);
      await expectError(await api("POST", "/v1/consents", key, ok), 403, "forbidden");
      await expectError(await api("GET", "/v1/consents?subject=%2B393331112222", key), 403, "forbidden");
      await expectError(await api("GET", "/v1/consents/export", key), 403, "forbidden");
    }
    await expectError(await api("GET", "/v1/consents", ownerKey), 400, "validation_error", "subject");
    await expectError(await api("GET", `/v1/consents?subject=x&subjectHash=${"a".repeat(64)}`, ownerKey), 400, "validation_error", "subjectHash");
    await expectError(await api("GET", "/v1/consents?subjectHash=nothex", ownerKey), 400, "validation_error", "subjectHash");
    await expectError(await api("GET", "/v1/consents/export?format=xml", ownerKey), 400, "validation_error", "format");
    expect(await counts(tenantId)).toEqual(before);
  });
});

describe("export", () => {
  it("exports the log as CSV and JSON with notice versions, optionally for one subject, and audits it", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const cookies = await noticeFor(ownerKey, "cookies", "it");
    for (const purpose of ["cookies_analytics", "cookies_marketing"]) {
      await api("POST", "/v1/consents", ownerKey, { subject: "id:cookie-visitor-1", purpose, status: "granted", method: "banner", noticeId: cookies.id, evidence: { ip: "2001:db8::1" } });
    }
    await api("POST", "/v1/consents", ownerKey, { subject: "id:cookie-visitor-2", purpose: "cookies_analytics", status: "withdrawn", method: "banner", evidence: { ip: "198.51.100.4", messageId: "=cmd|' /C calc'!A0" } });
    const all = await api("GET", "/v1/consents/export?format=json", ownerKey);
    expect(all.status).toBe(200);
    expect(all.headers.get("content-type")).toContain("application/json");
    const data = ((await all.json()) as { data: Record<string, string | number | null>[] }).data;
    expect(data).toHaveLength(3);
    expect(data[0]).toMatchObject({ purpose: "cookies_analytics", status: "granted", method: "banner", notice_id: cookies.id, notice_key: "cookies", notice_version: 1, notice_sha256: cookies.sha256, evidence_ip: "2001:db8::1" });
    const one = await api("GET", "/v1/consents/export?format=csv&subject=id:cookie-visitor-2", ownerKey);
    expect(one.headers.get("content-type")).toContain("text/csv");
    expect(one.headers.get("content-disposition")).toMatch(/attachment; filename="consents-.*\.csv"/);
    const lines = (await one.text()).trimEnd().split("\r\n");
    expect(lines[0]).toBe("id,created_at,subject_hash,purpose,status,method,notice_id,notice_key,notice_version,notice_sha256,evidence_message_id,evidence_ip,channel_id,expires_at,actor_type,actor_id");
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(",cookies_analytics,withdrawn,banner,");
    expect(lines[1]).toContain("'=cmd|' /C calc'!A0,198.51.100.4");
    const filtered = (await json(await api("GET", "/v1/consents/export?purpose=cookies_marketing", ownerKey))) as { data: unknown[] };
    expect(filtered.data).toHaveLength(1);
    const audited = await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = ? AND action = 'consent.exported'").bind(tenantId).first<{ n: number }>();
    expect(audited?.n).toBe(3);
  });

  it("streams large logs page by page", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const notice = await noticeFor(ownerKey, "recording");
    const now = Date.now();
    const values = Array.from({ length: 1203 }, (_, i) => `('cns_bulk${i}', '${tenantId}', '${i.toString(16).padStart(64, "0")}', 'recording', 'granted', 'api', '${notice.id}', 'api_key', ${now + i})`);
    for (let i = 0; i < values.length; i += 200) {
      await env.DB.prepare(`INSERT INTO consents (id, tenant_id, subject_hash, purpose, status, method, notice_id, actor_type, created_at) VALUES ${values.slice(i, i + 200).join(",")}`).run();
    }
    const csv = (await (await api("GET", "/v1/consents/export?format=csv", ownerKey)).text()).trimEnd().split("\r\n");
    expect(csv).toHaveLength(1204);
    expect(csv[1203]).toContain("cns_bulk1202");
    const data = ((await (await api("GET", "/v1/consents/export", ownerKey)).json()) as { data: { id: string }[] }).data;
    expect(data.map((d) => d.id)).toEqual(Array.from({ length: 1203 }, (_, i) => `cns_bulk${i}`));
  });
});

describe("minors and restrictions", () => {
  it("a subject under the minimum age gets no marketing or AI until parental authorization is on file", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const notice = await noticeFor(ownerKey, "marketing_keyword");
    const minor = "+393339990001";
    await api("POST", "/v1/consents", ownerKey, { subject: minor, purpose: "marketing_sms", status: "granted", method: "api", noticeId: notice.id, age: 13 });
    const before = await lookup(ownerKey, minor);
    expect(before.minorWithoutAuthorization).toBe(true);
    expect(await isMinorWithoutAuthorization(env, tenantId, before.subjectHash)).toBe(true);
    const parental = await api("POST", "/v1/notices", ownerKey, { purposes: ["parental_authorization"], locale: "it", text: "Il genitore autorizza il trattamento dei dati del minore per le finalità indicate." });
    const parentalNotice = (await parental.json()) as Notice;
    await api("POST", "/v1/consents", ownerKey, { subject: minor, purpose: "parental_authorization", status: "granted", method: "web_form", noticeId: parentalNotice.id, evidence: { ip: "192.0.2.10" } });
    expect(await isMinorWithoutAuthorization(env, tenantId, before.subjectHash)).toBe(false);
    expect((await lookup(ownerKey, minor)).minorWithoutAuthorization).toBe(false);
    // A stored declared age is the youngest possible birth date.
    const profile = await env.DB.prepare("SELECT birth_date, birth_date_source FROM subject_profiles WHERE tenant_id = ?").bind(tenantId).first<{ birth_date: string; birth_date_source: string }>();
    expect(profile?.birth_date_source).toBe("declared_age");
  });

  it("follows the tenant's minimumAge setting; unknown ages are not minors", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const notice = await noticeFor(ownerKey, "recording");
    const fifteen = new Date(Date.now() - 15.5 * 365.25 * 86_400_000).toISOString().slice(0, 10);
    await api("POST", "/v1/consents", ownerKey, { subject: "teen@example.com", purpose: "recording", status: "granted", method: "api", noticeId: notice.id, birthDate: fifteen });
    await api("POST", "/v1/consents", ownerKey, { subject: "unknown@example.com", purpose: "recording", status: "granted", method: "api", noticeId: notice.id });
    const teen = await lookup(ownerKey, "teen@example.com");
    const unknown = await lookup(ownerKey, "unknown@example.com");
    expect(await isMinorWithoutAuthorization(env, tenantId, teen.subjectHash)).toBe(false);
    await env.DB.prepare("UPDATE settings SET data = ? WHERE tenant_id = ?").bind(JSON.stringify({ minimumAge: 16 }), tenantId).run();
    expect(await isMinorWithoutAuthorization(env, tenantId, teen.subjectHash)).toBe(true);
    expect(await isMinorWithoutAuthorization(env, tenantId, unknown.subjectHash)).toBe(false);
    expect(await isRestricted(env, tenantId, teen.subjectHash)).toBe(false);
  });
});
