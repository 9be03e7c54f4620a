/**
 * Stripe webhook (`POST /webhooks/stripe`): verifies `Stripe-Signature` over
 * the exact bytes received (300 s tolerance) before anything is stored, records
 * each event once by its id, and moves the tenant's plan status forward.
 *
 * Ordering: Stripe does not deliver events in order. The tenant row keeps the
 * `created` time of the event that last set its plan; an older event is stored
 * (as `superseded`) but never overrides a newer one, and an event about a
 * subscription the tenant has since replaced never downgrades it. Recording the
 * event and changing the plan happen in one D1 batch (a transaction), so a
 * redelivery can neither apply twice nor leave half a change behind.
 *
 * Only metadata is stored: ids, type, status, amount, currency and times. The
 * event body is parsed with schemas that pick those fields; card details,
 * addresses, names and emails are dropped before anything reaches D1.
 */
import { createRoute } from "@hono/zod-openapi";
import Stripe from "stripe";
import { z } from "zod";
import { newId } from "../../lib/ids";
import type { BillingEventOutcome } from "../../d1/schema-billing";
import type { PlanStatus } from "../billing";
import { auditStatementIfExists, logSecurityEvent } from "../support/audit";
import { rawBody, requireContentType, strictUtf8 } from "../support/body";
import { ApiError, zodIssues } from "../support/errors";
import { createRouter, ErrorSchema } from "../support/router";

/** `/webhooks/stripe`: Stripe billing events, verified before anything is stored. */
export const stripeWebhooks = createRouter();

/** Largest age of a signed event Parley accepts (seconds), as Stripe recommends. */
export const STRIPE_SIGNATURE_TOLERANCE_S = 300;

const cryptoProvider = Stripe.createSubtleCryptoProvider();

/** Event types that can move a tenant's plan; every other verified event is stored as `ignored`. */
export const HANDLED_EVENT_TYPES = [
  "checkout.session.completed",
  "customer.subscription.created",
  "customer.subscription.updated",
  "customer.subscription.deleted",
  "invoice.paid",
  "invoice.payment_failed",
] as const;
type HandledType = (typeof HANDLED_EVENT_TYPES)[number];
const isHandled = (type: string): type is HandledType => (HANDLED_EVENT_TYPES as readonly string[]).includes(type);

/** Order of plan states when two events carry the same `created` second: the later state in this list wins. */
const PLAN_RANK: Readonly<Record<PlanStatus, number>> = { none: 0, past_due: 1, active: 2, canceled: 3 };

const StripeId = z.string().min(1).max(255);
/** An expandable reference: an id, or the expanded object (of which only the id is kept). */
const Ref = z
  .union([StripeId, z.object({ id: StripeId })])
  .nullish()
  .transform((v) => (v == null ? null : typeof v === "string" ? v : v.id));
const Metadata = z.record(z.string(), z.string()).nullish();
const Currency = z.string().max(16).nullish();
const Amount = z.number().int().nullish();

const EventSchema = z.object({
  id: StripeId,
  type: z.string().min(1).max(128),
  created: z.number().int().nonnegative(),
  livemode: z.boolean().default(false),
  data: z.object({ object: z.record(z.string(), z.unknown()) }),
});

const SessionSchema = z.object({
  id: StripeId,
  mode: z.string().max(64).nullish(),
  status: z.string().max(64).nullish(),
  payment_status: z.string().max(64).nullish(),
  client_reference_id: z.string().max(255).nullish(),
  metadata: Metadata,
  customer: Ref,
  subscription: Ref,
  amount_total: Amount,
  currency: Currency,
});

const SubscriptionSchema = z.object({
  id: StripeId,
  status: z.string().max(64),
  customer: Ref,
  metadata: Metadata,
  currency: Currency,
  // Before API version 2025-03-31 the period was on the subscription; since then it is per item.
  current_period_end: z.number().int().nullish(),
  items: z.object({ data: z.array(z.object({ current_period_end: z.number().int().nullish() })) }).nullish(),
});

