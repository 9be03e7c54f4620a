// Retention sweep benchmark against a real `wrangler dev` on 127.0.0.1.
// Run with `npx tsx bench/retention.ts`. Writes bench/results/retention.json.
//
// 1. Real objects: SAMPLE conversations created through signed webhooks (one
//    Durable Object each, MESSAGES messages), swept at a scheduled time 25 months on.
// 2. Index only: INDEX_ONLY expired conversation index rows over TENANTS tenants,
//    plus 10% that are not expired, 100 under legal hold and 5% with attachment
//    rows (no R2 object), bulk-inserted with `wrangler d1 execute --local` while
//    wrangler dev is stopped. Their objects hold nothing, but the sweep still asks
//    each one (as it must: the object is the source of truth).
// 3. Idle: one cycle with nothing left to delete.
//
// Sweeps are triggered as the cron does, through
// /cdn-cgi/handler/scheduled?cron=*/15+*+*+*+*&time=<ms>, one run at a time,
// until the cycle is done. Per run: wall time (the request), CPU time of the
// workerd processes (which also run the local D1, R2 and Durable Object
// simulators: an upper bound for the Worker's own CPU), and the run's report
// (its "retention_sweep" log line). Ratios compare the worst run with the
// Workers limits for a cron invocation: 30 s CPU, 15 min wall.
//
// The index-only phase stops after BENCH_RETENTION_BUDGET_S seconds (default
// 330, so the whole bench stays near 10 minutes on a 2-core machine) and then
// projects the runs still needed; BENCH_RETENTION_BUDGET_S=0 sweeps to the end.
import { existsSync, statfsSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { parleySignature } from "../lib/signatures";
import { cpuMs, createBenchServer, jsonCount, LogTail, percentile, workerdPids, type BenchServer } from "./lib-wrangler";
import { resultsPath } from "./lib-results";

const here = dirname(fileURLToPath(import.meta.url));
const SAMPLE = Number(process.env.BENCH_RETENTION_SAMPLE ?? 1000);
const MESSAGES = Number(process.env.BENCH_RETENTION_MESSAGES ?? 2);
const INDEX_ONLY = Number(process.env.BENCH_RETENTION_INDEX ?? 100_000);
const BUDGET_S = Number(process.env.BENCH_RETENTION_BUDGET_S ?? 330);
const TENANTS = 20;
const HELD = 100;
/** Every HELD_STEP-th index-only conversation is on legal hold: HELD of them whenever INDEX_ONLY ≥ HELD. */
const HELD_STEP = Math.max(1, Math.floor(INDEX_ONLY / HELD));
const CRON = "*/15 * * * *";
const CRON_CPU_LIMIT_MS = 30_000;
const CRON_WALL_LIMIT_MS = 15 * 60_000;
const RUNS_PER_DAY = 96; // every 15 minutes
const DAY_MS = 86_400_000;
const MONTH_MS = 30.4375 * DAY_MS;
const CONVERSATION_DAYS = 731; // conversation_logs default
const MAX_RUNS = 5000;
const RUN_TIMEOUT_MS = 120_000;

const reportSchema = z.object({
  deleted: z.object({ conversations: z.number(), messages: z.number(), attachments: z.number() }).loose(),
  skippedHeld: z.object({ conversations: z.number() }).loose(),
  skippedActive: z.number(),
  failed: z.number(),
  done: z.boolean(),
  locked: z.boolean(),
  steps: z.number(),
  subrequests: z.number(),
  elapsedMs: z.number(),
});
type SweepReport = z.infer<typeof reportSchema>;

interface RunSample {
  wallMs: number;
  cpuMs: number;
  report: SweepReport;
}

interface PhaseResult {
  samples: RunSample[];
  done: boolean;
  /** Triggers wrangler dev accepted but never delivered (retried; see lib-wrangler.ts). */
  lostTriggers: number;
}

function log(message: string): void {
  process.stdout.write(`${message}\n`);
}

async function callJson(server: BenchServer, method: string, path: string, key: string, body: unknown): Promise<Record<string, unknown>> {
  const res = await fetch(server.baseUrl + path, { method, headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body: JSON.stringify(body) });
  const parsed = z.record(z.string(), z.unknown()).parse(await res.json());
  if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${JSON.stringify(parsed)}`);
  return parsed;
}

/** Triggers sweeps at `now`, one after another, until a cycle is done (or the budget is spent). */
async function sweep(server: BenchServer, tail: LogTail, now: number, label: string, budgetMs = 0): Promise<PhaseResult> {
  const pids = await workerdPids(server.port);
  const samples: RunSample[] = [];
  const started = Date.now();
  let lostTriggers = 0;
  while (samples.length < MAX_RUNS) {
    if (budgetMs > 0 && Date.now() - started >= budgetMs) return { samples, done: false, lostTriggers };
    const cpuBefore = await cpuMs(pids);
    const t0 = performance.now();
    let res: Response;
    try {
      res = await fetch(`${server.baseUrl}/cdn-cgi/handler/scheduled?cron=${CRON.replace(/ /g, "+")}&time=${now}`, { signal: AbortSignal.timeout(RUN_TIMEOUT_MS) });
    } catch (err) {
      // A trigger wrangler dev lost before the Worker saw it: nothing ran (no report); trigger again.
      if ((await tail.next()).length > 0) throw new Error(`${label}: a run reported but its trigger failed (${String(err)})`);
      lostTriggers += 1;
      if (lostTriggers > 5) throw err;
      continue;
    }
    const body = await res.text();
    const wallMs = performance.now() - t0;
    const cpu = (await cpuMs(pids)) - cpuBefore;
    if (res.status !== 200) throw new Error(`scheduled run failed: ${res.status} ${body}; see ${server.logFile}`);
    let lines: Record<string, unknown>[] = [];
    for (let wait = 0; wait < 250 && lines.length === 0; wait++) {
      lines = await tail.next();
      if (lines.length === 0) await new Promise((r) => setTimeout(r, 20));
    }
    if (lines.length !== 1) throw new Error(`${label}: expected one sweep report, got ${lines.length}`);
    const report = reportSchema.parse(lines[0]);
    if (report.locked) throw new Error(`${label}: run refused by the lease (another run was still going)`);
    samples.push({ wallMs, cpuMs: cpu, report });
    if (samples.length % 25 === 0) {
      const deleted = samples.reduce((n, s) => n + s.report.deleted.conversations, 0);
      log(`  ${label}: ${samples.length} runs, ${deleted} conversations deleted, ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
    if (report.done) return { samples, done: true, lostTriggers };
  }
  throw new Error(`${label}: no finished cycle after ${MAX_RUNS} runs`);
}

