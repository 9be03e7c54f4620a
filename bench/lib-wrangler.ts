/**
 * Bench helpers: a `wrangler dev` on 127.0.0.1 whose scheduled() handler can
 * be triggered, local D1 seeding with `wrangler d1 execute`, the workerd
 * process's CPU time, and the Worker's structured log lines.
 *
 * Why not test/e2e/harness.ts's startParley: with wrangler 4.86, Miniflare
 * routes `/cdn-cgi/handler/scheduled` through its static-assets RPC proxy,
 * which cannot forward scheduled events, so every trigger answers 500
 * "exception" without reaching the Worker (cloudflare/workers-sdk#9882). The
 * bench therefore runs a snapshot of the project whose wrangler.toml has no
 * `[assets]` table (the Worker never reads its ASSETS binding), and can stop,
 * seed and restart it on the same persistence directory.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { cp, mkdir, mkdtemp, open, readdir, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, PROJECT_ROOT, sleep, wranglerEnv } from "../test/e2e/harness";

const WRANGLER_BIN = join(PROJECT_ROOT, "node_modules", "wrangler", "bin", "wrangler.js");
/** `wrangler dev` without the DevTools inspector (see the file's header for why). */
const DEV_SERVER = join(PROJECT_ROOT, "bench", "dev-server.mjs");

/** How a bench server runs its Worker. */
export interface DevServerOptions {
  /**
   * true (default): the `wrangler dev` CLI, with its DevTools inspector attached. false: the same
   * Worker through wrangler's API with the inspector off (bench/dev-server.mjs), as in production,
   * where no inspector serialises each subrequest.
   */
  devtools?: boolean;
}

/** Command-line arguments that start a Worker on 127.0.0.1:`port` with `persistDir`. */
function devServerArgs(options: DevServerOptions, port: number, persistDir: string, envFile?: string): string[] {
  const env = envFile ? ["--env-file", envFile] : [];
  if (options.devtools === false) return [DEV_SERVER, "--port", String(port), "--ip", "127.0.0.1", "--persist-to", persistDir, ...env];
  return [WRANGLER_BIN, "dev", "--port", String(port), "--ip", "127.0.0.1", "--persist-to", persistDir, ...env, "--inspector-port", "0", "--show-interactive-dev-session=false", "--live-reload=false"];
}
const SNAPSHOT_EXCLUDED = new Set([".git", ".wrangler", "node_modules", ".parley", "test", "test-artifacts", "bench", ".ci", "dist"]);

