/**
 * Consent data layer shared by the API, campaigns, recordings and the
 * conversation object: subject hashing, the append-only consent log, default
 * notices, age and restriction checks, channel keywords and voice-model purges.
 *
 * Hooks for the conversation object (see the README, "Consent and outbound
 * compliance"): {@link applyKeyword}, {@link isMinorWithoutAuthorization},
 * {@link isRestricted}.
 */
import { normalizeAddress, type SubjectAddress } from "../../lib/addresses";
import { parseSettings } from "../../lib/ai/settings";
import { sealBytes, sha256Hex } from "../../lib/crypto";
import { fromUtf8, utf8 } from "../../lib/encoding";
import { newId } from "../../lib/ids";
import { classifyKeyword, keywordReply, type KeywordAction, type KeywordLocale } from "../../lib/consent/keywords";
import { ageOn, DEFAULT_MINIMUM_AGE, isUnderAge } from "../../lib/consent/minors";
import { DEFAULT_NOTICES, KEYWORD_NOTICE_KEY } from "../../lib/consent/notices";
import {
  CONSENT_PURPOSES,
  marketingPurposeForChannel,
  stateOf,
  type ConsentEntryFacts,
  type ConsentMethod,
  type ConsentPurpose,
  type ConsentStatus,
  type PurposeState,
} from "../../lib/consent/purposes";
import type { ChannelType } from "../../d1/schema";
import { auditStatement, type AuditEntry } from "./audit";
import { notFound } from "./errors";
import { masterKeyring, openWithMasterKey, subjectHash as keyedSubjectHash, tenantHashKey } from "./keyring";
import { z } from "zod";

/** What consent code needs to know about a tenant. */
export interface ConsentTenant {
  id: string;
  name: string;
  hashKey: CryptoKey;
  /** The settings JSON as stored (`{}` for a new tenant). */
  settingsJson: string;
}

/** Loads an active tenant with its unwrapped hash key; 404 when unknown. */
export async function loadConsentTenant(env: Env, tenantId: string): Promise<ConsentTenant> {
  const row = await env.DB.prepare(
    "SELECT t.id, t.name, t.hash_key, s.data FROM tenants t LEFT JOIN settings s ON s.tenant_id = t.id WHERE t.id = ? AND t.status = 'active'",
  )
    .bind(tenantId)
    .first<{ id: string; name: string; hash_key: string; data: string | null }>();
  if (!row) throw notFound("tenant");
  return { id: row.id, name: row.name, hashKey: await tenantHashKey(env, row.id, row.hash_key), settingsJson: row.data ?? "{}" };
}

/** A raw address normalised and hashed for a tenant, or null when it is not a usable address. */
export async function subjectOf(tenant: ConsentTenant, raw: string): Promise<{ address: SubjectAddress; subjectHash: string } | null> {
  const address = normalizeAddress(raw);
  if (!address) return null;
  return { address, subjectHash: await keyedSubjectHash(tenant.hashKey, address) };
}

/** The tenant's minimum age (settings `minimumAge`, default 14). */
export function minimumAgeOf(tenant: ConsentTenant): number {
  return parseSettings(tenant.settingsJson).minimumAge ?? DEFAULT_MINIMUM_AGE;
}

/** The settings schema's stock contact text: stored copies of it mean "not customised". */
const STOCK_CONTACT_TEXT = parseSettings("{}").contactText;

/**
 * The tenant's own HELP text if it set one; null (use the localised default,
 * which names the business) when it is absent or still the stock text.
 */
export function contactTextOf(tenant: ConsentTenant): string | null {
  const text = parseSettings(tenant.settingsJson).contactText.trim();
  return text.length > 0 && text !== STOCK_CONTACT_TEXT ? text : null;
}

// ---------------------------------------------------------------- notices

const seededTenants = new Set<string>();

