/**
 * Stripe billing: Checkout sessions for the tenant's subscription and the
 * tenant's plan status. Plan changes arrive only through the signed Stripe
 * webhook (workers/webhooks/stripe.ts); this router never trusts the browser
 * about payment.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import Stripe from "stripe";
import { auditStatement, keyAudit } from "./support/audit";
import { requireApiKey } from "./support/auth";
import type { AppEnv, AuthContext } from "./support/context";
import { ApiError, forbidden } from "./support/errors";
import { bearerSecurity, createRouter, errorResponses, publicOrigin } from "./support/router";

/** `/v1/billing`: plan status and Checkout sessions (owner and admin keys). */
export const billing = createRouter();
billing.use("*", requireApiKey);

/** Plan states a tenant can be in. `none`: billing never configured (self-hosted, dev, demo): AI stays on. */
export const PLAN_STATUSES = ["none", "active", "past_due", "canceled"] as const;
export type PlanStatus = (typeof PLAN_STATUSES)[number];

/** Timeout of one Stripe API request (ms). */
const STRIPE_TIMEOUT_MS = 20_000;

/**
 * A Stripe client for the Workers runtime: fetch-based HTTP client, API host
 * taken from `STRIPE_API_BASE` (an origin such as `https://api.stripe.com` or
 * `http://127.0.0.1:12111` for a local stand-in; a path is not supported).
 */
export function stripeClient(env: Env): Stripe {
  const key = env.STRIPE_SECRET_KEY ?? "";
  if (!key) throw new ApiError(503, "misconfigured", "billing is not configured (STRIPE_SECRET_KEY is empty)");
  let base: URL;
  try {
    base = new URL(env.STRIPE_API_BASE || "https://api.stripe.com");
  } catch {
    throw new ApiError(503, "misconfigured", "STRIPE_API_BASE is not a URL");
  }
  if (base.protocol !== "https:" && base.protocol !== "http:") throw new ApiError(503, "misconfigured", "STRIPE_API_BASE must be http(s)");
  const protocol = base.protocol === "http:" ? "http" : "https";
  return new Stripe(key, {
    // Resolved at call time, so the runtime's (or a test's) fetch is the one used.
    httpClient: Stripe.createFetchHttpClient((input, init) => fetch(input, init)),
    host: base.hostname,
    port: base.port || (protocol === "http" ? 80 : 443),
    protocol,
    maxNetworkRetries: 1,
    timeout: STRIPE_TIMEOUT_MS,
    telemetry: false,
  });
}

/** The Stripe price ids configured in `STRIPE_PRICE_IDS` (comma-separated; the first is the default). */
export function configuredPrices(env: Env): string[] {
  return (env.STRIPE_PRICE_IDS ?? "")
    .split(",")
    .map((p) => p.trim())
    .filter((p) => p.length > 0);
}

/** Billing is owner/admin business: agents and viewers get 403. */
function requireBillingRole(c: Context<AppEnv>): AuthContext {
  const auth = c.get("auth");
  if (auth.role !== "owner" && auth.role !== "admin") throw forbidden("only owner and admin keys manage billing");
  return auth;
}

const CheckoutBody = z
  .object({
    priceId: z
      .string()
      .regex(/^price_[A-Za-z0-9_]{1,200}$/, "a Stripe price id (price_…)")
      .optional()
      .openapi({ description: "One of the configured prices (STRIPE_PRICE_IDS); default: the first" }),
  })
  .strict()
  .openapi("BillingCheckoutRequest");

const CheckoutSchema = z
  .object({ id: z.string().openapi({ example: "cs_test_a1b2c3" }), url: z.string().openapi({ example: "https://checkout.stripe.com/c/pay/cs_test_a1b2c3" }) })
  .openapi("BillingCheckout");

const BillingEventSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    outcome: z.string(),
    planStatus: z.string().nullable(),
    objectId: z.string().nullable(),
    objectStatus: z.string().nullable(),
    amount: z.number().int().nullable(),
    currency: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi("BillingEvent");

const BillingSchema = z
  .object({
    planStatus: z.enum(PLAN_STATUSES),
    aiEnabled: z.boolean().openapi({ description: "false only when the plan is canceled" }),
    currentPeriodEnd: z.string().nullable(),
    stripeCustomerId: z.string().nullable(),
    stripeSubscriptionId: z.string().nullable(),
    lastEventAt: z.string().nullable(),
    billingConfigured: z.boolean(),
    recentEvents: z.array(BillingEventSchema),
  })
  .openapi("Billing");

const misconfigured = { description: "Billing is not configured on this deployment", content: errorResponses[400].content };

interface TenantBillingRow {
  plan_status: string;
  stripe_customer_id: string | null;
  stripe_subscription_id: string | null;
  plan_period_end: number | null;
  plan_event_at: number | null;
}

const planStatusOf = (value: string): PlanStatus => z.enum(PLAN_STATUSES).catch("none").parse(value);
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

async function tenantBilling(db: D1Database, tenantId: string): Promise<TenantBillingRow> {
  const row = await db
    .prepare("SELECT plan_status, stripe_customer_id, stripe_subscription_id, plan_period_end, plan_event_at FROM tenants WHERE id = ?")
    .bind(tenantId)
    .first<TenantBillingRow>();
  if (!row) throw new ApiError(404, "not_found", "tenant not found");
  return row;
}

