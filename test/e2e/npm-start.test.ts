/**
 * The README's first command: `npm start` on a fresh machine sets everything up,
 * serves the pages, and is idempotent across restarts.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { execFileSync } from "node:child_process";
import { parleySignature } from "./client.ts";
import { freePort, PROJECT_ROOT } from "./harness.ts";
import { printedField as field, runStartScript } from "./start-script.ts";

const work = mkdtempSync(join(tmpdir(), "parley-start-"));
const runStart = (port: number, exitAfterSeed: boolean) => runStartScript(port, work, exitAfterSeed);

let running: { stop: () => void } | null = null;

afterAll(() => {
  running?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe("npm start", () => {
  it("creates secrets, migrates, seeds a demo tenant, serves the pages, and is idempotent", async () => {
    const port = await freePort();
    const first = await runStart(port, true);
    const varsFile = join(work, "vars", ".dev.vars");
    expect(existsSync(varsFile)).toBe(true);
    const vars = readFileSync(varsFile, "utf8");
    expect(vars).toMatch(/^MASTER_KEY=[A-Za-z0-9+/]{43}=$/m);
    expect(vars).toMatch(/^PLATFORM_ADMIN_KEY=padm_[0-9a-f]{48}$/m);
    expect(vars).not.toContain("=<generated>");
    const key = field(first.output, "Demo API key");
    expect(key).toMatch(/^prly_[a-z2-7]{32}$/);
    for (const type of ["web_chat", "custom", "twilio_sms", "whatsapp_cloud"]) expect(first.output).toContain(type);
    expect(first.output).toContain(`http://127.0.0.1:${port}/docs/`);

    // Second start: same tenant, same key, same channels; this time keep it running and use it.
    const second = await runStart(port, false);
    running = second;
    expect(field(second.output, "Demo API key")).toBe(key);
    expect(field(second.output, "Demo tenant")).toBe(field(first.output, "Demo tenant"));
    expect(second.output.match(/webhooks\/custom\//g)).toHaveLength(1);

    const base = `http://127.0.0.1:${port}`;
    const channels = (await (await fetch(`${base}/v1/channels`, { headers: { authorization: `Bearer ${key}` } })).json()) as { data: { type: string }[] };
    expect(channels.data.map((c) => c.type).sort()).toEqual(["custom", "twilio_sms", "web_chat", "whatsapp_cloud"]);
    for (const path of ["/", "/admin/", "/docs/"]) {
      const res = await fetch(base + path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-security-policy")).toContain("default-src 'self'");
      const html = await res.text();
      expect(html).not.toMatch(/https?:\/\/(?!127\.0\.0\.1)/);
    }
    const openapi = await fetch(`${base}/v1/openapi.json`);
    expect(openapi.status).toBe(200);

    // The README's "Triggering a sweep locally" command, verbatim but for the port and the .dev.vars path.
    const readme = readFileSync(join(PROJECT_ROOT, "README.md"), "utf8");
    const block = /\*\*Triggering a sweep locally\.\*\*\s+```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(block).toBeDefined();
    const command = (block ?? "").replaceAll("127.0.0.1:8787", `127.0.0.1:${port}`).replaceAll(" .dev.vars", ` ${varsFile}`);
    const swept = JSON.parse(execFileSync("bash", ["-c", command], { encoding: "utf8" })) as { cron: string; report: { now: string; done: boolean; locked: boolean } };
    expect(swept.cron).toBe("*/15 * * * *");
    expect(Date.parse(swept.report.now)).toBeGreaterThan(Date.now() + 24 * 2629800000);
    expect(swept.report.locked).toBe(false);

    // The README's "Using the API" block, verbatim but for the port, with curl failing on any HTTP error.
    const custom = (await (
      await fetch(`${base}/v1/channels`, { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify({ type: "custom", name: "README" }) })
    ).json()) as { id: string; generatedSecrets: { signingSecret: string } };
    const event = JSON.stringify({ type: "message", id: "readme-1", from: "+393471234567", text: "Where is order 483920?" });
    const inbound = await fetch(`${base}/webhooks/custom/${custom.id}`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-parley-signature": parleySignature(custom.generatedSecrets.signingSecret, event) },
      body: event,
    });
    expect(inbound.status).toBe(200);
    const conversationId = ((await inbound.json()) as { conversationId: string }).conversationId;
    const usage = /## Using the API[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)?.[1] ?? "";
    expect(usage).toContain("curl");
    const script = `set -euo pipefail\ncurl() { command curl --fail-with-body "$@"; echo; }\n${usage.replaceAll("127.0.0.1:8787", `127.0.0.1:${port}`)}`;
    const platformKey = /^PLATFORM_ADMIN_KEY=(.*)$/m.exec(vars)?.[1] ?? "";
    const printed = execFileSync("bash", ["-c", script], { encoding: "utf8", env: { ...process.env, PLATFORM_ADMIN_KEY: platformKey, KEY: key, CONV: conversationId } });
    expect(printed).toContain('"slug":"da-mario"');
    expect(printed).toContain("Your order ships today.");
    expect(printed).toContain('"status":"handoff"');
    second.stop();
    running = null;
  });
});
