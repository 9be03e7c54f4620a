/**
 * Downloading channel media (Twilio MMS / WhatsApp media) without SSRF: a URL
 * is fetched only when its host is on the provider's allow-list, over https
 * (plain http only for the configured API base when that base is http, as in
 * local tests), with redirects followed by hand (each hop re-checked, at most
 * three), a byte limit enforced while streaming, and one overall timeout.
 * Credentials go only to the origin of the first request, never to a host a
 * redirect points at. Pure: fetch and Web Crypto only (no Workers imports).
 */
import { toBase64, toHex, utf8 } from "./encoding";

/** Largest media file imported (the attachment upload limit as well). */
export const MEDIA_MAX_BYTES = 10 * 1024 * 1024;
/** Default overall timeout of one media download (ms). */
export const MEDIA_TIMEOUT_MS = 15_000;
/** Redirects followed per download. */
export const MEDIA_MAX_REDIRECTS = 3;
/** Largest WhatsApp media-metadata JSON accepted. */
const METADATA_MAX_BYTES = 64 * 1024;

/** Why a download was refused or failed. Stable strings: they go into the audit log. */
export type MediaFetchFailure =
  | "invalid_url"
  | "scheme_not_allowed"
  | "credentials_in_url"
  | "host_not_allowed"
  | "port_not_allowed"
  | "too_many_redirects"
  | "redirect_without_location"
  | "http_error"
  | "too_large"
  | "timeout"
  | "network_error"
  | "invalid_media_id"
  | "bad_metadata"
  | "digest_mismatch";

/** A refused or failed media download. `reason` is safe to log; the message never contains credentials. */
export class MediaFetchError extends Error {
  readonly reason: MediaFetchFailure;
  readonly status: number | undefined;

  constructor(reason: MediaFetchFailure, message: string, status?: number) {
    super(message);
    this.name = "MediaFetchError";
    this.reason = reason;
    this.status = status;
  }
}

/** Hosts a provider's media may be fetched from. */
export interface HostPolicy {
  /** Host names allowed over https on the default port. */
  hosts: readonly string[];
  /** Domain suffixes (`.twiliocdn.com` for `*.twiliocdn.com`): any subdomain, over https on the default port. */
  suffixes: readonly string[];
  /** The configured API base (`TWILIO_API_BASE` / `WHATSAPP_API_BASE`): its exact scheme, host and port are allowed. */
  configured: { protocol: string; host: string } | null;
}

function configuredOrigin(apiBase: string | undefined): HostPolicy["configured"] {
  if (!apiBase) return null;
  try {
    const url = new URL(apiBase);
    if ((url.protocol !== "https:" && url.protocol !== "http:") || url.username || url.password) return null;
    return { protocol: url.protocol, host: url.host };
  } catch {
    return null;
  }
}

/** Twilio: `api.twilio.com`, `*.twiliocdn.com`, plus the configured `TWILIO_API_BASE`. */
export function twilioHostPolicy(apiBase?: string): HostPolicy {
  return { hosts: ["api.twilio.com"], suffixes: [".twiliocdn.com"], configured: configuredOrigin(apiBase) };
}

/** WhatsApp Cloud API: the Graph API host, `lookaside.fbsbx.com`, plus the configured `WHATSAPP_API_BASE`. */
export function whatsappHostPolicy(apiBase?: string): HostPolicy {
  return { hosts: ["graph.facebook.com", "lookaside.fbsbx.com"], suffixes: [], configured: configuredOrigin(apiBase) };
}

const LABELS = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** True for IPv4 and IPv6 literals as the URL parser normalises them (`0x7f.1` becomes `127.0.0.1`). */
export function isIpLiteral(hostname: string): boolean {
  return hostname.startsWith("[") || /^\d{1,3}(?:\.\d{1,3}){3}$/.test(hostname);
}

/**
 * Parses `raw` (relative to `base`, for redirects) and checks it against the
 * policy; throws {@link MediaFetchError} when it may not be fetched.
 */
