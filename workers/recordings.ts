/**
 * Recordings (started only with every participant's consent) and voice models
 * (only under a current voice_clone consent; deleted when it is withdrawn or
 * lapses). Audio is stored in R2 encrypted with AES-256-GCM under a fresh
 * per-object data key wrapped by MASTER_KEY.
 */
import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { DecryptionError, sealBytes } from "../lib/crypto";
import { fromBase64 } from "../lib/encoding";
import { newId } from "../lib/ids";
import { newDataKey, OBJECT_CIPHER, OBJECT_FORMAT, openObject, sealObject } from "../lib/consent/sealed-object";
import { MEDIA_MAX_BYTES, mediaTypeEssence } from "../lib/media-fetch";
import { isGranted, stateOf } from "../lib/consent/purposes";
import { auditStatement, keyAudit } from "./support/audit";
import { requireApiKey, requireScope } from "./support/auth";
import {
  ensureDefaultNotices,
  latestEntries,
  latestNotice,
  loadConsentTenant,
  purgeLapsedVoiceModels,
  purgeVoiceModels,
  subjectOf,
  type LatestEntry,
} from "./support/consent-store";
import type { AppEnv } from "./support/context";
import { ApiError, conflict, forbidden, notFound, zodIssues } from "./support/errors";
import { masterKeyring, openWithMasterKey } from "./support/keyring";
import { bearerSecurity, createRouter, errorResponses } from "./support/router";

/** `POST /v1/conversations/{id}/recordings` (mounted at /v1/conversations; authenticated per route). */
export const conversationRecordings = createRouter();
/** `/v1/recordings/{id}…` */
export const recordings = createRouter();
recordings.use("*", requireApiKey);
/** `/v1/voice-models…` */
export const voiceModels = createRouter();
voiceModels.use("*", requireApiKey);

/** Largest audio accepted base64-encoded inside a JSON body (the API takes JSON bodies of at most 1 MiB). */
export const MAX_AUDIO_BYTES = 700 * 1024;
/** Largest recording audio accepted as raw bytes (`PUT /v1/recordings/{id}/audio` with an `audio/*` Content-Type). */
export const MAX_RAW_AUDIO_BYTES = MEDIA_MAX_BYTES;

const RAW_AUDIO_PATH = /^\/v1\/recordings\/[^/]+\/audio\/?$/;
const AUDIO_TYPE = /^audio\/[a-z0-9.+-]{1,60}$/;

/**
 * True for a recording's audio sent as raw bytes: app.ts exempts it from the JSON-only
 * and 1 MiB rules of `/v1`, and the route applies its own limit ({@link MAX_RAW_AUDIO_BYTES}).
 */
export function isRawAudioUpload(method: string, path: string, contentType: string | undefined): boolean {
  return method === "PUT" && RAW_AUDIO_PATH.test(path) && (mediaTypeEssence(contentType) ?? "").startsWith("audio/");
}

const MAX_EXTRA_PARTICIPANTS = 10;

const issue = (path: string, message: string) => new ApiError(400, "validation_error", "request is invalid", [{ path, message }]);

// ---------------------------------------------------------------- encrypted objects

/**
 * Stores bytes encrypted under a fresh data key, at `<prefix>/<data key id>`
 * (a new key per upload, so concurrent uploads never overwrite each other's
 * object). Returns the object key, the wrapped data key and its id (also in
 * the object's metadata).
 */
async function putSealedObject(env: Env, prefix: string, bytes: Uint8Array<ArrayBuffer>): Promise<{ objectKey: string; dataKey: string; dataKeyId: string }> {
  const { key, keyId } = await masterKeyring(env);
  const raw = newDataKey();
  const dataKeyId = newId("dk");
  const objectKey = `${prefix}/${dataKeyId}`;
  const dataKey = await sealBytes(key, keyId, raw, `object-key:${objectKey}`);
  const sealed = await sealObject(raw, bytes, `object:${objectKey}`);
  await env.FILES.put(objectKey, sealed, {
    httpMetadata: { contentType: "application/octet-stream" },
    customMetadata: { cipher: OBJECT_CIPHER, format: OBJECT_FORMAT, keyId: dataKeyId, masterKeyId: keyId },
  });
  return { objectKey, dataKey, dataKeyId };
}

/** Runs the D1 write that records a stored object; if it fails or records nothing, the object is deleted again. */
async function recordObject(env: Env, objectKey: string, write: () => Promise<boolean>): Promise<boolean> {
  let recorded = false;
  try {
    recorded = await write();
  } finally {
    if (!recorded) await env.FILES.delete(objectKey);
  }
  return recorded;
}

