#!/usr/bin/env node
/**
 * `npm start`: everything needed to run Parley locally, offline.
 *  1. creates .dev.vars from .dev.vars.example with fresh secrets (if absent);
 *  2. applies the D1 migrations to the local database;
 *  3. starts `wrangler dev` (port 8787 unless PORT is set);
 *  4. seeds the demo tenant and its channels idempotently;
 *  5. prints the demo API key, webhook URLs and where the docs and pages are.
 *
 * Environment overrides (used by the tests): PORT, PARLEY_STATE_DIR (wrangler
 * --persist-to), PARLEY_DEV_VARS (path of the vars file), PARLEY_EXIT_AFTER_SEED=1.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const port = Number(process.env.PORT ?? 8787);
const stateDir = process.env.PARLEY_STATE_DIR ? resolve(process.env.PARLEY_STATE_DIR) : null;
const devVarsPath = resolve(root, process.env.PARLEY_DEV_VARS ?? ".dev.vars");
const credsPath = join(stateDir ?? join(root, ".wrangler", "state"), "parley-demo.json");
const wranglerBin = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
const origin = `http://127.0.0.1:${port}`;

function log(line = "") {
  process.stdout.write(`${line}\n`);
}

/** 1. Secrets: copy the example, generating every `<generated>` value. */
function ensureDevVars() {
  if (existsSync(devVarsPath)) return false;
  const example = readFileSync(join(root, ".dev.vars.example"), "utf8");
  const filled = example.replace(/^([A-Z0-9_]+)=<generated>$/gm, (_m, name) =>
    name === "MASTER_KEY" ? `${name}=${randomBytes(32).toString("base64")}` : `${name}=padm_${randomBytes(24).toString("hex")}`,
  );
  mkdirSync(dirname(devVarsPath), { recursive: true });
  writeFileSync(devVarsPath, filled, { mode: 0o600 });
  return true;
}

function readDevVars() {
  const vars = {};
  for (const line of readFileSync(devVarsPath, "utf8").split(/\r?\n/)) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match) vars[match[1]] = match[2];
  }
  return vars;
}

function persistArgs() {
  return stateDir ? ["--persist-to", stateDir] : [];
}

/** 2. Local D1 migrations (idempotent: applied ones are skipped). */
function migrate() {
  const result = spawnSync(process.execPath, [wranglerBin, "d1", "migrations", "apply", "DB", "--local", ...persistArgs()], {
    cwd: root,
    env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false" },
    encoding: "utf8",
  });
  if (result.status !== 0) {
    process.stderr.write(result.stdout + result.stderr);
    throw new Error("applying D1 migrations failed");
  }
}

