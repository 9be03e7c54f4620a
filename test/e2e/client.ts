/**
 * A small HTTP client for the Parley API over real sockets, plus the provider
 * signature schemes computed the way each provider computes them.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import twilio from "twilio";
import { expect } from "vitest";

// ------------------------------------------------------------------ response shapes

export interface ErrorBody {
  error: { code: string; message: string; issues?: { path: string; message: string }[] };
}

export interface MessageView {
  id: string;
  conversationId: string;
  seq: number;
  direction: "inbound" | "outbound";
  author: string;
  authorId: string | null;
  text: string;
  redacted: boolean;
  status: "received" | "queued" | "sent" | "delivered" | "read" | "failed";
  error: string | null;
  providerMessageId: string | null;
  attempts: number;
  createdAt: string;
  updatedAt: string;
}

export interface ConversationSummary {
  id: string;
  channelId: string;
  status: string;
  messageCount: number;
  createdAt: string;
  lastActivityAt: string;
}

export interface ChannelCreated {
  id: string;
  type: string;
  webhookUrl: string;
  generatedSecrets: Record<string, string>;
}

export interface CustomWebhookAck {
  received: boolean;
  duplicate: boolean;
  conversationId: string;
  messageId: string;
  seq: number;
}

export type Role = "owner" | "admin" | "agent" | "viewer";

export interface Tenant {
  tenantId: string;
  ownerKey: string;
}

// ------------------------------------------------------------------ ids

export const randomHex = (bytes: number): string => randomBytes(bytes).toString("hex");
/** `AC` + 32 hex, like a Twilio Account SID. */
export const accountSid = (): string => `AC${randomHex(16)}`;
/** `SM` + 32 hex, like a Twilio Message SID. */
export const messageSid = (): string => `SM${randomHex(16)}`;
/** A random, valid-looking North-American number in E.164 (+1 555 …). */
export const phoneNumber = (): string => `+1555${String(Math.floor(Math.random() * 1e7)).padStart(7, "0")}`;

// ------------------------------------------------------------------ signatures

/** X-Twilio-Signature, computed by the official `twilio` package. */
export function twilioSignature(authToken: string, url: string, params: Record<string, string>): string {
  return twilio.getExpectedTwilioSignature(authToken, url, params);
}

/** X-Hub-Signature-256 as Meta computes it: `sha256=` + hex HMAC-SHA256(app secret, raw body). */
export function metaSignature(appSecret: string, rawBody: string | Buffer): string {
  return `sha256=${createHmac("sha256", appSecret).update(rawBody).digest("hex")}`;
}

/** X-Parley-Signature: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. */
export function parleySignature(secret: string, body: string, unixSeconds = Math.floor(Date.now() / 1000)): string {
  return `t=${unixSeconds},v1=${createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex")}`;
}

