/**
 * Staff live sockets: short-lived signed tickets and what a staff socket sees.
 *
 * Browsers cannot set `Authorization` on a WebSocket, so the admin page first
 * asks `POST /v1/conversations/:id/live-ticket` (with its bearer key) for a
 * ticket and passes it as `?ticket=` on the upgrade. A ticket is
 * `v1.<payload>.<mac>` (base64url), where the payload names the tenant, the
 * conversation, the API key and its role and an expiry 60 s ahead, and the mac
 * is HMAC-SHA256 under a key derived from `MASTER_KEY` (HKDF, its own label).
 * Verification recomputes the mac and compares it in constant time. Each ticket
 * opens one socket: the conversation object remembers its random nonce until
 * it expires and refuses it a second time (a leaked URL is worth nothing once used).
 */
import { z } from "zod";
import { hmac, timingSafeEqual } from "../../lib/crypto";
import { fromBase64, fromUtf8, toBase64Url, utf8 } from "../../lib/encoding";
import type { KeyRole } from "../../lib/roles";
import type { MessageView } from "../../durable-objects/conversation";
import { viewerText } from "./viewer";

/** How long a ticket stays valid. */
export const LIVE_TICKET_TTL_MS = 60_000;
const VERSION = "v1";
const HKDF_INFO = "parley/live-ticket/v1";

/** Who a ticket lets in, and until when. */
export interface LiveTicketClaims {
  tenantId: string;
  conversationId: string;
  keyId: string;
  role: KeyRole;
  /** Epoch milliseconds after which the ticket is refused. */
  expiresAt: number;
  /** The ticket's random id: the conversation object accepts each ticket once. */
  nonce: string;
}

const claimsSchema = z
  .object({
    t: z.string().min(1).max(64),
    c: z.string().min(1).max(64),
    k: z.string().min(1).max(64),
    r: z.enum(["owner", "admin", "agent", "viewer"]),
    e: z.number().int(),
    n: z.string().min(16).max(64),
  })
  .strict();

/** Why a ticket was refused (never shown in detail to the caller). */
export type TicketRefusal = "malformed" | "bad_signature" | "expired";

let cachedKey: { secret: string; key: Promise<CryptoKey> } | null = null;

/** The HMAC key, derived from MASTER_KEY with HKDF so it is used for nothing else. */
function ticketKey(env: Env): Promise<CryptoKey> {
  const secret = env.MASTER_KEY ?? "";
  if (cachedKey && cachedKey.secret === secret) return cachedKey.key;
  const key = (async () => {
    const raw = fromBase64(secret.trim());
    if (!raw || raw.length !== 32) throw new Error("MASTER_KEY must be base64 of exactly 32 bytes");
    const base = await crypto.subtle.importKey("raw", raw, "HKDF", false, ["deriveKey"]);
    return crypto.subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info: utf8(HKDF_INFO) },
      base,
      { name: "HMAC", hash: "SHA-256", length: 256 },
      false,
      ["sign"],
    );
  })();
  cachedKey = { secret, key };
  return key;
}

/** Mints a ticket for one conversation, valid {@link LIVE_TICKET_TTL_MS} from `now`. */
export async function mintLiveTicket(env: Env, claims: Omit<LiveTicketClaims, "expiresAt" | "nonce">, now = Date.now()): Promise<{ ticket: string; expiresAt: number }> {
  const expiresAt = now + LIVE_TICKET_TTL_MS;
  const nonce = toBase64Url(crypto.getRandomValues(new Uint8Array(12)));
  const payload = toBase64Url(utf8(JSON.stringify({ t: claims.tenantId, c: claims.conversationId, k: claims.keyId, r: claims.role, e: expiresAt, n: nonce })));
  const signed = `${VERSION}.${payload}`;
  const mac = toBase64Url(await hmac(await ticketKey(env), signed));
  return { ticket: `${signed}.${mac}`, expiresAt };
}

/** Checks a ticket's signature (constant time) and expiry; returns its claims or why it was refused. */
export async function verifyLiveTicket(
  env: Env,
  ticket: string,
  now = Date.now(),
): Promise<{ ok: true; claims: LiveTicketClaims } | { ok: false; reason: TicketRefusal }> {
  const parts = ticket.split(".");
  if (parts.length !== 3 || parts[0] !== VERSION || ticket.length > 1024) return { ok: false, reason: "malformed" };
  const [version, payload = "", macText = ""] = parts;
  const given = fromBase64(macText);
  if (!given) return { ok: false, reason: "malformed" };
  const expected = await hmac(await ticketKey(env), `${version}.${payload}`);
  if (!timingSafeEqual(given, expected)) return { ok: false, reason: "bad_signature" };
  const bytes = fromBase64(payload);
  if (!bytes) return { ok: false, reason: "malformed" };
  let json: unknown;
  try {
    json = JSON.parse(fromUtf8(bytes));
  } catch {
    return { ok: false, reason: "malformed" };
  }
  const claims = claimsSchema.safeParse(json);
  if (!claims.success) return { ok: false, reason: "malformed" };
  if (now >= claims.data.e) return { ok: false, reason: "expired" };
  return { ok: true, claims: { tenantId: claims.data.t, conversationId: claims.data.c, keyId: claims.data.k, role: claims.data.r, expiresAt: claims.data.e, nonce: claims.data.n } };
}

/** A message as a staff member of `role` may see it (API responses and live frames alike). */
export interface StaffMessage extends MessageView {
  /** True when identifiers were masked because the key is a viewer. */
  redacted: boolean;
}

/** Viewers get identifiers masked and no media URLs; every other role sees the message as stored. */
export function staffMessageView(role: KeyRole, message: MessageView): StaffMessage {
  if (role !== "viewer") return { ...message, redacted: false };
  return { ...message, text: viewerText(message.text), media: message.media.map((m) => ({ ...m, url: undefined })), redacted: true };
}