/**
 * Seeds the default notices (recording, voice cloning and its revocation,
 * cookies, keyword marketing; English and Italian) for a tenant, once. Called
 * lazily by every consent feature, so tenants need no setup step. Idempotent
 * and safe under concurrency: each default is version 1 of its series, and the
 * unique (tenant, key, locale, version) index drops a second insert.
 */
export async function ensureDefaultNotices(env: Env, tenant: { id: string; name: string }): Promise<void> {
  if (seededTenants.has(tenant.id)) return;
  const seeded = await env.DB.prepare("SELECT COUNT(*) AS n FROM notices WHERE tenant_id = ? AND source = 'default'").bind(tenant.id).first<{ n: number }>();
  if ((seeded?.n ?? 0) < DEFAULT_NOTICES.length) {
    const now = Date.now();
    const statements: D1PreparedStatement[] = [];
    for (const notice of DEFAULT_NOTICES) {
      const text = notice.text(tenant.name);
      statements.push(
        env.DB.prepare(
          `INSERT OR IGNORE INTO notices (id, tenant_id, key, purposes, kind, locale, version, text, sha256, source, created_at, created_by)
           VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, 'default', ?, NULL)`,
        ).bind(newId("ntc", now), tenant.id, notice.key, JSON.stringify(notice.purposes), notice.kind, notice.locale, text, await sha256Hex(text), now),
      );
    }
    await env.DB.batch(statements);
  }
  if (seededTenants.size > 10_000) seededTenants.clear();
  seededTenants.add(tenant.id);
}

/** A notice row. */
export interface NoticeRow {
  id: string;
  tenant_id: string;
  key: string;
  purposes: string;
  kind: "consent" | "withdrawal";
  locale: string;
  version: number;
  text: string;
  sha256: string;
  source: "default" | "tenant";
  created_at: number;
}

/** Purposes a notice covers (stored JSON, validated). */
export function noticePurposes(row: Pick<NoticeRow, "purposes">): ConsentPurpose[] {
  const parsed = z.array(z.enum(CONSENT_PURPOSES)).safeParse(JSON.parse(row.purposes));
  return parsed.success ? parsed.data : [];
}

/** The latest version of a notice series in a locale (falling back to English), or null. */
export async function latestNotice(env: Env, tenantId: string, key: string, locale: string): Promise<NoticeRow | null> {
  return env.DB.prepare(
    `SELECT * FROM notices WHERE tenant_id = ? AND key = ? AND locale IN (?, 'en')
     ORDER BY CASE WHEN locale = ? THEN 0 ELSE 1 END, version DESC LIMIT 1`,
  )
    .bind(tenantId, key, locale, locale)
    .first<NoticeRow>();
}

// ---------------------------------------------------------------- the consent log

/** One row of the consent log as stored. */
export interface ConsentRow {
  seq: number;
  id: string;
  tenant_id: string;
  subject_hash: string;
  purpose: ConsentPurpose;
  status: ConsentStatus;
  method: ConsentMethod;
  notice_id: string | null;
  evidence_message_id: string | null;
  evidence_ip: string | null;
  channel_id: string | null;
  expires_at: number | null;
  actor_type: "api_key" | "channel";
  actor_id: string | null;
  created_at: number;
}

/** A new entry for {@link consentInsert}. */
export type NewConsent = Omit<ConsentRow, "seq">;

/**
 * The insert of one consent entry (and of its sealed evidence IP, when it has
 * one). The log is append-only: there is no update or delete anywhere in the
 * code, and D1 triggers abort any that is attempted. The evidence IP goes to
 * `consent_evidence`, where a MASTER_KEY rotation can re-wrap it; it is
 * written only if the entry was (an ignored duplicate keyword adds nothing).
 */
