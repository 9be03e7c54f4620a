/**
 * Stripe billing inside workerd: the signed webhook (official SDK signatures),
 * idempotent and order-safe plan changes, metadata-only storage, Checkout
 * sessions created through the SDK against a stubbed Stripe API, role checks,
 * and the AI turning off for a canceled plan.
 */
import { env } from "cloudflare:workers";
import Stripe from "stripe";
import { afterEach, describe, expect, it, vi } from "vitest";
import { api, call, createCustomChannel, createKey, createTenant, json, postCustom, settle, STRIPE_BASE, stubStripe } from "./helpers";

const WEBHOOK_SECRET = "whsec_test_parley_0123456789abcdef";
const NOW_S = () => Math.floor(Date.now() / 1000);

afterEach(() => {
  vi.restoreAllMocks();
});

let eventCounter = 0;
const eventId = () => `evt_test_${Date.now().toString(36)}_${++eventCounter}`;

/**
 * A `Stripe-Signature` header from the official SDK. The synchronous
 * `generateTestHeaderString` needs Node's crypto; inside workerd the SDK uses
 * WebCrypto, whose HMAC is async, so the async variant computes the same header.
 */
function sign(payload: string, options: { secret?: string; timestamp?: number } = {}): Promise<string> {
  return Stripe.webhooks.generateTestHeaderStringAsync({ payload, secret: options.secret ?? WEBHOOK_SECRET, timestamp: options.timestamp ?? NOW_S() });
}

function postStripe(body: string, signature: string | null, contentType = "application/json; charset=utf-8"): Promise<Response> {
  const headers: Record<string, string> = { "content-type": contentType };
  if (signature !== null) headers["stripe-signature"] = signature;
  return call("/webhooks/stripe", { method: "POST", headers, body });
}

async function deliver(event: Record<string, unknown>, options: { secret?: string; timestamp?: number } = {}): Promise<Response> {
  const body = JSON.stringify(event);
  return postStripe(body, await sign(body, options));
}

function stripeEvent(type: string, object: Record<string, unknown>, created = NOW_S(), id = eventId()): Record<string, unknown> {
  return { id, object: "event", api_version: Stripe.API_VERSION, created, livemode: false, pending_webhooks: 1, type, data: { object } };
}

function subscription(id: string, status: string, tenantId: string | null, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    object: "subscription",
    status,
    customer: "cus_test_1",
    currency: "eur",
    metadata: tenantId ? { tenant_id: tenantId } : {},
    items: { object: "list", data: [{ id: "si_1", current_period_end: 1_900_000_000, price: { id: "price_parley_basic", unit_amount: 2900 } }] },
    ...extra,
  };
}

function invoice(id: string, subscriptionId: string | null, tenantId: string | null, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    object: "invoice",
    status: "paid",
    customer: "cus_test_1",
    amount_paid: 2900,
    amount_due: 2900,
    currency: "eur",
    customer_email: "mario.rossi@example.com",
    customer_name: "Mario Rossi",
    parent: subscriptionId ? { type: "subscription_details", subscription_details: { subscription: subscriptionId, metadata: tenantId ? { tenant_id: tenantId } : {} } } : null,
    lines: { object: "list", data: [{ id: "il_1", period: { start: 1_897_000_000, end: 1_899_999_000 } }] },
    ...extra,
  };
}

function checkoutSession(tenantId: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: `cs_test_${++eventCounter}`,
    object: "checkout.session",
    mode: "subscription",
    status: "complete",
    payment_status: "paid",
    client_reference_id: tenantId,
    metadata: { tenant_id: tenantId },
    customer: "cus_test_1",
    subscription: "sub_test_1",
    amount_total: 2900,
    currency: "eur",
    ...extra,
  };
}

interface BillingView {
  planStatus: string;
  aiEnabled: boolean;
  currentPeriodEnd: string | null;
  stripeCustomerId: string | null;
  stripeSubscriptionId: string | null;
  lastEventAt: string | null;
  billingConfigured: boolean;
  recentEvents: { id: string; type: string; outcome: string; planStatus: string | null; amount: number | null; currency: string | null }[];
}

