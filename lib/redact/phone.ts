// Phone validation against libphonenumber-js "max" metadata (Google's numbering plans, with the
// per-type patterns; the "min" set only checks lengths and lets order numbers pass as phones).
//
// `PhoneNumber#isValid()` rebuilds its regular expressions on every call (several microseconds per
// number), which would dominate redaction time. So the same rules libphonenumber-js applies in
// `isValid()` - national number pattern, then any type pattern with its possible lengths - are
// compiled once per calling code from its `Metadata`. test/redact-property-unit.test.ts checks that
// this agrees with `parsePhoneNumberFromString(...).isValid()`.
// Nothing is cached across calls: validated numbers are personal data and must not outlive a request.
import { Metadata, isSupportedCountry, parsePhoneNumberFromString } from "libphonenumber-js/max";
import type { CountryCode } from "libphonenumber-js/max";

/** The parts of libphonenumber-js's `Metadata` used here (present at runtime, not in its typings). */
interface MetadataType {
  pattern(): string;
  possibleLengths(): number[] | undefined;
}
interface MetadataPlan {
  nationalNumberPattern(): string;
  nationalPrefix(): string | undefined;
  hasTypes(): boolean;
  type(name: string): MetadataType | undefined;
}
interface MetadataApi {
  selectNumberingPlan(country: string): void;
  numberingPlan?: MetadataPlan;
  getCountryCodesForCallingCode(callingCode: string): string[] | undefined;
}

const TYPES = [
  "FIXED_LINE",
  "MOBILE",
  "TOLL_FREE",
  "PREMIUM_RATE",
  "SHARED_COST",
  "VOIP",
  "PERSONAL_NUMBER",
  "PAGER",
  "UAN",
  "VOICEMAIL",
] as const;

interface CountryRule {
  national: RegExp;
  /**
   * All type patterns (fixed line, mobile, toll free, ...) as one alternation, or null when the plan
   * has no type patterns and libphonenumber validates with the national pattern only.
   */
  types: RegExp | null;
  /** Lengths some type allows (the metadata's possible lengths), indexed by length. */
  lengths: Uint8Array;
  /** National (trunk) prefix, e.g. "0": "+49 030..." is read as "+49 30...". */
  trunk: string;
}

let metadata: MetadataApi | undefined;
function md(): MetadataApi {
  metadata ??= new Metadata() as unknown as MetadataApi;
  return metadata;
}

const rulesByCallingCode = new Map<string, CountryRule[] | null>();

function compileCountry(country: string): CountryRule | null {
  const m = md();
  m.selectNumberingPlan(country);
  const plan = m.numberingPlan;
  if (!plan) return null;
  const national = new RegExp(`^(?:${plan.nationalNumberPattern()})$`);
  const lengths = new Uint8Array(18);
  const trunk = plan.nationalPrefix() ?? "";
  if (!plan.hasTypes()) {
    lengths.fill(1);
    return { national, types: null, lengths, trunk };
  }
  const patterns: string[] = [];
  for (const name of TYPES) {
    const t = plan.type(name);
    const pattern = t?.pattern();
    // An empty MOBILE pattern means "same as FIXED_LINE" in the metadata.
    if (!t || !pattern) continue;
    patterns.push(`(?:${pattern})`);
    const possible = t.possibleLengths();
    if (!possible) lengths.fill(1);
    else for (const n of possible) if (n < lengths.length) lengths[n] = 1;
  }
  // Matches nothing when a plan has types but none with a pattern.
  const types = new RegExp(patterns.length > 0 ? `^(?:${patterns.join("|")})$` : "(?!)");
  return { national, types, lengths, trunk };
}

function rulesFor(callingCode: string): CountryRule[] | null {
  let rules = rulesByCallingCode.get(callingCode);
  if (rules !== undefined) return rules;
  const countries = md().getCountryCodesForCallingCode(callingCode);
  if (!countries || countries.length === 0) {
    rules = null;
  } else {
    rules = [];
    for (const c of countries) {
      const r = compileCountry(c);
      if (r) rules.push(r);
    }
  }
  rulesByCallingCode.set(callingCode, rules);
  return rules;
}

function validNational(rules: CountryRule[], nn: string): boolean {
  for (const r of rules) {
    if (r.lengths[nn.length] !== 1 || !r.national.test(nn)) continue;
    if (r.types === null || r.types.test(nn)) return true;
  }
  return false;
}

