import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { classifyKeyword, KEYWORDS, keywordReply, normalizeKeyword, type KeywordAction } from "../lib/consent/keywords";

const OPT_OUT_EN = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"];
const OPT_OUT_IT = ["ANNULLA", "CANCELLA", "BASTA", "DISISCRIVIMI"];
const OPT_IN_EN = ["START", "YES", "UNSTOP"];
const OPT_IN_IT = ["ISCRIVIMI"];

/** Puts a grave or acute accent on the first vowel: "Cancellà"-style spellings people type. */
function accented(word: string): string {
  const marks: Record<string, string> = { A: "À", E: "È", I: "Ì", O: "Ó", U: "Ù" };
  const i = word.search(/[AEIOU]/);
  return i < 0 ? word : word.slice(0, i) + (marks[word[i] ?? ""] ?? "") + word.slice(i + 1);
}

function variants(word: string): string[] {
  const lower = word.toLowerCase();
  const title = lower.charAt(0).toUpperCase() + lower.slice(1);
  return [word, lower, title, accented(word), accented(word).toLowerCase(), ` ${title}! `, `«${lower}»`, `${word}.`, `\n${lower}\t`, `¡${title}?!`];
}

describe("classifyKeyword", () => {
  const table: [string[], KeywordAction, "en" | "it"][] = [
    [OPT_OUT_EN, "opt_out", "en"],
    [OPT_OUT_IT, "opt_out", "it"],
    [OPT_IN_EN, "opt_in", "en"],
    [OPT_IN_IT, "opt_in", "it"],
    [["HELP"], "help", "en"],
    [["AIUTO"], "help", "it"],
  ];

  for (const [words, action, locale] of table) {
    for (const word of words) {
      it(`${word} → ${action} (${locale}) in every case, accent and punctuation`, () => {
        for (const text of variants(word)) expect(classifyKeyword(text), JSON.stringify(text)).toEqual({ action, locale });
      });
    }
  }

  it("covers exactly the keywords of the issue", () => {
    expect(Object.keys(KEYWORDS).sort()).toEqual([...OPT_OUT_EN, ...OPT_OUT_IT, ...OPT_IN_EN, ...OPT_IN_IT, "HELP", "AIUTO"].sort());
  });

  it("accepts the spellings people use", () => {
    expect(classifyKeyword("Cancellà")).toEqual({ action: "opt_out", locale: "it" });
    expect(classifyKeyword("ANNULLÁ!!")).toEqual({ action: "opt_out", locale: "it" });
    expect(classifyKeyword("opt-out")).toEqual({ action: "opt_out", locale: "en" });
    expect(classifyKeyword("Opt Out")).toEqual({ action: "opt_out", locale: "en" });
    expect(classifyKeyword("stop all")).toEqual({ action: "opt_out", locale: "en" });
    expect(classifyKeyword("Ｓｔｏｐ")).toEqual({ action: "opt_out", locale: "en" }); // full-width (NFKD)
    expect(classifyKeyword("🛑 STOP 🛑")).toEqual({ action: "opt_out", locale: "en" });
    expect(classifyKeyword("Disiscrivimì")).toEqual({ action: "opt_out", locale: "it" });
  });

  it("ignores messages that are more than a keyword", () => {
    for (const text of ["", " ", "!!!", "stop it", "please stop", "STOPP", "stopping", "help me", "yes please", "basta così", "non annullare", "STOP STOP", "s t o p", "I want to cancel my order"]) {
      expect(classifyKeyword(text), text).toBeNull();
    }
    expect(classifyKeyword(`STOP${" ".repeat(100)}`)).toBeNull();
  });

  it("is stable under any surrounding punctuation and whitespace (property)", () => {
    const noise = fc.string({ unit: fc.constantFrom(" ", "\t", "\n", ".", "!", "?", ",", ";", ":", "-", "*", "\"", "'", "(", ")", "…", "¡", "¿") , maxLength: 8 });
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(KEYWORDS)), noise, noise, fc.boolean(), (word, before, after, lower) => {
        const text = `${before}${lower ? word.toLowerCase() : word}${after}`;
        expect(classifyKeyword(text)).toEqual(KEYWORDS[word]);
      }),
    );
  });

  it("normalises to upper case without accents or separators", () => {
    expect(normalizeKeyword("  Cancellà! ")).toBe("CANCELLA");
    expect(normalizeKeyword("opt_out")).toBe("OPTOUT");
  });
});

describe("keywordReply", () => {
  it("confirms in the keyword's language and names the business", () => {
    const ctx = { tenantName: "Pizzeria Da Mario" };
    expect(keywordReply("opt_out", "en", ctx)).toMatch(/^Pizzeria Da Mario: you have been unsubscribed.*START/);
    expect(keywordReply("opt_out", "it", ctx)).toMatch(/^Pizzeria Da Mario: la tua iscrizione è stata annullata.*ISCRIVIMI/);
    expect(keywordReply("opt_in", "en", ctx)).toMatch(/subscribed again.*STOP/);
    expect(keywordReply("opt_in", "it", ctx)).toMatch(/sei di nuovo iscritto.*ANNULLA/);
    expect(keywordReply("help", "en", ctx)).toMatch(/^Pizzeria Da Mario: for help/);
    expect(keywordReply("help", "it", ctx)).toMatch(/^Pizzeria Da Mario: per assistenza/);
  });

  it("answers HELP with the tenant's own contact text when set", () => {
    expect(keywordReply("help", "it", { tenantName: "X", contactText: " Call +39 02 1234567, 9-18. " })).toBe("Call +39 02 1234567, 9-18.");
    expect(keywordReply("opt_out", "en", { tenantName: "X", contactText: "ignored for opt-out" })).toMatch(/^X: you have been unsubscribed/);
  });
});
