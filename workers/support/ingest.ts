/** Shared webhook plumbing: channel lookup, routing inbound messages and statuses to conversation objects. */
import { normalizeAddress } from "../../lib/addresses";
import { storedConfigSchema, type StoredConfig, type StoredSecrets } from "../../lib/channels/config";
import type { ChannelType } from "../../d1/schema";
import type { IngestResult, MediaRef, StatusUpdate } from "../../durable-objects/conversation";
import { logSecurityEvent } from "./audit";
import { ApiError } from "./errors";
import { conversationIdFor, openChannelSecrets, subjectHash, tenantHashKey } from "./keyring";

/** A verified-to-exist, active channel with its decrypted secrets. */
export interface WebhookChannel {
  id: string;
  tenantId: string;
  type: ChannelType;
  config: StoredConfig;
  secrets: StoredSecrets;
  hashKey: CryptoKey;
  /** The sealed secrets as stored: tells a re-read row from the copy this isolate already had. */
  sealedSecrets: string;
}

interface ChannelRow {
  id: string;
  tenant_id: string;
  type: ChannelType;
  config: string;
  secrets: string;
  hash_key: string;
}

/**
 * How long an isolate reuses a channel's row before reading D1 again. Webhooks are the hot
 * path (one D1 read per provider event otherwise); changes made through this isolate apply at
 * once (forgetWebhookChannel), a secret rotated elsewhere is picked up at the first signature
 * that fails against the cached copy, and a deleted channel or suspended tenant stops being
 * served by every isolate within this time.
 */
export const CHANNEL_CACHE_MS = 10_000;
const CHANNEL_CACHE_MAX = 1024;
const channelRows = new Map<string, { at: number; row: ChannelRow }>();

async function readChannelRow(env: Env, channelId: string, fresh: boolean): Promise<ChannelRow | null> {
  const hit = channelRows.get(channelId);
  if (hit && !fresh && Date.now() - hit.at < CHANNEL_CACHE_MS) return hit.row;
  // Rows, never promises, are shared: a pending D1 read belongs to the request that started it.
  const row = await env.DB.prepare(
    `SELECT c.id, c.tenant_id, c.type, c.config, c.secrets, t.hash_key FROM channels c JOIN tenants t ON t.id = c.tenant_id
     WHERE c.id = ? AND c.status = 'active' AND t.status = 'active'`,
  )
    .bind(channelId)
    .first<ChannelRow>();
  // Only active channels are kept: unknown ids (anyone can make them up) never fill the cache.
  if (!row) {
    channelRows.delete(channelId);
    return null;
  }
  if (channelRows.size >= CHANNEL_CACHE_MAX) channelRows.clear();
  channelRows.set(channelId, { at: Date.now(), row });
  return row;
}

/** Drops this isolate's copy of a channel (after it was changed, rotated or deleted here). */
export function forgetWebhookChannel(channelId: string): void {
  channelRows.delete(channelId);
}

/** Loads an active channel of one of `types` (404 otherwise: unknown ids reveal nothing). */
export async function loadWebhookChannel(env: Env, channelId: string, types: readonly ChannelType[], fresh = false): Promise<WebhookChannel> {
  if (!/^ch_[a-z2-7]{20,32}$/.test(channelId)) throw new ApiError(404, "not_found", "channel not found");
  const row = await readChannelRow(env, channelId, fresh);
  if (!row || !types.includes(row.type)) throw new ApiError(404, "not_found", "channel not found");
  // What is derived from the row's exact stored values — parsed config, decrypted secrets — is kept per isolate.
  const cacheKey = `${row.id}\u0000${row.config}\u0000${row.secrets}`;
  let opened = openedChannels.get(cacheKey);
  if (!opened) {
    if (openedChannels.size >= OPENED_CHANNELS_MAX) openedChannels.clear();
    opened = (async () => ({ config: storedConfigSchema.parse(JSON.parse(row.config)), secrets: await openChannelSecrets(env, row.id, row.secrets) }))();
    const pending = opened;
    pending.catch(() => {
      if (openedChannels.get(cacheKey) === pending) openedChannels.delete(cacheKey);
    });
    openedChannels.set(cacheKey, pending);
  }
  const [{ config, secrets }, hashKey] = await Promise.all([opened, tenantHashKey(env, row.tenant_id, row.hash_key)]);
  return { id: row.id, tenantId: row.tenant_id, type: row.type, config, secrets, hashKey, sealedSecrets: row.secrets };
}

