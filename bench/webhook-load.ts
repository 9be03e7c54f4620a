// Webhook ingest under load: Parley's full custom-webhook path against a minimal
// baseline Worker, both under `wrangler dev` on 127.0.0.1, measured in the same run.
//
//   npm run bench -- webhook-load            (or: npx tsx bench/webhook-load.ts)
//   BENCH_LOAD_LEVELS=100,500,2000           concurrency levels N (requests in flight at once)
//   BENCH_LOAD_CONVERSATIONS=50              M conversations (distinct senders) per level
//   BENCH_LOAD_MESSAGES=1000                 messages per level at least (max(2·N, this))
//   BENCH_LOAD_AI=1                          keep the tenant's automatic AI replies on (default off:
//                                            the offline provider's decisions are measured elsewhere)
//   BENCH_LOAD_ROUNDS=3                      interleaved rounds per level (baseline and Parley alternate
//                                            who goes first); ratios use each target's median p50
//   BENCH_LOAD_DEVTOOLS=1                    run both Workers under the `wrangler dev` CLI with its
//                                            DevTools inspector attached (default: wrangler's API with
//                                            the inspector off, bench/dev-server.mjs — the inspector makes
//                                            workerd serialise every subrequest, which production never does)
//
// Parley: a snapshot of the project (bench/lib-wrangler.ts createBenchServer), one tenant and
// one custom channel; each request is a fresh event signed with X-Parley-Signature, and goes
// through channel lookup (D1) and secret decryption, signature check, schema validation,
// conversation-id HMAC, the Conversation object's dedupe + sealed append + AI task, and the
// D1 index update. Baseline (bench/baseline/): Hono, the same JSON body, one SQLite Durable
// Object per sender that appends a row — no signature, no D1, no encryption.
//
// The load comes from a SECOND process (this file run with --driver): node:http with
// keep-alive sockets, N requests in flight, each signed as it is sent. A request that does
// not get 200 is sent again (same event, fresh signature) as a provider would, up to 6 times.
// After each run every acknowledged event is looked up through the API: it must be stored
// exactly once (and as the message its ack named). Both servers run all along; each run
// starts when the workerd processes are idle again: IDLE_SECONDS in a row with almost no CPU,
// longer than Parley's longest coalescing window (5 s), so its deferred decisions and D1 pushes
// land in its own figures and never run during the other target's round.
//
// Output: `BENCH webhook-load {json}` lines (one per target and level, one ratio line per level)
// and a human summary; results also go to bench/results/webhook-load.json. Latency is per
// message, from its first send to its 200 (retries included), measured by the driver.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { resultsPath } from "./lib-results";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
/** Seconds in a row with under 50 ms of workerd CPU that count as idle (see the header). */
const IDLE_SECONDS = Number(process.env.BENCH_LOAD_IDLE_SECONDS ?? 6);

// ====================================================================== driver (child process)

interface DriverConfig {
  baseUrl: string;
  channelId: string;
  /** Signing secret; null: send unsigned (baseline). */
  secret: string | null;
  concurrency: number;
  total: number;
  conversations: number;
  runId: string;
  /** The answer that counts as acknowledged (default 200; 401/404 for the profile's refusal variants). */
  expectStatus?: number;
  /** Reuse connections (default true); BENCH_LOAD_KEEPALIVE=0 opens one per request. */
  keepAlive?: boolean;
}

interface DriverAck {
  i: number;
  conversationId: string | null;
  messageId: string | null;
  seq: number;
  duplicate: boolean;
}

interface DriverResult {
  wallMs: number;
  latencies: number[];
  acks: DriverAck[];
  /** Non-200 answers and network errors seen (before a retry), by status ("net" for errors). */
  failures: Record<string, number>;
  retries: number;
  unacked: number[];
  /** First bodies of failed answers, for the report. */
  samples: string[];
}

export const eventOf = (runId: string, conversations: number, i: number) => ({
  type: "message",
  id: `${runId}_${i}`,
  from: `load-${runId}-${i % conversations}`,
  text: `load message ${i} of run ${runId}`,
});

function sign(secret: string, body: string): string {
  const t = Math.floor(Date.now() / 1000);
  return `t=${t},v1=${createHmac("sha256", secret).update(`${t}.${body}`).digest("hex")}`;
}

