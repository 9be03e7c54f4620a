/**
 * Normalisation of end-user addresses as channels report them, so one person
 * has one subject key across SMS, WhatsApp and custom channels.
 */

/** A normalised address: `tel:+<E.164>`, `email:<lower-case>` or `id:<opaque>`. */
export type SubjectAddress = `tel:${string}` | `email:${string}` | `id:${string}`;

const E164 = /^\+[1-9]\d{6,14}$/;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,253}\.[^\s@]{2,63}$/;

/** Parses a phone number already in (or close to) E.164: `+39 333 123 4567`, `whatsapp:+39…`, `393331234567`. */
export function normalizePhone(raw: string): string | null {
  const stripped = raw.trim().replace(/^whatsapp:/i, "").replace(/[\s().-]/g, "");
  const withPlus = stripped.startsWith("+") ? stripped : stripped.startsWith("00") ? `+${stripped.slice(2)}` : `+${stripped}`;
  return E164.test(withPlus) ? withPlus : null;
}

/** Normalises any channel address into a subject address. */
export function normalizeAddress(raw: string): SubjectAddress | null {
  const value = raw.trim();
  if (value.length === 0 || value.length > 320) return null;
  if (EMAIL.test(value)) return `email:${value.toLowerCase()}`;
  if (/^(whatsapp:)?\+?[\d\s().-]{7,20}$/i.test(value)) {
    const phone = normalizePhone(value);
    if (phone) return `tel:${phone}`;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(value)) return null;
  return `id:${value}`;
}
