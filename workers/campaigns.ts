/**
 * Outbound campaigns, decided per recipient against the consent log, opt-outs,
 * the RPO register, minors and DSR restrictions, and the tenant's RPO copy.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { newId } from "../lib/ids";
import {
  CAMPAIGN_DECISIONS,
  campaignMessage,
  decideRecipient,
  renderTemplate,
  RPO_MAX_AGE_DAYS,
  rpoRegisterProblem,
  type CampaignDecision,
} from "../lib/consent/campaign-rules";
import { ageOn, birthDateFromAge, birthDateProblem, youngest } from "../lib/consent/minors";
import { CAMPAIGN_PURPOSES, channelTypesForPurpose, stateOf, type CampaignPurpose } from "../lib/consent/purposes";
import type { ChannelType } from "../d1/schema";
import { auditStatement, keyAudit } from "./support/audit";
import { requireApiKey, requireScope } from "./support/auth";
import {
  knownAges,
  latestEntries,
  loadConsentTenant,
  minimumAgeOf,
  restrictedSubjects,
  subjectOf,
  type ConsentTenant,
} from "./support/consent-store";
import type { AppEnv, AuthContext } from "./support/context";
import { ApiError, conflict, notFound, zodIssues } from "./support/errors";
import { conversationStub } from "./support/ingest";
import { conversationIdFor } from "./support/keyring";
import { bearerSecurity, createRouter, decodeCursor, encodeCursor, errorResponses, publicOrigin } from "./support/router";

export const campaigns = createRouter();
campaigns.use("*", requireApiKey);

export const rpoRegister = createRouter();
rpoRegister.use("*", requireApiKey);

/** Recipients accepted per request (more go through `POST /v1/campaigns/:id/recipients`). */
export const AUDIENCE_LIMIT = 1000;
/** Recipients decided and sent together: bounded queries and memory. */
const CHUNK = 50;
/** Conversation objects contacted at once while sending. */
const SEND_CONCURRENCY = 10;
/** Longest message a recipient may receive (WhatsApp's limit). */
const MAX_MESSAGE_CHARS = 4096;
/** Numbers per RPO upload. */
export const RPO_UPLOAD_LIMIT = 5000;

const issue = (path: string, message: string) => new ApiError(400, "validation_error", "request is invalid", [{ path, message }]);

const AudienceEntry = z
  .object({
    address: z.string().min(1).max(320).openapi({ description: "Phone (E.164) for SMS, WhatsApp and telemarketing; e-mail for marketing_email" }),
    variables: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,39}$/, "variable names are letters, digits and _"), z.string().max(500))
      .optional()
      .openapi({ description: "Values of the template's {{variables}} (used for this message only, never stored)" }),
    existingCustomer: z.boolean().optional().openapi({ description: "marketing_email only: soft spam to an existing customer (art. 130(4))" }),
    publicDirectory: z.boolean().optional().openapi({ description: "telemarketing only: the number comes from a public directory (opt-out regime)" }),
    birthDate: z.iso.date().optional(),
    age: z.number().int().min(0).max(130).optional(),
  })
  .strict();
type AudienceEntryInput = z.infer<typeof AudienceEntry>;

const Audience = z.array(AudienceEntry).min(1).max(AUDIENCE_LIMIT);

const CreateCampaignBody = z
  .object({
    name: z.string().trim().min(1).max(100).optional(),
    purpose: z.enum(CAMPAIGN_PURPOSES),
    channelId: z.string().max(64).optional().openapi({ description: "Required for messaging purposes; telemarketing has none" }),
    locale: z.enum(["en", "it"]).default("en").openapi({ description: "Language of the opt-out line appended to every message" }),
    template: z.string().min(1).max(1600).optional().openapi({ description: "Plain text with {{name}}-style variables; required for messaging purposes" }),
    audience: Audience,
  })
  .strict()
  .superRefine((body, ctx) => {
    if (body.purpose === "telemarketing") {
      if (body.channelId) ctx.addIssue({ code: "custom", path: ["channelId"], message: "telemarketing calls are placed by people: no channel" });
    } else {
      if (!body.channelId) ctx.addIssue({ code: "custom", path: ["channelId"], message: "required for messaging campaigns" });
      if (!body.template) ctx.addIssue({ code: "custom", path: ["template"], message: "required for messaging campaigns" });
    }
    audienceRules(body.purpose, body.audience, ctx);
  });