export function consentInsert(db: D1Database, entry: NewConsent, orIgnore = false): D1PreparedStatement[] {
  const statements = [
    db
      .prepare(
        `INSERT ${orIgnore ? "OR IGNORE " : ""}INTO consents (id, tenant_id, subject_hash, purpose, status, method, notice_id, evidence_message_id, evidence_ip, channel_id, expires_at, actor_type, actor_id, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?)`,
      )
      .bind(
        entry.id,
        entry.tenant_id,
        entry.subject_hash,
        entry.purpose,
        entry.status,
        entry.method,
        entry.notice_id,
        entry.evidence_message_id,
        entry.channel_id,
        entry.expires_at,
        entry.actor_type,
        entry.actor_id,
        entry.created_at,
      ),
  ];
  if (entry.evidence_ip !== null) {
    statements.push(
      db
        .prepare("INSERT INTO consent_evidence (id, tenant_id, ip) SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM consents WHERE id = ? AND tenant_id = ?)")
        .bind(entry.id, entry.tenant_id, entry.evidence_ip, entry.id, entry.tenant_id),
    );
  }
  return statements;
}

/**
 * The select list of a {@link ConsentRow} for the consent log aliased `alias`.
 * `evidence_ip` is the rotatable copy in `consent_evidence`, or the log's own
 * column for an entry written before that table existed.
 */
export function consentColumns(alias: string): string {
  const own = ["seq", "id", "tenant_id", "subject_hash", "purpose", "status", "method", "notice_id", "evidence_message_id", "channel_id", "expires_at", "actor_type", "actor_id", "created_at"];
  return [...own.map((c) => `${alias}.${c}`), `COALESCE((SELECT e.ip FROM consent_evidence e WHERE e.id = ${alias}.id), ${alias}.evidence_ip) AS evidence_ip`].join(", ");
}

/** Seals the IP a web form was sent from, bound to its consent entry. */
export async function sealEvidenceIp(env: Env, consentId: string, ip: string): Promise<string> {
  const { key, keyId } = await masterKeyring(env);
  return sealBytes(key, keyId, utf8(ip), `consent-ip:${consentId}`);
}

/** Opens a sealed evidence IP (null when absent or unreadable). */
export async function openEvidenceIp(env: Env, consentId: string, sealed: string | null): Promise<string | null> {
  if (!sealed) return null;
  try {
    return fromUtf8(await openWithMasterKey(env, sealed, `consent-ip:${consentId}`));
  } catch {
    return null;
  }
}

/** The latest entry of a purpose for a subject, with its id and notice. */
export interface LatestEntry extends ConsentEntryFacts {
  id: string;
  noticeId: string | null;
}

const IN_CHUNK = 100;

/**
 * Latest entry per (subject, purpose) for many subjects at once, in bounded
 * queries of 100 subjects. Missing pairs have no entry.
 */
export async function latestEntries(
  env: Env,
  tenantId: string,
  subjectHashes: readonly string[],
  purposes: readonly ConsentPurpose[],
): Promise<Map<string, Map<ConsentPurpose, LatestEntry>>> {
  const out = new Map<string, Map<ConsentPurpose, LatestEntry>>();
  for (let i = 0; i < subjectHashes.length; i += IN_CHUNK) {
    const chunk = subjectHashes.slice(i, i + IN_CHUNK);
    const { results } = await env.DB.prepare(
      `SELECT c.id, c.subject_hash, c.purpose, c.status, c.notice_id, c.created_at, c.expires_at FROM consents c
       JOIN (SELECT MAX(seq) AS seq FROM consents
             WHERE tenant_id = ?1 AND subject_hash IN (SELECT value FROM json_each(?2)) AND purpose IN (SELECT value FROM json_each(?3))
             GROUP BY subject_hash, purpose) latest ON latest.seq = c.seq`,
    )
      .bind(tenantId, JSON.stringify(chunk), JSON.stringify(purposes))
      .all<{ id: string; subject_hash: string; purpose: ConsentPurpose; status: ConsentStatus; notice_id: string | null; created_at: number; expires_at: number | null }>();
    for (const row of results) {
      let bySubject = out.get(row.subject_hash);
      if (!bySubject) {
        bySubject = new Map();
        out.set(row.subject_hash, bySubject);
      }
      bySubject.set(row.purpose, {
        id: row.id,
        purpose: row.purpose,
        status: row.status,
        noticeId: row.notice_id,
        createdAt: row.created_at,
        expiresAt: row.expires_at,
      });
    }
  }
  return out;
}

