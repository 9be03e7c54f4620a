/**
 * End-to-end harness: a real `wrangler dev` on 127.0.0.1 with its own persistence
 * directory and secrets, plus local stand-ins for the providers Parley calls
 * (Twilio Messages API, WhatsApp Graph API, custom callback URLs).
 *
 * Nothing here talks to anything but 127.0.0.1.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (this file lives in test/e2e/). */
export const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WRANGLER_BIN = join(PROJECT_ROOT, "node_modules", "wrangler", "bin", "wrangler.js");

const HEALTH_TIMEOUT_MS = 60_000;
const MIGRATIONS_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_LINES_KEPT = 400;

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` until it returns something other than undefined; after `timeoutMs`
 * throws with `description` and the last error the probe threw, if any.
 */
export async function waitFor<T>(
  description: string,
  probe: () => Promise<T | undefined> | T | undefined,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const suffix = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}${suffix}`);
    }
    await sleep(intervalMs);
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1 (bind port 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

// ------------------------------------------------------------------ process groups

/** Live (non-zombie) members of a process group, read from /proc; null where /proc is unavailable. */
async function groupMembers(pgid: number): Promise<number[] | null> {
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return null;
  }
  const members: number[] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid pgrp …; comm may contain spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z") members.push(Number(entry));
    } catch {
      // the process went away while we looked
    }
  }
  return members;
}

async function groupAlive(pgid: number): Promise<boolean> {
  const members = await groupMembers(pgid);
  if (members) return members.length > 0;
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // already gone
  }
}

/** Groups this test process started and has not stopped yet: killed synchronously if the runner exits early. */
const liveGroups = new Set<number>();
let exitHookInstalled = false;
function trackGroup(pgid: number): void {
  liveGroups.add(pgid);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const group of liveGroups) signalGroup(group, "SIGKILL");
  });
}

/** SIGTERM the whole group, wait for it to be gone, SIGKILL whatever is left. */
async function killGroup(child: ChildProcess): Promise<void> {
  const pgid = child.pid;
  if (pgid === undefined) return;
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, "exit").then(() => undefined);
  signalGroup(pgid, "SIGTERM");
  await Promise.race([exited, sleep(STOP_TIMEOUT_MS)]);
  const deadline = Date.now() + 5_000;
  while ((await groupAlive(pgid)) && Date.now() < deadline) await sleep(100);
  if (await groupAlive(pgid)) {
    signalGroup(pgid, "SIGKILL");
    const hardDeadline = Date.now() + 5_000;
    while ((await groupAlive(pgid)) && Date.now() < hardDeadline) await sleep(100);
  }
  liveGroups.delete(pgid);
}

/** SIGKILL the whole group at once (a crash, not a shutdown) and wait until every member is gone. */
async function crashGroup(child: ChildProcess): Promise<void> {
  const pgid = child.pid;
  if (pgid === undefined) return;
  signalGroup(pgid, "SIGKILL");
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while ((await groupAlive(pgid)) && Date.now() < deadline) await sleep(50);
  liveGroups.delete(pgid);
}

// ------------------------------------------------------------------ wrangler dev

/** Top-level entries never copied into the snapshot: state, secrets, tooling and tests. */
const SNAPSHOT_EXCLUDED = new Set([".git", ".wrangler", "node_modules", ".parley", "test", "test-artifacts", "bench", ".ci"]);

/**
 * Copies the project (sources, wrangler.toml, public/, migrations) into `dest`
 * with node_modules linked. wrangler dev watches its sources and reloads the
 * Worker on every change; running from a snapshot keeps concurrent edits of the
 * working tree from restarting the Worker in the middle of a test.
 */
async function snapshotProject(dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  for (const entry of await readdir(PROJECT_ROOT)) {
    if (SNAPSHOT_EXCLUDED.has(entry) || entry.startsWith(".dev.vars") || entry.startsWith(".env")) continue;
    await cp(join(PROJECT_ROOT, entry), join(dest, entry), { recursive: true });
  }
  await symlink(join(PROJECT_ROOT, "node_modules"), join(dest, "node_modules"), "dir");
}

