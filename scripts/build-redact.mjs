#!/usr/bin/env node
/**
 * Builds the redactor for Node consumers: `import { redact } from "parley/redact"`.
 * dist/redact/index.mjs (ES module, libphonenumber-js bundled) and .d.ts types.
 * Runs on `npm pack` (prepack) and in `npm run check`.
 */
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "dist", "redact");
rmSync(out, { recursive: true, force: true });
await build({
  entryPoints: [join(root, "lib", "redact", "index.ts")],
  outfile: join(out, "index.mjs"),
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2022",
  mainFields: ["module", "main"],
  logLevel: "warning",
});
const tsc = spawnSync(process.execPath, [join(root, "node_modules", "typescript", "bin", "tsc"), "-p", join(root, "tsconfig.redact.json")], { encoding: "utf8" });
if (tsc.status !== 0) {
  process.stderr.write(tsc.stdout + tsc.stderr);
  process.exit(1);
}
process.stdout.write("built dist/redact (index.mjs, index.d.ts)\n");
