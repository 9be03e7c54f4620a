// Checksum and structure validators. All functions are allocation-light because they run
// on every candidate span the scanners produce.

const C0 = 48; // "0"

/** A digit's Luhn contribution: every second digit from the right (`double`) is doubled, minus 9 above 9. */
export function luhnTerm(d: number, double: boolean): number {
  if (!double) return d;
  const twice = d * 2;
  return twice > 9 ? twice - 9 : twice;
}

/** Luhn check over a string of ASCII digits only. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    sum += luhnTerm(digits.charCodeAt(i) - C0, double);
    double = !double;
  }
  return sum % 10 === 0;
}

/** Numeric value of the first `n` digits of `digits`. */
function prefixValue(digits: string, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) v = v * 10 + (digits.charCodeAt(i) - C0);
  return v;
}

/**
 * True when `digits` (13–19 ASCII digits) starts with a known card-issuer prefix and has a length
 * that issuer uses. Luhn is checked separately.
 */
export function cardIssuerValid(digits: string): boolean {
  const len = digits.length;
  if (len < 13 || len > 19) return false;
  return cardIssuerPrefixValid(prefixValue(digits, 4), len);
}

/**
 * {@link cardIssuerValid} from the value of the first four digits and the digit count, for
 * callers that read digits in place.
 */
export function cardIssuerPrefixValid(p4: number, len: number): boolean {
  if (len < 13 || len > 19) return false;
  const p1 = Math.floor(p4 / 1000);
  if (p1 === 4) return len === 13 || len === 16 || len === 19; // Visa (and Visa Electron)
  if (p1 < 2 || p1 > 6) return false;
  const p2 = Math.floor(p4 / 100);
  switch (p1) {
    case 5:
      if (p2 >= 51 && p2 <= 55) return len === 16; // Mastercard
      return p2 === 50 || (p2 >= 56 && p2 <= 58); // Maestro, Dankort, Verve
    case 2:
      if (p4 >= 2221 && p4 <= 2720) return len === 16; // Mastercard 2-series
      return p4 >= 2200 && p4 <= 2204 && len >= 16; // Mir
    case 3: {
      if (p2 === 34 || p2 === 37) return len === 15; // Amex
      if (p4 >= 3528 && p4 <= 3589) return len >= 16; // JCB
      const p3 = Math.floor(p4 / 10);
      return ((p3 >= 300 && p3 <= 305) || p4 === 3095 || p2 === 36 || p2 === 38 || p2 === 39) && len >= 14; // Diners
    }
    case 6: {
      const p3 = Math.floor(p4 / 10);
      if (p2 === 65 || (p3 >= 644 && p3 <= 649) || p4 === 6011) return len >= 16; // Discover
      if (p2 === 62 || p2 === 60) return len >= 16; // UnionPay (incl. Discover co-brand 622126-622925), RuPay
      return (p2 === 63 || p2 === 67) && len >= 13; // Maestro (6304, 639x, 67xx)
    }
    default:
      return false;
  }
}

/** IBAN total length per country (SWIFT IBAN registry). */
export const IBAN_LENGTHS: Readonly<Record<string, number>> = {
  AD: 24, AE: 23, AL: 28, AT: 20, AZ: 28, BA: 20, BE: 16, BG: 22, BH: 22, BI: 27, BR: 29, BY: 28,
  CH: 21, CR: 22, CY: 28, CZ: 24, DE: 22, DJ: 27, DK: 18, DO: 28, EE: 20, EG: 29, ES: 24, FI: 18,
  FK: 18, FO: 18, FR: 27, GB: 22, GE: 22, GI: 23, GL: 18, GR: 27, GT: 28, HN: 28, HR: 21, HU: 28,
  IE: 22, IL: 23, IQ: 23, IS: 26, IT: 27, JO: 30, KW: 30, KZ: 20, LB: 28, LC: 32, LI: 21, LT: 20,
  LU: 20, LV: 21, LY: 25, MC: 27, MD: 24, ME: 22, MK: 19, MN: 20, MR: 27, MT: 31, MU: 30, NI: 28,
  NL: 18, NO: 15, OM: 23, PK: 24, PL: 28, PS: 29, PT: 25, QA: 29, RO: 24, RS: 22, RU: 33, SA: 24,
  SC: 31, SD: 18, SE: 24, SI: 19, SK: 24, SM: 27, SO: 23, ST: 25, SV: 28, TL: 23, TN: 24, TR: 26,
  UA: 29, VA: 22, VG: 24, XK: 20, YE: 30,
};

