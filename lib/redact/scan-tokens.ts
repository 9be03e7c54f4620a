// Long tokens: codice fiscale (16 chars), compact IBANs, API keys with a known shape, generic
// high-entropy secrets. A run of 15+ token characters covers at least one position p with
// p % 15 == 14, so sampling every 15th character finds all of them while reading a fraction of the
// text. The same samples catch IBANs written in groups whose digits are too few for the digit scan.
import type { Candidate, Enabled } from "./candidate";
import { PRIORITY, PRIORITY_TOKEN } from "./candidate";
import { CLS, LETTER, TOKEN_EXTRA, isAsciiLetter, isDigit, isTokenChar, isUpperAlnum } from "./chars";
import { ibanAroundGroup, ibanAt } from "./iban";
import { codiceFiscaleValid } from "./validators";

const MIN_TOKEN = 15;
const KNOWN_SECRET_RE =
  /^(?:sk-(?:proj-|live-|test-|ant-(?:api\d\d-)?)?[A-Za-z0-9_-]{16,}|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|(?:AKIA|ASIA)[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,}|npm_[A-Za-z0-9]{36}|hf_[A-Za-z0-9]{30,})$/;
const JWT_TAIL_RE = /\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/y;
const CF_SHAPE_RE =
  /^[A-Za-z]{6}[0-9LMNPQRSTUVlmnpqrstuv]{2}[A-Za-z][0-9LMNPQRSTUVlmnpqrstuv]{2}[A-Za-z][0-9LMNPQRSTUVlmnpqrstuv]{3}[A-Za-z]$/;

/**
 * Random-looking: digits and letters mixed, and short character-class runs (words and slugs such as
 * "Galaxy-S24-Ultra-512GB" have long letter runs). Hex strings of 32+ chars always qualify.
 */
function looksRandom(t: string): boolean {
  let upper = 0;
  let lower = 0;
  let digit = 0;
  let other = 0;
  let hexLower = true;
  let hexUpper = true;
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
      hexUpper = false;
      if (c > 102) hexLower = false;
    } else if (c >= 65 && c <= 90) {
      upper++;
      cls = 2;
      hexLower = false;
      if (c > 70) hexUpper = false;
    } else {
      other++;
      cls = 3;
      hexLower = false;
      hexUpper = false;
    }
    if (cls !== prevClass) runs++;
    prevClass = cls;
  }
  if (digit < 2 || upper + lower < 2) return false;
  if ((hexLower || hexUpper) && digit >= 4 && upper + lower >= 4) return true;
  if (upper < 2 || lower < 2) return false;
  if (other > t.length / 4) return false;
  if (runs * 2 >= t.length) return true;
  // Mostly letters in random case still has many distinct characters (a CamelCase phrase has few).
  let lowerSeen = 0;
  let upperSeen = 0;
  let distinct = 0;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c >= 97 && c <= 122) {
      const bit = 1 << (c - 97);
      if ((lowerSeen & bit) === 0) distinct++;
      lowerSeen |= bit;
    } else if (c >= 65 && c <= 90) {
      const bit = 1 << (c - 65);
      if ((upperSeen & bit) === 0) distinct++;
      upperSeen |= bit;
    }
  }
  return distinct * 20 >= t.length * 13;
}

