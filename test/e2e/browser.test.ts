/**
 * Real Chromium (Debian's, driven by playwright-core) against `npm start`:
 * a visitor chats on the demo page, staff sign in to the admin page, see the
 * conversation and reply, and the reply reaches the visitor live.
 */
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, PROJECT_ROOT } from "./harness.ts";
import { printedField, runStartScript, type StartedScript } from "./start-script.ts";

const artifacts = join(PROJECT_ROOT, "test-artifacts");
const work = mkdtempSync(join(tmpdir(), "parley-browser-"));
let started: StartedScript | null = null;
let browser: Browser | null = null;
let base = "";
let apiKey = "";
let chatUrl = "";

beforeAll(async () => {
  mkdirSync(artifacts, { recursive: true });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  started = await runStartScript(port, work, false);
  apiKey = printedField(started.output, "Demo API key");
  chatUrl = printedField(started.output, "Demo web chat");
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  started?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe("admin page and demo chat in Chromium", () => {
  it("a visitor chats, staff see it and reply, the visitor gets the reply live; nothing leaves the origin", async () => {
    expect(apiKey).toMatch(/^prly_/);
    expect(chatUrl).toContain("?channel=ch_");
    if (!browser) throw new Error("no browser");
    const context = await browser.newContext();
    const foreign: string[] = [];
    context.on("request", (request) => {
      const url = new URL(request.url());
      if (url.hostname !== "127.0.0.1" && url.protocol !== "data:") foreign.push(request.url());
    });

    const visitor = await context.newPage();
    await visitor.goto(chatUrl);
    await expect.poll(() => visitor.locator("#status").textContent(), { timeout: 15_000 }).toBe("Connected");
    await expect.poll(() => visitor.locator("#disclosure").textContent()).toContain("automated assistant");
    // The demo's offline AI answers from the seeded knowledge base.
    await visitor.fill("#text", "What are your opening hours on Sunday?");
    await visitor.press("#text", "Enter");
    await expect.poll(() => visitor.locator("#log li.you").count(), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => visitor.locator("#log li.them", { hasText: "Sunday 10:00-13:00" }).count(), { timeout: 20_000 }).toBe(1);
    await visitor.fill("#text", "Hello, do you ship to Milan?");
    await visitor.press("#text", "Enter");
    await expect.poll(() => visitor.locator("#log li.you").count(), { timeout: 10_000 }).toBe(2);
    await visitor.screenshot({ path: join(artifacts, "demo-chat.png"), fullPage: true });

    const staff = await context.newPage();
    await staff.goto(`${base}/admin/`);
    await staff.fill("#apikey", apiKey);
    await staff.click("#signin-form button[type=submit]");
    await expect.poll(() => staff.locator("#conversation-list button").count(), { timeout: 10_000 }).toBe(1);
    await staff.click("#conversation-list button");
    await expect.poll(() => staff.locator(".transcript li", { hasText: "do you ship to Milan?" }).count(), { timeout: 10_000 }).toBe(1);
    await staff.fill("#reply-text", "Yes, in 24 hours.");
    await staff.click(".reply button[type=submit]");
    await expect.poll(() => visitor.locator("#log li.them", { hasText: "Yes, in 24 hours." }).count(), { timeout: 20_000 }).toBe(1);
    await expect.poll(() => staff.locator(".transcript li.outbound", { hasText: "Yes, in 24 hours." }).locator("small").textContent(), { timeout: 10_000 }).toMatch(/delivered|sent/);
    await staff.click("text=Hand off to a human");
    await expect.poll(() => staff.locator("#conv-status").textContent()).toBe("handoff");
    await staff.screenshot({ path: join(artifacts, "admin-conversation.png"), fullPage: true });

    // The key lives in session storage only.
    expect(await staff.evaluate(() => [sessionStorage.getItem("parley.key") !== null, localStorage.getItem("parley.key")])).toEqual([true, null]);
    expect(foreign).toEqual([]);
    await context.close();
  });
});