async function billingOf(key: string): Promise<BillingView> {
  const res = await api("GET", "/v1/billing", key);
  expect(res.status).toBe(200);
  return (await res.json()) as BillingView;
}

async function expectError(res: Response, status: number, code: string): Promise<void> {
  expect(res.status).toBe(status);
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe("string");
}

async function count(sql: string, ...params: (string | number)[]): Promise<number> {
  return (await env.DB.prepare(sql).bind(...params).first<{ n: number }>())?.n ?? 0;
}

async function storedEvents(tenantId: string): Promise<Record<string, unknown>[]> {
  return (await env.DB.prepare("SELECT * FROM billing_events WHERE tenant_id = ? ORDER BY event_created_at").bind(tenantId).all<Record<string, unknown>>()).results;
}

describe("POST /webhooks/stripe: signatures", () => {
  it("accepts a correctly signed event and activates the plan", async () => {
    const { tenantId, ownerKey } = await createTenant();
    expect((await billingOf(ownerKey)).planStatus).toBe("none");
    const res = await deliver(stripeEvent("checkout.session.completed", checkoutSession(tenantId)));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ received: true, duplicate: false, outcome: "applied" });
    const view = await billingOf(ownerKey);
    expect(view).toMatchObject({ planStatus: "active", aiEnabled: true, stripeCustomerId: "cus_test_1", stripeSubscriptionId: "sub_test_1" });
    expect(view.recentEvents).toHaveLength(1);
    expect(view.recentEvents[0]).toMatchObject({ type: "checkout.session.completed", outcome: "applied", planStatus: "active", amount: 2900, currency: "eur" });
    expect(await count("SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = ? AND action = 'billing.plan_changed'", tenantId)).toBe(1);
  });

  it("refuses tampered, wrongly keyed, stale and unsigned events with 401 and stores nothing", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const security = () => count("SELECT COUNT(*) AS n FROM security_log WHERE kind = 'stripe_signature'");
    const securityBefore = await security();
    const events = () => count("SELECT COUNT(*) AS n FROM billing_events");
    const eventsBefore = await events();

    const event = stripeEvent("checkout.session.completed", checkoutSession(tenantId));
    const body = JSON.stringify(event);
    const header = await sign(body);
    // Tampered: same signature, a different tenant in the body.
    await expectError(await postStripe(body.replace(tenantId, "ten_attacker"), header), 401, "invalid_signature");
    await expectError(await postStripe(body.replace('"amount_total":2900', '"amount_total":1'), header), 401, "invalid_signature");
    // Signed with another secret.
    await expectError(await postStripe(body, await sign(body, { secret: "whsec_someone_else" })), 401, "invalid_signature");
    // Older than 300 s.
    await expectError(await postStripe(body, await sign(body, { timestamp: NOW_S() - 301 })), 401, "invalid_signature");
    // Missing or garbage header.
    await expectError(await postStripe(body, null), 401, "invalid_signature");
    await expectError(await postStripe(body, "sha256=deadbeef"), 401, "invalid_signature");

    expect(await events()).toBe(eventsBefore);
    expect((await billingOf(ownerKey)).planStatus).toBe("none");
    expect(await count("SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = ? AND action LIKE 'billing.%'", tenantId)).toBe(0);
    expect(await security()).toBe(securityBefore + 6);
    const reasons = (await env.DB.prepare("SELECT reason FROM security_log WHERE kind = 'stripe_signature' ORDER BY id DESC LIMIT 6").all<{ reason: string }>()).results.map((r) => r.reason);
    expect(reasons).toEqual(["malformed", "missing", "expired", "mismatch", "mismatch", "mismatch"]);

    // Within the tolerance the same event is accepted.
    expect((await postStripe(body, await sign(body, { timestamp: NOW_S() - 290 }))).status).toBe(200);
    expect((await billingOf(ownerKey)).planStatus).toBe("active");
  });

  it("answers 4xx to signed bodies that are not events, and to the wrong content type, storing nothing", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const before = await count("SELECT COUNT(*) AS n FROM billing_events");
    const notJson = "this is not json";
    await expectError(await postStripe(notJson, await sign(notJson)), 400, "invalid_json");
    const noId = JSON.stringify({ type: "checkout.session.completed", created: NOW_S(), data: { object: {} } });
    await expectError(await postStripe(noId, await sign(noId)), 400, "validation_error");
    const badObject = JSON.stringify(stripeEvent("customer.subscription.updated", { id: "sub_x", status: 42, metadata: { tenant_id: tenantId } }));
    await expectError(await postStripe(badObject, await sign(badObject)), 400, "validation_error");
    const ok = JSON.stringify(stripeEvent("checkout.session.completed", checkoutSession(tenantId)));
    await expectError(await postStripe(ok, await sign(ok), "text/plain"), 415, "unsupported_media_type");
    expect(await count("SELECT COUNT(*) AS n FROM billing_events")).toBe(before);
    expect((await billingOf(ownerKey)).planStatus).toBe("none");
  });
});

