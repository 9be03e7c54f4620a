import type { EntityType, RedactResult, RedactedEntity } from "./types";
import type { PlaceholderVault } from "./vault";
import { scanCredentials } from "./scan-credentials";
import { scanDigitRuns } from "./scan-digits";
import { scanEmails } from "./scan-emails";
import { scanIpv6 } from "./scan-ipv6";
import { scanTokens } from "./scan-tokens";
import type { Candidate, Enabled } from "./candidate";
import { MATCH_OVERFLOW, prescan } from "./prescan";

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
  const en: Record<EntityType, boolean> = {
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

function normalizeCountry(country: string | undefined): string {
  if (country === undefined) return "IT";
  // Avoids allocating a string per call for the usual already-uppercase codes.
  for (let i = 0; i < country.length; i++) {
    const c = country.charCodeAt(i);
    if (c >= 97 && c <= 122) return country.toUpperCase();
  }
  return country;
}

/** Position of `type` in ENTITY_TYPES, from its first letters (a property lookup by string is slower). */
function typeIndex(type: EntityType): number {
  switch (type.charCodeAt(0)) {
    case 69: // EMAIL
      return 0;
    case 80: // PHONE, PARTITA_IVA
      return type.charCodeAt(1) === 72 ? 1 : 5;
    case 67: // CARD, CODICE_FISCALE, CREDENTIAL
      return type.charCodeAt(1) === 65 ? 2 : type.charCodeAt(1) === 79 ? 4 : 8;
    case 73: // IBAN, IP
      return type.charCodeAt(1) === 66 ? 3 : 6;
    default: // SSN
      return 7;
  }
}
const TYPE_INDEX_SIZE = 9;
/** Per-call placeholder counters, reset at the start of each call (redaction is synchronous). */
const COUNTERS = new Int32Array(TYPE_INDEX_SIZE);
/** "[EMAIL_1]".."[EMAIL_8]" and so on, built once: most messages need only the first few. */
const PLACEHOLDER_CACHE: string[][] = [];
for (let t = 0; t < TYPE_INDEX_SIZE; t++) PLACEHOLDER_CACHE.push([]);

function placeholderText(type: EntityType, t: number, count: number): string {
  const cache = PLACEHOLDER_CACHE[t] as string[];
  if (count <= 8) return (cache[count] ??= `[${type}_${count}]`);
  return `[${type}_${count}]`;
}

function better(a: Candidate, b: Candidate): boolean {
  return a.priority > b.priority || (a.priority === b.priority && a.end - a.start > b.end - b.start);
}

/** Keeps the highest-priority (then longest) candidates that do not overlap, sorted by start. */
function resolveOverlaps(cands: Candidate[]): Candidate[] {
  const n = cands.length;
  if (n === 1) return cands;
  // Insertion sort by start: a handful of candidates, mostly in order already.
  for (let i = 1; i < n; i++) {
    const c = cands[i] as Candidate;
    let j = i - 1;
    while (j >= 0 && (cands[j] as Candidate).start > c.start) {
      cands[j + 1] = cands[j] as Candidate;
      j--;
    }
    cands[j + 1] = c;
  }
  const kept: Candidate[] = [];
  for (let i = 0; i < n; i++) {
    const c = cands[i] as Candidate;
    let wins = true;
    // Compare with every kept candidate it overlaps (they are the last ones kept).
    for (let k = kept.length - 1; k >= 0; k--) {
      const o = kept[k] as Candidate;
      if (o.end <= c.start) break;
      if (!better(c, o)) {
        wins = false;
        break;
      }
    }
    if (!wins) continue;
    while (kept.length > 0 && (kept[kept.length - 1] as Candidate).end > c.start) kept.pop();
    kept.push(c);
  }
  return kept;
}

/**
 * Finds personal identifiers in `text` and replaces each with a placeholder such as `[EMAIL_1]`.
 * Every match is validated (checksums, issuer ranges, phone metadata, context), so business facts
 * such as order numbers, prices, dates and tracking numbers are left alone. Synchronous and free of
 * platform APIs: runs in Node and workerd alike.
 */
export function redact(text: string, options?: RedactOptions): RedactResult {
  const en = enabledFor(options?.types);
  const country = normalizeCountry(options?.defaultCountry);
  const cands: Candidate[] = [];

  // One regex pass finds the digit runs and the weak credential keywords ("pin", "password"...).
  const found = prescan(text);
  // Order matters a little: digit runs skip spans already claimed by emails and credentials.
  if (en.EMAIL && text.indexOf("@") >= 0) scanEmails(text, cands);
  const colon = text.indexOf(":");
  if (en.CREDENTIAL) scanCredentials(text, cands, colon, true);
  if (found !== 0 && (en.PHONE || en.CARD || en.SSN || en.PARTITA_IVA || en.IP || en.IBAN)) {
    scanDigitRuns(text, cands, en, country, found !== MATCH_OVERFLOW);
  }
  if ((en.CODICE_FISCALE || en.CREDENTIAL || en.IBAN) && text.length >= 15) scanTokens(text, cands, en);
  if (en.IP && colon >= 0) scanIpv6(text, cands, colon);

  if (cands.length === 0) return { text, entities: [] };

  const kept = resolveOverlaps(cands);
  const vault = options?.vault;
  if (kept.length === 1 && !vault) {
    // The usual case: one identifier, numbered 1.
    const c = kept[0] as Candidate;
    const placeholder = placeholderText(c.type, typeIndex(c.type), 1);
    return { text: text.slice(0, c.start) + placeholder + text.slice(c.end), entities: [{ type: c.type, start: c.start, end: c.end, placeholder }] };
  }
  const entities: RedactedEntity[] = [];
  for (let t = 0; t < TYPE_INDEX_SIZE; t++) COUNTERS[t] = 0;
  let out = "";
  let last = 0;
  for (let n = 0; n < kept.length; n++) {
    const c = kept[n] as Candidate;
    let placeholder: string;
    if (vault) {
      placeholder = vault.placeholderFor(c.type, c.key, text.slice(c.start, c.end));
    } else {
      // Per-call numbering: the same value repeated in this text reuses its placeholder.
      placeholder = "";
      for (let p = 0; p < n; p++) {
        const prev = kept[p] as Candidate;
        if (prev.type === c.type && prev.key === c.key) {
          placeholder = (entities[p] as RedactedEntity).placeholder;
          break;
        }
      }
      if (placeholder === "") {
        const t = typeIndex(c.type);
        const count = (COUNTERS[t] as number) + 1;
        COUNTERS[t] = count;
        placeholder = placeholderText(c.type, t, count);
      }
    }
    out += text.slice(last, c.start) + placeholder;
    last = c.end;
    entities.push({ type: c.type, start: c.start, end: c.end, placeholder });
  }
  out += text.slice(last);
  return { text: out, entities };
}
