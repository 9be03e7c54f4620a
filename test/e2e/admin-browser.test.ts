/**
 * The admin page in real Chromium (Debian's, via playwright-core) against a
 * real `wrangler dev`: keyboard-only sign-in, a webhook message arriving live
 * over the conversation's WebSocket (not by polling), a human reply, a settings
 * change, a DSR verified, completed and exported from the page, a viewer
 * revealing a redacted message with an audited reason; every request stays on
 * the Parley origin and every HTML/JS response carries the CSP.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ParleyClient, phoneNumber, randomHex, readJson, type MessageView, type Tenant } from "./client.ts";
import { PROJECT_ROOT, startParley, type ParleyServer } from "./harness.ts";

const artifacts = join(PROJECT_ROOT, "test-artifacts");
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 900 };
const SECTIONS = ["conversations", "settings", "knowledge", "channels", "keys", "retention", "consents", "dsr", "health", "audit", "billing"] as const;

let server: ParleyServer | null = null;
let browser: Browser | null = null;
let api: ParleyClient;
let tenant: Tenant;
let viewerKey = "";
let channel = { id: "", secret: "" };
let conversationId = "";
const customer = phoneNumber();

/** What a page did: hosts it reached, HTML/JS responses without the CSP, WebSocket frames received. */
interface Watch {
  foreign: string[];
  missingCsp: string[];
  checkedCsp: string[];
  frames: string[];
  requests: string[];
}

function watch(context: BrowserContext, origin: string): Watch {
  const w: Watch = { foreign: [], missingCsp: [], checkedCsp: [], frames: [], requests: [] };
  context.on("request", (request) => {
    const url = request.url();
    w.requests.push(`${request.method()} ${url}`);
    if (url.startsWith("data:")) return;
    if (new URL(url).origin !== origin) w.foreign.push(url);
  });
  context.on("response", (response) => {
    const type = response.headers()["content-type"] ?? "";
    if (!/text\/html|javascript/.test(type)) return;
    w.checkedCsp.push(response.url());
    const csp = response.headers()["content-security-policy"] ?? "";
    if (!csp.includes("default-src 'self'") || !csp.includes("script-src 'self'")) w.missingCsp.push(response.url());
  });
  context.on("page", (page) => trackSockets(page, w, origin));
  return w;
}

function trackSockets(page: Page, w: Watch, origin: string): void {
  page.on("websocket", (ws) => {
    if (new URL(ws.url()).host !== new URL(origin).host) w.foreign.push(ws.url());
    ws.on("framereceived", (frame) => w.frames.push(String(frame.payload)));
  });
}

async function signInWithKeyboard(page: Page, key: string): Promise<void> {
  await page.goto(`${server?.baseUrl}/admin/`);
  // Tab order: skip link, then the key field; Enter submits.
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  expect(await page.evaluate(() => document.activeElement?.id)).toBe("apikey");
  await page.keyboard.type(key);
  await page.keyboard.press("Enter");
  await expect.poll(() => page.locator("#app").isVisible(), { timeout: 10_000 }).toBe(true);
}

async function openSection(page: Page, view: string): Promise<void> {
  await page.click(`nav [data-view="${view}"]`);
  if (view !== "conversations") await expect.poll(() => page.locator(`#view-${view} .body`).textContent(), { timeout: 10_000 }).not.toMatch(/^Loading…$/);
}

async function messages(key: string): Promise<MessageView[]> {
  return api.allMessages(key, conversationId);
}

