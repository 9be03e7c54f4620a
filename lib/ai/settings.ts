/** Tenant settings (AI features, provider, thresholds, contact text, minimum age), with their defaults. */
import { z } from "zod";

export const AI_PROVIDERS = ["local", "openai"] as const;
export type AiProviderName = (typeof AI_PROVIDERS)[number];

/** Stored settings: every field has a default, so an empty object is a valid configuration. */
export const settingsSchema = z.object({
  ai: z
    .object({
      /** Automatic replies to end users. */
      replies: z.boolean().default(true),
      /** `POST /v1/conversations/:id/summary`. */
      summaries: z.boolean().default(true),
      /** Intent labels on inbound messages. */
      intent: z.boolean().default(true),
    })
    .prefault({}),
  /** Unset: `openai` when OPENAI_API_KEY is configured, otherwise `local`. */
  provider: z.enum(AI_PROVIDERS).optional(),
  model: z.string().min(1).max(100).default("gpt-4o-mini"),
  /** Replies below this confidence are never sent. */
  confidenceThreshold: z.number().min(0).max(1).default(0.5),
  /** How many recent messages (redacted) go into the prompt. */
  contextMessages: z.number().int().min(1).max(50).default(10),
  /** How many knowledge-base entries go into the prompt. */
  knowledgeEntries: z.number().int().min(0).max(10).default(3),
  persona: z
    .string()
    .max(4000)
    .default("You are the customer-service assistant of this business. Be brief, friendly and precise, and answer in the customer's language."),
  /** AI provider calls per tenant per UTC day; 0 turns the AI off. */
  dailyAiCallBudget: z.number().int().min(0).max(10_000_000).default(2000),
  /** Below the threshold: hand off to a human (true) or only stay silent (false). */
  handoffOnLowConfidence: z.boolean().default(true),
  /** Messages revealing special categories of data (health, religion…) go to a human. */
  specialCategoryHandoff: z.boolean().default(true),
  /** Sent to the end user when the conversation is handed to a human ("" sends nothing). */
  handoffMessage: z.string().max(1000).default("Thanks for your message. A member of our team will reply shortly."),
  /** Answer to HELP / AIUTO. */
  contactText: z.string().max(1000).default("For help, reply to this message and a member of our team will answer. Reply STOP to unsubscribe."),
  /** Minimum age for AI processing and marketing without parental authorization (Italy: 14). */
  minimumAge: z.number().int().min(0).max(21).default(14),
});
export type Settings = z.infer<typeof settingsSchema>;

/** PATCH body: any subset, validated strictly (unknown keys are errors). */
export const settingsPatchSchema = z
  .object({
    ai: z.object({ replies: z.boolean(), summaries: z.boolean(), intent: z.boolean() }).partial().strict().optional(),
    provider: z.enum(AI_PROVIDERS).nullable().optional(),
    model: z.string().min(1).max(100).optional(),
    confidenceThreshold: z.number().min(0).max(1).optional(),
    contextMessages: z.number().int().min(1).max(50).optional(),
    knowledgeEntries: z.number().int().min(0).max(10).optional(),
    persona: z.string().max(4000).optional(),
    dailyAiCallBudget: z.number().int().min(0).max(10_000_000).optional(),
    handoffOnLowConfidence: z.boolean().optional(),
    specialCategoryHandoff: z.boolean().optional(),
    handoffMessage: z.string().max(1000).optional(),
    contactText: z.string().max(1000).optional(),
    minimumAge: z.number().int().min(0).max(21).optional(),
  })
  .strict();
export type SettingsPatch = z.infer<typeof settingsPatchSchema>;

/** Parses stored JSON leniently: unknown or invalid stored fields fall back to defaults instead of breaking the tenant. */
export function parseSettings(json: string | null | undefined): Settings {
  let raw: unknown = {};
  try {
    raw = json ? JSON.parse(json) : {};
  } catch {
    raw = {};
  }
  const parsed = settingsSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const cleaned: Record<string, unknown> = {};
  if (raw && typeof raw === "object" && !Array.isArray(raw)) {
    for (const [key, value] of Object.entries(raw)) {
      const single = settingsSchema.safeParse({ [key]: value });
      if (single.success) cleaned[key] = value;
    }
  }
  return settingsSchema.parse(cleaned);
}

/** Applies a patch (nested `ai` merged key by key; `provider: null` returns to the automatic choice). */
export function applySettingsPatch(current: Settings, patch: SettingsPatch): Settings {
  const { ai, provider, ...rest } = patch;
  const next: Record<string, unknown> = { ...current, ...rest, ai: { ...current.ai, ...(ai ?? {}) } };
  if (provider === null) delete next.provider;
  else if (provider !== undefined) next.provider = provider;
  return settingsSchema.parse(next);
}

/** The provider in effect for these settings. */
export function effectiveProvider(settings: Settings, openAiKeyConfigured: boolean): AiProviderName {
  return settings.provider ?? (openAiKeyConfigured ? "openai" : "local");
}