function audienceRules(purpose: CampaignPurpose, audience: readonly AudienceEntryInput[], ctx: z.RefinementCtx): void {
  audience.forEach((entry, i) => {
    if (entry.existingCustomer && purpose !== "marketing_email") {
      ctx.addIssue({ code: "custom", path: ["audience", i, "existingCustomer"], message: "soft spam applies only to e-mail (art. 130(4))" });
    }
    if (entry.publicDirectory && purpose !== "telemarketing") {
      ctx.addIssue({ code: "custom", path: ["audience", i, "publicDirectory"], message: "only for telemarketing" });
    }
    if (entry.birthDate !== undefined && entry.age !== undefined) ctx.addIssue({ code: "custom", path: ["audience", i, "age"], message: "give birthDate or age, not both" });
  });
}

const CampaignSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    purpose: z.enum(CAMPAIGN_PURPOSES),
    channelId: z.string().nullable(),
    locale: z.enum(["en", "it"]),
    template: z.string(),
    counts: z.record(z.enum(CAMPAIGN_DECISIONS), z.number().int()),
    total: z.number().int(),
    createdAt: z.string(),
  })
  .openapi("Campaign");

const RecipientSchema = z
  .object({
    position: z.number().int().openapi({ description: "Index in the campaign's audience, across batches (0-based)" }),
    subjectHash: z.string(),
    decision: z.enum(CAMPAIGN_DECISIONS),
    detail: z.string().nullable().openapi({ description: "Basis of a send (consent, soft_spam, public_directory) or the failure code" }),
    conversationId: z.string().nullable(),
    messageId: z.string().nullable(),
  })
  .openapi("CampaignRecipient");

interface CampaignRow {
  id: string;
  tenant_id: string;
  name: string;
  purpose: CampaignPurpose;
  channel_id: string | null;
  locale: "en" | "it";
  template: string;
  next_position: number;
  created_at: number;
}

interface RecipientRow {
  position: number;
  subject_hash: string;
  decision: CampaignDecision;
  detail: string | null;
  conversation_id: string | null;
  message_id: string | null;
}

const recipientView = (row: RecipientRow): z.infer<typeof RecipientSchema> => ({
  position: row.position,
  subjectHash: row.subject_hash,
  decision: row.decision,
  detail: row.detail,
  conversationId: row.conversation_id,
  messageId: row.message_id,
});

async function campaignView(env: Env, row: CampaignRow): Promise<z.infer<typeof CampaignSchema>> {
  const { results } = await env.DB.prepare("SELECT decision, COUNT(*) AS n FROM campaign_recipients WHERE campaign_id = ? GROUP BY decision")
    .bind(row.id)
    .all<{ decision: CampaignDecision; n: number }>();
  const counts = Object.fromEntries(CAMPAIGN_DECISIONS.map((d) => [d, 0])) as Record<CampaignDecision, number>;
  let total = 0;
  for (const r of results) {
    counts[r.decision] = r.n;
    total += r.n;
  }
  return {
    id: row.id,
    name: row.name,
    purpose: row.purpose,
    channelId: row.channel_id,
    locale: row.locale,
    template: row.template,
    counts,
    total,
    createdAt: new Date(row.created_at).toISOString(),
  };
}

interface CampaignChannel {
  id: string;
  type: ChannelType;
}

async function campaignChannel(c: Context<AppEnv>, purpose: CampaignPurpose, channelId: string | null): Promise<CampaignChannel | null> {
  if (purpose === "telemarketing" || !channelId) return null;
  const row = await c.env.DB.prepare("SELECT id, type FROM channels WHERE id = ? AND tenant_id = ? AND status = 'active'")
    .bind(channelId, c.get("auth").tenantId)
    .first<{ id: string; type: ChannelType }>();
  if (!row) throw issue("channelId", "no such active channel");
  const allowed = channelTypesForPurpose(purpose);
  if (!allowed.includes(row.type)) throw issue("channelId", `${purpose} campaigns go through ${allowed.join(" or ")} channels, not ${row.type}`);
  return row;
}

