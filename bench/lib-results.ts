// Where the benches write their JSON results: bench/results/, or BENCH_RESULTS_DIR (the smoke test
// in test/e2e/bench-smoke.test.ts points it at a temporary directory, leaving real results alone).
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The results directory (created if missing) and, with `file`, the path of that file in it. */
export function resultsPath(file = ""): string {
  const dir = process.env.BENCH_RESULTS_DIR || join(dirname(fileURLToPath(import.meta.url)), "results");
  mkdirSync(dir, { recursive: true });
  return file ? join(dir, file) : dir;
}
