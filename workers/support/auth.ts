/** Bearer-key authentication, the platform operator key, and scope checks. */
import type { Context, MiddlewareHandler } from "hono";
import { z } from "zod";
import { randomToken, sha256Hex, timingSafeEqualStrings } from "../../lib/crypto";
import { SCOPES, type KeyRole, type Scope } from "../../lib/roles";
import type { AppEnv, AuthContext } from "./context";
import { ApiError } from "./errors";

/** API keys look like `prly_` + 32 base32 characters (160 bits). */
export const API_KEY_PREFIX = "prly_";
/** How many leading characters of a key are kept visible in listings. */
export const VISIBLE_PREFIX_LENGTH = 12;
/** last_used_at is refreshed at most this often, so reads do not turn into writes. */
const LAST_USED_RESOLUTION_MS = 60_000;

/** A fresh API key with its stored hash and visible prefix. */
export async function mintApiKey(): Promise<{ key: string; hash: string; prefix: string }> {
  const key = API_KEY_PREFIX + randomToken(20);
  return { key, hash: await sha256Hex(key), prefix: key.slice(0, VISIBLE_PREFIX_LENGTH) };
}

function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S{1,256})\s*$/i.exec(header);
  return match?.[1] ?? null;
}

const scopesJson = z.array(z.enum(SCOPES));

/** Resolves the tenant API key; 401 when missing, unknown, revoked or the tenant is suspended. */
export const requireApiKey: MiddlewareHandler<AppEnv> = async (c, next) => {
  const token = bearerToken(c.req.header("authorization"));
  if (!token) throw new ApiError(401, "unauthorized", "missing bearer API key");
  const row = await c.env.DB.prepare(
    `SELECT k.id, k.tenant_id, k.role, k.scopes, k.last_used_at FROM api_keys k JOIN tenants t ON t.id = k.tenant_id
     WHERE k.key_hash = ? AND k.revoked_at IS NULL AND t.status = 'active'`,
  )
    .bind(await sha256Hex(token))
    .first<{ id: string; tenant_id: string; role: KeyRole; scopes: string; last_used_at: number | null }>();
  if (!row) throw new ApiError(401, "unauthorized", "invalid or revoked API key");
  const scopes = scopesJson.safeParse(JSON.parse(row.scopes));
  if (!scopes.success) throw new ApiError(401, "unauthorized", "API key has invalid scopes");
  const auth: AuthContext = { tenantId: row.tenant_id, keyId: row.id, role: row.role, scopes: new Set(scopes.data) };
  c.set("auth", auth);
  const now = Date.now();
  if (!row.last_used_at || now - row.last_used_at > LAST_USED_RESOLUTION_MS) {
    c.executionCtx.waitUntil(
      c.env.DB.prepare("UPDATE api_keys SET last_used_at = ? WHERE id = ?").bind(now, row.id).run().then(
        () => undefined,
        () => undefined,
      ),
    );
  }
  await next();
};

/** Throws 403 unless the calling key holds `scope`. */
export function requireScope(c: Context<AppEnv>, scope: Scope): AuthContext {
  const auth = c.get("auth");
  if (!auth.scopes.has(scope)) throw new ApiError(403, "forbidden", `this API key lacks the ${scope} scope`);
  return auth;
}

/** Accepts only the platform operator key (compared in constant time). */
export const requirePlatformKey: MiddlewareHandler<AppEnv> = async (c, next) => {
  const expected = c.env.PLATFORM_ADMIN_KEY;
  if (!expected) throw new ApiError(503, "misconfigured", "PLATFORM_ADMIN_KEY is not configured");
  const token = bearerToken(c.req.header("authorization"));
  // Hashing first makes both sides the same length, so the comparison leaks nothing about it.
  if (!token || !timingSafeEqualStrings(await sha256Hex(token), await sha256Hex(expected))) {
    throw new ApiError(401, "unauthorized", "invalid platform admin key");
  }
  await next();
};
