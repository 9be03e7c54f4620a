import type { EntityType } from "./types";
import { normalizePhoneLoose } from "./phone";

const TYPE_ALTERNATION = "EMAIL|PHONE|CARD|IBAN|CODICE_FISCALE|PARTITA_IVA|IP|SSN|CREDENTIAL";
const PLACEHOLDER_EXACT = new RegExp(`^\\[(${TYPE_ALTERNATION})_([1-9][0-9]{0,8})\\]$`);
const PLACEHOLDER_ANY = new RegExp(`\\[(?:${TYPE_ALTERNATION})_[0-9]{1,9}\\]`, "g");

function digitsOnly(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) out += s.charAt(i);
  }
  return out;
}

/**
 * Canonical key of an identifier, so that differently written copies of one value share a
 * placeholder. Phones found by `redact` are keyed by their validated E.164 form instead.
 */
export function normalizeValue(type: EntityType, original: string): string {
  switch (type) {
    case "EMAIL":
    case "IP":
      return original.toLowerCase();
    case "CARD":
    case "SSN":
      return digitsOnly(original);
    case "PARTITA_IVA":
      return digitsOnly(original);
    case "IBAN":
      return original.replace(/[\s-]+/g, "").toUpperCase();
    case "CODICE_FISCALE":
      return original.toUpperCase();
    case "PHONE":
      return normalizePhoneLoose(original);
    case "CREDENTIAL":
      return original;
  }
}

/**
 * Placeholder <-> original mapping for one conversation. The same value always gets the same
 * placeholder (`[EMAIL_1]`, `[PHONE_2]`, ...), across calls that share the vault. Serialise with
 * `toJSON()` (placeholder -> original) and rebuild with `new PlaceholderVault(snapshot)`.
 */
export class PlaceholderVault {
  readonly #originals = new Map<string, string>();
  readonly #byKey = new Map<string, string>();
  readonly #counters = new Map<string, number>();

  /** @param snapshot A previous `toJSON()` output; entries that are not placeholders are ignored. */
  constructor(snapshot?: Record<string, string>) {
    if (!snapshot) return;
    for (const [placeholder, original] of Object.entries(snapshot)) {
      const m = PLACEHOLDER_EXACT.exec(placeholder);
      if (!m || typeof original !== "string") continue;
      const type = m[1] as EntityType;
      const n = Number(m[2]);
      this.#originals.set(placeholder, original);
      this.#byKey.set(type + "\u0000" + normalizeValue(type, original), placeholder);
      this.#byKey.set(type + "\u0001" + original, placeholder);
      if (n > (this.#counters.get(type) ?? 0)) this.#counters.set(type, n);
    }
  }

  /**
   * The placeholder for a value, allocating the next `[TYPE_N]` the first time the value is seen.
   * @param normalizedValue canonical form (lowercased email, E.164 phone, digits of a card...)
   * @param original the text as written, returned later by {@link originalFor}
   */
  placeholderFor(type: EntityType, normalizedValue: string, original: string): string {
    const key = type + "\u0000" + normalizedValue;
    let placeholder = this.#byKey.get(key) ?? this.#byKey.get(type + "\u0001" + original);
    if (placeholder === undefined) {
      const n = (this.#counters.get(type) ?? 0) + 1;
      this.#counters.set(type, n);
      placeholder = `[${type}_${n}]`;
      this.#originals.set(placeholder, original);
      this.#byKey.set(type + "\u0001" + original, placeholder);
    }
    this.#byKey.set(key, placeholder);
    return placeholder;
  }

  /** The original text behind a placeholder, or undefined when this vault never issued it. */
  originalFor(placeholder: string): string | undefined {
    return this.#originals.get(placeholder);
  }

  /** Number of placeholders issued. */
  get size(): number {
    return this.#originals.size;
  }

  /** Snapshot: placeholder -> original. */
  toJSON(): Record<string, string> {
    return Object.fromEntries(this.#originals);
  }
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9;
}

/**
 * Puts originals back in place of the placeholders `vault` issued. Placeholder-looking tokens the
 * vault does not know (for example invented by a language model) are removed, never guessed.
 */
export function restore(text: string, vault: PlaceholderVault): string {
  if (text.indexOf("[") < 0) return text;
  PLACEHOLDER_ANY.lastIndex = 0;
  let out = "";
  let last = 0;
  for (let m = PLACEHOLDER_ANY.exec(text); m !== null; m = PLACEHOLDER_ANY.exec(text)) {
    const start = m.index;
    const end = start + m[0].length;
    const original = vault.originalFor(m[0]);
    if (original !== undefined) {
      out += text.slice(last, start) + original;
      last = end;
      continue;
    }
    // Drop the unknown token and one of the spaces around it so no double space is left.
    let cut = start;
    if (cut > last && isSpace(text.charCodeAt(cut - 1)) && (end >= text.length || isSpace(text.charCodeAt(end)) || isClosingPunct(text.charCodeAt(end)))) {
      cut--;
    }
    out += text.slice(last, cut);
    last = end;
  }
  return out + text.slice(last);
}

function isClosingPunct(c: number): boolean {
  // . , ; : ! ?
  return c === 46 || c === 44 || c === 59 || c === 58 || c === 33 || c === 63;
}
