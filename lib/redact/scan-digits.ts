// Digit runs: phones, cards, SSNs, partite IVA, IPv4 and IBANs written in groups are found from one
// scan for runs of digits joined by separators (space, . - / and parentheses), then validated:
// issuer ranges and Luhn, SSN rules, check digits, phone metadata, and the words around the run
// (business facts such as "order 483920", dates, prices and versions are left alone).
import type { Candidate, Enabled } from "./candidate";
import { PRIORITY, covered } from "./candidate";
import { isAlnum, isAsciiLetter, isDigit, isUpperAlnum, isWordChar } from "./chars";
import { hasCurrencyContext, hasSsnContext, hasVatContext, hasVersionContext, numberContext } from "./context";
import { ibanAt, ibanBefore } from "./iban";
import { FALLBACK_COUNTRIES, validateInternational, validateNational } from "./phone";
import { RUN_SOURCE, runCount, runEnd, runStart } from "./prescan";
import { cardIssuerPrefixValid, cardIssuerValid, ipv4Valid, luhnTerm, luhnValid, partitaIvaValid, ssnValid } from "./validators";

const RUN_RE = new RegExp(RUN_SOURCE, "g");

/** Most groups a single identifier spans ("+33 6 12 34 56 78" has six). */
const MAX_GROUPS_PER_ENTITY = 7;

// Scratch arrays reused across runs to avoid per-run allocation (redaction is synchronous).
const gStart: number[] = [];
const gEnd: number[] = [];
const gSep: number[] = []; // first non-space separator before the group, 32 if only spaces, 0 for the first
const gSpaced: boolean[] = []; // the separator before the group contains a space
const gParen: boolean[] = []; // the group is wrapped in parentheses, as in "+44 (0)20"
const gCum: number[] = [0]; // digits in groups [0, g)

function glen(g: number): number {
  return (gEnd[g] as number) - (gStart[g] as number);
}

function gvalue(text: string, g: number): number {
  let v = 0;
  for (let i = gStart[g] as number, e = gEnd[g] as number; i < e; i++) v = v * 10 + text.charCodeAt(i) - 48;
  return v;
}

/** Digits of the whole current run (built on first use, sliced per span). */
let runDigits = "";
/** runDigits holds the digits of the run being classified (most runs never need them). */
let runDigitsReady = false;
/** Groups of the run being classified. */
let runGroups = 0;

/** Builds the digits of the current run's groups, once, when a validator needs them. */
function ensureRunDigits(text: string): void {
  if (runDigitsReady) return;
  runDigitsReady = true;
  const k = runGroups;
  if (k === 1) {
    runDigits = text.slice(gStart[0], gEnd[0]);
    return;
  }
  let d = "";
  for (let g = 0; g < k; g++) d += text.slice(gStart[g], gEnd[g]);
  runDigits = d;
}

function spanDigits(text: string, i: number, j: number): string {
  ensureRunDigits(text);
  return runDigits.slice(gCum[i], gCum[j + 1]);
}

/** Digits of an international span, leaving out a "(0)" trunk prefix after the country code. */
function intlDigits(text: string, i: number, j: number): string {
  ensureRunDigits(text);
  for (let g = i + 1; g <= j; g++) {
    if (gParen[g] && glen(g) === 1 && text.charCodeAt(gStart[g] as number) === 48) {
      return runDigits.slice(gCum[i], gCum[g]) + runDigits.slice(gCum[g + 1], gCum[j + 1]);
    }
  }
  return spanDigits(text, i, j);
}

/** Groups forming a date at group i ("14/03/2025", "2025-03-14", "14.03.25"), or 0. */
function dateGroupsAt(text: string, i: number, k: number): number {
  if (i + 2 >= k) return 0;
  const sep = gSep[i + 1];
  if (sep !== gSep[i + 2] || !(sep === 47 || sep === 46 || sep === 45) || gSpaced[i + 1] || gSpaced[i + 2]) return 0;
  // "10.21.93.253" continues with the same separator: not a date.
  if (i + 3 < k && gSep[i + 3] === sep && !gSpaced[i + 3]) return 0;
  const l0 = glen(i);
  const l1 = glen(i + 1);
  const l2 = glen(i + 2);
  if (l0 <= 2 && l1 <= 2 && (l2 === 2 || l2 === 4)) return gvalue(text, i) <= 31 && gvalue(text, i + 1) <= 31 ? 3 : 0;
  if (l0 === 4 && l1 <= 2 && l2 <= 2) return gvalue(text, i + 1) <= 12 && gvalue(text, i + 2) <= 31 ? 3 : 0;
  return 0;
}