/**
 * The national significant number of `nationalNumber` under `callingCode` if valid for any country
 * sharing the calling code, else null. Like libphonenumber-js, a trunk prefix written after the
 * country code ("+49 030 ...", "+1 1 415 ...") is dropped.
 */
function validFor(callingCode: string, nationalNumber: string): string | null {
  const rules = rulesFor(callingCode);
  if (rules === null || nationalNumber.length < 2) return null;
  if (validNational(rules, nationalNumber)) return nationalNumber;
  const trunk = (rules[0] as CountryRule).trunk;
  if (trunk !== "" && nationalNumber.startsWith(trunk)) {
    const nn = nationalNumber.slice(trunk.length);
    if (validNational(rules, nn)) return nn;
  }
  return null;
}

/**
 * Validates an international number given as its digits after "+" (or after "00"), returning the
 * E.164 form or null.
 */
export function validateInternational(digits: string): string | null {
  if (digits.length < 8 || digits.length > 16 || digits.charCodeAt(0) === 48) return null;
  // Calling codes are prefix-free: the first known 1-3 digit prefix is the one.
  for (let n = 1; n <= 3; n++) {
    const cc = digits.slice(0, n);
    if (rulesFor(cc) === null) continue;
    const nn = validFor(cc, digits.slice(n));
    return nn === null ? null : "+" + cc + nn;
  }
  return null;
}

/** How a national-format number becomes a national significant number, for the main countries. */
interface NationalPlan {
  callingCode: string;
  /** The trunk prefix "0" must be present and is dropped (GB, DE, FR). */
  trunkZero: boolean;
  /** A leading "1" trunk prefix may be present and is dropped (US). */
  trunkOne: boolean;
  minDigits: number;
  maxDigits: number;
  /** Required first digit of the national form ("" for any). */
  firstDigits: string;
}

const PLANS: Readonly<Record<string, NationalPlan>> = {
  // Italian numbers keep the leading 0 of landlines.
  IT: { callingCode: "39", trunkZero: false, trunkOne: false, minDigits: 6, maxDigits: 12, firstDigits: "" },
  // Without the trunk "0" a GB/DE/FR digit string is far more likely a reference than a phone.
  GB: { callingCode: "44", trunkZero: true, trunkOne: false, minDigits: 10, maxDigits: 11, firstDigits: "0" },
  DE: { callingCode: "49", trunkZero: true, trunkOne: false, minDigits: 6, maxDigits: 15, firstDigits: "0" },
  FR: { callingCode: "33", trunkZero: true, trunkOne: false, minDigits: 10, maxDigits: 10, firstDigits: "0" },
  ES: { callingCode: "34", trunkZero: false, trunkOne: false, minDigits: 9, maxDigits: 9, firstDigits: "" },
  US: { callingCode: "1", trunkZero: false, trunkOne: true, minDigits: 10, maxDigits: 11, firstDigits: "" },
};

/** Countries tried for a national-format number when the text says it is a phone. */
export const FALLBACK_COUNTRIES: readonly string[] = ["IT", "GB", "US", "DE", "FR", "ES"];

/**
 * Validates a national-format number (digits only) for `country`, returning E.164 or null.
 * Cheap length and leading-digit checks run before any regular expression.
 */
export function validateNational(digits: string, country: string): string | null {
  const plan = PLANS[country];
  if (plan) {
    const len = digits.length;
    let e164: string | null = null;
    if (len >= plan.minDigits && len <= plan.maxDigits && (!plan.firstDigits || plan.firstDigits.indexOf(digits.charAt(0)) >= 0)) {
      let nn: string | null = digits;
      if (plan.trunkZero) nn = digits.slice(1);
      else if (plan.trunkOne) {
        if (len === 11) nn = digits.charCodeAt(0) === 49 ? digits.slice(1) : null;
        else if (digits.charCodeAt(0) === 49) nn = null;
      }
      if (nn !== null) {
        const valid = validFor(plan.callingCode, nn);
        if (valid !== null) e164 = "+" + plan.callingCode + valid;
      }
    }
    // "39 333 1234567": the country code written without "+", as libphonenumber-js also accepts.
    if (e164 === null && len >= plan.callingCode.length + 6 && digits.startsWith(plan.callingCode)) {
      e164 = validateInternational(digits);
    }
    return e164;
  }
  // Other default countries: libphonenumber-js parses the national prefix rules itself (slower path).
  if (digits.length < 6 || digits.length > 17) return null;
  if (!isSupportedCountry(country as CountryCode)) return null;
  const pn = parsePhoneNumberFromString(digits, country as CountryCode);
  return pn && pn.isValid() ? pn.number : null;
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