async function requireFreshRpo(env: Env, tenantId: string, now: number): Promise<{ consultedAt: number }> {
  const register = await env.DB.prepare("SELECT consulted_at FROM rpo_registers WHERE tenant_id = ?").bind(tenantId).first<{ consulted_at: number }>();
  const problem = rpoRegisterProblem(register ? { consultedAt: register.consulted_at } : null, now);
  if (problem === "absent") throw conflict("telemarketing needs the opposition register (RPO): upload it with PUT /v1/rpo-register");
  if (problem === "stale") throw conflict(`the opposition register (RPO) was consulted more than ${RPO_MAX_AGE_DAYS} days ago: consult it again and upload it`);
  return { consultedAt: register?.consulted_at ?? 0 };
}

/** One audience entry, validated, normalised and rendered; its address lives only for this request. */
interface PreparedRecipient {
  index: number;
  address: string;
  subjectHash: string;
  rendered: string | null;
  existingCustomer: boolean;
  publicDirectory: boolean;
  age: number | null;
}

/** Validates every entry before anything is stored: one bad entry refuses the whole request. */
async function prepareAudience(tenant: ConsentTenant, campaign: Pick<CampaignRow, "purpose" | "template">, audience: readonly AudienceEntryInput[], now: number) {
  const wantsPhone = campaign.purpose !== "marketing_email";
  const seen = new Map<string, number>();
  const prepared: PreparedRecipient[] = [];
  for (const [index, entry] of audience.entries()) {
    const subject = await subjectOf(tenant, entry.address);
    if (!subject) throw issue(`audience.${index}.address`, "not a usable address");
    if (wantsPhone ? !subject.address.startsWith("tel:") : !subject.address.startsWith("email:")) {
      throw issue(`audience.${index}.address`, wantsPhone ? "must be a phone number in international format" : "must be an e-mail address");
    }
    const earlier = seen.get(subject.subjectHash);
    if (earlier !== undefined) throw issue(`audience.${index}.address`, `the same person as audience.${earlier}`);
    seen.set(subject.subjectHash, index);
    let age: number | null = null;
    if (entry.birthDate !== undefined) {
      const problem = birthDateProblem(entry.birthDate, now);
      if (problem) throw issue(`audience.${index}.birthDate`, problem);
      age = ageOn(entry.birthDate, now);
    } else if (entry.age !== undefined) {
      age = ageOn(birthDateFromAge(entry.age, now), now);
    }
    let rendered: string | null = null;
    if (campaign.purpose !== "telemarketing") {
      const result = renderTemplate(campaign.template, entry.variables ?? {});
      if (!result.ok) throw issue(`audience.${index}.variables`, `missing ${result.missing.map((m) => `{{${m}}}`).join(", ")}`);
      rendered = result.text;
      if (campaignMessage(rendered, "it", "soft_spam").length > MAX_MESSAGE_CHARS) throw issue(`audience.${index}`, `the message would exceed ${MAX_MESSAGE_CHARS} characters`);
    }
    prepared.push({
      index,
      address: subject.address,
      subjectHash: subject.subjectHash,
      rendered,
      existingCustomer: entry.existingCustomer === true,
      publicDirectory: entry.publicDirectory === true,
      age,
    });
  }
  return prepared;
}

interface DecidedRecipient {
  p: number;
  h: string;
  d: CampaignDecision;
  x: string | null;
  c: string | null;
  m: string | null;
}

/** Runs `task` over `items` with at most `limit` in flight. */
async function pool<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await task(items[i] as T);
    }
  });
  await Promise.all(workers);
  return out;
}

/**
 * Decides and sends one batch, 50 recipients at a time: consent state, ages,
 * restrictions and RPO membership are read per chunk, decisions recorded per
 * chunk. A recipient already in the campaign is skipped (so a retried batch
 * never sends twice; sends are also idempotent per campaign and subject).
 */
