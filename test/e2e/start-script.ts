/** Runs `scripts/start.mjs` (what `npm start` runs) as a child process for the e2e tests. */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { PROJECT_ROOT } from "./harness.ts";

export interface StartedScript {
  /** Everything the script printed so far. */
  output: string;
  /** Stops the script and its wrangler dev (whole process group). */
  stop: () => void;
}

/**
 * Starts the script on `port` with its state and .dev.vars under `workDir`.
 * Resolves once the demo tenant is seeded: when the process exits 0
 * (`exitAfterSeed`), or when it prints "Press Ctrl+C to stop." (keeps running).
 */
export function runStartScript(port: number, workDir: string, exitAfterSeed: boolean, timeoutMs = 150_000): Promise<StartedScript> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, "scripts", "start.mjs")], {
      cwd: PROJECT_ROOT,
      env: {
        ...process.env,
        PORT: String(port),
        PARLEY_STATE_DIR: join(workDir, "state"),
        PARLEY_DEV_VARS: join(workDir, "vars", ".dev.vars"),
        PARLEY_EXIT_AFTER_SEED: exitAfterSeed ? "1" : "0",
      },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    const started: StartedScript = {
      output: "",
      stop: () => {
        try {
          process.kill(-(child.pid ?? 0), "SIGTERM");
        } catch {
          // already gone
        }
      },
    };
    const timer = setTimeout(() => {
      started.stop();
      reject(new Error(`npm start did not finish seeding in ${timeoutMs} ms:\n${started.output}`));
    }, timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => {
      started.output += chunk.toString();
      if (!exitAfterSeed && started.output.includes("Press Ctrl+C to stop.")) {
        clearTimeout(timer);
        resolveRun(started);
      }
    });
    child.stderr.on("data", (chunk: Buffer) => {
      started.output += chunk.toString();
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (exitAfterSeed && code === 0) resolveRun(started);
      else reject(new Error(`npm start exited ${code}:\n${started.output}`));
    });
  });
}

/** A `Label:   value` field from the script's summary. */
export const printedField = (output: string, label: string): string => new RegExp(`${label}:\\s+(\\S+)`).exec(output)?.[1] ?? "";
