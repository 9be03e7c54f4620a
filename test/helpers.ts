/** Test helpers for the in-workerd suites: real app, real D1, R2 and Durable Objects. */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { vi } from "vitest";
import { parleySignature } from "../lib/signatures";

export const PLATFORM_KEY = "test-platform-admin-key-0123456789abcdef";
export const BASE = "https://parley.test";

/** Calls the Worker's fetch handler with an absolute URL on the test origin. */
export function call(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(new Request(BASE + path, init));
}

/** JSON request helper with an optional bearer key. */
export function api(method: string, path: string, key?: string, body?: unknown, headers: Record<string, string> = {}): Promise<Response> {
  const h: Record<string, string> = { ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  if (body !== undefined) h["content-type"] = "application/json";
  return call(path, { method, headers: h, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
}

/** Parses a JSON response body without trusting its shape. */
export async function json(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

export interface Tenant {
  tenantId: string;
  ownerKey: string;
}

let counter = 0;

/**
 * Creates a fresh tenant through the operator API. Automatic AI replies are off
 * unless `aiReplies` is true, so channel tests see only the traffic they cause.
 */
export async function createTenant(name = "Acme", options: { aiReplies?: boolean } = {}): Promise<Tenant> {
  counter += 1;
  const res = await api("POST", "/v1/tenants", PLATFORM_KEY, { name, slug: `t-${Date.now().toString(36)}-${counter}-${Math.floor(Math.random() * 1e6)}` });
  if (res.status !== 201) throw new Error(`tenant creation failed: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { tenant: { id: string }; apiKey: { key: string } };
  if (!options.aiReplies) {
    const patched = await api("PATCH", "/v1/settings", body.apiKey.key, { ai: { replies: false } });
    if (patched.status !== 200) throw new Error(`settings update failed: ${patched.status} ${await patched.text()}`);
  }
  return { tenantId: body.tenant.id, ownerKey: body.apiKey.key };
}

/** Creates a key of `role` for the tenant. */
export async function createKey(owner: string, role: "owner" | "admin" | "agent" | "viewer"): Promise<string> {
  const res = await api("POST", "/v1/keys", owner, { name: `${role} key`, role });
  if (res.status !== 201) throw new Error(`key creation failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { key: string }).key;
}

/** Creates a custom channel; returns its id and signing secret. */
export async function createCustomChannel(owner: string, callbackUrl?: string): Promise<{ id: string; secret: string }> {
  const res = await api("POST", "/v1/channels", owner, { type: "custom", name: "Custom", config: callbackUrl ? { callbackUrl } : {} });
  if (res.status !== 201) throw new Error(`channel creation failed: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { id: string; generatedSecrets: { signingSecret: string } };
  return { id: body.id, secret: body.generatedSecrets.signingSecret };
}

/** Posts a signed custom-channel event. */
export async function postCustom(channelId: string, secret: string, event: unknown, at = Math.floor(Date.now() / 1000)): Promise<Response> {
  const body = JSON.stringify(event);
  return call(`/webhooks/custom/${channelId}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-parley-signature": await parleySignature(secret, body, at) },
    body,
  });
}

/** Row counts of the tables a refused request must not touch. */
export async function storeCounts(): Promise<{ conversations: number; security: number }> {
  const c = await env.DB.prepare("SELECT COUNT(*) AS n FROM conversations").first<{ n: number }>();
  const s = await env.DB.prepare("SELECT COUNT(*) AS n FROM security_log").first<{ n: number }>();
  return { conversations: c?.n ?? 0, security: s?.n ?? 0 };
}

/** Runs the conversation object's alarm until no AI decision or delivery is pending (bounded), pausing `pauseMs` between runs. */
export async function settle(conversationId: string, pauseMs = 0): Promise<void> {
  const stub = env.CONVERSATION.get(env.CONVERSATION.idFromName(conversationId));
  for (let i = 0; i < 40; i++) {
    const pending = await runInDurableObject(stub, (_i, state) => {
      state.storage.sql.exec("UPDATE tasks SET next_attempt_at = 0 WHERE state = 'pending'");
      state.storage.sql.exec("UPDATE outbox SET next_attempt_at = 0");
      const t = state.storage.sql.exec("SELECT COUNT(*) AS n FROM tasks WHERE state = 'pending' OR (state = 'done' AND reported = 0)").one().n;
      const o = state.storage.sql.exec("SELECT COUNT(*) AS n FROM outbox").one().n;
      return Number(t) + Number(o);
    });
    if (pending === 0) return;
    await runDurableObjectAlarm(stub);
    // Lets work the alarm handed to waitUntil (e.g. a provider call's follow-up) land before the next look.
    if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
  }
  throw new Error("conversation did not settle");
}

/** `STRIPE_API_BASE` in the test configuration: a host that does not resolve, so only the stand-in answers. */
export const STRIPE_BASE = "http://stripe-stub.test:12111";

/** One request the Stripe stand-in answered. */
export interface StripeCall {
  url: string;
  method: string;
  authorization: string | null;
  form: URLSearchParams;
}

/** Answers requests to the Stripe stand-in; everything else goes to the real fetch. */
export function stubStripe(answer: (call: StripeCall) => Response = (c) => Response.json({ id: "cs_test_stub_1", object: "checkout.session", url: "https://checkout.stripe.com/c/pay/cs_test_stub_1", mode: c.form.get("mode") })): StripeCall[] {
  const calls: StripeCall[] = [];
  const realFetch = globalThis.fetch;
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input, init);
    if (!request.url.startsWith(STRIPE_BASE)) return realFetch(input, init);
    const stripeCall = { url: request.url, method: request.method, authorization: request.headers.get("authorization"), form: new URLSearchParams(new TextDecoder().decode(await request.arrayBuffer())) };
    calls.push(stripeCall);
    return answer(stripeCall);
  });
  return calls;
}