/** Environment for wrangler child processes: non-interactive, no telemetry, no outside fetches. */
export function wranglerEnv(logDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    // The runner's own markers would change how wrangler/miniflare behave; this must be a plain dev server.
    if (key.startsWith("VITEST") || key === "NODE_ENV" || key === "TEST") delete env[key];
    // Never let the ambient shell leak into the Worker's bindings (CLOUDFLARE_INCLUDE_PROCESS_ENV),
    // .env files replace ours, or an account's credentials reach a local run.
    if (key.startsWith("CLOUDFLARE_")) delete env[key];
  }
  return {
    ...env,
    CI: "true",
    NO_COLOR: "1",
    FORCE_COLOR: "0",
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_SEND_ERROR_REPORTS: "false",
    WRANGLER_HIDE_BANNER: "true",
    WRANGLER_LOG_PATH: logDir,
    // Miniflare otherwise fetches the Request.cf object from workers.cloudflare.com.
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
  };
}

function runToCompletion(cwd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRANGLER_BIN, ...args], {
      cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    if (child.pid !== undefined) trackGroup(child.pid);
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString("utf8")));
    const timer = setTimeout(() => {
      void killGroup(child).then(() => reject(new Error(`wrangler ${args.slice(0, 3).join(" ")} timed out:\n${output}`)));
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (child.pid !== undefined) liveGroups.delete(child.pid);
      resolve({ code, output });
    });
  });
}

export interface ParleyOptions {
  /** Extra or overriding Worker variables (e.g. TWILIO_API_BASE of a stand-in server). */
  vars?: Record<string, string>;
}

export interface ParleyServer {
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string;
  readonly port: number;
  /** PLATFORM_ADMIN_KEY of this instance (random per run). */
  readonly platformKey: string;
  /** Directory passed as --persist-to (D1, Durable Objects, R2 state). */
  readonly persistDir: string;
  /** The last lines wrangler printed, for failure messages. */
  logs(): string;
  /** Stops wrangler dev (whole process group) and removes the temp directory. Idempotent. */
  stop(): Promise<void>;
  /** Stops wrangler dev and starts it again on the same port, persistence and secrets. */
  restart(): Promise<void>;
  /**
   * Crash simulation (test/e2e/faults.test.ts): SIGKILLs the whole wrangler dev process
   * group at once — no graceful shutdown, requests in flight are cut — and waits until it
   * is gone. `restart()` then starts it again on the same port, persistence and secrets.
   */
  kill(): Promise<void>;
}

/**
 * Starts `wrangler dev` for the project with fresh random secrets and a fresh
 * persistence directory (migrations applied first), and waits for /health.
 */