/** Checks an X-Parley-Signature header independently of the product's code. */
export function verifyParleySignature(
  secret: string,
  header: string | undefined,
  body: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): { ok: boolean; reason?: string; timestamp?: number } {
  if (!header) return { ok: false, reason: "missing" };
  const parts = new Map<string, string[]>();
  for (const part of header.split(",")) {
    const at = part.indexOf("=");
    if (at < 1) continue;
    const key = part.slice(0, at).trim();
    parts.set(key, [...(parts.get(key) ?? []), part.slice(at + 1).trim()]);
  }
  const t = parts.get("t")?.[0];
  const v1 = parts.get("v1") ?? [];
  if (!t || !/^\d+$/.test(t) || v1.length === 0) return { ok: false, reason: "malformed" };
  const timestamp = Number(t);
  if (Math.abs(nowSeconds - timestamp) > 300) return { ok: false, reason: "stale", timestamp };
  const expected = createHmac("sha256", secret).update(`${t}.${body}`).digest();
  const ok = v1.some((candidate) => {
    const given = Buffer.from(candidate, "hex");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  return ok ? { ok: true, timestamp } : { ok: false, reason: "mismatch", timestamp };
}

// ------------------------------------------------------------------ client

export interface RequestOptions {
  key?: string;
  json?: unknown;
  body?: string | Uint8Array<ArrayBuffer>;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

/** Reads a JSON body, failing with the raw text if it is not JSON. */
export async function readJson<T>(res: Response): Promise<T> {
  const text = await res.text();
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`expected JSON from ${res.url} (HTTP ${res.status}), got: ${text.slice(0, 500)}`);
  }
}

/** Asserts status and `{ error: { code, message } }`; returns the body. */
export async function expectError(res: Response, status: number, code?: string): Promise<ErrorBody> {
  const text = await res.text();
  expect(res.status, `HTTP status (body: ${text.slice(0, 300)})`).toBe(status);
  expect(res.headers.get("content-type") ?? "").toMatch(/^application\/json/);
  const body = JSON.parse(text) as ErrorBody;
  expect(body).toEqual({ error: expect.objectContaining({ code: expect.any(String), message: expect.any(String) }) });
  expect(body.error.message.length).toBeGreaterThan(0);
  if (code !== undefined) expect(body.error.code).toBe(code);
  return body;
}

export class ParleyClient {
  constructor(
    readonly baseUrl: string,
    readonly platformKey: string,
  ) {}

  url(path: string): string {
    return this.baseUrl + path;
  }

  request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.key) headers.authorization = `Bearer ${options.key}`;
    let body: string | Uint8Array<ArrayBuffer> | undefined = options.body;
    if (options.json !== undefined) {
      headers["content-type"] ??= "application/json";
      body = JSON.stringify(options.json);
    }
    return fetch(this.url(path), {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
      signal: AbortSignal.timeout(options.timeoutMs ?? 30_000),
    });
  }

  /**
   * A fresh tenant. Automatic AI replies are off unless `aiReplies` is true, so
   * channel tests see only the traffic they cause (the AI pipeline has its own tests).
   */
  async createTenant(name = "E2E tenant", options: { aiReplies?: boolean } = {}): Promise<Tenant> {
    const slug = `e2e-${Date.now().toString(36)}-${randomHex(3)}`;
    const res = await this.request("POST", "/v1/tenants", { key: this.platformKey, json: { name, slug } });
    if (res.status !== 201) throw new Error(`tenant creation failed: ${res.status} ${await res.text()}`);
    const body = await readJson<{ tenant: { id: string }; apiKey: { key: string } }>(res);
    if (!options.aiReplies) {
      const patched = await this.request("PATCH", "/v1/settings", { key: body.apiKey.key, json: { ai: { replies: false } } });
      if (patched.status !== 200) throw new Error(`settings update failed: ${patched.status} ${await patched.text()}`);
    }
    return { tenantId: body.tenant.id, ownerKey: body.apiKey.key };
  }

  async createKey(ownerKey: string, role: Role): Promise<string> {
    const res = await this.request("POST", "/v1/keys", { key: ownerKey, json: { name: `${role} key`, role } });
    if (res.status !== 201) throw new Error(`key creation failed: ${res.status} ${await res.text()}`);
    return (await readJson<{ key: string }>(res)).key;
  }

  async createChannel(ownerKey: string, body: Record<string, unknown>): Promise<ChannelCreated> {
    const res = await this.request("POST", "/v1/channels", { key: ownerKey, json: body });
    if (res.status !== 201) throw new Error(`channel creation failed: ${res.status} ${await res.text()}`);
    return readJson<ChannelCreated>(res);
  }

  /** Every conversation of the tenant (optionally of one channel), following nextCursor. */
  async listConversations(key: string, query: { channelId?: string; pageSize?: number } = {}): Promise<ConversationSummary[]> {
    const out: ConversationSummary[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 100; page++) {
      const params = new URLSearchParams({ limit: String(query.pageSize ?? 200) });
      if (query.channelId) params.set("channelId", query.channelId);
      if (cursor) params.set("cursor", cursor);
      const res = await this.request("GET", `/v1/conversations?${params}`, { key });
      if (res.status !== 200) throw new Error(`list conversations failed: ${res.status} ${await res.text()}`);
      const body = await readJson<{ data: ConversationSummary[]; nextCursor: string | null }>(res);
      out.push(...body.data);
      cursor = body.nextCursor;
      if (!cursor) return out;
    }
    throw new Error("conversation paging did not end after 100 pages");
  }

  /** Every message of a conversation in seq order, paging with `after` (limit 200). */
  async allMessages(key: string, conversationId: string, pageSize = 200): Promise<MessageView[]> {
    const out: MessageView[] = [];
    let after = 0;
    for (let page = 0; page < 100; page++) {
      const res = await this.request("GET", `/v1/conversations/${conversationId}/messages?limit=${pageSize}&after=${after}`, { key });
      if (res.status !== 200) throw new Error(`list messages failed: ${res.status} ${await res.text()}`);
      const body = await readJson<{ data: MessageView[]; hasMore: boolean; nextCursor: string | null }>(res);
      out.push(...body.data);
      const last = body.data[body.data.length - 1];
      if (!body.hasMore || !last) return out;
      after = last.seq;
    }
    throw new Error("message paging did not end after 100 pages");
  }

  /** One message by id (scans the conversation). */
  async message(key: string, conversationId: string, messageId: string): Promise<MessageView | undefined> {
    return (await this.allMessages(key, conversationId)).find((m) => m.id === messageId);
  }

  /** Agent reply through the API; expects 201. */
  async sendMessage(key: string, conversationId: string, text: string): Promise<MessageView> {
    const res = await this.request("POST", `/v1/conversations/${conversationId}/messages`, { key, json: { text } });
    if (res.status !== 201) throw new Error(`send failed: ${res.status} ${await res.text()}`);
    return readJson<MessageView>(res);
  }

  // ---------------------------------------------------------------- webhooks

  /** Posts a Twilio form webhook to a path or absolute URL; signs with the official library unless `signature` is given (null: no header). */
  postTwilio(pathOrUrl: string, authToken: string, params: Record<string, string>, signature?: string | null): Promise<Response> {
    const url = pathOrUrl.startsWith("http") ? pathOrUrl : this.url(pathOrUrl);
    const sig = signature === undefined ? twilioSignature(authToken, url, params) : signature;
    return fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/x-www-form-urlencoded; charset=utf-8",
        "user-agent": "TwilioProxy/1.1",
        ...(sig !== null ? { "x-twilio-signature": sig } : {}),
      },
      body: new URLSearchParams(params).toString(),
      signal: AbortSignal.timeout(30_000),
    });
  }

  /** Posts a WhatsApp Cloud API notification signed with `appSecret` (or the given header; null: none). */
  postWhatsApp(channelId: string, appSecret: string, payload: unknown, signature?: string | null): Promise<Response> {
    const body = JSON.stringify(payload);
    const sig = signature === undefined ? metaSignature(appSecret, body) : signature;
    return fetch(this.url(`/webhooks/whatsapp/${channelId}`), {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "facebookexternalua", ...(sig !== null ? { "x-hub-signature-256": sig } : {}) },
      body,
      signal: AbortSignal.timeout(30_000),
    });
  }

  /** Posts a custom-channel event signed at `unixSeconds` (or with the given header; null: none). */
  postCustom(channelId: string, secret: string, event: unknown, options: { at?: number; signature?: string | null } = {}): Promise<Response> {
    const body = JSON.stringify(event);
    const sig = options.signature === undefined ? parleySignature(secret, body, options.at) : options.signature;
    return fetch(this.url(`/webhooks/custom/${channelId}`), {
      method: "POST",
      headers: { "content-type": "application/json", ...(sig !== null ? { "x-parley-signature": sig } : {}) },
      body,
      signal: AbortSignal.timeout(60_000),
    });
  }
}

