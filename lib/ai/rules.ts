/** Decision vocabulary and the lexical rules that run before any model is asked. */
import { fold, tokens } from "./text";

/** Every AI decision ends as exactly one of these. */
export const OUTCOMES = ["sent", "suppressed", "skipped", "silence", "handoff"] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** Reason codes, by outcome. Counters carry only these: no content, no identifiers. */
export const REASONS = {
  sent: ["answered"],
  suppressed: ["below_threshold", "unverified_identifier", "too_long"],
  skipped: ["feature_off", "in_handoff", "budget_exhausted", "subject_restricted", "minor_without_authorization", "plan_canceled"],
  silence: ["nothing_to_answer", "model_silent"],
  handoff: ["special_category", "user_requested_human", "low_confidence", "provider_failing", "model_requested_handoff"],
} as const satisfies Record<Outcome, readonly string[]>;
export type Reason = (typeof REASONS)[Outcome][number];

const HUMAN_PATTERNS = [
  /\b(talk|speak|chat)\s+(to|with)\s+(a\s+)?(human|person|real person|agent|operator|someone)\b/,
  /\b(human|real person|live agent|customer service representative)\b.*\?*$/,
  /\b(operatore|operatrice|persona reale|un umano|assistenza umana)\b/,
  /\b(parlare|passami|voglio)\s+(con\s+)?(un|una)?\s*(operatore|operatrice|persona|umano)\b/,
];

/** True when the end user asks for a person (EN/IT). */
export function asksForHuman(text: string): boolean {
  const folded = fold(text);
  return HUMAN_PATTERNS.some((p) => p.test(folded));
}

const ACKNOWLEDGEMENTS = new Set(["ok", "okay", "k", "thanks", "thank you", "thx", "ty", "grazie", "grazie mille", "perfetto", "va bene", "ok grazie", "great", "cool", "bene", "ottimo", "perfect", "got it", "capito"]);

/** True when a message needs no answer (acknowledgements, emoji only, empty). */
export function nothingToAnswer(text: string): boolean {
  const folded = fold(text).replace(/[!.,;:?\s]+/g, " ").trim();
  if (folded.length === 0) return true;
  if (ACKNOWLEDGEMENTS.has(folded)) return true;
  return tokens(text).length === 0 && !/\?/.test(text);
}

export const INTENTS = ["order_status", "booking", "billing", "returns", "complaint", "opening_hours", "human_request", "greeting", "other"] as const;
export type Intent = (typeof INTENTS)[number];

const INTENT_RULES: [Intent, RegExp][] = [
  ["human_request", /\b(human|operator|operatore|agent|persona)\b/],
  ["order_status", /\b(order|ordine|tracking|spedizion\w*|shipment|shipping|deliver\w*|consegna\w*|pacco|parcel)\b/],
  ["returns", /\b(return|refund|reso|rimbors\w*|exchange|cambio)\b/],
  ["billing", /\b(invoice|fattura|bill|payment|pagament\w*|charge|addebit\w*|receipt|ricevuta)\b/],
  ["booking", /\b(book|booking|reserv\w*|prenot\w*|appointment|appuntamento|table|tavolo)\b/],
  ["opening_hours", /\b(open|opening|hours|orari\w*|aperto|aperti|chiuso|closed)\b/],
  ["complaint", /\b(complain\w*|reclam\w*|broken|rotto|terrible|pessim\w*|angry|arrabbiat\w*|unacceptable|inaccettabile)\b/],
  ["greeting", /^(hi|hello|hey|ciao|salve|buongiorno|buonasera)\b/],
];

/** A coarse intent label (EN/IT keyword rules): no content leaves the object for it. */
export function classifyIntent(text: string): Intent {
  const folded = fold(text);
  for (const [intent, pattern] of INTENT_RULES) if (pattern.test(folded)) return intent;
  return "other";
}
