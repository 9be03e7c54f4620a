/**
 * One Durable Object per end-user conversation. It is the single writer of the
 * conversation's messages: inbound dedupe, sequence numbers, state changes and
 * outbound delivery (retried from alarms) all happen here, in SQLite storage.
 */
import { DurableObject } from "cloudflare:workers";
import { storedConfigSchema, type StoredConfig } from "../lib/channels/config";
import { sendCustom, sendTwilio, sendWhatsApp, type OutboundMessage, type SendResult } from "../lib/channels/outbound";
import { newId } from "../lib/ids";
import { rankKnowledge, type KnowledgeEntry } from "../lib/ai/knowledge";
import { OpenAiProvider } from "../lib/ai/openai-provider";
import { postModelDecision, preModelDecision, type Decision } from "../lib/ai/pipeline";
import { LocalProvider, ProviderError, type AiProvider, type Turn } from "../lib/ai/providers";
import { classifyIntent } from "../lib/ai/rules";
import { effectiveProvider, parseSettings, type Settings } from "../lib/ai/settings";
import { detectSpecialCategories, PlaceholderVault, redact } from "../lib/redact";
import { randomToken } from "../lib/crypto";
import { openChannelSecrets } from "../workers/support/keyring";
import { applyKeyword, isMinorWithoutAuthorization, isRestricted } from "../workers/support/consent-store";
import { classifyKeyword } from "../lib/consent/keywords";
import { subjectKeyById, subjectKeyFor, type SubjectKey } from "../workers/support/subject-keys";
import { envelopeKeyId, openBytes, sealBytes } from "../lib/crypto";
import { fromUtf8, utf8 } from "../lib/encoding";
import { staffMessageView } from "../workers/support/live-ticket";
import type { ChannelType, ConversationStatus } from "../d1/schema";
import { z } from "zod";

const SCHEMA_VERSION = 5;
/**
 * The object's schema, one step per version (step i brings version i to i + 1). Steps are
 * append-only: a deployed step never changes, a new one is added with SCHEMA_VERSION.
 */
const SCHEMA_STEPS: readonly string[] = [
  // v1: messages, the outbox and statuses that beat their send.
  `
    CREATE TABLE IF NOT EXISTS messages (
      seq INTEGER PRIMARY KEY,
      id TEXT NOT NULL UNIQUE,
      direction TEXT NOT NULL,
      author TEXT NOT NULL,
      author_id TEXT,
      body TEXT NOT NULL,
      media TEXT NOT NULL DEFAULT '[]',
      provider_message_id TEXT,
      status TEXT NOT NULL,
      error TEXT,
      attempts INTEGER NOT NULL DEFAULT 0,
      client_key TEXT,
      created_at INTEGER NOT NULL,
      updated_at INTEGER NOT NULL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS messages_inbound_dedupe ON messages (provider_message_id) WHERE direction = 'inbound';
    CREATE INDEX IF NOT EXISTS messages_outbound_provider ON messages (provider_message_id) WHERE direction = 'outbound';
    CREATE UNIQUE INDEX IF NOT EXISTS messages_client_key ON messages (client_key) WHERE client_key IS NOT NULL;
    CREATE TABLE IF NOT EXISTS outbox (
      message_seq INTEGER PRIMARY KEY,
      next_attempt_at INTEGER NOT NULL,
      last_error TEXT
    );
    CREATE TABLE IF NOT EXISTS early_status (
      provider_message_id TEXT PRIMARY KEY,
      status TEXT NOT NULL,
      error TEXT,
      received_at INTEGER NOT NULL
    )
  `,
  // v2: the AI decision queue, the placeholder vault and intent labels.
  `
    CREATE TABLE IF NOT EXISTS tasks (
      message_seq INTEGER PRIMARY KEY,
      state TEXT NOT NULL DEFAULT 'pending',
      attempts INTEGER NOT NULL DEFAULT 0,
      next_attempt_at INTEGER NOT NULL,
      outcome TEXT,
      reason TEXT,
      last_error TEXT,
      health_key TEXT,
      reported INTEGER NOT NULL DEFAULT 0,
      decided_at INTEGER
    );
    CREATE INDEX IF NOT EXISTS tasks_pending ON tasks (state, message_seq);
    CREATE TABLE IF NOT EXISTS vault (placeholder TEXT PRIMARY KEY, original TEXT NOT NULL);
    ALTER TABLE messages ADD COLUMN intent TEXT
  `,
  // v3: message bodies, vault originals and the address are sealed under the subject key (`enc` marks sealed rows).
  "ALTER TABLE messages ADD COLUMN enc INTEGER NOT NULL DEFAULT 0",
  // v4: decided tasks not yet counted in agent health are looked up on every alarm run; without this
  // index each lookup walks every decided task.
  "CREATE INDEX IF NOT EXISTS tasks_unreported ON tasks (message_seq) WHERE state = 'done' AND reported = 0",
  // v5: staff live tickets already used here (each opens one socket), kept until they expire.
  "CREATE TABLE IF NOT EXISTS used_tickets (nonce TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)",
];
/** How long an unwrapped subject key stays in memory (never in storage). */
const KEY_CACHE_MS = 5 * 60_000;
/** Shown instead of content whose subject key was destroyed (erased subject). */
export const ERASED_TEXT = "[erased]";
/** Provider attempts for one message before the pipeline hands off. */
export const AI_MAX_ATTEMPTS = 3;
const MAX_TASKS_PER_ALARM = 25;
/**
 * Least time between two alarm runs that decide AI tasks: messages arriving
 * in a burst are decided together (one tenant-context read, one index write,
 * one health push per run) instead of one alarm run each.
 */
const ALARM_COALESCE_MS = 1_000;
/**
 * The batch window while the tenant's automatic replies are off (see quietTenants): then no
 * end user waits for a decision (opt-out and help keywords still run within ALARM_COALESCE_MS,
 * and special categories are flagged at ingest), so a message opens a window of this length
 * and one run decides everything stored in it: fewer runs, each with one settings read, one
 * commit and one D1 push. A new conversation's first message waits too, instead of costing a
 * run of its own.
 */
const QUIET_COALESCE_MS = 5_000;
/**
 * Whether each tenant's automatic replies were off (or its plan canceled) at the latest settings
 * read by any conversation object in this isolate. Only a scheduling hint: it picks the batch
 * window, while every decision still uses settings read after its message was stored.
 */
const quietTenants = new Map<string, boolean>();
const QUIET_TENANTS_MAX = 4096;
/** Decided outcomes pushed to the agent-health counters per alarm run (one D1 batch). */
const HEALTH_ROWS_PER_ALARM = 200;
/** Keys per insert (two bound values each; D1 allows 100 per statement). */
const HEALTH_KEYS_PER_STATEMENT = 45;
/** Knowledge entries loaded per decision (the whole base up to this size). */
const MAX_KNOWLEDGE_ENTRIES = 500;
/** Delivery attempts before a message ends as `failed`. */
export const MAX_SEND_ATTEMPTS = 8;
/** WhatsApp only allows free-form replies within 24 hours of the user's last message. */
const WHATSAPP_SERVICE_WINDOW_MS = 24 * 60 * 60 * 1000;
const INDEX_RETRY_MS = 5_000;
/** Least time between two alarm runs' D1 pushes (index activity and agent-health counters). */
const RUN_PUSH_INTERVAL_MS = 5_000;
const MAX_SENDS_PER_ALARM = 25;

/** A media reference as the provider reported it (nothing is downloaded here). */
export interface MediaRef {
  url?: string;
  providerMediaId?: string;
  contentType?: string;
  filename?: string;
}

/** Everything needed to append one inbound message. */
export interface IngestInput {
  conversationId: string;
  tenantId: string;
  channelId: string;
  channelType: ChannelType;
  subjectHash: string;
  /** Normalised address (`tel:+…`, `email:…`, `id:…`): kept only here, never in D1. */
  address: string;
  providerMessageId: string;
  text: string;
  media: MediaRef[];
  receivedAt: number;
  /** Origin providers reach us at, for status-callback URLs. */
  publicOrigin: string;
}

export interface IngestResult {
  duplicate: boolean;
  seq: number;
  messageId: string;
}

export type MessageDirection = "inbound" | "outbound";
export type MessageAuthor = "end_user" | "agent" | "ai" | "system";
export type MessageStatus = "received" | "queued" | "sent" | "delivered" | "read" | "failed";

/** A message as the API shows it. */
export interface MessageView {
  id: string;
  conversationId: string;
  seq: number;
  direction: MessageDirection;
  author: MessageAuthor;
  authorId: string | null;
  text: string;
  media: MediaRef[];
  status: MessageStatus;
  error: string | null;
  providerMessageId: string | null;
  attempts: number;
  /** Coarse intent label of an inbound message, when the intent feature is on. */
  intent: string | null;
  createdAt: string;
  updatedAt: string;
}

/** Conversation state as the object knows it. */
export interface ConversationView {
  id: string;
  tenantId: string;
  channelId: string;
  channelType: ChannelType;
  address: string;
  status: ConversationStatus;
  messageCount: number;
  createdAt: string;
  lastActivityAt: string;
  lastInboundAt: string | null;
  /** A special category of data (GDPR art. 9) was detected in this conversation. */
  specialCategory: boolean;
}

export interface SendInput {
  text: string;
  author: Exclude<MessageAuthor, "end_user">;
  authorId: string | null;
  /** Client-supplied key: the same key twice returns the first message instead of sending again. */
  idempotencyKey: string | null;
  publicOrigin: string;
}

export type SendOutcome =
  | { ok: true; created: boolean; message: MessageView }
  | { ok: false; code: "not_found" | "outside_service_window"; message: string };

export interface StatusUpdate {
  /** Parley message id or the provider's id for it. */
  messageId?: string;
  providerMessageId?: string;
  status: "sent" | "delivered" | "read" | "failed";
  error?: string | null;
}

export interface ListOptions {
  after?: number;
  before?: number;
  limit: number;
  order: "asc" | "desc";
}

type Row = Record<string, SqlStorageValue>;

/** Identity of a web-chat visitor, passed by the Worker with the WebSocket upgrade. */
export const webChatIdentitySchema = z.object({
  conversationId: z.string(),
  tenantId: z.string(),
  channelId: z.string(),
  subjectHash: z.string(),
  address: z.string(),
  publicOrigin: z.string(),
});
export type WebChatIdentity = z.infer<typeof webChatIdentitySchema>;

/** Header the Worker uses to hand a verified identity to the object. */
export const IDENTITY_HEADER = "x-parley-identity";

/** A staff member's live socket, verified by the Worker (signed ticket) before the upgrade reaches the object. */
export const staffIdentitySchema = z.object({
  tenantId: z.string(),
  conversationId: z.string(),
  keyId: z.string(),
  role: z.enum(["owner", "admin", "agent", "viewer"]),
});
export type StaffIdentity = z.infer<typeof staffIdentitySchema>;
/** What the Worker hands over on a staff upgrade: the verified identity and the ticket it came with. */
export const staffUpgradeSchema = staffIdentitySchema.extend({
  ticket: z.object({ nonce: z.string().min(16).max(64), expiresAt: z.number().int() }),
});
export type StaffUpgrade = z.infer<typeof staffUpgradeSchema>;

