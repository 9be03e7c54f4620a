import type { EntityType, RedactResult, RedactedEntity } from "./types";
import { PlaceholderVault } from "./vault";
import { scanCredentials, scanDigitRuns, scanEmails, scanIbans, scanIpv6, scanTokens } from "./scanners";
import type { Candidate, Enabled } from "./scanners";

/** Options for {@link redact}. */
export interface RedactOptions {
  /**
   * ISO 3166 country used to validate phone numbers written without an international prefix.
   * Default "IT".
   */
  defaultCountry?: "IT" | "GB" | "US" | "DE" | "FR" | "ES" | (string & {});
  /** Placeholder mapping shared across calls of one conversation; a fresh one per call if omitted. */
  vault?: PlaceholderVault;
  /** Only detect these types (default: all). */
  types?: EntityType[];
}

const ALL_ENABLED: Enabled = {
  EMAIL: true,
  PHONE: true,
  CARD: true,
  IBAN: true,
  CODICE_FISCALE: true,
  PARTITA_IVA: true,
  IP: true,
  SSN: true,
  CREDENTIAL: true,
};

function enabledFor(types: EntityType[] | undefined): Enabled {
  if (!types) return ALL_ENABLED;
  const en: Enabled = {
    EMAIL: false,
    PHONE: false,
    CARD: false,
    IBAN: false,
    CODICE_FISCALE: false,
    PARTITA_IVA: false,
    IP: false,
    SSN: false,
    CREDENTIAL: false,
  };
  for (const t of types) en[t] = true;
  return en;
}

const DIGIT_RE = /[0-9]/;

/** Keeps the highest-priority (then longest) candidates that do not overlap, sorted by start. */
function resolveOverlaps(cands: Candidate[]): Candidate[] {
  if (cands.length === 1) return cands;
  cands.sort((a, b) => b.priority - a.priority || b.end - b.start - (a.end - a.start) || a.start - b.start);
  const kept: Candidate[] = [];
  for (const c of cands) {
    let clash = false;
    for (const k of kept) {
      if (c.start < k.end && k.start < c.end) {
        clash = true;
        break;
      }
    }
    if (!clash) kept.push(c);
  }
  kept.sort((a, b) => a.start - b.start);
  return kept;
}

/**
 * Finds personal identifiers in `text` and replaces each with a placeholder such as `[EMAIL_1]`.
 * Every match is validated (checksums, issuer ranges, phone metadata, context), so business facts
 * such as order numbers, prices, dates and tracking numbers are left alone. Synchronous and free of
 * platform APIs: runs in Node and workerd alike.
 */
export function redact(text: string, options: RedactOptions = {}): RedactResult {
  const en = enabledFor(options.types);
  const country = (options.defaultCountry ?? "IT").toUpperCase();
  const cands: Candidate[] = [];

  if (en.EMAIL && text.indexOf("@") >= 0) scanEmails(text, cands);
  const hasDigit = DIGIT_RE.test(text);
  if (hasDigit) {
    if (en.PHONE || en.CARD || en.SSN || en.PARTITA_IVA || en.IP) scanDigitRuns(text, cands, en, country);
    if (en.IBAN) scanIbans(text, cands);
    if (en.IP) scanIpv6(text, cands);
  }
  // Codice fiscale with full omocodia and some secrets have no digit at all.
  if ((en.CODICE_FISCALE || en.CREDENTIAL) && text.length >= 15) scanTokens(text, cands, en);
  if (en.CREDENTIAL) scanCredentials(text, cands);

  if (cands.length === 0) return { text, entities: [] };

  const kept = resolveOverlaps(cands);
  const vault = options.vault ?? new PlaceholderVault();
  const entities: RedactedEntity[] = [];
  let out = "";
  let last = 0;
  for (const c of kept) {
    const original = text.slice(c.start, c.end);
    const placeholder = vault.placeholderFor(c.type, c.key, original);
    out += text.slice(last, c.start) + placeholder;
    last = c.end;
    entities.push({ type: c.type, start: c.start, end: c.end, placeholder });
  }
  out += text.slice(last);
  return { text: out, entities };
}