/** Reads and decrypts an object stored by {@link putSealedObject}; null when it is gone. */
async function getSealedObject(env: Env, objectKey: string, wrappedKey: string): Promise<Uint8Array<ArrayBuffer> | null> {
  const object = await env.FILES.get(objectKey);
  if (!object) return null;
  const raw = await openWithMasterKey(env, wrappedKey, `object-key:${objectKey}`);
  return openObject(raw, new Uint8Array(await object.arrayBuffer()), `object:${objectKey}`);
}

const AudioBody = z
  .object({
    contentType: z.string().regex(AUDIO_TYPE, "an audio/* media type"),
    data: z
      .string()
      .min(1)
      .max(Math.ceil(MAX_AUDIO_BYTES / 3) * 4 + 4)
      .openapi({ description: `Base64 of the audio bytes (at most ${MAX_AUDIO_BYTES} bytes)` }),
  })
  .strict();

function decodeAudio(data: string, path: string): Uint8Array<ArrayBuffer> {
  const bytes = fromBase64(data);
  if (!bytes || bytes.length === 0) throw issue(path, "not base64 audio");
  if (bytes.length > MAX_AUDIO_BYTES) throw issue(path, `audio over ${MAX_AUDIO_BYTES} bytes`);
  return bytes;
}

/** The audio of a `PUT /v1/recordings/{id}/audio`: raw bytes with an audio/* type, or the JSON form. */
async function uploadedAudio(c: Context<AppEnv>): Promise<{ bytes: Uint8Array<ArrayBuffer>; contentType: string }> {
  const header = c.req.header("content-type");
  if (isRawAudioUpload(c.req.method, c.req.path, header)) {
    const contentType = mediaTypeEssence(header) ?? "";
    if (!AUDIO_TYPE.test(contentType)) throw new ApiError(415, "unsupported_media_type", "Content-Type must be an audio/* media type");
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    if (bytes.length > MAX_RAW_AUDIO_BYTES) throw new ApiError(413, "payload_too_large", `audio exceeds ${MAX_RAW_AUDIO_BYTES} bytes`);
    if (bytes.length === 0) throw issue("(body)", "the audio is empty");
    return { bytes, contentType };
  }
  // JSON (the only other type app.ts lets through); a request without a body fails here too.
  const parsed = AudioBody.safeParse(await c.req.json().catch(() => undefined));
  if (!parsed.success) throw new ApiError(400, "validation_error", "request is invalid", zodIssues(parsed.error));
  return { bytes: decodeAudio(parsed.data.data, "data"), contentType: parsed.data.contentType };
}

// ---------------------------------------------------------------- recordings

const RecordingSchema = z
  .object({
    id: z.string(),
    conversationId: z.string(),
    status: z.enum(["recording", "stored"]),
    participants: z.number().int(),
    consentIds: z.array(z.string()),
    contentType: z.string().nullable(),
    size: z.number().int().nullable(),
    startedAt: z.string(),
    uploadedAt: z.string().nullable(),
  })
  .openapi("Recording");

interface RecordingRow {
  id: string;
  tenant_id: string;
  conversation_id: string;
  status: "recording" | "stored";
  participant_hashes: string;
  consent_ids: string;
  object_key: string | null;
  data_key: string | null;
  data_key_id: string | null;
  content_type: string | null;
  size: number | null;
  started_at: number;
  uploaded_at: number | null;
}

const stringArray = z.array(z.string());

function recordingView(row: RecordingRow): z.infer<typeof RecordingSchema> {
  const participants = stringArray.safeParse(JSON.parse(row.participant_hashes));
  const consentIds = stringArray.safeParse(JSON.parse(row.consent_ids));
  return {
    id: row.id,
    conversationId: row.conversation_id,
    status: row.status,
    participants: participants.success ? participants.data.length : 0,
    consentIds: consentIds.success ? consentIds.data : [],
    contentType: row.content_type,
    size: row.size,
    startedAt: new Date(row.started_at).toISOString(),
    uploadedAt: row.uploaded_at === null ? null : new Date(row.uploaded_at).toISOString(),
  };
}