/**
 * Checks a request's signature against `loaded` with `check` (null: valid, else the reason).
 * A failure re-reads the row once: a secret rotated through another isolate is accepted at
 * once, not only after CHANNEL_CACHE_MS. Still failing: 401 and a security-log line.
 */
export async function verifiedWebhookChannel(
  env: Env,
  loaded: WebhookChannel,
  kind: string,
  check: (channel: WebhookChannel) => Promise<string | null>,
): Promise<WebhookChannel> {
  let channel = loaded;
  let failure = await check(channel);
  if (failure !== null) {
    const fresh = await loadWebhookChannel(env, channel.id, [channel.type], true);
    if (fresh.sealedSecrets !== channel.sealedSecrets) {
      channel = fresh;
      failure = await check(channel);
    }
  }
  if (failure !== null) await rejectSignature(env, channel, kind, failure);
  return channel;
}

/** Channels' parsed config and decrypted secrets by (id, stored config, sealed secrets), per isolate. */
const openedChannels = new Map<string, Promise<{ config: StoredConfig; secrets: StoredSecrets }>>();
const OPENED_CHANNELS_MAX = 512;

/** Refuses a webhook: 401, and the only trace is a security-log line. */
export async function rejectSignature(env: Env, channel: WebhookChannel, kind: string, reason: string): Promise<never> {
  await logSecurityEvent(env.DB, { tenantId: channel.tenantId, channelId: channel.id, kind, reason });
  throw new ApiError(401, "invalid_signature", "webhook signature is missing, invalid or expired");
}

/** The conversation object for an id. */
export function conversationStub(env: Env, conversationId: string) {
  return env.CONVERSATION.get(env.CONVERSATION.idFromName(conversationId));
}

/** One inbound message as a channel parser produced it. */
export interface InboundMessage {
  from: string;
  providerMessageId: string;
  text: string;
  media: MediaRef[];
}

/** Resolves the subject and conversation for an inbound message and appends it (deduped in the object). */
export async function ingestInbound(
  env: Env,
  channel: WebhookChannel,
  origin: string,
  message: InboundMessage,
): Promise<IngestResult & { conversationId: string }> {
  const address = normalizeAddress(message.from);
  if (!address) throw new ApiError(400, "validation_error", "sender address is invalid", [{ path: "from", message: "not a usable address" }]);
  const conversationId = await conversationIdFor(channel.hashKey, channel.id, address);
  const result = await conversationStub(env, conversationId).ingest({
    conversationId,
    tenantId: channel.tenantId,
    channelId: channel.id,
    channelType: channel.type,
    subjectHash: await subjectHash(channel.hashKey, address),
    address,
    providerMessageId: message.providerMessageId,
    text: message.text,
    media: message.media,
    receivedAt: Date.now(),
    publicOrigin: origin,
  });
  return { ...result, conversationId };
}

/**
 * Applies a delivery status to a conversation that must already exist for this
 * tenant and channel (a status never creates a conversation object).
 */
export async function applyStatus(
  env: Env,
  channel: WebhookChannel,
  target: { conversationId?: string; address?: string },
  update: StatusUpdate,
): Promise<boolean> {
  let conversationId = target.conversationId;
  if (!conversationId && target.address) {
    const address = normalizeAddress(target.address);
    if (!address) return false;
    conversationId = await conversationIdFor(channel.hashKey, channel.id, address);
  }
  if (!conversationId) return false;
  const known = await env.DB.prepare("SELECT 1 FROM conversations WHERE id = ? AND tenant_id = ? AND channel_id = ?")
    .bind(conversationId, channel.tenantId, channel.id)
    .first();
  if (!known) return false;
  const { applied } = await conversationStub(env, conversationId).applyStatus(update);
  return applied;
}