export async function startParley(options: ParleyOptions = {}): Promise<ParleyServer> {
  const workDir = await mkdtemp(join(tmpdir(), "parley-e2e-"));
  const persistDir = join(workDir, "state");
  const logDir = join(workDir, "wrangler-logs");
  await mkdir(logDir, { recursive: true });
  const env = wranglerEnv(logDir);
  const appDir = join(workDir, "app");
  await snapshotProject(appDir);

  const migrations = await runToCompletion(appDir, ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistDir], env, MIGRATIONS_TIMEOUT_MS);
  if (migrations.code !== 0) {
    await rm(workDir, { recursive: true, force: true });
    throw new Error(`D1 migrations failed (exit ${migrations.code}):\n${migrations.output}`);
  }

  const platformKey = `e2e-platform-${randomBytes(24).toString("hex")}`;
  const vars: Record<string, string> = {
    // Only the values the Worker must see differently from wrangler.toml; the rest stay as configured.
    ALLOW_INSECURE_CALLBACKS: "true",
    PUBLIC_BASE_URL: "",
    ...options.vars,
  };
  const secrets: Record<string, string> = {
    MASTER_KEY: randomBytes(32).toString("base64"),
    PLATFORM_ADMIN_KEY: platformKey,
    OPENAI_API_KEY: "",
    STRIPE_SECRET_KEY: "",
    STRIPE_WEBHOOK_SECRET: "",
  };
  // An explicit --env-file means wrangler does not read the project's .dev.vars (or .env) at all.
  const envFile = join(workDir, "e2e.env");
  await writeFile(
    envFile,
    Object.entries({ ...secrets, ...vars })
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join("\n") + "\n",
    { mode: 0o600 },
  );

  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const logLines: string[] = [];
  const log: { file: WriteStream | null } = { file: null };
  let child: ChildProcess | null = null;
  let stopped = false;

  const remember = (chunk: Buffer) => {
    const text = chunk.toString("utf8");
    log.file?.write(text);
    for (const line of text.split("\n")) {
      if (line.trim() === "") continue;
      logLines.push(line);
      if (logLines.length > LOG_LINES_KEPT) logLines.shift();
    }
  };
  const logs = () => logLines.join("\n");

  async function launch(): Promise<void> {
    log.file ??= createWriteStream(join(workDir, "wrangler-dev.log"), { flags: "a" });
    const args = [
      WRANGLER_BIN,
      "dev",
      "--port",
      String(port),
      "--ip",
      "127.0.0.1",
      "--persist-to",
      persistDir,
      "--env-file",
      envFile,
      "--inspector-port",
      "0",
      "--show-interactive-dev-session=false",
      "--live-reload=false",
      // --var beats both wrangler.toml [vars] and the env file.
      ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
    ];
    const proc = spawn(process.execPath, args, {
      cwd: appDir,
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    child = proc;
    if (proc.pid !== undefined) trackGroup(proc.pid);
    proc.stdout?.on("data", remember);
    proc.stderr?.on("data", remember);
    let exitInfo: string | null = null;
    proc.on("exit", (code, signal) => {
      exitInfo = `exit code ${code}, signal ${signal}`;
    });
    proc.on("error", (err) => {
      exitInfo = `spawn error ${err.message}`;
    });

    const deadline = Date.now() + HEALTH_TIMEOUT_MS;
    for (;;) {
      if (exitInfo !== null) throw new Error(`wrangler dev exited before it was healthy (${exitInfo}):\n${logs()}`);
      try {
        const res = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(2_000) });
        const body = await res.text();
        if (res.status === 200) return;
        if (Date.now() >= deadline) throw new Error(`/health answered ${res.status}: ${body}`);
      } catch (err) {
        if (Date.now() >= deadline) {
          await killGroup(proc);
          throw new Error(`wrangler dev not healthy after ${HEALTH_TIMEOUT_MS} ms (${err instanceof Error ? err.message : String(err)}):\n${logs()}`);
        }
      }
      await sleep(250);
    }
  }

  async function halt(): Promise<void> {
    const proc = child;
    child = null;
    if (proc) await killGroup(proc);
  }

  try {
    await launch();
  } catch (err) {
    await halt();
    log.file?.end();
    if (!process.env.PARLEY_E2E_KEEP) await rm(workDir, { recursive: true, force: true });
    throw err;
  }

  return {
    baseUrl,
    port,
    platformKey,
    persistDir,
    logs,
    async stop() {
      if (stopped) return;
      stopped = true;
      await halt();
      const file = log.file;
      log.file = null;
      if (file) await new Promise<void>((resolve) => file.end(resolve));
      // PARLEY_E2E_KEEP=1 keeps the state and logs for a post-mortem.
      if (!process.env.PARLEY_E2E_KEEP) await rm(workDir, { recursive: true, force: true });
    },
    async restart() {
      if (stopped) throw new Error("cannot restart a stopped server");
      await halt();
      await launch();
    },
    async kill() {
      if (stopped) throw new Error("cannot kill a stopped server");
      const proc = child;
      child = null;
      if (proc) await crashGroup(proc);
    },
  };
}

// ------------------------------------------------------------------ provider stand-ins

/** One request a stand-in received, exactly as sent. */
export interface RecordedRequest {
  method: string;
  /** Path and query, as on the request line. */
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
  receivedAt: number;
  /** What the stand-in answered. */
  response: { status: number; body: string };
}

/** A programmed answer. */
export interface StubReply {
  status: number;
  headers?: Record<string, string>;
  body?: string | Record<string, unknown>;
}

/** Which provider the stand-in imitates. */
export type StubKind = "twilio" | "graph" | "callback";

/** What a stand-in knows about a request before it answers. */
export interface IncomingStubRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  text: string;
}

type RequestMatch = (req: { method: string; path: string; text: string }) => boolean;

interface Failure {
  reply: StubReply;
  match: RequestMatch;
}

/** Runs before the answer is sent (e.g. to make a status callback beat the API response); may replace the answer. */
export type StubInterceptor = (req: IncomingStubRequest, reply: StubReply) => Promise<StubReply | void>;

interface Interception {
  match: RequestMatch;
  run: StubInterceptor;
}

const hex = (bytes: number) => randomBytes(bytes).toString("hex");

/**
 * A local HTTP server standing in for a provider API. Records every request;
 * answers like the real API; can be told to fail the next N (matching) requests.
 */
export class ProviderStub {
  readonly kind: StubKind;
  readonly requests: RecordedRequest[] = [];
  #server: Server;
  #failures: Failure[] = [];
  #interceptions: Interception[] = [];
  #port = 0;