async function processAudience(
  c: Context<AppEnv>,
  auth: AuthContext,
  tenant: ConsentTenant,
  campaign: CampaignRow,
  channel: CampaignChannel | null,
  prepared: readonly PreparedRecipient[],
  rpo: { consultedAt: number } | null,
): Promise<{ recipients: RecipientRow[]; skipped: number }> {
  const env = c.env;
  const minimumAge = minimumAgeOf(tenant);
  const origin = publicOrigin(env, c.req.url);
  const reserved = await env.DB.prepare("UPDATE campaigns SET next_position = next_position + ? WHERE id = ? RETURNING next_position")
    .bind(prepared.length, campaign.id)
    .first<{ next_position: number }>();
  let position = (reserved?.next_position ?? prepared.length) - prepared.length;
  const recorded: RecipientRow[] = [];
  let skipped = 0;
  for (let i = 0; i < prepared.length; i += CHUNK) {
    const chunk = prepared.slice(i, i + CHUNK);
    const hashes = chunk.map((r) => r.subjectHash);
    const now = Date.now();
    const { results: existing } = await env.DB.prepare(
      "SELECT subject_hash FROM campaign_recipients WHERE campaign_id = ? AND subject_hash IN (SELECT value FROM json_each(?))",
    )
      .bind(campaign.id, JSON.stringify(hashes))
      .all<{ subject_hash: string }>();
    const already = new Set(existing.map((r) => r.subject_hash));
    const latest = await latestEntries(env, tenant.id, hashes, [campaign.purpose, "parental_authorization"]);
    const ages = await knownAges(env, tenant.id, hashes, now);
    const restricted = await restrictedSubjects(env, tenant.id, hashes);
    const onRpo = new Set<string>();
    if (campaign.purpose === "telemarketing") {
      const { results } = await env.DB.prepare("SELECT subject_hash FROM rpo_numbers WHERE tenant_id = ? AND subject_hash IN (SELECT value FROM json_each(?))")
        .bind(tenant.id, JSON.stringify(hashes))
        .all<{ subject_hash: string }>();
      for (const r of results) onRpo.add(r.subject_hash);
    }
    const todo = chunk.filter((r) => {
      if (already.has(r.subjectHash)) skipped += 1;
      return !already.has(r.subjectHash);
    });
    const decided = await pool(todo, SEND_CONCURRENCY, async (r): Promise<DecidedRecipient> => {
      const p = position + r.index;
      const facts = latest.get(r.subjectHash);
      const decision = decideRecipient({
        purpose: campaign.purpose,
        consent: stateOf(facts?.get(campaign.purpose), now),
        parentalAuthorization: stateOf(facts?.get("parental_authorization"), now),
        restricted: restricted.has(r.subjectHash),
        age: youngest(r.age, ages.get(r.subjectHash) ?? null),
        minimumAge,
        existingCustomer: r.existingCustomer,
        publicDirectory: r.publicDirectory,
        rpo: rpo ? { registered: onRpo.has(r.subjectHash), consultedAt: rpo.consultedAt } : null,
      });
      if (!decision.send) return { p, h: r.subjectHash, d: decision.reason, x: null, c: null, m: null };
      // Telemarketing: "sent" means released to the tenant's call list; nothing is sent by Parley.
      if (!channel || r.rendered === null) return { p, h: r.subjectHash, d: "sent", x: decision.basis, c: null, m: null };
      const conversationId = await conversationIdFor(tenant.hashKey, channel.id, r.address);
      try {
        const stub = conversationStub(env, conversationId);
        await stub.openOutbound({
          conversationId,
          tenantId: tenant.id,
          channelId: channel.id,
          channelType: channel.type,
          subjectHash: r.subjectHash,
          address: r.address,
          publicOrigin: origin,
        });
        const outcome = await stub.send({
          text: campaignMessage(r.rendered, campaign.locale, decision.basis),
          author: "system",
          authorId: campaign.id,
          idempotencyKey: `campaign:${campaign.id}:${r.subjectHash}`,
          publicOrigin: origin,
        });
        if (!outcome.ok) return { p, h: r.subjectHash, d: "failed", x: outcome.code, c: conversationId, m: null };
        return { p, h: r.subjectHash, d: "sent", x: decision.basis, c: conversationId, m: outcome.message.id };
      } catch (err) {
        console.error("campaign send failed", err instanceof Error ? err.message : String(err));
        return { p, h: r.subjectHash, d: "failed", x: "delivery_error", c: conversationId, m: null };
      }
    });
    if (decided.length > 0) {
      await env.DB.prepare(
        `INSERT OR IGNORE INTO campaign_recipients (campaign_id, position, subject_hash, decision, detail, conversation_id, message_id, created_at)
         SELECT ?1, json_extract(value, '$.p'), json_extract(value, '$.h'), json_extract(value, '$.d'), json_extract(value, '$.x'),
                json_extract(value, '$.c'), json_extract(value, '$.m'), ?2
         FROM json_each(?3)`,
      )
        .bind(campaign.id, now, JSON.stringify(decided))
        .run();
    }
    for (const d of decided) recorded.push({ position: d.p, subject_hash: d.h, decision: d.d, detail: d.x, conversation_id: d.c, message_id: d.m });
  }
  const counts: Record<string, number> = { recipients: recorded.length, skipped };
  for (const r of recorded) counts[r.decision] = (counts[r.decision] ?? 0) + 1;
  await auditStatement(env.DB, keyAudit(auth, "campaign.processed", "campaign", campaign.id, counts)).run();
  return { recipients: recorded, skipped };
}

