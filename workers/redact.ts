/** `POST /v1/redact`: the redaction engine as a service (nothing is stored). */
import { createRoute, z } from "@hono/zod-openapi";
import { detectSpecialCategories, ENTITY_TYPES, redact } from "../lib/redact";
import { requireApiKey } from "./support/auth";
import { bearerSecurity, createRouter, errorResponses } from "./support/router";

export const redaction = createRouter();
redaction.use("*", requireApiKey);

const Body = z
  .object({
    text: z.string().max(100_000),
    defaultCountry: z.string().regex(/^[A-Z]{2}$/).optional().openapi({ description: "For national phone formats; default: the tenant's country" }),
    types: z.array(z.enum(ENTITY_TYPES)).min(1).optional(),
  })
  .strict();

redaction.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Privacy"],
    summary: "Redact identifiers from a text",
    description: "Emails, phone numbers, payment cards (Luhn), IBANs (mod-97), Italian fiscal codes and VAT numbers, IP addresses, US SSNs and typed credentials become stable placeholders. Special categories are reported, not removed. Nothing is stored.",
    security: bearerSecurity,
    request: { body: { required: true, content: { "application/json": { schema: Body } } } },
    responses: {
      200: {
        description: "Redacted text",
        content: {
          "application/json": {
            schema: z.object({
              text: z.string(),
              entities: z.array(z.object({ type: z.string(), start: z.number().int(), end: z.number().int(), placeholder: z.string() })),
              specialCategories: z.array(z.string()),
            }),
          },
        },
      },
      ...errorResponses,
    },
  }),
  async (c) => {
    const auth = c.get("auth");
    const body = c.req.valid("json");
    const country =
      body.defaultCountry ??
      (await c.env.DB.prepare("SELECT default_country FROM tenants WHERE id = ?").bind(auth.tenantId).first<{ default_country: string }>())?.default_country ??
      "IT";
    const result = redact(body.text, { defaultCountry: country, ...(body.types ? { types: body.types } : {}) });
    return c.json({ text: result.text, entities: result.entities, specialCategories: detectSpecialCategories(body.text) }, 200);
  },
);
