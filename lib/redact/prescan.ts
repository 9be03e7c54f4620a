// One regex pass per message finds both the digit runs the digit scanner classifies and the weak
// credential keywords ("pin", "password", "otp"...) the credential scanner looks behind, instead
// of one regex pass each. The two alternatives can never overlap (runs hold no letters, keywords
// no digits), so the matches are exactly those each regex finds on its own.

const RUN_CHAR = "[\\d \\u00a0.\\-/()]";
/**
 * Digit runs: a digit and at least six more digits or separators (space, nbsp, . - / ( )). The six
 * are written out rather than as `{6,}`: irregexp then rejects the many short numbers (prices,
 * times, room numbers) with a quick look at the next few characters (a fifth less regex time).
 */
export const RUN_SOURCE = `\\d${RUN_CHAR.repeat(6)}${RUN_CHAR}*`;
/** Keywords whose value may follow "is"/"è" or bare digits; matched case-insensitively. */
export const WEAK_KEYWORD_SOURCE = "p(?:ass(?:word|wort|wd|code|phrase|e)|wd|in(?: ?code)?)|otp|cv[vc]";

const PRESCAN_RE = new RegExp(`${RUN_SOURCE}|${WEAK_KEYWORD_SOURCE}`, "gi");

/** Returned by {@link prescan} when a message has more matches than the buffers hold. */
export const MATCH_OVERFLOW = -1;
const MAX_MATCHES = 64;

/** Digit runs of the last {@link prescan}: [runStart[k], runEnd[k]). */
export const runStart = new Int32Array(MAX_MATCHES);
export const runEnd = new Int32Array(MAX_MATCHES);
export const runCount = new Int32Array(1);
/** Weak keywords of the last {@link prescan}: [keywordStart[k], keywordEnd[k]). */
export const keywordStart = new Int32Array(MAX_MATCHES);
export const keywordEnd = new Int32Array(MAX_MATCHES);
export const keywordCount = new Int32Array(1);

/**
 * Records the digit runs and weak keywords of `text`; returns how many there are, or
 * {@link MATCH_OVERFLOW} when there are too many (the scanners then search the text themselves).
 */
export function prescan(text: string): number {
  PRESCAN_RE.lastIndex = 0;
  let runs = 0;
  let keywords = 0;
  for (let m = PRESCAN_RE.exec(text); m !== null; m = PRESCAN_RE.exec(text)) {
    const start = m.index;
    const c = text.charCodeAt(start);
    if (c >= 48 && c <= 57) {
      if (runs === MAX_MATCHES) return overflow();
      runStart[runs] = start;
      runEnd[runs] = PRESCAN_RE.lastIndex;
      runs++;
    } else {
      if (keywords === MAX_MATCHES) return overflow();
      keywordStart[keywords] = start;
      keywordEnd[keywords] = PRESCAN_RE.lastIndex;
      keywords++;
    }
  }
  runCount[0] = runs;
  keywordCount[0] = keywords;
  return runs + keywords;
}

function overflow(): number {
  runCount[0] = -1;
  keywordCount[0] = -1;
  return MATCH_OVERFLOW;
}
