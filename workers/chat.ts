/**
 * Web chat: a visitor's WebSocket, handed to their conversation's Durable
 * Object, plus the two public endpoints the demo page's cookie banner uses:
 * the tenant's current cookie notice, and recording the visitor's choices in
 * the consent log (method `banner`, evidence the client IP).
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { secureHeaders } from "hono/secure-headers";
import { z } from "zod";
import { IDENTITY_HEADER, type WebChatIdentity } from "../durable-objects/conversation";
import { newId } from "../lib/ids";
import { NOTICE_LOCALE } from "../lib/consent/notices";
import type { ConsentPurpose, ConsentStatus } from "../lib/consent/purposes";
import { auditStatement } from "./support/audit";
import { requireContentType } from "./support/body";
import {
  consentInsert,
  ensureDefaultNotices,
  latestNotice,
  loadConsentTenant,
  noticePurposes,
  sealEvidenceIp,
  subjectOf,
  type NoticeRow,
} from "./support/consent-store";
import type { AppEnv } from "./support/context";
import { ApiError, conflict, zodIssues } from "./support/errors";
import { conversationStub, loadWebhookChannel, type WebhookChannel } from "./support/ingest";
import { conversationIdFor, subjectHash } from "./support/keyring";
import { publicOrigin } from "./support/router";

export const chat = new Hono<AppEnv>();

/** Visitor session ids are random, client-kept bearer tokens for their own conversation. */
const SESSION = /^[A-Za-z0-9_-]{22,64}$/;

/** The cookie categories the banner asks about. All four need consent (README: "Demo web chat and cookie banner"). */
export const BANNER_PURPOSES = ["cookies_functional", "cookies_analytics", "cookies_marketing", "cookies_profiling"] as const satisfies readonly ConsentPurpose[];

/** The notice series the banner shows and records choices on. */
export const BANNER_NOTICE_KEY = "cookies";

/** Largest body `POST /chat/:channelId/consents` accepts (a choice is ~200 bytes). */
export const BANNER_BODY_LIMIT = 2048;

/** Banner submissions one visitor id may make per hour (each appends one entry per category). */
export const BANNER_SUBJECT_LIMIT_PER_HOUR = 20;

/** Banner submissions one client IP may make per minute, per Worker isolate (best effort, before any D1 work). */
export const BANNER_IP_LIMIT_PER_MINUTE = 30;

// The WebSocket upgrade response comes back from the Durable Object with immutable headers; the JSON routes get the usual ones.
const jsonSecurityHeaders = secureHeaders({
  crossOriginResourcePolicy: "same-origin",
  referrerPolicy: "no-referrer",
  contentSecurityPolicy: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
});

/** Origins allowed to use a web-chat channel: its configured list, or this deployment's own origin. */
function allowedOrigins(c: Context<AppEnv>, channel: WebhookChannel): string[] {
  const origin = publicOrigin(c.env, c.req.url);
  return channel.config.allowedOrigins?.length ? channel.config.allowedOrigins : [origin, new URL(c.req.url).origin];
}

/** 403 unless the request carries an Origin header the channel allows (browsers always send it on WebSocket upgrades and POSTs). */
function requireAllowedOrigin(c: Context<AppEnv>, channel: WebhookChannel): void {
  const requestOrigin = c.req.header("origin");
  if (!requestOrigin || !allowedOrigins(c, channel).includes(requestOrigin)) throw new ApiError(403, "forbidden", "origin not allowed for this chat channel");
}

chat.get("/:channelId", async (c) => {
  if (c.req.header("upgrade")?.toLowerCase() !== "websocket") {
    throw new ApiError(426, "bad_request", "this endpoint speaks WebSocket");
  }
  const channel = await loadWebhookChannel(c.env, c.req.param("channelId"), ["web_chat"]);
  // Refusing foreign origins stops cross-site WebSocket hijacking.
  requireAllowedOrigin(c, channel);
  const session = c.req.query("session") ?? "";
  if (!SESSION.test(session)) {
    throw new ApiError(400, "validation_error", "session is invalid", [{ path: "session", message: "22–64 URL-safe characters" }]);
  }
  const address = `id:web:${session}`;
  const conversationId = await conversationIdFor(channel.hashKey, channel.id, address);
  const identity: WebChatIdentity = {
    conversationId,
    tenantId: channel.tenantId,
    channelId: channel.id,
    subjectHash: await subjectHash(channel.hashKey, address),
    address,
    publicOrigin: publicOrigin(c.env, c.req.url),
  };
  const headers = new Headers({ upgrade: "websocket", [IDENTITY_HEADER]: JSON.stringify(identity) });
  return conversationStub(c.env, conversationId).fetch(new Request(c.req.url, { headers }));
});

