/** AI providers behind one interface: the offline `local` ranker and any OpenAI-compatible server. */
import { rankKnowledge, type KnowledgeEntry } from "./knowledge";
import type { Intent } from "./rules";

/** A chat turn as the model sees it: text already redacted. */
export interface Turn {
  role: "user" | "assistant";
  content: string;
}

/** Everything a provider may see: persona, redacted recent turns, the best knowledge entries. Nothing else. */
export interface ReplyRequest {
  persona: string;
  model: string;
  /** Recent turns, oldest first, ending with the message to answer (redacted). */
  turns: Turn[];
  knowledge: KnowledgeEntry[];
}

export interface ReplyResult {
  reply: string;
  /** 0..1, the provider's confidence that the reply is right and supported by the knowledge. */
  confidence: number;
  handoff: boolean;
  intent: Intent | null;
}

/** A provider call that failed; `retryable` failures are retried by the pipeline before it hands off. */
export class ProviderError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = "ProviderError";
  }
}

export interface AiProvider {
  readonly name: "local" | "openai";
  reply(request: ReplyRequest): Promise<ReplyResult>;
  /** A short summary of a redacted transcript (placeholders stay in place). */
  summarize(request: { model: string; turns: Turn[] }): Promise<string>;
}

/** The rules every model prompt carries. */
export const SYSTEM_RULES = [
  "Answer only from the knowledge entries and the conversation. If they do not contain the answer, set confidence low and handoff true; never guess facts, prices, dates or policies.",
  "Tokens like [EMAIL_1], [PHONE_2] or [CARD_1] stand for personal data that was removed for privacy. Copy them verbatim when you need to refer to that data; never invent new ones and never ask for card numbers, passwords or other secrets.",
  "Set handoff true if the customer asks for a person, is upset, or the request needs a human decision.",
  "Reply with JSON only: {\"reply\": string, \"confidence\": number between 0 and 1, \"handoff\": boolean, \"intent\": one of order_status, booking, billing, returns, complaint, opening_hours, human_request, greeting, other}. Use an empty reply when nothing needs saying.",
].join("\n");

/** System prompt: persona, rules and the knowledge entries. */
export function systemPrompt(persona: string, knowledge: readonly KnowledgeEntry[]): string {
  const kb = knowledge.length
    ? knowledge.map((e, i) => `#${i + 1} Q: ${e.question}\nA: ${e.answer}`).join("\n\n")
    : "(no knowledge entries)";
  return `${persona}\n\n${SYSTEM_RULES}\n\nKnowledge entries:\n${kb}`;
}

/**
 * The offline provider: ranks the tenant's knowledge base lexically (BM25)
 * and answers with the best entry, with a real confidence score.
 */
export class LocalProvider implements AiProvider {
  readonly name = "local" as const;

  constructor(private readonly allEntries: readonly KnowledgeEntry[]) {}

  async reply(request: ReplyRequest): Promise<ReplyResult> {
    const last = request.turns[request.turns.length - 1];
    const ranking = rankKnowledge(last?.content ?? "", this.allEntries);
    const best = ranking.ranked[0];
    if (!best) return { reply: "", confidence: 0, handoff: ranking.queryTokens.length > 0, intent: null };
    return { reply: best.entry.answer, confidence: ranking.confidence, handoff: false, intent: null };
  }

  async summarize(request: { turns: Turn[] }): Promise<string> {
    const user = request.turns.filter((t) => t.role === "user");
    const replies = request.turns.length - user.length;
    const first = user[0]?.content ?? "";
    const last = user[user.length - 1]?.content ?? "";
    const clip = (s: string) => (s.length > 240 ? `${s.slice(0, 237)}…` : s);
    const parts = [`${user.length} message(s) from the customer, ${replies} reply(ies).`];
    if (first) parts.push(`First request: "${clip(first)}"`);
    if (last && last !== first) parts.push(`Latest message: "${clip(last)}"`);
    return parts.join(" ");
  }
}
