/**
 * Retention maths from the privacy policy Parley implements: a period per data
 * category, tenant overrides within legal bounds, and expiry dates. Pure: no
 * Workers imports, no clock (callers pass "now").
 */

/** Data categories with a retention period. */
export const RETENTION_CATEGORIES = [
  "conversation_logs",
  "recordings",
  "api_logs",
  "security_logs",
  "support_tickets",
  "payment_metadata",
  "ecommerce_scheduling",
  "product_analytics",
  "integration_configs",
  "billing_invoices",
  "customer_account",
  "backups",
] as const;
export type RetentionCategory = (typeof RETENTION_CATEGORIES)[number];

/** Average days in a month, so "24 months" means two calendar years on average. */
const MONTH = 30.4375;
const months = (n: number) => Math.round(n * MONTH);

/** Default, minimum and maximum retention (days) per category, and what the period counts from. */
export interface CategoryRule {
  defaultDays: number;
  /** The legal floor: a tenant cannot keep the data for less. */
  minDays: number;
  maxDays: number;
  /** What the period is measured from. */
  from: string;
  /** Whether tenants may change it at all. */
  configurable: boolean;
  note: string;
}

/** The policy table (DESIGN.md, "Default retention"). */
export const RETENTION_RULES: Readonly<Record<RetentionCategory, CategoryRule>> = {
  conversation_logs: { defaultDays: months(24), minDays: 1, maxDays: months(120), from: "last activity", configurable: true, note: "end-user conversations; tenant-configurable" },
  recordings: { defaultDays: months(12), minDays: 1, maxDays: months(60), from: "creation", configurable: true, note: "meeting and call recordings" },
  api_logs: { defaultDays: months(12), minDays: 1, maxDays: months(18), from: "creation", configurable: true, note: "API and webhook call logs; at most 18 months" },
  security_logs: { defaultDays: months(12), minDays: months(6), maxDays: months(24), from: "creation", configurable: true, note: "extended while an investigation is open (legal hold)" },
  support_tickets: { defaultDays: months(36), minDays: months(12), maxDays: months(60), from: "closure", configurable: true, note: "" },
  payment_metadata: { defaultDays: months(36), minDays: months(12), maxDays: months(120), from: "event", configurable: true, note: "no PAN or CVV is ever stored" },
  ecommerce_scheduling: { defaultDays: months(24), minDays: 1, maxDays: months(120), from: "last activity", configurable: true, note: "tenant-configurable" },
  product_analytics: { defaultDays: months(24), minDays: 1, maxDays: months(24), from: "collection", configurable: true, note: "pseudonymous" },
  integration_configs: { defaultDays: 30, minDays: 0, maxDays: 90, from: "deactivation", configurable: true, note: "OAuth tokens and integration configs: while active + 30 days" },
  billing_invoices: { defaultDays: months(120), minDays: months(120), maxDays: months(144), from: "issue", configurable: true, note: "legal floor: cannot be shortened below 10 years" },
  customer_account: { defaultDays: months(24), minDays: months(24), maxDays: months(120), from: "end of contract", configurable: true, note: "contract term + 24 months" },
  backups: { defaultDays: 30, minDays: 30, maxDays: 30, from: "creation", configurable: false, note: "rolling 30 days, then unrecoverable" },
};

/** Conversations with special categories of data (GDPR art. 9) are kept at most this long. */
export const SPECIAL_CATEGORY_MAX_DAYS = months(6);

/** Agent-health dedupe keys only guard against at-least-once retries: a week is plenty. */
export const AGENT_HEALTH_KEY_DAYS = 7;

export const DAY_MS = 86_400_000;

/** Type guard for category names read from storage or requests. */
export function isRetentionCategory(value: string): value is RetentionCategory {
  return (RETENTION_CATEGORIES as readonly string[]).includes(value);
}

/**
 * Why a requested period is refused, or null. A fixed category accepts only
 * its fixed period (which changes nothing).
 */
export function retentionProblem(category: RetentionCategory, days: number): string | null {
  const rule = RETENTION_RULES[category];
  if (!Number.isInteger(days)) return "days must be a whole number";
  if (!rule.configurable) return days === rule.defaultDays ? null : `${category} retention is fixed at ${rule.defaultDays} days`;
  if (days < rule.minDays) return `${category} cannot be kept for less than ${rule.minDays} days (legal floor)`;
  if (days > rule.maxDays) return `${category} cannot be kept for more than ${rule.maxDays} days`;
  return null;
}

/**
 * The period in force: the tenant's override, or the default. A stored
 * override outside the current bounds (the rules changed after it was saved)
 * is clamped into them, so a floor always wins.
 */
export function effectiveDays(category: RetentionCategory, override: number | undefined | null): number {
  const rule = RETENTION_RULES[category];
  if (!rule.configurable || override === undefined || override === null || !Number.isFinite(override)) return rule.defaultDays;
  return Math.min(rule.maxDays, Math.max(rule.minDays, Math.trunc(override)));
}

/** A tenant's periods in force for every category. */
export type RetentionPolicy = Readonly<Record<RetentionCategory, number>>;

/** Resolves stored overrides (unknown categories ignored) into the periods in force. */
export function resolvePolicy(overrides: Iterable<{ category: string; days: number }>): RetentionPolicy {
  const found = new Map<RetentionCategory, number>();
  for (const o of overrides) if (isRetentionCategory(o.category)) found.set(o.category, o.days);
  const policy = {} as Record<RetentionCategory, number>;
  for (const category of RETENTION_CATEGORIES) policy[category] = effectiveDays(category, found.get(category));
  return policy;
}

/** Days a conversation is kept: the policy, shortened for special categories. */
export function conversationRetentionDays(policyDays: number, specialCategory: boolean): number {
  return specialCategory ? Math.min(policyDays, SPECIAL_CATEGORY_MAX_DAYS) : policyDays;
}

/** When something counted from `fromMs` expires. */
export function expiresAt(fromMs: number, days: number): number {
  return fromMs + days * DAY_MS;
}

/** Latest "from" time still expired at `nowMs` (items at or before it are due). */
export function expiryCutoff(nowMs: number, days: number): number {
  return nowMs - days * DAY_MS;
}

/** Whether something counted from `fromMs` is due for deletion at `nowMs`. */
export function isExpired(fromMs: number, days: number, nowMs: number): boolean {
  return fromMs <= expiryCutoff(nowMs, days);
}
