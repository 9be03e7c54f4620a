/**
 * Encrypted files (attachments): uploaded through the API or imported from
 * channel media, stored in R2 as AES-256-GCM ciphertext under a fresh
 * per-object data key, that data key wrapped by the conversation subject's key
 * (so erasing the subject crypto-shreds the file in every copy and backup).
 * The R2 key (`t/<tenant>/a/<attachment id>`) and its metadata hold key ids
 * only, never a person's identifier.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { DecryptionError } from "../lib/crypto";
import { fileMetadataRecord, openFile, parseFileMetadata, sealFile } from "../lib/file-envelope";
import { newId } from "../lib/ids";
import {
  downloadTwilioMedia,
  downloadWhatsAppMedia,
  MEDIA_MAX_BYTES,
  MEDIA_TIMEOUT_MS,
  MediaFetchError,
  mediaTypeEssence,
  type FetchedMedia,
} from "../lib/media-fetch";
import type { MediaRef } from "../durable-objects/conversation";
import { auditStatement, auditStatementIfExists, keyAudit, logSecurityEvent, type AuditEntry } from "./support/audit";
import { requireApiKey, requireScope } from "./support/auth";
import type { AppEnv } from "./support/context";
import { ApiError, forbidden, notFound } from "./support/errors";
import type { WebhookChannel } from "./support/ingest";
import { bearerSecurity, createRouter, ErrorSchema, errorResponses } from "./support/router";
import { subjectKeyById, subjectKeyFor } from "./support/subject-keys";

/** Largest file accepted, uploaded or imported (10 MiB). */
export const ATTACHMENT_MAX_BYTES = MEDIA_MAX_BYTES;
/** Media items imported per inbound message. */
const MAX_IMPORTS_PER_MESSAGE = 10;

const UPLOAD_PATH = /^\/v1\/conversations\/[^/]+\/attachments\/?$/;

/**
 * True for the attachment upload route, which takes raw bytes: app.ts exempts
 * it from the JSON-only and 1 MiB rules of `/v1`, and the route applies its own
 * limit ({@link ATTACHMENT_MAX_BYTES}).
 */
export function isAttachmentUpload(method: string, path: string): boolean {
  return method === "POST" && UPLOAD_PATH.test(path);
}

/** `POST|GET /v1/conversations/{id}/attachments` (mounted at /v1/conversations; authenticated per route). */
export const conversationAttachments = createRouter();
/** `GET /v1/attachments/{id}`. */
export const attachments = createRouter();
attachments.use("*", requireApiKey);

const AttachmentSchema = z
  .object({
    id: z.string(),
    conversationId: z.string(),
    contentType: z.string(),
    size: z.number().int(),
    createdAt: z.string(),
    download: z.string().openapi({ description: "Path of the decrypted bytes: GET it with a non-viewer key" }),
  })
  .openapi("Attachment");

interface AttachmentRow {
  id: string;
  tenant_id: string;
  conversation_id: string;
  subject_hash: string;
  category: string;
  r2_key: string;
  content_type: string;
  size: number;
  key_id: string;
  created_at: number;
}

function attachmentView(row: Pick<AttachmentRow, "id" | "conversation_id" | "content_type" | "size" | "created_at">): z.infer<typeof AttachmentSchema> {
  return {
    id: row.id,
    conversationId: row.conversation_id,
    contentType: row.content_type,
    size: row.size,
    createdAt: new Date(row.created_at).toISOString(),
    download: `/v1/attachments/${row.id}`,
  };
}

/** Where an attachment's ciphertext lives: tenant and attachment ids only. */
export const attachmentObjectKey = (tenantId: string, attachmentId: string): string => `t/${tenantId}/a/${attachmentId}`;

/** An attachment to store. */
export interface NewAttachment {
  tenantId: string;
  conversationId: string;
  bytes: Uint8Array<ArrayBuffer>;
  contentType: string;
}

/**
 * Encrypts and stores a file for a conversation under its subject's key, then
 * records the row and `audit` (action and details; the attachment id is added)
 * in one D1 transaction, only if the conversation still exists. Returns null
 * (and leaves nothing behind) when the conversation is not the tenant's.
 */
