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
    /** Stripe billing (d1/schema-billing.ts): the tenant's Stripe customer and subscription ids. */
    stripeCustomerId: text("stripe_customer_id"),
    stripeSubscriptionId: text("stripe_subscription_id"),
    /** End of the paid period (Unix ms), from the latest subscription/invoice event. */
    planPeriodEnd: integer("plan_period_end"),
    /** `created` (Unix ms) and id of the Stripe event that last set plan_status: older events never override it. */
    planEventAt: integer("plan_event_at"),
    planEventId: text("plan_event_id"),
    defaultCountry: text("default_country").notNull().default("IT"),
    /** Per-tenant HMAC key for subject hashes and conversation ids, wrapped by MASTER_KEY. */
    hashKey: text("hash_key").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [uniqueIndex("tenants_slug_unique").on(t.slug), index("tenants_stripe_customer_idx").on(t.stripeCustomerId), index("tenants_stripe_subscription_idx").on(t.stripeSubscriptionId)],
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

// ---------------------------------------------------------------- consent and outbound compliance (issue 4)

/**
 * Notice texts exactly as shown to people. Versioned per (tenant, key, locale);
 * a consent names the version it was given on. Rows are never changed.
 */
export const notices = sqliteTable(
  "notices",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    /** Series the versions belong to (`recording`, `cookies`, or a tenant's own key). */
    key: text("key").notNull(),
    /** JSON array of the consent purposes the notice covers. */
    purposes: text("purposes").notNull(),
    kind: text("kind", { enum: ["consent", "withdrawal"] }).notNull(),
    locale: text("locale").notNull(),
    version: integer("version").notNull(),
    text: text("text").notNull(),
    /** SHA-256 hex of the UTF-8 text. */
    sha256: text("sha256").notNull(),
    source: text("source", { enum: ["default", "tenant"] }).notNull(),
    createdAt: integer("created_at").notNull(),
    createdBy: text("created_by"),
  },
  (t) => [uniqueIndex("notices_version_unique").on(t.tenantId, t.key, t.locale, t.version), index("notices_tenant_idx").on(t.tenantId, t.createdAt)],
);

/**
 * The consent log. Append-only: D1 triggers (in the migration) abort any UPDATE
 * or DELETE. Subjects appear only as keyed hashes; the web-form IP (evidence) is
 * sealed under MASTER_KEY, bound to the entry id, in `consent_evidence`.
 */
export const consents = sqliteTable(
  "consents",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    id: text("id").notNull(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    subjectHash: text("subject_hash").notNull(),
    purpose: text("purpose").notNull(),
    status: text("status", { enum: ["granted", "withdrawn"] }).notNull(),
    method: text("method", { enum: ["channel_keyword", "web_form", "api", "banner"] }).notNull(),
    noticeId: text("notice_id"),
    evidenceMessageId: text("evidence_message_id"),
    /**
     * Legacy: the evidence IP's envelope, written by versions before `consent_evidence`
     * (migration 0005 copied every one there). New entries leave it null.
     */
    evidenceIp: text("evidence_ip"),
    channelId: text("channel_id"),
    expiresAt: integer("expires_at"),
    actorType: text("actor_type", { enum: ["api_key", "channel"] }).notNull(),
    actorId: text("actor_id"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    uniqueIndex("consents_id_unique").on(t.id),
    index("consents_subject_idx").on(t.tenantId, t.subjectHash, t.purpose, t.seq),
    index("consents_tenant_idx").on(t.tenantId, t.seq),
    // One entry per (channel message, purpose): a retried keyword hook never appends twice.
    // API entries have no channel id, and NULLs never collide in a unique index.
    uniqueIndex("consents_keyword_unique").on(t.tenantId, t.channelId, t.evidenceMessageId, t.purpose),
  ],
);

/**
 * The IP a web form or banner choice was sent from, for the consent entry of
 * the same id: an AES-256-GCM envelope under MASTER_KEY, bound to
 * `consent-ip:<id>`. Kept beside the append-only log rather than in it, so a
 * MASTER_KEY rotation can re-wrap it (the log's triggers refuse any UPDATE).
 */
export const consentEvidence = sqliteTable("consent_evidence", {
  /** The consent entry's id. */
  id: text("id").primaryKey(),
  tenantId: text("tenant_id").notNull().references(() => tenants.id),
  ip: text("ip").notNull(),
});

/** What is known of a subject's age (latest declaration wins). A declared age is stored as the latest possible birth date. */
export const subjectProfiles = sqliteTable(
  "subject_profiles",
  {
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    subjectHash: text("subject_hash").notNull(),
    /** `YYYY-MM-DD`. */
    birthDate: text("birth_date").notNull(),
    birthDateSource: text("birth_date_source", { enum: ["birth_date", "declared_age"] }).notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.subjectHash] })],
);

