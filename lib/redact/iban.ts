// IBAN: ISO 13616 structure, per-country length and mod-97 check. IBAN starts are found by the
// digit-run scan ("FR76 3000 ...") and the token scan (compact, or groups with few digits).
import type { Candidate } from "./candidate";
import { PRIORITY, covered } from "./candidate";
import { isAlnum, isDigit, isWordChar } from "./chars";
import { IBAN_LENGTHS, ibanMod97Valid } from "./validators";

/** text[start, end) without its separators, upper-cased: the IBAN's placeholder key. */
function compactUpper(text: string, start: number, end: number, count: number): string {
  if (end - start === count) return text.slice(start, end).toUpperCase();
  let key = "";
  let s = start;
  for (let i = start; i < end; i++) {
    if (isAlnum(text.charCodeAt(i))) continue;
    key += text.slice(s, i);
    s = i + 1;
  }
  return (key + text.slice(s, end)).toUpperCase();
}

/** IBAN length by country code, indexed (A-Z, A-Z) -> 26 * a + b; 0 for non-IBAN countries. */
const IBAN_LENGTH_TABLE = new Uint8Array(26 * 26);
for (const [cc, n] of Object.entries(IBAN_LENGTHS)) IBAN_LENGTH_TABLE[(cc.charCodeAt(0) - 65) * 26 + cc.charCodeAt(1) - 65] = n;

/** IBAN length of the country named by the two letters at `start` (any case); 0 when they name none. */
function ibanLengthAt(text: string, start: number): number {
  const c0 = (text.charCodeAt(start) & ~32) - 65;
  const c1 = (text.charCodeAt(start + 1) & ~32) - 65;
  if (c0 < 0 || c0 > 25 || c1 < 0 || c1 > 25) return 0;
  return IBAN_LENGTH_TABLE[c0 * 26 + c1] as number;
}

/** "XX00" at `s` naming an IBAN country, at a word start: a group an IBAN in groups may begin with. */
function ibanFirstGroupAt(text: string, s: number): boolean {
  return (
    isDigit(text.charCodeAt(s + 2)) &&
    isDigit(text.charCodeAt(s + 3)) &&
    ibanLengthAt(text, s) !== 0 &&
    (s === 0 || !isWordChar(text.charCodeAt(s - 1)))
  );
}

/** Validates an IBAN starting at `start` (single spaces or dashes allowed between characters); returns its end or -1. */
export function ibanAt(text: string, start: number, out: Candidate[]): number {
  const ibanLen = ibanLengthAt(text, start);
  if (ibanLen === 0) return -1;
  const len = text.length;
  let count = 4;
  let p = start + 4;
  while (count < ibanLen && p < len) {
    const c = text.charCodeAt(p);
    if (isAlnum(c)) {
      count++;
      p++;
    } else if ((c === 32 || c === 45 || c === 0xa0) && p + 1 < len && isAlnum(text.charCodeAt(p + 1))) {
      p++;
    } else break;
  }
  if (count !== ibanLen || (p < len && isAlnum(text.charCodeAt(p)))) return -1;
  if (!ibanMod97Valid(text, start, p)) return -1;
  const key = compactUpper(text, start, p, ibanLen);
  out.push({ type: "IBAN", start, end: p, key, priority: PRIORITY.IBAN });
  return p;
}

/**
 * An IBAN written in groups ("IT60 X054 2811 ...") that reaches the digit run or group at `pos`:
 * walks back over groups of up to four alphanumerics, trying each "XX00" group at a word start as
 * its first group (the nearest that validates wins: "GR12" may just be a group inside a longer one).
 * Returns the IBAN's end (its candidate pushed to `out`) or -1.
 */
export function ibanBefore(text: string, pos: number, out: Candidate[]): number {
  let p = pos;
  for (let groups = 0; groups < 8; groups++) {
    const sep = text.charCodeAt(p - 1);
    if (sep !== 32 && sep !== 45 && sep !== 0xa0) return -1;
    const e = p - 1;
    let s = e;
    while (s > 0 && e - s < 5 && isAlnum(text.charCodeAt(s - 1))) s--;
    const n = e - s;
    if (n === 0 || n > 4) return -1;
    if (n === 4 && ibanFirstGroupAt(text, s)) {
      const end = ibanAt(text, s, out);
      if (end > 0) return end;
    }
    p = s;
  }
  return -1;
}

/**
 * IBAN written in groups ("MT84 MALT 0110 ...") around the group ending at `groupEnd - 1`: finds
 * the "XX00" group it starts with and validates from there. Returns the IBAN end or -1.
 */
export function ibanAroundGroup(text: string, groupEnd: number, out: Candidate[]): number {
  let gs = groupEnd;
  while (gs > 0 && groupEnd - gs < 4 && isAlnum(text.charCodeAt(gs - 1))) gs--;
  if (gs > 0 && isAlnum(text.charCodeAt(gs - 1))) return -1;
  const first = groupEnd - gs === 4 && ibanFirstGroupAt(text, gs);
  // Cheap shape checks first: most short groups ("Il", "14", "2025") follow no other group.
  if (!first) {
    const sep = gs > 1 ? text.charCodeAt(gs - 1) : 0;
    if (!((sep === 32 || sep === 45 || sep === 0xa0) && isAlnum(text.charCodeAt(gs - 2)))) return -1;
  }
  if (out.length > 0 && covered(out, 0, gs, groupEnd)) return -1;
  if (first) {
    const end = ibanAt(text, gs, out);
    if (end > 0) return end;
  }
  return ibanBefore(text, gs, out);
}
