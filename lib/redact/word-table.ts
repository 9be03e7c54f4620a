// Case-insensitive lookup of a word of the text in a fixed vocabulary, without slicing or
// lowercasing a string: the scanners look up the words around every number and connector.

/** Lowercase for ASCII and Latin-1 letters (the vocabularies hold nothing else). */
export function lowerCode(c: number): number {
  if (c >= 65 && c <= 90) return c + 32;
  if (c >= 0xc0 && c <= 0xde && c !== 0xd7) return c + 32;
  return c;
}

const SLOTS = 1024;
const MASK = SLOTS - 1;

/**
 * An open-addressing hash table from lowercase words to small positive values. Plain fields, not
 * `#private` ones: private field access is markedly slower in hot loops on current V8.
 */
export class WordTable {
  private readonly hashes = new Int32Array(SLOTS);
  /** Index + 1 into words, 0 for an empty slot. */
  private readonly slots = new Uint16Array(SLOTS);
  private readonly words: string[] = [];
  private readonly values: number[] = [];

  /** Adds lowercase `words` with `value`; a word already present keeps its first value. */
  add(words: Iterable<string>, value: number): this {
    for (const w of words) {
      if (this.words.length >= SLOTS / 2) throw new Error("WordTable is full");
      const h = hashOf(w, 0, w.length);
      let slot = (h ^ (h >>> 15)) & MASK;
      let dup = false;
      while (this.slots[slot] !== 0) {
        if (this.words[(this.slots[slot] as number) - 1] === w) {
          dup = true;
          break;
        }
        slot = (slot + 1) & MASK;
      }
      if (dup) continue;
      this.words.push(w);
      this.values.push(value);
      this.slots[slot] = this.words.length;
      this.hashes[slot] = h;
    }
    return this;
  }

  /** Value of text[start, end) compared case-insensitively, or 0 when the word is not in the table. */
  get(text: string, start: number, end: number): number {
    return this.getHashed(text, start, end, hashOf(text, start, end));
  }

  /**
   * {@link get} for a caller that has hashed the word already, reading it backwards with
   * {@link hashStep} while looking for its start.
   */
  getHashed(text: string, start: number, end: number, h: number): number {
    let slot = (h ^ (h >>> 15)) & MASK;
    for (;;) {
      const idx = this.slots[slot] as number;
      if (idx === 0) return 0;
      if (this.hashes[slot] === h) {
        const w = this.words[idx - 1] as string;
        if (w.length === end - start && sameLower(text, start, w)) return this.values[idx - 1] as number;
      }
      slot = (slot + 1) & MASK;
    }
  }
}

/** One step of the word hash, which reads words from their last character to their first. */
export function hashStep(h: number, c: number): number {
  return (Math.imul(h, 31) + lowerCode(c)) | 0;
}

/** Hash of text[start, end), read backwards with {@link hashStep}. */
function hashOf(text: string, start: number, end: number): number {
  let h = 0;
  for (let i = end - 1; i >= start; i--) h = hashStep(h, text.charCodeAt(i));
  return h;
}

function sameLower(text: string, start: number, w: string): boolean {
  for (let i = 0; i < w.length; i++) if (lowerCode(text.charCodeAt(start + i)) !== w.charCodeAt(i)) return false;
  return true;
}