function summarize(phase: PhaseResult, target: number | null) {
  const { samples } = phase;
  const deleted = samples.reduce((n, s) => n + s.report.deleted.conversations, 0);
  const wallTotal = samples.reduce((n, s) => n + s.wallMs, 0);
  const cpuTotal = samples.reduce((n, s) => n + s.cpuMs, 0);
  const walls = samples.map((s) => s.wallMs);
  const cpus = samples.map((s) => s.cpuMs);
  const perRun = samples.filter((s) => s.report.deleted.conversations > 0).map((s) => s.report.deleted.conversations);
  const batchesOf50 = deleted / 50;
  const worstWall = walls.length ? Math.max(...walls) : 0;
  const worstCpu = cpus.length ? Math.max(...cpus) : 0;
  const medianPerRun = percentile(perRun, 50);
  const remaining = target === null ? 0 : Math.max(0, target - deleted);
  return {
    done: phase.done,
    runs: samples.length,
    conversationsDeleted: deleted,
    ...(target === null ? {} : { target, remaining, projectedRunsToFinish: phase.done ? samples.length : samples.length + (medianPerRun > 0 ? Math.ceil(remaining / medianPerRun) : 0) }),
    messagesDeleted: samples.reduce((n, s) => n + s.report.deleted.messages, 0),
    attachmentsDeleted: samples.reduce((n, s) => n + s.report.deleted.attachments, 0),
    skippedHeld: samples.reduce((n, s) => n + s.report.skippedHeld.conversations, 0),
    skippedActive: samples.reduce((n, s) => n + s.report.skippedActive, 0),
    failed: samples.reduce((n, s) => n + s.report.failed, 0),
    lostTriggers: phase.lostTriggers,
    deletionsPerSecond: wallTotal > 0 ? Math.round((deleted / wallTotal) * 1000 * 10) / 10 : 0,
    conversationsPerRun: { median: medianPerRun, max: perRun.length ? Math.max(...perRun) : 0 },
    subrequestsPerRun: { median: percentile(samples.map((s) => s.report.subrequests), 50), max: samples.length ? Math.max(...samples.map((s) => s.report.subrequests)) : 0 },
    wallMsPerRun: { p50: Math.round(percentile(walls, 50)), p95: Math.round(percentile(walls, 95)), max: Math.round(worstWall) },
    cpuMsPerRun: { p50: percentile(cpus, 50), p95: percentile(cpus, 95), max: worstCpu },
    perBatchOf50: batchesOf50 > 0 ? { wallMs: Math.round(wallTotal / batchesOf50), cpuMs: Math.round(cpuTotal / batchesOf50) } : null,
    totalWallMs: Math.round(wallTotal),
    totalCpuMs: cpuTotal,
    worstRunVsCronLimits: {
      cpuRatio: Math.round((worstCpu / CRON_CPU_LIMIT_MS) * 10_000) / 10_000,
      wallRatio: Math.round((worstWall / CRON_WALL_LIMIT_MS) * 100_000) / 100_000,
    },
  };
}
type Summary = ReturnType<typeof summarize>;