const BatchResult = z.object({ campaign: CampaignSchema, recipients: z.array(RecipientSchema), skippedDuplicates: z.number().int() });

campaigns.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Campaigns"],
    summary: "Create a campaign: decide per recipient and send to those allowed",
    description:
      "Each recipient ends as `sent` (or `failed`) or is blocked as `no_consent`, `opted_out`, `rpo_registered`, `minor_without_authorization` or `restricted`. Telemarketing is refused (409) while the RPO copy is absent or older than 15 days. At most 1,000 recipients per request; add more with POST /v1/campaigns/{id}/recipients.",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: CreateCampaignBody } } } },
    responses: {
      201: { description: "Processed", content: { "application/json": { schema: BatchResult } } },
      ...errorResponses,
      409: { description: "The RPO register is absent or stale (telemarketing)", content: { "application/json": { schema: z.object({ error: z.object({ code: z.string(), message: z.string() }) }) } } },
    },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const body = c.req.valid("json");
    const now = Date.now();
    const tenant = await loadConsentTenant(c.env, auth.tenantId);
    const channel = await campaignChannel(c, body.purpose, body.channelId ?? null);
    const template = body.template ?? "";
    const prepared = await prepareAudience(tenant, { purpose: body.purpose, template }, body.audience, now);
    const rpo = body.purpose === "telemarketing" ? await requireFreshRpo(c.env, auth.tenantId, now) : null;
    const id = newId("cmp", now);
    const row: CampaignRow = {
      id,
      tenant_id: auth.tenantId,
      name: body.name ?? `${body.purpose} ${new Date(now).toISOString().slice(0, 10)}`,
      purpose: body.purpose,
      channel_id: channel?.id ?? null,
      locale: body.locale,
      template,
      next_position: 0,
      created_at: now,
    };
    await c.env.DB.batch([
      c.env.DB.prepare(
        "INSERT INTO campaigns (id, tenant_id, name, purpose, channel_id, locale, template, next_position, created_at, created_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
      ).bind(id, auth.tenantId, row.name, row.purpose, row.channel_id, row.locale, row.template, now, auth.keyId, now),
      auditStatement(c.env.DB, keyAudit(auth, "campaign.created", "campaign", id, { purpose: body.purpose, audience: prepared.length })),
    ]);
    const result = await processAudience(c, auth, tenant, row, channel, prepared, rpo);
    return c.json({ campaign: await campaignView(c.env, row), recipients: result.recipients.map(recipientView), skippedDuplicates: result.skipped }, 201);
  },
);

const IdParam = z.object({ id: z.string().max(64) });

async function loadCampaign(c: Context<AppEnv>, id: string): Promise<CampaignRow> {
  const row = await c.env.DB.prepare("SELECT * FROM campaigns WHERE id = ? AND tenant_id = ?").bind(id, c.get("auth").tenantId).first<CampaignRow>();
  if (!row) throw notFound("campaign");
  return row;
}

