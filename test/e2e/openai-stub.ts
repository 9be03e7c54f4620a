/**
 * A local OpenAI-compatible server (chat completions) for the e2e tests: records
 * every request with its timing, answers with structured JSON, and can inject
 * faults (5xx, 429 with Retry-After, a hang past the client's timeout, malformed JSON).
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Fault = "500" | "429" | "hang" | "malformed";

export interface RecordedCompletion {
  path: string;
  headers: IncomingHttpHeaders;
  raw: string;
  body: { model?: string; store?: boolean; messages?: { role: string; content: string }[] };
  startedAt: number;
  endedAt: number;
  /** How the stub answered. */
  answer: Fault | "ok";
}

/** Builds the assistant's JSON reply for a request (default: echo the placeholders it saw). */
export type Replier = (lastUserMessage: string) => { reply: string; confidence: number; handoff: boolean; intent: string };

const PLACEHOLDER = /\[[A-Z_]+_\d+\]/g;

export const echoPlaceholders: Replier = (last) => {
  const seen = [...new Set(last.match(PLACEHOLDER) ?? [])];
  return {
    reply: seen.length ? `Noted: ${seen.join(", ")}.` : `You said: ${last.slice(0, 80)}`,
    confidence: 0.93,
    handoff: false,
    intent: "other",
  };
};

export class OpenAiStub {
  readonly requests: RecordedCompletion[] = [];
  replier: Replier = echoPlaceholders;
  /** Delay before answering, so overlapping calls would be visible. */
  delayMs = 40;
  #faults: Fault[] = [];
  #server: Server;
  #hanging: ServerResponse[] = [];
  #port = 0;

  private constructor() {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => void this.#answer(req.url ?? "/", req.headers, Buffer.concat(chunks).toString("utf8"), res));
    });
  }

  static async start(): Promise<OpenAiStub> {
    const stub = new OpenAiStub();
    await new Promise<void>((resolve) => stub.#server.listen(0, "127.0.0.1", resolve));
    stub.#port = (stub.#server.address() as AddressInfo).port;
    return stub;
  }

  /** Base URL to configure as OPENAI_BASE_URL. */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.#port}/v1`;
  }

  /** The next requests fail in this order. */
  fail(...faults: Fault[]): void {
    this.#faults.push(...faults);
  }

  async stop(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #answer(path: string, headers: IncomingHttpHeaders, raw: string, res: ServerResponse): Promise<void> {
    const startedAt = Date.now();
    let body: RecordedCompletion["body"] = {};
    try {
      body = JSON.parse(raw) as RecordedCompletion["body"];
    } catch {
      body = {};
    }
    const fault = this.#faults.shift();
    const record: RecordedCompletion = { path, headers, raw, body, startedAt, endedAt: startedAt, answer: fault ?? "ok" };
    this.requests.push(record);
    if (fault === "hang") {
      // Never answers: the client's timeout must fire.
      this.#hanging.push(res);
      return;
    }
    await new Promise((r) => setTimeout(r, this.delayMs));
    record.endedAt = Date.now();
    if (fault === "500") {
      res.writeHead(500, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "boom", type: "server_error" } }));
      return;
    }
    if (fault === "429") {
      res.writeHead(429, { "content-type": "application/json", "retry-after": "1" }).end(JSON.stringify({ error: { message: "slow down", type: "rate_limit" } }));
      return;
    }
    const messages = body.messages ?? [];
    const last = [...messages].reverse().find((m) => m.role === "user")?.content ?? "";
    const content = fault === "malformed" ? "this is {not json" : JSON.stringify(this.replier(last));
    res.writeHead(200, { "content-type": "application/json" }).end(
      JSON.stringify({
        id: `chatcmpl-${this.requests.length}`,
        object: "chat.completion",
        created: Math.floor(Date.now() / 1000),
        model: body.model ?? "gpt-4o-mini",
        choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content } }],
        usage: { prompt_tokens: 10, completion_tokens: 10, total_tokens: 20 },
      }),
    );
  }
}
