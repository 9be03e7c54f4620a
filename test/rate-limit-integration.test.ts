/// <reference types="vite/client" />
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import wranglerToml from "../wrangler.toml?raw";
import { RATE_LIMIT_PERIODS, rateLimitTarget } from "../workers/support/rate-limit";
import { api, call, createCustomChannel, createTenant, json, postCustom, storeCounts } from "./helpers";

/** `[[ratelimits]]` entries of wrangler.toml: name → { limit, period }. */
function configuredLimits(): Map<string, { limit: number; period: number }> {
  const out = new Map<string, { limit: number; period: number }>();
  const re = /\[\[ratelimits\]\]\s*\nname\s*=\s*"([A-Z_]+)"\s*\nnamespace_id\s*=\s*"\d+"\s*\nsimple\s*=\s*\{\s*limit\s*=\s*(\d+)\s*,\s*period\s*=\s*(\d+)\s*\}/g;
  for (const m of wranglerToml.matchAll(re)) out.set(m[1] ?? "", { limit: Number(m[2]), period: Number(m[3]) });
  return out;
}

const limits = configuredLimits();
const API = limits.get("API_RATE_LIMITER") ?? { limit: 0, period: 0 };
const CHANNEL = limits.get("CHANNEL_RATE_LIMITER") ?? { limit: 0, period: 0 };

/** Sends `make(i)` in concurrent batches until a 429 arrives (or `max` requests); returns statuses in order. */
async function until429(make: (i: number) => Promise<Response>, max: number, batch = 100): Promise<number[]> {
  const statuses: number[] = [];
  while (statuses.length < max && !statuses.includes(429)) {
    const n = Math.min(batch, max - statuses.length);
    const start = statuses.length;
    const responses = await Promise.all(Array.from({ length: n }, (_, i) => make(start + i)));
    for (const res of responses) {
      statuses.push(res.status);
      await res.body?.cancel();
    }
  }
  return statuses;
}

async function expectRateLimited(res: Response, period: number): Promise<void> {
  expect(res.status).toBe(429);
  expect(res.headers.get("retry-after")).toBe(String(period));
  const body = (await json(res)) as { error: { code: string; message: string } };
  expect(body.error.code).toBe("rate_limited");
  expect(typeof body.error.message).toBe("string");
}

describe("rate limit configuration", () => {
  it("wrangler.toml declares both limiters, and Retry-After matches their periods", () => {
    expect(API.limit).toBeGreaterThan(0);
    expect(CHANNEL.limit).toBeGreaterThan(0);
    expect(API.period).toBe(RATE_LIMIT_PERIODS.api);
    expect(CHANNEL.period).toBe(RATE_LIMIT_PERIODS.channel);
    // Normal webhook bursts (200 concurrent messages into one conversation) must pass.
    expect(CHANNEL.limit).toBeGreaterThanOrEqual(500);
    expect(env.RATE_LIMITS_ENABLED).toBe("true");
  });

  it("buckets per key hash and per channel id, never the raw token", async () => {
    const token = "prly_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const target = await rateLimitTarget("/v1/conversations", `Bearer ${token}`);
    expect(target?.limiter).toBe("api");
    expect(target?.key).toMatch(/^key:[0-9a-f]{32}$/);
    expect(target?.key).not.toContain(token);
    expect(await rateLimitTarget("/v1/conversations", undefined)).toBeNull();
    expect(await rateLimitTarget("/webhooks/twilio/ch_abcdefghijklmnopqrst/status", undefined)).toEqual({ limiter: "channel", key: "channel:ch_abcdefghijklmnopqrst" });
    expect(await rateLimitTarget("/chat/ch_abcdefghijklmnopqrst", undefined)).toEqual({ limiter: "channel", key: "channel:ch_abcdefghijklmnopqrst" });
    expect(await rateLimitTarget("/webhooks/custom/not-a-channel", undefined)).toBeNull();
    expect(await rateLimitTarget("/health", "Bearer x")).toBeNull();
  });
});

/** A limiter binding of the worker's env, swapped for the duration of `run`. */
type LimiterName = "API_RATE_LIMITER" | "CHANNEL_RATE_LIMITER";
async function withLimiter(name: LimiterName, low: RateLimit, run: () => Promise<void>): Promise<void> {
  const bindings = env as unknown as Record<LimiterName, RateLimit>;
  const original = bindings[name];
  bindings[name] = low;
  try {
    await run();
  } finally {
    bindings[name] = original;
  }
}

/** The low-limit twins (5 a minute) declared in vitest.config.ts. */
const LOW_LIMIT = 5;
function lowLimiters(): { api: RateLimit; channel: RateLimit } {
  const bindings = env as unknown as Record<string, RateLimit | undefined>;
  const api = bindings.TEST_LOW_API_RATE_LIMITER;
  const channel = bindings.TEST_LOW_CHANNEL_RATE_LIMITER;
  if (!api || !channel) throw new Error("vitest.config.ts must declare TEST_LOW_API_RATE_LIMITER and TEST_LOW_CHANNEL_RATE_LIMITER");
  return { api, channel };
}

