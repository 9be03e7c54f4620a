/**
 * Per-recipient campaign decisions (consent, opt-out, RPO, minors, DSR
 * restrictions, soft spam), RPO register freshness and message templates.
 * Pure: no Workers imports; every rule here is unit tested.
 */
import type { CampaignPurpose, PurposeState } from "./purposes";
import { isUnderAge } from "./minors";

/** Every recorded outcome of a campaign recipient. */
export const CAMPAIGN_DECISIONS = ["sent", "failed", "no_consent", "opted_out", "rpo_registered", "minor_without_authorization", "restricted"] as const;
export type CampaignDecision = (typeof CAMPAIGN_DECISIONS)[number];

/** Decisions that stop a recipient before anything is sent. */
export type BlockReason = Exclude<CampaignDecision, "sent" | "failed">;

/** Why a recipient may be contacted. */
export type SendBasis = "consent" | "soft_spam" | "public_directory";

/** The register may be used for this long after it was consulted (days). */
export const RPO_MAX_AGE_DAYS = 15;
const DAY_MS = 24 * 60 * 60 * 1000;

/** Everything the rules need to know about one recipient. */
export interface RecipientFacts {
  purpose: CampaignPurpose;
  /** State of the campaign's purpose for this subject. */
  consent: PurposeState;
  /** State of `parental_authorization` for this subject. */
  parentalAuthorization: PurposeState;
  /** A data-subject request restricts processing (GDPR art. 18). */
  restricted: boolean;
  /** Youngest known age in years, or null when unknown. */
  age: number | null;
  minimumAge: number;
  /** The tenant says the recipient bought from it (art. 130(4) soft spam; e-mail only). */
  existingCustomer: boolean;
  /** The number comes from a public phone directory (telemarketing opt-out regime, art. 130(3-bis)). */
  publicDirectory: boolean;
  /** Telemarketing only: is the number on the tenant's RPO copy, consulted when. */
  rpo: { registered: boolean; consultedAt: number } | null;
}

/** The decision for one recipient. */
export type RecipientDecision = { send: true; basis: SendBasis } | { send: false; reason: BlockReason };

/**
 * Decides whether a recipient may be contacted. Precedence: a DSR restriction,
 * then a minor without parental authorization, then an opt-out, then the RPO
 * (telemarketing), then consent — or, lacking consent, soft spam to an existing
 * customer by e-mail, or a public-directory number not on the RPO.
 *
 * Registering on the RPO revokes earlier telemarketing consents (L. 5/2018
 * art. 1(5)): a number on a register consulted at time C was registered before
 * C, so only a consent granted after C still allows the call.
 */
export function decideRecipient(facts: RecipientFacts): RecipientDecision {
  if (facts.restricted) return { send: false, reason: "restricted" };
  if (isUnderAge(facts.age, facts.minimumAge) && facts.parentalAuthorization.state !== "granted") {
    return { send: false, reason: "minor_without_authorization" };
  }
  if (facts.consent.state === "withdrawn") return { send: false, reason: "opted_out" };
  if (facts.purpose === "telemarketing" && facts.rpo?.registered) {
    const grantedAfterConsultation = facts.consent.state === "granted" && facts.consent.since > facts.rpo.consultedAt;
    if (!grantedAfterConsultation) return { send: false, reason: "rpo_registered" };
  }
  if (facts.consent.state === "granted") return { send: true, basis: "consent" };
  if (facts.purpose === "marketing_email" && facts.existingCustomer) return { send: true, basis: "soft_spam" };
  if (facts.purpose === "telemarketing" && facts.publicDirectory) return { send: true, basis: "public_directory" };
  return { send: false, reason: "no_consent" };
}

/** Why the tenant's RPO copy cannot be used for telemarketing at `now`, or null when it can. */
export function rpoRegisterProblem(register: { consultedAt: number } | null, now: number): "absent" | "stale" | null {
  if (!register) return "absent";
  if (now - register.consultedAt > RPO_MAX_AGE_DAYS * DAY_MS) return "stale";
  return null;
}

const VARIABLE = /\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,39})\s*\}\}/g;

/** Names of the `{{variables}}` a template uses, in order of first use. */
export function templateVariables(template: string): string[] {
  const names: string[] = [];
  for (const match of template.matchAll(VARIABLE)) {
    const name = match[1];
    if (name && !names.includes(name)) names.push(name);
  }
  return names;
}

/** Fills `{{variables}}` with plain text (values are inserted as-is, never re-expanded). */
export function renderTemplate(template: string, values: Readonly<Record<string, string>>): { ok: true; text: string } | { ok: false; missing: string[] } {
  const missing = templateVariables(template).filter((name) => !Object.hasOwn(values, name));
  if (missing.length > 0) return { ok: false, missing };
  return { ok: true, text: template.replace(VARIABLE, (_all, name: string) => values[name] ?? "") };
}

/**
 * The opt-out line every marketing message ends with (art. 130(4) requires it
 * for soft spam; every campaign message carries it).
 */
export function optOutLine(locale: "en" | "it", basis: SendBasis): string {
  if (locale === "it") {
    return basis === "soft_spam"
      ? "Ricevi questo messaggio perché sei nostro cliente. Rispondi STOP o ANNULLA per non riceverne più."
      : "Rispondi STOP o ANNULLA per non ricevere più questi messaggi.";
  }
  return basis === "soft_spam"
    ? "You are receiving this because you are our customer. Reply STOP to stop receiving these messages."
    : "Reply STOP to stop receiving these messages.";
}

/** The message a recipient receives: the rendered template plus the opt-out line. */
export function campaignMessage(rendered: string, locale: "en" | "it", basis: SendBasis): string {
  return `${rendered.trimEnd()}\n\n${optOutLine(locale, basis)}`;
}
