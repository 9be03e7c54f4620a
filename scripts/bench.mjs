#!/usr/bin/env node
/**
 * `npm run bench [name…]`: runs the benchmark scripts in bench/ (all of them, or
 * those named), each printing its numbers and ratios against a baseline
 * measured in the same run. Results are also written to bench/results/.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const wanted = process.argv.slice(2);
const benches = readdirSync(join(root, "bench"))
  .filter((f) => /^[a-z0-9-]+\.ts$/.test(f) && !f.endsWith("-corpus.ts") && !f.startsWith("lib-"))
  .map((f) => f.replace(/\.ts$/, ""))
  .filter((name) => wanted.length === 0 || wanted.includes(name));
if (benches.length === 0) {
  process.stderr.write(`no bench matches ${wanted.join(", ")}\n`);
  process.exit(1);
}
let failed = 0;
for (const name of benches) {
  process.stdout.write(`\n=== bench/${name} ===\n`);
  const result = spawnSync(process.execPath, [join(root, "node_modules", "tsx", "dist", "cli.mjs"), join(root, "bench", `${name}.ts`)], { cwd: root, stdio: "inherit" });
  if (result.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