const InvoiceSchema = z.object({
  id: StripeId,
  status: z.string().max(64).nullish(),
  customer: Ref,
  amount_paid: Amount,
  amount_due: Amount,
  currency: Currency,
  // Before API version 2025-03-31 `subscription` / `subscription_details`; since then under `parent`.
  subscription: Ref,
  subscription_details: z.object({ metadata: Metadata }).nullish(),
  parent: z.object({ subscription_details: z.object({ subscription: Ref, metadata: Metadata }).nullish() }).nullish(),
  lines: z.object({ data: z.array(z.object({ period: z.object({ end: z.number().int() }).nullish() })) }).nullish(),
});

/** What an event says, reduced to the metadata Parley keeps. */
export interface BillingFact {
  tenantHint: string | null;
  customerId: string | null;
  subscriptionId: string | null;
  /** The plan state the event implies; null: it changes nothing. */
  planStatus: Exclude<PlanStatus, "none"> | null;
  periodEnd: number | null;
  objectId: string | null;
  objectStatus: string | null;
  amount: number | null;
  currency: string | null;
}

const EMPTY_FACT: BillingFact = {
  tenantHint: null,
  customerId: null,
  subscriptionId: null,
  planStatus: null,
  periodEnd: null,
  objectId: null,
  objectStatus: null,
  amount: null,
  currency: null,
};

/** Subscription status → plan status; `incomplete` (first payment pending) changes nothing. */
export function planFromSubscriptionStatus(status: string): BillingFact["planStatus"] {
  switch (status) {
    case "active":
    case "trialing":
      return "active";
    case "past_due":
    case "unpaid":
    case "paused":
      return "past_due";
    case "canceled":
    case "incomplete_expired":
      return "canceled";
    default:
      return null;
  }
}

function parseObject<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ApiError(400, "validation_error", "event is invalid", zodIssues(parsed.error).map((i) => ({ ...i, path: `data.object.${i.path}` })));
  return parsed.data;
}

const seconds = (s: number | null | undefined): number | null => (s == null ? null : s * 1000);
const maxOf = (values: (number | null | undefined)[]): number | null => {
  const present = values.filter((v): v is number => typeof v === "number");
  return present.length > 0 ? Math.max(...present) : null;
};

/** Reduces a handled event's object to a {@link BillingFact} (pure). */
export function describeEvent(type: HandledType, object: unknown): BillingFact {
  switch (type) {
    case "checkout.session.completed": {
      const s = parseObject(SessionSchema, object);
      const subscribed = s.mode === "subscription" && s.subscription !== null && s.payment_status !== "unpaid";
      return {
        ...EMPTY_FACT,
        tenantHint: s.client_reference_id ?? s.metadata?.tenant_id ?? null,
        customerId: s.customer,
        subscriptionId: s.subscription,
        // Delayed payment methods complete the session unpaid: the plan waits for invoice.paid.
        planStatus: subscribed ? "active" : null,
        objectId: s.id,
        objectStatus: s.payment_status ?? s.status ?? null,
        amount: s.amount_total ?? null,
        currency: s.currency ?? null,
      };
    }
    case "customer.subscription.created":
    case "customer.subscription.updated":
    case "customer.subscription.deleted": {
      const s = parseObject(SubscriptionSchema, object);
      return {
        ...EMPTY_FACT,
        tenantHint: s.metadata?.tenant_id ?? null,
        customerId: s.customer,
        subscriptionId: s.id,
        planStatus: type === "customer.subscription.deleted" ? "canceled" : planFromSubscriptionStatus(s.status),
        periodEnd: seconds(s.current_period_end ?? maxOf(s.items?.data.map((i) => i.current_period_end) ?? [])),
        objectId: s.id,
        objectStatus: s.status,
        currency: s.currency ?? null,
      };
    }
    case "invoice.paid":
    case "invoice.payment_failed": {
      const i = parseObject(InvoiceSchema, object);
      const details = i.parent?.subscription_details;
      const subscriptionId = details?.subscription ?? i.subscription;
      const paid = type === "invoice.paid";
      return {
        ...EMPTY_FACT,
        tenantHint: details?.metadata?.tenant_id ?? i.subscription_details?.metadata?.tenant_id ?? null,
        customerId: i.customer,
        subscriptionId,
        // One-off invoices say nothing about the subscription.
        planStatus: subscriptionId === null ? null : paid ? "active" : "past_due",
        periodEnd: paid && subscriptionId !== null ? seconds(maxOf(i.lines?.data.map((l) => l.period?.end) ?? [])) : null,
        objectId: i.id,
        objectStatus: i.status ?? null,
        amount: (paid ? i.amount_paid : i.amount_due) ?? null,
        currency: i.currency ?? null,
      };
    }
  }
}