/** Value of an alphanumeric IBAN character (0-9 -> 0-9, A-Z/a-z -> 10-35), or -1. */
function ibanCharValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 90) return c - 55;
  if (c >= 97 && c <= 122) return c - 87;
  return -1;
}

/**
 * ISO 13616 mod-97 check over the IBAN in text[start, end), skipping spaces and dashes between
 * characters, case-insensitive. Length and country are checked by the caller against
 * {@link IBAN_LENGTHS}.
 */
export function ibanMod97Valid(text: string, start = 0, end = text.length): boolean {
  // Rearranged order: BBAN first, then country code and check digits (the first four characters).
  let r = 0;
  let seen = 0;
  let h0 = 0;
  let h1 = 0;
  let h2 = 0;
  let h3 = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    const v = ibanCharValue(c);
    if (v < 0) {
      if (c === 32 || c === 45 || c === 0xa0) continue;
      return false;
    }
    if (seen < 4) {
      if (seen === 0) h0 = v;
      else if (seen === 1) h1 = v;
      else if (seen === 2) h2 = v;
      else h3 = v;
      seen++;
      continue;
    }
    r = v < 10 ? (r * 10 + v) % 97 : (r * 100 + v) % 97;
  }
  if (seen < 4) return false;
  // Country letters are two-digit values, check digits one-digit values.
  r = (r * 100 + h0) % 97;
  r = (r * 100 + h1) % 97;
  r = h2 < 10 ? (r * 10 + h2) % 97 : (r * 100 + h2) % 97;
  r = h3 < 10 ? (r * 10 + h3) % 97 : (r * 100 + h3) % 97;
  return r === 1;
}

// Codice fiscale "odd position" values (DM 23/12/1976) for A-Z; digits 0-9 use the values of A-J.
const CF_ODD = [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23];
/** Omocodia letters in order: L=0, M=1, ... V=9. */
export const OMOCODIA_LETTERS = "LMNPQRSTUV";
const MONTH_LETTERS = "ABCDEHLMPRST";
/** Positions that hold digits, or omocodia letters standing in for digits. */
export const CF_NUMERIC_POSITIONS: readonly number[] = [6, 7, 9, 10, 12, 13, 14];

/** Digit value at a numeric position of a codice fiscale, decoding omocodia; -1 if invalid. */
function cfDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const upper = c >= 97 ? c - 32 : c;
  return OMOCODIA_LETTERS.indexOf(String.fromCharCode(upper));
}

function isAsciiLetter(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
}

/** Check character (A-Z) for the first 15 characters of a codice fiscale (uppercase or lowercase). */
export function cfCheckChar(first15: string): string {
  let sum = 0;
  for (let i = 0; i < 15; i++) {
    let c = first15.charCodeAt(i);
    if (c >= 97) c -= 32;
    const idx = c <= 57 ? c - 48 : c - 65;
    // Odd positions in the 1-based numbering of the specification are even 0-based indexes.
    sum += i % 2 === 0 ? (CF_ODD[idx] ?? 0) : idx;
  }
  return String.fromCharCode(65 + (sum % 26));
}

/**
 * Full validation of a 16-character personal codice fiscale: layout (with omocodia), month letter,
 * day (1-31, or 41-71 for women) and check character. Case-insensitive.
 */
