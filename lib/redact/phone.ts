// Phone validation through libphonenumber-js with the "max" metadata: the "min" set only checks
// lengths, which lets order numbers, dates and other business digits pass as phones.
import { PhoneNumber, isSupportedCountry, parsePhoneNumberFromString } from "libphonenumber-js/max";
import type { CountryCode, E164Number } from "libphonenumber-js/max";

/** How a national-format number becomes E.164 for the countries Parley serves most. */
interface NationalPlan {
  callingCode: string;
  /** The trunk prefix "0" must be present and is dropped (GB, DE, FR). */
  trunkZero: boolean;
  minDigits: number;
  maxDigits: number;
  /** Allowed first digits of the national form. */
  firstDigits: string;
}

const PLANS: Readonly<Record<string, NationalPlan>> = {
  // Italian numbers keep the leading 0 of landlines; mobiles start with 3, toll-free/premium with 8.
  IT: { callingCode: "39", trunkZero: false, minDigits: 6, maxDigits: 11, firstDigits: "038" },
  GB: { callingCode: "44", trunkZero: true, minDigits: 10, maxDigits: 11, firstDigits: "0" },
  DE: { callingCode: "49", trunkZero: true, minDigits: 6, maxDigits: 14, firstDigits: "0" },
  FR: { callingCode: "33", trunkZero: true, minDigits: 10, maxDigits: 10, firstDigits: "0" },
  ES: { callingCode: "34", trunkZero: false, minDigits: 9, maxDigits: 9, firstDigits: "6789" },
  US: { callingCode: "1", trunkZero: false, minDigits: 10, maxDigits: 11, firstDigits: "123456789" },
};

/** Countries tried for a national-format number when the text says it is a phone. */
export const FALLBACK_COUNTRIES: readonly string[] = ["IT", "GB", "US", "DE", "FR", "ES"];

// Validation results are memoised: a conversation repeats the same numbers, and libphonenumber
// validation costs microseconds per call.
const CACHE_LIMIT = 4096;
const cache = new Map<string, string | null>();

function remember(key: string, value: string | null): string | null {
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, value);
  return value;
}

function validE164(e164: string): string | null {
  try {
    const pn = new PhoneNumber(e164 as E164Number);
    return pn.isValid() ? pn.number : null;
  } catch {
    return null;
  }
}

/**
 * Validates an international number given as its digits after "+" (or after "00"), returning the
 * E.164 form or null.
 */
export function validateInternational(digits: string): string | null {
  if (digits.length < 8 || digits.length > 15 || digits.charCodeAt(0) === 48) return null;
  const key = "+" + digits;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  return remember(key, validE164(key));
}

/**
 * Validates a national-format number (digits only) for `country`, returning E.164 or null.
 * Cheap length and leading-digit checks run before libphonenumber.
 */
export function validateNational(digits: string, country: string): string | null {
  const plan = PLANS[country];
  let e164: string;
  if (plan) {
    const len = digits.length;
    if (len < plan.minDigits || len > plan.maxDigits) return null;
    if (plan.firstDigits.indexOf(digits.charAt(0)) < 0) return null;
    if (plan.trunkZero) e164 = "+" + plan.callingCode + digits.slice(1);
    else if (plan.callingCode === "1" && len === 11) {
      if (digits.charCodeAt(0) !== 49) return null;
      e164 = "+" + digits;
    } else if (plan.callingCode === "1" && digits.charCodeAt(0) === 49) return null;
    else e164 = "+" + plan.callingCode + digits;
    const hit = cache.get(e164);
    if (hit !== undefined) return hit;
    return remember(e164, validE164(e164));
  }
  if (digits.length < 6 || digits.length > 15) return null;
  const key = country + ":" + digits;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  if (!isSupportedCountry(country as CountryCode)) return remember(key, null);
  const pn = parsePhoneNumberFromString(digits, country as CountryCode);
  return remember(key, pn && pn.isValid() ? pn.number : null);
}

/** Normalises a phone number written in any form to E.164 when possible (used by the vault). */
export function normalizePhoneLoose(original: string): string {
  const trimmed = original.trim();
  const international = trimmed.startsWith("+") || trimmed.startsWith("00");
  // "+44 (0)20 ..." writes the trunk prefix that E.164 leaves out.
  const text = international ? trimmed.replace("(0)", "") : trimmed;
  let digits = "";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) digits += text.charAt(i);
  }
  if (trimmed.startsWith("+")) return "+" + digits;
  if (digits.startsWith("00")) return "+" + digits.slice(2);
  return digits;
}