/** The tenant an event concerns: the id it carries (if that tenant exists), else the one holding its subscription or customer. */
async function resolveTenant(db: D1Database, fact: BillingFact): Promise<string | null> {
  if (fact.tenantHint) {
    const row = await db.prepare("SELECT id FROM tenants WHERE id = ?").bind(fact.tenantHint).first<{ id: string }>();
    if (row) return row.id;
  }
  for (const [column, value] of [
    ["stripe_subscription_id", fact.subscriptionId],
    ["stripe_customer_id", fact.customerId],
  ] as const) {
    if (!value) continue;
    const row = await db.prepare(`SELECT id FROM tenants WHERE ${column} = ? ORDER BY created_at DESC LIMIT 1`).bind(value).first<{ id: string }>();
    if (row) return row.id;
  }
  return null;
}

async function refuse(env: Env, reason: string): Promise<never> {
  await logSecurityEvent(env.DB, { tenantId: null, channelId: null, kind: "stripe_signature", reason });
  throw new ApiError(401, "invalid_signature", "webhook signature is missing, invalid or expired");
}

const RANK_SQL = "CASE plan_status WHEN 'past_due' THEN 1 WHEN 'active' THEN 2 WHEN 'canceled' THEN 3 ELSE 0 END";

const errorContent = { "application/json": { schema: ErrorSchema } };

