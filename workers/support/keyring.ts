/**
 * MASTER_KEY handling: channel-secret envelopes, per-tenant hash keys, subject
 * hashes and conversation ids, and master-key rotation. Envelopes name the
 * master key that sealed them (`v1.<keyId>.…`): they are opened with
 * MASTER_KEY or, during a rotation, MASTER_KEY_PREVIOUS; new envelopes are
 * always sealed with MASTER_KEY.
 */
import { envelopeKeyId, hmac, importHmacKey, importMasterKey, masterKeyId, openBytes, openJson, randomBytes, sealBytes, sealJson } from "../../lib/crypto";
import { toBase32, toHex } from "../../lib/encoding";
import { storedSecretsSchema, type StoredSecrets } from "../../lib/channels/config";
import { ApiError } from "./errors";

/** An imported master key and its id (first 8 hex characters of SHA-256 of its bytes). */
export interface Keyring {
  key: CryptoKey;
  keyId: string;
}

const rings = new Map<string, Promise<Keyring>>();

function importRing(raw: string, name: string): Promise<Keyring> {
  let ring = rings.get(raw);
  if (!ring) {
    ring = (async () => {
      try {
        return { key: await importMasterKey(raw), keyId: await masterKeyId(raw) };
      } catch {
        throw new ApiError(503, "misconfigured", `${name} must be base64 of exactly 32 bytes`);
      }
    })();
    ring.catch(() => rings.delete(raw));
    // Two keys are live at a time; a handful of entries covers a test suite switching keys.
    if (rings.size > 8) rings.clear();
    rings.set(raw, ring);
  }
  return ring;
}

/** The current master key (cached per isolate; re-imported if the secret changes). Everything new is sealed with it. */
export function masterKeyring(env: Env): Promise<Keyring> {
  const raw = env.MASTER_KEY;
  if (!raw) throw new ApiError(503, "misconfigured", "MASTER_KEY is not configured");
  return importRing(raw, "MASTER_KEY");
}

/** The previous master key while a rotation is under way (`MASTER_KEY_PREVIOUS`), or null when none is set. */
export async function previousMasterKeyring(env: Env): Promise<Keyring | null> {
  // Optional secret: absent (undefined) or empty outside a rotation.
  const raw = env.MASTER_KEY_PREVIOUS?.trim();
  return raw ? importRing(raw, "MASTER_KEY_PREVIOUS") : null;
}

/**
 * The master key an envelope names: MASTER_KEY or MASTER_KEY_PREVIOUS.
 * An envelope sealed under any other key is a configuration problem (503
 * `misconfigured`), not tampering: the operator removed the previous key
 * before the rotation finished.
 */
export async function masterKeyFor(env: Env, envelope: string): Promise<CryptoKey> {
  const current = await masterKeyring(env);
  const named = envelopeKeyId(envelope);
  if (named === null || named === current.keyId) return current.key; // malformed envelopes fail in openBytes
  const previous = await previousMasterKeyring(env);
  if (previous && named === previous.keyId) return previous.key;
  throw new ApiError(503, "misconfigured", `a stored secret is sealed under master key ${named}, which is neither MASTER_KEY nor MASTER_KEY_PREVIOUS`);
}

/** Opens an envelope sealed under the current or the previous master key (throws DecryptionError when it does not authenticate). */
export async function openWithMasterKey(env: Env, envelope: string, associatedData: string): Promise<Uint8Array<ArrayBuffer>> {
  return openBytes(await masterKeyFor(env, envelope), envelope, associatedData);
}

/**
 * Re-seals an envelope under the current master key (same plaintext, same
 * associated data). Returns null when it already is under the current key.
 */
export async function rewrapUnderCurrentMasterKey(env: Env, envelope: string, associatedData: string): Promise<string | null> {
  const current = await masterKeyring(env);
  if (envelopeKeyId(envelope) === current.keyId) return null;
  const plain = await openWithMasterKey(env, envelope, associatedData);
  try {
    return await sealBytes(current.key, current.keyId, plain, associatedData);
  } finally {
    plain.fill(0);
  }
}

/** Associated data binding a channel's secrets envelope to its channel. */
export const channelSecretsBinding = (channelId: string): string => `channel-secrets:${channelId}`;
/** Associated data binding a tenant's wrapped hash key to its tenant. */
export const tenantHashKeyBinding = (tenantId: string): string => `tenant-hash-key:${tenantId}`;

/** Encrypts a channel's secrets, bound to its id. */
export async function sealChannelSecrets(env: Env, channelId: string, secrets: StoredSecrets): Promise<string> {
  const { key, keyId } = await masterKeyring(env);
  return sealJson(key, keyId, secrets, channelSecretsBinding(channelId));
}

/** Decrypts and validates a channel's secrets. */
export async function openChannelSecrets(env: Env, channelId: string, envelope: string): Promise<StoredSecrets> {
  return storedSecretsSchema.parse(await openJson(await masterKeyFor(env, envelope), envelope, channelSecretsBinding(channelId)));
}

/** Mints a tenant's hash key and returns it wrapped. */
export async function newWrappedTenantHashKey(env: Env, tenantId: string): Promise<string> {
  const { key, keyId } = await masterKeyring(env);
  return sealBytes(key, keyId, randomBytes(32), tenantHashKeyBinding(tenantId));
}

const hashKeys = new Map<string, Promise<CryptoKey>>();

/** Unwraps (and caches per isolate) a tenant's HMAC key for subject hashes and conversation ids. */
export function tenantHashKey(env: Env, tenantId: string, wrapped: string): Promise<CryptoKey> {
  const cacheKey = `${tenantId}:${wrapped}`;
  let found = hashKeys.get(cacheKey);
  if (!found) {
    found = (async () => importHmacKey(await openWithMasterKey(env, wrapped, tenantHashKeyBinding(tenantId)), "SHA-256"))();
    found.catch(() => hashKeys.delete(cacheKey));
    if (hashKeys.size > 1000) hashKeys.clear();
    hashKeys.set(cacheKey, found);
  }
  return found;
}

/** Keyed hash of a normalised subject address: stable per tenant, unlinkable across tenants. */
export async function subjectHash(hashKey: CryptoKey, address: string): Promise<string> {
  return toHex(await hmac(hashKey, `subject\n${address}`));
}

/** Deterministic conversation id for (channel, subject): concurrent first messages land in one object. */
export async function conversationIdFor(hashKey: CryptoKey, channelId: string, address: string): Promise<string> {
  const mac = await hmac(hashKey, `conversation\n${channelId}\n${address}`);
  return `conv_${toBase32(mac.subarray(0, 16))}`;
}