/** "1.234.567": thousands grouping, a quantity or an amount. */
function isThousandsGrouping(i: number, j: number): boolean {
  if (j - i < 2 || glen(i) > 3) return false;
  for (let g = i + 1; g <= j; g++) if (gSep[g] !== 46 || gSpaced[g] || glen(g) !== 3) return false;
  return true;
}

/** Card-like layout: one block of 13+ digits, or 4-digit blocks (Amex 4-6-5, Diners 4-6-4). */
function isCardShaped(k: number): boolean {
  const total = gCum[k] as number;
  if (total < 13 || total > 19) return false;
  if (k === 1) return true;
  if (k === 3 && glen(0) === 4 && glen(1) === 6) return true;
  for (let g = 0; g < k - 1; g++) if (glen(g) !== 4) return false;
  return glen(k - 1) <= 4;
}

/** Context of the run being classified, computed lazily. 0 unknown, 1 none, 2 business, 3 phone. */
let runContext = 0;
let runCurrency = 0; // 0 unknown, 1 no, 2 yes

function runNumberContext(text: string, runStart: number): number {
  if (runContext === 0) {
    const c = numberContext(text, runStart);
    runContext = c === "business" ? 2 : c === "phone" ? 3 : 1;
  }
  return runContext;
}

function runHasCurrency(text: string, runStart: number, runEnd: number): boolean {
  if (runCurrency === 0) runCurrency = hasCurrencyContext(text, runStart, runEnd) ? 2 : 1;
  return runCurrency === 2;
}

/**
 * @param prescanned the runs were recorded by prescan() for this text (otherwise RUN_RE finds them).
 */
export function scanDigitRuns(text: string, out: Candidate[], en: Enabled, country: string, prescanned = false): void {
  let floor = 0;
  if (prescanned) {
    const count = runCount[0] as number;
    for (let k = 0; k < count; k++) {
      const start = runStart[k] as number;
      const matchEnd = runEnd[k] as number;
      if (matchEnd <= floor) continue;
      // An IBAN found in an earlier run reached into this one: let the regex resume after it.
      if (start < floor) return scanDigitRunsFrom(text, out, en, country, floor);
      floor = scanMatch(text, start, matchEnd, out, en, country);
    }
    return;
  }
  scanDigitRunsFrom(text, out, en, country, 0);
}

function scanDigitRunsFrom(text: string, out: Candidate[], en: Enabled, country: string, from: number): void {
  RUN_RE.lastIndex = from;
  let floor = from;
  // test() instead of exec(): no match array; the start is found by walking back over run characters.
  while (RUN_RE.test(text)) {
    const matchEnd = RUN_RE.lastIndex;
    let i = matchEnd - 1;
    while (i > floor && isRunChar(text.charCodeAt(i - 1))) i--;
    while (!isDigit(text.charCodeAt(i))) i++;
    RUN_RE.lastIndex = scanMatch(text, i, matchEnd, out, en, country);
    floor = RUN_RE.lastIndex;
  }
}

/** Classifies the runs in the match [i, matchEnd); returns where the next match may start. */
function scanMatch(text: string, i: number, matchEnd: number, out: Candidate[], en: Enabled, country: string): number {
  // A match can hold several runs split by long gaps of separators ("123    456").
  while (i < matchEnd) {
    const next = scanRun(text, i, matchEnd, out, en, country);
    if (next > matchEnd) return next; // an IBAN may extend past the match
    i = next;
    // An IBAN ends wherever its last group does: the next run starts at the next digit, not at a separator.
    while (i < matchEnd && !isDigit(text.charCodeAt(i))) i++;
  }
  return matchEnd;
}