stripeWebhooks.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Webhooks"],
    summary: "Stripe billing events",
    description:
      "JSON, verified with Stripe-Signature (t=<unix>,v1=<hex HMAC-SHA256 of \"t.body\"> with STRIPE_WEBHOOK_SECRET), 300 s tolerance. Handles checkout.session.completed, customer.subscription.created|updated|deleted, invoice.paid and invoice.payment_failed; other verified events are acknowledged. Each event id is applied once.",
    responses: {
      200: { description: "Accepted: `{ received, duplicate, outcome }` (duplicates are acknowledged and not applied again)" },
      400: { description: "Signed, but not a valid event; nothing stored", content: errorContent },
      401: { description: "Signature missing, invalid or older than 300 s; nothing stored", content: errorContent },
      413: { description: "Body over 256 KiB", content: errorContent },
      415: { description: "Wrong content type", content: errorContent },
      503: { description: "STRIPE_WEBHOOK_SECRET is not configured", content: errorContent },
    },
  }),
  async (c) => {
    requireContentType(c, "application/json");
    const secret = c.env.STRIPE_WEBHOOK_SECRET ?? "";
    if (!secret) throw new ApiError(503, "misconfigured", "billing is not configured (STRIPE_WEBHOOK_SECRET is empty)");
    const body = strictUtf8(await rawBody(c));
    const header = c.req.header("stripe-signature");
    if (!header) return refuse(c.env, "missing");
    let verified: unknown;
    try {
      verified = await Stripe.webhooks.constructEventAsync(body, header, secret, STRIPE_SIGNATURE_TOLERANCE_S, cryptoProvider);
    } catch (err) {
      if (err instanceof Stripe.errors.StripeSignatureVerificationError) {
        return refuse(c.env, /tolerance/i.test(err.message) ? "expired" : /unable to extract|no signatures found with expected scheme/i.test(err.message) ? "malformed" : "mismatch");
      }
      // The signature matched, but the body is not JSON.
      throw new ApiError(400, "invalid_json", "body is not valid JSON");
    }
    const parsed = EventSchema.safeParse(verified);
    if (!parsed.success) throw new ApiError(400, "validation_error", "event is invalid", zodIssues(parsed.error));
    const event = parsed.data;
    const fact = isHandled(event.type) ? describeEvent(event.type, event.data.object) : EMPTY_FACT;
    const tenantId = isHandled(event.type) ? await resolveTenant(c.env.DB, fact) : null;
    const eventAt = event.created * 1000;
    const claim = newId("claim");
    const db = c.env.DB;
    const changesPlan = tenantId !== null && fact.planStatus !== null;
    const initial: BillingEventOutcome = changesPlan ? "superseded" : "ignored";

    const statements: D1PreparedStatement[] = [
      db
        .prepare(
          `INSERT INTO billing_events (id, tenant_id, type, outcome, plan_status, object_id, object_status, customer_id, subscription_id, amount, currency, livemode, event_created_at, received_at, claim)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
        )
        .bind(
          event.id,
          tenantId,
          event.type,
          initial,
          fact.planStatus,
          fact.objectId,
          fact.objectStatus,
          fact.customerId,
          fact.subscriptionId,
          fact.amount,
          fact.currency,
          event.livemode ? 1 : 0,
          eventAt,
          Date.now(),
          claim,
        ),
    ];
    if (changesPlan && fact.planStatus) {
      statements.push(
        // Applies only for the delivery that inserted the event, only if no newer event set the plan,
        // and (unless it activates) only for the subscription the tenant is on.
        db
          .prepare(
            `UPDATE tenants SET plan_status = ?1, stripe_customer_id = COALESCE(?2, stripe_customer_id), stripe_subscription_id = COALESCE(?3, stripe_subscription_id),
               plan_period_end = COALESCE(?4, plan_period_end), plan_event_at = ?5, plan_event_id = ?6
             WHERE id = ?7
               AND (plan_event_at IS NULL OR plan_event_at < ?5 OR (plan_event_at = ?5 AND ${RANK_SQL} <= ?9))
               AND (?1 = 'active' OR ?3 IS NULL OR stripe_subscription_id IS NULL OR stripe_subscription_id = ?3)
               AND EXISTS (SELECT 1 FROM billing_events WHERE id = ?6 AND claim = ?8)`,
          )
          .bind(fact.planStatus, fact.customerId, fact.subscriptionId, fact.periodEnd, eventAt, event.id, tenantId, claim, PLAN_RANK[fact.planStatus]),
        db
          .prepare("UPDATE billing_events SET outcome = 'applied' WHERE id = ? AND claim = ? AND EXISTS (SELECT 1 FROM tenants WHERE id = ? AND plan_event_id = ?)")
          .bind(event.id, claim, tenantId, event.id),
        auditStatementIfExists(
          db,
          {
            tenantId,
            actorType: "provider",
            actorId: "stripe",
            action: "billing.plan_changed",
            targetType: "tenant",
            targetId: tenantId,
            detail: { planStatus: fact.planStatus, eventType: event.type, eventId: event.id },
          },
          "SELECT 1 FROM billing_events WHERE id = ? AND claim = ? AND outcome = 'applied'",
          event.id,
          claim,
        ),
      );
    }
    const results = await db.batch(statements);
    if ((results[0]?.meta.changes ?? 0) === 0) return c.json({ received: true, duplicate: true }, 200);
    const stored = await db.prepare("SELECT outcome FROM billing_events WHERE id = ?").bind(event.id).first<{ outcome: BillingEventOutcome }>();
    return c.json({ received: true, duplicate: false, outcome: stored?.outcome ?? initial }, 200);
  },
);