function post(agent: Agent, url: URL, body: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { agent, host: url.hostname, port: url.port, path: url.pathname, method: "POST", headers: { ...headers, "content-length": Buffer.byteLength(body) }, timeout: 120_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(body);
  });
}

async function driver(config: DriverConfig): Promise<DriverResult> {
  const keepAlive = config.keepAlive ?? true;
  const agent = new Agent({ keepAlive, maxSockets: config.concurrency, maxFreeSockets: keepAlive ? config.concurrency : 0 });
  const url = new URL(`${config.baseUrl}/webhooks/custom/${config.channelId}`);
  const latencies: number[] = [];
  const acks: DriverAck[] = [];
  const failures: Record<string, number> = {};
  const samples: string[] = [];
  const unacked: number[] = [];
  let retries = 0;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= config.total) return;
      const body = JSON.stringify(eventOf(config.runId, config.conversations, i));
      const first = performance.now();
      let done = false;
      for (let attempt = 0; attempt < 6 && !done; attempt++) {
        if (attempt > 0) {
          retries++;
          await new Promise((r) => setTimeout(r, 100 * attempt));
        }
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (config.secret) headers["x-parley-signature"] = sign(config.secret, body);
        const sent = performance.now();
        try {
          const res = await post(agent, url, body, headers);
          if (res.status === (config.expectStatus ?? 200)) {
            const ack = (res.status === 200 ? JSON.parse(res.text) : { seq: 0 }) as { conversationId?: string; messageId?: string; seq: number; duplicate?: boolean };
            latencies.push(Math.round((performance.now() - first) * 100) / 100);
            acks.push({ i, conversationId: ack.conversationId ?? null, messageId: ack.messageId ?? null, seq: ack.seq, duplicate: ack.duplicate ?? false });
            done = true;
          } else {
            failures[String(res.status)] = (failures[String(res.status)] ?? 0) + 1;
            if (samples.length < 5) samples.push(`${res.status} ${res.text.slice(0, 200)}`);
          }
        } catch (err) {
          failures.net = (failures.net ?? 0) + 1;
          if (samples.length < 5) samples.push(`net ${err instanceof Error ? err.message : String(err)} after ${Math.round(performance.now() - sent)} ms`);
        }
      }
      if (!done) unacked.push(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(config.concurrency, config.total) }, worker));
  const wallMs = performance.now() - started;
  agent.destroy();
  return { wallMs, latencies, acks, failures, retries, unacked, samples };
}

/** Runs the driver in a child process (the load generator must not share the event loop or CPU accounting of the bench). */
function runDriver(config: DriverConfig): Promise<DriverResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, "node_modules", "tsx", "dist", "cli.mjs"), fileURLToPath(import.meta.url), "--driver"], {
      cwd: root,
      env: { ...process.env, BENCH_DRIVER_CONFIG: JSON.stringify(config) },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`driver exited ${code}`));
      try {
        resolve(JSON.parse(out) as DriverResult);
      } catch (err) {
        reject(new Error(`driver output is not JSON: ${out.slice(0, 300)} (${String(err)})`));
      }
    });
  });
}

// ====================================================================== bench (parent)

interface Target {
  name: "baseline" | "parley";
  /** Where the load goes: the user Worker's own port (default) or wrangler dev's public port. */
  baseUrl: string;
  port: number;
  channelId: string;
  secret: string | null;
  /** Checks every acknowledged event is stored exactly once; returns problems found. */
  verify(config: DriverConfig, result: DriverResult): Promise<{ checked: number; problems: string[] }>;
}

interface RunFigures {
  target: string;
  n: number;
  /** Which of the level's interleaved rounds (1-based). */
  round: number;
  messages: number;
  conversations: number;
  acked: number;
  unacked: number;
  retries: number;
  failures: Record<string, number>;
  wallMs: number;
  messagesPerSecond: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  workerdCpuMsPerMessage: number;
  /** workerd CPU after the run until idle again (alarms: AI tasks, health counters), per message. */
  deferredCpuMsPerMessage: number;
  /** Acks of resends that the Worker had already stored (their first answer was lost). */
  duplicatesAcked: number;
  verified: number;
  lost: number;
  duplicated: number;
  problems: string[];
}