/** wrangler.toml without its `[assets]` table. */
export function withoutAssets(toml: string): string {
  const out: string[] = [];
  let skipping = false;
  for (const line of toml.split("\n")) {
    if (/^\s*\[/.test(line)) skipping = /^\s*\[assets\]\s*$/.test(line);
    if (!skipping) out.push(line);
  }
  return out.join("\n");
}

function run(cwd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRANGLER_BIN, ...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")));
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
      reject(new Error(`wrangler ${args.slice(0, 3).join(" ")} timed out:\n${out}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`wrangler ${args.slice(0, 3).join(" ")} exited ${code}:\n${out}`));
    });
  });
}

/** A wrangler dev instance the bench controls. */
export interface BenchServer {
  readonly baseUrl: string;
  readonly port: number;
  readonly platformKey: string;
  readonly persistDir: string;
  /** File that receives everything wrangler dev prints (across restarts). */
  readonly logFile: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** `wrangler d1 execute DB --local` on the instance's database: a SQL file, or a query answered as JSON. */
  d1(what: { file: string } | { command: string }): Promise<string>;
  /** Stops the server and removes its directory. */
  dispose(): Promise<void>;
}

/**
 * Prepares a snapshot (migrations applied) and a server that is not started yet, under `root`
 * (default: the OS temp dir); `vars` are added to its env file (e.g. RATE_LIMITS_ENABLED).
 */
export async function createBenchServer(root = tmpdir(), vars: Record<string, string> = {}, options: DevServerOptions = {}): Promise<BenchServer> {
  const workDir = await mkdtemp(join(root, "parley-bench-"));
  const appDir = join(workDir, "app");
  const persistDir = join(workDir, "state");
  const logDir = join(workDir, "wrangler-logs");
  const logFile = join(workDir, "wrangler-dev.log");
  await mkdir(appDir, { recursive: true });
  await mkdir(logDir, { recursive: true });
  for (const entry of await readdir(PROJECT_ROOT)) {
    if (SNAPSHOT_EXCLUDED.has(entry) || entry.startsWith(".dev.vars") || entry.startsWith(".env")) continue;
    await cp(join(PROJECT_ROOT, entry), join(appDir, entry), { recursive: true });
  }
  await symlink(join(PROJECT_ROOT, "node_modules"), join(appDir, "node_modules"), "dir");
  await writeFile(join(appDir, "wrangler.toml"), withoutAssets(await readFile(join(PROJECT_ROOT, "wrangler.toml"), "utf8")));
  // wrangler appends every debug message (one per inspector network event: several per D1 or
  // Durable Object call) to its log file; pointing it at /dev/null keeps that I/O out of the figures.
  const debugLog = join(logDir, "wrangler-debug.log");
  await symlink("/dev/null", debugLog);
  const env = wranglerEnv(process.env.PARLEY_BENCH_DEBUG_LOG ? logDir : debugLog);
  await run(appDir, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir], env, 120_000);
  const platformKey = `bench-platform-${randomBytes(24).toString("hex")}`;
  const envFile = join(workDir, "bench.env");
  const values: Record<string, string> = {
    MASTER_KEY: randomBytes(32).toString("base64"),
    PLATFORM_ADMIN_KEY: platformKey,
    OPENAI_API_KEY: "",
    STRIPE_SECRET_KEY: "",
    STRIPE_WEBHOOK_SECRET: "",
    ALLOW_INSECURE_CALLBACKS: "true",
    PUBLIC_BASE_URL: "",
    ...vars,
  };
  await writeFile(envFile, `${Object.entries(values).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join("\n")}\n`, { mode: 0o600 });
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  let child: ChildProcess | null = null;
  let log: WriteStream | null = null;

  const stop = async () => {
    const proc = child;
    child = null;
    if (proc) await stopGroup(proc);
  };

  return {
    baseUrl,
    port,
    platformKey,
    persistDir,
    logFile,
    async start() {
      log ??= createWriteStream(logFile, { flags: "a" });
      const stream = log;
      const proc = spawnDevServer(devServerArgs(options, port, persistDir, envFile), appDir, env, stream);
      child = proc;
      const health = await untilHealthy(proc, `${baseUrl}/health`);
      if (health === "exited") throw new Error(`wrangler dev exited (${proc.exitCode}); see ${logFile}`);
      if (health === "timeout") {
        await stop();
        throw new Error(`wrangler dev not healthy after 90 s; see ${logFile}`);
      }
    },
    stop,
    d1(what) {
      const args = ["d1", "execute", "DB", "--local", "--persist-to", persistDir, "--yes", ...("file" in what ? ["--file", what.file] : ["--command", what.command, "--json"])];
      return run(appDir, args, env, 600_000);
    },
    async dispose() {
      await stop();
      const stream = log;
      log = null;
      if (stream) await new Promise<void>((resolve) => stream.end(() => resolve()));
      if (!process.env.PARLEY_BENCH_KEEP) await rm(workDir, { recursive: true, force: true });
    },
  };
}

/** First number in a `wrangler d1 execute --json` answer for `SELECT … AS n`. */
export function jsonCount(output: string): number {
  const match = /"n":\s*(\d+)/.exec(output);
  if (!match?.[1]) throw new Error(`no count in:\n${output}`);
  return Number(match[1]);
}

async function procStat(pid: number): Promise<string[] | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    return [String(pid), stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")), ...stat.slice(stat.lastIndexOf(")") + 2).split(" ")];
  } catch {
    return null;
  }
}

/** Pid of the process listening on 127.0.0.1:`port` (from /proc/net/tcp and the fd links), or null. */
export async function listenerPid(port: number): Promise<number | null> {
  const table = await readFile("/proc/net/tcp", "utf8");
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  const inodes = new Set<string>();
  for (const line of table.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols[1]?.endsWith(`:${hexPort}`) && cols[3] === "0A" && cols[9]) inodes.add(cols[9]);
  }
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let fds: string[];
    try {
      fds = await readdir(`/proc/${entry}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = await readlink(`/proc/${entry}/fd/${fd}`);
        const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
        if (inode && inodes.has(inode)) return Number(entry);
      } catch {
        // fd closed meanwhile
      }
    }
  }
  return null;
}

