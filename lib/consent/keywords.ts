/**
 * Opt-out, opt-in and help keywords on every channel (STOP, ANNULLA, START,
 * AIUTO…), and the confirmations sent back. Pure: no Workers imports.
 */

/** Languages keyword confirmations are written in. */
export const KEYWORD_LOCALES = ["en", "it"] as const;
export type KeywordLocale = (typeof KEYWORD_LOCALES)[number];

/** What a keyword asks for. */
export type KeywordAction = "opt_out" | "opt_in" | "help";

/** A recognised keyword: what it asks for and the language it was written in. */
export interface KeywordMatch {
  action: KeywordAction;
  locale: KeywordLocale;
}

/** Every keyword, by its normalised spelling (upper case, no accents, no separators). */
export const KEYWORDS: Readonly<Record<string, KeywordMatch>> = {
  STOP: { action: "opt_out", locale: "en" },
  STOPALL: { action: "opt_out", locale: "en" },
  UNSUBSCRIBE: { action: "opt_out", locale: "en" },
  CANCEL: { action: "opt_out", locale: "en" },
  END: { action: "opt_out", locale: "en" },
  QUIT: { action: "opt_out", locale: "en" },
  REVOKE: { action: "opt_out", locale: "en" },
  OPTOUT: { action: "opt_out", locale: "en" },
  ANNULLA: { action: "opt_out", locale: "it" },
  CANCELLA: { action: "opt_out", locale: "it" },
  BASTA: { action: "opt_out", locale: "it" },
  DISISCRIVIMI: { action: "opt_out", locale: "it" },
  START: { action: "opt_in", locale: "en" },
  YES: { action: "opt_in", locale: "en" },
  UNSTOP: { action: "opt_in", locale: "en" },
  ISCRIVIMI: { action: "opt_in", locale: "it" },
  HELP: { action: "help", locale: "en" },
  AIUTO: { action: "help", locale: "it" },
};

/** Longest message worth normalising: anything longer is a sentence, not a keyword. */
const MAX_KEYWORD_MESSAGE = 64;

const SEPARATOR = /[\s\-_‐-―]+/gu;

/**
 * Upper case without accents, with leading/trailing punctuation, symbols and
 * whitespace removed and one inner space, hyphen or underscore dropped
 * (`" Cancellà! "` → `CANCELLA`, `opt-out` → `OPTOUT`, `stop all` → `STOPALL`;
 * `s t o p` keeps its spaces and so matches nothing).
 */
export function normalizeKeyword(text: string): string {
  const trimmed = text
    .normalize("NFKD")
    .replace(/\p{M}/gu, "")
    .toUpperCase()
    .replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, "");
  const separators = trimmed.match(SEPARATOR)?.length ?? 0;
  return separators === 1 ? trimmed.replace(SEPARATOR, "") : trimmed;
}

/**
 * Classifies a message that consists only of a keyword. Case, accents and
 * surrounding punctuation or whitespace are ignored; anything else in the
 * message (`stop sending me offers`) makes it an ordinary message (null).
 */
export function classifyKeyword(text: string): KeywordMatch | null {
  if (text.length === 0 || text.length > MAX_KEYWORD_MESSAGE) return null;
  const match = KEYWORDS[normalizeKeyword(text)];
  return match ? { action: match.action, locale: match.locale } : null;
}

/** Facts the confirmations mention. */
export interface KeywordReplyContext {
  /** The business's name, so the person knows who confirmed (carriers require it). */
  tenantName: string;
  /** The tenant's own HELP answer, if it set one; otherwise a default in the keyword's language. */
  contactText?: string | null;
}

const REPLIES: Readonly<Record<KeywordAction, Readonly<Record<KeywordLocale, (name: string) => string>>>> = {
  opt_out: {
    en: (name) => `${name}: you have been unsubscribed and will receive no more marketing messages on this channel. Reply START to subscribe again.`,
    it: (name) =>
      `${name}: la tua iscrizione è stata annullata e non riceverai più messaggi promozionali su questo canale. Rispondi ISCRIVIMI per iscriverti di nuovo.`,
  },
  opt_in: {
    en: (name) => `${name}: you are subscribed again to marketing messages on this channel. Reply STOP at any time to unsubscribe.`,
    it: (name) =>
      `${name}: sei di nuovo iscritto ai messaggi promozionali su questo canale. Rispondi ANNULLA in qualsiasi momento per annullare l'iscrizione.`,
  },
  help: {
    en: (name) => `${name}: for help, reply to this message and a member of our team will answer. Reply STOP to stop marketing messages.`,
    it: (name) =>
      `${name}: per assistenza rispondi a questo messaggio e una persona del nostro team ti risponderà. Rispondi ANNULLA per non ricevere più messaggi promozionali.`,
  },
};

/** The confirmation (or, for HELP, the contact text) sent back for a keyword. */
export function keywordReply(action: KeywordAction, locale: KeywordLocale, context: KeywordReplyContext): string {
  if (action === "help" && context.contactText && context.contactText.trim().length > 0) return context.contactText.trim();
  return REPLIES[action][locale](context.tenantName);
}
