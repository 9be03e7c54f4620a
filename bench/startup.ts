// Worker startup CPU time and bundle size.
//
//   npm run bench -- startup            (or: npx tsx bench/startup.ts)
//   BENCH_STARTUP_RUNS=5                how many times the startup phase is profiled (median reported)
//
// 1. `wrangler deploy --dry-run --outdir` builds the bundle exactly as a deploy would; its
//    JavaScript/Wasm modules are gzipped (level 9) and compared with the 1 MB target
//    (the platform limit is 3 MB gzipped on the free plan, 10 MB on paid).
// 2. `wrangler check startup` builds the same bundle, evaluates it in workerd and writes a
//    V8 CPU profile of the startup phase (module evaluation up to the first request). Startup
//    CPU = the profile's sampled time minus "(idle)" samples; compared with the 1 s platform
//    limit for startup. Measured locally: Cloudflare's CPUs differ, so read it as an order of
//    magnitude. The heaviest functions (self time) are listed.
//
// Prints `BENCH startup {json}` lines and a summary; writes bench/results/startup.json.
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { resultsPath } from "./lib-results";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");
const wrangler = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
const RUNS = Number(process.env.BENCH_STARTUP_RUNS ?? 5);
const STARTUP_LIMIT_MS = 1000;
const BUNDLE_TARGET_BYTES = 1024 * 1024;

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const out = (line: string) => process.stdout.write(`${line}\n`);
const env = { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_SEND_ERROR_REPORTS: "false", CI: "true", NO_COLOR: "1", CLOUDFLARE_CF_FETCH_ENABLED: "false" };

function wranglerRun(args: string[]): string {
  const result = spawnSync(process.execPath, [wrangler, ...args], { cwd: root, encoding: "utf8", env, timeout: 300_000 });
  if (result.status !== 0) throw new Error(`wrangler ${args.join(" ")} failed (${result.status}):\n${result.stdout}${result.stderr}`);
  return result.stdout + result.stderr;
}

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

/** Startup CPU (ms) of a profile: every sample that is not "(idle)"; and self time per function. */
function analyse(profile: CpuProfile): { cpuMs: number; wallMs: number; top: { fn: string; ms: number }[] } {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    const node = nodes.get(id);
    const name = node?.callFrame.functionName || "(anonymous)";
    if (name === "(idle)") return;
    busy += delta;
    const where = node?.callFrame.url ? ` ${node.callFrame.url.split("/").pop()}:${node.callFrame.lineNumber + 1}` : "";
    self.set(`${name}${where}`, (self.get(`${name}${where}`) ?? 0) + delta);
  });
  const top = [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
    .map(([fn, us]) => ({ fn, ms: Math.round(us / 100) / 10 }));
  return { cpuMs: Math.round(busy / 100) / 10, wallMs: Math.round((profile.endTime - profile.startTime) / 100) / 10, top };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[Math.floor((s.length - 1) / 2)] ?? 0) : 0;
};

const work = mkdtempSync(join(tmpdir(), "parley-startup-"));
try {
  // ---------------------------------------------------------------- bundle
  const outdir = join(work, "bundle");
  wranglerRun(["deploy", "--dry-run", "--outdir", outdir]);
  const modules = files(outdir).filter((f) => /\.(m?js|wasm)$/.test(f));
  let raw = 0;
  let gzipped = 0;
  for (const file of modules) {
    const bytes = readFileSync(file);
    raw += bytes.length;
    gzipped += gzipSync(bytes, { level: 9 }).length;
  }
  if (modules.length === 0) throw new Error(`no bundle in ${outdir}`);
  const bundle = { rawBytes: raw, gzippedBytes: gzipped, targetBytes: BUNDLE_TARGET_BYTES, shareOfTarget: Math.round((gzipped / BUNDLE_TARGET_BYTES) * 1000) / 1000 };
  out(`BENCH startup ${JSON.stringify({ bundle })}`);

  // ---------------------------------------------------------------- startup CPU
  const runs: ReturnType<typeof analyse>[] = [];
  for (let i = 0; i < RUNS; i++) {
    const outfile = join(work, `startup-${i}.cpuprofile`);
    // It builds the Worker itself (as `wrangler deploy` would); `--worker` wants a multipart
    // bundle from `wrangler deploy --outfile`, not the --outdir module.
    wranglerRun(["check", "startup", "--outfile", outfile]);
    const analysis = analyse(JSON.parse(readFileSync(outfile, "utf8")) as CpuProfile);
    runs.push(analysis);
    out(`BENCH startup ${JSON.stringify({ run: i + 1, cpuMs: analysis.cpuMs, profileWallMs: analysis.wallMs })}`);
  }
  const cpu = median(runs.map((r) => r.cpuMs));
  const worst = Math.max(...runs.map((r) => r.cpuMs));
  // The profiler samples on a wall clock: on a busy machine, time the thread was descheduled
  // lands on whatever function was running. The minimum is the least disturbed run.
  const best = Math.min(...runs.map((r) => r.cpuMs));
  const top = runs.find((r) => r.cpuMs === cpu)?.top ?? [];
  const summary = {
    startupCpuMsMedian: cpu,
    startupCpuMsMin: best,
    startupCpuMsMax: worst,
    limitMs: STARTUP_LIMIT_MS,
    shareOfLimit: Math.round((cpu / STARTUP_LIMIT_MS) * 1000) / 1000,
    runs: RUNS,
    bundle,
  };
  out(`BENCH startup ${JSON.stringify(summary)}`);

  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  out("");
  out(`bundle           ${kib(raw)} raw, ${kib(gzipped)} gzipped — ${(bundle.shareOfTarget * 100).toFixed(1)}% of the 1 MB target`);
  out(`startup CPU      ${cpu} ms median of ${RUNS} (min ${best}, max ${worst} ms) — ${(summary.shareOfLimit * 100).toFixed(1)}% of the 1 s limit (measured locally)`);
  out("heaviest at startup (self time, median run):");
  for (const t of top) out(`  ${t.ms.toFixed(1).padStart(6)} ms  ${t.fn}`);
  writeFileSync(resultsPath("startup.json"), `${JSON.stringify({ at: new Date().toISOString(), ...summary, top }, null, 2)}\n`);
  out(`results → ${resultsPath("startup.json")}`);
  if (worst > STARTUP_LIMIT_MS || gzipped > BUNDLE_TARGET_BYTES) process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
