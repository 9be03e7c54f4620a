/**
 * Request rate limits, on the Workers Rate Limiting bindings declared in wrangler.toml:
 * per API key on every `/v1` route, per channel on webhooks and web-chat upgrades.
 * Over the limit the answer is 429 `rate_limited` with `Retry-After` (seconds).
 */
import type { Context, MiddlewareHandler, Next } from "hono";
import { sha256Hex } from "../../lib/crypto";
import type { AppEnv } from "./context";
import { errorBody } from "./errors";

/**
 * Window length (s) of each limiter, as configured in wrangler.toml `[[ratelimits]]`.
 * The binding reports no reset time, so `Retry-After` is the whole period (an upper bound).
 */
export const RATE_LIMIT_PERIODS = { api: 60, channel: 10 } as const;

/** Which limiter a request counts against, and under which key. */
export interface RateLimitTarget {
  limiter: "api" | "channel";
  key: string;
}

const BEARER = /^Bearer\s+(\S{1,256})\s*$/i;
const CHANNEL_ID = /^ch_[a-z2-7]{20,32}$/;

/**
 * The bucket a request belongs to, or null when it is not limited: `/v1` calls with a
 * bearer token count per key (SHA-256 of the token, never the token itself); channel
 * webhooks (`/webhooks/<provider>/<channelId>…`) and `/chat/<channelId>` count per channel.
 * Requests without a key or a well-formed channel id are not limited here: they are
 * refused before any storage is touched.
 */
export async function rateLimitTarget(path: string, authorization: string | undefined): Promise<RateLimitTarget | null> {
  const segments = path.split("/");
  if (segments[1] === "v1") {
    const token = authorization ? BEARER.exec(authorization)?.[1] : undefined;
    if (!token) return null;
    return { limiter: "api", key: `key:${(await sha256Hex(token)).slice(0, 32)}` };
  }
  const channelId = segments[1] === "webhooks" ? segments[3] : segments[1] === "chat" ? segments[2] : undefined;
  if (channelId && CHANNEL_ID.test(channelId)) return { limiter: "channel", key: `channel:${channelId}` };
  return null;
}

/** The 429 answer, with `Retry-After` in seconds. */
export function rateLimitedResponse(c: Context<AppEnv>, limiter: RateLimitTarget["limiter"]): Response {
  const period = RATE_LIMIT_PERIODS[limiter];
  const what = limiter === "api" ? "this API key" : "this channel";
  return c.json(errorBody("rate_limited", `too many requests for ${what}; retry after ${period} s`), 429, { "Retry-After": String(period) });
}

/**
 * Hono middleware counting the request against its limiter. Fails open: a missing
 * binding, `RATE_LIMITS_ENABLED = "false"` or a limiter error never blocks traffic.
 */
export const rateLimit: MiddlewareHandler<AppEnv> = async (c: Context<AppEnv>, next: Next) => {
  if (c.env.RATE_LIMITS_ENABLED === "false") return next();
  const target = await rateLimitTarget(c.req.path, c.req.header("authorization"));
  if (!target) return next();
  const binding: RateLimit | undefined = target.limiter === "api" ? c.env.API_RATE_LIMITER : c.env.CHANNEL_RATE_LIMITER;
  if (!binding) return next();
  let allowed = true;
  try {
    allowed = (await binding.limit({ key: target.key })).success;
  } catch (err) {
    console.warn("rate limiter unavailable", err instanceof Error ? err.message : String(err));
  }
  if (!allowed) return rateLimitedResponse(c, target.limiter);
  return next();
};