/** SQL for the index-only data set: tenants, conversation index rows, holds, attachment rows (no R2 objects). */
function seedSql(now: number): string {
  const expiredFrom = Math.round(now - 25 * MONTH_MS);
  const live = Math.round(INDEX_ONLY / 10);
  return `
INSERT INTO tenants (id, name, slug, status, plan_status, default_country, hash_key, created_at)
  WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < ${TENANTS - 1})
  SELECT printf('ten_bench%02d', n), 'Bench tenant ' || n, 'bench-tenant-' || n, 'active', 'none', 'IT', 'not-read-by-the-sweep', ${expiredFrom - 365 * DAY_MS} FROM s;
INSERT INTO conversations (id, tenant_id, channel_id, subject_hash, status, created_at, last_activity_at, message_count, version, special_category)
  WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < ${INDEX_ONLY - 1})
  SELECT printf('conv_bench%07d', n), printf('ten_bench%02d', n % ${TENANTS}), 'ch_bench', lower(hex(randomblob(32))), 'closed',
         ${expiredFrom} - (n % 330) * ${DAY_MS} - ${DAY_MS}, ${expiredFrom} - (n % 330) * ${DAY_MS}, 4, 1, CASE WHEN n % 50 = 0 THEN 1 ELSE 0 END FROM s;
INSERT INTO conversations (id, tenant_id, channel_id, subject_hash, status, created_at, last_activity_at, message_count, version, special_category)
  WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < ${live - 1})
  SELECT printf('conv_benchlive%07d', n), printf('ten_bench%02d', n % ${TENANTS}), 'ch_bench', lower(hex(randomblob(32))), 'open',
         ${now} - (1 + n % 600) * ${DAY_MS}, ${now} - (1 + n % 600) * ${DAY_MS}, 4, 1, 0 FROM s;
INSERT INTO legal_holds (id, tenant_id, scope, target, reason, created_at, created_by)
  SELECT 'hold_bench' || id, tenant_id, 'conversation', id, 'bench hold', ${now - DAY_MS}, NULL FROM conversations
  WHERE id LIKE 'conv_bench0%' AND CAST(substr(id, 11) AS INTEGER) % ${HELD_STEP} = ${HELD_STEP - 1};
INSERT INTO attachments (id, tenant_id, conversation_id, subject_hash, category, r2_key, content_type, size, key_id, created_at)
  SELECT 'att_' || id, tenant_id, id, subject_hash, 'attachment', 'bench/' || id, 'image/png', 1024, 'sk_bench', created_at FROM conversations
  WHERE id LIKE 'conv_bench0%' AND CAST(substr(id, 11) AS INTEGER) % 20 = 3;
`;
}

/** Where the bench's wrangler state lives: tmpfs when there is room (local SQLite files are fsync-bound on disk), else the OS temp dir. */
function stateRoot(): { root: string | undefined; storage: string } {
  if (process.env.BENCH_RETENTION_TMP) return { root: process.env.BENCH_RETENTION_TMP, storage: process.env.BENCH_RETENTION_TMP };
  try {
    if (existsSync("/dev/shm")) {
      const fs = statfsSync("/dev/shm");
      if (fs.bavail * fs.bsize > 12 * 1024 ** 3) return { root: "/dev/shm", storage: "tmpfs (/dev/shm)" };
    }
  } catch {
    // fall through
  }
  return { root: undefined, storage: "OS temp dir" };
}

