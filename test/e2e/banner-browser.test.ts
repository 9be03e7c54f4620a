/**
 * Real Chromium (Debian's, driven by playwright-core) against a real `wrangler dev`:
 * the demo chat's AI disclosure, and its cookie banner — equal-prominence
 * choices, closing is not consent, refusals and grants recorded in the consent
 * log (method banner, the notice version shown, the client IP), nothing
 * non-essential stored before consent, the preference centre's withdrawals,
 * same-origin requests only and the CSP on every page response.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROJECT_ROOT, startParley, type ParleyServer } from "./harness.ts";

const artifacts = join(PROJECT_ROOT, "test-artifacts");
const COOKIE_PURPOSES = ["cookies_functional", "cookies_analytics", "cookies_marketing", "cookies_profiling"] as const;
const NOTICE_TEXT = {
  en: "E2E Shop uses technical storage for the chat (always on) and, only with your consent, functional, analytics, marketing and profiling storage. Version two, end-to-end test.",
  it: "E2E Shop usa memoria tecnica per la chat (sempre attiva) e, solo con il tuo consenso, memoria funzionale, analitica, di marketing e di profilazione. Versione due, test end-to-end.",
} as const;

interface BannerNotice {
  id: string;
  version: number;
  locale: string;
  text: string;
}

interface ConsentsView {
  current: { purpose: string; state: string }[];
  history: { purpose: string; status: string; method: string; noticeId: string | null; evidence: { ip: string | null; channelId: string | null } }[];
}

let server: ParleyServer | null = null;
let browser: Browser | null = null;
let base = "";
let ownerKey = "";
let channelId = "";
let chatUrl = "";
/** Every request and WebSocket the browser opened, and the CSP header of every response, across all tests. */
const requested: string[] = [];
const responses: { url: string; status: number; csp: string | null; type: string }[] = [];

async function api<T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${ownerKey}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as T };
}

async function currentNotice(locale: "en" | "it"): Promise<BannerNotice> {
  const res = await fetch(`${base}/chat/${channelId}/notice?purpose=cookies&locale=${locale}`);
  expect(res.status).toBe(200);
  return (await res.json()) as BannerNotice;
}

async function consentsOf(visitor: string): Promise<ConsentsView> {
  const { status, json } = await api<ConsentsView>("GET", `/v1/consents?subject=${encodeURIComponent(`web:${visitor}`)}`);
  expect(status).toBe(200);
  return json;
}

async function bannerEntryCount(): Promise<number> {
  const res = await fetch(`${base}/v1/consents/export?format=json`, { headers: { authorization: `Bearer ${ownerKey}` } });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { data: { method: string }[] };
  return body.data.filter((e) => e.method === "banner").length;
}

async function newContext(options: BrowserContextOptions = {}): Promise<BrowserContext> {
  if (!browser) throw new Error("no browser");
  const context = await browser.newContext(options);
  context.on("request", (request) => requested.push(request.url()));
  context.on("response", (response) => {
    responses.push({ url: response.url(), status: response.status(), csp: response.headers()["content-security-policy"] ?? null, type: response.request().resourceType() });
  });
  context.on("page", (page) => page.on("websocket", (ws) => requested.push(ws.url())));
  return context;
}

async function openChat(context: BrowserContext): Promise<Page> {
  const page = await context.newPage();
  page.on("websocket", (ws) => requested.push(ws.url()));
  await page.goto(chatUrl);
  await expect.poll(() => page.locator("#status").textContent(), { timeout: 15_000 }).toMatch(/^(Connected|Connesso)$/);
  return page;
}

/** Everything the page keeps in the browser: cookies (both views), local and session storage. */
async function storage(page: Page, context: BrowserContext) {
  const inPage = await page.evaluate(() => ({
    cookie: document.cookie,
    local: Object.fromEntries(Object.keys(localStorage).map((k) => [k, localStorage.getItem(k)])),
    session: Object.fromEntries(Object.keys(sessionStorage).map((k) => [k, sessionStorage.getItem(k)])),
  }));
  return { ...inPage, jar: await context.cookies() };
}

/** Only technical storage: the tab's chat session and (after a choice) the choice itself; no cookies at all. */
async function expectOnlyTechnicalStorage(page: Page, context: BrowserContext, choiceMade: boolean): Promise<void> {
  const s = await storage(page, context);
  expect(s.cookie).toBe("");
  expect(s.jar).toEqual([]);
  expect(Object.keys(s.local).sort()).toEqual(choiceMade ? ["parley.consent"] : []);
  expect(Object.keys(s.session).sort()).toEqual(["parley.session"]);
}

