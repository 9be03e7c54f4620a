/** Router factory shared by feature modules: zod validation failures become the API's error shape. */
import { OpenAPIHono, z } from "@hono/zod-openapi";
import { ApiError, zodIssues } from "./errors";
import type { AppEnv } from "./context";

/** A feature router whose validation failures answer 400 `validation_error` with field paths. */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        throw new ApiError(400, "validation_error", "request is invalid", zodIssues(result.error));
      }
    },
  });
}

/** `{ error: { code, message, issues? } }` as an OpenAPI schema. */
export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "not_found" }),
      message: z.string(),
      issues: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
    }),
  })
  .openapi("Error");

const errorContent = { "application/json": { schema: ErrorSchema } };

/** Standard error responses to spread into a route's `responses`. */
export const errorResponses = {
  400: { description: "Invalid input", content: errorContent },
  401: { description: "Missing or invalid credentials", content: errorContent },
  403: { description: "The key's role or scopes do not allow this", content: errorContent },
  404: { description: "Not found (or another tenant's)", content: errorContent },
} as const;

/** Bearer security requirement for tenant routes. */
export const bearerSecurity = [{ bearerAuth: [] }];

/** Opaque keyset cursor: base64url JSON. Malformed cursors are a 400, never a 500. */
export function encodeCursor(value: Record<string, string | number>): string {
  return btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function decodeCursor<T>(cursor: string, schema: z.ZodType<T>): T {
  try {
    const json = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    const parsed = schema.safeParse(JSON.parse(json));
    if (parsed.success) return parsed.data;
  } catch {
    // fall through to the 400 below
  }
  throw new ApiError(400, "validation_error", "cursor is invalid", [{ path: "cursor", message: "not a cursor returned by this API" }]);
}

/** Origin providers reach this deployment at: PUBLIC_BASE_URL, or the request's own origin. */
export function publicOrigin(env: Env, requestUrl: string): string {
  return (env.PUBLIC_BASE_URL || new URL(requestUrl).origin).replace(/\/$/, "");
}
