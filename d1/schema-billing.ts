/**
 * D1 tables for Stripe billing (issue 6). Payment events are kept as metadata
 * only: ids, type, status, amount, currency and times. No card data (PAN, CVV,
 * expiry), no billing address, no customer name or email ever reaches D1: the
 * webhook picks these columns out of the event and drops everything else.
 * The tenant's plan columns live on `tenants` (d1/schema.ts).
 */
import { index, integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/** What a received Stripe event did: changed the plan, lost to a newer event, or concerned nothing Parley tracks. */
export const BILLING_EVENT_OUTCOMES = ["applied", "superseded", "ignored"] as const;
export type BillingEventOutcome = (typeof BILLING_EVENT_OUTCOMES)[number];

/**
 * Every verified Stripe event, once (the primary key is Stripe's event id, so
 * a redelivery is recognised and acknowledged without being applied twice).
 * Retention category: payment event metadata (36 months).
 */
export const billingEvents = sqliteTable(
  "billing_events",
  {
    /** Stripe's event id (`evt_…`). */
    id: text("id").primaryKey(),
    /** The tenant the event concerns; NULL when it names no known tenant. */
    tenantId: text("tenant_id"),
    type: text("type").notNull(),
    outcome: text("outcome", { enum: BILLING_EVENT_OUTCOMES }).notNull(),
    /** The plan status the event maps to (`active`, `past_due`, `canceled`), if any. */
    planStatus: text("plan_status"),
    /** Id and status of the event's object (checkout session, subscription or invoice). */
    objectId: text("object_id"),
    objectStatus: text("object_status"),
    customerId: text("customer_id"),
    subscriptionId: text("subscription_id"),
    /** Smallest currency unit (cents), as Stripe reports it. */
    amount: integer("amount"),
    currency: text("currency"),
    livemode: integer("livemode").notNull().default(0),
    /** The event's `created` (Unix ms): orders events that arrive out of order. */
    eventCreatedAt: integer("event_created_at").notNull(),
    receivedAt: integer("received_at").notNull(),
    /** Random token of the delivery that inserted the row: only that delivery applies the plan change. */
    claim: text("claim").notNull(),
  },
  (t) => [index("billing_events_tenant_idx").on(t.tenantId, t.eventCreatedAt), index("billing_events_received_idx").on(t.receivedAt)],
);
