/**
 * Envelope encryption of stored objects (recordings, voice source audio):
 * AES-256-GCM under a fresh per-object data key. The data key itself is
 * wrapped by the caller (MASTER_KEY today; a per-subject key once erasure
 * lands), so destroying the wrapped key makes the object unreadable. Pure:
 * Web Crypto only.
 */
import { DecryptionError, randomBytes } from "../crypto";
import { utf8 } from "../encoding";

/** Algorithm name recorded next to every object. */
export const OBJECT_CIPHER = "AES-256-GCM";
/** Format version of the stored bytes: `iv (12 bytes) || ciphertext || tag (16 bytes)`. */
export const OBJECT_FORMAT = "1";
const IV_BYTES = 12;

/** A fresh 256-bit data key (raw bytes: wrap it before storing). */
export function newDataKey(): Uint8Array<ArrayBuffer> {
  return randomBytes(32);
}

async function importDataKey(raw: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
  if (raw.length !== 32) throw new DecryptionError("data key must be 32 bytes");
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

/** Encrypts object bytes; `associatedData` binds them to their storage key (a copy elsewhere fails to open). */
export async function sealObject(dataKey: Uint8Array<ArrayBuffer>, plaintext: Uint8Array<ArrayBuffer>, associatedData: string): Promise<Uint8Array<ArrayBuffer>> {
  const iv = randomBytes(IV_BYTES);
  const key = await importDataKey(dataKey);
  const ciphertext = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: utf8(associatedData) }, key, plaintext));
  const out = new Uint8Array(IV_BYTES + ciphertext.length);
  out.set(iv, 0);
  out.set(ciphertext, IV_BYTES);
  return out;
}

/** Opens bytes made by {@link sealObject}; throws {@link DecryptionError} on any mismatch. */
export async function openObject(dataKey: Uint8Array<ArrayBuffer>, sealed: Uint8Array<ArrayBuffer>, associatedData: string): Promise<Uint8Array<ArrayBuffer>> {
  if (sealed.length < IV_BYTES + 16) throw new DecryptionError("sealed object too short");
  const key = await importDataKey(dataKey);
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: sealed.slice(0, IV_BYTES), additionalData: utf8(associatedData) },
      key,
      sealed.slice(IV_BYTES),
    );
    return new Uint8Array(plain);
  } catch {
    throw new DecryptionError("object failed authentication (tampered, or wrong key)");
  }
}