/** The tenant's copy of the Italian opposition register (RPO): when it was consulted. */
export const rpoRegisters = sqliteTable("rpo_registers", {
  tenantId: text("tenant_id").primaryKey().references(() => tenants.id),
  consultedAt: integer("consulted_at").notNull(),
  uploadedAt: integer("uploaded_at").notNull(),
  numberCount: integer("number_count").notNull(),
});

/** Numbers on the tenant's RPO copy, as keyed subject hashes of `tel:+E.164`. */
export const rpoNumbers = sqliteTable(
  "rpo_numbers",
  {
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    subjectHash: text("subject_hash").notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.subjectHash] })],
);

/** Outbound campaigns (marketing messages and telemarketing lists). */
export const campaigns = sqliteTable(
  "campaigns",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    name: text("name").notNull(),
    purpose: text("purpose").notNull(),
    channelId: text("channel_id"),
    locale: text("locale").notNull(),
    /** The business's message template (no personal data: variables are filled per recipient and not kept). */
    template: text("template").notNull(),
    /** Next recipient position: batches reserve blocks of positions atomically. */
    nextPosition: integer("next_position").notNull().default(0),
    createdAt: integer("created_at").notNull(),
    createdBy: text("created_by"),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("campaigns_tenant_idx").on(t.tenantId, t.createdAt)],
);

/** One decision per campaign recipient (keyed subject hash, never the address). */
export const campaignRecipients = sqliteTable(
  "campaign_recipients",
  {
    campaignId: text("campaign_id").notNull().references(() => campaigns.id),
    position: integer("position").notNull(),
    subjectHash: text("subject_hash").notNull(),
    decision: text("decision").notNull(),
    /** Why a send was allowed (`consent`, `soft_spam`, `public_directory`) or why it failed. */
    detail: text("detail"),
    conversationId: text("conversation_id"),
    messageId: text("message_id"),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.campaignId, t.position] }),
    uniqueIndex("campaign_recipients_subject_unique").on(t.campaignId, t.subjectHash),
    index("campaign_recipients_decision_idx").on(t.campaignId, t.decision),
  ],
);

/** Call recordings: started only with every participant's consent; audio encrypted in R2. */
export const recordings = sqliteTable(
  "recordings",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    conversationId: text("conversation_id").notNull(),
    status: text("status", { enum: ["recording", "stored"] }).notNull(),
    /** JSON array of the participants' keyed subject hashes. */
    participantHashes: text("participant_hashes").notNull(),
    /** JSON array of the consent entry ids the recording relies on. */
    consentIds: text("consent_ids").notNull(),
    objectKey: text("object_key"),
    /** The object's data key, wrapped by MASTER_KEY and bound to the object key. */
    dataKey: text("data_key"),
    dataKeyId: text("data_key_id"),
    contentType: text("content_type"),
    size: integer("size"),
    startedAt: integer("started_at").notNull(),
    uploadedAt: integer("uploaded_at"),
  },
  (t) => [index("recordings_conversation_idx").on(t.tenantId, t.conversationId, t.startedAt)],
);

/** Synthetic voice models, registered only under a current `voice_clone` consent of the voice's owner. */
export const voiceModels = sqliteTable(
  "voice_models",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull().references(() => tenants.id),
    subjectHash: text("subject_hash").notNull(),
    name: text("name").notNull(),
    status: text("status", { enum: ["active", "deleting"] }).notNull(),
    consentId: text("consent_id").notNull(),
    /** The consent's end: the model may not outlive it. */
    expiresAt: integer("expires_at"),
    /** JSON of non-personal metadata (provider, language, model reference). */
    metadata: text("metadata").notNull(),
    objectKey: text("object_key").notNull(),
    dataKey: text("data_key").notNull(),
    dataKeyId: text("data_key_id").notNull(),
    contentType: text("content_type").notNull(),
    size: integer("size").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("voice_models_subject_idx").on(t.tenantId, t.subjectHash), index("voice_models_tenant_idx").on(t.tenantId, t.createdAt)],
);

/** Everything deleted and why (no identifiers: subjects only as keyed hashes). Shared with retention and erasure. */
export const deletionLog = sqliteTable(
  "deletion_log",
  {
    id: text("id").primaryKey(),
    tenantId: text("tenant_id").notNull(),
    targetType: text("target_type").notNull(),
    targetId: text("target_id").notNull(),
    category: text("category").notNull(),
    reason: text("reason").notNull(),
    subjectHash: text("subject_hash"),
    deletedAt: integer("deleted_at").notNull(),
  },
  (t) => [index("deletion_log_tenant_idx").on(t.tenantId, t.deletedAt)],
);
