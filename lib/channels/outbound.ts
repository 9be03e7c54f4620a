/**
 * Outbound message delivery to each provider's API (Twilio Messages, WhatsApp
 * Graph, a custom callback URL), through `fetch` and configurable base URLs.
 * Classifies every failure as retryable or final so the caller can back off.
 */
import { z } from "zod";
import { parleySignature } from "../signatures";
import type { StoredConfig, StoredSecrets } from "./config";

/** Result of one delivery attempt. */
export type SendResult =
  | { ok: true; providerMessageId: string | null; providerStatus: string }
  | { ok: false; retryable: boolean; reason: string; retryAfterMs?: number };

/** What the caller knows about the message to deliver. */
export interface OutboundMessage {
  messageId: string;
  conversationId: string;
  channelId: string;
  /** Normalised subject address (`tel:+…`, `email:…`, `id:…`). */
  to: string;
  text: string;
  createdAt: number;
}

/** Provider endpoints and limits from configuration. */
export interface OutboundOptions {
  twilioApiBase: string;
  whatsappApiBase: string;
  whatsappApiVersion: string;
  /** Where Twilio should post delivery statuses for this message (absolute URL), if known. */
  statusCallbackUrl?: string;
  timeoutMs?: number;
  fetcher?: typeof fetch;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** Parses `Retry-After` (seconds or an HTTP date) into milliseconds from now. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function retryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

async function attempt(
  options: OutboundOptions,
  url: string,
  init: RequestInit,
  onSuccess: (body: unknown) => SendResult,
  describeError: (status: number, body: unknown) => { reason: string; retryable?: boolean },
): Promise<SendResult> {
  const fetcher = options.fetcher ?? fetch;
  let response: Response;
  try {
    response = await fetcher(url, { ...init, signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS) });
  } catch (err) {
    const name = err instanceof Error ? err.name : "Error";
    return { ok: false, retryable: true, reason: name === "TimeoutError" ? "provider_timeout" : "network_error" };
  }
  const body = await readJson(response);
  if (response.ok) return onSuccess(body);
  const described = describeError(response.status, body);
  const result: SendResult = {
    ok: false,
    retryable: described.retryable ?? retryableStatus(response.status),
    reason: described.reason,
  };
  const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
  return retryAfterMs === undefined ? result : { ...result, retryAfterMs };
}

const twilioOk = z.object({ sid: z.string(), status: z.string().optional() });
const twilioError = z.object({ code: z.number().nullish(), message: z.string().nullish() });

function phoneOf(address: string): string | null {
  return address.startsWith("tel:") ? address.slice(4) : null;
}

/** Sends through Twilio's Messages API (SMS, or WhatsApp with `whatsapp:` addresses). */
export async function sendTwilio(
  message: OutboundMessage,
  config: StoredConfig,
  secrets: StoredSecrets,
  whatsapp: boolean,
  options: OutboundOptions,
): Promise<SendResult> {
  const phone = phoneOf(message.to);
  if (!config.accountSid || !secrets.authToken) return { ok: false, retryable: false, reason: "channel_misconfigured" };
  if (!phone) return { ok: false, retryable: false, reason: "recipient_not_a_phone_number" };
  const prefix = whatsapp ? "whatsapp:" : "";
  const form = new URLSearchParams({ To: prefix + phone, Body: message.text });
  if (config.messagingServiceSid) form.set("MessagingServiceSid", config.messagingServiceSid);
  if (config.from) form.set("From", prefix + config.from);
  if (options.statusCallbackUrl) form.set("StatusCallback", options.statusCallbackUrl);
  const url = `${options.twilioApiBase.replace(/\/$/, "")}/2010-04-01/Accounts/${encodeURIComponent(config.accountSid)}/Messages.json`;
  return attempt(
    options,
    url,
    {
      method: "POST",
      headers: {
        authorization: `Basic ${btoa(`${config.accountSid}:${secrets.authToken}`)}`,
        "content-type": "application/x-www-form-urlencoded",
        accept: "application/json",
      },
      body: form.toString(),
    },
    (body) => {
      const parsed = twilioOk.safeParse(body);
      return parsed.success
        ? { ok: true, providerMessageId: parsed.data.sid, providerStatus: parsed.data.status ?? "queued" }
        : { ok: false, retryable: true, reason: "provider_bad_response" };
    },
    (status, body) => {
      const parsed = twilioError.safeParse(body);
      const code = parsed.success && parsed.data.code ? `twilio_${parsed.data.code}` : `http_${status}`;
      return { reason: code };
    },
  );
}