/** The latest entry of one purpose for one subject, or null. */
export async function latestEntry(env: Env, tenantId: string, subjectHash: string, purpose: ConsentPurpose): Promise<LatestEntry | null> {
  return (await latestEntries(env, tenantId, [subjectHash], [purpose])).get(subjectHash)?.get(purpose) ?? null;
}

/** The state of one purpose for one subject at `now`. */
export async function purposeState(env: Env, tenantId: string, subjectHash: string, purpose: ConsentPurpose, now = Date.now()): Promise<PurposeState> {
  return stateOf(await latestEntry(env, tenantId, subjectHash, purpose), now);
}

// ---------------------------------------------------------------- restrictions and minors

/**
 * HOOK (issue 5, data-subject requests): the subjects among `subjectHashes`
 * whose processing is restricted (GDPR art. 18) or who objected (art. 21),
 * as recorded by data-subject requests in `subject_restrictions`.
 */
export async function restrictedSubjects(env: Env, tenantId: string, subjectHashes: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  // D1 caps bound parameters per statement; look subjects up in chunks.
  for (let i = 0; i < subjectHashes.length; i += 90) {
    const chunk = subjectHashes.slice(i, i + 90);
    if (chunk.length === 0) continue;
    const { results } = await env.DB.prepare(
      `SELECT DISTINCT subject_hash FROM subject_restrictions WHERE tenant_id = ? AND lifted_at IS NULL AND subject_hash IN (${chunk.map(() => "?").join(",")})`,
    )
      .bind(tenantId, ...chunk)
      .all<{ subject_hash: string }>();
    for (const r of results) out.add(r.subject_hash);
  }
  return out;
}

/** True when processing of this subject is restricted or objected to (no AI processing, no marketing). */
export async function isRestricted(env: Env, tenantId: string, subjectHash: string): Promise<boolean> {
  return (await restrictedSubjects(env, tenantId, [subjectHash])).has(subjectHash);
}

/** Known ages (completed years at `now`) of subjects whose birth date or age was recorded. */
export async function knownAges(env: Env, tenantId: string, subjectHashes: readonly string[], now = Date.now()): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (let i = 0; i < subjectHashes.length; i += IN_CHUNK) {
    const chunk = subjectHashes.slice(i, i + IN_CHUNK);
    const { results } = await env.DB.prepare(
      "SELECT subject_hash, birth_date FROM subject_profiles WHERE tenant_id = ? AND subject_hash IN (SELECT value FROM json_each(?))",
    )
      .bind(tenantId, JSON.stringify(chunk))
      .all<{ subject_hash: string; birth_date: string }>();
    for (const row of results) out.set(row.subject_hash, ageOn(row.birth_date, now));
  }
  return out;
}

/**
 * True when the subject is known to be under the tenant's minimum age
 * (settings `minimumAge`, default 14) and no `parental_authorization` consent
 * is in force. Subjects whose age was never recorded are not minors here.
 * The AI pipeline calls this before any provider call; campaigns apply the
 * same rule per recipient.
 */
export async function isMinorWithoutAuthorization(env: Env, tenantId: string, subjectHash: string): Promise<boolean> {
  const now = Date.now();
  const age = (await knownAges(env, tenantId, [subjectHash], now)).get(subjectHash) ?? null;
  if (age === null) return false;
  const tenant = await loadConsentTenant(env, tenantId);
  if (!isUnderAge(age, minimumAgeOf(tenant))) return false;
  return (await purposeState(env, tenantId, subjectHash, "parental_authorization", now)).state !== "granted";
}

// ---------------------------------------------------------------- channel keywords