/** Header the Worker uses to hand a verified staff identity to the object. */
export const STAFF_HEADER = "x-parley-staff";
/** WebSocket tag of staff sockets (visitors' sockets are tagged `end_user`). */
const STAFF_TAG = "staff";
/** A staff socket's attachment: who it is, and the `updated_at` watermark of what it has been sent. */
const staffAttachmentSchema = staffIdentitySchema.extend({ since: z.number() });
/** Re-send window below the watermark: writes prepared before an await may land with a slightly older timestamp. */
const STAFF_RESEND_MS = 5_000;
const STAFF_MAX_PER_FLUSH = 100;

const chatFrameSchema = z.object({
  type: z.literal("message"),
  /** Client-generated id: a resend after a dropped connection is stored once. */
  id: z.string().min(8).max(64),
  text: z.string().trim().min(1).max(4096),
});

/** Largest WebSocket frame a visitor may send. */
const MAX_FRAME_BYTES = 16 * 1024;
/** Visitor frames one conversation accepts per window (all its sockets together); more get a `rate_limited` error frame. */
export const VISITOR_FRAMES_PER_WINDOW = 30;
const VISITOR_FRAME_WINDOW_MS = 10_000;
const HISTORY_ON_CONNECT = 50;

const STATUS_RANK: Record<MessageStatus, number> = { received: 0, queued: 0, sent: 1, delivered: 2, read: 3, failed: 4 };

