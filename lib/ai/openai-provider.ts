/**
 * The `openai` provider through the official SDK, against any OpenAI-compatible
 * server. Requests set `store: false`, use a timeout, and let the SDK retry
 * 429/5xx honouring `Retry-After`; the reply is structured JSON with a confidence.
 */
import OpenAI from "openai";
import { z } from "zod";
import { INTENTS } from "./rules";
import { ProviderError, systemPrompt, type AiProvider, type ReplyRequest, type ReplyResult, type Turn } from "./providers";

export interface OpenAiOptions {
  apiKey: string;
  baseURL: string;
  timeoutMs: number;
  maxRetries?: number;
  fetch?: typeof fetch;
}

const replySchema = z.object({
  reply: z.string().max(8000),
  confidence: z.number().min(0).max(1),
  handoff: z.boolean(),
  intent: z.enum(INTENTS).nullable().optional(),
});

const REPLY_JSON_SCHEMA = {
  type: "object",
  additionalProperties: false,
  required: ["reply", "confidence", "handoff", "intent"],
  properties: {
    reply: { type: "string" },
    confidence: { type: "number", minimum: 0, maximum: 1 },
    handoff: { type: "boolean" },
    intent: { type: "string", enum: [...INTENTS] },
  },
} as const;

function classify(err: unknown): ProviderError {
  if (err instanceof ProviderError) return err;
  if (err instanceof OpenAI.APIConnectionTimeoutError) return new ProviderError("provider timed out", true);
  if (err instanceof OpenAI.APIConnectionError) return new ProviderError("provider unreachable", true);
  if (err instanceof OpenAI.APIError) {
    const status = err.status ?? 0;
    return new ProviderError(`provider answered ${status}`, status === 408 || status === 409 || status === 429 || status >= 500);
  }
  return new ProviderError(err instanceof Error ? err.message : "provider failed", true);
}

export class OpenAiProvider implements AiProvider {
  readonly name = "openai" as const;
  readonly #client: OpenAI;

  constructor(options: OpenAiOptions) {
    this.#client = new OpenAI({
      apiKey: options.apiKey,
      baseURL: options.baseURL,
      timeout: options.timeoutMs,
      maxRetries: options.maxRetries ?? 2,
      ...(options.fetch ? { fetch: options.fetch } : {}),
    });
  }

  async reply(request: ReplyRequest): Promise<ReplyResult> {
    let content: string | null | undefined;
    try {
      const completion = await this.#client.chat.completions.create({
        model: request.model,
        store: false,
        temperature: 0.2,
        messages: [{ role: "system", content: systemPrompt(request.persona, request.knowledge) }, ...request.turns],
        response_format: { type: "json_schema", json_schema: { name: "parley_reply", strict: true, schema: REPLY_JSON_SCHEMA } },
      });
      content = completion.choices[0]?.message?.content;
    } catch (err) {
      throw classify(err);
    }
    let json: unknown;
    try {
      json = JSON.parse(content ?? "");
    } catch {
      throw new ProviderError("provider returned malformed JSON", true);
    }
    const parsed = replySchema.safeParse(json);
    if (!parsed.success) throw new ProviderError("provider reply did not match the schema", true);
    return { reply: parsed.data.reply, confidence: parsed.data.confidence, handoff: parsed.data.handoff, intent: parsed.data.intent ?? null };
  }

  async summarize(request: { model: string; turns: Turn[] }): Promise<string> {
    try {
      const transcript = request.turns.map((t) => `${t.role === "user" ? "Customer" : "Business"}: ${t.content}`).join("\n");
      const completion = await this.#client.chat.completions.create({
        model: request.model,
        store: false,
        temperature: 0,
        messages: [
          {
            role: "system",
            content:
              "Summarize this customer-service conversation in at most three sentences for a colleague. Keep tokens like [EMAIL_1] verbatim; never invent personal data.",
          },
          { role: "user", content: transcript },
        ],
      });
      return completion.choices[0]?.message?.content?.trim() ?? "";
    } catch (err) {
      throw classify(err);
    }
  }
}