describe("POST /webhooks/stripe: applying events", () => {
  it("applies a duplicate delivery once and acknowledges it", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const event = stripeEvent("invoice.payment_failed", invoice("in_dup", "sub_test_1", tenantId, { status: "open", amount_paid: 0 }));
    const first = await deliver(event);
    expect(await first.json()).toMatchObject({ duplicate: false, outcome: "applied" });
    const again = await Promise.all([deliver(event), deliver(event)]);
    for (const res of again) {
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ received: true, duplicate: true });
    }
    expect(await count("SELECT COUNT(*) AS n FROM billing_events WHERE id = ?", String(event.id))).toBe(1);
    expect(await count("SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = ? AND action = 'billing.plan_changed'", tenantId)).toBe(1);
    expect((await billingOf(ownerKey)).planStatus).toBe("past_due");
    // Paid later: active again, with the invoice's period end. Redelivering the old failure changes nothing.
    await deliver(stripeEvent("invoice.paid", invoice("in_dup", "sub_test_1", tenantId), NOW_S() + 5));
    expect(await (await deliver(event)).json()).toEqual({ received: true, duplicate: true });
    const view = await billingOf(ownerKey);
    expect(view.planStatus).toBe("active");
    expect(view.currentPeriodEnd).toBe(new Date(1_899_999_000 * 1000).toISOString());
  });

  it("never lets an older event override a newer one", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const t = NOW_S();
    const sub = "sub_order_1";
    expect(await (await deliver(stripeEvent("customer.subscription.updated", subscription(sub, "active", tenantId), t))).json()).toMatchObject({ outcome: "applied" });
    // A payment failure from before the subscription became active arrives late: stored, not applied.
    expect(await (await deliver(stripeEvent("invoice.payment_failed", invoice("in_old", sub, tenantId, { status: "open" }), t - 60))).json()).toMatchObject({
      duplicate: false,
      outcome: "superseded",
    });
    expect((await billingOf(ownerKey)).planStatus).toBe("active");
    // Same second, conflicting news: an active plan is not downgraded to past_due by a tie.
    expect(await (await deliver(stripeEvent("customer.subscription.updated", subscription(sub, "past_due", tenantId), t))).json()).toMatchObject({ outcome: "superseded" });
    expect((await billingOf(ownerKey)).planStatus).toBe("active");
    // Newer cancellation wins; an older "paid" arriving afterwards does not revive the plan.
    await deliver(stripeEvent("customer.subscription.deleted", subscription(sub, "canceled", tenantId), t + 120));
    expect(await (await deliver(stripeEvent("invoice.paid", invoice("in_mid", sub, tenantId), t + 60))).json()).toMatchObject({ outcome: "superseded" });
    expect(await (await deliver(stripeEvent("customer.subscription.updated", subscription(sub, "active", tenantId), t + 90))).json()).toMatchObject({ outcome: "superseded" });
    const view = await billingOf(ownerKey);
    expect(view).toMatchObject({ planStatus: "canceled", aiEnabled: false, lastEventAt: new Date((t + 120) * 1000).toISOString() });
    const outcomes = (await storedEvents(tenantId)).map((e) => [e.type, e.outcome]);
    expect(outcomes).toEqual([
      ["invoice.payment_failed", "superseded"],
      ["customer.subscription.updated", "applied"],
      ["customer.subscription.updated", "superseded"],
      ["invoice.paid", "superseded"],
      ["customer.subscription.updated", "superseded"],
      ["customer.subscription.deleted", "applied"],
    ]);
  });

  it("does not let events about a replaced subscription downgrade the new one; a new subscription reactivates", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const t = NOW_S();
    await deliver(stripeEvent("customer.subscription.deleted", subscription("sub_old", "canceled", tenantId), t));
    expect((await billingOf(ownerKey)).planStatus).toBe("canceled");
    await deliver(stripeEvent("checkout.session.completed", checkoutSession(tenantId, { subscription: "sub_new" }), t + 10));
    expect(await billingOf(ownerKey)).toMatchObject({ planStatus: "active", stripeSubscriptionId: "sub_new" });
    // A late (but newer) event about the old subscription, found through the customer id.
    expect(await (await deliver(stripeEvent("customer.subscription.updated", subscription("sub_old", "unpaid", null), t + 20))).json()).toMatchObject({ outcome: "superseded" });
    expect(await billingOf(ownerKey)).toMatchObject({ planStatus: "active", stripeSubscriptionId: "sub_new" });
  });

  it("finds the tenant by its subscription or customer id when the event carries no tenant id", async () => {
    const { tenantId, ownerKey } = await createTenant();
    await deliver(stripeEvent("checkout.session.completed", checkoutSession(tenantId, { customer: "cus_lookup", subscription: "sub_lookup" })));
    const failed = await deliver(stripeEvent("invoice.payment_failed", invoice("in_l", "sub_lookup", null, { customer: "cus_lookup", status: "open" }), NOW_S() + 1));
    expect(await failed.json()).toMatchObject({ outcome: "applied" });
    expect((await billingOf(ownerKey)).planStatus).toBe("past_due");
  });

  it("acknowledges events it does not act on without touching any tenant", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const unknownTenant = await deliver(stripeEvent("checkout.session.completed", checkoutSession("ten_does_not_exist", { customer: "cus_nobody", subscription: "sub_nobody" })));
    expect(await unknownTenant.json()).toMatchObject({ outcome: "ignored" });
    const otherType = stripeEvent("charge.succeeded", { id: "ch_1", object: "charge", amount: 2900, payment_method_details: { card: { number: "4242424242424242" } } });
    expect(await (await deliver(otherType)).json()).toMatchObject({ outcome: "ignored" });
    const stored = await env.DB.prepare("SELECT * FROM billing_events WHERE id = ?").bind(String(otherType.id)).first<Record<string, unknown>>();
    expect(stored).toMatchObject({ type: "charge.succeeded", tenant_id: null, object_id: null, amount: null });
    // A one-off invoice (no subscription) and an incomplete subscription change nothing.
    expect(await (await deliver(stripeEvent("invoice.payment_failed", invoice("in_oneoff", null, null, { customer: "cus_nobody" })))).json()).toMatchObject({ outcome: "ignored" });
    expect(await (await deliver(stripeEvent("customer.subscription.created", subscription("sub_inc", "incomplete", tenantId)))).json()).toMatchObject({ outcome: "ignored" });
    expect((await billingOf(ownerKey)).planStatus).toBe("none");
  });

  it("stores payment metadata only: no card number, CVC, email, name or address, whatever the payload holds", async () => {
    const { tenantId } = await createTenant();
    const session = checkoutSession(tenantId, {
      customer_details: { email: "mario.rossi@example.com", name: "Mario Rossi", phone: "+393471234567", address: { line1: "Via Roma 1", city: "Milano" } },
      payment_method_details: { card: { number: "4242424242424242", cvc: "123", exp_month: 12, exp_year: 2030, last4: "4242" } },
      card: { number: "4000056655665556", cvc: "999" },
    });
    expect((await deliver(stripeEvent("checkout.session.completed", session))).status).toBe(200);
    await deliver(stripeEvent("invoice.paid", invoice("in_meta", "sub_test_1", tenantId, { payment_intent: { id: "pi_1", payment_method: { card: { number: "4242424242424242" } } } }), NOW_S() + 1));
    const rows = await storedEvents(tenantId);
    expect(rows).toHaveLength(2);
    const columns = ["id", "tenant_id", "type", "outcome", "plan_status", "object_id", "object_status", "customer_id", "subscription_id", "amount", "currency", "livemode", "event_created_at", "received_at", "claim"];
    for (const row of rows) expect(Object.keys(row).sort()).toEqual([...columns].sort());
    const dump = JSON.stringify(rows) + JSON.stringify((await env.DB.prepare("SELECT * FROM audit_log WHERE tenant_id = ?").bind(tenantId).all()).results);
    for (const secret of ["4242424242424242", "4000056655665556", "4242", "cvc", "123", "999", "mario.rossi", "Mario", "Via Roma", "Milano", "+39347"]) expect(dump).not.toContain(secret);
    expect(rows[0]).toMatchObject({ type: "checkout.session.completed", object_status: "paid", amount: 2900, currency: "eur", customer_id: "cus_test_1", subscription_id: "sub_test_1" });
  });

  it("answers 503 and stores nothing when no webhook secret is configured", async () => {
    const mutable = env as { STRIPE_WEBHOOK_SECRET: string };
    const previous = mutable.STRIPE_WEBHOOK_SECRET;
    mutable.STRIPE_WEBHOOK_SECRET = "";
    try {
      const { tenantId } = await createTenant();
      await expectError(await deliver(stripeEvent("checkout.session.completed", checkoutSession(tenantId))), 503, "misconfigured");
      expect(await storedEvents(tenantId)).toEqual([]);
    } finally {
      mutable.STRIPE_WEBHOOK_SECRET = previous;
    }
  });
});