/** The limiters count in fixed one-minute windows: start a check well inside one. */
async function freshWindow(): Promise<void> {
  const into = Date.now() % 60_000;
  if (into > 40_000) await new Promise((resolve) => setTimeout(resolve, 60_000 - into + 100));
}

describe("per API key", () => {
  it("answers 429 rate_limited with Retry-After once a key spends its budget; other keys are unaffected", { timeout: 120_000 }, async () => {
    const limited = await createTenant("Limited");
    const other = await createTenant("Other");
    // The production limiter is bound and admits ordinary traffic.
    expect((await api("GET", "/v1/conversations", limited.ownerKey)).status).toBe(200);
    await freshWindow();
    await withLimiter("API_RATE_LIMITER", lowLimiters().api, async () => {
      // Cheap requests (an unknown /v1 route) spend the key's budget.
      const statuses = await until429(() => api("GET", "/v1/no-such-route", limited.ownerKey), 2 * LOW_LIMIT + 2, 1);
      expect(statuses.indexOf(429)).toBe(LOW_LIMIT);
      expect(statuses.slice(0, LOW_LIMIT).every((s) => s === 404)).toBe(true);
      // Every route under /v1 now answers 429 for that key, before reading the body or touching storage.
      await expectRateLimited(await api("GET", "/v1/conversations", limited.ownerKey), API.period);
      const before = await env.DB.prepare("SELECT COUNT(*) AS n FROM channels WHERE tenant_id = ?").bind(limited.tenantId).first<{ n: number }>();
      const res = await api("POST", "/v1/channels", limited.ownerKey, { type: "custom", name: "nope" });
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      await expectRateLimited(res, API.period);
      const after = await env.DB.prepare("SELECT COUNT(*) AS n FROM channels WHERE tenant_id = ?").bind(limited.tenantId).first<{ n: number }>();
      expect(after?.n).toBe(before?.n);
      // Another key has its own budget; unauthenticated documentation is not counted.
      expect((await api("GET", "/v1/conversations", other.ownerKey)).status).toBe(200);
      expect((await call("/v1/openapi.json")).status).toBe(200);
    });
  });

  it("RATE_LIMITS_ENABLED=false turns the limits off", async () => {
    const t = await createTenant();
    await freshWindow();
    await withLimiter("API_RATE_LIMITER", lowLimiters().api, async () => {
      const bindings = env as unknown as { RATE_LIMITS_ENABLED: string };
      bindings.RATE_LIMITS_ENABLED = "false";
      try {
        for (let i = 0; i < LOW_LIMIT + 2; i++) expect((await api("GET", "/v1/no-such-route", t.ownerKey)).status).toBe(404);
      } finally {
        bindings.RATE_LIMITS_ENABLED = "true";
      }
      expect((await api("GET", "/v1/no-such-route", t.ownerKey)).status).toBe(404);
    });
  });
});

describe("per channel", () => {
  it("a burst over the channel limit gets 429 with Retry-After and stores nothing; other channels keep flowing", { timeout: 120_000 }, async () => {
    const { ownerKey } = await createTenant();
    const busy = await createCustomChannel(ownerKey);
    const quiet = await createCustomChannel(ownerKey);
    // The production limiter admits a burst of 50 concurrent messages into one channel.
    const burst = await Promise.all(Array.from({ length: 50 }, (_, i) => postCustom(quiet.id, quiet.secret, { type: "message", id: `burst-${i}`, from: "+393331110002", text: `m${i}` })));
    expect(burst.map((r) => r.status)).toEqual(burst.map(() => 200));
    await freshWindow();
    await withLimiter("CHANNEL_RATE_LIMITER", lowLimiters().channel, async () => {
      // Concurrent requests with a wrong content type: refused with 415 before any storage access, but counted.
      const statuses = await until429(
        () => call(`/webhooks/custom/${busy.id}`, { method: "POST", headers: { "content-type": "text/plain" }, body: "x" }),
        2 * LOW_LIMIT,
        2 * LOW_LIMIT,
      );
      expect(statuses.filter((s) => s === 415)).toHaveLength(LOW_LIMIT);
      expect(statuses.filter((s) => s === 429)).toHaveLength(LOW_LIMIT);
      const before = await storeCounts();
      const refused = await postCustom(busy.id, busy.secret, { type: "message", id: "rl-1", from: "+393331110000", text: "hello" });
      await expectRateLimited(refused, CHANNEL.period);
      expect((await storeCounts())).toEqual(before);
      // The same limiter guards the other channel kinds and the web-chat upgrade.
      await expectRateLimited(await call(`/webhooks/twilio/${busy.id}`, { method: "POST" }), CHANNEL.period);
      await expectRateLimited(await call(`/webhooks/whatsapp/${busy.id}?hub.mode=subscribe`), CHANNEL.period);
      await expectRateLimited(await call(`/chat/${busy.id}?session=abc`, { headers: { upgrade: "websocket" } }), CHANNEL.period);
      const ok = await postCustom(quiet.id, quiet.secret, { type: "message", id: "rl-2", from: "+393331110001", text: "hello" });
      expect(ok.status).toBe(200);
    });
  });
});