export async function storeAttachment(env: Env, input: NewAttachment, audit: Omit<AuditEntry, "tenantId" | "targetType" | "targetId">): Promise<AttachmentRow | null> {
  const conversation = await env.DB.prepare("SELECT subject_hash FROM conversations WHERE id = ? AND tenant_id = ?")
    .bind(input.conversationId, input.tenantId)
    .first<{ subject_hash: string }>();
  if (!conversation) return null;
  const subjectKey = await subjectKeyFor(env, input.tenantId, conversation.subject_hash);
  const now = Date.now();
  const id = newId("att", now);
  const r2Key = attachmentObjectKey(input.tenantId, id);
  const sealed = await sealFile(subjectKey.key, subjectKey.id, input.bytes, r2Key);
  await env.FILES.put(r2Key, sealed.body, {
    httpMetadata: { contentType: "application/octet-stream" },
    customMetadata: fileMetadataRecord(sealed.metadata),
  });
  const row: AttachmentRow = {
    id,
    tenant_id: input.tenantId,
    conversation_id: input.conversationId,
    subject_hash: conversation.subject_hash,
    category: "attachment",
    r2_key: r2Key,
    content_type: input.contentType,
    size: input.bytes.length,
    key_id: subjectKey.id,
    created_at: now,
  };
  let recorded = false;
  try {
    // Inserted only while the conversation (same subject) still exists: an erasure racing the upload wins.
    const [inserted] = await env.DB.batch([
      env.DB.prepare(
        `INSERT INTO attachments (id, tenant_id, conversation_id, subject_hash, category, r2_key, content_type, size, key_id, created_at)
         SELECT ?1, ?2, ?3, ?4, 'attachment', ?5, ?6, ?7, ?8, ?9
         WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?3 AND tenant_id = ?2 AND subject_hash = ?4)`,
      ).bind(row.id, row.tenant_id, row.conversation_id, row.subject_hash, row.r2_key, row.content_type, row.size, row.key_id, row.created_at),
      auditStatementIfExists(
        env.DB,
        { ...audit, tenantId: input.tenantId, targetType: "attachment", targetId: id },
        "SELECT 1 FROM attachments WHERE id = ?",
        id,
      ),
    ]);
    recorded = (inserted?.meta.changes ?? 0) > 0;
  } finally {
    if (!recorded) await env.FILES.delete(r2Key);
  }
  return recorded ? row : null;
}

const ConversationParam = z.object({ id: z.string().max(64) });

/** 415 unless the Content-Type is a single concrete media type (a file's own type; not multipart). */
function uploadContentType(header: string | undefined): string {
  if (!header) throw new ApiError(415, "unsupported_media_type", "Content-Type is required: send the file's bytes as the body with the file's own media type");
  const essence = mediaTypeEssence(header);
  if (!essence) throw new ApiError(415, "unsupported_media_type", "Content-Type is not a valid media type");
  if (essence.startsWith("multipart/")) throw new ApiError(415, "unsupported_media_type", "send the file's bytes as the body (not multipart), with the file's own Content-Type");
  return essence;
}

