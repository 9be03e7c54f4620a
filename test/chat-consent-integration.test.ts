/**
 * The web chat's cookie-banner endpoints in workerd: `GET /chat/:channelId/notice`
 * shows the tenant's current cookie notice; `POST /chat/:channelId/consents`
 * records a choice (one entry per category, method banner, IP evidence) and
 * refuses anything else without storing a thing.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { api, BASE, call, createCustomChannel, createTenant } from "./helpers";

interface BannerNotice {
  id: string;
  key: string;
  locale: string;
  version: number;
  purposes: string[];
  text: string;
  sha256: string;
  business: string;
}

interface ConsentsView {
  current: { purpose: string; state: string; noticeId: string | null }[];
  history: { purpose: string; status: string; method: string; noticeId: string | null; evidence: { ip: string | null; channelId: string | null } }[];
}

const VISITOR = "visitor-abcdefghijklmnopqrstuv";
const COOKIE_PURPOSES = ["cookies_functional", "cookies_analytics", "cookies_marketing", "cookies_profiling"];

async function webChannel(ownerKey: string): Promise<string> {
  const res = await api("POST", "/v1/channels", ownerKey, { type: "web_chat", name: "Site" });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function notice(channelId: string, locale = "en"): Promise<BannerNotice> {
  const res = await call(`/chat/${channelId}/notice?purpose=cookies&locale=${locale}`);
  expect(res.status).toBe(200);
  return (await res.json()) as BannerNotice;
}

function postChoice(channelId: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return call(`/chat/${channelId}/consents`, {
    method: "POST",
    headers: { "content-type": "application/json", origin: BASE, "cf-connecting-ip": "203.0.113.7", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

const allChoices = (value: boolean) => Object.fromEntries(COOKIE_PURPOSES.map((p) => [p, value]));

async function consentRows(): Promise<number> {
  return (await env.DB.prepare("SELECT COUNT(*) AS n FROM consents WHERE method = 'banner'").first<{ n: number }>())?.n ?? 0;
}

async function expectRefused(res: Response, status: number, code: string, before: number): Promise<void> {
  expect(res.status).toBe(status);
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
  expect(await consentRows()).toBe(before);
}

describe("cookie notice for the banner", () => {
  it("serves the tenant's current cookie notice in English and Italian, with security headers", async () => {
    const { ownerKey } = await createTenant("Notice Shop");
    const channelId = await webChannel(ownerKey);
    const en = await notice(channelId, "en");
    expect(en).toMatchObject({ key: "cookies", locale: "en", version: 1, business: "Notice Shop" });
    expect(en.purposes).toEqual(expect.arrayContaining(COOKIE_PURPOSES));
    expect(en.text).toContain("Notice Shop");
    const it = await notice(channelId, "it");
    expect(it.locale).toBe("it");
    expect(it.id).not.toBe(en.id);
    // Unknown languages fall back to English.
    expect((await notice(channelId, "de")).id).toBe(en.id);
    const res = await call(`/chat/${channelId}/notice?locale=en`);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");

    // A new version of the series becomes the one shown.
    const created = await api("POST", "/v1/notices", ownerKey, {
      purposes: COOKIE_PURPOSES,
      locale: "en",
      text: "Notice Shop asks for your cookie choices, version two of this text.",
    });
    expect(created.status).toBe(201);
    const v2 = await notice(channelId, "en");
    expect(v2.version).toBe(2);
    expect(v2.text).toBe("Notice Shop asks for your cookie choices, version two of this text.");

    expect((await call(`/chat/${channelId}/notice?purpose=recording`)).status).toBe(400);
    expect((await call(`/chat/ch_${"a".repeat(26)}/notice`)).status).toBe(404);
  });
});

describe("recording banner choices", () => {
  it("stores one entry per category with method banner, the notice shown and the client IP", async () => {
    const { ownerKey } = await createTenant("Banner Shop");
    const channelId = await webChannel(ownerKey);
    const shown = await notice(channelId, "it");
    const before = await consentRows();
    const res = await postChoice(channelId, {
      subject: VISITOR,
      noticeId: shown.id,
      choices: { cookies_functional: true, cookies_analytics: false, cookies_marketing: false, cookies_profiling: false },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    const body = (await res.json()) as { noticeId: string; entries: { purpose: string; status: string }[] };
    expect(body.noticeId).toBe(shown.id);
    expect(body.entries.map((e) => [e.purpose, e.status])).toEqual([
      ["cookies_functional", "granted"],
      ["cookies_analytics", "withdrawn"],
      ["cookies_marketing", "withdrawn"],
      ["cookies_profiling", "withdrawn"],
    ]);
    expect(await consentRows()).toBe(before + 4);

    const view = await api("GET", `/v1/consents?subject=${encodeURIComponent(`web:${VISITOR}`)}`, ownerKey);
    expect(view.status).toBe(200);
    const consents = (await view.json()) as ConsentsView;
    expect(consents.history).toHaveLength(4);
    for (const entry of consents.history) {
      expect(entry).toMatchObject({ method: "banner", noticeId: shown.id, evidence: { ip: "203.0.113.7", channelId } });
    }
    const state = Object.fromEntries(consents.current.filter((c) => c.purpose.startsWith("cookies_")).map((c) => [c.purpose, c.state]));
    expect(state).toEqual({ cookies_functional: "granted", cookies_analytics: "withdrawn", cookies_marketing: "withdrawn", cookies_profiling: "withdrawn" });

    // The IP is stored encrypted, never in clear.
    const raw = await env.DB.prepare("SELECT c.evidence_ip AS logged, e.ip AS sealed FROM consents c LEFT JOIN consent_evidence e ON e.id = c.id WHERE c.channel_id = ? AND c.method = 'banner'")
      .bind(channelId)
      .all<{ logged: string | null; sealed: string | null }>();
    expect(raw.results).toHaveLength(4);
    for (const row of raw.results) {
      // Kept beside the append-only log (so a MASTER_KEY rotation can re-wrap it), sealed.
      expect(row.logged).toBeNull();
      expect(row.sealed).toMatch(/^v1\./);
      expect(row.sealed).not.toContain("203.0.113.7");
    }

    // A later withdrawal from the preference centre is a new entry, not an update.
    const withdraw = await postChoice(channelId, { subject: VISITOR, noticeId: shown.id, choices: allChoices(false) });
    expect(withdraw.status).toBe(201);
    const after = (await (await api("GET", `/v1/consents?subject=${encodeURIComponent(`web:${VISITOR}`)}`, ownerKey)).json()) as ConsentsView;
    expect(after.history).toHaveLength(8);
    expect(after.current.find((c) => c.purpose === "cookies_functional")?.state).toBe("withdrawn");

    // The audit log names the action, never the visitor.
    const audit = await env.DB.prepare("SELECT detail FROM audit_log WHERE action = 'consent.banner' AND actor_id = ?").bind(channelId).all<{ detail: string }>();
    expect(audit.results).toHaveLength(2);
    expect(audit.results.map((r) => r.detail).join()).not.toContain(VISITOR);
  });

  it("refuses bad requests and stores nothing", async () => {
    const { ownerKey } = await createTenant("Strict Shop");
    const channelId = await webChannel(ownerKey);
    const shown = await notice(channelId, "en");
    const valid = { subject: VISITOR, noticeId: shown.id, choices: allChoices(true) };
    const before = await consentRows();

    await expectRefused(await postChoice(channelId, valid, { origin: "https://evil.example" }), 403, "forbidden", before);
    const noOrigin = await call(`/chat/${channelId}/consents`, {
      method: "POST",
      headers: { "content-type": "application/json", "cf-connecting-ip": "203.0.113.7" },
      body: JSON.stringify(valid),
    });
    await expectRefused(noOrigin, 403, "forbidden", before);
    await expectRefused(await postChoice(`ch_${"a".repeat(26)}`, valid), 404, "not_found", before);
    await expectRefused(await postChoice("not-a-channel", valid), 404, "not_found", before);
    const custom = await createCustomChannel(ownerKey);
    await expectRefused(await postChoice(custom.id, valid), 404, "not_found", before);

    await expectRefused(await postChoice(channelId, "{not json"), 400, "invalid_json", before);
    await expectRefused(await postChoice(channelId, { ...valid, subject: "short" }), 400, "validation_error", before);
    await expectRefused(await postChoice(channelId, { ...valid, choices: { cookies_functional: true } }), 400, "validation_error", before);
    await expectRefused(await postChoice(channelId, { ...valid, choices: { ...allChoices(true), recording: true } }), 400, "validation_error", before);
    await expectRefused(await postChoice(channelId, { ...valid, choices: { ...allChoices(true), cookies_analytics: "yes" } }), 400, "validation_error", before);
    await expectRefused(await postChoice(channelId, { ...valid, extra: 1 }), 400, "validation_error", before);
    const textPlain = await call(`/chat/${channelId}/consents`, {
      method: "POST",
      headers: { "content-type": "text/plain", origin: BASE, "cf-connecting-ip": "203.0.113.7" },
      body: JSON.stringify(valid),
    });
    await expectRefused(textPlain, 415, "unsupported_media_type", before);
    await expectRefused(await postChoice(channelId, valid, { "cf-connecting-ip": "" }), 400, "bad_request", before);

    // Notices: unknown, another tenant's, another series, and an outdated version.
    await expectRefused(await postChoice(channelId, { ...valid, noticeId: "ntc_nope" }), 400, "validation_error", before);
    const other = await createTenant("Other Shop");
    const otherNotice = await notice(await webChannel(other.ownerKey), "en");
    await expectRefused(await postChoice(channelId, { ...valid, noticeId: otherNotice.id }), 400, "validation_error", before);
    const recording = (await (await api("GET", "/v1/notices?key=recording&locale=en", ownerKey)).json()) as { data: { id: string }[] };
    await expectRefused(await postChoice(channelId, { ...valid, noticeId: recording.data[0]?.id }), 400, "validation_error", before);
    const v2 = await api("POST", "/v1/notices", ownerKey, { purposes: COOKIE_PURPOSES, locale: "en", text: "Strict Shop cookie notice, second version." });
    expect(v2.status).toBe(201);
    await expectRefused(await postChoice(channelId, valid), 409, "conflict", before);

    // Oversized bodies: declared and streamed.
    const big = JSON.stringify({ ...valid, subject: "x".repeat(4096) });
    await expectRefused(await postChoice(channelId, big), 413, "payload_too_large", before);

    // Nothing else was touched either.
    const audit = await env.DB.prepare("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'consent.banner' AND actor_id = ?").bind(channelId).first<{ n: number }>();
    expect(audit?.n).toBe(0);
  });

  it("limits how often one visitor id records choices", async () => {
    const { ownerKey } = await createTenant("Busy Shop");
    const channelId = await webChannel(ownerKey);
    const shown = await notice(channelId, "en");
    const body = { subject: "busy-visitor-abcdefghijklmnop", noticeId: shown.id, choices: allChoices(false) };
    let lastStatus = 0;
    let accepted = 0;
    for (let i = 0; i < 25 && lastStatus !== 429; i++) {
      const res = await postChoice(channelId, body, { "cf-connecting-ip": `198.51.100.${i + 1}` });
      lastStatus = res.status;
      if (res.status === 201) accepted += 1;
      await res.arrayBuffer();
    }
    expect(lastStatus).toBe(429);
    expect(accepted).toBe(20);
  });
});
