// Candidate finders. Each scanner appends validated spans to `out`; overlaps are resolved later.
// Regexes are compiled once, and every pattern is linear: each repetition starts with a character
// that the previous one cannot consume, so there is no catastrophic backtracking.
import type { EntityType } from "./types";
import {
  IBAN_LENGTHS,
  cardIssuerValid,
  codiceFiscaleValid,
  ibanMod97Valid,
  ipv4Valid,
  ipv6Valid,
  luhnValid,
  partitaIvaValid,
  ssnValid,
} from "./validators";
import { FALLBACK_COUNTRIES, validateInternational, validateNational } from "./phone";
import {
  hasCurrencyContext,
  hasSsnContext,
  hasVatContext,
  hasVersionContext,
  numberContext,
} from "./context";
import type { NumberContext } from "./context";

/** A validated span before overlap resolution. */
export interface Candidate {
  type: EntityType;
  start: number;
  end: number;
  /** Normalised value used to key placeholders. */
  key: string;
  /** Higher wins an overlap; equal priorities prefer the longer span. */
  priority: number;
}

export const PRIORITY: Readonly<Record<EntityType, number>> = {
  CREDENTIAL: 100,
  EMAIL: 90,
  IBAN: 80,
  CARD: 70,
  CODICE_FISCALE: 65,
  IP: 50,
  SSN: 45,
  PARTITA_IVA: 40,
  PHONE: 30,
};
/** Token-shaped secrets rank below structured identifiers that happen to look random. */
const PRIORITY_TOKEN = 60;

/** Which scanners run, derived from `RedactOptions.types`. */
export interface Enabled {
  EMAIL: boolean;
  PHONE: boolean;
  CARD: boolean;
  IBAN: boolean;
  CODICE_FISCALE: boolean;
  PARTITA_IVA: boolean;
  IP: boolean;
  SSN: boolean;
  CREDENTIAL: boolean;
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

function isAsciiLetter(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
}

/** Letters (any script), digits and underscore: characters that glue a number into a word. */
function isWordChar(c: number): boolean {
  return (
    (c >= 48 && c <= 57) ||
    (c >= 97 && c <= 122) ||
    (c >= 65 && c <= 90) ||
    c === 95 ||
    (c >= 0xc0 && c !== 0xd7 && c !== 0xf7 && c < 0x2000)
  );
}

// ---------------------------------------------------------------------------------------------
// EMAIL: found from each "@" outwards, which is far cheaper than a regex anchored on letters.

function isLocalChar(c: number): boolean {
  return isWordChar(c) || c === 46 || c === 45 || c === 43 || c === 37 || c === 39;
}

function isDomainChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 45 || c === 46 || (c >= 0xc0 && c < 0x2000);
}

function domainValid(text: string, start: number, end: number): boolean {
  let labelLen = 0;
  let labels = 0;
  let labelStart = start;
  let tldStart = start;
  for (let i = start; i <= end; i++) {
    const c = i < end ? text.charCodeAt(i) : 46;
    if (c === 46) {
      if (labelLen === 0 || labelLen > 63) return false;
      if (text.charCodeAt(i - 1) === 45 || text.charCodeAt(labelStart) === 45) return false;
      labels++;
      tldStart = labelStart;
      labelLen = 0;
      labelStart = i + 1;
      continue;
    }
    labelLen++;
  }
  if (labels < 2) return false;
  const tldLen = end - tldStart;
  if (tldLen < 2) return false;
  let letters = true;
  for (let i = tldStart; i < end; i++) {
    const c = text.charCodeAt(i);
    if (isDigit(c) || c === 45) letters = false;
  }
  // Punycode TLDs (xn--...) are the only ones with digits or hyphens.
  return letters || (tldLen >= 4 && text.startsWith("xn--", tldStart));
}