  private constructor(kind: StubKind) {
    this.kind = kind;
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => void this.#respond(req.method ?? "GET", req.url ?? "/", req.headers, Buffer.concat(chunks), res));
    });
  }

  async #respond(method: string, path: string, headers: IncomingHttpHeaders, body: Buffer, res: ServerResponse): Promise<void> {
    const receivedAt = Date.now();
    const text = body.toString("utf8");
    const index = this.#failures.findIndex((f) => f.match({ method, path, text }));
    let reply = index >= 0 ? this.#failures.splice(index, 1)[0]?.reply ?? this.#answer(method, path, text) : this.#answer(method, path, text);
    const hook = this.#interceptions.findIndex((i) => i.match({ method, path, text }));
    if (hook >= 0) {
      const interception = this.#interceptions.splice(hook, 1)[0];
      try {
        reply = (await interception?.run({ method, path, headers, text }, reply)) ?? reply;
      } catch (err) {
        reply = { status: 500, body: { error: `stand-in interceptor failed: ${err instanceof Error ? err.message : String(err)}` } };
      }
    }
    const payload = reply.body === undefined ? "" : typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body);
    this.requests.push({ method, path, headers, body, text, receivedAt, response: { status: reply.status, body: payload } });
    res.writeHead(reply.status, {
      ...(typeof reply.body === "object" ? { "content-type": "application/json" } : {}),
      ...reply.headers,
    });
    res.end(payload);
  }

  static async start(kind: StubKind): Promise<ProviderStub> {
    const stub = new ProviderStub(kind);
    stub.#server.listen(0, "127.0.0.1");
    await once(stub.#server, "listening");
    stub.#port = (stub.#server.address() as AddressInfo).port;
    return stub;
  }

  /** `http://127.0.0.1:<port>` */
  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** The next `count` requests for which `match` holds (all, by default) get `reply` instead of success. */
  failNext(count: number, reply: StubReply, match: RequestMatch = () => true): void {
    for (let i = 0; i < count; i++) this.#failures.push({ reply, match });
  }

  /** The next matching request waits for `run` before it is answered (once). */
  interceptNext(match: RequestMatch, run: StubInterceptor): void {
    this.#interceptions.push({ match, run });
  }

  /** Failures programmed but not yet consumed. */
  get pendingFailures(): number {
    return this.#failures.length;
  }

  /** Requests matching `match`, in arrival order. */
  matching(match: (req: RecordedRequest) => boolean): RecordedRequest[] {
    return this.requests.filter(match);
  }

  /** Waits until at least `count` matching requests arrived (bounded). */
  async waitForRequests(match: (req: RecordedRequest) => boolean, count = 1, timeoutMs = 30_000): Promise<RecordedRequest[]> {
    return waitFor(`${count} matching request(s) at the ${this.kind} stand-in`, () => {
      const found = this.matching(match);
      return found.length >= count ? found : undefined;
    }, { timeoutMs, intervalMs: 50 });
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #answer(method: string, path: string, text: string): StubReply {
    const pathname = path.split("?")[0] ?? path;
    switch (this.kind) {
      case "twilio": {
        const m = /^\/2010-04-01\/Accounts\/(AC[0-9a-fA-F]{32})\/Messages\.json$/.exec(pathname);
        if (method !== "POST" || !m) {
          return { status: 404, body: { code: 20404, message: "The requested resource was not found", more_info: "https://www.twilio.com/docs/errors/20404", status: 404 } };
        }
        const form = new URLSearchParams(text);
        return {
          status: 201,
          body: {
            sid: `SM${hex(16)}`,
            account_sid: m[1] ?? "",
            to: form.get("To"),
            from: form.get("From"),
            body: form.get("Body"),
            status: "queued",
            num_segments: "1",
            direction: "outbound-api",
            api_version: "2010-04-01",
            date_created: new Date().toUTCString(),
            error_code: null,
            error_message: null,
          },
        };
      }
      case "graph": {
        if (method !== "POST" || !/^\/v\d+\.\d+\/\d+\/messages$/.test(pathname)) {
          return { status: 400, body: { error: { message: "Unsupported post request.", type: "GraphMethodException", code: 100, fbtrace_id: hex(8) } } };
        }
        let to = "";
        try {
          const parsed = JSON.parse(text) as { to?: unknown };
          to = typeof parsed.to === "string" ? parsed.to : "";
        } catch {
          // answered as a success anyway; the test inspects the raw body
        }
        return {
          status: 200,
          body: {
            messaging_product: "whatsapp",
            contacts: [{ input: to, wa_id: to }],
            messages: [{ id: `wamid.${Buffer.from(hex(24)).toString("base64url")}` }],
          },
        };
      }
      case "callback":
        return { status: 200, body: { id: `cb_${hex(12)}`, ok: true } };
    }
  }
}