export function checkMediaUrl(raw: string | URL, policy: HostPolicy, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(raw, base);
  } catch {
    throw new MediaFetchError("invalid_url", "media URL is not a valid URL");
  }
  if (url.username || url.password) throw new MediaFetchError("credentials_in_url", "media URL embeds credentials");
  const configured = policy.configured;
  if (configured && url.protocol === configured.protocol && url.host === configured.host) return url;
  if (url.protocol !== "https:") throw new MediaFetchError("scheme_not_allowed", `media URL scheme ${url.protocol} is not allowed`);
  const host = url.hostname;
  if (isIpLiteral(host) || !LABELS.test(host)) throw new MediaFetchError("host_not_allowed", "media host is not on the provider's allow-list");
  const allowed = policy.hosts.includes(host) || policy.suffixes.some((suffix) => host.endsWith(suffix) && host.length > suffix.length);
  if (!allowed) throw new MediaFetchError("host_not_allowed", `media host ${host} is not on the provider's allow-list`);
  if (url.port !== "") throw new MediaFetchError("port_not_allowed", "media URL names a non-default port");
  return url;
}

/** How a download is made. `fetcher` defaults to the global fetch (looked up at call time, so tests can mock it). */
export interface MediaFetchOptions {
  policy: HostPolicy;
  /** Sent only to the origin of the first URL (e.g. `Authorization`). */
  headers?: Record<string, string>;
  maxBytes?: number;
  timeoutMs?: number;
  maxRedirects?: number;
  fetcher?: (input: string, init: RequestInit) => Promise<Response>;
}