export function scanEmails(text: string, out: Candidate[]): void {
  const len = text.length;
  let at = text.indexOf("@");
  while (at >= 0) {
    let s = at;
    while (s > 0 && isLocalChar(text.charCodeAt(s - 1))) s--;
    while (s < at && (text.charCodeAt(s) === 46 || text.charCodeAt(s) === 39)) s++;
    let e = at + 1;
    while (e < len && isDomainChar(text.charCodeAt(e))) e++;
    while (e > at + 1 && (text.charCodeAt(e - 1) === 46 || text.charCodeAt(e - 1) === 45)) e--;
    const localLen = at - s;
    const domainLen = e - at - 1;
    if (
      localLen > 0 &&
      localLen <= 64 &&
      text.charCodeAt(at - 1) !== 46 &&
      domainLen >= 4 &&
      domainLen <= 253 &&
      !text.slice(s, at).includes("..") &&
      domainValid(text, at + 1, e)
    ) {
      const value = text.slice(s, e);
      out.push({ type: "EMAIL", start: s, end: e, key: value.toLowerCase(), priority: PRIORITY.EMAIL });
    }
    at = text.indexOf("@", Math.max(at + 1, e));
  }
}

// ---------------------------------------------------------------------------------------------
// Digit runs: phones, cards, SSNs, partite IVA and IPv4 share one scan. A run is digits joined by
// single separators (space, . - /, optionally spaced) and phone-style parentheses.

