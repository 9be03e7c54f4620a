/** MASTER_KEY handling: channel-secret envelopes, per-tenant hash keys, subject hashes and conversation ids. */
import { hmac, importHmacKey, importMasterKey, masterKeyId, openBytes, openJson, randomBytes, sealBytes, sealJson } from "../../lib/crypto";
import { toBase32, toHex } from "../../lib/encoding";
import { storedSecretsSchema, type StoredSecrets } from "../../lib/channels/config";
import { ApiError } from "./errors";

interface Keyring {
  key: CryptoKey;
  keyId: string;
}

let cached: { raw: string; ring: Promise<Keyring> } | undefined;

/** The imported master key (cached per isolate; re-imported if the secret changes). */
export function masterKeyring(env: Env): Promise<Keyring> {
  const raw = env.MASTER_KEY;
  if (!raw) throw new ApiError(503, "misconfigured", "MASTER_KEY is not configured");
  if (cached?.raw !== raw) {
    const ring = (async () => ({ key: await importMasterKey(raw), keyId: await masterKeyId(raw) }))();
    ring.catch(() => {
      cached = undefined;
    });
    cached = { raw, ring };
  }
  return cached.ring;
}

/** Encrypts a channel's secrets, bound to its id. */
export async function sealChannelSecrets(env: Env, channelId: string, secrets: StoredSecrets): Promise<string> {
  const { key, keyId } = await masterKeyring(env);
  return sealJson(key, keyId, secrets, `channel-secrets:${channelId}`);
}

/** Decrypts and validates a channel's secrets. */
export async function openChannelSecrets(env: Env, channelId: string, envelope: string): Promise<StoredSecrets> {
  const { key } = await masterKeyring(env);
  return storedSecretsSchema.parse(await openJson(key, envelope, `channel-secrets:${channelId}`));
}

/** Mints a tenant's hash key and returns it wrapped. */
export async function newWrappedTenantHashKey(env: Env, tenantId: string): Promise<string> {
  const { key, keyId } = await masterKeyring(env);
  return sealBytes(key, keyId, randomBytes(32), `tenant-hash-key:${tenantId}`);
}

const hashKeys = new Map<string, Promise<CryptoKey>>();

/** Unwraps (and caches per isolate) a tenant's HMAC key for subject hashes and conversation ids. */
export function tenantHashKey(env: Env, tenantId: string, wrapped: string): Promise<CryptoKey> {
  const cacheKey = `${tenantId}:${wrapped}`;
  let found = hashKeys.get(cacheKey);
  if (!found) {
    found = (async () => {
      const { key } = await masterKeyring(env);
      return importHmacKey(await openBytes(key, wrapped, `tenant-hash-key:${tenantId}`), "SHA-256");
    })();
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