campaigns.openapi(
  createRoute({
    method: "post",
    path: "/{id}/recipients",
    tags: ["Campaigns"],
    summary: "Add up to 1,000 more recipients to a campaign (same rules; people already in it are skipped)",
    security: bearerSecurity,
    request: {
      params: IdParam,
      body: {
        required: true,
        content: {
          "application/json": {
            schema: z
              .object({ audience: Audience })
              .strict(),
          },
        },
      },
    },
    responses: {
      200: { description: "Processed", content: { "application/json": { schema: BatchResult } } },
      ...errorResponses,
      409: { description: "The RPO register is absent or stale (telemarketing)", content: { "application/json": { schema: z.object({ error: z.object({ code: z.string(), message: z.string() }) }) } } },
    },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const campaign = await loadCampaign(c, c.req.valid("param").id);
    const { audience } = c.req.valid("json");
    const rules = z
      .object({ audience: Audience })
      .superRefine((body, ctx) => audienceRules(campaign.purpose, body.audience, ctx))
      .safeParse({ audience });
    if (!rules.success) throw new ApiError(400, "validation_error", "request is invalid", zodIssues(rules.error));
    const now = Date.now();
    const tenant = await loadConsentTenant(c.env, auth.tenantId);
    const channel = await campaignChannel(c, campaign.purpose, campaign.channel_id);
    const prepared = await prepareAudience(tenant, campaign, audience, now);
    const rpo = campaign.purpose === "telemarketing" ? await requireFreshRpo(c.env, auth.tenantId, now) : null;
    const result = await processAudience(c, auth, tenant, campaign, channel, prepared, rpo);
    return c.json({ campaign: await campaignView(c.env, campaign), recipients: result.recipients.map(recipientView), skippedDuplicates: result.skipped }, 200);
  },
);

campaigns.openapi(
  createRoute({
    method: "get",
    path: "/{id}",
    tags: ["Campaigns"],
    summary: "A campaign with its counts per decision and its recipients (by position)",
    security: bearerSecurity,
    request: {
      params: IdParam,
      query: z.object({
        decision: z.enum(CAMPAIGN_DECISIONS).optional(),
        after: z.coerce.number().int().min(-1).default(-1).openapi({ description: "Only recipients with a position greater than this (cursor)" }),
        limit: z.coerce.number().int().min(1).max(1000).default(200),
      }),
    },
    responses: {
      200: {
        description: "The campaign",
        content: { "application/json": { schema: CampaignSchema.extend({ recipients: z.array(RecipientSchema), nextCursor: z.string().nullable() }) } },
      },
      ...errorResponses,
    },
  }),
  async (c) => {
    requireScope(c, "privacy:read");
    const campaign = await loadCampaign(c, c.req.valid("param").id);
    const query = c.req.valid("query");
    const { results } = await c.env.DB.prepare(
      `SELECT position, subject_hash, decision, detail, conversation_id, message_id FROM campaign_recipients
       WHERE campaign_id = ? AND position > ? ${query.decision ? "AND decision = ?" : ""} ORDER BY position LIMIT ?`,
    )
      .bind(...(query.decision ? [campaign.id, query.after, query.decision, query.limit + 1] : [campaign.id, query.after, query.limit + 1]))
      .all<RecipientRow>();
    const page = results.slice(0, query.limit);
    const last = page[page.length - 1];
    return c.json(
      { ...(await campaignView(c.env, campaign)), recipients: page.map(recipientView), nextCursor: results.length > query.limit && last ? String(last.position) : null },
      200,
    );
  },
);

const listCursor = z.object({ t: z.number().int(), id: z.string().max(64) });

campaigns.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Campaigns"],
    summary: "List campaigns, newest first",
    security: bearerSecurity,
    request: { query: z.object({ limit: z.coerce.number().int().min(1).max(100).default(20), cursor: z.string().max(512).optional() }) },
    responses: {
      200: { description: "Campaigns", content: { "application/json": { schema: z.object({ data: z.array(CampaignSchema), nextCursor: z.string().nullable() }) } } },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:read");
    const query = c.req.valid("query");
    const cursor = query.cursor ? decodeCursor(query.cursor, listCursor) : null;
    const { results } = await c.env.DB.prepare(
      `SELECT * FROM campaigns WHERE tenant_id = ? ${cursor ? "AND (created_at < ? OR (created_at = ? AND id < ?))" : ""} ORDER BY created_at DESC, id DESC LIMIT ?`,
    )
      .bind(...(cursor ? [auth.tenantId, cursor.t, cursor.t, cursor.id, query.limit + 1] : [auth.tenantId, query.limit + 1]))
      .all<CampaignRow>();
    const page = results.slice(0, query.limit);
    const last = page[page.length - 1];
    return c.json(
      {
        data: await Promise.all(page.map((row) => campaignView(c.env, row))),
        nextCursor: results.length > query.limit && last ? encodeCursor({ t: last.created_at, id: last.id }) : null,
      },
      200,
    );
  },
);

// ---------------------------------------------------------------- RPO register

const RpoSchema = z
  .object({
    consultedAt: z.string().nullable(),
    uploadedAt: z.string().nullable(),
    numbers: z.number().int(),
    fresh: z.boolean().openapi({ description: `Consulted within the last ${RPO_MAX_AGE_DAYS} days: telemarketing is allowed` }),
    staleAt: z.string().nullable(),
  })
  .openapi("RpoRegister");