async function main(): Promise<void> {
  const { cpuMs, createBenchServer, percentile, startPlainServer, userWorkerPort, workerdPids } = await import("./lib-wrangler");
  const levels = (process.env.BENCH_LOAD_LEVELS ?? process.argv.find((a) => a.startsWith("--levels="))?.slice(9) ?? "100,500,2000")
    .split(",")
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
  const conversations = Number(process.env.BENCH_LOAD_CONVERSATIONS ?? 50);
  const minMessages = Number(process.env.BENCH_LOAD_MESSAGES ?? 1000);
  const keepAi = process.env.BENCH_LOAD_AI === "1";
  const viaProxy = process.env.BENCH_LOAD_VIA_PROXY === "1";
  const devtools = process.env.BENCH_LOAD_DEVTOOLS === "1";
  const rounds = Math.max(1, Number(process.env.BENCH_LOAD_ROUNDS ?? 3) || 1);
  const profile = process.env.BENCH_LOAD_PROFILE !== "0";
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const machine = (record: Record<string, unknown>) => out(`BENCH webhook-load ${JSON.stringify(record)}`);

  // Same compatibility date and flags as the project, or the comparison means little.
  const compat = (toml: string) => ({
    date: /^compatibility_date\s*=\s*"([^"]+)"/m.exec(toml)?.[1],
    flags: /^compatibility_flags\s*=\s*(\[[^\]]*\])/m.exec(toml)?.[1]?.replace(/\s/g, ""),
  });
  const ours = compat(readFileSync(join(root, "wrangler.toml"), "utf8"));
  const theirs = compat(readFileSync(join(here, "baseline", "wrangler.toml"), "utf8"));
  if (ours.date !== theirs.date || ours.flags !== theirs.flags) {
    throw new Error(`bench/baseline/wrangler.toml must use the project's compatibility date and flags (${JSON.stringify(ours)} vs ${JSON.stringify(theirs)})`);
  }

  out(`webhook-load: levels ${levels.join(", ")}; ${conversations} conversations per level; AI replies ${keepAi ? "on" : "off"}; ${viaProxy ? "through wrangler dev's ProxyWorker" : "straight to each user Worker's port"}; ${devtools ? "wrangler dev CLI with the DevTools inspector" : "wrangler's dev server without the DevTools inspector"}; Node ${process.version}`);
  const benchStarted = Date.now();
  const [parleyServer, baselineServer] = await Promise.all([
    // The per-channel webhook rate limit (1000 per 10 s) would turn a load test into a test of
    // the limiter; it is switched off here as wrangler.toml suggests (BENCH_LOAD_RATE_LIMITS=1 keeps it).
    createBenchServer(undefined, process.env.BENCH_LOAD_RATE_LIMITS === "1" ? {} : { RATE_LIMITS_ENABLED: "false" }, { devtools }).then(async (s) => {
      await s.start();
      return s;
    }),
    startPlainServer(join(here, "baseline"), "/health", { devtools }),
  ]);
  try {
    // ------------------------------------------------------------ Parley tenant and channel
    const api = async <T>(method: string, path: string, key: string, json?: unknown): Promise<T> => {
      // Reads are retried (a server still busy with a burst's alarms may be slow to answer).
      for (let attempt = 1; ; attempt++) {
        try {
          const res = await fetch(`${parleyServer.baseUrl}${path}`, {
            method,
            headers: { authorization: `Bearer ${key}`, ...(json !== undefined ? { "content-type": "application/json" } : {}) },
            ...(json !== undefined ? { body: JSON.stringify(json) } : {}),
            signal: AbortSignal.timeout(120_000),
          });
          const text = await res.text();
          if (method === "GET" && res.status >= 500 && attempt < 5) continue;
          if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
          return JSON.parse(text) as T;
        } catch (err) {
          if (method !== "GET" || attempt >= 5 || !(err instanceof Error) || err.name !== "TimeoutError") throw err;
        }
      }
    };
    const tenant = await api<{ apiKey: { key: string } }>("POST", "/v1/tenants", parleyServer.platformKey, { name: "Load bench", slug: `load-${Date.now().toString(36)}` });
    const key = tenant.apiKey.key;
    if (!keepAi) await api("PATCH", "/v1/settings", key, { ai: { replies: false } });
    const channel = await api<{ id: string; generatedSecrets: { signingSecret: string } }>("POST", "/v1/channels", key, { type: "custom", name: "Load" });

    /** Parley: page each conversation's transcript through /v1 and match it against the acks. */
    const verifyParley = async (config: DriverConfig, result: DriverResult) => {
      const problems: string[] = [];
      const byConversation = new Map<string, DriverAck[]>();
      for (const ack of result.acks) {
        const list = byConversation.get(ack.conversationId ?? "") ?? [];
        list.push(ack);
        byConversation.set(ack.conversationId ?? "", list);
      }
      let checked = 0;
      const entries = [...byConversation.entries()];
      let cursor = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          for (;;) {
            const entry = entries[cursor++];
            if (!entry) return;
            const [conversationId, acks] = entry;
            const seen = new Map<string, { id: string; count: number }>();
            let after = 0;
            for (;;) {
              const page = await api<{ data: { id: string; seq: number; providerMessageId: string | null }[]; hasMore: boolean }>(
                "GET",
                `/v1/conversations/${conversationId}/messages?limit=200&after=${after}`,
                key,
              );
              for (const m of page.data) {
                const found = seen.get(m.providerMessageId ?? "");
                seen.set(m.providerMessageId ?? "", { id: m.id, count: (found?.count ?? 0) + 1 });
              }
              const last = page.data[page.data.length - 1];
              if (!page.hasMore || !last) break;
              after = last.seq;
            }
            for (const ack of acks) {
              const eventId = `${config.runId}_${ack.i}`;
              const stored = seen.get(eventId);
              checked++;
              if (!stored) problems.push(`lost: ${eventId} (acked as ${ack.messageId})`);
              else if (stored.count !== 1) problems.push(`duplicated: ${eventId} stored ${stored.count} times`);
              else if (stored.id !== ack.messageId) problems.push(`mismatch: ${eventId} acked as ${ack.messageId}, stored as ${stored.id}`);
            }
            // Unacked events may or may not have been stored (once); nothing else of this run may be.
            const ackedIds = new Set(acks.map((a) => `${config.runId}_${a.i}`));
            const unackedIds = new Set(result.unacked.map((i) => `${config.runId}_${i}`));
            for (const [k, v] of seen) {
              if (!k.startsWith(`${config.runId}_`) || ackedIds.has(k)) continue;
              if (!unackedIds.has(k)) problems.push(`unexpected: ${k} stored but never acknowledged here`);
              else if (v.count !== 1) problems.push(`duplicated: unacked ${k} stored ${v.count} times`);
            }
          }
        }),
      );
      return { checked, problems };
    };

    /** Baseline: the object's rows per sender. */
    const verifyBaseline = async (config: DriverConfig, result: DriverResult) => {
      const problems: string[] = [];
      let checked = 0;
      const bySender = new Map<string, number[]>();
      for (const ack of result.acks) {
        const from = eventOf(config.runId, config.conversations, ack.i).from;
        bySender.set(from, [...(bySender.get(from) ?? []), ack.i]);
      }
      for (const [from, indexes] of bySender) {
        const res = await fetch(`${baselineServer.baseUrl}/rows/${config.channelId}/${from}`, { signal: AbortSignal.timeout(60_000) });
        const { eventIds } = (await res.json()) as { eventIds: string[] };
        const counts = new Map<string, number>();
        for (const id of eventIds) counts.set(id, (counts.get(id) ?? 0) + 1);
        for (const i of indexes) {
          checked++;
          const n = counts.get(`${config.runId}_${i}`) ?? 0;
          // The baseline does not dedupe: a retried request may legitimately be stored twice there.
          if (n === 0) problems.push(`lost: ${config.runId}_${i}`);
        }
      }
      return { checked, problems };
    };

    // wrangler dev (4.86) puts a ProxyWorker in front of the user Worker; under load it cuts
    // requests and answers 503 "Your worker restarted mid-request" (see isDevProxyRestart in
    // test/e2e/client.ts), more often the longer a request takes. Production has no such hop,
    // so by default the load goes straight to each user Worker's own port (Miniflare's entry
    // worker, same runtime, same bindings); BENCH_LOAD_VIA_PROXY=1 measures through the proxy.
    const direct = async (publicPort: number, publicUrl: string, accept: (body: string) => boolean) => {
      if (viaProxy) return publicUrl;
      const port = await userWorkerPort(publicPort, "/health", accept);
      if (port === null) throw new Error(`no user Worker port found behind ${publicUrl}; set BENCH_LOAD_VIA_PROXY=1`);
      return `http://127.0.0.1:${port}`;
    };
    const targets: Target[] = [
      {
        name: "baseline",
        baseUrl: await direct(baselineServer.port, baselineServer.baseUrl, (b) => b.includes('"ok":true')),
        port: baselineServer.port,
        channelId: "ch_baseline",
        secret: null,
        verify: verifyBaseline,
      },
      {
        name: "parley",
        baseUrl: await direct(parleyServer.port, parleyServer.baseUrl, (b) => b.includes('"checks"')),
        port: parleyServer.port,
        channelId: channel.id,
        secret: channel.generatedSecrets.signingSecret,
        verify: verifyParley,
      },
    ];
    out(`load → baseline ${targets[0]?.baseUrl}, parley ${targets[1]?.baseUrl}`);
    const pids = new Map<string, number[]>();
    for (const t of targets) pids.set(t.name, await workerdPids(t.port));
    const allPids = [...pids.values()].flat();

    /** Waits until both servers' workerd processes use under 5 % of a core (Parley's alarms drain after a burst). */
    const waitIdle = async () => {
      const deadline = Date.now() + 180_000;
      let quiet = 0;
      for (;;) {
        const a = await cpuMs(allPids);
        await new Promise((r) => setTimeout(r, 1000));
        const used = (await cpuMs(allPids)) - a;
        quiet = used < 50 ? quiet + 1 : 0;
        if (quiet >= IDLE_SECONDS || Date.now() > deadline) return;
      }
    };
    /** workerd CPU a target burns from now until both servers are idle again. */
    const deferredCpu = async (target: Target) => {
      const own = pids.get(target.name) ?? [];
      const before = await cpuMs(own);
      await waitIdle();
      return (await cpuMs(own)) - before;
    };

    let runCounter = 0;
    const runOnce = async (target: Target, n: number, total: number, overrides: Partial<DriverConfig> = {}): Promise<{ config: DriverConfig; result: DriverResult; cpu: number }> => {
      const config: DriverConfig = {
        baseUrl: target.baseUrl,
        channelId: target.channelId,
        secret: target.secret,
        concurrency: n,
        total,
        conversations,
        runId: `r${Date.now().toString(36)}${(runCounter++).toString(36)}`,
        keepAlive: process.env.BENCH_LOAD_KEEPALIVE !== "0",
        ...overrides,
      };
      const own = pids.get(target.name) ?? [];
      const before = await cpuMs(own);
      const result = await runDriver(config);
      const cpu = (await cpuMs(own)) - before;
      return { config, result, cpu };
    };

    // Warm both up (isolates, JIT, module caches, D1 statements), unmeasured.
    for (const target of targets) await runOnce(target, 20, 300);
    await waitIdle();

    const figures: RunFigures[] = [];
    /** Median of a target's p50 (or other figure) over a level's rounds. */
    const median = (values: number[]) => percentile(values, 50);
    const ratioLine = (n: number) => {
      const of = (name: string) => figures.filter((f) => f.n === n && f.target === name);
      const base = of("baseline");
      const parley = of("parley");
      if (base.length === 0 || parley.length === 0) return null;
      const m = (list: RunFigures[], key: "p50" | "p95" | "p99" | "messagesPerSecond") => median(list.map((f) => f[key]));
      return {
        n,
        rounds: Math.min(base.length, parley.length),
        p50: Math.round((m(parley, "p50") / m(base, "p50")) * 100) / 100,
        p95: Math.round((m(parley, "p95") / m(base, "p95")) * 100) / 100,
        p99: Math.round((m(parley, "p99") / m(base, "p99")) * 100) / 100,
        throughput: Math.round((m(parley, "messagesPerSecond") / m(base, "messagesPerSecond")) * 100) / 100,
        perRoundP50: base.map((b, i) => Math.round(((parley[i]?.p50 ?? Number.NaN) / b.p50) * 100) / 100),
      };
    };
    for (const n of levels) {
      const total = Math.max(2 * n, minMessages);
      for (let round = 1; round <= rounds; round++) {
        // Who goes first alternates, so neither always runs on a machine the other just warmed or loaded.
        for (const target of round % 2 === 1 ? targets : [...targets].reverse()) {
          await waitIdle();
          const { config, result, cpu } = await runOnce(target, n, total);
          const deferred = await deferredCpu(target);
          const verdict = await target.verify(config, result);
          const lost = verdict.problems.filter((p) => p.startsWith("lost")).length;
          const duplicated = verdict.problems.filter((p) => p.startsWith("duplicated")).length;
          const f: RunFigures = {
            target: target.name,
            n,
            round,
            messages: total,
            conversations,
            acked: result.acks.length,
            unacked: result.unacked.length,
            retries: result.retries,
            failures: result.failures,
            wallMs: Math.round(result.wallMs),
            messagesPerSecond: Math.round((result.acks.length / result.wallMs) * 1000 * 10) / 10,
            p50: percentile(result.latencies, 50),
            p95: percentile(result.latencies, 95),
            p99: percentile(result.latencies, 99),
            max: percentile(result.latencies, 100),
            workerdCpuMsPerMessage: Math.round((cpu / Math.max(1, result.acks.length)) * 100) / 100,
            deferredCpuMsPerMessage: Math.round((deferred / Math.max(1, result.acks.length)) * 100) / 100,
            duplicatesAcked: result.acks.filter((a) => a.duplicate).length,
            verified: verdict.checked,
            lost,
            duplicated,
            problems: verdict.problems.slice(0, 10),
          };
          if (result.samples.length) f.problems.push(...result.samples.map((s) => `answer: ${s}`));
          machine({ ...f });
          figures.push(f);
        }
      }
      const ratio = ratioLine(n);
      if (ratio) machine({ ratio: true, ...ratio, targetP50: 1.5, met: ratio.p50 <= 1.5 });
    }

    // ------------------------------------------------------------ what costs what
    // The same light load (10 in flight) through ever more of Parley's path: each step's
    // extra latency and CPU is what that part of the ingest costs.
    interface Step {
      label: string;
      target: string;
      p50: number;
      p95: number;
      messagesPerSecond: number;
      cpuMsPerMessage: number;
      deferredCpuMsPerMessage: number;
    }
    const steps: Step[] = [];
    if (profile) {
      const [baseTarget, parleyTarget] = targets;
      if (!baseTarget || !parleyTarget) throw new Error("targets missing");
      const P_N = 10;
      const P_TOTAL = 400;
      const fresh = `p${Date.now().toString(36)}`;
      const variants: { label: string; target: Target; overrides: Partial<DriverConfig> }[] = [
        { label: "baseline: Hono + object appends a row", target: baseTarget, overrides: {} },
        { label: "parley: unknown channel → 404 (Worker, middleware, 1 D1 read: unknown ids are never cached)", target: parleyTarget, overrides: { channelId: `ch_${"a".repeat(26)}`, expectStatus: 404 } },
        { label: "parley: bad signature → 401 (cached channel, HMAC check, D1 re-read of the row, security-log D1 write)", target: parleyTarget, overrides: { secret: "whsec_not_the_secret", expectStatus: 401 } },
        { label: "parley: new message → 200 (cached channel, HMAC, schema, ids, object: seal, append, AI task, alarm run, D1 index)", target: parleyTarget, overrides: { runId: fresh } },
        { label: "parley: same messages again → 200 duplicate (cached channel, HMAC, schema, ids, object RPC, dedupe read)", target: parleyTarget, overrides: { runId: fresh } },
      ];
      for (const v of variants) {
        await waitIdle();
        const { result, cpu } = await runOnce(v.target, P_N, P_TOTAL, v.overrides);
        const deferred = await deferredCpu(v.target);
        const step: Step = {
          label: v.label,
          target: v.target.name,
          p50: percentile(result.latencies, 50),
          p95: percentile(result.latencies, 95),
          messagesPerSecond: Math.round((result.acks.length / result.wallMs) * 1000 * 10) / 10,
          cpuMsPerMessage: Math.round((cpu / Math.max(1, result.acks.length)) * 100) / 100,
          deferredCpuMsPerMessage: Math.round((deferred / Math.max(1, result.acks.length)) * 100) / 100,
        };
        steps.push(step);
        machine({ profile: true, n: P_N, messages: P_TOTAL, acked: result.acks.length, ...step });
      }
    }

    // ------------------------------------------------------------ human summary
    out("");
    out("target    N      round  msgs   msg/s    p50 ms   p95 ms   p99 ms   max ms   cpu ms/msg (+after)  retries  acked-stored-once");
    for (const f of figures) {
      out(
        `${f.target.padEnd(9)} ${String(f.n).padEnd(6)} ${String(f.round).padEnd(6)} ${String(f.messages).padEnd(6)} ${f.messagesPerSecond.toFixed(1).padStart(6)}  ${f.p50.toFixed(1).padStart(7)}  ${f.p95.toFixed(1).padStart(7)}  ${f.p99.toFixed(1).padStart(7)}  ${f.max.toFixed(0).padStart(7)}  ${f.workerdCpuMsPerMessage.toFixed(2).padStart(10)} (+${f.deferredCpuMsPerMessage.toFixed(2)})  ${String(f.retries).padStart(7)}  ${f.lost === 0 && f.duplicated === 0 && f.unacked === 0 ? "yes" : `NO (lost ${f.lost}, dup ${f.duplicated}, unacked ${f.unacked})`}`,
      );
    }
    out("");
    for (const n of levels) {
      const r = ratioLine(n);
      if (!r) continue;
      out(
        `N=${n}: Parley/baseline median p50 ${r.p50.toFixed(2)}× over ${r.rounds} round(s) (target ≤ 1.5×: ${r.p50 <= 1.5 ? "met" : "MISSED"}; per round ${r.perRoundP50.map((x) => `${x.toFixed(2)}×`).join(", ")}), p95 ${r.p95.toFixed(2)}×, p99 ${r.p99.toFixed(2)}×, throughput ${r.throughput.toFixed(2)}×`,
      );
    }
    for (const f of figures) for (const p of f.problems) out(`  ${f.target} N=${f.n}: ${p}`);
    if (steps.length) {
      out("");
      out("what costs what (10 in flight, 400 requests each; workerd CPU per request, + after the run until idle):");
      for (const st of steps) out(`  p50 ${st.p50.toFixed(1).padStart(7)} ms  p95 ${st.p95.toFixed(1).padStart(7)} ms  ${st.messagesPerSecond.toFixed(1).padStart(6)}/s  cpu ${st.cpuMsPerMessage.toFixed(2).padStart(6)} (+${st.deferredCpuMsPerMessage.toFixed(2)}) ms  ${st.label}`);
    }
    writeFileSync(resultsPath("webhook-load.json"), `${JSON.stringify({ at: new Date().toISOString(), node: process.version, levels, conversations, aiReplies: keepAi, viaProxy, devtools, rounds, figures, ratios: levels.map(ratioLine), profile: steps, benchSeconds: Math.round((Date.now() - benchStarted) / 1000) }, null, 2)}\n`);
    out(`results → ${resultsPath("webhook-load.json")} (${Math.round((Date.now() - benchStarted) / 1000)} s)`);
    const broken = figures.filter((f) => f.target === "parley" && (f.lost > 0 || f.duplicated > 0 || f.problems.some((p) => p.startsWith("mismatch") || p.startsWith("unexpected"))));
    if (broken.length) {
      process.stderr.write("acknowledged messages were lost or duplicated\n");
      process.exitCode = 1;
    }
  } finally {
    await Promise.all([parleyServer.dispose(), baselineServer.dispose()]);
  }
}

if (process.argv.includes("--driver")) {
  const config = JSON.parse(process.env.BENCH_DRIVER_CONFIG ?? "{}") as DriverConfig;
  const result = await driver(config);
  process.stdout.write(JSON.stringify(result));
} else {
  await main();
}
