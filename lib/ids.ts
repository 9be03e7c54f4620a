/** Prefixed, time-sortable random identifiers (`msg_…`, `ch_…`). */
import { toBase32 } from "./encoding";

/**
 * A new id: prefix, 48-bit millisecond timestamp and 80 random bits, base32.
 * Lexical order follows creation time, which keeps D1 indexes append-mostly.
 */
export function newId(prefix: string, now = Date.now()): string {
  const bytes = new Uint8Array(16);
  let t = now;
  for (let i = 5; i >= 0; i--) {
    bytes[i] = t % 256;
    t = Math.floor(t / 256);
  }
  crypto.getRandomValues(bytes.subarray(6));
  return `${prefix}_${toBase32(bytes)}`;
}