async function rpoView(env: Env, tenantId: string): Promise<z.infer<typeof RpoSchema>> {
  const row = await env.DB.prepare("SELECT consulted_at, uploaded_at, number_count FROM rpo_registers WHERE tenant_id = ?")
    .bind(tenantId)
    .first<{ consulted_at: number; uploaded_at: number; number_count: number }>();
  if (!row) return { consultedAt: null, uploadedAt: null, numbers: 0, fresh: false, staleAt: null };
  return {
    consultedAt: new Date(row.consulted_at).toISOString(),
    uploadedAt: new Date(row.uploaded_at).toISOString(),
    numbers: row.number_count,
    fresh: rpoRegisterProblem({ consultedAt: row.consulted_at }, Date.now()) === null,
    staleAt: new Date(row.consulted_at + RPO_MAX_AGE_DAYS * 24 * 60 * 60 * 1000).toISOString(),
  };
}

const RpoBody = z
  .object({
    consultedAt: z.union([z.iso.datetime({ offset: true }), z.iso.date()]).openapi({ description: "When the register was consulted (the 15-day clock starts here)" }),
    numbers: z.array(z.string().min(1).max(32)).max(RPO_UPLOAD_LIMIT).openapi({ description: "Numbers found on the register (E.164); stored as keyed hashes" }),
    append: z.boolean().default(false).openapi({ description: "Add to the current upload of the same consultation instead of replacing it" }),
  })
  .strict();

rpoRegister.openapi(
  createRoute({
    method: "put",
    path: "/",
    tags: ["Campaigns"],
    summary: "Upload the numbers found on the opposition register (RPO) and when it was consulted",
    description: `Replaces the tenant's copy (or, with append, extends an upload of the same consultation, ${RPO_UPLOAD_LIMIT} numbers per request). Numbers are stored only as keyed hashes.`,
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: RpoBody } } } },
    responses: { 200: { description: "Stored", content: { "application/json": { schema: RpoSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const body = c.req.valid("json");
    const now = Date.now();
    const consultedAt = Date.parse(body.consultedAt);
    if (!Number.isFinite(consultedAt) || consultedAt > now + 5 * 60 * 1000) throw issue("consultedAt", "must not be in the future");
    const tenant = await loadConsentTenant(c.env, auth.tenantId);
    const hashes = new Set<string>();
    for (const [i, raw] of body.numbers.entries()) {
      const subject = await subjectOf(tenant, raw);
      if (!subject || !subject.address.startsWith("tel:")) throw issue(`numbers.${i}`, "not a phone number in international format");
      hashes.add(subject.subjectHash);
    }
    const current = await c.env.DB.prepare("SELECT consulted_at FROM rpo_registers WHERE tenant_id = ?").bind(auth.tenantId).first<{ consulted_at: number }>();
    if (body.append && current?.consulted_at !== consultedAt) {
      throw issue("append", "appending needs an existing upload with the same consultedAt");
    }
    await c.env.DB.batch([
      ...(body.append ? [] : [c.env.DB.prepare("DELETE FROM rpo_numbers WHERE tenant_id = ?").bind(auth.tenantId)]),
      c.env.DB.prepare("INSERT OR IGNORE INTO rpo_numbers (tenant_id, subject_hash) SELECT ?, value FROM json_each(?)").bind(auth.tenantId, JSON.stringify([...hashes])),
      c.env.DB.prepare(
        `INSERT INTO rpo_registers (tenant_id, consulted_at, uploaded_at, number_count) VALUES (?1, ?2, ?3, (SELECT COUNT(*) FROM rpo_numbers WHERE tenant_id = ?1))
         ON CONFLICT(tenant_id) DO UPDATE SET consulted_at = excluded.consulted_at, uploaded_at = excluded.uploaded_at, number_count = excluded.number_count`,
      ).bind(auth.tenantId, consultedAt, now),
      auditStatement(c.env.DB, keyAudit(auth, "rpo.uploaded", "rpo_register", auth.tenantId, { numbers: hashes.size, append: body.append })),
    ]);
    return c.json(await rpoView(c.env, auth.tenantId), 200);
  },
);

rpoRegister.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Campaigns"],
    summary: "The tenant's RPO copy: when it was consulted, how many numbers, and whether it is fresh",
    security: bearerSecurity,
    responses: { 200: { description: "Status", content: { "application/json": { schema: RpoSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:read");
    return c.json(await rpoView(c.env, auth.tenantId), 200);
  },
);