/** 3. wrangler dev, in its own process group so it can be stopped as a whole. */
function startWrangler() {
  const args = [wranglerBin, "dev", "--port", String(port), "--ip", "127.0.0.1", "--inspector-port", "0", "--show-interactive-dev-session=false", ...persistArgs()];
  if (process.env.PARLEY_DEV_VARS) args.push("--env-file", devVarsPath);
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const lines = [];
  const keep = (chunk) => {
    lines.push(chunk.toString());
    if (lines.length > 200) lines.shift();
    if (process.env.PARLEY_VERBOSE) process.stderr.write(chunk);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  return { child, output: () => lines.join("") };
}

async function waitForHealth(child, output) {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited early:\n${output()}`);
    try {
      const res = await fetch(`${origin}/health`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`wrangler dev did not become healthy in 90 s:\n${output()}`);
}

async function request(method, path, key, body) {
  const headers = { authorization: `Bearer ${key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(origin + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // non-JSON body
  }
  return { status: res.status, json, text };
}

const DEMO_CHANNELS = [
  { type: "web_chat", name: "Website chat", config: { allowedOrigins: [] } },
  { type: "custom", name: "Custom webhook (Zapier / Make / n8n)", config: {} },
  {
    type: "twilio_sms",
    name: "Twilio SMS (demo credentials)",
    config: { accountSid: `AC${"0".repeat(31)}1`, from: "+15005550006" },
    secrets: { authToken: "demo-twilio-auth-token-change-me" },
  },
  {
    type: "whatsapp_cloud",
    name: "WhatsApp Cloud API (demo credentials)",
    config: { phoneNumberId: "100000000000001" },
    secrets: { appSecret: "demo-meta-app-secret-change-me", accessToken: "demo-graph-access-token" },
  },
];

/** What the offline `local` AI provider answers from in the demo (English and Italian). */
const DEMO_KNOWLEDGE = [
  { question: "What are your opening hours?", answer: "We are open Monday to Saturday 9:00-19:00 and Sunday 10:00-13:00." },
  { question: "Quali sono i vostri orari di apertura?", answer: "Siamo aperti dal lunedì al sabato 9:00-19:00 e la domenica 10:00-13:00." },
  { question: "How much does shipping cost and how long does delivery take?", answer: "Shipping is free over €50 (otherwise €4.90); delivery takes 1-3 working days in Italy." },
  { question: "Quanto costa la spedizione e quanto ci mette la consegna?", answer: "La spedizione è gratuita sopra i 50 € (altrimenti 4,90 €); la consegna richiede 1-3 giorni lavorativi in Italia." },
  { question: "How can I return an item or get a refund?", answer: "You can return any item within 30 days: open the Returns page, print the label, and the refund arrives within 5 days of receipt." },
  { question: "Come posso fare un reso o avere un rimborso?", answer: "Puoi restituire qualsiasi articolo entro 30 giorni dalla pagina Resi; il rimborso arriva entro 5 giorni dal ricevimento." },
];

/**
 * The demo site's cookie notice (a tenant version of the `cookies` series): it
 * describes exactly what the demo page stores, where the shipped default
 * treats functional storage as technical. The banner shows the latest version.
 */
const DEMO_COOKIE_NOTICES = [
  {
    locale: "en",
    text:
      "Demo Shop uses cookies and similar technologies (your browser's local and session storage) on this site. " +
      "Technical storage is needed for the chat to work and is always on: it keeps your conversation open in this tab (deleted when you close it) and remembers the cookie choice you make here. " +
      "With your consent we would also use: functional storage, to remember your conversation on this device between visits; analytics, to count visits and messages in aggregate (counted on your device and never shared with other companies); marketing cookies, to show you relevant offers of ours; and profiling cookies, to tailor content to your interests. " +
      "Nothing beyond technical storage is used until you choose. You can accept all, refuse all, or choose category by category; closing this banner is not a choice: only technical storage is used and we will ask you again next time. " +
      'You can change your choice at any time from the "Cookie settings" link at the bottom of the page.',
  },
  {
    locale: "it",
    text:
      "Demo Shop usa cookie e tecnologie simili (la memoria locale e di sessione del tuo browser) su questo sito. " +
      "La memoria tecnica serve al funzionamento della chat ed è sempre attiva: mantiene aperta la tua conversazione in questa scheda (viene cancellata quando la chiudi) e ricorda la scelta sui cookie che fai qui. " +
      "Con il tuo consenso useremmo anche: memoria funzionale, per ricordare la tua conversazione su questo dispositivo tra una visita e l'altra; analitica, per contare in forma aggregata visite e messaggi (il conteggio resta sul tuo dispositivo e non è mai condiviso con altre aziende); cookie di marketing, per mostrarti nostre offerte pertinenti; cookie di profilazione, per adattare i contenuti ai tuoi interessi. " +
      "Finché non scegli usiamo solo la memoria tecnica. Puoi accettare tutto, rifiutare tutto o scegliere categoria per categoria; chiudere questo banner non è una scelta: usiamo solo la memoria tecnica e te lo chiederemo di nuovo la prossima volta. " +
      'Puoi cambiare la tua scelta in qualsiasi momento dal link "Impostazioni cookie" in fondo alla pagina.',
  },
];
const COOKIE_PURPOSES = ["cookies_functional", "cookies_analytics", "cookies_marketing", "cookies_profiling"];

/** Stores the demo cookie notice as the next version of the series unless it already is the current one. */
async function seedCookieNotices(apiKey) {
  for (const { locale, text } of DEMO_COOKIE_NOTICES) {
    const listed = await request("GET", `/v1/notices?key=cookies&locale=${locale}&current=true`, apiKey);
    if (listed.status !== 200) throw new Error(`listing the cookie notices failed: ${listed.text}`);
    if (listed.json.data.some((n) => n.text === text)) continue;
    const created = await request("POST", "/v1/notices", apiKey, { key: "cookies", purposes: COOKIE_PURPOSES, locale, text });
    if (created.status !== 201) throw new Error(`seeding the demo cookie notice failed: ${created.text}`);
  }
}

/** 4. Demo tenant, owner key, channels and knowledge base; safe to run on every start. */
async function seed(platformKey) {
  let creds = existsSync(credsPath) ? JSON.parse(readFileSync(credsPath, "utf8")) : null;
  if (creds && (await request("GET", "/v1/channels", creds.apiKey)).status !== 200) creds = null;
  if (!creds) {
    const existing = await request("GET", "/v1/tenants/demo", platformKey);
    if (existing.status === 200) {
      const issued = await request("POST", `/v1/tenants/${existing.json.id}/owner-keys`, platformKey);
      if (issued.status !== 201) throw new Error(`issuing a demo owner key failed: ${issued.text}`);
      creds = { tenantId: existing.json.id, apiKey: issued.json.key, generated: {} };
    } else {
      const created = await request("POST", "/v1/tenants", platformKey, { name: "Demo Shop", slug: "demo", defaultCountry: "IT" });
      if (created.status !== 201) throw new Error(`creating the demo tenant failed: ${created.text}`);
      creds = { tenantId: created.json.tenant.id, apiKey: created.json.apiKey.key, generated: {} };
    }
  }
  const listed = await request("GET", "/v1/channels", creds.apiKey);
  const channels = listed.json.data;
  for (const wanted of DEMO_CHANNELS) {
    if (channels.some((c) => c.type === wanted.type)) continue;
    const created = await request("POST", "/v1/channels", creds.apiKey, wanted);
    if (created.status !== 201) throw new Error(`creating the demo ${wanted.type} channel failed: ${created.text}`);
    channels.push(created.json);
    if (Object.keys(created.json.generatedSecrets).length > 0) creds.generated[created.json.id] = created.json.generatedSecrets;
  }
  const kb = await request("GET", "/v1/knowledge", creds.apiKey);
  if (kb.status === 200 && kb.json.entries.length === 0) {
    const seeded = await request("PUT", "/v1/knowledge", creds.apiKey, { entries: DEMO_KNOWLEDGE });
    if (seeded.status !== 200) throw new Error(`seeding the demo knowledge base failed: ${seeded.text}`);
  }
  await seedCookieNotices(creds.apiKey);
  mkdirSync(dirname(credsPath), { recursive: true });
  writeFileSync(credsPath, JSON.stringify(creds, null, 2), { mode: 0o600 });
  return { creds, channels };
}

function printSummary({ creds, channels }, createdVars) {
  log("");
  log("Parley is running locally.");
  log("");
  if (createdVars) log(`  Created ${devVarsPath} with fresh MASTER_KEY and PLATFORM_ADMIN_KEY.`);
  log(`  Demo tenant:        ${creds.tenantId}`);
  log(`  Demo API key:       ${creds.apiKey}   (owner; send as "Authorization: Bearer …")`);
  log(`  Admin page:         ${origin}/admin/`);
  const webChat = channels.find((c) => c.type === "web_chat");
  log(`  Demo web chat:      ${origin}/${webChat ? `?channel=${webChat.id}` : ""}`);
  log(`  API docs:           ${origin}/docs/`);
  log(`  OpenAPI document:   ${origin}/v1/openapi.json`);
  log("");
  log("  Channels and their webhook URLs:");
  for (const c of channels) {
    log(`    ${c.type.padEnd(16)} ${c.webhookUrl}`);
    const generated = creds.generated[c.id] ?? {};
    for (const [name, value] of Object.entries(generated)) log(`    ${"".padEnd(16)} ${name}: ${value}`);
  }
  log("");
  log("  Try it:");
  log(`    curl -s ${origin}/v1/conversations -H "Authorization: Bearer ${creds.apiKey}"`);
  log("");
  log("Press Ctrl+C to stop.");
}

async function main() {
  const createdVars = ensureDevVars();
  const vars = readDevVars();
  if (!vars.PLATFORM_ADMIN_KEY || !vars.MASTER_KEY) throw new Error(`${devVarsPath} lacks MASTER_KEY or PLATFORM_ADMIN_KEY`);
  migrate();
  const { child, output } = startWrangler();
  const stop = () => {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      // already gone
    }
  };
  process.on("SIGINT", () => {
    stop();
    process.exit(130);
  });
  process.on("SIGTERM", () => {
    stop();
    process.exit(143);
  });
  try {
    await waitForHealth(child, output);
    printSummary(await seed(vars.PLATFORM_ADMIN_KEY), createdVars);
  } catch (err) {
    stop();
    throw err;
  }
  if (process.env.PARLEY_EXIT_AFTER_SEED === "1") {
    stop();
    return;
  }
  child.on("exit", (code) => process.exit(code ?? 0));
}

main().catch((err) => {
  process.stderr.write(`npm start failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