/** The workerd processes of the process group that serves `port` (wrangler dev runs one workerd per Miniflare instance). */
export async function workerdPids(port: number): Promise<number[]> {
  const owner = await listenerPid(port);
  if (owner === null) throw new Error(`nothing listens on 127.0.0.1:${port}`);
  const ownerStat = await procStat(owner);
  const group = ownerStat?.[4];
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await procStat(Number(entry));
    if (stat && stat[4] === group && stat[1]?.startsWith("workerd")) pids.push(Number(entry));
  }
  return pids.length > 0 ? pids : [owner];
}

const CLOCK_TICK_MS = 10; // USER_HZ is 100 on Linux

/** User + system CPU time (ms) consumed so far by the given processes. */
export async function cpuMs(pids: readonly number[]): Promise<number> {
  let ticks = 0;
  for (const pid of pids) {
    const stat = await procStat(pid);
    // Fields 14 and 15 of /proc/<pid>/stat (1-based): utime, stime.
    if (stat) ticks += Number(stat[13]) + Number(stat[14]);
  }
  return ticks * CLOCK_TICK_MS;
}

/** Reads structured JSON log lines (`{"event": name, …}`) appended to a log file since the last call. */
export class LogTail {
  #offset = 0;
  #partial = "";
  constructor(
    readonly file: string,
    readonly event: string,
  ) {}

