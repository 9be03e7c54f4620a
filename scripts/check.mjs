#!/usr/bin/env node
/**
 * `npm run check`: type-checks everything, verifies worker-configuration.d.ts is
 * current, builds the deployable bundle with `wrangler deploy --dry-run`, and
 * prints its gzipped size against the 1 MB target (the platform limit is 3 MB on
 * the free plan, 10 MB on paid).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const BUNDLE_TARGET_BYTES = 1024 * 1024;

function run(label, command, args) {
  const started = Date.now();
  const result = spawnSync(command, args, { cwd: root, encoding: "utf8", env: { ...process.env, WRANGLER_SEND_METRICS: "false" } });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (result.status !== 0) {
    process.stderr.write(`✗ ${label} (${seconds}s)\n${result.stdout}${result.stderr}\n`);
    process.exit(1);
  }
  process.stdout.write(`✓ ${label} (${seconds}s)\n`);
  return result.stdout;
}

function files(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? files(path) : [path];
  });
}

const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
const wrangler = join(root, "node_modules", "wrangler", "bin", "wrangler.js");
run("tsc (workers, durable objects, lib, in-workerd tests)", process.execPath, [tsc, "--noEmit", "-p", "tsconfig.json"]);
run("tsc (node: e2e tests, benches, scripts)", process.execPath, [tsc, "--noEmit", "-p", "tsconfig.node.json"]);
run("worker-configuration.d.ts is up to date", process.execPath, [wrangler, "types", "--check", "--strict-vars=false", "--env-file", ".dev.vars.example"]);
const outdir = mkdtempSync(join(tmpdir(), "parley-bundle-"));
try {
  run("wrangler deploy --dry-run", process.execPath, [wrangler, "deploy", "--dry-run", "--outdir", outdir]);
  let raw = 0;
  let gzipped = 0;
  for (const file of files(outdir).filter((f) => /\.(m?js|wasm)$/.test(f))) {
    const bytes = readFileSync(file);
    raw += bytes.length;
    gzipped += gzipSync(bytes, { level: 9 }).length;
  }
  const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
  const ratio = ((gzipped / BUNDLE_TARGET_BYTES) * 100).toFixed(1);
  process.stdout.write(`bundle: ${kib(raw)} raw, ${kib(gzipped)} gzipped (${ratio}% of the 1 MB target)\n`);
  if (gzipped > BUNDLE_TARGET_BYTES) {
    process.stderr.write("✗ gzipped bundle exceeds the 1 MB target\n");
    process.exit(1);
  }
} finally {
  rmSync(outdir, { recursive: true, force: true });
}