async function visitorId(page: Page): Promise<string> {
  const raw = await page.evaluate(() => localStorage.getItem("parley.consent"));
  const record = JSON.parse(raw ?? "null") as { visitor: string } | null;
  if (!record) throw new Error("no consent record stored");
  return record.visitor;
}

function latestStates(view: ConsentsView): Record<string, string> {
  return Object.fromEntries(view.current.filter((c) => c.purpose.startsWith("cookies_")).map((c) => [c.purpose, c.state]));
}

beforeAll(async () => {
  mkdirSync(artifacts, { recursive: true });
  server = await startParley();
  base = server.baseUrl;
  const tenant = await fetch(`${base}/v1/tenants`, {
    method: "POST",
    headers: { authorization: `Bearer ${server.platformKey}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "E2E Shop", slug: `e2e-banner-${Date.now().toString(36)}` }),
  });
  expect(tenant.status).toBe(201);
  ownerKey = ((await tenant.json()) as { apiKey: { key: string } }).apiKey.key;
  expect((await api("PATCH", "/v1/settings", { ai: { replies: false } })).status).toBe(200);
  const channel = await api<{ id: string }>("POST", "/v1/channels", { type: "web_chat", name: "Website chat" });
  expect(channel.status).toBe(201);
  channelId = channel.json.id;
  chatUrl = `${base}/?channel=${channelId}`;
  // A tenant version of the cookie notice: the banner must show (and record) the latest one, not the default.
  for (const locale of ["en", "it"] as const) {
    const created = await api("POST", "/v1/notices", { key: "cookies", purposes: COOKIE_PURPOSES, locale, text: NOTICE_TEXT[locale] });
    expect(created.status).toBe(201);
  }
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe("demo chat: AI disclosure and cookie banner in Chromium", () => {
  it("discloses the AI before the first message; the banner shows the notice with equal-prominence choices; closing records and stores nothing", async () => {
    const notice = await currentNotice("en");
    expect(notice).toMatchObject({ version: 2, locale: "en", text: NOTICE_TEXT.en });
    const context = await newContext({ viewport: { width: 1280, height: 900 } });
    const page = await openChat(context);

    // AI Act art. 50: visible before any message, and tied to the message box for screen readers.
    await expect.poll(() => page.locator("#log li").count()).toBe(0);
    expect(await page.locator("#disclosure").isVisible()).toBe(true);
    expect(await page.locator("#disclosure").textContent()).toMatch(/automated assistant \(an AI system\), not a person/);
    expect(await page.locator("#text").getAttribute("aria-describedby")).toBe("disclosure");

    const banner = page.locator("#cookie-banner");
    expect(await banner.isVisible()).toBe(true);
    await expect.poll(() => page.locator("#cookie-notice").textContent()).toBe(NOTICE_TEXT.en);
    expect(await page.locator("#cookie-notice-version").textContent()).toBe("Notice version 2");

    // Equal prominence: same box size and the same computed look for accept, reject and preferences.
    const buttons = banner.locator("button.choice");
    expect(await buttons.allTextContents()).toEqual(["Reject all", "Accept all", "Preferences"]);
    const looks = await buttons.evaluateAll((els) =>
      els.map((el) => {
        const style = getComputedStyle(el);
        const box = el.getBoundingClientRect();
        return {
          width: Math.round(box.width),
          height: Math.round(box.height),
          style: [style.backgroundColor, style.color, style.fontSize, style.fontWeight, style.borderTopWidth, style.borderTopColor, style.paddingTop, style.borderRadius].join("|"),
        };
      }),
    );
    expect(looks).toHaveLength(3);
    for (const look of looks) expect(look).toEqual(looks[0]);
    expect(looks[0]?.width).toBeGreaterThan(60);
    expect(looks[0]?.height).toBeGreaterThanOrEqual(44);

    // The banner does not cover the chat: the message box is the element under its own centre.
    await page.locator("#text").scrollIntoViewIfNeeded();
    const covered = await page.locator("#text").evaluate((el) => {
      const box = el.getBoundingClientRect();
      return document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2) !== el;
    });
    expect(covered).toBe(false);
    await page.screenshot({ path: join(artifacts, "banner-desktop.png"), fullPage: true });

    // The preference centre starts with nothing ticked; closing it with Escape records nothing.
    await page.click("#cookie-settings");
    expect(await page.locator("#cookie-preferences").isVisible()).toBe(true);
    for (const purpose of COOKIE_PURPOSES) expect(await page.locator(`#pref-${purpose}`).isChecked()).toBe(false);
    await page.keyboard.press("Escape");
    await expect.poll(() => page.locator("#cookie-preferences").isVisible()).toBe(false);
    expect(await banner.isVisible()).toBe(true);

    // Escape closes the banner: no choice, nothing recorded, nothing non-essential stored.
    await page.keyboard.press("Escape");
    await expect.poll(() => banner.isVisible()).toBe(false);
    await expectOnlyTechnicalStorage(page, context, false);
    // Closing is not a choice: the banner is back on the next page load; the × does the same.
    await page.reload();
    await expect.poll(() => banner.isVisible()).toBe(true);
    await page.click("#cookie-close");
    await expect.poll(() => banner.isVisible()).toBe(false);
    await expectOnlyTechnicalStorage(page, context, false);
    expect(await bannerEntryCount()).toBe(0);
    expect(requested.filter((u) => u.includes("/consents"))).toEqual([]);
    expect(requested.filter((u) => u.includes("chat-analytics.js"))).toEqual([]);
    await context.close();
  });

  it("reject all records a refusal per category and stores only technical data", async () => {
    const notice = await currentNotice("en");
    const context = await newContext({ viewport: { width: 1280, height: 900 } });
    const page = await openChat(context);
    await expectOnlyTechnicalStorage(page, context, false);
    await page.click("#cookie-banner button[data-choice=reject]");
    await expect.poll(() => page.locator("#cookie-banner").isVisible()).toBe(false);
    await expect.poll(() => page.locator("#consent-status").textContent()).toBe("Your cookie choices were saved.");

    const visitor = await visitorId(page);
    const view = await consentsOf(visitor);
    expect(view.history).toHaveLength(4);
    expect(view.history.map((e) => e.purpose).sort()).toEqual([...COOKIE_PURPOSES].sort());
    for (const entry of view.history) {
      expect(entry).toMatchObject({ status: "withdrawn", method: "banner", noticeId: notice.id, evidence: { ip: "127.0.0.1", channelId } });
    }
    expect(Object.values(latestStates(view))).toEqual(["withdrawn", "withdrawn", "withdrawn", "withdrawn"]);
    await expectOnlyTechnicalStorage(page, context, true);

    // The choice is honoured on the next visit: no banner, nothing new recorded, analytics never loaded.
    await page.reload();
    await expect.poll(() => page.locator("#status").textContent(), { timeout: 15_000 }).toBe("Connected");
    expect(await page.locator("#cookie-banner").isVisible()).toBe(false);
    await page.fill("#text", "Just looking, thanks");
    await page.press("#text", "Enter");
    await expect.poll(() => page.locator("#log li.you").count(), { timeout: 10_000 }).toBe(1);
    await expectOnlyTechnicalStorage(page, context, true);
    expect((await consentsOf(visitor)).history).toHaveLength(4);
    expect(requested.filter((u) => u.includes("chat-analytics.js"))).toEqual([]);
    await context.close();
  });

  it("accept all (Italian, phone) enables the gated features; the preference centre records withdrawals; a human taking over is announced", async () => {
    const notice = await currentNotice("it");
    expect(notice.text).toBe(NOTICE_TEXT.it);
    const context = await newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true, locale: "it-IT" });
    const page = await openChat(context);
    expect(await page.locator("#disclosure").textContent()).toContain("assistente automatico");
    await expect.poll(() => page.locator("#cookie-notice").textContent()).toBe(NOTICE_TEXT.it);
    const buttons = page.locator("#cookie-banner button.choice");
    expect(await buttons.allTextContents()).toEqual(["Rifiuta tutto", "Accetta tutto", "Preferenze"]);
    const sizes = await buttons.evaluateAll((els) => els.map((el) => [Math.round(el.getBoundingClientRect().width), Math.round(el.getBoundingClientRect().height)]));
    for (const size of sizes) expect(size).toEqual(sizes[0]);
    // Readable on a phone: nothing wider than the screen.
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(artifacts, "banner-phone.png"), fullPage: true });
    await expectOnlyTechnicalStorage(page, context, false);

    await page.click("#cookie-banner button[data-choice=accept]");
    await expect.poll(() => page.locator("#cookie-banner").isVisible()).toBe(false);
    const visitor = await visitorId(page);
    const granted = await consentsOf(visitor);
    expect(granted.history).toHaveLength(4);
    for (const entry of granted.history) expect(entry).toMatchObject({ status: "granted", method: "banner", noticeId: notice.id, evidence: { ip: "127.0.0.1" } });

    // Gated features: the conversation is remembered on this device, and the first-party analytics hook runs.
    await expect.poll(() => page.evaluate(() => localStorage.getItem("parley.analytics") !== null)).toBe(true);
    const s = await storage(page, context);
    expect(s.local["parley.session"]).toBe(s.session["parley.session"]);
    expect(s.cookie).toBe("");
    expect(s.jar).toEqual([]);
    await page.fill("#text", "Buongiorno, spedite a Milano?");
    await page.press("#text", "Enter");
    await expect.poll(() => page.locator("#log li.you").count(), { timeout: 10_000 }).toBe(1);
    const again = await openChat(context);
    await expect.poll(() => again.locator("#log li.you", { hasText: "spedite a Milano" }).count(), { timeout: 10_000 }).toBe(1);
    expect(await again.locator("#cookie-banner").isVisible()).toBe(false);
    await again.close();

    // A person takes over: the visitor is told, and the person's replies are labelled as such.
    const list = await api<{ data: { id: string }[] }>("GET", "/v1/conversations");
    let conversationId = "";
    for (const conversation of list.json.data) {
      const messages = await api<{ data: { text: string }[] }>("GET", `/v1/conversations/${conversation.id}/messages`);
      if (messages.json.data.some((m) => m.text.includes("spedite a Milano"))) conversationId = conversation.id;
    }
    expect(conversationId).not.toBe("");
    expect((await api("POST", `/v1/conversations/${conversationId}/messages`, { text: "Sì, in 24 ore." })).status).toBe(201);
    await expect.poll(() => page.locator("#log li.note").textContent(), { timeout: 20_000 }).toContain("ora stai parlando con un essere umano");
    expect(await page.locator("#log li.them", { hasText: "Sì, in 24 ore." }).locator("small").textContent()).toContain("(una persona)");
    expect(await page.locator("#disclosure").textContent()).toContain("si è unita alla conversazione");

    // Preference centre: the current choices are shown; unticking two records their withdrawal.
    await page.click("#cookie-settings");
    for (const purpose of COOKIE_PURPOSES) expect(await page.locator(`#pref-${purpose}`).isChecked()).toBe(true);
    await page.uncheck("#pref-cookies_functional");
    await page.uncheck("#pref-cookies_analytics");
    await page.screenshot({ path: join(artifacts, "preferences-phone.png"), fullPage: true });
    await page.click("#cookie-preferences button[data-choice=save]");
    await expect.poll(() => page.locator("#cookie-preferences").isVisible()).toBe(false);
    const after = await consentsOf(visitor);
    expect(after.history).toHaveLength(8);
    expect(latestStates(after)).toEqual({ cookies_functional: "withdrawn", cookies_analytics: "withdrawn", cookies_marketing: "granted", cookies_profiling: "granted" });
    for (const entry of after.history) expect(entry).toMatchObject({ method: "banner", noticeId: notice.id });
    // Withdrawn storage is gone at once; the chat goes on in this tab.
    const left = await storage(page, context);
    expect(Object.keys(left.local).sort()).toEqual(["parley.consent"]);
    expect(Object.keys(left.session).sort()).toEqual(["parley.session"]);
    await page.screenshot({ path: join(artifacts, "chat-phone.png"), fullPage: true });
    await context.close();
  });

  it("talks only to the Parley origin, and every page response carries the CSP", () => {
    const origin = new URL(base);
    const foreign = requested.filter((u) => {
      const url = new URL(u);
      return url.protocol !== "data:" && url.host !== origin.host;
    });
    expect(requested.length).toBeGreaterThan(10);
    expect(foreign).toEqual([]);
    const pageResponses = responses.filter((r) => ["document", "script", "stylesheet"].includes(r.type));
    expect(pageResponses.map((r) => new URL(r.url).pathname)).toEqual(expect.arrayContaining(["/", "/chat.js", "/consent.js", "/i18n.js", "/chat.css", "/chat-analytics.js"]));
    for (const r of pageResponses) {
      expect(r.csp, r.url).toContain("default-src 'self'");
      expect(r.csp, r.url).toContain("script-src 'self'");
    }
    const apiResponses = responses.filter((r) => r.url.includes(`/chat/${channelId}/`));
    expect(apiResponses.length).toBeGreaterThan(3);
    for (const r of apiResponses) expect(r.csp, r.url).toContain("default-src 'none'");
  });
});
