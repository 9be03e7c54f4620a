/**
 * Real Chromium (Debian's, driven by playwright-core) against `npm start`:
 * a visitor chats on the demo page, staff sign in to the admin page, see the
 * conversation and reply, and the reply reaches the visitor live.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..", "..");
const artifacts = join(root, "test-artifacts");
const work = mkdtempSync(join(tmpdir(), "parley-browser-"));
let child: ChildProcess | null = null;
let browser: Browser | null = null;
let base = "";
let apiKey = "";
let chatUrl = "";

async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolvePort(address.port) : reject(new Error("no port"))));
    });
  });
}

beforeAll(async () => {
  mkdirSync(artifacts, { recursive: true });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  const started = spawn(process.execPath, [join(root, "scripts", "start.mjs")], {
    cwd: root,
    env: { ...process.env, PORT: String(port), PARLEY_STATE_DIR: join(work, "state"), PARLEY_DEV_VARS: join(work, ".dev.vars") },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  child = started;
  const output = await new Promise<string>((resolveOut, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`npm start did not come up:\n${text}`)), 150_000);
    started.stdout?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes("Press Ctrl+C to stop.")) {
        clearTimeout(timer);
        resolveOut(text);
      }
    });
    started.stderr?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
    });
    started.on("exit", (code) => reject(new Error(`npm start exited ${code}:\n${text}`)));
  });
  apiKey = /Demo API key:\s+(\S+)/.exec(output)?.[1] ?? "";
  chatUrl = /Demo web chat:\s+(\S+)/.exec(output)?.[1] ?? "";
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  if (child?.pid) {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      // gone
    }
  }
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
    await visitor.fill("#text", "Hello, do you ship to Milan?");
    await visitor.press("#text", "Enter");
    await expect.poll(() => visitor.locator("#log li.you").count(), { timeout: 10_000 }).toBe(1);
    await visitor.screenshot({ path: join(artifacts, "demo-chat.png"), fullPage: true });

    const staff = await context.newPage();
    await staff.goto(`${base}/admin/`);
    await staff.fill("#apikey", apiKey);
    await staff.click("#signin-form button[type=submit]");
    await expect.poll(() => staff.locator("#conversation-list button").count(), { timeout: 10_000 }).toBe(1);
    await staff.click("#conversation-list button");
    await expect.poll(() => staff.locator(".transcript li").first().textContent(), { timeout: 10_000 }).toContain("do you ship to Milan?");
    await staff.fill("#reply-text", "Yes, in 24 hours.");
    await staff.click(".reply button[type=submit]");
    await expect.poll(() => visitor.locator("#log li.them").first().textContent(), { timeout: 20_000 }).toContain("Yes, in 24 hours.");
    await expect.poll(() => staff.locator(".transcript li.outbound small").first().textContent(), { timeout: 10_000 }).toMatch(/delivered|sent/);
    await staff.click("text=Hand off to a human");
    await expect.poll(() => staff.locator("#conv-status").textContent()).toBe("handoff");
    await staff.screenshot({ path: join(artifacts, "admin-conversation.png"), fullPage: true });

    // The key lives in session storage only.
    expect(await staff.evaluate(() => [sessionStorage.getItem("parley.key") !== null, localStorage.getItem("parley.key")])).toEqual([true, null]);
    expect(foreign).toEqual([]);
    await context.close();
  });
});
