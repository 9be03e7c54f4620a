/**
 * Consent vocabulary: purposes, how a consent was collected, and how a
 * subject's append-only history folds into its current state per purpose.
 * Pure: no Workers imports.
 */
import type { ChannelType } from "../../d1/schema";

/** Every purpose a consent can be given or withdrawn for. */
export const CONSENT_PURPOSES = [
  "marketing_email",
  "marketing_sms",
  "marketing_whatsapp",
  "telemarketing",
  "recording",
  "voice_clone",
  "ai_processing",
  "cookies_functional",
  "cookies_analytics",
  "cookies_marketing",
  "cookies_profiling",
  "parental_authorization",
] as const;
export type ConsentPurpose = (typeof CONSENT_PURPOSES)[number];

/** Purposes a campaign can be sent for. */
export const CAMPAIGN_PURPOSES = ["marketing_email", "marketing_sms", "marketing_whatsapp", "telemarketing"] as const;
export type CampaignPurpose = (typeof CAMPAIGN_PURPOSES)[number];

/** Marketing purposes an opt-out keyword can withdraw. */
export const MARKETING_PURPOSES = ["marketing_email", "marketing_sms", "marketing_whatsapp", "telemarketing"] as const;

/** Granted or withdrawn: the only two kinds of entry in the log. */
export const CONSENT_STATUSES = ["granted", "withdrawn"] as const;
export type ConsentStatus = (typeof CONSENT_STATUSES)[number];

/**
 * How the consent was collected. `channel_keyword` entries are written only by
 * the channel pipeline (an inbound STOP/START); the API accepts the others.
 */
export const CONSENT_METHODS = ["channel_keyword", "web_form", "api", "banner"] as const;
export type ConsentMethod = (typeof CONSENT_METHODS)[number];

/** Methods the public API may record (keywords come only from a verified inbound message). */
export const API_CONSENT_METHODS = ["web_form", "api", "banner"] as const;

/**
 * The marketing purpose a channel's opt-out keyword withdraws.
 * SMS → `marketing_sms`; Twilio WhatsApp and the WhatsApp Cloud API →
 * `marketing_whatsapp`; custom webhooks (the bridge tenants use for e-mail and
 * in-house systems) and the web chat (which cannot receive campaigns, but whose
 * keyword must never be lost) → `marketing_email`.
 */
export function marketingPurposeForChannel(type: ChannelType): "marketing_email" | "marketing_sms" | "marketing_whatsapp" {
  switch (type) {
    case "twilio_sms":
      return "marketing_sms";
    case "twilio_whatsapp":
    case "whatsapp_cloud":
      return "marketing_whatsapp";
    case "custom":
    case "web_chat":
      return "marketing_email";
  }
}

/** Channel types a campaign of `purpose` may be sent through (telemarketing is placed by people, not sent). */
export function channelTypesForPurpose(purpose: CampaignPurpose): readonly ChannelType[] {
  switch (purpose) {
    case "marketing_sms":
      return ["twilio_sms"];
    case "marketing_whatsapp":
      return ["twilio_whatsapp", "whatsapp_cloud"];
    case "marketing_email":
      return ["custom"];
    case "telemarketing":
      return [];
  }
}

/** One entry of the consent log, as the pure rules need it. */
export interface ConsentEntryFacts {
  purpose: ConsentPurpose;
  status: ConsentStatus;
  /** Unix ms the entry was appended. */
  createdAt: number;
  /** Unix ms a grant lapses (voice cloning and other time-bound consents), or null. */
  expiresAt: number | null;
}

/** The state of one purpose: the latest entry decides. */
export type PurposeState =
  | { state: "none" }
  | { state: "granted"; since: number; expiresAt: number | null }
  | { state: "expired"; since: number; expiresAt: number }
  | { state: "withdrawn"; since: number };

/** Folds the latest entry for a purpose into its state at `now`. */
export function stateOf(latest: ConsentEntryFacts | null | undefined, now: number): PurposeState {
  if (!latest) return { state: "none" };
  if (latest.status === "withdrawn") return { state: "withdrawn", since: latest.createdAt };
  if (latest.expiresAt !== null && latest.expiresAt <= now) return { state: "expired", since: latest.createdAt, expiresAt: latest.expiresAt };
  return { state: "granted", since: latest.createdAt, expiresAt: latest.expiresAt };
}

/** True when the state is a grant in force. */
export function isGranted(state: PurposeState): state is Extract<PurposeState, { state: "granted" }> {
  return state.state === "granted";
}