  async next(): Promise<Record<string, unknown>[]> {
    const handle = await open(this.file, "r");
    try {
      const { size } = await handle.stat();
      if (size <= this.#offset) return [];
      const buffer = Buffer.alloc(size - this.#offset);
      await handle.read(buffer, 0, buffer.length, this.#offset);
      this.#offset = size;
      const text = this.#partial + buffer.toString("utf8");
      const lines = text.split("\n");
      this.#partial = lines.pop() ?? "";
      const found: Record<string, unknown>[] = [];
      for (const line of lines) {
        const start = line.indexOf(`{"event":"${this.event}"`);
        if (start < 0) continue;
        try {
          const parsed: unknown = JSON.parse(line.slice(start));
          if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) found.push(Object.fromEntries(Object.entries(parsed)));
        } catch {
          // a line cut by the terminal width or interleaved output: skip it
        }
      }
      return found;
    } finally {
      await handle.close();
    }
  }
}

/** Percentile of a list of numbers (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

/** A `wrangler dev` for a small standalone Worker directory (e.g. bench/baseline), started from a temp copy. */
export interface PlainServer {
  readonly baseUrl: string;
  readonly port: number;
  readonly logFile: string;
  /** Stops wrangler dev (whole process group) and removes the temp directory. */
  dispose(): Promise<void>;
}

/**
 * Copies `sourceDir` (which holds its own wrangler.toml) to a temp directory with the
 * project's node_modules linked, starts `wrangler dev` on a free port with its own
 * persistence, and waits until `healthPath` answers 200.
 */
export async function startPlainServer(sourceDir: string, healthPath = "/health", options: DevServerOptions = {}): Promise<PlainServer> {
  const workDir = await mkdtemp(join(tmpdir(), "parley-bench-plain-"));
  const appDir = join(workDir, "app");
  const logDir = join(workDir, "wrangler-logs");
  const logFile = join(workDir, "wrangler-dev.log");
  await mkdir(logDir, { recursive: true });
  await cp(sourceDir, appDir, { recursive: true, filter: (src) => !src.includes(`${join(sourceDir, ".wrangler")}`) });
  await symlink(join(PROJECT_ROOT, "node_modules"), join(appDir, "node_modules"), "dir");
  const debugLog = join(logDir, "wrangler-debug.log");
  await symlink("/dev/null", debugLog);
  const env = wranglerEnv(debugLog);
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const stream = createWriteStream(logFile, { flags: "a" });
  const proc = spawnDevServer(devServerArgs(options, port, join(workDir, "state")), appDir, env, stream);
  const dispose = async () => {
    await stopGroup(proc);
    await new Promise<void>((resolve) => stream.end(() => resolve()));
    if (!process.env.PARLEY_BENCH_KEEP) await rm(workDir, { recursive: true, force: true });
  };
  const health = await untilHealthy(proc, `${baseUrl}${healthPath}`);
  if (health !== "ok") {
    const exitCode = proc.exitCode;
    const log = await readFile(logFile, "utf8").catch(() => "");
    await dispose();
    throw new Error(health === "exited" ? `wrangler dev (${sourceDir}) exited (${exitCode})` : `wrangler dev (${sourceDir}) not healthy after 90 s:\n${log.slice(-3000)}`);
  }
  return { baseUrl, port, logFile, dispose };
}

/** Starts a dev server as its own process group (so stopGroup reaches workerd too), its output appended to `log`. */
function spawnDevServer(args: string[], cwd: string, env: NodeJS.ProcessEnv, log: WriteStream): ChildProcess {
  const proc = spawn(process.execPath, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"], detached: true });
  proc.stdout?.on("data", (c: Buffer) => log.write(c));
  proc.stderr?.on("data", (c: Buffer) => log.write(c));
  return proc;
}

/** SIGTERM a dev server's process group, then SIGKILL whatever is left of it. */
async function stopGroup(proc: ChildProcess): Promise<void> {
  if (!proc.pid) return;
  const pgid = proc.pid;
  const exited = proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : once(proc, "exit").then(() => undefined);
  try {
    process.kill(-pgid, "SIGTERM");
  } catch {
    // already gone
  }
  await Promise.race([exited, sleep(10_000)]);
  await sleep(500);
  try {
    process.kill(-pgid, "SIGKILL");
  } catch {
    // the whole group exited
  }
}

/** Polls `url` every 250 ms until it answers 200 ("ok"), the server exits, or 90 s pass ("timeout"). */
async function untilHealthy(proc: ChildProcess, url: string): Promise<"ok" | "exited" | "timeout"> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (proc.exitCode !== null) return "exited";
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      if (res.status === 200) return "ok";
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) return "timeout";
    await sleep(250);
  }
}

/** TCP ports on 127.0.0.1 that the given processes listen on (from their socket fds and /proc/net/tcp). */
export async function listeningPorts(pids: readonly number[]): Promise<number[]> {
  const inodes = new Set<string>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const inode = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`))?.[1];
        if (inode) inodes.add(inode);
      } catch {
        // fd closed meanwhile
      }
    }
  }
  const ports = new Set<number>();
  for (const line of (await readFile("/proc/net/tcp", "utf8")).split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    const local = cols[1];
    if (!local || cols[3] !== "0A" || !cols[9] || !inodes.has(cols[9])) continue;
    ports.add(parseInt(local.split(":")[1] ?? "0", 16));
  }
  return [...ports].sort((a, b) => a - b);
}

/**
 * The user Worker's own entry port behind wrangler dev's ProxyWorker: the port (other than
 * the public one) of the server's workerd processes where GET `probePath` answers 200 and
 * `accept(body)` holds. Miniflare's entry worker serves requests without the proxy's shared
 * secret header as they are. Null if none is found.
 */
export async function userWorkerPort(publicPort: number, probePath: string, accept: (body: string) => boolean): Promise<number | null> {
  const pids = await workerdPids(publicPort);
  for (const port of await listeningPorts(pids)) {
    if (port === publicPort) continue;
    try {
      const res = await fetch(`http://127.0.0.1:${port}${probePath}`, { signal: AbortSignal.timeout(2_000) });
      const body = await res.text();
      if (res.status === 200 && accept(body)) return port;
    } catch {
      // not an HTTP listener (inspector, loopback, …)
    }
  }
  return null;
}
