/**
 * Webhook signature schemes, computed exactly as each provider does, on Web
 * Crypto only. Every comparison is constant-time.
 */
import { hmac, importHmacKey, timingSafeEqual } from "./crypto";
import { fromBase64, fromHex, toBase64, toHex, utf8 } from "./encoding";

/** Default tolerance for timestamped signatures (seconds). */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/**
 * Twilio's `X-Twilio-Signature`: base64 HMAC-SHA1 keyed by the auth token over
 * the full URL followed by every POST parameter name and value, names sorted,
 * repeated values de-duplicated and sorted.
 */
export async function twilioSignature(authToken: string, url: string, params: ReadonlyMap<string, readonly string[]>): Promise<string> {
  let data = url;
  for (const name of [...params.keys()].sort()) {
    const values = [...new Set(params.get(name) ?? [])].sort();
    for (const value of values) data += name + value;
  }
  const key = await importHmacKey(authToken, "SHA-1");
  return toBase64(await hmac(key, data));
}

/** URL variants Twilio may have signed: as configured, without the port, and with the scheme's default port. */
function twilioUrlVariants(url: string): string[] {
  const parsed = new URL(url);
  const variants = new Set<string>([url]);
  const withoutPort = new URL(parsed);
  withoutPort.port = "";
  variants.add(withoutPort.toString());
  if (!parsed.port) {
    const port = parsed.protocol === "https:" ? "443" : "80";
    variants.add(`${parsed.protocol}//${parsed.host}:${port}${parsed.pathname}${parsed.search}`);
  }
  return [...variants];
}

/** Verifies `X-Twilio-Signature` against every URL form Twilio is known to sign. */
export async function verifyTwilioSignature(
  authToken: string,
  url: string,
  params: ReadonlyMap<string, readonly string[]>,
  header: string | null | undefined,
): Promise<boolean> {
  if (!header) return false;
  const given = fromBase64(header.trim());
  if (!given || given.length !== 20) return false;
  let ok = false;
  for (const candidate of twilioUrlVariants(url)) {
    const expected = fromBase64(await twilioSignature(authToken, candidate, params));
    if (expected && timingSafeEqual(expected, given)) ok = true;
  }
  return ok;
}

/** Meta's `X-Hub-Signature-256`: `sha256=` + hex HMAC-SHA256 of the raw body keyed by the app secret. */
export async function metaSignature(appSecret: string, rawBody: Uint8Array<ArrayBuffer>): Promise<string> {
  const key = await crypto.subtle.importKey("raw", utf8(appSecret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return `sha256=${toHex(await crypto.subtle.sign("HMAC", key, rawBody))}`;
}

/** Verifies `X-Hub-Signature-256` over the exact bytes received. */
export async function verifyMetaSignature(appSecret: string, rawBody: Uint8Array<ArrayBuffer>, header: string | null | undefined): Promise<boolean> {
  if (!header?.startsWith("sha256=")) return false;
  const given = fromHex(header.slice("sha256=".length).trim());
  const expected = fromHex((await metaSignature(appSecret, rawBody)).slice("sha256=".length));
  return !!given && !!expected && timingSafeEqual(given, expected);
}

/** Builds `X-Parley-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`. */
export async function parleySignature(secret: string, body: string, unixSeconds: number): Promise<string> {
  const key = await importHmacKey(secret, "SHA-256");
  return `t=${unixSeconds},v1=${toHex(await hmac(key, `${unixSeconds}.${body}`))}`;
}

/** Why a Parley signature was refused. */
export type ParleySignatureFailure = "missing" | "malformed" | "stale" | "mismatch";

/**
 * Verifies `X-Parley-Signature` against one or more secrets (several during a
 * rotation's grace period). The header may carry several `v1=` values.
 */
export async function verifyParleySignature(
  secrets: readonly string[],
  body: string,
  header: string | null | undefined,
  nowSeconds: number,
  toleranceSeconds = SIGNATURE_TOLERANCE_SECONDS,
): Promise<{ ok: true } | { ok: false; reason: ParleySignatureFailure }> {
  if (!header) return { ok: false, reason: "missing" };
  let timestamp: number | null = null;
  const given: Uint8Array[] = [];
  for (const part of header.split(",")) {
    const [name, value] = part.trim().split("=", 2);
    if (name === "t" && value && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (name === "v1" && value) {
      const bytes = fromHex(value);
      if (bytes && bytes.length === 32) given.push(bytes);
    }
  }
  if (timestamp === null || given.length === 0) return { ok: false, reason: "malformed" };
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return { ok: false, reason: "stale" };
  let ok = false;
  for (const secret of secrets) {
    const key = await importHmacKey(secret, "SHA-256");
    const expected = await hmac(key, `${timestamp}.${body}`);
    for (const candidate of given) if (timingSafeEqual(expected, candidate)) ok = true;
  }
  return ok ? { ok: true } : { ok: false, reason: "mismatch" };
}