function classifyToken(text: string, start: number, end: number, en: Enabled, out: Candidate[]): number {
  // Trailing separators are not part of the token.
  while (end > start && (CLS[text.charCodeAt(end - 1)] as number) === TOKEN_EXTRA) end--;
  // Tokens start with a letter or digit.
  while (start < end && (CLS[text.charCodeAt(start)] as number) === TOKEN_EXTRA) start++;
  const n = end - start;
  if (n < MIN_TOKEN) return end;
  // Digits with separators are the digit-run scanner's business.
  let letter = start;
  while (letter < end && ((CLS[text.charCodeAt(letter)] as number) & LETTER) === 0) letter++;
  if (letter === end) return end;
  if (en.IBAN && n <= 42 && isAsciiLetter(text.charCodeAt(start + 1)) && isDigit(text.charCodeAt(start + 2)) && isDigit(text.charCodeAt(start + 3))) {
    // The digit scan may have validated this very IBAN already (ibanAt depends only on the text
    // and the start): a second candidate would be an exact duplicate, dropped by the overlap step.
    for (let k = 0; k < out.length; k++) {
      const o = out[k] as Candidate;
      if (o.start === start && o.type === "IBAN") return o.end;
    }
    const ibanEnd = ibanAt(text, start, out);
    if (ibanEnd > 0) return ibanEnd;
  }
  const token = text.slice(start, end);
  if (n === 16 && en.CODICE_FISCALE && CF_SHAPE_RE.test(token) && codiceFiscaleValid(token)) {
    out.push({ type: "CODICE_FISCALE", start, end, key: token.toUpperCase(), priority: PRIORITY.CODICE_FISCALE });
    return end;
  }
  if (!en.CREDENTIAL) return end;
  if (token.startsWith("eyJ")) {
    JWT_TAIL_RE.lastIndex = end;
    if (JWT_TAIL_RE.test(text)) {
      const jwtEnd = JWT_TAIL_RE.lastIndex;
      out.push({ type: "CREDENTIAL", start, end: jwtEnd, key: text.slice(start, jwtEnd), priority: PRIORITY_TOKEN });
      return jwtEnd;
    }
  }
  if (KNOWN_SECRET_RE.test(token)) {
    out.push({ type: "CREDENTIAL", start, end, key: token, priority: PRIORITY_TOKEN });
    return end;
  }
  if (n < 32) return end;
  // A path such as "com/track/<secret>": judge the last segment alone.
  let s = start;
  let t = token;
  if (!looksRandom(t)) {
    const slash = t.lastIndexOf("/");
    if (slash < 0) return end;
    t = t.slice(slash + 1);
    s = start + slash + 1;
    if (t.length < 32 || !looksRandom(t)) return end;
  }
  // Base64 padding belongs to the secret.
  let e = end;
  while (e < text.length && e - end < 2 && text.charCodeAt(e) === 61) e++;
  out.push({ type: "CREDENTIAL", start: s, end: e, key: text.slice(s, e), priority: PRIORITY_TOKEN });
  return e;
}

export function scanTokens(text: string, out: Candidate[], en: Enabled): void {
  const n = text.length;
  for (let p = MIN_TOKEN - 1; p < n; p += MIN_TOKEN) {
    const c = text.charCodeAt(p);
    if (!isTokenChar(c)) {
      // Samples 15 apart keep landing on the spaces of an IBAN in groups of 4: look at the group.
      if (en.IBAN && (c === 32 || c === 0xa0) && isUpperAlnum(text.charCodeAt(p - 1)) && isUpperAlnum(text.charCodeAt(p + 1))) {
        const end = ibanAroundGroup(text, p, out);
        // The IBAN found may end before this sample (it starts groups earlier): never step back.
        if (end - 1 > p) p = end - 1;
      }
      continue;
    }
    let s = p;
    while (s > 0 && isTokenChar(text.charCodeAt(s - 1))) s--;
    let e = p + 1;
    while (e < n && isTokenChar(text.charCodeAt(e))) e++;
    if (e - s >= MIN_TOKEN) {
      e = classifyToken(text, s, e, en, out);
    } else if (en.IBAN && e - s <= 4 && isUpperAlnum(text.charCodeAt(s)) && isUpperAlnum(text.charCodeAt(e - 1))) {
      const end = ibanAroundGroup(text, e, out);
      if (end > 0) e = end;
    }
    // Next sample strictly after this run, and never behind this one: an IBAN found from here may
    // end earlier, and a token's trimmed end may too; stepping back would find them again forever.
    if (e - 1 > p) p = e - 1;
  }
}
