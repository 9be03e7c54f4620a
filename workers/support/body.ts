/** Request-body guards shared by webhooks and the API: content type and raw bytes. */
import type { Context } from "hono";
import { ApiError } from "./errors";

/** Throws 415 unless the request's media type is `expected` (parameters such as charset are ignored). */
export function requireContentType(c: Context, expected: string): void {
  const type = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== expected) {
    throw new ApiError(415, "unsupported_media_type", `Content-Type must be ${expected}`);
  }
}

/** The exact bytes received, as signatures are computed over them. */
export async function rawBody(c: Context): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await c.req.arrayBuffer());
}

/** Decodes bytes as strict UTF-8; invalid sequences are a 400, not silently replaced. */
export function strictUtf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new ApiError(400, "bad_request", "body is not valid UTF-8");
  }
}