export function codiceFiscaleValid(s: string): boolean {
  if (s.length !== 16) return false;
  for (let i = 0; i < 6; i++) if (!isAsciiLetter(s.charCodeAt(i))) return false;
  for (const p of CF_NUMERIC_POSITIONS) if (cfDigit(s.charCodeAt(p)) < 0) return false;
  if (MONTH_LETTERS.indexOf(s.charAt(8).toUpperCase()) < 0) return false;
  if (!isAsciiLetter(s.charCodeAt(11)) || !isAsciiLetter(s.charCodeAt(15))) return false;
  const day = cfDigit(s.charCodeAt(9)) * 10 + cfDigit(s.charCodeAt(10));
  if (!((day >= 1 && day <= 31) || (day >= 41 && day <= 71))) return false;
  return cfCheckChar(s).charCodeAt(0) === (s.charCodeAt(15) & ~32);
}

/** Italian partita IVA: 11 digits, office code and check digit. */
export function partitaIvaValid(digits: string): boolean {
  if (digits.length !== 11) return false;
  let sum = 0;
  for (let i = 0; i < 10; i++) {
    let d = digits.charCodeAt(i) - C0;
    if (d < 0 || d > 9) return false;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  const check = (10 - (sum % 10)) % 10;
  if (check !== digits.charCodeAt(10) - C0) return false;
  if (prefixValue(digits, 7) === 0) return false;
  const office = prefixValue(digits.slice(7), 3);
  return (office >= 1 && office <= 100) || office === 120 || office === 121 || office === 888 || office === 999;
}

/** US SSN area/group/serial rules over 9 digits. */
export function ssnValid(digits: string): boolean {
  if (digits.length !== 9) return false;
  const area = prefixValue(digits, 3);
  const group = prefixValue(digits.slice(3), 2);
  const serial = prefixValue(digits.slice(5), 4);
  if (area === 0 || area === 666 || area >= 900) return false;
  return group !== 0 && serial !== 0;
}

function hexValue(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

/** Dotted-quad IPv4 with octets 0-255 and no leading zeros. */
export function ipv4Valid(s: string): boolean {
  let parts = 0;
  let len = 0;
  let value = 0;
  let leadingZero = false;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (len === 0 || value > 255 || (leadingZero && len > 1)) return false;
      parts++;
      len = 0;
      value = 0;
      continue;
    }
    if (c < 48 || c > 57) return false;
    if (len === 0) leadingZero = c === 48;
    value = value * 10 + (c - 48);
    len++;
    if (len > 3) return false;
  }
  return parts === 4;
}

/**
 * IPv6 in full or compressed form (optionally with an embedded IPv4 tail). Requires either eight
 * groups or a "::" with at least one other group, so bare "::" and clock times never match.
 */
export function ipv6Valid(s: string): boolean {
  let str = s;
  const lastColon = str.lastIndexOf(":");
  if (lastColon < 0) return false;
  if (str.indexOf(".", lastColon) >= 0) {
    if (!ipv4Valid(str.slice(lastColon + 1))) return false;
    // The dotted tail stands for two 16-bit groups.
    str = str.slice(0, lastColon + 1) + "0:0";
  }
  const dbl = str.indexOf("::");
  if (dbl >= 0 && str.indexOf("::", dbl + 1) >= 0) return false;
  const countGroups = (part: string): number => {
    if (part.length === 0) return 0;
    let groups = 0;
    let len = 0;
    for (let i = 0; i <= part.length; i++) {
      const c = i < part.length ? part.charCodeAt(i) : 58;
      if (c === 58) {
        if (len === 0) return -1;
        groups++;
        len = 0;
      } else if (hexValue(c)) {
        if (++len > 4) return -1;
      } else {
        return -1;
      }
    }
    return groups;
  };
  if (dbl < 0) return countGroups(str) === 8;
  const head = countGroups(str.slice(0, dbl));
  const tail = countGroups(str.slice(dbl + 2));
  if (head < 0 || tail < 0) return false;
  const total = head + tail;
  return total >= 1 && total <= 7;
}