beforeAll(async () => {
  mkdirSync(artifacts, { recursive: true });
  server = await startParley();
  api = new ParleyClient(server.baseUrl, server.platformKey);
  tenant = await api.createTenant("Admin E2E");
  viewerKey = await api.createKey(tenant.ownerKey, "viewer");
  const created = await api.createChannel(tenant.ownerKey, { type: "custom", name: "CRM" });
  channel = { id: created.id, secret: created.generatedSecrets.signingSecret ?? "" };
  const res = await api.postCustom(channel.id, channel.secret, { type: "message", id: `evt_${randomHex(8)}`, from: customer, text: "Hi, write to anna.bianchi@example.com please" });
  expect(res.status).toBe(200);
  conversationId = (await readJson<{ conversationId: string }>(res)).conversationId;
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("admin page in Chromium", () => {
  it("signs in by keyboard, shows webhook messages live over the socket, replies, changes settings, runs a DSR export", async () => {
    if (!browser || !server) throw new Error("not started");
    const context = await browser.newContext({ viewport: DESKTOP, acceptDownloads: true });
    const w = watch(context, server.baseUrl);
    const page = await context.newPage();
    await signInWithKeyboard(page, tenant.ownerKey);
    await expect.poll(() => page.locator("#whoami").textContent()).toContain("(owner)");
    expect(await page.evaluate(() => [sessionStorage.getItem("parley.key") !== null, localStorage.length])).toEqual([true, 0]);

    // Open the conversation from the keyboard too.
    await page.locator("#conversation-list button").first().focus();
    await page.keyboard.press("Enter");
    await expect.poll(() => page.locator(".transcript li", { hasText: "anna.bianchi@example.com" }).count(), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => page.locator("#live-status").getAttribute("data-transport"), { timeout: 10_000 }).toBe("websocket");

    // A signed webhook message appears without reload, pushed over the WebSocket; no polling meanwhile.
    const before = w.requests.length;
    const liveText = `Live from the webhook ${randomHex(4)}`;
    expect((await api.postCustom(channel.id, channel.secret, { type: "message", id: `evt_${randomHex(8)}`, from: customer, text: liveText })).status).toBe(200);
    await expect.poll(() => page.locator(".transcript li", { hasText: liveText }).count(), { timeout: 10_000 }).toBe(1);
    expect(w.frames.some((f) => f.includes(liveText))).toBe(true);
    const later = w.requests.slice(before);
    expect(later.filter((r) => /\/messages/.test(r) && r.startsWith("GET"))).toEqual([]);
    expect(page.url()).toBe(`${server.baseUrl}/admin/`);

    // Reply as a human.
    const reply = `A human here ${randomHex(4)}`;
    await page.fill("#reply-text", reply);
    await page.click(".reply button[type=submit]");
    await expect.poll(() => page.locator(".transcript li.outbound", { hasText: reply }).count(), { timeout: 10_000 }).toBe(1);
    await expect.poll(async () => (await messages(tenant.ownerKey)).some((m) => m.text === reply && m.author === "agent"), { timeout: 10_000 }).toBe(true);

    // Hand off, then reopen: state changes come back on the socket too.
    await page.click("text=Hand off to a human");
    await expect.poll(() => page.locator("#conv-status").textContent()).toBe("handoff");
    await page.click("text=Reopen / return to AI");
    await expect.poll(() => page.locator("#conv-status").textContent()).toBe("open");
    await page.screenshot({ path: join(artifacts, "admin-conversations-desktop.png"), fullPage: true });

    // Confidence threshold, verified through the API.
    await openSection(page, "settings");
    await page.fill("#confidence", "0.73");
    await page.click("#settings-form button[type=submit]");
    await expect.poll(() => page.locator("#settings-status").textContent(), { timeout: 10_000 }).toContain("Saved");
    const settings = await readJson<{ confidenceThreshold: number }>(await api.request("GET", "/v1/settings", { key: tenant.ownerKey }));
    expect(settings.confidenceThreshold).toBe(0.73);

    // DSR: created through the API (code sent over the customer's conversation), verified, completed and exported on the page.
    const dsrRes = await api.request("POST", "/v1/dsr", { key: tenant.ownerKey, json: { type: "access", subject: customer, verification: "channel_code" } });
    expect(dsrRes.status).toBe(201);
    const dsrId = (await readJson<{ id: string }>(dsrRes)).id;
    const codeMessage = (await messages(tenant.ownerKey)).find((m) => m.author === "system" && /verification code/.test(m.text));
    const code = /(\d{6})/.exec(codeMessage?.text ?? "")?.[1] ?? "";
    expect(code).toMatch(/^\d{6}$/);
    await openSection(page, "dsr");
    const row = page.locator(`tr[data-dsr="${dsrId}"]`);
    await row.locator("input.code").fill(code);
    await row.locator("button", { hasText: "Verify" }).click();
    await expect.poll(() => page.locator(`tr[data-dsr="${dsrId}"] td`).nth(1).textContent(), { timeout: 10_000 }).toContain("verified");
    await page.locator(`tr[data-dsr="${dsrId}"] button`, { hasText: "Complete access request" }).click();
    await expect.poll(() => page.locator(`tr[data-dsr="${dsrId}"] td`).nth(1).textContent(), { timeout: 10_000 }).toContain("completed");
    const [csv] = await Promise.all([page.waitForEvent("download"), page.locator(`tr[data-dsr="${dsrId}"] button[data-export="csv"]`).click()]);
    expect(csv.suggestedFilename()).toBe(`dsr-${dsrId}.csv`);
    const csvPath = join(artifacts, `admin-dsr-export.csv`);
    await csv.saveAs(csvPath);
    const csvText = readFileSync(csvPath, "utf8");
    expect(csvText.split("\r\n")[0]).toBe("record,conversation_id,seq,direction,author,created_at,text_or_purpose,status,detail");
    expect(csvText).toContain(liveText);
    expect(csvText).toContain(reply);
    const [json] = await Promise.all([page.waitForEvent("download"), page.locator(`tr[data-dsr="${dsrId}"] button[data-export="json"]`).click()]);
    const jsonPath = join(artifacts, "admin-dsr-export.json");
    await json.saveAs(jsonPath);
    const exported = JSON.parse(readFileSync(jsonPath, "utf8")) as { request: string; subject: string };
    expect(exported).toMatchObject({ request: dsrId, subject: `tel:${customer}` });
    // Downloads went through Blob URLs of the page's own origin.
    expect(w.requests.some((r) => r.includes(`/v1/dsr/${dsrId}/export?format=csv`))).toBe(true);

    // Consent export (CSV) from the page, too.
    await openSection(page, "consents");
    const [consentCsv] = await Promise.all([page.waitForEvent("download"), page.click("text=Export CSV")]);
    expect(consentCsv.suggestedFilename()).toMatch(/^consents-.*\.csv$/);

    // Screenshots of every section, desktop.
    for (const view of SECTIONS) {
      await openSection(page, view);
      await page.screenshot({ path: join(artifacts, `admin-${view}-desktop.png`), fullPage: true });
    }
    await expect.poll(() => page.locator("#chain-status").textContent(), { timeout: 10_000 }).toMatch(/intact/);
    // Channels: a Twilio SMS channel with its provider credentials, then its auth token rotated.
    await openSection(page, "channels");
    await page.selectOption("#channel-type", "twilio_sms");
    await page.fill("#channel-name", "Front desk SMS");
    await page.fill("#twilio-account-sid", `AC${"c".repeat(32)}`);
    await page.fill("#twilio-from", "+15005550006");
    await page.fill("#twilio-auth-token", "twilio-auth-token-from-console-01");
    await page.click("text=Create channel");
    await expect.poll(() => page.locator("#channels-status").textContent(), { timeout: 10_000 }).toMatch(/Created Front desk SMS/);
    const channelList = await readJson<{ data: { id: string; name: string; type: string; secretHints: Record<string, string> }[] }>(await api.request("GET", "/v1/channels", { key: tenant.ownerKey }));
    const sms = channelList.data.find((c) => c.name === "Front desk SMS");
    expect(sms?.type).toBe("twilio_sms");
    page.once("dialog", (dialog) => void dialog.accept("twilio-auth-token-rotated-000002"));
    await page.click("text=Rotate secret of Front desk SMS");
    await expect.poll(() => page.locator("#channels-status").textContent(), { timeout: 10_000 }).toMatch(/Stored the new auth token of Front desk SMS/);
    const rotated = await readJson<{ data: { name: string; secretHints: Record<string, string> }[] }>(await api.request("GET", "/v1/channels", { key: tenant.ownerKey }));
    expect(rotated.data.find((c) => c.name === "Front desk SMS")?.secretHints).not.toEqual(sms?.secretHints);

    // Billing (not configured in this run): the plan in words, no dead "Subscribe" button.
    await openSection(page, "billing");
    expect(await page.locator("#plan-status").getAttribute("data-status")).toBe("none");
    expect(await page.locator("#view-billing").textContent()).toContain("Billing is not configured");
    expect(await page.locator("#billing-checkout").count()).toBe(0);

    expect(w.foreign).toEqual([]);
    expect(w.missingCsp).toEqual([]);
    expect(w.checkedCsp.some((u) => u.endsWith("/admin/"))).toBe(true);
    expect(w.checkedCsp.some((u) => u.endsWith("/admin/admin.js"))).toBe(true);
    await context.close();
  });

  it("on a phone viewport every section fits without sideways scrolling of the page", async () => {
    if (!browser || !server) throw new Error("not started");
    const context = await browser.newContext({ viewport: PHONE, isMobile: true, hasTouch: true });
    const w = watch(context, server.baseUrl);
    const page = await context.newPage();
    await page.goto(`${server.baseUrl}/admin/`);
    await page.screenshot({ path: join(artifacts, "admin-signin-phone.png"), fullPage: true });
    await page.fill("#apikey", tenant.ownerKey);
    await page.click("#signin-form button[type=submit]");
    await expect.poll(() => page.locator("#app").isVisible(), { timeout: 10_000 }).toBe(true);
    await page.click("#conversation-list button");
    await expect.poll(() => page.locator(".transcript li").count(), { timeout: 10_000 }).toBeGreaterThan(0);
    for (const view of SECTIONS) {
      await openSection(page, view);
      await page.screenshot({ path: join(artifacts, `admin-${view}-phone.png`), fullPage: true });
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(overflow, view).toBeLessThanOrEqual(1);
    }
    expect(w.foreign).toEqual([]);
    expect(w.missingCsp).toEqual([]);
    await context.close();
  });

  it("a viewer sees redacted text, and revealing needs a reason that lands in the audit log", async () => {
    if (!browser || !server) throw new Error("not started");
    const context = await browser.newContext({ viewport: DESKTOP });
    const w = watch(context, server.baseUrl);
    const page = await context.newPage();
    await signInWithKeyboard(page, viewerKey);
    await expect.poll(() => page.locator("#whoami").textContent()).toContain("(viewer)");
    // Viewers get no write controls and no privacy sections.
    for (const view of ["keys", "retention", "consents", "dsr", "audit"]) expect(await page.locator(`nav [data-view="${view}"]`).isVisible()).toBe(false);
    await page.click("#conversation-list button");
    const first = page.locator('.transcript li[data-seq="1"]');
    await expect.poll(() => first.textContent(), { timeout: 10_000 }).toContain("[EMAIL_1]");
    expect(await first.textContent()).not.toContain("anna.bianchi@example.com");
    expect(await page.locator("#reply-text").count()).toBe(0);
    expect(await page.locator("text=Hand off to a human").count()).toBe(0);
    await expect.poll(() => page.locator("#live-status").getAttribute("data-transport"), { timeout: 10_000 }).toBe("websocket");
    // Live frames for a viewer are redacted too.
    await api.postCustom(channel.id, channel.secret, { type: "message", id: `evt_${randomHex(8)}`, from: customer, text: "also mario.verdi@example.org" });
    await expect.poll(() => page.locator(".transcript li", { hasText: "[EMAIL_1]" }).count(), { timeout: 10_000 }).toBeGreaterThan(1);
    expect(w.frames.join("\n")).not.toContain("mario.verdi@example.org");

    await first.locator("button.reveal").click();
    const reason = first.locator("input[name=reason]");
    expect(await page.evaluate(() => document.activeElement?.getAttribute("name"))).toBe("reason");
    await reason.fill("abc");
    await first.locator("button[type=submit]").click();
    // Too short: the browser's own validation stops it; nothing was revealed or audited.
    expect(await first.textContent()).not.toContain("anna.bianchi@example.com");
    await reason.fill("Customer asked to confirm their e-mail address");
    await first.locator("button[type=submit]").click();
    await expect.poll(() => page.locator('.transcript li[data-seq="1"]').textContent(), { timeout: 10_000 }).toContain("anna.bianchi@example.com");
    expect(await page.locator('.transcript li[data-seq="1"] small').textContent()).toContain("revealed (audited)");
    await page.screenshot({ path: join(artifacts, "admin-viewer-reveal-desktop.png"), fullPage: true });

    const audit = await readJson<{ data: { action: string; detail: { reason: string; role: string; seq: number } }[] }>(
      await api.request("GET", "/v1/audit?action=message.revealed", { key: tenant.ownerKey }),
    );
    expect(audit.data).toHaveLength(1);
    expect(audit.data[0]?.detail).toMatchObject({ reason: "Customer asked to confirm their e-mail address", role: "viewer", seq: 1 });
    expect(w.foreign).toEqual([]);
    expect(w.missingCsp).toEqual([]);
    await context.close();
  });
});