// ---------------------------------------------------------------- cookie banner

/** What the banner shows: the exact stored notice text and the version id choices are recorded on. */
export interface BannerNotice {
  id: string;
  key: string;
  locale: string;
  version: number;
  purposes: ConsentPurpose[];
  text: string;
  sha256: string;
  /** The tenant's display name (the notice names it too). */
  business: string;
}

function bannerNoticeView(row: NoticeRow, business: string): BannerNotice {
  return { id: row.id, key: row.key, locale: row.locale, version: row.version, purposes: noticePurposes(row), text: row.text, sha256: row.sha256, business };
}

const NoticeQuery = z
  .object({
    purpose: z.literal("cookies").default("cookies"),
    locale: z.string().regex(NOTICE_LOCALE, "a language tag such as en, it or it-IT").default("en"),
  })
  .strict();

/** Parses with zod, turning failures into the shared 400 shape. */
function parseOr400<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ApiError(400, "validation_error", "request is invalid", zodIssues(parsed.error));
  return parsed.data;
}

/**
 * `GET /chat/:channelId/notice?purpose=cookies&locale=en|it`: the current
 * cookie notice of the channel's tenant (latest version of the `cookies`
 * series in the locale, English otherwise). Public: it is what the page shows.
 */
chat.get("/:channelId/notice", jsonSecurityHeaders, async (c) => {
  const channel = await loadWebhookChannel(c.env, c.req.param("channelId"), ["web_chat"]);
  const query = parseOr400(NoticeQuery, c.req.query());
  const tenant = await loadConsentTenant(c.env, channel.tenantId);
  await ensureDefaultNotices(c.env, tenant);
  const language = query.locale.slice(0, 2);
  const row = await latestNotice(c.env, tenant.id, BANNER_NOTICE_KEY, language);
  if (!row) throw new ApiError(404, "not_found", "no cookie notice for this channel");
  c.header("cache-control", "no-store");
  return c.json(bannerNoticeView(row, tenant.name), 200);
});

const Choices = z
  .object({
    cookies_functional: z.boolean(),
    cookies_analytics: z.boolean(),
    cookies_marketing: z.boolean(),
    cookies_profiling: z.boolean(),
  })
  .strict();

/** Body of `POST /chat/:channelId/consents`: one complete choice, every category answered. */
export const BannerChoiceBody = z
  .object({
    subject: z.string().regex(SESSION, "the visitor id: 22–64 URL-safe characters"),
    choices: Choices,
    noticeId: z.string().min(1).max(64),
  })
  .strict();

/** The consent-log address of a banner visitor id (`GET /v1/consents?subject=web:<id>`). */
export const bannerSubject = (visitorId: string): string => `web:${visitorId}`;

const ClientIp = z.union([z.ipv4(), z.ipv6()]);

/** Per-isolate fixed windows of banner posts per client IP. */
const ipWindows = new Map<string, { start: number; count: number }>();

function takeIpToken(ip: string, now: number): boolean {
  if (ipWindows.size > 10_000) ipWindows.clear();
  const window = ipWindows.get(ip);
  if (!window || now - window.start >= 60_000) {
    ipWindows.set(ip, { start: now, count: 1 });
    return true;
  }
  window.count += 1;
  return window.count <= BANNER_IP_LIMIT_PER_MINUTE;
}

const rateLimited = () => new ApiError(429, "rate_limited", "too many cookie choices; try again later");

/**
 * `POST /chat/:channelId/consents`: records a visitor's banner choice,
 * appending one entry per cookie category (granted or withdrawn) to the
 * consent log, method `banner`, on the notice version that was shown, with
 * the client IP (CF-Connecting-IP, stored encrypted) as evidence.
 * Unauthenticated but scoped to one web-chat channel, origin-checked, JSON
 * only, at most {@link BANNER_BODY_LIMIT} bytes and rate limited.
 */