/** Backoff before attempt `n + 1` (n ≥ 1): 2 s, 4 s, 8 s … capped at 5 minutes, with ±20 % jitter. */
export function sendBackoffMs(attempts: number): number {
  const base = Math.min(300_000, 1000 * 2 ** attempts);
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

export class Conversation extends DurableObject<Env> {
  #sql: SqlStorage;
  #syncing: Promise<boolean> | null = null;
  #outboxDrain: Promise<void> | null = null;
  #tasksDrain: Promise<number> | null = null;
  /** When the latest alarm run began (memory only: after eviction the next decision runs at once). */
  #alarmStartedAt = 0;
  #channelCache: { at: number; value: Promise<LoadedChannel | null> } | null = null;
  /** Unwrapped subject keys by id (null: destroyed). Memory only: storage snapshots never hold a usable key. */
  #keys = new Map<string, { at: number; key: CryptoKey | null }>();
  #liveKey: { at: number; value: SubjectKey } | null = null;
  /** The live key's load in flight, if any. */
  #liveKeyLoad: Promise<SubjectKey> | null = null;
  /** Bumped whenever the cached keys are dropped (erase, restore): a load started earlier is not cached. */
  #keyGeneration = 0;
  /** Staff live updates: the flush in flight, and whether another change landed meanwhile. */
  #staffFlush: Promise<void> | null = null;
  /** Last conversation status told to visitors' sockets (lost on hibernation: a repeat frame is harmless). */
  #visitorStatus: string | null = null;
  /** Fixed-window count of visitor frames (memory only: a hibernated object starts a fresh window). */
  #visitorWindow = { start: 0, frames: 0 };
  #staffAgain = false;
  /** The meta table as read or written during the current event(s): see #enter. */
  #meta = new Map<string, string | null>();
  /** Messages queued for delivery by this instance (tells a task that queued a reply from one that did not). */
  #outboundQueued = 0;
  /** When an alarm run last pushed its results to D1 (memory only: a fresh object pushes at once). */
  #lastRunPush = 0;
  /** Highest sequence number of an opt-out/help keyword message ingested since this object started (decided within ALARM_COALESCE_MS). */
  #urgentSeq = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#sql = ctx.storage.sql;
    void ctx.blockConcurrencyWhile(async () => {
      this.#migrate();
    });
  }

  // ---------------------------------------------------------------- RPC API

  /**
   * Appends an inbound message once per provider message id. Dedupe check,
   * sequence number and append are one synchronous storage step.
   */
  async ingest(input: IngestInput): Promise<IngestResult> {
    // No #enter(): the hot path keeps what earlier events cached (nothing but this object writes it).
    // Encrypt before the synchronous step (crypto is async); the dedupe check is inside it (a provider's
    // retry pays one wasted encryption, every new message saves a read).
    const now = Date.now();
    const id = newId("msg", now);
    const key = await this.#liveSubjectKey(input.tenantId, input.subjectHash);
    const body = await this.#seal(key, `message:${input.conversationId}:${id}`, JSON.stringify({ t: input.text, m: input.media }));
    const sealedAddress = this.#getMeta("conversation_id") ? null : await this.#seal(key, `address:${input.conversationId}`, input.address);
    // Both are pure and cheap: a keyword is decided without coalescing, and a special category gates viewers from the ack on.
    const keyword = classifyKeyword(input.text) !== null;
    const special = detectSpecialCategories(input.text).length > 0;
    const result = this.#transaction((): IngestResult => {
      const created = this.#getMeta("conversation_id") === null;
      this.#claimIdentity(input, sealedAddress);
      // Dedupe, next sequence number and append in one statement: the partial unique index on inbound
      // provider ids turns a repeat into no row, and the rowid alias `seq` takes the next number.
      const inserted = this.#sql
        .exec(
          `INSERT INTO messages (id, direction, author, author_id, body, media, provider_message_id, status, attempts, enc, created_at, updated_at)
           VALUES (?, 'inbound', 'end_user', NULL, ?, '[]', ?, 'received', 0, 1, ?, ?) ON CONFLICT DO NOTHING RETURNING seq`,
          id,
          body,
          input.providerMessageId,
          now,
          now,
        )
        .toArray()[0];
      if (!inserted) {
        const existing = this.#sql
          .exec("SELECT seq, id FROM messages WHERE direction = 'inbound' AND provider_message_id = ?", input.providerMessageId)
          .one();
        return { duplicate: true, seq: Number(existing.seq), messageId: String(existing.id) };
      }
      const seq = Number(inserted.seq);
      const status = this.#getMeta("status");
      const metas: [string, string][] = [
        ["last_activity_at", String(now)],
        ["last_inbound_at", String(now)],
      ];
      if (status === "closed") metas.push(["status", "open"]);
      if (this.#getMeta("public_origin") !== input.publicOrigin) metas.push(["public_origin", input.publicOrigin]);
      const flagged = special && this.#getMeta("special_category") !== "1";
      if (flagged) metas.push(["special_category", "1"]);
      // The AI decision for this message is queued in the same step: it cannot be lost, and runs once.
      this.#sql.exec("INSERT INTO tasks (message_seq, next_attempt_at) VALUES (?, ?)", seq, now);
      this.#bumpVersion(metas);
      // A new conversation's row, a reopened status and the special-category flag (it gates viewers) are what
      // D1 readers rely on right after the ack; activity and message count follow from the alarm (one index write per run).
      if (created || status === "closed" || flagged) this.#indexUrgent();
      return { duplicate: false, seq, messageId: id };
    });
    if (!result.duplicate) {
      if (keyword) this.#urgentSeq = Math.max(this.#urgentSeq, result.seq);
      await this.#alarmForNewTask(now, keyword);
    }
    await this.#syncIndexIfUrgent();
    return result;
  }

  /**
   * Binds this object to a conversation the business starts (a campaign or a
   * notification) before any inbound message exists. Idempotent.
   */
  async openOutbound(input: Omit<IngestInput, "providerMessageId" | "text" | "media" | "receivedAt">): Promise<ConversationView> {
    this.#enter();
    const key = await this.#liveSubjectKey(input.tenantId, input.subjectHash);
    const sealedAddress = this.#getMeta("conversation_id") ? null : await this.#seal(key, `address:${input.conversationId}`, input.address);
    const created = this.#transaction(() => {
      const existed = this.#getMeta("conversation_id") !== null;
      this.#claimIdentity({ ...input, providerMessageId: "", text: "", media: [], receivedAt: Date.now() }, sealedAddress);
      this.#setMeta("public_origin", input.publicOrigin);
      if (!existed) {
        this.#setMeta("last_activity_at", String(Date.now()));
        this.#bumpVersion();
      }
      return !existed;
    });
    if (created) await this.#syncIndexSafely();
    const view = await this.#conversationView();
    if (!view) throw new Error("conversation identity missing after openOutbound");
    return view;
  }

  /** Queues an outbound message; delivery happens from the alarm, with retries. */
  async send(input: SendInput): Promise<SendOutcome> {
    this.#enter();
    if (!this.#getMeta("conversation_id")) return { ok: false, code: "not_found", message: "conversation not found" };
    const sealed = await this.#sealOutbound(input.text);
    const outcome = this.#transaction((): { ok: true; created: boolean; seq: number } | Extract<SendOutcome, { ok: false }> => {
      if (input.idempotencyKey) {
        const existing = this.#sql.exec("SELECT seq FROM messages WHERE client_key = ?", input.idempotencyKey).toArray()[0];
        if (existing) return { ok: true, created: false, seq: Number(existing.seq) };
      }
      const channelType = this.#getMeta("channel_type");
      if (channelType === "whatsapp_cloud" || channelType === "twilio_whatsapp") {
        const lastInbound = Number(this.#getMeta("last_inbound_at") ?? 0);
        if (Date.now() - lastInbound > WHATSAPP_SERVICE_WINDOW_MS) {
          return {
            ok: false,
            code: "outside_service_window",
            message: "WhatsApp allows free-form replies only within 24 hours of the user's last message",
          };
        }
      }
      const seq = this.#queueOutbound(sealed, input.author, input.authorId, Date.now(), input.idempotencyKey);
      this.#setMeta("public_origin", input.publicOrigin);
      this.#bumpVersion();
      return { ok: true, created: true, seq };
    });
    if (!outcome.ok) return outcome;
    if (outcome.created) {
      await this.#scheduleAlarm();
      await this.#syncIndexSafely();
    }
    const row = this.#sql.exec("SELECT * FROM messages WHERE seq = ?", outcome.seq).one();
    return { ok: true, created: outcome.created, message: await this.#view(row) };
  }

  /** Changes the conversation's state (open, handoff, closed). */
  async setStatus(status: ConversationStatus): Promise<ConversationView | null> {
    this.#enter();
    const changed = this.#transaction(() => {
      const current = this.#getMeta("status");
      if (!current) return null;
      if (current === status) return false;
      this.#setMeta("status", status);
      this.#setMeta("last_activity_at", String(Date.now()));
      this.#bumpVersion();
      this.#indexUrgent();
      return true;
    });
    if (changed === null) return null;
    if (changed) await this.#syncIndexSafely();
    return this.#conversationView();
  }

  /** The conversation's current state, or null if this object holds none. */
  async getConversation(): Promise<ConversationView | null> {
    this.#enter();
    return this.#conversationView();
  }

  /**
   * The object's storage as stored (message bodies stay sealed under the
   * subject key), for encrypted backups. Restoring it after the subject was
   * erased brings back nothing readable: the key is gone.
   */
  async exportSnapshot(): Promise<ConversationSnapshot | null> {
    this.#enter();
    if (!this.#getMeta("conversation_id")) return null;
    const meta: Record<string, string> = {};
    for (const row of this.#sql.exec("SELECT key, value FROM meta")) meta[String(row.key)] = String(row.value);
    const messages = this.#sql.exec("SELECT * FROM messages ORDER BY seq").toArray().map((r) => ({ ...r }) as Record<string, SqlStorageValue>);
    const vault = this.#sql.exec("SELECT placeholder, original FROM vault").toArray().map((r) => ({ placeholder: String(r.placeholder), original: String(r.original) }));
    return { version: 1, meta, messages: messages.map(plainRow), vault };
  }

  /** Replaces this object's storage with a snapshot (operator restore). Pending work is not resumed. */
  async importSnapshot(snapshot: ConversationSnapshot): Promise<{ messages: number }> {
    this.#enter();
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.#meta.clear();
    this.#dropKeys();
    this.#migrate();
    this.#transaction(() => {
      for (const [key, value] of Object.entries(snapshot.meta)) {
        if (key === "schema_version" || key === "index_version" || key === "index_floor") continue;
        this.#setMeta(key, value);
      }
      for (const m of snapshot.messages) {
        this.#sql.exec(
          `INSERT INTO messages (seq, id, direction, author, author_id, body, media, provider_message_id, status, error, attempts, client_key, created_at, updated_at, intent, enc)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          m.seq, m.id, m.direction, m.author, m.author_id, m.body, m.media ?? "[]", m.provider_message_id, m.status, m.error, m.attempts ?? 0, m.client_key, m.created_at, m.updated_at, m.intent ?? null, m.enc ?? 0,
        );
        // Restored inbound messages are history, not new work.
        this.#sql.exec("INSERT OR IGNORE INTO tasks (message_seq, state, next_attempt_at, reported) VALUES (?, 'done', 0, 1)", m.seq);
      }
      for (const v of snapshot.vault) this.#sql.exec("INSERT OR IGNORE INTO vault (placeholder, original) VALUES (?, ?)", v.placeholder, v.original);
      this.#setMeta("index_version", "0");
      this.#bumpVersion();
    });
    await this.#syncIndexSafely();
    return { messages: snapshot.messages.length };
  }

  /**
   * Erases everything this object holds (messages, state, queues, vault, alarm)
   * and closes its sockets. The caller removes the D1 index row and, for a
   * subject erasure, destroys the subject key.
   */
  async erase(): Promise<{ messages: number }> {
    this.#enter();
    const count = Number(this.#sql.exec("SELECT COUNT(*) AS n FROM messages").one().n);
    for (const socket of this.ctx.getWebSockets()) {
      try {
        socket.close(1000, "conversation erased");
      } catch {
        // already closing
      }
    }
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.#meta.clear();
    this.#dropKeys();
    this.#channelCache = null;
    // deleteAll drops the tables too; recreate them so the object stays usable (and empty).
    this.#migrate();
    return { messages: count };
  }

  /** Messages in sequence order, paged by sequence number. */
  async listMessages(options: ListOptions): Promise<{ messages: MessageView[]; hasMore: boolean }> {
    this.#enter();
    const limit = Math.max(1, Math.min(200, options.limit));
    const clauses: string[] = [];
    const params: SqlStorageValue[] = [];
    if (options.after !== undefined) {
      clauses.push("seq > ?");
      params.push(options.after);
    }
    if (options.before !== undefined) {
      clauses.push("seq < ?");
      params.push(options.before);
    }
    const where = clauses.length ? `WHERE ${clauses.join(" AND ")}` : "";
    const order = options.order === "desc" ? "DESC" : "ASC";
    const rows = this.#sql.exec(`SELECT * FROM messages ${where} ORDER BY seq ${order} LIMIT ?`, ...params, limit + 1).toArray();
    return { messages: await Promise.all(rows.slice(0, limit).map((r) => this.#view(r))), hasMore: rows.length > limit };
  }

  /** Applies a provider delivery status; never moves a message backwards (delivered stays delivered). */
  async applyStatus(update: StatusUpdate): Promise<{ applied: boolean }> {
    this.#enter();
    const applied = this.#transaction(() => {
      const row = update.messageId
        ? this.#sql.exec("SELECT seq, status FROM messages WHERE id = ? AND direction = 'outbound'", update.messageId).toArray()[0]
        : this.#sql
            .exec("SELECT seq, status FROM messages WHERE provider_message_id = ? AND direction = 'outbound'", update.providerMessageId ?? "")
            .toArray()[0];
      if (!row) {
        if (update.providerMessageId) {
          // The status may beat the send response that tells us the provider id; keep it for then.
          this.#sql.exec(
            "INSERT OR REPLACE INTO early_status (provider_message_id, status, error, received_at) VALUES (?, ?, ?, ?)",
            update.providerMessageId,
            update.status,
            update.error ?? null,
            Date.now(),
          );
        }
        return false;
      }
      return this.#advanceStatus(Number(row.seq), String(row.status) as MessageStatus, update.status, update.error ?? null);
    });
    return { applied };
  }

  /**
   * Alarm: deliver due outbound messages in sequence order, decide pending AI
   * tasks, then push the D1 index (once per run: every change the run and the
   * messages acknowledged meanwhile made) and the agent-health counters.
   */
  override async alarm(): Promise<void> {
    this.#enter();
    this.#alarmStartedAt = Date.now();
    let decided = 0;
    try {
      await this.#drainOutbox();
      decided = await this.#drainTasks();
    } finally {
      await this.#pushRunResults(decided);
    }
    await this.#scheduleAlarm();
  }

  /** A redacted summary of the conversation (placeholders stay), when the tenant has summaries on. */
  async summarize(): Promise<{ ok: true; summary: string; provider: string; messages: number } | { ok: false; code: "not_found" | "feature_off" | "plan_canceled" | "budget_exhausted" | "provider_failing" }> {
    this.#enter();
    const tenantId = this.#getMeta("tenant_id");
    if (!tenantId) return { ok: false, code: "not_found" };
    const context = await this.#loadTenantContext(tenantId);
    // A canceled plan turns every AI feature off (`none`, no billing configured, keeps them on).
    if (context.planStatus === "canceled") return { ok: false, code: "plan_canceled" };
    if (!context.settings.ai.summaries) return { ok: false, code: "feature_off" };
    if (!(await this.#takeBudget(tenantId, context.settings))) return { ok: false, code: "budget_exhausted" };
    const lastSeq = Number(this.#sql.exec("SELECT COALESCE(MAX(seq), 0) AS s FROM messages").one().s);
    const turns = await this.#redactedTurns(lastSeq, 50, context.defaultCountry, await this.#loadVault());
    const provider = this.#provider(context.settings, await this.#loadKnowledge(tenantId));
    try {
      const summary = await provider.summarize({ model: context.settings.model, turns });
      // The summary is returned redacted: identifiers the model wrote out are masked too.
      return { ok: true, summary: redact(summary, { defaultCountry: context.defaultCountry }).text, provider: provider.name, messages: turns.length };
    } catch {
      return { ok: false, code: "provider_failing" };
    }
  }

  /** WebSocket upgrade for the web-chat channel (hibernation API: idle sockets cost nothing). */
  override async fetch(request: Request): Promise<Response> {
    this.#enter();
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return Response.json({ error: { code: "bad_request", message: "expected a WebSocket upgrade" } }, { status: 426 });
    }
    if (request.headers.has(STAFF_HEADER)) return this.#acceptStaff(request);
    const parsed = webChatIdentitySchema.safeParse(JSON.parse(request.headers.get(IDENTITY_HEADER) ?? "null"));
    if (!parsed.success) return Response.json({ error: { code: "bad_request", message: "missing identity" } }, { status: 400 });
    const known = this.#getMeta("conversation_id");
    if (known && known !== parsed.data.conversationId) return Response.json({ error: { code: "forbidden", message: "wrong conversation" } }, { status: 403 });
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server, ["end_user"]);
    server.serializeAttachment(parsed.data);
    const history = known ? (await this.listMessages({ limit: HISTORY_ON_CONNECT, order: "desc" })).messages.reverse() : [];
    server.send(JSON.stringify({ type: "history", conversationId: parsed.data.conversationId, status: this.#getMeta("status") ?? "open", messages: history.map(chatView) }));
    return new Response(null, { status: 101, webSocket: client });
  }

  /** A visitor's frame: stored once per client message id, acknowledged, and shown on the visitor's other tabs. */
  override async webSocketMessage(ws: WebSocket, data: string | ArrayBuffer): Promise<void> {
    this.#enter();
    if (this.ctx.getTags(ws).includes(STAFF_TAG)) {
      this.#staffFrame(ws, data);
      return;
    }
    const identity = webChatIdentitySchema.safeParse(ws.deserializeAttachment());
    if (!identity.success) {
      ws.close(1008, "no identity");
      return;
    }
    const now = Date.now();
    if (now - this.#visitorWindow.start >= VISITOR_FRAME_WINDOW_MS) this.#visitorWindow = { start: now, frames: 0 };
    if (++this.#visitorWindow.frames > VISITOR_FRAMES_PER_WINDOW) {
      const retryAfter = Math.ceil((this.#visitorWindow.start + VISITOR_FRAME_WINDOW_MS - now) / 1000);
      ws.send(JSON.stringify({ type: "error", code: "rate_limited", message: `too many messages; retry after ${retryAfter} s`, retryAfter }));
      return;
    }
    const size = typeof data === "string" ? data.length : data.byteLength;
    if (typeof data !== "string" || size > MAX_FRAME_BYTES) {
      ws.send(JSON.stringify({ type: "error", code: "payload_too_large", message: "frames must be text under 16 KB" }));
      return;
    }
    let json: unknown;
    try {
      json = JSON.parse(data);
    } catch {
      ws.send(JSON.stringify({ type: "error", code: "invalid_json", message: "frame is not JSON" }));
      return;
    }
    const frame = chatFrameSchema.safeParse(json);
    if (!frame.success) {
      ws.send(JSON.stringify({ type: "error", code: "validation_error", message: frame.error.issues[0]?.message ?? "invalid frame" }));
      return;
    }
    const result = await this.ingest({
      ...identity.data,
      channelType: "web_chat",
      providerMessageId: `web:${frame.data.id}`,
      text: frame.data.text,
      media: [],
      receivedAt: Date.now(),
    });
    const row = this.#sql.exec("SELECT * FROM messages WHERE seq = ?", result.seq).one();
    const message = chatView(await this.#view(row));
    ws.send(JSON.stringify({ type: "ack", clientId: frame.data.id, duplicate: result.duplicate, message }));
    if (!result.duplicate) this.#broadcast({ type: "message", message }, ws);
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    this.#enter();
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "closing");
    } catch {
      // already closed
    }
  }

  #broadcast(payload: unknown, except?: WebSocket): number {
    const text = JSON.stringify(payload);
    let delivered = 0;
    for (const socket of this.ctx.getWebSockets("end_user")) {
      if (socket === except) continue;
      try {
        socket.send(text);
        delivered++;
      } catch {
        // a socket that is closing; it will be dropped
      }
    }
    return delivered;
  }

  // ---------------------------------------------------------------- staff live sockets
  //
  // Staff watching a conversation on the admin page hold a hibernatable socket
  // tagged `staff`. Every state change (#bumpVersion) schedules one flush after
  // the current storage step: messages written or updated since each socket's
  // watermark are pushed (viewers get them redacted), then the conversation's
  // state. Staff sockets are receive-only apart from `ping`.

  /** One message by id, for the audited reveal (null when absent). */
  async getMessage(messageId: string): Promise<MessageView | null> {
    this.#enter();
    const row = this.#sql.exec("SELECT * FROM messages WHERE id = ?", messageId).toArray()[0];
    return row ? this.#view(row) : null;
  }

  async #acceptStaff(request: Request): Promise<Response> {
    let raw: unknown = null;
    try {
      raw = JSON.parse(request.headers.get(STAFF_HEADER) ?? "null");
    } catch {
      raw = null;
    }
    const upgrade = staffUpgradeSchema.safeParse(raw);
    if (!upgrade.success) return Response.json({ error: { code: "bad_request", message: "missing staff identity" } }, { status: 400 });
    const { ticket, ...identity } = upgrade.data;
    const state = this.#conversationState();
    if (!state || state.id !== identity.conversationId || state.tenantId !== identity.tenantId) {
      return Response.json({ error: { code: "not_found", message: "conversation not found" } }, { status: 404 });
    }
    if (state.specialCategory && identity.role === "viewer") {
      return Response.json({ error: { code: "forbidden", message: "viewer keys cannot open this conversation" } }, { status: 403 });
    }
    if (!this.#useTicket(ticket.nonce, ticket.expiresAt)) {
      return Response.json({ error: { code: "unauthorized", message: "this ticket was already used; ask for a new one" } }, { status: 401 });
    }
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server, [STAFF_TAG, `role:${identity.role}`]);
    const since = Number(this.#sql.exec("SELECT COALESCE(MAX(updated_at), 0) AS t FROM messages").one().t);
    server.serializeAttachment({ ...identity, since });
    const history = (await this.listMessages({ limit: HISTORY_ON_CONNECT, order: "desc" })).messages.reverse();
    server.send(
      JSON.stringify({
        type: "history",
        conversation: state,
        messages: history.map((m) => staffMessageView(identity.role, m)),
      }),
    );
    return new Response(null, { status: 101, webSocket: client });
  }

  /** Records a ticket's first use; false when it was used before. Expired entries are dropped on the way. */
  #useTicket(nonce: string, expiresAt: number): boolean {
    return this.#transaction(() => {
      this.#sql.exec("DELETE FROM used_tickets WHERE expires_at < ?", Date.now());
      return this.#sql.exec("INSERT INTO used_tickets (nonce, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING", nonce, expiresAt).rowsWritten > 0;
    });
  }

  #staffFrame(ws: WebSocket, data: string | ArrayBuffer): void {
    if (data === "ping" || (typeof data === "string" && data.length < 64 && data.includes('"ping"'))) {
      ws.send(JSON.stringify({ type: "pong", at: new Date().toISOString() }));
      return;
    }
    ws.send(JSON.stringify({ type: "error", code: "bad_request", message: "staff sockets are receive-only" }));
  }

  /** Called on every state change (inside the storage step): schedules one flush to staff sockets after it. */
  #staffChanged(): void {
    if (this.#staffFlush) {
      this.#staffAgain = true;
      return;
    }
    if (this.ctx.getWebSockets(STAFF_TAG).length === 0) return;
    const run = async (): Promise<void> => {
      do {
        this.#staffAgain = false;
        await this.#flushStaff();
      } while (this.#staffAgain);
    };
    this.#staffFlush = Promise.resolve()
      .then(run)
      .catch((err: unknown) => console.error("staff live flush failed", err instanceof Error ? err.message : String(err)))
      .finally(() => {
        this.#staffFlush = null;
      });
    this.ctx.waitUntil(this.#staffFlush);
  }

  async #flushStaff(): Promise<void> {
    const sockets = this.ctx.getWebSockets(STAFF_TAG);
    if (sockets.length === 0) return;
    const state = this.#conversationState();
    // Sockets grouped by watermark: the rows are read and decrypted once per group.
    const groups = new Map<number, { ws: WebSocket; who: z.infer<typeof staffAttachmentSchema> }[]>();
    for (const ws of sockets) {
      const who = staffAttachmentSchema.safeParse(ws.deserializeAttachment());
      if (!who.success || !state) {
        this.#closeStaff(ws, 1011, "conversation unavailable");
        continue;
      }
      if (state.specialCategory && who.data.role === "viewer") {
        this.#closeStaff(ws, 4403, "special categories: viewers cannot follow this conversation");
        continue;
      }
      const group = groups.get(who.data.since) ?? [];
      group.push({ ws, who: who.data });
      groups.set(who.data.since, group);
    }
    for (const [since, members] of groups) {
      const rows = this.#sql
        .exec("SELECT * FROM messages WHERE updated_at >= ? ORDER BY seq LIMIT ?", since - STAFF_RESEND_MS, STAFF_MAX_PER_FLUSH)
        .toArray();
      const views = await Promise.all(rows.map((r) => this.#view(r)));
      const watermark = rows.reduce((max, r) => Math.max(max, Number(r.updated_at)), since);
      for (const { ws, who } of members) {
        try {
          for (const view of views) ws.send(JSON.stringify({ type: "message", message: staffMessageView(who.role, view) }));
          if (state) ws.send(JSON.stringify({ type: "conversation", conversation: state }));
          ws.serializeAttachment({ ...who, since: watermark });
        } catch {
          // a socket that is closing; it will be dropped
        }
      }
    }
  }

  #closeStaff(ws: WebSocket, code: number, reason: string): void {
    try {
      ws.close(code, reason);
    } catch {
      // already closing
    }
  }

  // ---------------------------------------------------------------- storage

  #migrate(): void {
    this.#sql.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    const version = Number(this.#getMeta("schema_version") ?? 0);
    if (version >= SCHEMA_VERSION) return;
    // A new object runs every step in one statement batch; an older one only the steps it lacks.
    this.#sql.exec(SCHEMA_STEPS.slice(version).join(";\n"));
    this.#setMeta("schema_version", String(SCHEMA_VERSION));
  }

  #getMeta(key: string): string | null {
    const known = this.#meta.get(key);
    if (known !== undefined) return known;
    const row = this.#sql.exec("SELECT value FROM meta WHERE key = ?", key).toArray()[0];
    const value = row ? String(row.value) : null;
    this.#meta.set(key, value);
    return value;
  }

  #setMeta(key: string, value: string): void {
    this.#setMetas([[key, value]]);
  }

  /** Several meta values in one statement. */
  #setMetas(entries: readonly (readonly [string, string])[]): void {
    this.#sql.exec(
      `INSERT INTO meta (key, value) VALUES ${entries.map(() => "(?, ?)").join(", ")} ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
      ...entries.flat(),
    );
    for (const [key, value] of entries) this.#meta.set(key, value);
  }

  /**
   * Every entry point starts here: meta values cached by earlier events are dropped, so storage
   * edited outside this class (maintenance, tests moving time) is read afresh. Within an event,
   * and across events interleaved with it, the copy stays exact (this object is the only writer).
   */
  #enter(): void {
    this.#meta.clear();
  }

  /** One synchronous storage step; a rolled-back step also drops the meta values it may have cached. */
  #transaction<T>(step: () => T): T {
    try {
      return this.ctx.storage.transactionSync(step);
    } catch (err) {
      this.#meta.clear();
      throw err;
    }
  }

  /** A new version of the conversation (written together with `also`, one statement). */
  #bumpVersion(also: readonly (readonly [string, string])[] = []): void {
    this.#setMetas([["version", String(Number(this.#getMeta("version") ?? 0) + 1)], ...also]);
    this.#staffChanged();
    // Visitors learn at once when a person takes over (AI Act art. 50 disclosure), not only when the first human reply arrives.
    const status = this.#getMeta("status");
    if (status && status !== this.#visitorStatus) {
      const tell = status === "handoff" || this.#visitorStatus === "handoff";
      this.#visitorStatus = status;
      if (tell) this.#broadcast({ type: "status", status });
    }
  }

  /** Binds this object to its conversation on first contact; refuses anything else later. */
  #claimIdentity(input: IngestInput, sealedAddress: string | null): void {
    const existing = this.#getMeta("conversation_id");
    if (existing) {
      if (existing !== input.conversationId || this.#getMeta("tenant_id") !== input.tenantId) {
        throw new Error("conversation object identity mismatch");
      }
      return;
    }
    const now = String(Date.now());
    this.#setMeta("conversation_id", input.conversationId);
    this.#setMeta("tenant_id", input.tenantId);
    this.#setMeta("channel_id", input.channelId);
    this.#setMeta("channel_type", input.channelType);
    this.#setMeta("subject_hash", input.subjectHash);
    if (!sealedAddress) throw new Error("a new conversation needs its sealed address");
    this.#setMeta("address_enc", sealedAddress);
    this.#setMeta("status", "open");
    this.#setMeta("created_at", now);
  }

  async #view(row: Row): Promise<MessageView> {
    const { text, media } = await this.#openMessage(row);
    return {
      id: String(row.id),
      conversationId: this.#getMeta("conversation_id") ?? "",
      seq: Number(row.seq),
      direction: String(row.direction) as MessageDirection,
      author: String(row.author) as MessageAuthor,
      authorId: row.author_id === null ? null : String(row.author_id),
      text,
      media,
      status: String(row.status) as MessageStatus,
      error: row.error === null ? null : String(row.error),
      providerMessageId: row.provider_message_id === null ? null : String(row.provider_message_id),
      attempts: Number(row.attempts),
      intent: row.intent === null || row.intent === undefined ? null : String(row.intent),
      createdAt: new Date(Number(row.created_at)).toISOString(),
      updatedAt: new Date(Number(row.updated_at)).toISOString(),
    };
  }

  async #conversationView(): Promise<ConversationView | null> {
    const state = this.#conversationState();
    if (!state) return null;
    const sealed = this.#getMeta("address_enc");
    const address = sealed ? ((await this.#open(`address:${state.id}`, sealed)) ?? ERASED_TEXT) : (this.#getMeta("address") ?? "");
    return { ...state, address };
  }

  /** The conversation's state without decrypting anything. */
  #conversationState(): Omit<ConversationView, "address"> | null {
    const id = this.#getMeta("conversation_id");
    if (!id) return null;
    const count = this.#sql.exec("SELECT COUNT(*) AS n FROM messages").one();
    const lastInbound = this.#getMeta("last_inbound_at");
    return {
      id,
      tenantId: this.#getMeta("tenant_id") ?? "",
      channelId: this.#getMeta("channel_id") ?? "",
      channelType: (this.#getMeta("channel_type") ?? "custom") as ChannelType,
      status: (this.#getMeta("status") ?? "open") as ConversationStatus,
      messageCount: Number(count.n),
      createdAt: new Date(Number(this.#getMeta("created_at") ?? 0)).toISOString(),
      lastActivityAt: new Date(Number(this.#getMeta("last_activity_at") ?? 0)).toISOString(),
      lastInboundAt: lastInbound ? new Date(Number(lastInbound)).toISOString() : null,
      specialCategory: this.#getMeta("special_category") === "1",
    };
  }

  #advanceStatus(seq: number, current: MessageStatus, next: MessageStatus, error: string | null): boolean {
    if (current === "failed" || STATUS_RANK[next] <= STATUS_RANK[current]) return false;
    this.#sql.exec(
      "UPDATE messages SET status = ?, error = COALESCE(?, error), updated_at = ? WHERE seq = ?",
      next,
      next === "failed" ? (error ?? "provider_reported_failure") : null,
      Date.now(),
      seq,
    );
    if (next === "failed") this.#sql.exec("DELETE FROM outbox WHERE message_seq = ?", seq);
    return true;
  }

  // ---------------------------------------------------------------- D1 index

  /**
   * Pushes the conversation's index row to D1 (up to at least `target`, the
   * current version by default); a failure leaves the alarm to retry.
   */
  async #syncIndexSafely(target = Number(this.#getMeta("version") ?? 0)): Promise<void> {
    try {
      await this.#syncIndex(target);
    } catch (err) {
      console.error("conversation index sync failed; will retry", err instanceof Error ? err.message : String(err));
      await this.#scheduleAlarm(Date.now() + INDEX_RETRY_MS);
    }
  }

  /**
   * Marks the version just written (call inside the storage step, after
   * #bumpVersion) as one D1 readers rely on right away — the row's existence,
   * its status, the special-category flag: it is pushed before the caller is
   * answered. Other changes (activity, message count) reach D1 from the alarm.
   */
  #indexUrgent(): void {
    this.#setMeta("index_floor", this.#getMeta("version") ?? "0");
  }

  /** Pushes the index now when the row was never written or an urgent change is not in D1 yet. */
  async #syncIndexIfUrgent(): Promise<void> {
    const synced = Number(this.#getMeta("index_version") ?? 0);
    const floor = Math.max(1, Number(this.#getMeta("index_floor") ?? 0));
    if (synced < floor && this.#getMeta("conversation_id") !== null) await this.#syncIndexSafely(floor);
  }

  async #syncIndex(target: number): Promise<void> {
    // Concurrent callers share one in-flight push; a push started before `target` was written is followed by another.
    while (Number(this.#getMeta("index_version") ?? 0) < target) {
      if (this.#syncing) {
        await this.#syncing;
        continue;
      }
      this.#syncing = this.#pushIndex().finally(() => {
        this.#syncing = null;
      });
      if (!(await this.#syncing)) return;
    }
  }

  /** Writes the current state to the index row (never over a newer version); false when there is no conversation. */
  async #pushIndex(): Promise<boolean> {
    const push = this.#indexStatement();
    if (!push) return false;
    await push.statement.run();
    this.#indexPushed(push.version);
    return true;
  }

  /** The upsert of the current state into the index row, and the version it carries (null: no conversation). */
  #indexStatement(): { statement: D1PreparedStatement; version: number } | null {
    const view = this.#conversationState();
    if (!view) return null;
    const version = Number(this.#getMeta("version") ?? 0);
    const statement = this.env.DB.prepare(
      `INSERT INTO conversations (id, tenant_id, channel_id, subject_hash, status, created_at, last_activity_at, message_count, version, special_category)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
       ON CONFLICT(id) DO UPDATE SET
         status = excluded.status,
         last_activity_at = excluded.last_activity_at,
         message_count = excluded.message_count,
         version = excluded.version,
         special_category = excluded.special_category
       WHERE excluded.version > conversations.version`,
    ).bind(
      view.id,
      view.tenantId,
      view.channelId,
      this.#getMeta("subject_hash") ?? "",
      view.status,
      Date.parse(view.createdAt),
      Date.parse(view.lastActivityAt),
      view.messageCount,
      version,
      view.specialCategory ? 1 : 0,
    );
    return { statement, version };
  }

  #indexPushed(version: number): void {
    if (version > Number(this.#getMeta("index_version") ?? 0)) this.#setMeta("index_version", String(version));
  }

  /**
   * End of an alarm run: the index row (when behind) and the agent-health
   * counters in one D1 batch. A failure leaves both for the next run.
   */
  async #pushRunResults(decided: number): Promise<void> {
    if (this.#syncing) await this.#syncing.catch(() => false);
    // A busy conversation (several messages coalesced into this run) pushes at most every
    // RUN_PUSH_INTERVAL_MS; a quiet one at once. Urgent changes never wait (#syncIndexIfUrgent),
    // and #scheduleAlarm keeps an alarm set while anything is left unpushed.
    if (decided > 1 && Date.now() - this.#lastRunPush < RUN_PUSH_INTERVAL_MS) return;
    this.#lastRunPush = Date.now();
    const health = this.#healthStatements();
    const behind = Number(this.#getMeta("version") ?? 0) > Number(this.#getMeta("index_version") ?? 0);
    const index = behind ? this.#indexStatement() : null;
    if (!index && !health) return;
    const statements = [...(index ? [index.statement] : []), ...(health?.statements ?? [])];
    const push = this.env.DB.batch(statements).then(() => {
      if (index) this.#indexPushed(index.version);
      if (health) this.#sql.exec("UPDATE tasks SET reported = 1 WHERE message_seq IN (SELECT value FROM json_each(?))", JSON.stringify(health.seqs));
      return true;
    });
    // Urgent pushes meanwhile wait for this one (it may carry their version).
    if (index) {
      const shared = push.finally(() => {
        this.#syncing = null;
      });
      shared.catch(() => undefined); // awaited (and reported) below
      this.#syncing = shared;
    }
    try {
      await push;
    } catch (err) {
      console.error("index / agent-health push failed; will retry", err instanceof Error ? err.message : String(err));
    }
  }

  // ---------------------------------------------------------------- encryption at rest

  /** Forgets every cached subject key (and any load in flight). */
  #dropKeys(): void {
    this.#keys.clear();
    this.#liveKey = null;
    this.#liveKeyLoad = null;
    this.#keyGeneration++;
  }

  /** The subject's live data key (unwrapped in memory only, for a few minutes). */
  async #liveSubjectKey(tenantId?: string, subjectHash?: string): Promise<SubjectKey> {
    const now = Date.now();
    if (this.#liveKey && now - this.#liveKey.at < KEY_CACHE_MS) return this.#liveKey.value;
    // Concurrent first messages share one load (one D1 round trip, not one per message).
    if (this.#liveKeyLoad) return this.#liveKeyLoad;
    const tenant = this.#getMeta("tenant_id") ?? tenantId ?? "";
    const subject = this.#getMeta("subject_hash") ?? subjectHash ?? "";
    const generation = this.#keyGeneration;
    // A conversation's first message usually brings a subject never seen before.
    const load = subjectKeyFor(this.env, tenant, subject, this.#getMeta("conversation_id") === null)
      .then((value) => {
        // An erasure meanwhile dropped the keys: a key loaded before it is not kept.
        if (generation === this.#keyGeneration) {
          this.#liveKey = { at: now, value };
          this.#keys.set(value.id, { at: now, key: value.key });
        }
        return value;
      })
      .finally(() => {
        if (this.#liveKeyLoad === load) this.#liveKeyLoad = null;
      });
    this.#liveKeyLoad = load;
    return load;
  }

  /** A subject key by id; null once it was destroyed (content is then unrecoverable anywhere). */
  async #keyById(id: string): Promise<CryptoKey | null> {
    const cached = this.#keys.get(id);
    if (cached && Date.now() - cached.at < KEY_CACHE_MS) return cached.key;
    const key = await subjectKeyById(this.env, this.#getMeta("tenant_id") ?? "", id);
    this.#keys.set(id, { at: Date.now(), key });
    return key;
  }

  async #seal(key: SubjectKey, context: string, plaintext: string): Promise<string> {
    return sealBytes(key.key, key.id, utf8(plaintext), context);
  }

  /** Decrypts; null when the key was destroyed or the ciphertext does not authenticate. */
  async #open(context: string, envelope: string): Promise<string | null> {
    const keyId = envelopeKeyId(envelope);
    if (!keyId) return null;
    const key = await this.#keyById(keyId);
    if (!key) return null;
    try {
      return fromUtf8(await openBytes(key, envelope, context));
    } catch {
      return null;
    }
  }

  /** A new outbound message id and its sealed body. */
  async #sealOutbound(text: string): Promise<SealedMessage> {
    const id = newId("msg");
    const key = await this.#liveSubjectKey();
    return { id, body: await this.#seal(key, `message:${this.#getMeta("conversation_id") ?? ""}:${id}`, JSON.stringify({ t: text, m: [] })) };
  }

  async #openMessage(row: Row): Promise<{ text: string; media: MediaRef[] }> {
    if (Number(row.enc ?? 0) !== 1) {
      const media: unknown = JSON.parse(String(row.media ?? "[]"));
      return { text: String(row.body), media: Array.isArray(media) ? (media as MediaRef[]) : [] };
    }
    const json = await this.#open(`message:${this.#getMeta("conversation_id") ?? ""}:${String(row.id)}`, String(row.body));
    if (json === null) return { text: ERASED_TEXT, media: [] };
    const parsed = sealedBodySchema.safeParse(JSON.parse(json));
    return parsed.success ? { text: parsed.data.t, media: parsed.data.m } : { text: ERASED_TEXT, media: [] };
  }

  // ---------------------------------------------------------------- AI pipeline

  /**
   * Decides pending messages strictly one at a time, in sequence order:
   * provider calls never overlap. The tenant's context and the subject's
   * restrictions are read from D1 once per run and reused for the tasks whose
   * message was stored before that read began (a message that arrived later
   * waits for the next run and its fresh read, so a decision never uses
   * settings older than its message).
   * Resolves to how many tasks this drain took.
   */
  #drainTasks(): Promise<number> {
    // Never two drains at once (an alarm retried while one still runs): provider calls stay strictly serial.
    this.#tasksDrain ??= this.#drainTasksOnce().finally(() => {
      this.#tasksDrain = null;
    });
    return this.#tasksDrain;
  }

  async #drainTasksOnce(): Promise<number> {
    const run: TaskRun = { context: null, consent: null };
    let taken = 0;
    while (taken < MAX_TASKS_PER_ALARM) {
      const batched = await this.#decideQuietBatch(run, MAX_TASKS_PER_ALARM - taken);
      if (batched > 0) {
        taken += batched;
        continue;
      }
      const head = this.#pendingTasks(1)[0];
      if (!head || Number(head.task_due) > Date.now()) break;
      // One control-plane read per run: a message stored after it waits for the next run (never decided on older settings).
      if (head.seq !== null && !this.#runReadCovers(run, Number(head.created_at))) break;
      const queuedBefore = this.#outboundQueued;
      await this.#runTask(Number(head.task_seq), head.seq === null ? undefined : head, Number(head.task_attempts), run);
      taken++;
      // Only a task that queued something has a delivery to make before the next decision.
      if (this.#outboundQueued !== queuedBefore) await this.#drainOutbox();
    }
    return taken;
  }

  /** The first `limit` pending tasks in sequence order, each with its message (m.* is null when the message is gone). */
  #pendingTasks(limit: number): Row[] {
    return this.#sql
      .exec(
        "SELECT t.message_seq AS task_seq, t.next_attempt_at AS task_due, t.attempts AS task_attempts, m.* FROM tasks t LEFT JOIN messages m ON m.seq = t.message_seq WHERE t.state = 'pending' ORDER BY t.message_seq LIMIT ?",
        limit,
      )
      .toArray();
  }

  /**
   * Replies off (or the plan canceled): every decision is `skipped` whatever the text says, so the
   * leading pending tasks (due, first attempt, message present, covered by this run's settings
   * read, no opt-out/help keyword) are decided together: one read, one decryption pass and one
   * storage step, instead of #runTask's two steps each. The outcome, intent label and
   * special-category flag are the ones #runTask would record. Returns how many it decided; 0
   * leaves the head to #runTask (replies on, a keyword, a retry, or a single task due).
   */
  async #decideQuietBatch(run: TaskRun, limit: number): Promise<number> {
    if (limit < 2 || (run.context && repliesOn(run.context.value))) return 0;
    const now = Date.now();
    let rows = this.#pendingTasks(limit);
    let usable = 0;
    while (usable < rows.length) {
      const r = rows[usable] as Row;
      if (r.seq === null || Number(r.task_due) > now || Number(r.task_attempts) !== 0) break;
      usable++;
    }
    // One settings read per run: a head stored after it is left for the next run (as the drain loop does).
    if (usable < 2 || !this.#runReadCovers(run, Number((rows[0] as Row).created_at))) return 0;
    const tenantId = this.#getMeta("tenant_id") ?? "";
    let context: TenantContext;
    try {
      context = await this.#taskContext(run, tenantId, Number((rows[0] as Row).created_at));
    } catch {
      return 0; // #runTask retries the read and schedules the task's retry
    }
    if (repliesOn(context)) return 0;
    const { settings, planStatus } = context;
    // A message stored after this run's read ends the batch (it waits for the next run's read).
    let covered = 1;
    while (covered < usable && this.#runReadCovers(run, Number((rows[covered] as Row).created_at))) covered++;
    rows = rows.slice(0, covered);
    const texts = await Promise.all(rows.map(async (r) => (await this.#openMessage(r)).text));
    const decided: { seq: number; row: Row; text: string; outcome: Decision }[] = [];
    // Tasks queued before ingest flagged special categories are checked here, as #runTask does.
    let flagKnown = this.#getMeta("special_category") === "1";
    let flagging = false;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i] as Row;
      const text = texts[i] as string;
      if (classifyKeyword(text)) break;
      const special = flagKnown ? [] : detectSpecialCategories(text);
      const outcome = preModelDecision({ settings, planStatus, conversationStatus: this.#getMeta("status") ?? "open", text, specialCategories: special, restricted: false, minorWithoutAuthorization: false });
      if (outcome?.outcome !== "skipped") break;
      if (special.length > 0) flagKnown = flagging = true;
      decided.push({ seq: Number(row.task_seq), row, text, outcome });
    }
    if (decided.length === 0) return 0;
    const flagged = this.#transaction(() => {
      let labelled = false;
      const at = Date.now();
      for (const d of decided) {
        if (settings.ai.intent && d.row.intent === null) {
          this.#labelIntent(d.seq, d.text, at);
          labelled = true;
        }
        this.#markDecided(d.seq, d.outcome, at);
      }
      // Staff see the labels (the rows' new updated_at brings them to their sockets); the index row does not change.
      if (labelled) this.#staffChanged();
      return flagging && this.#flagSpecialCategory();
    });
    if (flagged) await this.#syncIndexIfUrgent();
    return decided.length;
  }

  /** Whether this run's control-plane reads (if any yet) began after a message stored at `storedAt`. */
  #runReadCovers(run: TaskRun, storedAt: number): boolean {
    return (!run.context || run.context.readFrom > storedAt) && (!run.consent || run.consent.readFrom > storedAt);
  }

  /** The tenant context for a message stored at `storedAt`, from this run's read when that read began after it. */
  async #taskContext(run: TaskRun, tenantId: string, storedAt: number): Promise<TenantContext> {
    if (run.context && run.context.readFrom > storedAt) return run.context.value;
    const readFrom = Date.now();
    const value = await this.#loadTenantContext(tenantId);
    run.context = { readFrom, value };
    if (quietTenants.size >= QUIET_TENANTS_MAX) quietTenants.clear();
    quietTenants.set(tenantId, !repliesOn(value));
    return value;
  }

  /** The subject's restriction and minor status, read like #taskContext. */
  async #taskConsent(run: TaskRun, tenantId: string, subjectHash: string, storedAt: number): Promise<{ restricted: boolean; minor: boolean }> {
    if (run.consent && run.consent.readFrom > storedAt) return run.consent.value;
    const readFrom = Date.now();
    const [restricted, minor] = await Promise.all([isRestricted(this.env, tenantId, subjectHash), isMinorWithoutAuthorization(this.env, tenantId, subjectHash)]);
    run.consent = { readFrom, value: { restricted, minor } };
    return run.consent.value;
  }

  async #runTask(seq: number, row: Row | undefined, attempts: number, run: TaskRun): Promise<void> {
    if (!row) {
      this.#sql.exec("DELETE FROM tasks WHERE message_seq = ? AND state = 'pending'", seq);
      return;
    }
    const tenantId = this.#getMeta("tenant_id") ?? "";
    const storedAt = Number(row.created_at);
    let context: TenantContext;
    try {
      context = await this.#taskContext(run, tenantId, storedAt);
    } catch (err) {
      this.#retryTask(seq, attempts, err instanceof Error ? err.message : "control plane unavailable", false);
      return;
    }
    const { settings } = context;
    const text = (await this.#openMessage(row)).text;
    const subjectHash = this.#getMeta("subject_hash") ?? "";
    // Opt-out/in and help keywords are answered by the consent rules and never reach the AI.
    if (classifyKeyword(text)) {
      let keyword: Awaited<ReturnType<typeof applyKeyword>>;
      try {
        keyword = await applyKeyword(this.env, {
          tenantId,
          channelId: this.#getMeta("channel_id") ?? "",
          channelType: (this.#getMeta("channel_type") ?? "custom") as ChannelType,
          subjectHash,
          providerMessageId: String(row.provider_message_id ?? row.id),
          text,
        });
      } catch (err) {
        this.#retryTask(seq, attempts, err instanceof Error ? err.message : "consent store unavailable", false);
        return;
      }
      if (keyword) {
        await this.#finishKeyword(seq, keyword.reply, String(row.provider_message_id ?? row.id));
        return;
      }
    }
    // Restrictions and age only matter to a reply: with replies off (or the plan canceled) the decision is already known.
    let restricted = false;
    let minor = false;
    if (repliesOn(context)) {
      try {
        ({ restricted, minor } = await this.#taskConsent(run, tenantId, subjectHash, storedAt));
      } catch (err) {
        this.#retryTask(seq, attempts, err instanceof Error ? err.message : "consent store unavailable", false);
        return;
      }
    }
    const special = detectSpecialCategories(text);
    const flagged = this.#transaction(() => {
      if (settings.ai.intent && row.intent === null) {
        this.#labelIntent(seq, text, Date.now());
        // Staff see the label (the row's new updated_at brings it to their sockets); the index row does not change.
        this.#staffChanged();
      }
      // Ingest flags special categories before its ack; this covers tasks queued before it did.
      return special.length > 0 && this.#flagSpecialCategory();
    });
    // The flag gates viewers' access (read from D1): it reaches the index before anything else happens.
    if (flagged) await this.#syncIndexIfUrgent();
    const early = preModelDecision({
      settings,
      planStatus: context.planStatus,
      conversationStatus: this.#getMeta("status") ?? "open",
      text,
      specialCategories: special,
      restricted,
      minorWithoutAuthorization: minor,
    });
    if (early) {
      await this.#finishTask(seq, early, settings);
      return;
    }
    // The budget is charged once per message, not per retry of the same message.
    if (attempts === 0 && !(await this.#takeBudget(tenantId, settings))) {
      await this.#finishTask(seq, { outcome: "skipped", reason: "budget_exhausted" }, settings);
      return;
    }
    const knowledge = await this.#loadKnowledge(tenantId);
    const vault = await this.#loadVault();
    const turns = await this.#redactedTurns(seq, settings.contextMessages, context.defaultCountry, vault);
    const best = rankKnowledge(text, knowledge).ranked.slice(0, settings.knowledgeEntries).map((r) => r.entry);
    const provider = this.#provider(settings, knowledge);
    let decision: Decision;
    try {
      const result = await provider.reply({ persona: settings.persona, model: settings.model, turns, knowledge: best });
      decision = postModelDecision({ settings, result, vault, knowledge: best, defaultCountry: context.defaultCountry });
    } catch (err) {
      const retryable = !(err instanceof ProviderError) || err.retryable;
      if (retryable && attempts + 1 < AI_MAX_ATTEMPTS) {
        this.#retryTask(seq, attempts, err instanceof Error ? err.message : "provider failed", true);
        return;
      }
      decision = { outcome: "handoff", reason: "provider_failing" };
    }
    await this.#finishTask(seq, decision, settings);
  }

  /** Stores the intent label of message `seq` (call inside a storage step). */
  #labelIntent(seq: number, text: string, at: number): void {
    this.#sql.exec("UPDATE messages SET intent = ?, updated_at = ? WHERE seq = ?", classifyIntent(text), at, seq);
  }

  /** Flags the conversation's special category unless it already is (call inside a storage step); true: flagged now. */
  #flagSpecialCategory(): boolean {
    if (this.#getMeta("special_category") === "1") return false;
    this.#setMeta("special_category", "1");
    this.#bumpVersion();
    this.#indexUrgent();
    return true;
  }

  /** Records a still-pending task's decision (call inside a storage step); false when it was decided already. */
  #markDecided(seq: number, decision: Decision, at: number): boolean {
    return (
      this.#sql.exec(
        "UPDATE tasks SET state = 'done', outcome = ?, reason = ?, health_key = ?, decided_at = ?, last_error = NULL WHERE message_seq = ? AND state = 'pending'",
        decision.outcome,
        decision.reason,
        randomToken(16),
        at,
        seq,
      ).rowsWritten > 0
    );
  }

  #retryTask(seq: number, attempts: number, error: string, countsAsAttempt: boolean): void {
    const next = attempts + (countsAsAttempt ? 1 : 0);
    const wait = Math.min(60_000, 1_000 * 2 ** next);
    this.#sql.exec("UPDATE tasks SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE message_seq = ?", next, Date.now() + wait, error.slice(0, 200), seq);
  }

  /** Records the outcome and queues what it sends, in one storage step (a retried alarm finds the task done). */
  async #finishTask(seq: number, decision: Decision, settings: Settings): Promise<void> {
    const reply = decision.outcome === "sent" && decision.replyText ? await this.#sealOutbound(decision.replyText) : null;
    const notice = decision.outcome === "handoff" && settings.handoffMessage ? await this.#sealOutbound(settings.handoffMessage) : null;
    const queued = this.#transaction(() => {
      const now = Date.now();
      // Only a still-pending task is decided (a retried alarm finds it done and changes nothing).
      if (!this.#markDecided(seq, decision, now)) return false;
      let sends = false;
      if (reply) {
        this.#queueOutbound(reply, "ai", null, now);
        sends = true;
      }
      let handoff = false;
      if (decision.outcome === "handoff" && this.#getMeta("status") !== "handoff") {
        this.#setMeta("status", "handoff");
        handoff = true;
        if (notice) {
          this.#queueOutbound(notice, "system", null, now);
          sends = true;
        }
      }
      // A decision that sends nothing and changes no status leaves the conversation (and its index row) as it was.
      if (sends || handoff) this.#bumpVersion();
      if (handoff) this.#indexUrgent();
      return sends;
    });
    if (queued) await this.#scheduleAlarm();
    // A status change is pushed now; activity and counts go with the alarm run's single index push.
    await this.#syncIndexIfUrgent();
  }

  /** A keyword message: its confirmation is queued and the task closed without an AI decision (nothing is counted). */
  async #finishKeyword(seq: number, reply: string, providerMessageId: string): Promise<void> {
    const sealed = await this.#sealOutbound(reply);
    const clientKey = `keyword:${providerMessageId}`;
    this.#transaction(() => {
      const claimed = this.#sql.exec(
        "UPDATE tasks SET state = 'done', outcome = NULL, reason = 'keyword', reported = 1, decided_at = ? WHERE message_seq = ? AND state = 'pending'",
        Date.now(),
        seq,
      );
      if (claimed.rowsWritten === 0) return;
      if (!this.#sql.exec("SELECT 1 FROM messages WHERE client_key = ?", clientKey).toArray()[0]) {
        this.#queueOutbound(sealed, "system", null, Date.now(), clientKey);
      }
      this.#bumpVersion();
    });
    await this.#scheduleAlarm();
  }

  /** Appends an outbound message and its outbox entry (call inside a storage transaction). */
  #queueOutbound(sealed: SealedMessage, author: MessageAuthor, authorId: string | null, now: number, clientKey: string | null = null): number {
    this.#outboundQueued++;
    // The rowid alias `seq` takes the next number, as for inbound messages.
    const seq = Number(
      this.#sql
        .exec(
          `INSERT INTO messages (id, direction, author, author_id, body, media, provider_message_id, status, attempts, client_key, enc, created_at, updated_at)
           VALUES (?, 'outbound', ?, ?, ?, '[]', NULL, 'queued', 0, ?, 1, ?, ?) RETURNING seq`,
          sealed.id,
          author,
          authorId,
          sealed.body,
          clientKey,
          now,
          now,
        )
        .one().seq,
    );
    this.#sql.exec("INSERT INTO outbox (message_seq, next_attempt_at) VALUES (?, ?)", seq, now);
    this.#setMeta("last_activity_at", String(now));
    return seq;
  }

  /**
   * Statements pushing decided outcomes to the agent-health counters (one
   * batch per alarm run). A random key per decision makes the push idempotent:
   * a key counts only when its insert is new (an alarm retried after a lost
   * answer counts nothing twice).
   */
  #healthStatements(): { statements: D1PreparedStatement[]; seqs: number[] } | null {
    const tenantId = this.#getMeta("tenant_id");
    if (!tenantId) return null;
    const rows = this.#sql
      .exec("SELECT message_seq, outcome, reason, health_key, decided_at FROM tasks WHERE state = 'done' AND reported = 0 ORDER BY message_seq LIMIT ?", HEALTH_ROWS_PER_ALARM)
      .toArray();
    if (rows.length === 0) return null;
    const groups = new Map<string, { day: string; outcome: string; reason: string; keys: string[] }>();
    for (const row of rows) {
      const day = new Date(Number(row.decided_at)).toISOString().slice(0, 10);
      const id = `${day}\u0000${String(row.outcome)}\u0000${String(row.reason)}`;
      const group = groups.get(id) ?? { day, outcome: String(row.outcome), reason: String(row.reason), keys: [] };
      group.keys.push(String(row.health_key));
      groups.set(id, group);
    }
    const now = Date.now();
    const statements: D1PreparedStatement[] = [];
    for (const group of groups.values()) {
      for (let i = 0; i < group.keys.length; i += HEALTH_KEYS_PER_STATEMENT) {
        const keys = group.keys.slice(i, i + HEALTH_KEYS_PER_STATEMENT);
        statements.push(
          this.env.DB.prepare(`INSERT INTO agent_health_keys (key, created_at) VALUES ${keys.map(() => "(?, ?)").join(", ")} ON CONFLICT(key) DO NOTHING`).bind(
            ...keys.flatMap((k) => [k, now]),
          ),
          // changes(): how many of those keys were new — only they are counted.
          this.env.DB.prepare(
            `INSERT INTO agent_health (tenant_id, day, outcome, reason, count) SELECT ?, ?, ?, ?, changes() WHERE changes() > 0
             ON CONFLICT(tenant_id, day, outcome, reason) DO UPDATE SET count = count + excluded.count`,
          ).bind(tenantId, group.day, group.outcome, group.reason),
        );
      }
    }
    return { statements, seqs: rows.map((r) => Number(r.message_seq)) };
  }

  async #loadTenantContext(tenantId: string): Promise<TenantContext> {
    const row = await this.env.DB.prepare(
      "SELECT t.plan_status, t.default_country, s.data FROM tenants t LEFT JOIN settings s ON s.tenant_id = t.id WHERE t.id = ?",
    )
      .bind(tenantId)
      .first<{ plan_status: string; default_country: string; data: string | null }>();
    if (!row) throw new Error("tenant not found");
    return { settings: parseSettings(row.data), planStatus: row.plan_status, defaultCountry: row.default_country };
  }

  /** Charges one provider call against today's budget; false when it is spent. */
  async #takeBudget(tenantId: string, settings: Settings): Promise<boolean> {
    const day = new Date().toISOString().slice(0, 10);
    const [, update] = await this.env.DB.batch([
      this.env.DB.prepare("INSERT INTO ai_usage (tenant_id, day, calls, tokens) VALUES (?, ?, 0, 0) ON CONFLICT DO NOTHING").bind(tenantId, day),
      this.env.DB.prepare("UPDATE ai_usage SET calls = calls + 1 WHERE tenant_id = ? AND day = ? AND calls < ?").bind(tenantId, day, settings.dailyAiCallBudget),
    ]);
    return (update?.meta.changes ?? 0) === 1;
  }

  async #loadKnowledge(tenantId: string): Promise<KnowledgeEntry[]> {
    const { results } = await this.env.DB.prepare("SELECT id, question, answer FROM knowledge_entries WHERE tenant_id = ? ORDER BY position LIMIT ?")
      .bind(tenantId, MAX_KNOWLEDGE_ENTRIES)
      .all<KnowledgeEntry>();
    return results;
  }

  #provider(settings: Settings, knowledge: KnowledgeEntry[]): AiProvider {
    const key = this.env.OPENAI_API_KEY ?? "";
    if (effectiveProvider(settings, key !== "") === "openai" && key !== "") {
      return new OpenAiProvider({ apiKey: key, baseURL: this.env.OPENAI_BASE_URL, timeoutMs: Number(this.env.AI_TIMEOUT_MS) || 20_000 });
    }
    return new LocalProvider(knowledge);
  }

  /** The conversation's placeholder vault (originals are stored encrypted under the subject key). */
  async #loadVault(): Promise<PlaceholderVault> {
    const snapshot: Record<string, string> = {};
    const conversationId = this.#getMeta("conversation_id") ?? "";
    for (const row of this.#sql.exec("SELECT placeholder, original FROM vault").toArray()) {
      const original = await this.#open(`vault:${conversationId}:${String(row.placeholder)}`, String(row.original));
      if (original !== null) snapshot[String(row.placeholder)] = original;
    }
    return new PlaceholderVault(snapshot);
  }

  /**
   * The last `limit` messages up to `uptoSeq`, redacted with the conversation's
   * vault so a value keeps its placeholder across messages and calls.
   */
  async #redactedTurns(uptoSeq: number, limit: number, defaultCountry: string, vault: PlaceholderVault): Promise<Turn[]> {
    const rows = this.#sql
      .exec("SELECT * FROM messages WHERE seq <= ? ORDER BY seq DESC LIMIT ?", uptoSeq, limit)
      .toArray()
      .reverse();
    const known = new Set(Object.keys(vault.toJSON()));
    const turns: Turn[] = [];
    for (const r of rows) {
      const { text } = await this.#openMessage(r);
      turns.push({ role: String(r.direction) === "inbound" ? "user" : "assistant", content: redact(text, { vault, defaultCountry }).text });
    }
    const fresh = Object.entries(vault.toJSON()).filter(([placeholder]) => !known.has(placeholder));
    if (fresh.length > 0) {
      const key = await this.#liveSubjectKey();
      const conversationId = this.#getMeta("conversation_id") ?? "";
      const sealed = await Promise.all(fresh.map(async ([placeholder, original]) => [placeholder, await this.#seal(key, `vault:${conversationId}:${placeholder}`, original)] as const));
      for (const [placeholder, original] of sealed) this.#sql.exec("INSERT OR IGNORE INTO vault (placeholder, original) VALUES (?, ?)", placeholder, original);
    }
    return turns;
  }

  // ---------------------------------------------------------------- outbound

  /** After queueing a task stored at `storedAt`: under load an alarm is usually set early enough already. */
  async #alarmForNewTask(storedAt: number, urgent: boolean): Promise<void> {
    // The new task is the earliest thing that can be due (older work keeps its own, earlier, alarm).
    // Replies on: an idle conversation decides at once, a busy one a window after its last run.
    // Replies off: the message opens a window (or joins the one already open).
    const due = this.#quiet(urgent) ? Math.max(storedAt, this.#alarmStartedAt) + QUIET_COALESCE_MS : Math.max(storedAt, this.#alarmStartedAt + ALARM_COALESCE_MS);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > due) await this.ctx.storage.setAlarm(due);
  }

  /** Whether decisions may wait QUIET_COALESCE_MS: the tenant's replies are off and no keyword message waits (`urgent`). */
  #quiet(urgent: boolean): boolean {
    return !urgent && quietTenants.get(this.#getMeta("tenant_id") ?? "") === true;
  }

  /** Least time from the last run's start to the next decision run. */
  #coalesceMs(urgent: boolean): number {
    return this.#quiet(urgent) ? QUIET_COALESCE_MS : ALARM_COALESCE_MS;
  }

  async #scheduleAlarm(at?: number): Promise<void> {
    const head = this.#sql.exec("SELECT next_attempt_at FROM outbox ORDER BY message_seq LIMIT 1").toArray()[0];
    const pending = this.#sql.exec("SELECT message_seq, next_attempt_at FROM tasks WHERE state = 'pending' ORDER BY message_seq LIMIT 1").toArray()[0];
    // AI decisions coalesce under load: at most one run per window decides what arrived meanwhile
    // (an idle object decides at once). Deliveries keep their own times. Tasks are decided in
    // sequence order, so a pending head at or below #urgentSeq means a keyword message waits.
    const task = pending
      ? { next_attempt_at: Math.max(Number(pending.next_attempt_at), this.#alarmStartedAt + this.#coalesceMs(Number(pending.message_seq) <= this.#urgentSeq)) }
      : undefined;
    const unreported = this.#sql.exec("SELECT 1 FROM tasks WHERE state = 'done' AND reported = 0 LIMIT 1").toArray()[0];
    const indexBehind = Number(this.#getMeta("version") ?? 0) > Number(this.#getMeta("index_version") ?? 0);
    const retryLater = indexBehind || unreported ? Date.now() + INDEX_RETRY_MS : undefined;
    const candidates = [at, head ? Number(head.next_attempt_at) : undefined, task ? Number(task.next_attempt_at) : undefined, retryLater].filter(
      (v): v is number => v !== undefined,
    );
    if (candidates.length === 0) return;
    const next = Math.min(...candidates);
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > next) await this.ctx.storage.setAlarm(next);
  }

  /**
   * Delivers due messages strictly in sequence order, so the user never sees
   * replies out of order. One drain at a time: a caller arriving while one runs
   * waits for it (it picks up whatever became due meanwhile) instead of racing it.
   */
  #drainOutbox(): Promise<void> {
    this.#outboxDrain ??= this.#drainOutboxOnce().finally(() => {
      this.#outboxDrain = null;
    });
    return this.#outboxDrain;
  }

  async #drainOutboxOnce(): Promise<void> {
    for (let i = 0; i < MAX_SENDS_PER_ALARM; i++) {
      const head = this.#sql.exec("SELECT message_seq, next_attempt_at FROM outbox ORDER BY message_seq LIMIT 1").toArray()[0];
      if (!head || Number(head.next_attempt_at) > Date.now()) return;
      await this.#deliver(Number(head.message_seq));
    }
  }

  async #deliver(seq: number): Promise<void> {
    const row = this.#sql.exec("SELECT * FROM messages WHERE seq = ?", seq).toArray()[0];
    if (!row || String(row.status) !== "queued") {
      this.#sql.exec("DELETE FROM outbox WHERE message_seq = ?", seq);
      return;
    }
    // Count the attempt before calling out: a crash mid-call still uses up an attempt.
    const attempts = Number(row.attempts) + 1;
    this.#sql.exec("UPDATE messages SET attempts = ?, updated_at = ? WHERE seq = ?", attempts, Date.now(), seq);
    const result = await this.#callProvider(row);
    this.#transaction(() => {
      const now = Date.now();
      // A status callback may have landed while we awaited the provider: never move a message backwards.
      const current = String(this.#sql.exec("SELECT status FROM messages WHERE seq = ?", seq).one().status) as MessageStatus;
      if (result.ok) {
        const target: MessageStatus = result.providerStatus === "delivered" ? "delivered" : "sent";
        const next = current !== "queued" && STATUS_RANK[current] >= STATUS_RANK[target] ? current : target;
        this.#sql.exec(
          "UPDATE messages SET status = ?, provider_message_id = ?, error = CASE WHEN ? = 'failed' THEN error ELSE NULL END, updated_at = ? WHERE seq = ?",
          next,
          result.providerMessageId,
          next,
          now,
          seq,
        );
        this.#sql.exec("DELETE FROM outbox WHERE message_seq = ?", seq);
        if (result.providerMessageId) {
          const early = this.#sql.exec("SELECT status, error FROM early_status WHERE provider_message_id = ?", result.providerMessageId).toArray()[0];
          if (early) {
            this.#advanceStatus(seq, next, String(early.status) as MessageStatus, early.error === null ? null : String(early.error));
            this.#sql.exec("DELETE FROM early_status WHERE provider_message_id = ?", result.providerMessageId);
          }
        }
      } else if (current !== "queued") {
        // The provider reported on this message meanwhile, so it did take it: do not resend.
        this.#sql.exec("DELETE FROM outbox WHERE message_seq = ?", seq);
      } else if (result.retryable && attempts < MAX_SEND_ATTEMPTS) {
        const wait = Math.max(result.retryAfterMs ?? 0, sendBackoffMs(attempts));
        this.#sql.exec("UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE message_seq = ?", now + wait, result.reason, seq);
        this.#sql.exec("UPDATE messages SET error = ?, updated_at = ? WHERE seq = ?", result.reason, now, seq);
      } else {
        const reason = result.retryable ? `${result.reason} (gave up after ${attempts} attempts)` : result.reason;
        this.#sql.exec("UPDATE messages SET status = 'failed', error = ?, updated_at = ? WHERE seq = ?", reason, now, seq);
        this.#sql.exec("DELETE FROM outbox WHERE message_seq = ?", seq);
      }
      this.#bumpVersion();
    });
  }

  async #callProvider(row: Row): Promise<SendResult> {
    let channel: LoadedChannel | null;
    try {
      channel = await this.#loadChannel();
    } catch {
      return { ok: false, retryable: true, reason: "channel_unavailable" };
    }
    if (!channel) return { ok: false, retryable: false, reason: "channel_deleted" };
    const conversationId = this.#getMeta("conversation_id") ?? "";
    const view = await this.#conversationView();
    const { text } = await this.#openMessage(row);
    if (!view || view.address === ERASED_TEXT || text === ERASED_TEXT) return { ok: false, retryable: false, reason: "subject_erased" };
    const message: OutboundMessage = {
      messageId: String(row.id),
      conversationId,
      channelId: channel.id,
      to: view.address,
      text,
      createdAt: Number(row.created_at),
    };
    const origin = this.env.PUBLIC_BASE_URL || this.#getMeta("public_origin") || "";
    const options = {
      twilioApiBase: this.env.TWILIO_API_BASE,
      whatsappApiBase: this.env.WHATSAPP_API_BASE,
      whatsappApiVersion: this.env.WHATSAPP_API_VERSION,
      statusCallbackUrl: origin
        ? `${origin.replace(/\/$/, "")}/webhooks/twilio/${channel.id}/status?conversation=${encodeURIComponent(conversationId)}&message=${encodeURIComponent(message.messageId)}`
        : undefined,
    };
    switch (channel.type) {
      case "twilio_sms":
        return sendTwilio(message, channel.config, channel.secrets, false, options);
      case "twilio_whatsapp":
        return sendTwilio(message, channel.config, channel.secrets, true, options);
      case "whatsapp_cloud":
        return sendWhatsApp(message, channel.config, channel.secrets, options);
      case "custom":
        return sendCustom(message, channel.config, channel.secrets, options);
      case "web_chat": {
        const pushed = chatView(await this.#view({ ...row, status: "sent" }));
        const delivered = this.#broadcast({ type: "message", message: pushed });
        // Not connected right now: the visitor gets it in the history on reconnect.
        return { ok: true, providerMessageId: null, providerStatus: delivered > 0 ? "delivered" : "sent" };
      }
    }
  }

  #loadChannel(): Promise<LoadedChannel | null> {
    const now = Date.now();
    if (!this.#channelCache || now - this.#channelCache.at > 60_000) {
      const channelId = this.#getMeta("channel_id") ?? "";
      const tenantId = this.#getMeta("tenant_id") ?? "";
      const value = (async (): Promise<LoadedChannel | null> => {
        const row = await this.env.DB.prepare(
          "SELECT id, type, config, secrets FROM channels WHERE id = ? AND tenant_id = ? AND status = 'active'",
        )
          .bind(channelId, tenantId)
          .first<{ id: string; type: ChannelType; config: string; secrets: string }>();
        if (!row) return null;
        return {
          id: row.id,
          type: row.type,
          config: storedConfigSchema.parse(JSON.parse(row.config)),
          secrets: await openChannelSecrets(this.env, row.id, row.secrets),
        };
      })();
      value.catch(() => {
        this.#channelCache = null;
      });
      this.#channelCache = { at: now, value };
    }
    return this.#channelCache.value;
  }
}

