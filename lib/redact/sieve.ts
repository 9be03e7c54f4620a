// One pass over the char codes of a message that tells redact() which scanners can find anything,
// so ordinary chat ("Grazie, a domani!") costs a single loop instead of a regex scan per detector.
// Every flag is a necessary condition of the scanner it guards (test/redact-unit.test.ts checks
// the boundary cases), so skipping a scanner never loses a detection.
import { CLS, DIGIT, LETTER } from "./chars";

/** Some digit starts a run of 7+ run characters (digits, space, nbsp, . - / ( )): /\d[\d \u00a0.\-/()]{6,}/. */
export const S_RUN = 1;
/** A token run (ASCII alphanumerics and _ - + /) of 15+ characters, or letter-letter-digit-digit (an IBAN start). */
export const S_TOKENS = 2;
/** "@" (emails). */
export const S_AT = 4;
/** ":" (credential connectors, IPv6). */
export const S_COLON = 8;
/** "=" (credential connectors). */
export const S_EQ = 16;

/**
 * Positions where a weak credential keyword (pin, password, pwd, otp, cvv...) may start: an ASCII
 * p/o/c at a word start followed by the keyword's next letters. Filled by {@link sieve}; when more
 * than {@link MAX_KEYWORDS} are found, `keywordCount` is -1 and the caller scans the whole text.
 */
export const MAX_KEYWORDS = 32;
export const keywordAt = new Int32Array(MAX_KEYWORDS);
export let keywordCount = 0;

function isRunChar(c: number): boolean {
  return (c >= 48 && c <= 57) || c === 32 || c === 46 || c === 45 || c === 47 || c === 40 || c === 41 || c === 0xa0;
}

/** isWordChar for the character before a keyword (letters of any script, digits, underscore). */
function isWordCode(c: number): boolean {
  return c < 128 ? ((CLS[c] as number) & (DIGIT | LETTER)) !== 0 || c === 95 : c >= 0xc0 && c !== 0xd7 && c !== 0xf7 && c < 0x2000;
}

/** Cheap look at the letters after a word-initial p/o/c: could WEAK_KEYWORD_RE match here? */
function keywordStart(text: string, i: number, lower: number): boolean {
  const c1 = text.charCodeAt(i + 1) | 32;
  if (lower === 112) return c1 === 97 || c1 === 119 || c1 === 105; // pa(ss...), pw(d), pi(n)
  if (lower === 111) return c1 === 116 && (text.charCodeAt(i + 2) | 32) === 112; // otp
  return c1 === 118; // cv(v|c)
}

/** Scans `text` once; returns the S_* flags and fills {@link keywordAt}. */
export function sieve(text: string): number {
  const n = text.length;
  let flags = 0;
  let kw = 0;
  let tokStart = -1; // start of the current token run
  let stretchDigit = -2; // first digit of the current stretch of run characters; -1 none yet; -2 not in a stretch
  let prevWord = false; // the previous character is a word character
  let c1 = 0; // the previous character's class (CLS), 0 for non-ASCII
  let c2 = 0; // the class two characters back
  let c3 = 0; // three back
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    const cls = c < 128 ? (CLS[c] as number) : 0;
    // Digit runs.
    if (isRunChar(c)) {
      if (stretchDigit === -2) stretchDigit = cls === DIGIT ? i : -1;
      else if (stretchDigit === -1 && cls === DIGIT) stretchDigit = i;
    } else if (stretchDigit !== -2) {
      if (stretchDigit >= 0 && i - stretchDigit >= 7) flags |= S_RUN;
      stretchDigit = -2;
    }
    if (cls !== 0) {
      // Token runs, and "XX00" IBAN starts.
      if (tokStart < 0) tokStart = i;
      if (cls === DIGIT) {
        if (c1 === DIGIT && c2 === LETTER && c3 === LETTER) flags |= S_TOKENS;
      } else if (cls === LETTER && !prevWord) {
        const lower = c | 32;
        if ((lower === 112 || lower === 111 || lower === 99) && keywordStart(text, i, lower)) {
          if (kw < MAX_KEYWORDS) keywordAt[kw] = i;
          kw++;
        }
      }
      prevWord = cls !== 4 || c === 95;
    } else {
      if (tokStart >= 0) {
        if (i - tokStart >= 15) flags |= S_TOKENS;
        tokStart = -1;
      }
      if (c === 64) flags |= S_AT;
      else if (c === 58) flags |= S_COLON;
      else if (c === 61) flags |= S_EQ;
      prevWord = c >= 0xc0 && isWordCode(c);
    }
    c3 = c2;
    c2 = c1;
    c1 = cls;
  }
  if (stretchDigit >= 0 && n - stretchDigit >= 7) flags |= S_RUN;
  if (tokStart >= 0 && n - tokStart >= 15) flags |= S_TOKENS;
  keywordCount = kw > MAX_KEYWORDS ? -1 : kw;
  return flags;
}
