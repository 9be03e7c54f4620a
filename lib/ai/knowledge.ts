/**
 * Lexical knowledge-base ranking (Okapi BM25) with a calibrated confidence:
 * what the `local` provider answers from, and how `openai` prompts pick entries.
 */
import { tokens } from "./text";

/** One question/answer entry. */
export interface KnowledgeEntry {
  id: string;
  question: string;
  answer: string;
}

export interface RankedEntry {
  entry: KnowledgeEntry;
  score: number;
}

export interface Ranking {
  ranked: RankedEntry[];
  /** 0..1: how much of the query the best entry explains, discounted when the runner-up is as good. */
  confidence: number;
  /** Content tokens of the query (empty: nothing to answer). */
  queryTokens: string[];
}

const K1 = 1.2;
const B = 0.75;
/** Answer text counts, but a match in the question is what makes an entry relevant. */
const ANSWER_WEIGHT = 0.35;

interface Doc {
  entry: KnowledgeEntry;
  tf: Map<string, number>;
  length: number;
}

function termFrequencies(entry: KnowledgeEntry): Doc {
  const tf = new Map<string, number>();
  const q = tokens(entry.question);
  const a = tokens(entry.answer);
  for (const t of q) tf.set(t, (tf.get(t) ?? 0) + 1);
  for (const t of a) tf.set(t, (tf.get(t) ?? 0) + ANSWER_WEIGHT);
  return { entry, tf, length: q.length + a.length * ANSWER_WEIGHT };
}

/** Ranks `entries` for `query` and estimates the confidence of the best match. */
export function rankKnowledge(query: string, entries: readonly KnowledgeEntry[]): Ranking {
  const queryTokens = [...new Set(tokens(query))];
  if (queryTokens.length === 0 || entries.length === 0) return { ranked: [], confidence: 0, queryTokens };
  const docs = entries.map(termFrequencies);
  const avgLength = docs.reduce((s, d) => s + d.length, 0) / docs.length || 1;
  const idf = new Map<string, number>();
  for (const term of queryTokens) {
    const df = docs.filter((d) => d.tf.has(term)).length;
    // BM25+ style floor so a term in every entry still counts a little.
    idf.set(term, Math.log(1 + (docs.length - df + 0.5) / (df + 0.5)));
  }
  const ranked = docs
    .map((doc) => {
      let score = 0;
      for (const term of queryTokens) {
        const f = doc.tf.get(term) ?? 0;
        if (f === 0) continue;
        score += (idf.get(term) ?? 0) * ((f * (K1 + 1)) / (f + K1 * (1 - B + (B * doc.length) / avgLength)));
      }
      return { entry: doc.entry, score };
    })
    .filter((r) => r.score > 0)
    .sort((a, b) => b.score - a.score);
  const best = ranked[0];
  if (!best) return { ranked, confidence: 0, queryTokens };
  // Coverage: the idf-weighted share of the query's terms the best entry's question contains.
  const questionTerms = new Set(tokens(best.entry.question));
  const answerTerms = new Set(tokens(best.entry.answer));
  let covered = 0;
  let total = 0;
  for (const term of queryTokens) {
    // Terms unknown to the whole knowledge base still count against coverage, with a typical weight.
    const weight = Math.max(idf.get(term) ?? 0, 0.7);
    total += weight;
    if (questionTerms.has(term)) covered += weight;
    else if (answerTerms.has(term)) covered += weight * 0.5;
  }
  const coverage = total > 0 ? covered / total : 0;
  const second = ranked[1];
  const margin = second ? Math.min(1, (best.score - second.score) / best.score + 0.5) : 1;
  return { ranked, confidence: Math.max(0, Math.min(1, coverage * margin)), queryTokens };
}