/** What the conversation object passes for an inbound message it just committed. */
export interface KeywordInput {
  tenantId: string;
  channelId: string;
  channelType: ChannelType;
  subjectHash: string;
  /** The inbound message's provider id: the evidence, and the dedupe key of a retried hook. */
  providerMessageId: string;
  text: string;
  /** The conversation's language, when known; otherwise the keyword's own language is used. */
  locale?: KeywordLocale;
}

/** A handled keyword: queue `reply` as an outbound message and do not send the message to the AI. */
export interface KeywordOutcome {
  action: KeywordAction;
  reply: string;
}

/**
 * Handles an inbound message that is only a keyword (STOP, ANNULLA, START,
 * AIUTO…). Returns null for any other message (it goes on to the AI as usual).
 *
 * - opt-out: appends a `withdrawn` entry for the channel's marketing purpose
 *   (see `marketingPurposeForChannel`), method `channel_keyword`, evidence the
 *   provider message id; it references the notice of the grant it withdraws.
 * - opt-in: only re-subscribes a subject whose consent for that purpose is
 *   currently withdrawn (a bare "yes" in a normal conversation is not consent);
 *   appends a `granted` entry on the default `marketing_keyword` notice.
 *   Otherwise null: the message is an ordinary message.
 * - help: nothing is written; the reply is the tenant's `contactText`.
 *
 * Idempotent per (channel, provider message id): a retried call appends
 * nothing new and returns the same reply.
 */
export async function applyKeyword(env: Env, input: KeywordInput): Promise<KeywordOutcome | null> {
  const match = classifyKeyword(input.text);
  if (!match) return null;
  const tenant = await loadConsentTenant(env, input.tenantId);
  const locale = input.locale ?? match.locale;
  const reply = keywordReply(match.action, locale, { tenantName: tenant.name, contactText: contactTextOf(tenant) });
  if (match.action === "help") return { action: "help", reply };

  const purpose = marketingPurposeForChannel(input.channelType);
  const already = await env.DB.prepare(
    "SELECT status FROM consents WHERE tenant_id = ? AND channel_id = ? AND evidence_message_id = ? AND purpose = ? AND method = 'channel_keyword'",
  )
    .bind(input.tenantId, input.channelId, input.providerMessageId, purpose)
    .first<{ status: ConsentStatus }>();
  if (already) return { action: match.action, reply };

  const now = Date.now();
  const latest = await latestEntry(env, input.tenantId, input.subjectHash, purpose);
  let noticeId: string | null;
  if (match.action === "opt_in") {
    if (stateOf(latest, now).state !== "withdrawn") return null;
    await ensureDefaultNotices(env, tenant);
    noticeId = (await latestNotice(env, tenant.id, KEYWORD_NOTICE_KEY, locale))?.id ?? null;
  } else {
    noticeId = latest?.noticeId ?? null;
  }
  const id = newId("cns", now);
  const status: ConsentStatus = match.action === "opt_out" ? "withdrawn" : "granted";
  await env.DB.batch([
    ...consentInsert(
      env.DB,
      {
        id,
        tenant_id: input.tenantId,
        subject_hash: input.subjectHash,
        purpose,
        status,
        method: "channel_keyword",
        notice_id: noticeId,
        evidence_message_id: input.providerMessageId,
        evidence_ip: null,
        channel_id: input.channelId,
        expires_at: null,
        actor_type: "channel",
        actor_id: input.channelId,
        created_at: now,
      },
      true,
    ),
    auditStatement(env.DB, {
      tenantId: input.tenantId,
      actorType: "provider",
      actorId: input.channelId,
      action: `consent.${status}`,
      targetType: "consent",
      targetId: id,
      detail: { purpose, method: "channel_keyword" },
    }),
  ]);
  return { action: match.action, reply };
}

// ---------------------------------------------------------------- deletions

/** A deletion-log entry (what, category, why, when; the subject only as its keyed hash). */
export interface DeletionEntry {
  tenantId: string;
  targetType: string;
  targetId: string;
  category: string;
  reason: string;
  subjectHash: string | null;
}