chat.post(
  "/:channelId/consents",
  jsonSecurityHeaders,
  bodyLimit({
    maxSize: BANNER_BODY_LIMIT,
    onError: () => {
      throw new ApiError(413, "payload_too_large", `request body exceeds ${BANNER_BODY_LIMIT} bytes`);
    },
  }),
  async (c) => {
    const channel = await loadWebhookChannel(c.env, c.req.param("channelId"), ["web_chat"]);
    requireAllowedOrigin(c, channel);
    requireContentType(c, "application/json");
    let raw: unknown;
    try {
      raw = await c.req.json();
    } catch {
      throw new ApiError(400, "invalid_json", "body is not valid JSON");
    }
    const body = parseOr400(BannerChoiceBody, raw);
    const ip = ClientIp.safeParse(c.req.header("cf-connecting-ip") ?? "");
    if (!ip.success) throw new ApiError(400, "bad_request", "the client address is unavailable");
    const now = Date.now();
    if (!takeIpToken(ip.data, now)) throw rateLimited();

    const tenant = await loadConsentTenant(c.env, channel.tenantId);
    await ensureDefaultNotices(c.env, tenant);
    const notice = await c.env.DB.prepare("SELECT * FROM notices WHERE id = ? AND tenant_id = ?").bind(body.noticeId, tenant.id).first<NoticeRow>();
    if (!notice || notice.key !== BANNER_NOTICE_KEY || notice.kind !== "consent") {
      throw new ApiError(400, "validation_error", "request is invalid", [{ path: "noticeId", message: "not this site's cookie notice" }]);
    }
    const covered = noticePurposes(notice);
    const missing = BANNER_PURPOSES.filter((p) => !covered.includes(p));
    if (missing.length > 0) {
      throw new ApiError(400, "validation_error", "request is invalid", [{ path: "noticeId", message: `the notice does not cover ${missing.join(", ")}` }]);
    }
    const newest = await c.env.DB.prepare("SELECT MAX(version) AS v FROM notices WHERE tenant_id = ? AND key = ? AND locale = ?")
      .bind(tenant.id, notice.key, notice.locale)
      .first<{ v: number | null }>();
    if ((newest?.v ?? notice.version) !== notice.version) throw conflict("the cookie notice has changed since it was shown; reload the page and choose again");

    const subject = await subjectOf(tenant, bannerSubject(body.subject));
    if (!subject) throw new ApiError(400, "validation_error", "request is invalid", [{ path: "subject", message: "not a usable visitor id" }]);
    const recent = await c.env.DB.prepare(
      "SELECT COUNT(*) AS n FROM consents WHERE tenant_id = ? AND subject_hash = ? AND method = 'banner' AND created_at > ?",
    )
      .bind(tenant.id, subject.subjectHash, now - 3_600_000)
      .first<{ n: number }>();
    if ((recent?.n ?? 0) >= BANNER_SUBJECT_LIMIT_PER_HOUR * BANNER_PURPOSES.length) throw rateLimited();

    const statements: D1PreparedStatement[] = [];
    const entries: { id: string; purpose: ConsentPurpose; status: ConsentStatus }[] = [];
    for (const purpose of BANNER_PURPOSES) {
      const id = newId("cns", now);
      const status: ConsentStatus = body.choices[purpose] ? "granted" : "withdrawn";
      entries.push({ id, purpose, status });
      statements.push(
        ...consentInsert(c.env.DB, {
          id,
          tenant_id: tenant.id,
          subject_hash: subject.subjectHash,
          purpose,
          status,
          method: "banner",
          notice_id: notice.id,
          evidence_message_id: null,
          evidence_ip: await sealEvidenceIp(c.env, id, ip.data),
          channel_id: channel.id,
          expires_at: null,
          actor_type: "channel",
          actor_id: channel.id,
          created_at: now,
        }),
      );
    }
    statements.push(
      auditStatement(c.env.DB, {
        tenantId: tenant.id,
        actorType: "provider",
        actorId: channel.id,
        action: "consent.banner",
        targetType: "notice",
        targetId: notice.id,
        detail: { method: "banner", granted: entries.filter((e) => e.status === "granted").length, withdrawn: entries.filter((e) => e.status === "withdrawn").length },
      }),
    );
    // One batch: all categories are recorded, or none.
    await c.env.DB.batch(statements);
    c.header("cache-control", "no-store");
    return c.json({ noticeId: notice.id, entries }, 201);
  },
);