function isRunChar(c: number): boolean {
  return (c >= 48 && c <= 57) || c === 32 || c === 46 || c === 45 || c === 47 || c === 40 || c === 41 || c === 0xa0;
}

/**
 * Handles the run of digits starting at `from` (a digit) inside a match ending at `limit`; returns
 * where the next run may start.
 */
function scanRun(text: string, from: number, limit: number, out: Candidate[], en: Enabled, country: string): number {
  const len = text.length;
  // One pass splits the run into digit groups (into the scratch arrays) and finds where it ends:
  // at a character that is not a separator, or after more than 3 separators in a row.
  let groups = 0;
  let digits = 0;
  let sep = 0;
  let gap = 0;
  let spaced = false;
  let paren = false;
  let runEnd = from;
  let i = from;
  while (i < limit) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      const s = i;
      i++;
      while (i < limit && isDigit(text.charCodeAt(i))) i++;
      gStart[groups] = s;
      gEnd[groups] = i;
      gSep[groups] = sep;
      gSpaced[groups] = spaced;
      gParen[groups] = paren && text.charCodeAt(i) === 41;
      digits += i - s;
      groups++;
      gCum[groups] = digits;
      runEnd = i;
      sep = 0;
      gap = 0;
      spaced = false;
      paren = false;
      continue;
    }
    if (++gap > 3) break;
    if (c === 40) paren = true;
    else if (c === 32 || c === 0xa0) {
      spaced = true;
      if (sep === 0) sep = 32;
    } else if (c !== 41 && (sep === 0 || sep === 32)) sep = c;
    i++;
  }
  let runStart = from;
  // Next run: first digit after this one.
  let resume = runEnd;
  while (resume < limit && !isDigit(text.charCodeAt(resume))) resume++;
  // Nothing of interest has fewer than 7 digits, except a dotted quad (IPv4).
  if (digits < 7 && groups !== 4) return resume;
  if (text.charCodeAt(runStart - 1) === 40) runStart--;
  const plus = text.charCodeAt(runStart - 1) === 43;
  if (plus) runStart--;
  const next = runEnd < len ? text.charCodeAt(runEnd) : 0;
  const prev = runStart > 0 ? text.charCodeAt(runStart - 1) : 0;

  // Only worth it after "XX00" or an upper-case/digit group of four: IBAN groups look like that.
  if (
    en.IBAN &&
    (isAlnum(prev) ||
      ((prev === 32 || prev === 45 || prev === 0xa0) && isUpperAlnum(text.charCodeAt(runStart - 2)) && isUpperAlnum(text.charCodeAt(runStart - 5))))
  ) {
    // "FR76 3000 6000 ..." (run starts at the check digits) or "IT60 X054 2811 ..." (run starts later).
    let ws = runStart;
    while (ws > 0 && runStart - ws < 5 && isAlnum(text.charCodeAt(ws - 1))) ws--;
    let end = -1;
    if (
      runStart - ws === 2 &&
      isAsciiLetter(text.charCodeAt(ws)) &&
      isAsciiLetter(text.charCodeAt(ws + 1)) &&
      (ws === 0 || !isWordChar(text.charCodeAt(ws - 1)))
    ) {
      end = ibanAt(text, ws, out);
    }
    // Not an IBAN start ("AA7" may be the last group of "MT17 AAAA ... AA7"): walk back over the groups.
    if (end < 0 && ws > 0) {
      const b = text.charCodeAt(ws - 1);
      if (b === 32 || b === 45 || b === 0xa0) end = ibanBefore(text, ws, out);
    }
    // Digits after the IBAN's last group ("... 7654 32 4111 1111 1111 1111") are runs of their own.
    if (end > from) return end;
  }

  // Glued to letters on the right: a unit ("30kg"), a code ("1234XL"), a percentage, an email.
  if (isWordChar(next) || next === 64 || next === 37) return resume;
  if ((next === 45 || next === 47) && runEnd + 1 < len && isAsciiLetter(text.charCodeAt(runEnd + 1))) return resume;
  if (!plus && isWordChar(prev)) {
    // Only "IT12345678901" (partita IVA with country prefix) survives a letter on the left.
    if (en.PARTITA_IVA && runEnd - runStart === 11 && runStart >= 2) {
      const b = runStart >= 3 ? text.charCodeAt(runStart - 3) : 0;
      if ((text.charCodeAt(runStart - 2) | 32) === 105 && (prev | 32) === 116 && !isWordChar(b)) {
        const value = text.slice(runStart, runEnd);
        if (partitaIvaValid(value)) {
          out.push({ type: "PARTITA_IVA", start: runStart - 2, end: runEnd, key: value, priority: PRIORITY.PARTITA_IVA });
        }
      }
    }
    return resume;
  }
  // "FT-2025/0042", "AB-1234": a code whose letters sit before a dash (or a slash, unless the run is
  // long enough to be a phone in a link such as "wa.me/39333...").
  if (!plus && (prev === 45 || (prev === 47 && digits < 8)) && runStart >= 2 && isAsciiLetter(text.charCodeAt(runStart - 2))) {
    return resume;
  }
  // Inside a credential value or an email found earlier.
  if (out.length > 0 && covered(out, 0, runStart, runEnd)) return resume;
  classifyGroups(text, runStart, runEnd, groups, plus, out, en, country);
  return resume;
}