function line(name: string, s: Summary): string {
  const progress = s.done ? "" : ` (partial: ${s.conversationsDeleted} of ${"target" in s ? s.target : "?"}, ~${"projectedRunsToFinish" in s ? s.projectedRunsToFinish : "?"} runs to finish)`;
  return (
    `${name.padEnd(12)}: ${String(s.conversationsDeleted).padStart(6)} deleted in ${String(s.runs).padStart(4)} runs${progress}, ${s.deletionsPerSecond} deletions/s; ` +
    `per run: ${s.conversationsPerRun.median} conversations, ${s.subrequestsPerRun.max} subrequests max, wall p50 ${s.wallMsPerRun.p50} ms / max ${s.wallMsPerRun.max} ms ` +
    `(${s.worstRunVsCronLimits.wallRatio} of 15 min), CPU p50 ${s.cpuMsPerRun.p50} ms / max ${s.cpuMsPerRun.max} ms (${s.worstRunVsCronLimits.cpuRatio} of 30 s)` +
    (s.perBatchOf50 ? `; per batch of 50: ${s.perBatchOf50.wallMs} ms wall, ${s.perBatchOf50.cpuMs} ms CPU` : "")
  );
}

async function main(): Promise<void> {
  const benchStarted = Date.now();
  const { root, storage } = stateRoot();
  log(`retention bench: ${SAMPLE} conversations with real objects; ${INDEX_ONLY} index-only expired conversations over ${TENANTS} tenants; state on ${storage}`);
  const server = await createBenchServer(root);
  const tail = new LogTail(server.logFile, "retention_sweep");
  try {
    await server.start();
    // ------------------------------------------------ 1. real conversation objects
    const tenant = await callJson(server, "POST", "/v1/tenants", server.platformKey, { name: "Bench Shop", slug: `bench-${Date.now().toString(36)}` });
    const ownerKey = z.object({ apiKey: z.object({ key: z.string() }) }).parse(tenant).apiKey.key;
    await callJson(server, "PATCH", "/v1/settings", ownerKey, { ai: { replies: false } });
    const channel = z
      .object({ id: z.string(), generatedSecrets: z.object({ signingSecret: z.string() }) })
      .parse(await callJson(server, "POST", "/v1/channels", ownerKey, { type: "custom", name: "bench", config: {} }));
    const t0 = performance.now();
    let next = 0;
    const post = async () => {
      for (;;) {
        const i = next++;
        if (i >= SAMPLE) return;
        for (let m = 0; m < MESSAGES; m++) {
          const body = JSON.stringify({ type: "message", id: `bench-${i}-${m}`, from: `+39347${String(i).padStart(7, "0")}`, text: `Order ${1000 + i}: where is my parcel? (${m})` });
          const res = await fetch(`${server.baseUrl}/webhooks/custom/${channel.id}`, {
            method: "POST",
            headers: { "content-type": "application/json", "x-parley-signature": await parleySignature(channel.generatedSecrets.signingSecret, body, Math.floor(Date.now() / 1000)) },
            body,
          });
          if (res.status !== 200) throw new Error(`webhook ${res.status}: ${await res.text()}`);
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, post));
    log(`  created ${SAMPLE} conversations (${SAMPLE * MESSAGES} messages) through webhooks in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await new Promise((r) => setTimeout(r, 3000)); // the objects' alarms (AI decisions, here skipped) settle

    const now = Date.now() + 25 * MONTH_MS;
    log("phase 1: conversations with real objects");
    const real = summarize(await sweep(server, tail, now, "real objects"), SAMPLE);
    log(`  ${line("real objects", real)}`);

    // ------------------------------------------------ 2. index-only rows, bulk seeded while stopped
    await server.stop();
    const seedFile = join(dirname(server.persistDir), "retention-seed.sql");
    await writeFile(seedFile, seedSql(now));
    const s0 = performance.now();
    await server.d1({ file: seedFile });
    log(`  seeded ${INDEX_ONLY} expired + ${INDEX_ONLY / 10} live index rows in ${((performance.now() - s0) / 1000).toFixed(1)} s`);
    await server.start();
    log(`phase 2: index-only conversations${BUDGET_S > 0 ? ` (budget ${BUDGET_S} s)` : ""}`);
    const expectedDeletions = INDEX_ONLY - HELD;
    const indexOnly = summarize(await sweep(server, tail, now, "index only", BUDGET_S * 1000), expectedDeletions);
    log(`  ${line("index only", indexOnly)}`);

    // ------------------------------------------------ 3. a cycle with nothing (or, if partial, the rest) to do
    const idle = indexOnly.done ? summarize(await sweep(server, tail, now, "idle"), null) : null;

    // ------------------------------------------------ checks (on the stopped instance's database)
    await server.stop();
    const count = async (sql: string) => jsonCount(await server.d1({ command: sql }));
    const checks = {
      expiredLeft: await count(`SELECT COUNT(*) AS n FROM conversations WHERE last_activity_at <= ${Math.round(now - CONVERSATION_DAYS * DAY_MS)}`),
      heldLeft: await count("SELECT COUNT(*) AS n FROM conversations c JOIN legal_holds h ON h.target = c.id AND h.scope = 'conversation'"),
      liveLeft: await count("SELECT COUNT(*) AS n FROM conversations WHERE id LIKE 'conv_benchlive%'"),
      conversationLogEntries: await count("SELECT COUNT(*) AS n FROM deletion_log WHERE target_type = 'conversation'"),
      distinctConversationLogEntries: await count("SELECT COUNT(DISTINCT target_id) AS n FROM deletion_log WHERE target_type = 'conversation'"),
    };
    const deletedTotal = real.conversationsDeleted + indexOnly.conversationsDeleted;
    const ok =
      checks.heldLeft === HELD &&
      checks.liveLeft === INDEX_ONLY / 10 &&
      checks.conversationLogEntries === deletedTotal &&
      checks.distinctConversationLogEntries === deletedTotal &&
      checks.expiredLeft === INDEX_ONLY - indexOnly.conversationsDeleted &&
      (!indexOnly.done || checks.expiredLeft === HELD);
    log(`  checks: ${JSON.stringify(checks)} → ${ok ? "ok" : "FAILED"}`);

    const perDay = (s: Summary) => s.conversationsPerRun.median * RUNS_PER_DAY;
    const results = {
      generatedAt: new Date().toISOString(),
      environment: {
        node: process.version,
        platform: `${process.platform}/${process.arch}`,
        state: storage,
        note: "local wrangler dev (workerd, with Miniflare's D1, R2 and Durable Object simulators on the same machine). CPU is that of the workerd processes: an upper bound for the Worker's own CPU. wrangler.toml without [assets] (see bench/lib-wrangler.ts).",
      },
      config: { sample: SAMPLE, messagesPerConversation: MESSAGES, indexOnly: INDEX_ONLY, tenants: TENANTS, held: HELD, indexBudgetSeconds: BUDGET_S, scheduledTime: new Date(now).toISOString(), cron: CRON },
      limits: { cronCpuMs: CRON_CPU_LIMIT_MS, cronWallMs: CRON_WALL_LIMIT_MS },
      realObjects: real,
      indexOnly,
      idleCycle: idle,
      projection: {
        conversationsPerDayAtDefaults: perDay(indexOnly),
        daysFor100kBacklog: Math.round((100_000 / Math.max(1, perDay(indexOnly))) * 10) / 10,
        note: "one run every 15 minutes, each bounded by SWEEP_DEFAULTS (900 subrequests, 45 s wall)",
      },
      checks,
      ok,
      benchSeconds: Math.round((Date.now() - benchStarted) / 1000),
    };
    writeFileSync(resultsPath("retention.json"), `${JSON.stringify(results, null, 2)}\n`);
    log("");
    log(line("real objects", real));
    log(line("index only", indexOnly));
    if (idle) log(line("idle cycle", idle));
    log(`projection at the defaults: ${results.projection.conversationsPerDayAtDefaults} conversations/day per deployment (${results.projection.daysFor100kBacklog} days for a 100k backlog)`);
    log(`results → ${resultsPath("retention.json")} (${results.benchSeconds} s)`);
    if (!ok) process.exitCode = 1;
  } finally {
    await server.dispose();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