const RUN_RE =
  /\+?\(?\d(?:\d|[ \u00a0]?[.\-/][ \u00a0]?(?=\(?\d)|[ \u00a0](?=\(?\d)|\((?=\d)|\)[ \u00a0.\-]?(?=\d))*/g;

/** Most groups a single identifier spans ("+33 6 12 34 56 78" has six). */
const MAX_GROUPS_PER_ENTITY = 7;

// Scratch arrays reused across runs to avoid per-run allocation.
const gStart: number[] = [];
const gEnd: number[] = [];
const gSep: number[] = []; // first separator character before the group (0 for the first group)
const gSpaced: boolean[] = []; // the separator before the group contains a space
const gParen: boolean[] = []; // the group is wrapped in parentheses
const gCum: number[] = []; // digits in groups [0, g)

interface RunContext {
  number: NumberContext | undefined;
  currency: boolean | undefined;
}

function spanDigits(text: string, i: number, j: number, skipTrunkParen: boolean): string {
  let s = "";
  for (let g = i; g <= j; g++) {
    if (skipTrunkParen && gParen[g] && g > i && (gEnd[g] ?? 0) - (gStart[g] ?? 0) === 1 && text.charCodeAt(gStart[g] ?? 0) === 48) continue;
    s += text.slice(gStart[g], gEnd[g]);
  }
  return s;
}

function isDateAt(text: string, i: number, k: number): number {
  // Returns how many groups form a date starting at group i (0 if none).
  if (i + 2 >= k) return 0;
  const sep1 = gSep[i + 1];
  const sep2 = gSep[i + 2];
  if (sep1 !== sep2 || !(sep1 === 47 || sep1 === 46 || sep1 === 45) || gSpaced[i + 1] || gSpaced[i + 2]) return 0;
  const l0 = (gEnd[i] ?? 0) - (gStart[i] ?? 0);
  const l1 = (gEnd[i + 1] ?? 0) - (gStart[i + 1] ?? 0);
  const l2 = (gEnd[i + 2] ?? 0) - (gStart[i + 2] ?? 0);
  const v = (g: number): number => Number(text.slice(gStart[g], gEnd[g]));
  if (l0 <= 2 && l1 <= 2 && (l2 === 2 || l2 === 4)) {
    return v(i) <= 31 && v(i + 1) <= 31 ? 3 : 0;
  }
  if (l0 === 4 && l1 <= 2 && l2 <= 2) {
    return v(i + 1) <= 12 && v(i + 2) <= 31 ? 3 : 0;
  }
  return 0;
}

/** "1.234.567": thousands grouping, a quantity or an amount. */
function isThousandsGrouping(i: number, j: number): boolean {
  if (j - i < 2) return false;
  const l0 = (gEnd[i] ?? 0) - (gStart[i] ?? 0);
  if (l0 > 3) return false;
  for (let g = i + 1; g <= j; g++) {
    if (gSep[g] !== 46 || gSpaced[g] || (gEnd[g] ?? 0) - (gStart[g] ?? 0) !== 3) return false;
  }
  return true;
}

/** Card-like layout: one block of 13+ digits, or 4-digit blocks (Amex 4-6-5 included). */
function isCardShaped(k: number): boolean {
  const total = gCum[k] ?? 0;
  if (total < 13 || total > 19) return false;
  if (k === 1) return true;
  const len = (g: number): number => (gEnd[g] ?? 0) - (gStart[g] ?? 0);
  if (k === 3 && len(0) === 4 && len(1) === 6) return true;
  for (let g = 0; g < k - 1; g++) if (len(g) !== 4) return false;
  return len(k - 1) <= 4;
}

export function scanDigitRuns(text: string, out: Candidate[], en: Enabled, country: string): void {
  RUN_RE.lastIndex = 0;
  const len = text.length;
  for (let m = RUN_RE.exec(text); m !== null; m = RUN_RE.exec(text)) {
    let runStart = m.index;
    const runEnd = runStart + m[0].length;
    const prev = runStart > 0 ? text.charCodeAt(runStart - 1) : 0;
    const next = runEnd < len ? text.charCodeAt(runEnd) : 0;
    const plus = text.charCodeAt(runStart) === 43;

    // Glued to letters on the right: a unit ("30kg"), a code ("1234XL"), a percentage, an email.
    if (isWordChar(next) || next === 64 || next === 37) continue;
    if ((next === 45 || next === 47) && runEnd + 1 < len && isAsciiLetter(text.charCodeAt(runEnd + 1))) continue;

    if (!plus && isWordChar(prev)) {
      // Only "IT12345678901" (partita IVA with country prefix) survives a letter on the left.
      if (en.PARTITA_IVA && m[0].length === 11 && runStart >= 2) {
        const p1 = text.charCodeAt(runStart - 2) | 32;
        const p2 = prev | 32;
        const before = runStart >= 3 ? text.charCodeAt(runStart - 3) : 0;
        if (p1 === 105 && p2 === 116 && !isWordChar(before) && partitaIvaValid(m[0])) {
          out.push({ type: "PARTITA_IVA", start: runStart - 2, end: runEnd, key: m[0], priority: PRIORITY.PARTITA_IVA });
        }
      }
      continue;
    }
    // "FT-2025/0042", "AB-1234": a code whose letters sit before a dash or slash.
    if (!plus && (prev === 45 || prev === 47) && runStart >= 2 && isAsciiLetter(text.charCodeAt(runStart - 2))) continue;
    if (m[0].length < 7) {
      // Too short for anything but a phone written with country code, which is also >= 7 chars.
      continue;
    }

    // Split the run into digit groups.
    let k = 0;
    let i = runStart;
    let digits = 0;
    let sep = 0;
    let spaced = false;
    let paren = false;
    gCum.length = 0;
    gCum.push(0);
    while (i < runEnd) {
      const c = text.charCodeAt(i);
      if (isDigit(c)) {
        const s = i;
        while (i < runEnd && isDigit(text.charCodeAt(i))) i++;
        gStart[k] = s;
        gEnd[k] = i;
        gSep[k] = sep;
        gSpaced[k] = spaced;
        gParen[k] = paren && i < runEnd && text.charCodeAt(i) === 41;
        digits += i - s;
        gCum.push(digits);
        k++;
        sep = 0;
        spaced = false;
        paren = false;
        continue;
      }
      if (c === 40) paren = true;
      else if (c === 32 || c === 0xa0) spaced = true;
      else if (c !== 41 && c !== 43 && sep === 0) sep = c;
      if (c === 32 && sep === 0) sep = 32;
      i++;
    }
    if (digits < 8 && !(digits >= 7 && plus)) continue;
    if (plus || text.charCodeAt(runStart) === 40) {
      // keep "+" / "(" in the span of the first group
    } else {
      runStart = gStart[0] ?? runStart;
    }

    const ctx: RunContext = { number: undefined, currency: undefined };
    const numberCtx = (): NumberContext => (ctx.number ??= numberContext(text, runStart));
    const currency = (): boolean => (ctx.currency ??= hasCurrencyContext(text, runStart, runEnd));

    if (isCardShaped(k)) {
      const all = spanDigits(text, 0, k - 1, false);
      if (en.CARD && cardIssuerValid(all) && luhnValid(all)) {
        out.push({ type: "CARD", start: gStart[0] ?? runStart, end: runEnd, key: all, priority: PRIORITY.CARD });
      }
      // A card-shaped number that is not a card (tracking, IMEI...) is a business fact as a whole.
      continue;
    }

    let g = 0;
    while (g < k) {
      const dateGroups = isDateAt(text, g, k);
      if (dateGroups > 0) {
        g += dateGroups;
        continue;
      }
      let matched = false;
      const jMax = Math.min(k - 1, g + MAX_GROUPS_PER_ENTITY - 1);
      for (let j = jMax; j >= g; j--) {
        const d = (gCum[j + 1] ?? 0) - (gCum[g] ?? 0);
        if (d < 7) break;
        const intlPlus = plus && g === 0;
        const spanStart = g === 0 ? runStart : (gStart[g] ?? 0);
        // Include a closing parenthesis only when the span opened one.
        const spanEnd = gEnd[j] ?? 0;
        const cand = classifySpan(text, g, j, d, intlPlus, spanStart, spanEnd, en, country, numberCtx, currency);
        if (cand) {
          out.push(cand);
          g = j + 1;
          matched = true;
          break;
        }
      }
      if (!matched) g++;
    }
  }
}

function classifySpan(
  text: string,
  i: number,
  j: number,
  d: number,
  intlPlus: boolean,
  spanStart: number,
  spanEnd: number,
  en: Enabled,
  country: string,
  numberCtx: () => NumberContext,
  currency: () => boolean,
): Candidate | null {
  const groups = j - i + 1;
  if (isThousandsGrouping(i, j)) return null;

  // IPv4: four dotted groups.
  if (groups === 4 && !intlPlus && d <= 12) {
    let dotted = true;
    for (let g = i + 1; g <= j; g++) if (gSep[g] !== 46 || gSpaced[g]) dotted = false;
    if (dotted) {
      const s = gStart[i] ?? 0;
      const value = text.slice(s, spanEnd);
      if (en.IP && ipv4Valid(value) && !hasVersionContext(text, s)) {
        return { type: "IP", start: s, end: spanEnd, key: value, priority: PRIORITY.IP };
      }
      return null;
    }
  }

  const startsParen = text.charCodeAt(spanStart) === 40;
  let digits: string | undefined;

  // Cards inside a longer run (a card-shaped run as a whole was handled by the caller).
  if (!intlPlus && d >= 13 && d <= 19 && en.CARD) {
    digits = spanDigits(text, i, j, false);
    if (cardIssuerValid(digits) && luhnValid(digits)) {
      const s = gStart[i] ?? 0;
      return { type: "CARD", start: s, end: spanEnd, key: digits, priority: PRIORITY.CARD };
    }
  }

  // SSN: AAA-GG-SSSS, or nine digits / spaced groups when "SSN" is said nearby.
  if (en.SSN && d === 9 && !intlPlus) {
    const s = gStart[i] ?? 0;
    const l0 = (gEnd[i] ?? 0) - s;
    const shaped = groups === 3 && l0 === 3 && (gEnd[i + 1] ?? 0) - (gStart[i + 1] ?? 0) === 2;
    const dashed = shaped && gSep[i + 1] === 45 && gSep[i + 2] === 45 && !gSpaced[i + 1] && !gSpaced[i + 2];
    if ((dashed || ((shaped || groups === 1) && hasSsnContext(text, s)))) {
      digits ??= spanDigits(text, i, j, false);
      if (ssnValid(digits)) return { type: "SSN", start: s, end: spanEnd, key: digits, priority: PRIORITY.SSN };
      if (dashed) return null;
    }
  }

  // Partita IVA: eleven digits with "P.IVA"/"VAT" nearby (the "IT" prefix form is found by the caller).
  if (en.PARTITA_IVA && d === 11 && groups === 1 && !intlPlus) {
    const s = gStart[i] ?? 0;
    digits ??= spanDigits(text, i, j, false);
    if (partitaIvaValid(digits) && hasVatContext(text, s)) {
      return { type: "PARTITA_IVA", start: s, end: spanEnd, key: digits, priority: PRIORITY.PARTITA_IVA };
    }
  }

  if (!en.PHONE) return null;
  // Phones: 8-15 digits nationally, 7-15 after a country code.
  let intl = intlPlus;
  let pd = d;
  const first = gStart[i] ?? 0;
  if (!intl && text.charCodeAt(first) === 48 && text.charCodeAt(first + 1) === 48) {
    intl = true;
    pd -= 2;
  }
  if (pd < 7 || pd > 15 || (!intl && pd < 8)) return null;
  const ctx = numberCtx();
  if (ctx === "business" && i === 0) return null;
  if (currency()) return null;
  let e164: string | null = null;
  if (intl) {
    let all = spanDigits(text, i, j, true);
    if (!intlPlus) all = all.slice(2);
    e164 = validateInternational(all);
  } else {
    const all = digits ?? spanDigits(text, i, j, false);
    e164 = validateNational(all, country);
    if (e164 === null && ctx === "phone") {
      for (const c of FALLBACK_COUNTRIES) {
        if (c === country) continue;
        e164 = validateNational(all, c);
        if (e164 !== null) break;
      }
    }
  }
  if (e164 === null) return null;
  let end = spanEnd;
  if (startsParen && text.charCodeAt(end) === 41) end++;
  const start = intlPlus || startsParen ? spanStart : first;
  return { type: "PHONE", start, end, key: e164, priority: PRIORITY.PHONE };
}

// ---------------------------------------------------------------------------------------------
// IBAN: a country code and two check digits start the scan; the BBAN may be spaced in any way.

const IBAN_START_RE = /(?<![A-Za-z0-9])[A-Za-z]{2}[0-9]{2}/g;

function isAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

export function scanIbans(text: string, out: Candidate[]): void {
  IBAN_START_RE.lastIndex = 0;
  const len = text.length;
  for (let m = IBAN_START_RE.exec(text); m !== null; m = IBAN_START_RE.exec(text)) {
    const start = m.index;
    const ibanLen = IBAN_LENGTHS[m[0].slice(0, 2).toUpperCase()];
    if (ibanLen === undefined) continue;
    let compact = m[0];
    let p = start + 4;
    while (compact.length < ibanLen && p < len) {
      const c = text.charCodeAt(p);
      if (isAlnum(c)) {
        compact += text.charAt(p);
        p++;
      } else if ((c === 32 || c === 45 || c === 0xa0) && p + 1 < len && isAlnum(text.charCodeAt(p + 1))) {
        p++;
      } else break;
    }
    if (compact.length !== ibanLen || (p < len && isAlnum(text.charCodeAt(p)))) continue;
    if (!ibanMod97Valid(compact)) continue;
    out.push({ type: "IBAN", start, end: p, key: compact.toUpperCase(), priority: PRIORITY.IBAN });
    IBAN_START_RE.lastIndex = p;
  }
}

// ---------------------------------------------------------------------------------------------
// Long tokens: codice fiscale (16 chars), API keys with a known shape, generic high-entropy secrets.

const TOKEN_RE = /(?<![A-Za-z0-9_\-+/])[A-Za-z0-9][A-Za-z0-9_\-+/]{14,}={0,2}/g;
const KNOWN_SECRET_RE =
  /^(?:sk-(?:proj-|live-|test-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{16,}|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|(?:AKIA|ASIA)[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}|hf_[A-Za-z0-9]{30,})$/;
const JWT_TAIL_RE = /\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/y;
const CF_SHAPE_RE = /^[A-Za-z]{6}[0-9LMNPQRSTUVlmnpqrstuv]{2}[A-Za-z][0-9LMNPQRSTUVlmnpqrstuv]{2}[A-Za-z][0-9LMNPQRSTUVlmnpqrstuv]{3}[A-Za-z]$/;

/**
 * Random-looking: digits and letters mixed, and short character-class runs (words and slugs such as
 * "Galaxy-S24-Ultra-512GB" have long letter runs). Hex strings of 32+ chars always qualify.
 */
function looksRandom(t: string): boolean {
  let upper = 0;
  let lower = 0;
  let digit = 0;
  let other = 0;
  let hexOnlyLower = true;
  let hexOnlyUpper = true;
  let runs = 0;
  let prevClass = -1;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    let cls: number;
    if (c >= 48 && c <= 57) {
      digit++;
      cls = 0;
    } else if (c >= 97 && c <= 122) {
      lower++;
      cls = 1;
      hexOnlyUpper = false;
      if (c > 102) hexOnlyLower = false;
    } else if (c >= 65 && c <= 90) {
      upper++;
      cls = 2;
      hexOnlyLower = false;
      if (c > 70) hexOnlyUpper = false;
    } else {
      other++;
      cls = 3;
      hexOnlyLower = false;
      hexOnlyUpper = false;
    }
    if (cls !== prevClass) runs++;
    prevClass = cls;
  }
  if (digit < 2 || upper + lower < 2) return false;
  if ((hexOnlyLower || hexOnlyUpper) && digit >= 4 && upper + lower >= 4) return true;
  if (upper < 2 || lower < 2) return false;
  if (other > t.length / 4) return false;
  return runs * 2 >= t.length;
}

export function scanTokens(text: string, out: Candidate[], en: Enabled): void {
  TOKEN_RE.lastIndex = 0;
  for (let m = TOKEN_RE.exec(text); m !== null; m = TOKEN_RE.exec(text)) {
    let token = m[0];
    const start = m.index;
    // Trailing sentence punctuation is not part of the token.
    while (token.length > 0 && (token.endsWith("-") || token.endsWith("/") || token.endsWith("_"))) token = token.slice(0, -1);
    let end = start + token.length;
    if (token.length === 16) {
      if (en.CODICE_FISCALE && CF_SHAPE_RE.test(token) && codiceFiscaleValid(token)) {
        out.push({ type: "CODICE_FISCALE", start, end, key: token.toUpperCase(), priority: PRIORITY.CODICE_FISCALE });
      }
      if (!en.CREDENTIAL) continue;
    }
    if (!en.CREDENTIAL) continue;
    if (token.startsWith("eyJ")) {
      JWT_TAIL_RE.lastIndex = end;
      const tail = JWT_TAIL_RE.exec(text);
      if (tail) {
        end += tail[0].length;
        TOKEN_RE.lastIndex = end;
        out.push({ type: "CREDENTIAL", start, end, key: text.slice(start, end), priority: PRIORITY_TOKEN });
        continue;
      }
    }
    if (KNOWN_SECRET_RE.test(token)) {
      out.push({ type: "CREDENTIAL", start, end, key: token, priority: PRIORITY_TOKEN });
      continue;
    }
    if (token.length < 32) continue;
    // A path such as "com/track/<secret>": judge the last segment alone.
    let s = start;
    let t = token;
    const slash = t.lastIndexOf("/");
    if (slash >= 0 && !looksRandom(t)) {
      t = t.slice(slash + 1);
      s = start + slash + 1;
      if (t.length < 32) continue;
    }
    if (looksRandom(t)) out.push({ type: "CREDENTIAL", start: s, end, key: t, priority: PRIORITY_TOKEN });
  }
}

// ---------------------------------------------------------------------------------------------
// Credentials introduced by a keyword: "password: xyz", "pwd=xyz", "la mia password è xyz", "PIN 1234".
// Only the secret value is replaced, so "password:" stays readable.

const CRED_KEYWORD_RE =
  /(?<![A-Za-z0-9_])(?:(password|passwort|passwd|passcode|passphrase|pwd|kennwort|contrase(?:ñ|n)a|parola d['’]ordine|mot de passe|api[ _-]?key|access[ _-]?token|auth[ _-]?token|codice (?:segreto|di accesso))|(pin(?: ?code)?|codice pin|codice otp|otp|one[ -]time (?:code|password)|cvv|cvc)|(secret|token|clave|geheimnis))(?![A-Za-z0-9_])/gi;
/** ":" "=" "->" (optionally after "is"). */
const STRONG_CONNECTOR_RE = /[ \t]*(?:[:=]|->|=>)[ \t]*/y;
/** "is", "è", "was", "ist"... possibly after a few words ("password for my account is"). */
const WEAK_CONNECTOR_RE =
  /(?:[ \t]+(?!is\b|was\b|è|e'|era\b|ist\b|est\b|es\b|lautet\b)[A-Za-zÀ-ÿ']{1,12}){0,3}?[ \t]+(?:is|was|è|e'|é|era|sarebbe|ist|lautet|est|es)(?![A-Za-z0-9À-ÿ])[ \t]*:?[ \t]*/iy;
const PIN_DIGITS_RE = /[ \t]+(?:n\.?[ \t]*|#[ \t]*)?(?=\d{3,8}(?!\d))/y;
const VALUE_RE = /["'“‘«]?([^\s"'”’»]+)/y;

/** Words that follow "password is" in ordinary sentences ("my password is wrong"). */
const NOT_A_SECRET = new Set([
  "not", "wrong", "incorrect", "invalid", "expired", "correct", "right", "the", "a", "an", "too", "very",
  "still", "now", "being", "blocked", "locked", "same", "different", "missing", "empty", "required",
  "changed", "reset", "ok", "okay", "fine", "working", "weak", "strong", "long", "short", "in", "on",
  "for", "of", "to", "that", "this", "my", "your", "no", "also", "already", "it", "case", "sensitive",
  "saved", "stored", "sent", "forgotten", "lost", "new", "old", "there", "here", "what", "which",
  "non", "sbagliata", "sbagliato", "errata", "errato", "scaduta", "scaduto", "corretta", "corretto",
  "giusta", "giusto", "la", "il", "lo", "una", "un", "troppo", "ancora", "bloccata", "bloccato",
  "cambiata", "cambiato", "diversa", "diverso", "uguale", "vuota", "obbligatoria", "nuova", "nuovo",
  "vecchia", "vecchio", "stata", "stato", "già", "sempre", "molto", "questa", "questo", "quella",
  "quello", "valida", "valido", "invalida", "corta", "lunga", "debole", "sicura", "persa", "dimenticata",
  "falsch", "nicht", "abgelaufen", "richtig", "incorrecte", "fausse", "pas", "incorrecta", "caducada",
  "null", "none", "undefined", "required.", "???", "...", "?", "!",
]);

function trimValue(text: string, s: number, e: number): number {
  // Sentence punctuation after the secret is not part of it; "!" and "?" are kept since passwords use them.
  while (e > s + 1) {
    const c = text.charCodeAt(e - 1);
    if (c === 46 || c === 44 || c === 59 || c === 58 || c === 41 || c === 93 || c === 125) e--;
    else break;
  }
  return e;
}

export function scanCredentials(text: string, out: Candidate[]): void {
  CRED_KEYWORD_RE.lastIndex = 0;
  for (let m = CRED_KEYWORD_RE.exec(text); m !== null; m = CRED_KEYWORD_RE.exec(text)) {
    const after = m.index + m[0].length;
    const pinLike = m[2] !== undefined;
    const strongOnly = m[3] !== undefined;
    let valueStart = -1;
    let weak = false;
    STRONG_CONNECTOR_RE.lastIndex = after;
    if (STRONG_CONNECTOR_RE.exec(text)) {
      valueStart = STRONG_CONNECTOR_RE.lastIndex;
    } else if (!strongOnly) {
      WEAK_CONNECTOR_RE.lastIndex = after;
      if (WEAK_CONNECTOR_RE.exec(text)) {
        valueStart = WEAK_CONNECTOR_RE.lastIndex;
        weak = true;
      } else if (pinLike) {
        PIN_DIGITS_RE.lastIndex = after;
        if (PIN_DIGITS_RE.exec(text)) valueStart = PIN_DIGITS_RE.lastIndex;
      }
    }
    if (valueStart < 0) continue;
    VALUE_RE.lastIndex = valueStart;
    const v = VALUE_RE.exec(text);
    if (!v || v[1] === undefined) continue;
    const s = valueStart + v[0].length - v[1].length;
    const e = trimValue(text, s, s + v[1].length);
    const value = text.slice(s, e);
    if (weak && NOT_A_SECRET.has(value.toLowerCase())) continue;
    // A PIN/OTP given with a weak connector must be digits ("il pin è 1234"), not "il pin è scaduto".
    if (weak && pinLike && !/^\d{3,10}$/.test(value)) continue;
    out.push({ type: "CREDENTIAL", start: s, end: e, key: value, priority: PRIORITY.CREDENTIAL });
    CRED_KEYWORD_RE.lastIndex = e;
  }
}

// ---------------------------------------------------------------------------------------------
// IPv6 (full and compressed, optional dotted IPv4 tail).

const IPV6_HINT_RE = /::|[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}:/;
const IPV6_RE = /(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}(?![0-9A-Za-z:])/g;

export function scanIpv6(text: string, out: Candidate[]): void {
  if (!IPV6_HINT_RE.test(text)) return;
  IPV6_RE.lastIndex = 0;
  for (let m = IPV6_RE.exec(text); m !== null; m = IPV6_RE.exec(text)) {
    let value = m[0];
    let end = m.index + value.length;
    // "fe80::1." at a sentence end.
    if (value.endsWith(".")) {
      value = value.slice(0, -1);
      end--;
    }
    if (ipv6Valid(value)) out.push({ type: "IP", start: m.index, end, key: value.toLowerCase(), priority: PRIORITY.IP });
  }
}