/** Prepared insert of a deletion-log entry, to batch with the delete it records. */
export function deletionLogStatement(db: D1Database, entry: DeletionEntry, now = Date.now()): D1PreparedStatement {
  return db
    .prepare("INSERT INTO deletion_log (id, tenant_id, target_type, target_id, category, reason, subject_hash, deleted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    .bind(newId("del", now), entry.tenantId, entry.targetType, entry.targetId, entry.category, entry.reason, entry.subjectHash, now);
}

/** Why voice models are deleted. */
export type VoiceDeletionReason = "consent_withdrawn" | "consent_expired" | "tenant_request";

/** Which voice models to delete: a subject's (consent withdrawn), one model, or every lapsed one. */
export type VoicePurgeTarget = { subjectHash: string; reason: VoiceDeletionReason } | { id: string; reason: VoiceDeletionReason } | { lapsedAt: number };

/**
 * Deletes voice models and their encrypted source audio for real: the R2
 * object first, then the row, with a deletion-log entry for each and an audit
 * entry, in one D1 batch per model. Lapsed models are those whose consent
 * expired, and those left `deleting` by a withdrawal that was interrupted.
 * Returns how many models were deleted.
 */
export async function purgeVoiceModels(env: Env, tenantId: string, target: VoicePurgeTarget, actor: Pick<AuditEntry, "actorType" | "actorId">): Promise<number> {
  let deleted = 0;
  for (;;) {
    const columns = "id, subject_hash, object_key, status";
    const query =
      "subjectHash" in target
        ? env.DB.prepare(`SELECT ${columns} FROM voice_models WHERE tenant_id = ? AND subject_hash = ? LIMIT 50`).bind(tenantId, target.subjectHash)
        : "id" in target
          ? env.DB.prepare(`SELECT ${columns} FROM voice_models WHERE tenant_id = ? AND id = ? LIMIT 50`).bind(tenantId, target.id)
          : env.DB.prepare(
              `SELECT ${columns} FROM voice_models WHERE tenant_id = ? AND (status = 'deleting' OR (expires_at IS NOT NULL AND expires_at <= ?)) LIMIT 50`,
            ).bind(tenantId, target.lapsedAt);
    const { results } = await query.all<{ id: string; subject_hash: string; object_key: string; status: "active" | "deleting" }>();
    if (results.length === 0) return deleted;
    for (const row of results) {
      const reason: VoiceDeletionReason = "reason" in target ? target.reason : row.status === "deleting" ? "consent_withdrawn" : "consent_expired";
      await env.FILES.delete(row.object_key);
      const now = Date.now();
      await env.DB.batch([
        env.DB.prepare("DELETE FROM voice_models WHERE id = ? AND tenant_id = ?").bind(row.id, tenantId),
        deletionLogStatement(env.DB, { tenantId, targetType: "voice_model", targetId: row.id, category: "voice_models", reason, subjectHash: row.subject_hash }, now),
        deletionLogStatement(
          env.DB,
          { tenantId, targetType: "r2_object", targetId: row.object_key, category: "voice_source_audio", reason, subjectHash: row.subject_hash },
          now,
        ),
        auditStatement(env.DB, { tenantId, ...actor, action: "voice_model.deleted", targetType: "voice_model", targetId: row.id, detail: { reason } }),
      ]);
      deleted += 1;
    }
  }
}

/** Deletes every voice model whose consent lapsed or whose deletion was interrupted (called before voice models are read). */
export async function purgeLapsedVoiceModels(env: Env, tenantId: string, now = Date.now()): Promise<number> {
  const lapsed = await env.DB.prepare(
    "SELECT 1 FROM voice_models WHERE tenant_id = ? AND (status = 'deleting' OR (expires_at IS NOT NULL AND expires_at <= ?)) LIMIT 1",
  )
    .bind(tenantId, now)
    .first();
  if (!lapsed) return 0;
  return purgeVoiceModels(env, tenantId, { lapsedAt: now }, { actorType: "system", actorId: null });
}
