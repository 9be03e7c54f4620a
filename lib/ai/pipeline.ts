/**
 * The AI decision rules, pure: what happens to an inbound message before a
 * model is asked, and what happens to the model's answer. Every path ends in
 * exactly one outcome with a reason code.
 */
import { redact, restore, type PlaceholderVault, type SpecialCategory } from "../redact";
import type { KnowledgeEntry } from "./knowledge";
import type { ReplyResult } from "./providers";
import { asksForHuman, nothingToAnswer, type Outcome, type Reason } from "./rules";
import type { Settings } from "./settings";

/** One finished decision; `replyText` (restored, ready to deliver) only for `sent`. */
export interface Decision {
  outcome: Outcome;
  reason: Reason;
  replyText?: string;
}

/** Longest reply Parley delivers (WhatsApp's limit). */
export const MAX_REPLY_CHARS = 4096;

export interface PreModelInput {
  settings: Settings;
  planStatus: string;
  conversationStatus: string;
  text: string;
  specialCategories: readonly SpecialCategory[];
  /** A data-subject restriction (GDPR art. 18) is in force. */
  restricted: boolean;
  /** Under the tenant's minimum age with no parental authorization on file. */
  minorWithoutAuthorization: boolean;
}

/** Decides without a model when the rules already know the answer; null means "ask the model". */
export function preModelDecision(input: PreModelInput): Decision | null {
  const { settings } = input;
  if (!settings.ai.replies) return { outcome: "skipped", reason: "feature_off" };
  if (input.planStatus === "canceled") return { outcome: "skipped", reason: "plan_canceled" };
  if (input.restricted) return { outcome: "skipped", reason: "subject_restricted" };
  if (input.minorWithoutAuthorization) return { outcome: "skipped", reason: "minor_without_authorization" };
  if (input.conversationStatus === "handoff") return { outcome: "skipped", reason: "in_handoff" };
  if (input.specialCategories.length > 0 && settings.specialCategoryHandoff) return { outcome: "handoff", reason: "special_category" };
  if (asksForHuman(input.text)) return { outcome: "handoff", reason: "user_requested_human" };
  if (nothingToAnswer(input.text)) return { outcome: "silence", reason: "nothing_to_answer" };
  if (settings.dailyAiCallBudget === 0) return { outcome: "skipped", reason: "budget_exhausted" };
  return null;
}

export interface PostModelInput {
  settings: Settings;
  result: ReplyResult;
  vault: PlaceholderVault;
  /** Entries the model was given: identifiers quoted from them (the business's own contacts) are allowed. */
  knowledge: readonly KnowledgeEntry[];
  defaultCountry: string;
}

/** Turns the model's answer into the final decision, restoring placeholders for delivery. */
export function postModelDecision(input: PostModelInput): Decision {
  const { settings, result } = input;
  const reply = result.reply.trim();
  if (result.handoff) return { outcome: "handoff", reason: reply ? "model_requested_handoff" : "low_confidence" };
  if (!reply) return { outcome: "silence", reason: "model_silent" };
  if (result.confidence < settings.confidenceThreshold) {
    return settings.handoffOnLowConfidence ? { outcome: "handoff", reason: "low_confidence" } : { outcome: "suppressed", reason: "below_threshold" };
  }
  // Identifiers written out by the model (not placeholders) were invented or leaked, unless the knowledge base contains them.
  const knowledgeText = input.knowledge.map((e) => `${e.question}\n${e.answer}`).join("\n");
  const found = redact(reply, { defaultCountry: input.defaultCountry }).entities;
  if (found.some((e) => !knowledgeText.includes(reply.slice(e.start, e.end)))) return { outcome: "suppressed", reason: "unverified_identifier" };
  const restored = restore(reply, input.vault).trim();
  if (!restored) return { outcome: "silence", reason: "model_silent" };
  if (restored.length > MAX_REPLY_CHARS) return { outcome: "suppressed", reason: "too_long" };
  return { outcome: "sent", reason: "answered", replyText: restored };
}
