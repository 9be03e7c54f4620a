/**
 * Per-type channel configuration (non-secret, stored as JSON) and secrets
 * (stored encrypted). Shared by the API, the webhooks and the conversation
 * object that sends replies.
 */
import { z } from "zod";

const accountSid = z.string().regex(/^AC[0-9a-fA-F]{32}$/, "must be a Twilio Account SID (AC + 32 hex)");
const e164 = z.string().regex(/^\+[1-9]\d{6,14}$/, "must be an E.164 phone number such as +393331234567");
const messagingServiceSid = z.string().regex(/^MG[0-9a-fA-F]{32}$/, "must be a Twilio Messaging Service SID");
const secretString = z.string().min(8).max(512);

export const twilioConfigSchema = z
  .object({ accountSid, from: e164.optional(), messagingServiceSid: messagingServiceSid.optional() })
  .strict()
  .refine((c) => c.from !== undefined || c.messagingServiceSid !== undefined, {
    message: "either from or messagingServiceSid is required",
    path: ["from"],
  });
export const twilioSecretsSchema = z.object({ authToken: secretString }).strict();

export const whatsappConfigSchema = z
  .object({
    phoneNumberId: z.string().regex(/^\d{5,32}$/, "must be the numeric WhatsApp phone number id"),
    businessAccountId: z.string().regex(/^\d{5,32}$/).optional(),
  })
  .strict();
export const whatsappSecretsSchema = z
  .object({ appSecret: secretString, accessToken: z.string().min(8).max(4096), verifyToken: secretString.optional() })
  .strict();

export const customConfigSchema = z
  .object({ callbackUrl: z.url({ protocol: /^https?$/ }).max(2048).optional() })
  .strict();

export const webChatConfigSchema = z
  .object({ allowedOrigins: z.array(z.url({ protocol: /^https?$/ }).max(256)).max(20).default([]) })
  .strict();

/** Secrets as stored (after generation of any the caller did not supply). */
export const storedSecretsSchema = z
  .object({
    authToken: z.string().optional(),
    appSecret: z.string().optional(),
    accessToken: z.string().optional(),
    verifyToken: z.string().optional(),
    signingSecret: z.string().optional(),
    /** Previous signing secret, still accepted until `previousExpiresAt` (ms). */
    previousSigningSecret: z.string().optional(),
    previousExpiresAt: z.number().optional(),
  })
  .strict();
export type StoredSecrets = z.infer<typeof storedSecretsSchema>;

export const storedConfigSchema = z
  .object({
    accountSid: z.string().optional(),
    from: z.string().optional(),
    messagingServiceSid: z.string().optional(),
    phoneNumberId: z.string().optional(),
    businessAccountId: z.string().optional(),
    callbackUrl: z.string().optional(),
    allowedOrigins: z.array(z.string()).optional(),
  })
  .strict();
export type StoredConfig = z.infer<typeof storedConfigSchema>;

/** Hours after which a rotated custom-channel signing secret stops being accepted. */
export const ROTATION_GRACE_MS = 24 * 60 * 60 * 1000;

/** Signing secrets accepted right now (current, plus the previous one during its grace period). */
export function acceptedSigningSecrets(secrets: StoredSecrets, now: number): string[] {
  const out: string[] = [];
  if (secrets.signingSecret) out.push(secrets.signingSecret);
  if (secrets.previousSigningSecret && (secrets.previousExpiresAt ?? 0) > now) out.push(secrets.previousSigningSecret);
  return out;
}

/** True when a callback host is loopback or a private/link-local literal (refused unless insecure callbacks are allowed). */
export function isPrivateHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (host === "localhost" || host.endsWith(".localhost") || host.endsWith(".local") || host.endsWith(".internal")) return true;
  const v4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  if (v4) {
    const [a, b] = [Number(v4[1]), Number(v4[2])];
    return a === 0 || a === 10 || a === 127 || (a === 169 && b === 254) || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 100 && b >= 64 && b <= 127);
  }
  if (host.includes(":")) return host === "::1" || host === "::" || host.startsWith("fc") || host.startsWith("fd") || host.startsWith("fe80") || host.startsWith("::ffff:");
  return false;
}

/** Why a callback URL is refused, or null when it may be called. */
export function callbackUrlProblem(url: string, allowInsecure: boolean): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "callbackUrl is not a valid URL";
  }
  if (allowInsecure) return null;
  if (parsed.protocol !== "https:") return "callbackUrl must use https";
  if (isPrivateHost(parsed.hostname)) return "callbackUrl must not point to a private or loopback address";
  if (parsed.username || parsed.password) return "callbackUrl must not embed credentials";
  return null;
}