/** Bytes downloaded and what the server said they were. */
export interface FetchedMedia {
  bytes: Uint8Array<ArrayBuffer>;
  contentType: string | null;
  /** Where the bytes finally came from (after redirects). */
  url: string;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

async function discard(res: Response): Promise<void> {
  try {
    await res.body?.cancel();
  } catch {
    // nothing to release
  }
}

async function readLimited(res: Response, maxBytes: number, abort: () => void): Promise<Uint8Array<ArrayBuffer>> {
  const declared = Number(res.headers.get("content-length") ?? "");
  if (Number.isFinite(declared) && declared > maxBytes) {
    await discard(res);
    abort();
    throw new MediaFetchError("too_large", `media is larger than ${maxBytes} bytes`);
  }
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      abort();
      throw new MediaFetchError("too_large", `media is larger than ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * GETs an allow-listed URL, following at most `maxRedirects` redirects by hand
 * (every hop re-checked against the policy), reading at most `maxBytes`
 * within `timeoutMs` overall. Throws {@link MediaFetchError} on anything else.
 */
export async function fetchAllowedMedia(rawUrl: string, options: MediaFetchOptions): Promise<FetchedMedia> {
  const maxBytes = options.maxBytes ?? MEDIA_MAX_BYTES;
  const maxRedirects = options.maxRedirects ?? MEDIA_MAX_REDIRECTS;
  const fetcher = options.fetcher ?? ((input: string, init: RequestInit) => fetch(input, init));
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, options.timeoutMs ?? MEDIA_TIMEOUT_MS);
  try {
    let url = checkMediaUrl(rawUrl, options.policy);
    const firstOrigin = url.origin;
    for (let hop = 0; ; hop++) {
      const headers = url.origin === firstOrigin ? { ...options.headers } : {};
      let res: Response;
      try {
        res = await fetcher(url.toString(), { method: "GET", headers, redirect: "manual", signal: controller.signal });
      } catch (err) {
        if (timedOut) throw new MediaFetchError("timeout", "media download timed out");
        throw new MediaFetchError("network_error", `media download failed: ${err instanceof Error ? err.name : "error"}`);
      }
      if (REDIRECTS.has(res.status)) {
        const location = res.headers.get("location");
        await discard(res);
        if (hop >= maxRedirects) throw new MediaFetchError("too_many_redirects", `more than ${maxRedirects} redirects`);
        if (!location) throw new MediaFetchError("redirect_without_location", "redirect without a Location header");
        url = checkMediaUrl(location, options.policy, url);
        continue;
      }
      if (!res.ok) {
        await discard(res);
        throw new MediaFetchError("http_error", `media host answered ${res.status}`, res.status);
      }
      try {
        const bytes = await readLimited(res, maxBytes, () => controller.abort());
        return { bytes, contentType: res.headers.get("content-type"), url: url.toString() };
      } catch (err) {
        if (err instanceof MediaFetchError) throw err;
        if (timedOut) throw new MediaFetchError("timeout", "media download timed out");
        throw new MediaFetchError("network_error", "media download was interrupted");
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

/** Common knobs of the provider downloads. */
export interface ProviderFetchOptions {
  maxBytes?: number;
  timeoutMs?: number;
  fetcher?: MediaFetchOptions["fetcher"];
}

/**
 * Downloads a Twilio media URL (`MediaUrlN` of an inbound message) with HTTP
 * Basic auth (Account SID : Auth Token), sent to the first host only.
 */
export async function downloadTwilioMedia(
  input: { url: string; accountSid: string; authToken: string; apiBase?: string },
  options: ProviderFetchOptions = {},
): Promise<FetchedMedia> {
  const basic = toBase64(utf8(`${input.accountSid}:${input.authToken}`));
  return fetchAllowedMedia(input.url, { ...options, policy: twilioHostPolicy(input.apiBase), headers: { authorization: `Basic ${basic}` } });
}

interface WhatsAppMediaInfo {
  url: string;
  mimeType: string | null;
  sha256: string | null;
  fileSize: number | null;
}

function parseMediaInfo(bytes: Uint8Array): WhatsAppMediaInfo {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new MediaFetchError("bad_metadata", "media metadata is not JSON");
  }
  if (!value || typeof value !== "object") throw new MediaFetchError("bad_metadata", "media metadata is not an object");
  const info = value as Record<string, unknown>;
  if (typeof info.url !== "string" || info.url.length > 4096) throw new MediaFetchError("bad_metadata", "media metadata has no url");
  const sha = typeof info.sha256 === "string" ? info.sha256.toLowerCase() : null;
  return {
    url: info.url,
    mimeType: typeof info.mime_type === "string" ? info.mime_type : null,
    sha256: sha && /^[0-9a-f]{64}$/.test(sha) ? sha : null,
    fileSize: typeof info.file_size === "number" ? info.file_size : null,
  };
}

/**
 * Downloads WhatsApp Cloud API media by id: `GET {apiBase}/{version}/{mediaId}`
 * with the access token gives `{ url, mime_type, sha256, file_size }`; that
 * url (which must be allow-listed too) is fetched with the same token, and the
 * bytes must match the announced SHA-256.
 */
export async function downloadWhatsAppMedia(
  input: { mediaId: string; accessToken: string; apiBase: string; apiVersion: string },
  options: ProviderFetchOptions = {},
): Promise<FetchedMedia & { declaredType: string | null }> {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(input.mediaId)) throw new MediaFetchError("invalid_media_id", "media id is not a plain id");
  if (!/^v\d{1,3}\.\d{1,3}$/.test(input.apiVersion)) throw new MediaFetchError("invalid_url", "WHATSAPP_API_VERSION is not like v21.0");
  const maxBytes = options.maxBytes ?? MEDIA_MAX_BYTES;
  const deadline = Date.now() + (options.timeoutMs ?? MEDIA_TIMEOUT_MS);
  const policy = whatsappHostPolicy(input.apiBase);
  const headers = { authorization: `Bearer ${input.accessToken}` };
  const base = input.apiBase.replace(/\/+$/, "");
  const meta = await fetchAllowedMedia(`${base}/${input.apiVersion}/${input.mediaId}`, {
    ...options,
    policy,
    headers,
    maxBytes: METADATA_MAX_BYTES,
    timeoutMs: Math.max(1, deadline - Date.now()),
  });
  const info = parseMediaInfo(meta.bytes);
  if (info.fileSize !== null && info.fileSize > maxBytes) throw new MediaFetchError("too_large", `media is larger than ${maxBytes} bytes`);
  const remaining = deadline - Date.now();
  if (remaining <= 0) throw new MediaFetchError("timeout", "media download timed out");
  const media = await fetchAllowedMedia(info.url, { ...options, policy, headers, maxBytes, timeoutMs: remaining });
  if (info.sha256 !== null && toHex(await crypto.subtle.digest("SHA-256", media.bytes)) !== info.sha256) {
    throw new MediaFetchError("digest_mismatch", "media bytes do not match the announced SHA-256");
  }
  return { ...media, declaredType: info.mimeType };
}

const MEDIA_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$/;

/** The essence (`type/subtype`, lower-case) of a Content-Type value, or null when it is not a valid media type. */
export function mediaTypeEssence(value: string | null | undefined): string | null {
  const essence = (value ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  return MEDIA_TYPE.test(essence) ? essence : null;
}