const graphOk = z.object({ messages: z.array(z.object({ id: z.string() })).min(1) });
const graphError = z.object({ error: z.object({ code: z.number().optional(), message: z.string().optional() }) });
/** Graph error codes that mean "slow down", whatever the HTTP status. */
const GRAPH_THROTTLE_CODES = new Set([4, 17, 32, 613, 80007, 130429, 131048, 131056]);

/** Sends a text message through the WhatsApp Cloud API (Graph). */
export async function sendWhatsApp(
  message: OutboundMessage,
  config: StoredConfig,
  secrets: StoredSecrets,
  options: OutboundOptions,
): Promise<SendResult> {
  const phone = phoneOf(message.to);
  if (!config.phoneNumberId || !secrets.accessToken) return { ok: false, retryable: false, reason: "channel_misconfigured" };
  if (!phone) return { ok: false, retryable: false, reason: "recipient_not_a_phone_number" };
  const url = `${options.whatsappApiBase.replace(/\/$/, "")}/${options.whatsappApiVersion}/${encodeURIComponent(config.phoneNumberId)}/messages`;
  return attempt(
    options,
    url,
    {
      method: "POST",
      headers: { authorization: `Bearer ${secrets.accessToken}`, "content-type": "application/json" },
      body: JSON.stringify({
        messaging_product: "whatsapp",
        recipient_type: "individual",
        to: phone.slice(1),
        type: "text",
        text: { preview_url: false, body: message.text },
      }),
    },
    (body) => {
      const parsed = graphOk.safeParse(body);
      const first = parsed.success ? parsed.data.messages[0] : undefined;
      return first
        ? { ok: true, providerMessageId: first.id, providerStatus: "sent" }
        : { ok: false, retryable: true, reason: "provider_bad_response" };
    },
    (status, body) => {
      const parsed = graphError.safeParse(body);
      const code = parsed.success ? parsed.data.error.code : undefined;
      if (code !== undefined && GRAPH_THROTTLE_CODES.has(code)) return { reason: `whatsapp_${code}`, retryable: true };
      return { reason: code !== undefined ? `whatsapp_${code}` : `http_${status}` };
    },
  );
}

const customOk = z.object({ id: z.string().max(256).optional() }).loose();

/** Posts the message, signed with `X-Parley-Signature`, to a custom channel's callback URL. */
export async function sendCustom(
  message: OutboundMessage,
  config: StoredConfig,
  secrets: StoredSecrets,
  options: OutboundOptions,
): Promise<SendResult> {
  if (!config.callbackUrl) return { ok: false, retryable: false, reason: "no_callback_url" };
  if (!secrets.signingSecret) return { ok: false, retryable: false, reason: "channel_misconfigured" };
  const body = JSON.stringify({
    type: "message",
    id: message.messageId,
    conversationId: message.conversationId,
    channelId: message.channelId,
    to: message.to.replace(/^(tel|email|id):/, ""),
    text: message.text,
    createdAt: new Date(message.createdAt).toISOString(),
  });
  const signature = await parleySignature(secrets.signingSecret, body, Math.floor(Date.now() / 1000));
  return attempt(
    options,
    config.callbackUrl,
    {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-parley-signature": signature,
        "idempotency-key": message.messageId,
      },
      body,
      redirect: "manual",
    },
    (response) => {
      const parsed = customOk.safeParse(response);
      return { ok: true, providerMessageId: parsed.success ? (parsed.data.id ?? null) : null, providerStatus: "sent" };
    },
    (status) => ({ reason: `http_${status}` }),
  );
}
