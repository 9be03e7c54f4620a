/** Operator endpoints: create tenants and issue owner keys (platform admin key only). */
import { createRoute, z } from "@hono/zod-openapi";
import { newId } from "../lib/ids";
import { ROLE_SCOPES } from "../lib/roles";
import { auditStatement } from "./support/audit";
import { mintApiKey, requirePlatformKey } from "./support/auth";
import { conflict, notFound } from "./support/errors";
import { newWrappedTenantHashKey } from "./support/keyring";
import { bearerSecurity, createRouter, errorResponses } from "./support/router";

export const tenants = createRouter();
tenants.use("*", requirePlatformKey);

const TenantSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    slug: z.string(),
    status: z.enum(["active", "suspended"]),
    defaultCountry: z.string(),
    createdAt: z.string(),
  })
  .openapi("Tenant");

const IssuedKeySchema = z
  .object({
    id: z.string(),
    key: z.string().openapi({ description: "The secret key. Shown once; only its hash is stored." }),
    prefix: z.string(),
    role: z.literal("owner"),
    scopes: z.array(z.string()),
  })
  .openapi("IssuedOwnerKey");

const CreateTenantBody = z
  .object({
    name: z.string().trim().min(1).max(100),
    slug: z
      .string()
      .regex(/^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/, "lower-case letters, digits and dashes")
      .optional(),
    defaultCountry: z.string().regex(/^[A-Z]{2}$/, "ISO 3166-1 alpha-2 code").default("IT"),
  })
  .strict();

function slugify(name: string): string {
  const base = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40);
  return base || "tenant";
}

async function ownerKeyStatements(db: D1Database, tenantId: string, name: string) {
  const minted = await mintApiKey();
  const id = newId("key");
  const scopes = [...ROLE_SCOPES.owner];
  const statement = db
    .prepare(
      "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, role, scopes, created_at, created_by) VALUES (?, ?, ?, ?, ?, 'owner', ?, ?, 'platform')",
    )
    .bind(id, tenantId, name, minted.prefix, minted.hash, JSON.stringify(scopes), Date.now());
  return { statement, issued: { id, key: minted.key, prefix: minted.prefix, role: "owner" as const, scopes } };
}

tenants.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Operator"],
    summary: "Create a tenant and its first owner API key",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: CreateTenantBody } } } },
    responses: {
      201: { description: "Created", content: { "application/json": { schema: z.object({ tenant: TenantSchema, apiKey: IssuedKeySchema }) } } },
      ...errorResponses,
      409: { description: "Slug already taken", content: { "application/json": { schema: z.object({ error: z.object({ code: z.string(), message: z.string() }) }) } } },
    },
  }),
  async (c) => {
    const body = c.req.valid("json");
    const slug = body.slug ?? `${slugify(body.name)}-${newId("x").slice(-6)}`;
    const taken = await c.env.DB.prepare("SELECT 1 FROM tenants WHERE slug = ?").bind(slug).first();
    if (taken) throw conflict(`a tenant with slug "${slug}" already exists`);
    const now = Date.now();
    const id = newId("ten", now);
    const hashKey = await newWrappedTenantHashKey(c.env, id);
    const owner = await ownerKeyStatements(c.env.DB, id, "Owner key");
    try {
      await c.env.DB.batch([
        c.env.DB.prepare(
          "INSERT INTO tenants (id, name, slug, status, plan_status, default_country, hash_key, created_at) VALUES (?, ?, ?, 'active', 'none', ?, ?, ?)",
        ).bind(id, body.name, slug, body.defaultCountry, hashKey, now),
        c.env.DB.prepare("INSERT INTO settings (tenant_id, data, updated_at) VALUES (?, '{}', ?)").bind(id, now),
        owner.statement,
        auditStatement(c.env.DB, { tenantId: id, actorType: "platform", actorId: null, action: "tenant.created", targetType: "tenant", targetId: id }),
      ]);
    } catch (err) {
      if (err instanceof Error && /UNIQUE constraint failed: tenants\.slug/.test(err.message)) {
        throw conflict(`a tenant with slug "${slug}" already exists`);
      }
      throw err;
    }
    const tenant = { id, name: body.name, slug, status: "active" as const, defaultCountry: body.defaultCountry, createdAt: new Date(now).toISOString() };
    return c.json({ tenant, apiKey: owner.issued }, 201);
  },
);

tenants.openapi(
  createRoute({
    method: "get",
    path: "/{slug}",
    tags: ["Operator"],
    summary: "Look up a tenant by slug",
    security: bearerSecurity,
    request: { params: z.object({ slug: z.string().max(64) }) },
    responses: { 200: { description: "The tenant", content: { "application/json": { schema: TenantSchema } } }, ...errorResponses },
  }),
  async (c) => {
    const row = await c.env.DB.prepare("SELECT id, name, slug, status, default_country, created_at FROM tenants WHERE slug = ?")
      .bind(c.req.valid("param").slug)
      .first<{ id: string; name: string; slug: string; status: "active" | "suspended"; default_country: string; created_at: number }>();
    if (!row) throw notFound("tenant");
    return c.json(
      { id: row.id, name: row.name, slug: row.slug, status: row.status, defaultCountry: row.default_country, createdAt: new Date(row.created_at).toISOString() },
      200,
    );
  },
);

tenants.openapi(
  createRoute({
    method: "post",
    path: "/{id}/owner-keys",
    tags: ["Operator"],
    summary: "Issue a new owner key for a tenant (account recovery)",
    security: bearerSecurity,
    request: { params: z.object({ id: z.string().max(64) }) },
    responses: { 201: { description: "Issued", content: { "application/json": { schema: IssuedKeySchema } } }, ...errorResponses },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    const exists = await c.env.DB.prepare("SELECT 1 FROM tenants WHERE id = ?").bind(id).first();
    if (!exists) throw notFound("tenant");
    const owner = await ownerKeyStatements(c.env.DB, id, "Recovery owner key");
    await c.env.DB.batch([
      owner.statement,
      auditStatement(c.env.DB, { tenantId: id, actorType: "platform", actorId: null, action: "api_key.issued_by_operator", targetType: "api_key", targetId: owner.issued.id }),
    ]);
    return c.json(owner.issued, 201);
  },
);