/** Each participant's current recording grant, or the labels of those without one. */
async function recordingConsents(env: Env, tenantId: string, participants: readonly { label: string; subjectHash: string }[]) {
  const latest = await latestEntries(
    env,
    tenantId,
    participants.map((p) => p.subjectHash),
    ["recording"],
  );
  const now = Date.now();
  const granted: LatestEntry[] = [];
  const missing: { participant: string; subjectHash: string; state: string }[] = [];
  for (const p of participants) {
    const entry = latest.get(p.subjectHash)?.get("recording");
    const state = stateOf(entry, now);
    if (entry && isGranted(state)) granted.push(entry);
    else missing.push({ participant: p.label, subjectHash: p.subjectHash, state: state.state });
  }
  return { granted, missing };
}

const StartBody = z
  .object({
    participants: z
      .array(z.object({ address: z.string().min(1).max(320) }).strict())
      .max(MAX_EXTRA_PARTICIPANTS)
      .default([])
      .openapi({ description: "People on the call besides the conversation's end user (agents, third parties)" }),
  })
  .strict();

const MissingConsentSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), issues: z.array(z.object({ path: z.string(), message: z.string() })) }),
  missingConsent: z.array(z.object({ participant: z.string(), subjectHash: z.string(), state: z.string() })),
  withoutRecording: z.object({ allowed: z.literal(true), message: z.string(), noticeIds: z.record(z.string(), z.string()) }),
});