conversationAttachments.openapi(
  createRoute({
    method: "post",
    path: "/{id}/attachments",
    tags: ["Files"],
    summary: "Upload a file to a conversation (stored encrypted under the end user's key)",
    description: `The body is the file's bytes (not JSON, not multipart) with the file's own Content-Type, at most ${ATTACHMENT_MAX_BYTES} bytes.`,
    security: bearerSecurity,
    middleware: [
      requireApiKey,
      bodyLimit({
        maxSize: ATTACHMENT_MAX_BYTES,
        onError: () => {
          throw new ApiError(413, "payload_too_large", `file exceeds ${ATTACHMENT_MAX_BYTES} bytes`);
        },
      }),
    ] as const,
    request: {
      params: ConversationParam,
      body: { required: true, content: { "*/*": { schema: z.string().openapi({ format: "binary", description: "The file's bytes" }) } } },
    },
    responses: {
      201: { description: "Stored", content: { "application/json": { schema: AttachmentSchema } } },
      ...errorResponses,
      413: { description: `Over ${ATTACHMENT_MAX_BYTES} bytes; nothing stored`, content: { "application/json": { schema: ErrorSchema } } },
      415: { description: "Missing, invalid or multipart Content-Type; nothing stored", content: { "application/json": { schema: ErrorSchema } } },
    },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:write");
    const conversationId = c.req.valid("param").id;
    const contentType = uploadContentType(c.req.header("content-type"));
    const owned = await c.env.DB.prepare("SELECT 1 FROM conversations WHERE id = ? AND tenant_id = ?").bind(conversationId, auth.tenantId).first();
    if (!owned) throw notFound("conversation");
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    if (bytes.length > ATTACHMENT_MAX_BYTES) throw new ApiError(413, "payload_too_large", `file exceeds ${ATTACHMENT_MAX_BYTES} bytes`);
    if (bytes.length === 0) throw new ApiError(400, "validation_error", "request is invalid", [{ path: "(body)", message: "the file is empty" }]);
    const row = await storeAttachment(c.env, { tenantId: auth.tenantId, conversationId, bytes, contentType }, {
      actorType: "api_key",
      actorId: auth.keyId,
      action: "attachment.uploaded",
      detail: { conversationId, bytes: bytes.length, contentType },
    });
    if (!row) throw notFound("conversation");
    return c.json(attachmentView(row), 201);
  },
);

conversationAttachments.openapi(
  createRoute({
    method: "get",
    path: "/{id}/attachments",
    tags: ["Files"],
    summary: "List a conversation's attachments (metadata only)",
    security: bearerSecurity,
    middleware: [requireApiKey] as const,
    request: { params: ConversationParam },
    responses: { 200: { description: "Attachments, oldest first", content: { "application/json": { schema: z.object({ data: z.array(AttachmentSchema) }) } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:read");
    const conversationId = c.req.valid("param").id;
    const conversation = await c.env.DB.prepare("SELECT special_category FROM conversations WHERE id = ? AND tenant_id = ?")
      .bind(conversationId, auth.tenantId)
      .first<{ special_category: number }>();
    if (!conversation) throw notFound("conversation");
    if (conversation.special_category === 1 && auth.role === "viewer") throw forbidden("this conversation contains special categories of personal data; viewer keys cannot open it");
    const { results } = await c.env.DB.prepare(
      "SELECT id, conversation_id, content_type, size, created_at FROM attachments WHERE tenant_id = ? AND conversation_id = ? AND category = 'attachment' ORDER BY created_at, id LIMIT 500",
    )
      .bind(auth.tenantId, conversationId)
      .all<Pick<AttachmentRow, "id" | "conversation_id" | "content_type" | "size" | "created_at">>();
    return c.json({ data: results.map(attachmentView) }, 200);
  },
);

/** Error body for codes outside the shared set (410 `subject_erased`, 409 `integrity_check_failed`). */
function fileError(c: Context<AppEnv>, status: 409 | 410, code: "subject_erased" | "integrity_check_failed", message: string): Response {
  return c.json({ error: { code, message } }, status);
}

attachments.openapi(
  createRoute({
    method: "get",
    path: "/{id}",
    tags: ["Files"],
    summary: "Download an attachment, decrypted (owner, admin and agent keys; audited)",
    security: bearerSecurity,
    request: { params: z.object({ id: z.string().max(64) }) },
    responses: {
      200: { description: "The file's bytes with its stored Content-Type", content: { "*/*": { schema: z.string().openapi({ format: "binary" }) } } },
      ...errorResponses,
      409: { description: "`integrity_check_failed`: the stored object was altered; nothing is served", content: { "application/json": { schema: ErrorSchema } } },
      410: { description: "`subject_erased`: the end user was erased and the file's key destroyed; it can never be read again", content: { "application/json": { schema: ErrorSchema } } },
    },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:read");
    if (auth.role === "viewer") throw forbidden("viewer keys cannot download attachments");
    const id = c.req.valid("param").id;
    const row = await c.env.DB.prepare("SELECT * FROM attachments WHERE id = ? AND tenant_id = ? AND category = 'attachment'").bind(id, auth.tenantId).first<AttachmentRow>();
    if (!row) throw notFound("attachment");
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      const key = await subjectKeyById(c.env, auth.tenantId, row.key_id);
      if (!key) return fileError(c, 410, "subject_erased", "this file's data subject was erased and its key destroyed; the file can never be read again");
      const object = await c.env.FILES.get(row.r2_key);
      if (!object) throw notFound("attachment");
      const metadata = parseFileMetadata(object.customMetadata);
      if (metadata.keyId !== row.key_id) throw new DecryptionError("object names another key than its record");
      bytes = await openFile(key, metadata, new Uint8Array(await object.arrayBuffer()), row.r2_key);
    } catch (err) {
      if (!(err instanceof DecryptionError)) throw err;
      // Never serve anything that does not authenticate (object, metadata or wrapped subject key); leave a trace for the security team.
      await logSecurityEvent(c.env.DB, { tenantId: auth.tenantId, channelId: null, kind: "attachment_integrity", reason: `${row.id}: ${err.message}` });
      return fileError(c, 409, "integrity_check_failed", "the stored file failed its integrity check (altered, or not the object recorded); it was not served");
    }
    await auditStatement(c.env.DB, keyAudit(auth, "attachment.downloaded", "attachment", row.id, { conversationId: row.conversation_id, bytes: bytes.length })).run();
    return new Response(bytes, {
      status: 200,
      headers: {
        "content-type": row.content_type,
        "content-length": String(bytes.length),
        "content-disposition": `attachment; filename="${row.id}"`,
        "cache-control": "no-store",
        // Uploaded content never runs as a page of this origin.
        "content-security-policy": "default-src 'none'; sandbox",
        "x-content-type-options": "nosniff",
      },
    });
  },
);

// ---------------------------------------------------------------- channel media import

function timeoutMs(env: Env): number {
  const value = Number(env.MEDIA_FETCH_TIMEOUT_MS);
  return Number.isFinite(value) && value > 0 ? Math.min(value, 60_000) : MEDIA_TIMEOUT_MS;
}

async function downloadRef(env: Env, channel: WebhookChannel, ref: MediaRef): Promise<{ media: FetchedMedia; declared: string | null }> {
  const options = { timeoutMs: timeoutMs(env), maxBytes: ATTACHMENT_MAX_BYTES };
  if (channel.type === "twilio_sms" || channel.type === "twilio_whatsapp") {
    if (!ref.url || !channel.config.accountSid || !channel.secrets.authToken) throw new MediaFetchError("invalid_url", "Twilio media without a URL or credentials");
    const media = await downloadTwilioMedia({ url: ref.url, accountSid: channel.config.accountSid, authToken: channel.secrets.authToken, apiBase: env.TWILIO_API_BASE }, options);
    return { media, declared: ref.contentType ?? null };
  }
  if (channel.type === "whatsapp_cloud") {
    if (!ref.providerMediaId || !channel.secrets.accessToken) throw new MediaFetchError("invalid_media_id", "WhatsApp media without an id or access token");
    const media = await downloadWhatsAppMedia(
      { mediaId: ref.providerMediaId, accessToken: channel.secrets.accessToken, apiBase: env.WHATSAPP_API_BASE || "https://graph.facebook.com", apiVersion: env.WHATSAPP_API_VERSION || "v21.0" },
      options,
    );
    return { media, declared: ref.contentType ?? media.declaredType };
  }
  throw new MediaFetchError("host_not_allowed", `media of ${channel.type} channels is not imported`);
}

/**
 * Imports the media of an inbound Twilio or WhatsApp message as encrypted
 * attachments of its conversation (run after the webhook answered, in
 * `waitUntil`). Each item is downloaded through the provider's allow-list
 * (lib/media-fetch) and audited as `attachment.imported`, or as
 * `attachment.import_failed` with the reason; it never throws.
 */
export async function importInboundMedia(env: Env, channel: WebhookChannel, conversationId: string, messageId: string, media: readonly MediaRef[]): Promise<{ imported: number; failed: number }> {
  let imported = 0;
  let failed = 0;
  const provider = channel.type === "whatsapp_cloud" ? "whatsapp" : "twilio";
  for (const [index, ref] of media.slice(0, MAX_IMPORTS_PER_MESSAGE).entries()) {
    let reason: string;
    let status: number | undefined;
    try {
      const { media: fetched, declared } = await downloadRef(env, channel, ref);
      if (fetched.bytes.length > 0) {
        // The signed webhook's (or Graph's) declared type first; the download's header only as a fallback.
        const contentType = mediaTypeEssence(declared) ?? mediaTypeEssence(fetched.contentType) ?? "application/octet-stream";
        const row = await storeAttachment(env, { tenantId: channel.tenantId, conversationId, bytes: fetched.bytes, contentType }, {
          actorType: "provider",
          actorId: channel.id,
          action: "attachment.imported",
          detail: { conversationId, messageId, provider, index, bytes: fetched.bytes.length, contentType },
        });
        if (row) {
          imported++;
          continue;
        }
        reason = "conversation_gone";
      } else {
        reason = "empty_media";
      }
    } catch (err) {
      if (err instanceof MediaFetchError) {
        reason = err.reason;
        status = err.status;
      } else {
        reason = "internal_error";
        console.error("media import failed", err instanceof Error ? err.name : "error");
      }
    }
    failed++;
    try {
      await auditStatement(env.DB, {
        tenantId: channel.tenantId,
        actorType: "provider",
        actorId: channel.id,
        action: "attachment.import_failed",
        targetType: "conversation",
        targetId: conversationId,
        detail: { messageId, provider, index, reason, ...(status ? { status } : {}) },
      }).run();
    } catch {
      console.error("media import failure could not be audited", reason);
    }
  }
  return { imported, failed };
}