// ------------------------------------------------------------------ wrangler dev's proxy

/**
 * The 503 that wrangler dev's ProxyWorker (wrangler 4.86) answers when its fetch to the
 * user Worker fails with a network error. Nothing restarted: the ProxyWorker compares the
 * failed request's URL (with its path) against the user Worker's bare origin, so every
 * such failure of a POST looks "stale" and gets this text instead of an error report.
 * The network errors themselves come from workerd under load: several connections to the
 * user Worker are reset at the same instant (seen as ECONNRESET / socket hang up when the
 * Worker's port is hit directly, once with "RPC connection broken … incoming RPC message
 * exceeds size limit" in its log), and keep-alive races on that hop do the same
 * (cloudflare/workers-sdk#14641; later wranglers retry inside the proxy, #15252). None of
 * the cut requests had reached the Conversation object (resends were never acknowledged
 * as duplicates in bench/webhook-load.ts), and production has no ProxyWorker.
 */
export const DEV_PROXY_RESTART_TEXT = "Your worker restarted mid-request.";

/** Whether a response is wrangler dev's proxy "restarted mid-request" 503 (reads a clone of the body). */
export async function isDevProxyRestart(res: Response): Promise<boolean> {
  if (res.status !== 503) return false;
  return (await res.clone().text()).startsWith(DEV_PROXY_RESTART_TEXT);
}

/**
 * Posts a custom-channel event the way a provider delivers it: the same event (same id,
 * same bytes, a fresh signature) is sent again when the answer says to try again — here
 * only wrangler dev's proxy 503 above, or a connection refused/reset while the server is
 * down when `retryNetworkErrors` is set — so Parley's dedupe must then store it once.
 * Any other answer is returned as is.
 */
export async function postCustomAsProvider(
  api: ParleyClient,
  channelId: string,
  secret: string,
  event: unknown,
  options: { attempts?: number; retryNetworkErrors?: boolean; delayMs?: number; onRetry?: (reason: string) => void } = {},
): Promise<Response> {
  const attempts = options.attempts ?? 5;
  for (let attempt = 1; ; attempt++) {
    let res: Response;
    try {
      res = await api.postCustom(channelId, secret, event);
    } catch (err) {
      if (!options.retryNetworkErrors || attempt >= attempts) throw err;
      options.onRetry?.(`network: ${err instanceof Error ? err.message : String(err)}`);
      await new Promise((resolve) => setTimeout(resolve, options.delayMs ?? 250));
      continue;
    }
    if (attempt < attempts && (await isDevProxyRestart(res))) {
      options.onRetry?.("dev proxy 503");
      await res.text();
      await new Promise((resolve) => setTimeout(resolve, options.delayMs ?? 100));
      continue;
    }
    return res;
  }
}

/**
 * Runs a setup step (tenant or channel creation…) again when it failed only because of
 * wrangler dev's proxy 503 above. Such a step may then have happened twice (an extra,
 * unused tenant or channel): acceptable for test setup, never used for the assertions' subject.
 */
export async function retryOnDevProxyRestart<T>(step: () => Promise<T>, attempts = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if (attempt >= attempts || !(err instanceof Error) || !err.message.includes(DEV_PROXY_RESTART_TEXT)) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/** Runs `task` over `items` with at most `limit` in flight; results keep the input order. */
export async function mapPool<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    for (;;) {
      const index = next++;
      if (index >= items.length) return;
      results[index] = await task(items[index] as T, index);
    }
  });
  await Promise.all(workers);
  return results;
}