conversationRecordings.openapi(
  createRoute({
    method: "post",
    path: "/{id}/recordings",
    tags: ["Recordings"],
    summary: "Start recording a conversation (every participant must have a current recording consent)",
    description:
      "Participants are the conversation's end user plus the addresses given. If any has no current `recording` consent the answer is 409 with the participants missing it; the conversation goes on unrecorded.",
    security: bearerSecurity,
    middleware: [requireApiKey] as const,
    request: { params: z.object({ id: z.string().max(64) }), body: { required: false, content: { "application/json": { schema: StartBody } } } },
    responses: {
      201: { description: "Recording started", content: { "application/json": { schema: RecordingSchema } } },
      ...errorResponses,
      409: { description: "A participant has not consented: not recorded", content: { "application/json": { schema: MissingConsentSchema } } },
    },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:write");
    const conversationId = c.req.valid("param").id;
    // No body (or `{}`) means: only the conversation's end user takes part.
    const extra = c.req.valid("json")?.participants ?? [];
    const conversation = await c.env.DB.prepare("SELECT subject_hash FROM conversations WHERE id = ? AND tenant_id = ?")
      .bind(conversationId, auth.tenantId)
      .first<{ subject_hash: string }>();
    if (!conversation) throw notFound("conversation");
    const tenant = await loadConsentTenant(c.env, auth.tenantId);
    const participants = [{ label: "end_user", subjectHash: conversation.subject_hash }];
    for (const [i, p] of extra.entries()) {
      const subject = await subjectOf(tenant, p.address);
      if (!subject) throw issue(`participants.${i}.address`, "not a usable address");
      if (!participants.some((q) => q.subjectHash === subject.subjectHash)) participants.push({ label: `participants.${i}`, subjectHash: subject.subjectHash });
    }
    const { granted, missing } = await recordingConsents(c.env, auth.tenantId, participants);
    if (missing.length > 0) {
      await ensureDefaultNotices(c.env, tenant);
      const noticeIds: Record<string, string> = {};
      for (const locale of ["en", "it"]) {
        const notice = await latestNotice(c.env, auth.tenantId, "recording", locale);
        if (notice) noticeIds[locale] = notice.id;
      }
      return c.json(
        {
          error: {
            code: "conflict",
            message: `not recorded: ${missing.length} participant(s) have no current recording consent`,
            issues: missing.map((m) => ({ path: m.participant, message: `recording consent is ${m.state === "none" ? "missing" : m.state}` })),
          },
          missingConsent: missing,
          withoutRecording: {
            allowed: true as const,
            message: "The conversation continues without recording. Show the recording notice to the missing participants, record their consent, and start again.",
            noticeIds,
          },
        },
        409,
      );
    }
    const now = Date.now();
    const id = newId("rec", now);
    const row: RecordingRow = {
      id,
      tenant_id: auth.tenantId,
      conversation_id: conversationId,
      status: "recording",
      participant_hashes: JSON.stringify(participants.map((p) => p.subjectHash)),
      consent_ids: JSON.stringify(granted.map((g) => g.id)),
      object_key: null,
      data_key: null,
      data_key_id: null,
      content_type: null,
      size: null,
      started_at: now,
      uploaded_at: null,
    };
    await c.env.DB.batch([
      c.env.DB.prepare(
        "INSERT INTO recordings (id, tenant_id, conversation_id, status, participant_hashes, consent_ids, started_at) VALUES (?, ?, ?, 'recording', ?, ?, ?)",
      ).bind(id, auth.tenantId, conversationId, row.participant_hashes, row.consent_ids, now),
      auditStatement(c.env.DB, keyAudit(auth, "recording.started", "recording", id, { conversationId, participants: participants.length })),
    ]);
    return c.json(recordingView(row), 201);
  },
);

async function loadRecording(c: Context<AppEnv>, id: string): Promise<RecordingRow> {
  const row = await c.env.DB.prepare("SELECT * FROM recordings WHERE id = ? AND tenant_id = ?").bind(id, c.get("auth").tenantId).first<RecordingRow>();
  if (!row) throw notFound("recording");
  return row;
}

const RecordingParam = z.object({ id: z.string().max(64) });

recordings.openapi(
  createRoute({
    method: "get",
    path: "/{id}",
    tags: ["Recordings"],
    summary: "A recording's metadata",
    security: bearerSecurity,
    request: { params: RecordingParam },
    responses: { 200: { description: "The recording", content: { "application/json": { schema: RecordingSchema } } }, ...errorResponses },
  }),
  async (c) => {
    requireScope(c, "conversations:read");
    return c.json(recordingView(await loadRecording(c, c.req.valid("param").id)), 200);
  },
);

recordings.openapi(
  createRoute({
    method: "put",
    path: "/{id}/audio",
    tags: ["Recordings"],
    summary: "Upload a started recording's audio (stored encrypted; once)",
    description: `Either the raw audio bytes with their own \`audio/*\` Content-Type (at most ${MAX_RAW_AUDIO_BYTES} bytes), or JSON \`{ contentType, data }\` with the bytes base64-encoded (at most ${MAX_AUDIO_BYTES} bytes). Consents are checked again: if a participant withdrew since the start, nothing is stored (409).`,
    security: bearerSecurity,
    middleware: [
      bodyLimit({
        maxSize: MAX_RAW_AUDIO_BYTES,
        onError: () => {
          throw new ApiError(413, "payload_too_large", `audio exceeds ${MAX_RAW_AUDIO_BYTES} bytes`);
        },
      }),
    ] as const,
    request: {
      params: RecordingParam,
      body: {
        required: false,
        content: {
          "application/json": { schema: AudioBody },
          "audio/*": { schema: z.string().openapi({ format: "binary", description: "The audio bytes" }) },
        },
      },
    },
    responses: {
      200: { description: "Stored", content: { "application/json": { schema: RecordingSchema } } },
      ...errorResponses,
      409: { description: "Already uploaded, or a participant's consent is no longer current" },
      413: { description: `Raw audio over ${MAX_RAW_AUDIO_BYTES} bytes; nothing stored`, content: errorResponses[400].content },
      415: { description: "Neither JSON nor an audio/* media type; nothing stored", content: errorResponses[400].content },
    },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:write");
    const row = await loadRecording(c, c.req.valid("param").id);
    const audio = await uploadedAudio(c);
    const bytes = audio.bytes;
    if (row.status !== "recording") throw conflict("this recording's audio was already uploaded");
    const hashes = stringArray.parse(JSON.parse(row.participant_hashes));
    const { missing } = await recordingConsents(
      c.env,
      auth.tenantId,
      hashes.map((h, i) => ({ label: i === 0 ? "end_user" : `participants.${i}`, subjectHash: h })),
    );
    if (missing.length > 0) throw conflict(`not stored: ${missing.length} participant(s) no longer consent to recording`);
    const sealed = await putSealedObject(c.env, `tenants/${auth.tenantId}/recordings/${row.id}`, bytes);
    const now = Date.now();
    const stored = await recordObject(c.env, sealed.objectKey, async () => {
      const updated = await c.env.DB.prepare(
        "UPDATE recordings SET status = 'stored', object_key = ?, data_key = ?, data_key_id = ?, content_type = ?, size = ?, uploaded_at = ? WHERE id = ? AND tenant_id = ? AND status = 'recording'",
      )
        .bind(sealed.objectKey, sealed.dataKey, sealed.dataKeyId, audio.contentType, bytes.length, now, row.id, auth.tenantId)
        .run();
      return updated.meta.changes > 0;
    });
    if (!stored) throw conflict("this recording's audio was already uploaded");
    await auditStatement(c.env.DB, keyAudit(auth, "recording.uploaded", "recording", row.id, { bytes: bytes.length })).run();
    return c.json(recordingView({ ...row, status: "stored", object_key: sealed.objectKey, content_type: audio.contentType, size: bytes.length, uploaded_at: now }), 200);
  },
);

recordings.openapi(
  createRoute({
    method: "get",
    path: "/{id}/audio",
    tags: ["Recordings"],
    summary: "Download a recording's audio, decrypted (not for viewer keys; audited)",
    security: bearerSecurity,
    request: { params: RecordingParam },
    responses: { 200: { description: "The audio bytes", content: { "audio/*": { schema: z.string().openapi({ format: "binary" }) } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "conversations:read");
    if (auth.role === "viewer") throw forbidden("viewer keys cannot play recordings");
    const row = await loadRecording(c, c.req.valid("param").id);
    if (row.status !== "stored" || !row.object_key || !row.data_key) throw notFound("recording audio");
    let bytes: Uint8Array<ArrayBuffer> | null;
    try {
      bytes = await getSealedObject(c.env, row.object_key, row.data_key);
    } catch (err) {
      if (!(err instanceof DecryptionError)) throw err;
      // Tampered bytes or a destroyed key: never serve anything, and say so in the logs.
      console.error("recording failed its integrity check", row.id);
      throw new ApiError(500, "internal_error", "the stored recording failed its integrity check");
    }
    if (!bytes) throw notFound("recording audio");
    await auditStatement(c.env.DB, keyAudit(auth, "recording.audio_read", "recording", row.id)).run();
    return new Response(bytes, { status: 200, headers: { "content-type": row.content_type ?? "application/octet-stream", "cache-control": "no-store" } });
  },
);

// ---------------------------------------------------------------- voice models

const VoiceModelSchema = z
  .object({
    id: z.string(),
    subjectHash: z.string(),
    name: z.string(),
    status: z.enum(["active", "deleting"]),
    consentId: z.string(),
    expiresAt: z.string().nullable(),
    metadata: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    contentType: z.string(),
    size: z.number().int(),
    createdAt: z.string(),
  })
  .openapi("VoiceModel");

interface VoiceModelRow {
  id: string;
  subject_hash: string;
  name: string;
  status: "active" | "deleting";
  consent_id: string;
  expires_at: number | null;
  metadata: string;
  content_type: string;
  size: number;
  created_at: number;
}

const Metadata = z
  .record(z.string().min(1).max(40), z.union([z.string().max(200), z.number(), z.boolean()]))
  .refine((m) => Object.keys(m).length <= 20, "at most 20 keys");

function voiceModelView(row: VoiceModelRow): z.infer<typeof VoiceModelSchema> {
  const metadata = Metadata.safeParse(JSON.parse(row.metadata));
  return {
    id: row.id,
    subjectHash: row.subject_hash,
    name: row.name,
    status: row.status,
    consentId: row.consent_id,
    expiresAt: row.expires_at === null ? null : new Date(row.expires_at).toISOString(),
    metadata: metadata.success ? metadata.data : {},
    contentType: row.content_type,
    size: row.size,
    createdAt: new Date(row.created_at).toISOString(),
  };
}

const CreateVoiceModelBody = z
  .object({
    subject: z.string().min(1).max(320).openapi({ description: "The voice owner's address (normalised and hashed, never stored)" }),
    name: z.string().trim().min(1).max(100),
    metadata: Metadata.default({}).openapi({ description: "Non-personal metadata (provider, language, model reference)" }),
    sourceAudio: AudioBody,
  })
  .strict();

voiceModels.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Recordings"],
    summary: "Register a voice model with its source audio (needs the owner's current voice_clone consent)",
    description: "The model lives no longer than the consent: withdrawing it, or its expiry, deletes the model and its source audio.",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: CreateVoiceModelBody } } } },
    responses: {
      201: { description: "Registered", content: { "application/json": { schema: VoiceModelSchema } } },
      ...errorResponses,
      409: { description: "No current voice_clone consent" },
    },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const body = c.req.valid("json");
    const bytes = decodeAudio(body.sourceAudio.data, "sourceAudio.data");
    const tenant = await loadConsentTenant(c.env, auth.tenantId);
    const subject = await subjectOf(tenant, body.subject);
    if (!subject) throw issue("subject", "not a usable address");
    const consent = (await latestEntries(c.env, auth.tenantId, [subject.subjectHash], ["voice_clone"])).get(subject.subjectHash)?.get("voice_clone");
    if (!consent || !isGranted(stateOf(consent, Date.now()))) throw conflict("the voice owner has no current voice_clone consent");
    const now = Date.now();
    const id = newId("vm", now);
    const sealed = await putSealedObject(c.env, `tenants/${auth.tenantId}/voice-models/${id}`, bytes);
    // Inserted only if that grant is still the latest entry: a withdrawal racing this request wins.
    const stored = await recordObject(c.env, sealed.objectKey, async () => {
      const inserted = await c.env.DB.prepare(
        `INSERT INTO voice_models (id, tenant_id, subject_hash, name, status, consent_id, expires_at, metadata, object_key, data_key, data_key_id, content_type, size, created_at)
         SELECT ?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13
         WHERE (SELECT id FROM consents WHERE tenant_id = ?2 AND subject_hash = ?3 AND purpose = 'voice_clone' ORDER BY seq DESC LIMIT 1) = ?5`,
      )
        .bind(
          id,
          auth.tenantId,
          subject.subjectHash,
          body.name,
          consent.id,
          consent.expiresAt,
          JSON.stringify(body.metadata),
          sealed.objectKey,
          sealed.dataKey,
          sealed.dataKeyId,
          body.sourceAudio.contentType,
          bytes.length,
          now,
        )
        .run();
      return inserted.meta.changes > 0;
    });
    if (!stored) throw conflict("the voice owner's consent changed meanwhile; nothing was stored");
    await auditStatement(c.env.DB, keyAudit(auth, "voice_model.created", "voice_model", id, { bytes: bytes.length, consentId: consent.id })).run();
    const row = await c.env.DB.prepare("SELECT * FROM voice_models WHERE id = ?").bind(id).first<VoiceModelRow>();
    if (!row) throw notFound("voice model");
    return c.json(voiceModelView(row), 201);
  },
);