/** Issuer range and Luhn over the digits of groups [0, k), read in place. */
function cardRunValid(text: string, k: number): boolean {
  // Issuer rules look at the first four digits, which may span groups ("4 111 ...").
  let first4 = 0;
  let seen = 0;
  for (let g = 0; g < k && seen < 4; g++) {
    for (let i = gStart[g] as number, e = gEnd[g] as number; i < e && seen < 4; i++, seen++) first4 = first4 * 10 + text.charCodeAt(i) - 48;
  }
  if (!cardIssuerPrefixValid(first4, gCum[k] as number)) return false;
  let sum = 0;
  let double = false;
  for (let g = k - 1; g >= 0; g--) {
    for (let i = (gEnd[g] as number) - 1, s = gStart[g] as number; i >= s; i--) {
      sum += luhnTerm(text.charCodeAt(i) - 48, double);
      double = !double;
    }
  }
  return sum % 10 === 0;
}

function classifyGroups(text: string, runStart: number, runEnd: number, k: number, plus: boolean, out: Candidate[], en: Enabled, country: string): void {
  const digits = gCum[k] as number;
  // Fewer than 7 digits: only a dotted quad (IPv4) is of interest.
  if (k === 0 || (digits < 7 && k !== 4)) return;
  runContext = 0;
  runCurrency = 0;
  // A run that starts with a date is that date (and maybe a time).
  if (dateGroupsAt(text, 0, k) === 3 && k <= 4 && (k === 3 || (gCum[k] as number) - (gCum[3] as number) <= 4)) return;
  runGroups = k;
  runDigitsReady = false;

  // The whole run is a valid card, however it is grouped.
  if (en.CARD && digits >= 13 && digits <= 19 && !plus && cardRunValid(text, k)) {
    ensureRunDigits(text);
    out.push({ type: "CARD", start: gStart[0] as number, end: gEnd[k - 1] as number, key: runDigits, priority: PRIORITY.CARD });
    return;
  }
  // A card-shaped number that is not a card (tracking, IMEI...) is a business fact as a whole.
  if (isCardShaped(k)) return;

  let g = 0;
  while (g < k) {
    const dateGroups = dateGroupsAt(text, g, k);
    if (dateGroups > 0) {
      g += dateGroups;
      continue;
    }
    let matched = false;
    const jMax = Math.min(k - 1, g + MAX_GROUPS_PER_ENTITY - 1);
    for (let j = jMax; j >= g; j--) {
      const d = (gCum[j + 1] as number) - (gCum[g] as number);
      if (d > 19) continue;
      if (d < 7 && j - g !== 3) break;
      const cand = classifySpan(text, g, j, d, plus && g === 0, g === 0 ? runStart : (gStart[g] as number), runStart, runEnd, en, country);
      if (cand !== null) {
        out.push(cand);
        g = j + 1;
        matched = true;
        break;
      }
    }
    if (!matched) g++;
  }
}

