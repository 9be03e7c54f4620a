/** Tenant API keys: list, create (shown once), revoke. */
import { createRoute, z } from "@hono/zod-openapi";
import { newId } from "../lib/ids";
import { canManageRole, resolveScopes, SCOPES, type KeyRole } from "../lib/roles";
import { ROLES } from "../d1/schema";
import { auditStatement, keyAudit } from "./support/audit";
import { mintApiKey, requireApiKey, requireScope } from "./support/auth";
import { ApiError, conflict, forbidden, notFound } from "./support/errors";
import { bearerSecurity, createRouter, errorResponses } from "./support/router";

export const keys = createRouter();
keys.use("*", requireApiKey);

const KeySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string(),
    role: z.enum(ROLES),
    scopes: z.array(z.string()),
    createdAt: z.string(),
    lastUsedAt: z.string().nullable(),
    revokedAt: z.string().nullable(),
  })
  .openapi("ApiKey");

interface KeyRow {
  id: string;
  name: string;
  prefix: string;
  role: KeyRole;
  scopes: string;
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

function keyView(row: KeyRow): z.infer<typeof KeySchema> {
  const scopes: unknown = JSON.parse(row.scopes);
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    role: row.role,
    scopes: Array.isArray(scopes) ? scopes.map(String) : [],
    createdAt: new Date(row.created_at).toISOString(),
    lastUsedAt: iso(row.last_used_at),
    revokedAt: iso(row.revoked_at),
  };
}

keys.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["API keys"],
    summary: "List the tenant's API keys (never the secrets)",
    security: bearerSecurity,
    responses: { 200: { description: "Keys", content: { "application/json": { schema: z.object({ data: z.array(KeySchema) }) } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = requireScope(c, "keys:read");
    const { results } = await c.env.DB.prepare(
      "SELECT id, name, prefix, role, scopes, created_at, last_used_at, revoked_at FROM api_keys WHERE tenant_id = ? ORDER BY created_at DESC LIMIT 500",
    )
      .bind(auth.tenantId)
      .all<KeyRow>();
    return c.json({ data: results.map(keyView) }, 200);
  },
);

const WhoAmISchema = z
  .object({
    id: z.string(),
    name: z.string(),
    prefix: z.string(),
    role: z.enum(ROLES),
    scopes: z.array(z.string()),
    tenant: z.object({ id: z.string(), name: z.string() }),
  })
  .openapi("WhoAmI");

keys.openapi(
  createRoute({
    method: "get",
    path: "/me",
    tags: ["API keys"],
    summary: "The calling key: its role, scopes and tenant (any valid key)",
    security: bearerSecurity,
    responses: { 200: { description: "The calling key", content: { "application/json": { schema: WhoAmISchema } } }, ...errorResponses },
  }),
  async (c) => {
    const auth = c.get("auth");
    const row = await c.env.DB.prepare("SELECT k.name, k.prefix, t.name AS tenant_name FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.id = ? AND k.tenant_id = ?")
      .bind(auth.keyId, auth.tenantId)
      .first<{ name: string; prefix: string; tenant_name: string }>();
    if (!row) throw notFound("API key");
    return c.json({ id: auth.keyId, name: row.name, prefix: row.prefix, role: auth.role, scopes: [...auth.scopes].sort(), tenant: { id: auth.tenantId, name: row.tenant_name } }, 200);
  },
);

const CreateKeyBody = z
  .object({
    name: z.string().trim().min(1).max(100),
    role: z.enum(ROLES),
    scopes: z.array(z.enum(SCOPES)).min(1).max(SCOPES.length).optional(),
  })
  .strict();

keys.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["API keys"],
    summary: "Create an API key; the secret is returned once",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: CreateKeyBody } } } },
    responses: {
      201: { description: "Created", content: { "application/json": { schema: KeySchema.extend({ key: z.string() }) } } },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = requireScope(c, "keys:write");
    const body = c.req.valid("json");
    if (!canManageRole(auth.role, body.role)) throw forbidden(`a ${auth.role} key cannot create ${body.role} keys`);
    const scopes = resolveScopes(body.role, body.scopes, auth.scopes);
    if (!scopes.ok) {
      throw new ApiError(400, "validation_error", "scopes exceed what the role or your key allows", [
        { path: "scopes", message: `not allowed: ${scopes.notAllowed.join(", ")}` },
      ]);
    }
    const minted = await mintApiKey();
    const now = Date.now();
    const id = newId("key", now);
    await c.env.DB.batch([
      c.env.DB.prepare(
        "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, role, scopes, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
      ).bind(id, auth.tenantId, body.name, minted.prefix, minted.hash, body.role, JSON.stringify(scopes.scopes), now, auth.keyId),
      auditStatement(c.env.DB, keyAudit(auth, "api_key.created", "api_key", id, { role: body.role })),
    ]);
    const view = keyView({ id, name: body.name, prefix: minted.prefix, role: body.role, scopes: JSON.stringify(scopes.scopes), created_at: now, last_used_at: null, revoked_at: null });
    return c.json({ ...view, key: minted.key }, 201);
  },
);

keys.openapi(
  createRoute({
    method: "delete",
    path: "/{id}",
    tags: ["API keys"],
    summary: "Revoke an API key (immediately)",
    security: bearerSecurity,
    request: { params: z.object({ id: z.string().max(64) }) },
    responses: {
      200: { description: "Revoked", content: { "application/json": { schema: KeySchema } } },
      ...errorResponses,
      409: { description: "Would remove the last owner key", content: { "application/json": { schema: z.object({ error: z.object({ code: z.string(), message: z.string() }) }) } } },
    },
  }),
  async (c) => {
    const auth = requireScope(c, "keys:write");
    const { id } = c.req.valid("param");
    const row = await c.env.DB.prepare(
      "SELECT id, name, prefix, role, scopes, created_at, last_used_at, revoked_at FROM api_keys WHERE id = ? AND tenant_id = ?",
    )
      .bind(id, auth.tenantId)
      .first<KeyRow>();
    if (!row) throw notFound("API key");
    if (!canManageRole(auth.role, row.role)) throw forbidden(`a ${auth.role} key cannot revoke ${row.role} keys`);
    if (row.revoked_at !== null) return c.json(keyView(row), 200);
    const now = Date.now();
    // Guarded in SQL so two concurrent revocations cannot remove the last owner key.
    const update = await c.env.DB.prepare(
      `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND tenant_id = ? AND revoked_at IS NULL
       AND (role != 'owner' OR (SELECT COUNT(*) FROM api_keys WHERE tenant_id = ? AND role = 'owner' AND revoked_at IS NULL) > 1)`,
    )
      .bind(now, id, auth.tenantId, auth.tenantId)
      .run();
    if (update.meta.changes === 0) throw conflict("cannot revoke the tenant's last owner key");
    await auditStatement(c.env.DB, keyAudit(auth, "api_key.revoked", "api_key", id)).run();
    return c.json(keyView({ ...row, revoked_at: now }), 200);
  },
);