voiceModels.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Recordings"],
    summary: "List voice models (lapsed ones are deleted first)",
    security: bearerSecurity,
    request: { query: z.object({ subjectHash: z.string().regex(/^[0-9a-f]{64}$/).optional() }) },
    responses: { 200: { description: "Voice models", content: { "application/json": { schema: z.object({ data: z.array(VoiceModelSchema) }) } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:read");
    await purgeLapsedVoiceModels(c.env, auth.tenantId);
    const subjectHash = c.req.valid("query").subjectHash;
    const { results } = await c.env.DB.prepare(
      `SELECT * FROM voice_models WHERE tenant_id = ? ${subjectHash ? "AND subject_hash = ?" : ""} ORDER BY created_at DESC LIMIT 500`,
    )
      .bind(...(subjectHash ? [auth.tenantId, subjectHash] : [auth.tenantId]))
      .all<VoiceModelRow>();
    return c.json({ data: results.map(voiceModelView) }, 200);
  },
);

voiceModels.openapi(
  createRoute({
    method: "get",
    path: "/{id}",
    tags: ["Recordings"],
    summary: "Get a voice model",
    security: bearerSecurity,
    request: { params: z.object({ id: z.string().max(64) }) },
    responses: { 200: { description: "The voice model", content: { "application/json": { schema: VoiceModelSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:read");
    await purgeLapsedVoiceModels(c.env, auth.tenantId);
    const row = await c.env.DB.prepare("SELECT * FROM voice_models WHERE id = ? AND tenant_id = ?").bind(c.req.valid("param").id, auth.tenantId).first<VoiceModelRow>();
    if (!row) throw notFound("voice model");
    return c.json(voiceModelView(row), 200);
  },
);

voiceModels.openapi(
  createRoute({
    method: "delete",
    path: "/{id}",
    tags: ["Recordings"],
    summary: "Delete a voice model and its source audio (recorded in the deletion log)",
    security: bearerSecurity,
    request: { params: z.object({ id: z.string().max(64) }) },
    responses: { 200: { description: "Deleted", content: { "application/json": { schema: z.object({ deleted: z.literal(true) }) } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "privacy:write");
    const id = c.req.valid("param").id;
    const exists = await c.env.DB.prepare("SELECT 1 FROM voice_models WHERE id = ? AND tenant_id = ?").bind(id, auth.tenantId).first();
    if (!exists) throw notFound("voice model");
    await purgeVoiceModels(c.env, auth.tenantId, { id, reason: "tenant_request" }, { actorType: "api_key", actorId: auth.keyId });
    return c.json({ deleted: true as const }, 200);
  },
);
