/**
 * Crypto primitives on Web Crypto only (no Workers imports): the AES-256-GCM
 * envelope used for channel secrets and wrapped data keys, HMAC helpers, hashing
 * and random tokens.
 */
import { fromBase64, fromUtf8, toBase32, toBase64, toBase64Url, toHex, utf8 } from "./encoding";

/** Raised when a ciphertext cannot be authenticated or the key is wrong. */
export class DecryptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DecryptionError";
  }
}

/** Imports the base64 `MASTER_KEY` (exactly 32 bytes) as an AES-GCM key. */
export async function importMasterKey(base64Key: string): Promise<CryptoKey> {
  const raw = fromBase64(base64Key.trim());
  if (!raw || raw.length !== 32) {
    throw new Error("MASTER_KEY must be base64 of exactly 32 bytes");
  }
  return crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
}

/** Key id of a master key: first 8 hex chars of SHA-256 of its bytes, so ciphertexts name their key. */
export async function masterKeyId(base64Key: string): Promise<string> {
  const raw = fromBase64(base64Key.trim());
  if (!raw) throw new Error("MASTER_KEY is not base64");
  return (await sha256Hex(raw)).slice(0, 8);
}

const ENVELOPE_VERSION = "v1";

/**
 * Encrypts bytes as `v1.<keyId>.<iv>.<ciphertext>` (base64url parts). The
 * associated data binds the ciphertext to its purpose (e.g. a channel id), so a
 * ciphertext copied to another row fails to decrypt.
 */
export async function sealBytes(
  key: CryptoKey,
  keyId: string,
  plaintext: Uint8Array<ArrayBuffer>,
  associatedData: string,
): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ciphertext = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: utf8(associatedData) },
    key,
    plaintext,
  );
  return [ENVELOPE_VERSION, keyId, toBase64Url(iv), toBase64Url(new Uint8Array(ciphertext))].join(".");
}

/** Opens an envelope made by {@link sealBytes}; throws {@link DecryptionError} on any mismatch. */
export async function openBytes(
  key: CryptoKey,
  envelope: string,
  associatedData: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const parts = envelope.split(".");
  if (parts.length !== 4 || parts[0] !== ENVELOPE_VERSION) {
    throw new DecryptionError("unrecognised envelope format");
  }
  const iv = fromBase64(parts[2] ?? "");
  const data = fromBase64(parts[3] ?? "");
  if (!iv || iv.length !== 12 || !data) throw new DecryptionError("malformed envelope");
  try {
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv, additionalData: utf8(associatedData) },
      key,
      data,
    );
    return new Uint8Array(plain);
  } catch {
    throw new DecryptionError("ciphertext failed authentication (tampered, or wrong key)");
  }
}

/** Key id named in an envelope, without decrypting it. */
export function envelopeKeyId(envelope: string): string | null {
  const parts = envelope.split(".");
  return parts.length === 4 ? (parts[1] ?? null) : null;
}

/** Encrypts a JSON-serialisable value. */
export async function sealJson(key: CryptoKey, keyId: string, value: unknown, associatedData: string): Promise<string> {
  return sealBytes(key, keyId, utf8(JSON.stringify(value)), associatedData);
}

/** Decrypts a value sealed by {@link sealJson}; the caller validates its shape. */
export async function openJson(key: CryptoKey, envelope: string, associatedData: string): Promise<unknown> {
  return JSON.parse(fromUtf8(await openBytes(key, envelope, associatedData))) as unknown;
}

/** SHA-256 as lower-case hex. */
export async function sha256Hex(data: string | Uint8Array<ArrayBuffer>): Promise<string> {
  const bytes = typeof data === "string" ? utf8(data) : data;
  return toHex(await crypto.subtle.digest("SHA-256", bytes));
}

/** Imports raw bytes or a UTF-8 string as an HMAC key for the given hash. */
export async function importHmacKey(secret: string | Uint8Array<ArrayBuffer>, hash: "SHA-1" | "SHA-256"): Promise<CryptoKey> {
  if (typeof secret !== "string") return crypto.subtle.importKey("raw", secret, { name: "HMAC", hash }, false, ["sign"]);
  // Webhook secrets are imported once per process, not once per request (keys, never pending promises, are shared).
  const cacheKey = `${hash}\u0000${secret}`;
  const cached = hmacKeys.get(cacheKey);
  if (cached) return cached;
  const key = await crypto.subtle.importKey("raw", utf8(secret), { name: "HMAC", hash }, false, ["sign"]);
  if (hmacKeys.size >= HMAC_KEYS_MAX) hmacKeys.clear();
  hmacKeys.set(cacheKey, key);
  return key;
}

const hmacKeys = new Map<string, CryptoKey>();
const HMAC_KEYS_MAX = 256;

/** HMAC of a UTF-8 message. */
export async function hmac(key: CryptoKey, message: string): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8(message)));
}

interface SubtleWithTimingSafeEqual {
  timingSafeEqual(a: ArrayBufferView | ArrayBuffer, b: ArrayBufferView | ArrayBuffer): boolean;
}

function hasTimingSafeEqual(subtle: SubtleCrypto): subtle is SubtleCrypto & SubtleWithTimingSafeEqual {
  return typeof (subtle as Partial<SubtleWithTimingSafeEqual>).timingSafeEqual === "function";
}

/**
 * Constant-time equality of two byte strings. Uses workerd's
 * `crypto.subtle.timingSafeEqual`; elsewhere (Node) an equivalent XOR loop.
 * Unequal lengths return false without comparing contents.
 */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  if (hasTimingSafeEqual(crypto.subtle)) return crypto.subtle.timingSafeEqual(a, b);
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/** Constant-time comparison of two strings (by their UTF-8 bytes). */
export function timingSafeEqualStrings(a: string, b: string): boolean {
  return timingSafeEqual(utf8(a), utf8(b));
}

/** `bytes` cryptographically random bytes. */
export function randomBytes(bytes: number): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(bytes));
}

/** A random lower-case base32 token with `bytes` bytes of entropy. */
export function randomToken(bytes = 20): string {
  return toBase32(randomBytes(bytes));
}

/** Base64 of fresh random bytes: used to mint data keys and the demo MASTER_KEY. */
export function randomBase64(bytes = 32): string {
  return toBase64(randomBytes(bytes));
}