describe("POST /v1/billing/checkout", () => {
  it("creates a subscription Checkout session through the SDK with the tenant id and the admin-page URLs", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const calls = stubStripe();
    const res = await api("POST", "/v1/billing/checkout", ownerKey);
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ id: "cs_test_stub_1", url: "https://checkout.stripe.com/c/pay/cs_test_stub_1" });
    expect(calls).toHaveLength(1);
    const [sent] = calls;
    expect(sent?.url).toBe(`${STRIPE_BASE}/v1/checkout/sessions`);
    expect(sent?.method).toBe("POST");
    expect(sent?.authorization).toBe("Bearer sk_test_parley_0123456789");
    expect(Object.fromEntries(sent?.form ?? [])).toEqual({
      mode: "subscription",
      "line_items[0][price]": "price_parley_basic",
      "line_items[0][quantity]": "1",
      client_reference_id: tenantId,
      "metadata[tenant_id]": tenantId,
      "subscription_data[metadata][tenant_id]": tenantId,
      success_url: "https://parley.test/admin/?billing=success&session_id={CHECKOUT_SESSION_ID}",
      cancel_url: "https://parley.test/admin/?billing=canceled",
    });
    const audit = await env.DB.prepare("SELECT actor_type, target_id, detail FROM audit_log WHERE tenant_id = ? AND action = 'billing.checkout_created'").bind(tenantId).first();
    expect(audit).toEqual({ actor_type: "api_key", target_id: "cs_test_stub_1", detail: JSON.stringify({ price: "price_parley_basic" }) });
  });

  it("lets an admin pick another configured price and reuses the tenant's Stripe customer", async () => {
    const { tenantId, ownerKey } = await createTenant();
    await deliver(stripeEvent("customer.subscription.deleted", subscription("sub_gone", "canceled", tenantId, { customer: "cus_known" })));
    const admin = await createKey(ownerKey, "admin");
    const calls = stubStripe();
    const res = await api("POST", "/v1/billing/checkout", admin, { priceId: "price_parley_pro" });
    expect(res.status).toBe(201);
    expect(calls[0]?.form.get("line_items[0][price]")).toBe("price_parley_pro");
    expect(calls[0]?.form.get("customer")).toBe("cus_known");
  });

  it("is for owner and admin keys only; agents and viewers get 403 and Stripe is not called", async () => {
    const { ownerKey } = await createTenant();
    const calls = stubStripe();
    for (const role of ["agent", "viewer"] as const) {
      const key = await createKey(ownerKey, role);
      await expectError(await api("POST", "/v1/billing/checkout", key), 403, "forbidden");
      await expectError(await api("GET", "/v1/billing", key), 403, "forbidden");
    }
    await expectError(await api("POST", "/v1/billing/checkout"), 401, "unauthorized");
    expect(calls).toHaveLength(0);
  });

  it("refuses bad input with 4xx, calls nothing and stores nothing", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const calls = stubStripe();
    const bad = async (body: unknown, status: number, code: string, path?: string) => {
      const res = await api("POST", "/v1/billing/checkout", ownerKey, body);
      expect(res.status).toBe(status);
      const error = ((await res.json()) as { error: { code: string; issues?: { path: string }[] } }).error;
      expect(error.code).toBe(code);
      if (path) expect(error.issues?.map((i) => i.path)).toContain(path);
    };
    await bad({ priceId: "price_not_configured" }, 400, "validation_error", "priceId");
    await bad({ priceId: "prod_123" }, 400, "validation_error", "priceId");
    await bad({ priceId: 12 }, 400, "validation_error", "priceId");
    await bad({ extra: true }, 400, "validation_error");
    await bad([], 400, "validation_error");
    await expectError(await call("/v1/billing/checkout", { method: "POST", headers: { authorization: `Bearer ${ownerKey}`, "content-type": "text/plain" }, body: "price" }), 415, "unsupported_media_type");
    await expectError(await call("/v1/billing/checkout", { method: "POST", headers: { authorization: `Bearer ${ownerKey}`, "content-type": "application/json" }, body: "{" }), 400, "invalid_json");
    expect(calls).toHaveLength(0);
    expect(await count("SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = ? AND action LIKE 'billing.%'", tenantId)).toBe(0);
    // An active subscription cannot be bought twice.
    await deliver(stripeEvent("checkout.session.completed", checkoutSession(tenantId)));
    await expectError(await api("POST", "/v1/billing/checkout", ownerKey), 409, "conflict");
    expect(calls).toHaveLength(0);
  });

  it("maps Stripe failures: a rejected key is 503 misconfigured, a refused request 502, and nothing is stored", async () => {
    const { tenantId, ownerKey } = await createTenant();
    const error = (status: number, type: string, code: string) => Response.json({ error: { type, code, message: "stub" } }, { status });
    stubStripe(() => error(401, "invalid_request_error", "api_key_invalid"));
    await expectError(await api("POST", "/v1/billing/checkout", ownerKey), 503, "misconfigured");
    vi.restoreAllMocks();
    stubStripe(() => error(400, "invalid_request_error", "resource_missing"));
    await expectError(await api("POST", "/v1/billing/checkout", ownerKey), 502, "internal_error");
    expect(await count("SELECT COUNT(*) AS n FROM audit_log WHERE tenant_id = ? AND action LIKE 'billing.%'", tenantId)).toBe(0);
  });

  it("answers 503 when billing is not configured", async () => {
    const { ownerKey } = await createTenant();
    const mutable = env as { STRIPE_SECRET_KEY: string; STRIPE_PRICE_IDS: string };
    const previous = { key: mutable.STRIPE_SECRET_KEY, prices: mutable.STRIPE_PRICE_IDS };
    try {
      mutable.STRIPE_SECRET_KEY = "";
      await expectError(await api("POST", "/v1/billing/checkout", ownerKey), 503, "misconfigured");
      expect((await billingOf(ownerKey)).billingConfigured).toBe(false);
      mutable.STRIPE_SECRET_KEY = previous.key;
      mutable.STRIPE_PRICE_IDS = "";
      await expectError(await api("POST", "/v1/billing/checkout", ownerKey), 503, "misconfigured");
    } finally {
      mutable.STRIPE_SECRET_KEY = previous.key;
      mutable.STRIPE_PRICE_IDS = previous.prices;
    }
    expect((await billingOf(ownerKey)).billingConfigured).toBe(true);
  });

  it("is described in the OpenAPI document", async () => {
    const doc = (await json(await call("/v1/openapi.json"))) as { paths: Record<string, Record<string, unknown>> };
    expect(Object.keys(doc.paths["/v1/billing"] ?? {})).toContain("get");
    expect(Object.keys(doc.paths["/v1/billing/checkout"] ?? {})).toContain("post");
    expect(Object.keys(doc.paths["/webhooks/stripe"] ?? {})).toContain("post");
  });
});