billing.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Billing"],
    summary: "The tenant's plan status and Stripe ids (metadata only)",
    description: "Owner and admin keys. `none` means billing was never set up (AI stays on); only `canceled` turns the AI off.",
    security: bearerSecurity,
    responses: { 200: { description: "Plan status", content: { "application/json": { schema: BillingSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireBillingRole(c);
    const row = await tenantBilling(c.env.DB, auth.tenantId);
    const events = await c.env.DB.prepare(
      "SELECT id, type, outcome, plan_status, object_id, object_status, amount, currency, event_created_at FROM billing_events WHERE tenant_id = ? ORDER BY event_created_at DESC, received_at DESC LIMIT 20",
    )
      .bind(auth.tenantId)
      .all<{ id: string; type: string; outcome: string; plan_status: string | null; object_id: string | null; object_status: string | null; amount: number | null; currency: string | null; event_created_at: number }>();
    const planStatus = planStatusOf(row.plan_status);
    return c.json(
      {
        planStatus,
        aiEnabled: planStatus !== "canceled",
        currentPeriodEnd: iso(row.plan_period_end),
        stripeCustomerId: row.stripe_customer_id,
        stripeSubscriptionId: row.stripe_subscription_id,
        lastEventAt: iso(row.plan_event_at),
        billingConfigured: (c.env.STRIPE_SECRET_KEY ?? "") !== "" && configuredPrices(c.env).length > 0,
        recentEvents: events.results.map((e) => ({
          id: e.id,
          type: e.type,
          outcome: e.outcome,
          planStatus: e.plan_status,
          objectId: e.object_id,
          objectStatus: e.object_status,
          amount: e.amount,
          currency: e.currency,
          createdAt: new Date(e.event_created_at).toISOString(),
        })),
      },
      200,
    );
  },
);

billing.openapi(
  createRoute({
    method: "post",
    path: "/checkout",
    tags: ["Billing"],
    summary: "Start a Stripe Checkout session for the tenant's subscription",
    description:
      "Owner and admin keys. Returns the Checkout URL to send the browser to; the plan becomes active when Stripe's signed webhook says so, never on the redirect. 409 while a subscription is active.",
    security: bearerSecurity,
    request: { body: { required: false, content: { "application/json": { schema: CheckoutBody } } } },
    responses: {
      201: { description: "Checkout session", content: { "application/json": { schema: CheckoutSchema } } },
      ...errorResponses,
      409: { description: "The tenant already has an active subscription", content: errorResponses[400].content },
      502: { description: "Stripe could not be reached or failed", content: errorResponses[400].content },
      503: misconfigured,
    },
  }),
  async (c) => {
    const auth = requireBillingRole(c);
    // No body means "the default price"; a body, when sent, is validated by the route schema.
    const body = c.req.valid("json");
    const prices = configuredPrices(c.env);
    const stripe = stripeClient(c.env);
    if (prices.length === 0) throw new ApiError(503, "misconfigured", "billing is not configured (STRIPE_PRICE_IDS is empty)");
    const price = body.priceId ?? prices[0];
    if (!price || !prices.includes(price)) {
      throw new ApiError(400, "validation_error", "request is invalid", [{ path: "priceId", message: "not one of the configured prices" }]);
    }
    const row = await tenantBilling(c.env.DB, auth.tenantId);
    if (row.plan_status === "active") throw new ApiError(409, "conflict", "the tenant already has an active subscription");
    const origin = publicOrigin(c.env, c.req.url);
    let session: Stripe.Checkout.Session;
    try {
      session = await stripe.checkout.sessions.create({
        mode: "subscription",
        line_items: [{ price, quantity: 1 }],
        client_reference_id: auth.tenantId,
        metadata: { tenant_id: auth.tenantId },
        subscription_data: { metadata: { tenant_id: auth.tenantId } },
        ...(row.stripe_customer_id ? { customer: row.stripe_customer_id } : {}),
        success_url: `${origin}/admin/?billing=success&session_id={CHECKOUT_SESSION_ID}`,
        cancel_url: `${origin}/admin/?billing=canceled`,
      });
    } catch (err) {
      if (err instanceof Stripe.errors.StripeAuthenticationError || err instanceof Stripe.errors.StripePermissionError) {
        throw new ApiError(503, "misconfigured", "Stripe rejected STRIPE_SECRET_KEY");
      }
      if (err instanceof Stripe.errors.StripeInvalidRequestError) throw new ApiError(502, "internal_error", `Stripe refused the checkout session (${err.code ?? "invalid_request"})`);
      console.error("stripe checkout failed", err instanceof Error ? err.name : "unknown");
      throw new ApiError(502, "internal_error", "Stripe could not be reached; try again later");
    }
    if (!session.url) throw new ApiError(502, "internal_error", "Stripe returned no checkout URL");
    await auditStatement(c.env.DB, keyAudit(auth, "billing.checkout_created", "checkout_session", session.id, { price })).run();
    return c.json({ id: session.id, url: session.url }, 201);
  },
);
