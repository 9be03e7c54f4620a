/** Typed API errors and the single place that turns any failure into `{ error: { code, message } }`. */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ZodError } from "zod";

/** Stable machine-readable error codes of the public API. */
export type ErrorCode =
  | "bad_request"
  | "validation_error"
  | "invalid_json"
  | "unauthorized"
  | "invalid_signature"
  | "forbidden"
  | "not_found"
  | "method_not_allowed"
  | "conflict"
  | "payload_too_large"
  | "unsupported_media_type"
  | "rate_limited"
  | "misconfigured"
  | "internal_error";

/** One field-level problem in a validation failure. */
export interface FieldIssue {
  path: string;
  message: string;
}

/** An error the API reports as-is: status, code and a human message (never internals). */
export class ApiError extends HTTPException {
  readonly code: ErrorCode;
  readonly issues: FieldIssue[] | undefined;

  constructor(status: ContentfulStatusCode, code: ErrorCode, message: string, issues?: FieldIssue[]) {
    super(status, { message });
    this.code = code;
    this.issues = issues;
  }
}

/** Shorthands for the common cases. */
export const notFound = (what: string): ApiError => new ApiError(404, "not_found", `${what} not found`);
export const forbidden = (message: string): ApiError => new ApiError(403, "forbidden", message);
export const badRequest = (message: string): ApiError => new ApiError(400, "bad_request", message);
export const conflict = (message: string): ApiError => new ApiError(409, "conflict", message);

/** Converts zod issues into `{ path, message }` with dotted paths (`config.accountSid`). */
export function zodIssues(error: ZodError): FieldIssue[] {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join(".") || "(root)",
    message: issue.message,
  }));
}

/** The error body every 4xx/5xx carries. */
export function errorBody(code: ErrorCode, message: string, issues?: FieldIssue[]) {
  return { error: issues ? { code, message, issues } : { code, message } };
}

const STATUS_CODES: Partial<Record<number, ErrorCode>> = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  429: "rate_limited",
};

/** Hono `onError`: typed errors keep their status; anything else is a 500 without details. */
export function handleError(err: Error, c: Context): Response {
  if (err instanceof ApiError) {
    return c.json(errorBody(err.code, err.message, err.issues), err.status);
  }
  if (err instanceof ZodError) {
    return c.json(errorBody("validation_error", "request is invalid", zodIssues(err)), 400);
  }
  if (err instanceof HTTPException) {
    if (err.status === 400 && /malformed json/i.test(err.message)) {
      return c.json(errorBody("invalid_json", "body is not valid JSON"), 400);
    }
    const code = STATUS_CODES[err.status] ?? (err.status >= 500 ? "internal_error" : "bad_request");
    const message = err.status >= 500 ? "internal error" : err.message || code.replace(/_/g, " ");
    return c.json(errorBody(code, message), err.status);
  }
  console.error("unhandled error", err.name, err.message);
  return c.json(errorBody("internal_error", "internal error"), 500);
}