describe("plan status and the AI", () => {
  it("a canceled tenant's AI is not called (skipped: plan_canceled); `none` and `past_due` keep answering", async () => {
    const aiRequests: string[] = [];
    const realFetch = globalThis.fetch;
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
      const request = new Request(input, init);
      if (!request.url.startsWith("https://ai.test/v1/")) return realFetch(input, init);
      aiRequests.push(await request.text());
      const reply = { reply: "We are open 9-19.", confidence: 0.95, handoff: false, intent: "opening_hours" };
      return Response.json({
        id: "chatcmpl-1",
        object: "chat.completion",
        created: 1,
        model: "gpt-4o-mini",
        choices: [{ index: 0, finish_reason: "stop", message: { role: "assistant", content: JSON.stringify(reply) } }],
      });
    });
    const mutable = env as { OPENAI_API_KEY: string; OPENAI_BASE_URL: string };
    const previous = { key: mutable.OPENAI_API_KEY, base: mutable.OPENAI_BASE_URL };
    mutable.OPENAI_API_KEY = "sk-test-0000";
    mutable.OPENAI_BASE_URL = "https://ai.test/v1";
    try {
      const run = async (plan: (tenantId: string) => Promise<void>) => {
        const tenant = await createTenant("Billing AI", { aiReplies: true });
        expect((await api("PATCH", "/v1/settings", tenant.ownerKey, { ai: { summaries: true } })).status).toBe(200);
        await plan(tenant.tenantId);
        const channel = await createCustomChannel(tenant.ownerKey);
        const res = (await json(await postCustom(channel.id, channel.secret, { type: "message", id: `bill-${eventId()}`, from: "+393331234567", text: "What are your opening hours?" }))) as { conversationId: string };
        await settle(res.conversationId);
        const health = (await json(await api("GET", "/v1/agent-health", tenant.ownerKey))) as { days: { reasons: Record<string, number> }[] };
        const summary = await api("POST", `/v1/conversations/${res.conversationId}/summary`, tenant.ownerKey);
        const summaryError = summary.status === 200 ? "" : ((await summary.json()) as { error: { message: string } }).error.message;
        return { reasons: health.days[0]?.reasons ?? {}, summaryStatus: summary.status, summaryError };
      };

      const canceled = await run(async (tenantId) => {
        await deliver(stripeEvent("customer.subscription.deleted", subscription("sub_ai", "canceled", tenantId)));
      });
      expect(canceled.reasons).toEqual({ "skipped:plan_canceled": 1 });
      expect(canceled.summaryStatus).toBe(409);
      expect(canceled.summaryError).toMatch(/subscription is canceled/);
      expect(aiRequests).toHaveLength(0);

      const none = await run(async () => undefined);
      expect(none.reasons).toEqual({ "sent:answered": 1 });
      expect(none.summaryStatus).toBe(200);
      expect(aiRequests).toHaveLength(2);

      const pastDue = await run(async (tenantId) => {
        await deliver(stripeEvent("invoice.payment_failed", invoice("in_ai", "sub_ai2", tenantId, { status: "open" })));
      });
      expect(pastDue.reasons).toEqual({ "sent:answered": 1 });
      expect(aiRequests).toHaveLength(4);
    } finally {
      mutable.OPENAI_API_KEY = previous.key;
      mutable.OPENAI_BASE_URL = previous.base;
    }
  });
});