/** What a web-chat visitor sees of a message: no internal ids, statuses or errors. */
function chatView(message: MessageView) {
  return { id: message.id, seq: message.seq, from: message.direction === "inbound" ? "you" : message.author, text: message.text, createdAt: message.createdAt };
}

/** A conversation object's storage as stored (bodies sealed), for backups. */
export interface ConversationSnapshot {
  version: 1;
  meta: Record<string, string>;
  messages: Record<string, string | number | null>[];
  vault: { placeholder: string; original: string }[];
}

function plainRow(row: Record<string, SqlStorageValue>): Record<string, string | number | null> {
  const out: Record<string, string | number | null> = {};
  for (const [k, v] of Object.entries(row)) out[k] = v instanceof ArrayBuffer ? null : v;
  return out;
}

/** A message id with its body sealed under the subject key. */
interface SealedMessage {
  id: string;
  body: string;
}

const sealedBodySchema = z.object({
  t: z.string(),
  m: z.array(z.object({ url: z.string().optional(), providerMediaId: z.string().optional(), contentType: z.string().optional(), filename: z.string().optional() })),
});

/** What one alarm run read from D1 for its tasks, and when each read began. */
interface TaskRun {
  context: { readFrom: number; value: TenantContext } | null;
  consent: { readFrom: number; value: { restricted: boolean; minor: boolean } } | null;
}

/** Whether automatic replies can be sent: on in the settings, and the plan not canceled. */
function repliesOn(context: TenantContext): boolean {
  return context.settings.ai.replies && context.planStatus !== "canceled";
}

interface TenantContext {
  settings: Settings;
  planStatus: string;
  defaultCountry: string;
}

interface LoadedChannel {
  id: string;
  type: ChannelType;
  config: StoredConfig;
  secrets: Awaited<ReturnType<typeof openChannelSecrets>>;
}