function classifySpan(
  text: string,
  i: number,
  j: number,
  d: number,
  intlPlus: boolean,
  spanStart: number,
  runStart: number,
  runEnd: number,
  en: Enabled,
  country: string,
): Candidate | null {
  const groups = j - i + 1;
  const first = gStart[i] as number;
  const spanEnd = gEnd[j] as number;

  // IPv4: four dotted groups.
  if (groups === 4 && !intlPlus && d <= 12) {
    let dotted = true;
    for (let g = i + 1; g <= j; g++) if (gSep[g] !== 46 || gSpaced[g]) dotted = false;
    if (dotted) {
      const value = text.slice(first, spanEnd);
      if (en.IP && ipv4Valid(value) && !hasVersionContext(text, first)) {
        return { type: "IP", start: first, end: spanEnd, key: value, priority: PRIORITY.IP };
      }
      return null;
    }
  }
  if (d < 7 || isThousandsGrouping(i, j)) return null;

  // Cards inside a longer run (a card-shaped run as a whole was handled by the caller).
  if (!intlPlus && d >= 13 && en.CARD) {
    const digits = spanDigits(text, i, j);
    if (cardIssuerValid(digits) && luhnValid(digits)) {
      return { type: "CARD", start: first, end: spanEnd, key: digits, priority: PRIORITY.CARD };
    }
  }

  // SSN: AAA-GG-SSSS, or nine digits / spaced groups when "SSN" is said nearby.
  if (en.SSN && d === 9 && !intlPlus) {
    const shaped = groups === 3 && glen(i) === 3 && glen(i + 1) === 2;
    const dashed = shaped && gSep[i + 1] === 45 && gSep[i + 2] === 45 && !gSpaced[i + 1] && !gSpaced[i + 2];
    if (dashed || ((shaped || groups === 1) && hasSsnContext(text, first))) {
      const digits = spanDigits(text, i, j);
      if (ssnValid(digits)) return { type: "SSN", start: first, end: spanEnd, key: digits, priority: PRIORITY.SSN };
      if (dashed) return null;
    }
  }

  // Partita IVA: eleven digits with "P.IVA"/"VAT" nearby (the "IT" prefix form is found by the caller).
  if (en.PARTITA_IVA && d === 11 && groups === 1 && !intlPlus) {
    const digits = spanDigits(text, i, j);
    if (partitaIvaValid(digits) && hasVatContext(text, first)) {
      return { type: "PARTITA_IVA", start: first, end: spanEnd, key: digits, priority: PRIORITY.PARTITA_IVA };
    }
  }

  if (!en.PHONE) return null;
  // Phones: 8-15 digits nationally, 7-15 after a country code ("+" or "00").
  let intl = intlPlus;
  let pd = d;
  if (!intl && text.charCodeAt(first) === 48 && text.charCodeAt(first + 1) === 48) {
    intl = true;
    pd -= 2;
  }
  if (pd > 15 || (!intl && pd < 8)) return null;
  const ctx = runNumberContext(text, runStart);
  if (ctx === 2 && i === 0) return null;
  if (runHasCurrency(text, runStart, runEnd)) return null;
  let e164: string | null;
  if (intl) {
    const all = intlDigits(text, i, j);
    e164 = validateInternational(intlPlus ? all : all.slice(2));
  } else {
    const all = spanDigits(text, i, j);
    e164 = validateNational(all, country);
    if (e164 === null && ctx === 3) {
      for (const c of FALLBACK_COUNTRIES) {
        if (c === country) continue;
        e164 = validateNational(all, c);
        if (e164 !== null) break;
      }
    }
  }
  if (e164 === null) return null;
  const startsParen = text.charCodeAt(spanStart) === 40;
  let end = spanEnd;
  if (startsParen && text.charCodeAt(end) === 41) end++;
  return { type: "PHONE", start: intlPlus || startsParen ? spanStart : first, end, key: e164, priority: PRIORITY.PHONE };
}
