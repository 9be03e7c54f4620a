/**
 * The README's bench commands keep working: `npm run bench -- <name>` for every bench in bench/,
 * each on tiny knobs (the figures of a run this small mean nothing; README's come from full runs).
 * Each bench still checks its own invariants and exits non-zero when they fail: acknowledged
 * messages stored exactly once (webhook-load), expired data deleted and held data kept
 * (retention). Results go to a temporary BENCH_RESULTS_DIR, so real results are left alone.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { PROJECT_ROOT } from "./harness.ts";

const results = mkdtempSync(join(tmpdir(), "parley-bench-smoke-"));

afterAll(() => {
  rmSync(results, { recursive: true, force: true });
});

const TINY: Record<string, string> = {
  BENCH_RESULTS_DIR: results,
  BENCH_MESSAGES: "100",
  BENCH_FILES: "2",
  BENCH_KEYS: "2",
  BENCH_ROUNDS: "1",
  BENCH_STARTUP_RUNS: "1",
  BENCH_RETENTION_SAMPLE: "20",
  BENCH_RETENTION_INDEX: "200",
  BENCH_RETENTION_BUDGET_S: "60",
  BENCH_LOAD_LEVELS: "5",
  BENCH_LOAD_MESSAGES: "10",
  BENCH_LOAD_CONVERSATIONS: "2",
  BENCH_LOAD_ROUNDS: "1",
  BENCH_LOAD_PROFILE: "0",
  BENCH_LOAD_IDLE_SECONDS: "1",
};

function npmRunBench(): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn("npm", ["run", "bench"], { cwd: PROJECT_ROOT, env: { ...process.env, ...TINY } });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("close", (code) => resolve({ code, output }));
  });
}

const json = (file: string): unknown => JSON.parse(readFileSync(join(results, file), "utf8"));

describe("npm run bench", () => {
  it("runs every bench end to end on tiny knobs, and each one's own checks pass", { timeout: 600_000 }, async () => {
    const { code, output } = await npmRunBench();
    expect(code, output.slice(-4000)).toBe(0);
    for (const name of ["encryption", "redaction", "retention", "startup", "webhook-load"]) expect(output).toContain(`=== bench/${name} ===`);
    expect(readdirSync(results).sort()).toEqual(["encryption.json", "redaction.json", "retention.json", "startup.json", "webhook-load.json"]);

    const load = json("webhook-load.json") as { figures: { target: string; acked: number; messages: number; lost: number; duplicated: number }[] };
    expect(load.figures.map((f) => f.target).sort()).toEqual(["baseline", "parley"]);
    for (const f of load.figures) expect({ acked: f.acked, lost: f.lost, duplicated: f.duplicated }).toEqual({ acked: f.messages, lost: 0, duplicated: 0 });
    expect((json("retention.json") as { ok: boolean }).ok).toBe(true);
    const redaction = json("redaction.json") as { suites: { results: { name: string; recall: number; factsKept: number }[] }[] };
    for (const suite of redaction.suites) {
      const parley = suite.results.find((r) => r.name === "parley");
      expect(parley?.recall).toBeGreaterThanOrEqual(0.99);
      expect(parley?.factsKept).toBeGreaterThanOrEqual(0.98);
    }
    expect((json("startup.json") as { startupCpuMsMedian: number }).startupCpuMsMedian).toBeGreaterThan(0);
  });
});
