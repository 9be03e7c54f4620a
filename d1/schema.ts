/**
 * D1 control plane (drizzle-orm). Times are Unix milliseconds. No message text
 * and no raw end-user identifiers are stored here: subjects appear only as
 * keyed hashes.
 */
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/** Key roles, from most to least privileged. */
export const ROLES = ["owner", "admin", "agent", "viewer"] as const;
export type Role = (typeof ROLES)[number];

/** Channel kinds Parley speaks. */
export const CHANNEL_TYPES = ["twilio_sms", "twilio_whatsapp", "whatsapp_cloud", "custom", "web_chat"] as const;
export type ChannelType = (typeof CHANNEL_TYPES)[number];

/** Conversation states. */
export const CONVERSATION_STATUSES = ["open", "handoff", "closed"] as const;
export type ConversationStatus = (typeof CONVERSATION_STATUSES)[number];

export const tenants = sqliteTable(
  "tenants",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    slug: text("slug").notNull(),
    status: text("status", { enum: ["active", "suspended"] }).notNull().default("active"),
    planStatus: text("plan_status", { enum: ["none", "active", "past_due", "canceled"] }).notNull().default("none"),
    defaultCountry: text("default_country").notNull().default("IT"),
    /** Per-tenant HMAC key for subject hashes and conversation ids, wrapped by MASTER_KEY. */
    hashKey: text("hash_key").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [uniqueIndex("tenants_slug_unique").on(t.slug)],
);

export const apiKeys = sqliteTable(
  "api_keys",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    name: text("name").notNull(),
    /** First characters of the key, shown in listings so people can tell keys apart. */
    prefix: text("prefix").notNull(),
    /** SHA-256 hex of the whole key; the key itself is never stored. */
    keyHash: text("key_hash").notNull(),
    role: text("role", { enum: ROLES }).notNull(),
    /** JSON array of scope strings. */
    scopes: text("scopes").notNull(),
    createdAt: integer("created_at").notNull(),
    createdBy: text("created_by"),
    lastUsedAt: integer("last_used_at"),
    revokedAt: integer("revoked_at"),
  },
  (t) => [uniqueIndex("api_keys_hash_unique").on(t.keyHash), index("api_keys_tenant_idx").on(t.tenantId, t.createdAt)],
);

export const channels = sqliteTable(
  "channels",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    type: text("type", { enum: CHANNEL_TYPES }).notNull(),
    name: text("name").notNull(),
    /** JSON of non-secret settings (sender number, phone number id, callback URL…). */
    config: text("config").notNull(),
    /** AES-256-GCM envelope of the channel's secrets, bound to the channel id. */
    secrets: text("secrets").notNull(),
    status: text("status", { enum: ["active", "deleted"] }).notNull().default("active"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("channels_tenant_idx").on(t.tenantId, t.createdAt)],
);

export const settings = sqliteTable("settings", {
  tenantId: text("tenant_id").primaryKey().references(() => tenants.id),
  /** JSON object validated by the settings schema on read and write. */
  data: text("data").notNull(),
  updatedAt: integer("updated_at").notNull(),
});

export const conversations = sqliteTable(
  "conversations",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    channelId: text("channel_id").notNull(),
    /** Keyed hash of the end user's normalised address (never the address). */
    subjectHash: text("subject_hash").notNull(),
    status: text("status", { enum: CONVERSATION_STATUSES }).notNull(),
    createdAt: integer("created_at").notNull(),
    lastActivityAt: integer("last_activity_at").notNull(),
    messageCount: integer("message_count").notNull().default(0),
    /** Monotonic version from the conversation object; older updates never overwrite newer ones. */
    version: integer("version").notNull().default(0),
    /** 1 once a special category of data (GDPR art. 9) was detected: AI hands off, viewers cannot read it. */
    specialCategory: integer("special_category").notNull().default(0),
  },
  (t) => [
    index("conversations_tenant_activity_idx").on(t.tenantId, t.lastActivityAt, t.id),
    index("conversations_tenant_status_idx").on(t.tenantId, t.status, t.lastActivityAt),
    index("conversations_subject_idx").on(t.tenantId, t.subjectHash),
    index("conversations_channel_idx").on(t.channelId),
  ],
);

export const auditLog = sqliteTable(
  "audit_log",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    tenantId: text("tenant_id"),
    actorType: text("actor_type", { enum: ["api_key", "platform", "system", "provider"] }).notNull(),
    actorId: text("actor_id"),
    action: text("action").notNull(),
    targetType: text("target_type"),
    targetId: text("target_id"),
    /** JSON with ids and counts only: never message text or identifiers. */
    detail: text("detail"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("audit_tenant_idx").on(t.tenantId, t.id)],
);

export const securityLog = sqliteTable(
  "security_log",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    tenantId: text("tenant_id"),
    channelId: text("channel_id"),
    kind: text("kind").notNull(),
    reason: text("reason").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("security_tenant_idx").on(t.tenantId, t.id)],
);

/** Question/answer entries the AI answers from (the `local` provider ranks them; `openai` gets the best ones). */
export const knowledgeEntries = sqliteTable(
  "knowledge_entries",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    question: text("question").notNull(),
    answer: text("answer").notNull(),
    position: integer("position").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("knowledge_tenant_idx").on(t.tenantId, t.position)],
);

/** Agent-health counters: outcomes and reason codes per tenant and day. No content, no identifiers. */
export const agentHealth = sqliteTable(
  "agent_health",
  {
    tenantId: text("tenant_id").notNull(),
    day: text("day").notNull(),
    outcome: text("outcome", { enum: ["sent", "suppressed", "skipped", "silence", "handoff"] }).notNull(),
    reason: text("reason").notNull(),
    count: integer("count").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.day, t.outcome, t.reason] })],
);

/** Random per-decision keys so an at-least-once retry never counts a decision twice (pruned after a week). */
export const agentHealthKeys = sqliteTable(
  "agent_health_keys",
  {
    key: text("key").primaryKey(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("agent_health_keys_created_idx").on(t.createdAt)],
);

/** AI provider calls per tenant and day, for the daily budget. */
export const aiUsage = sqliteTable(
  "ai_usage",
  {
    tenantId: text("tenant_id").notNull(),
    day: text("day").notNull(),
    calls: integer("calls").notNull().default(0),
    /** Estimated provider tokens, for cost reporting. */
    tokens: real("tokens").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.day] })],
);
