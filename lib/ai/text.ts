/** Tokenisation shared by the lexical ranker and the intent rules: English and Italian, accent-insensitive. */

const STOPWORDS = new Set(
  (
    // English
    "a an and are as at be but by can could did do does for from had has have how i if in into is it its me my of on or our please so " +
    "that the their them then there these they this to was we were what when where which who why will with would you your yours hi hello hey thanks thank " +
    // Italian
    "a ad al alla alle allo agli ai anche che chi ci come con cosa da dal dalla dei del della delle dello di e ed gli ha hai ho i il in io la le lo " +
    "ma mi mia mio nei nel nella no non o per perche più piu puo può qual quale quando se si sono su sua suo sul sulla ti tu tua tuo un una uno vi voi " +
    "ciao salve buongiorno buonasera grazie prego vorrei potete potreste posso"
  ).split(/\s+/),
);

/** Lower-case, strip accents, keep letters and digits. */
export function fold(text: string): string {
  return text.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
}

/** A light stemmer for EN/IT: trims common inflection endings so "orders"/"order", "spedizione"/"spedizioni" meet. */
export function stem(token: string): string {
  if (token.length <= 4 || /^\d+$/.test(token)) return token;
  for (const suffix of ["zioni", "zione", "mente", "ing", "ies", "ied", "es", "ed", "s", "i", "e", "a", "o"]) {
    if (token.endsWith(suffix) && token.length - suffix.length >= 4) return token.slice(0, -suffix.length);
  }
  return token;
}

/** Content tokens of a text: folded, stop words removed, stemmed. */
export function tokens(text: string): string[] {
  const out: string[] = [];
  for (const raw of fold(text).split(/[^a-z0-9]+/)) {
    if (raw.length < 2 || STOPWORDS.has(raw)) continue;
    out.push(stem(raw));
  }
  return out;
}
