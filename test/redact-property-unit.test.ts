import fc from "fast-check";
import { parsePhoneNumberFromString } from "libphonenumber-js/max";
import type { CountryCode } from "libphonenumber-js/max";
import { describe, expect, it } from "vitest";
import { PlaceholderVault, redact, restore } from "../lib/redact";
import type { EntityType } from "../lib/redact";
import { validateInternational, validateNational } from "../lib/redact/phone";

// Checksums are recomputed here, independently of lib/redact, so the properties do not grade the
// engine with its own arithmetic.

function luhnCheckDigit(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) {
    let d = Number(body[body.length - 1 - i]);
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

function mod97(s: string): number {
  let r = 0;
  for (const ch of s) {
    const v = /[0-9]/.test(ch) ? ch : String(ch.charCodeAt(0) - 55);
    for (const d of v) r = (r * 10 + Number(d)) % 97;
  }
  return r;
}

const CF_ODD: Record<string, number> = {
  "0": 1, "1": 0, "2": 5, "3": 7, "4": 9, "5": 13, "6": 15, "7": 17, "8": 19, "9": 21,
  A: 1, B: 0, C: 5, D: 7, E: 9, F: 13, G: 15, H: 17, I: 19, J: 21, K: 2, L: 4, M: 18, N: 20, O: 11,
  P: 3, Q: 6, R: 8, S: 12, T: 14, U: 16, V: 10, W: 22, X: 25, Y: 24, Z: 23,
};

function cfCheck(first15: string): string {
  let sum = 0;
  for (let i = 0; i < 15; i++) {
    const ch = first15[i] as string;
    sum += i % 2 === 0 ? (CF_ODD[ch] as number) : /[0-9]/.test(ch) ? Number(ch) : ch.charCodeAt(0) - 65;
  }
  return String.fromCharCode(65 + (sum % 26));
}

function pivaCheck(first10: string): string {
  let sum = 0;
  for (let i = 0; i < 10; i++) {
    let d = Number(first10[i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

const digits = (min: number, max = min): fc.Arbitrary<string> =>
  fc.array(fc.integer({ min: 0, max: 9 }), { minLength: min, maxLength: max }).map((a) => a.join(""));

/** A short chat sentence around a value, in English or Italian. */
const sentence = (value: string): fc.Arbitrary<string> =>
  fc
    .constantFrom(
      "my card is {} thanks",
      "ho pagato con {}",
      "{}",
      "Ecco i dati: {}.",
      "please refund to {} asap",
      "({})",
      "il numero è {}, grazie!",
      "data:\n{}\nend",
    )
    .map((t) => t.replace("{}", value));

function redactedOf(text: string, type: EntityType): string[] {
  const res = redact(text);
  return res.entities.filter((e) => e.type === type).map((e) => text.slice(e.start, e.end));
}

// ---------------------------------------------------------------------------------------------
// Cards

const ISSUER_PREFIXES: readonly [prefix: fc.Arbitrary<string>, length: number][] = [
  [fc.constant("4"), 16],
  [fc.constant("4"), 13],
  [fc.constant("4"), 19],
  [fc.integer({ min: 51, max: 55 }).map(String), 16],
  [fc.integer({ min: 2221, max: 2720 }).map(String), 16],
  [fc.constantFrom("34", "37"), 15],
  [fc.constantFrom("6011", "65", "644", "649"), 16],
  [fc.integer({ min: 3528, max: 3589 }).map(String), 16],
  [fc.constantFrom("300", "305", "36", "38"), 14],
  [fc.constantFrom("62"), 16],
  [fc.constantFrom("62"), 19],
];

const validCard: fc.Arbitrary<string> = fc
  .constantFrom(...ISSUER_PREFIXES)
  .chain(([prefix, length]) =>
    prefix.chain((p) => digits(length - p.length - 1).map((body) => p + body + luhnCheckDigit(p + body))),
  );

/** Spaces or dashes: in 4-digit groups, at random cut points, or none. */
function spaced(number: string): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constant(number),
    fc.constantFrom(" ", "-").map((sep) => number.replace(/(\d{4})(?=\d)/g, `$1${sep}`)),
    fc
      .uniqueArray(fc.integer({ min: 1, max: number.length - 1 }), { maxLength: 5 })
      .chain((cuts) =>
        fc.constantFrom(" ", "-").map((sep) => {
          const sorted = [...cuts].sort((a, b) => a - b);
          let out = "";
          let last = 0;
          for (const c of sorted) {
            out += number.slice(last, c) + sep;
            last = c;
          }
          return out + number.slice(last);
        }),
      ),
  );
}

describe("cards", () => {
  it("catches every valid card (issuer prefix + Luhn) however it is spaced", () => {
    fc.assert(
      fc.property(
        validCard.chain((n) => spaced(n).chain((s) => sentence(s).map((text) => ({ s, text })))),
        ({ s, text }) => {
          expect(redactedOf(text, "CARD")).toEqual([s]);
          expect(redact(text).text).not.toContain(s);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("keeps every 16-digit number that fails Luhn", () => {
    const luhnFailing = digits(15).chain((body) =>
      fc.integer({ min: 1, max: 9 }).map((shift) => body + String((Number(luhnCheckDigit(body)) + shift) % 10)),
    );
    fc.assert(
      fc.property(
        luhnFailing.chain((n) =>
          fc.constantFrom(n, n.replace(/(\d{4})(?=\d)/g, "$1 ")).chain((s) =>
            fc.constantFrom(`tracking ${s}`, `spedizione n. ${s} partita`, `parcel ${s} is late`).map((text) => ({ s, text })),
          ),
        ),
        ({ s, text }) => {
          expect(redactedOf(text, "CARD")).toEqual([]);
          expect(redact(text).text).toContain(s);
        },
      ),
      { numRuns: 400 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// IBAN

const ALNUM_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const upperLetters = (n: number): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(..."ABCDEFGHIJKLMNOPQRSTUVWXYZ"), { minLength: n, maxLength: n }).map((a) => a.join(""));
const alnum = (n: number): fc.Arbitrary<string> =>
  fc.array(fc.constantFrom(...ALNUM_UPPER), { minLength: n, maxLength: n }).map((a) => a.join(""));

/** BBAN layouts (SWIFT registry) for a spread of countries. */
const BBANS: Record<string, fc.Arbitrary<string>> = {
  IT: fc.tuple(upperLetters(1), digits(10), alnum(12)).map((p) => p.join("")),
  SM: fc.tuple(upperLetters(1), digits(10), alnum(12)).map((p) => p.join("")),
  DE: digits(18),
  FR: fc.tuple(digits(10), alnum(11), digits(2)).map((p) => p.join("")),
  ES: digits(20),
  GB: fc.tuple(upperLetters(4), digits(14)).map((p) => p.join("")),
  NL: fc.tuple(upperLetters(4), digits(10)).map((p) => p.join("")),
  BE: digits(12),
  CH: fc.tuple(digits(5), alnum(12)).map((p) => p.join("")),
  AT: digits(16),
  PT: digits(21),
  NO: digits(11),
  PL: digits(24),
  MT: fc.tuple(upperLetters(4), digits(5), alnum(18)).map((p) => p.join("")),
};

const validIban: fc.Arbitrary<string> = fc.constantFrom(...Object.keys(BBANS)).chain((cc) =>
  (BBANS[cc] as fc.Arbitrary<string>).map((bban) => {
    const check = 98 - mod97(bban + cc + "00");
    return cc + String(check).padStart(2, "0") + bban;
  }),
);

describe("IBAN", () => {
  it("catches every valid IBAN, compact, in groups of four or lowercase", () => {
    fc.assert(
      fc.property(
        validIban.chain((compact) =>
          fc
            .constantFrom(compact, compact.replace(/(.{4})(?=.)/g, "$1 "), compact.toLowerCase())
            .chain((written) => sentence(written).map((text) => ({ compact, written, text }))),
        ),
        ({ written, text }) => {
          expect(redactedOf(text, "IBAN")).toEqual([written]);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("still finds a card written right after an IBAN in groups, and always returns", () => {
    const grouped = validIban.map((compact) => compact.replace(/(.{4})(?=.)/g, "$1 "));
    const fragment = fc.constantFrom("4111", "1111", "32", "00", "ordine", "+39", "-", " ");
    fc.assert(
      fc.property(grouped, validCard, fc.array(fragment, { maxLength: 12 }), (iban, card, tail) => {
        const cardInFours = card.replace(/(.{4})(?=.)/g, "$1 ");
        expect(redactedOf(`${iban} ${cardInFours}`, "IBAN")).toEqual([iban]);
        expect(redactedOf(`${iban} ${cardInFours}`, "CARD")).toEqual([cardInFours]);
        // Whatever follows, the call returns (the token scan once stepped back to this IBAN forever).
        const text = `${iban} ${tail.join(" ")}`;
        expect(redact(text).text.length).toBeGreaterThan(0);
      }),
      { numRuns: 400 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Codice fiscale

const OMOCODIA = "LMNPQRSTUV";
const NUMERIC_POSITIONS = [6, 7, 9, 10, 12, 13, 14];

const validCodiceFiscale: fc.Arbitrary<string> = fc
  .record({
    letters: upperLetters(6),
    year: digits(2),
    month: fc.constantFrom(..."ABCDEHLMPRST"),
    day: fc.integer({ min: 1, max: 31 }).chain((d) => fc.constantFrom(d, d + 40)),
    town: fc.tuple(upperLetters(1), digits(3)).map(([l, d]) => l + d),
    omocodia: fc.subarray(NUMERIC_POSITIONS),
    lower: fc.boolean(),
  })
  .map(({ letters, year, month, day, town, omocodia, lower }) => {
    const chars = [...`${letters}${year}${month}${String(day).padStart(2, "0")}${town}`];
    for (const p of omocodia) chars[p] = OMOCODIA[Number(chars[p])] as string;
    const first15 = chars.join("");
    const cf = first15 + cfCheck(first15);
    return lower ? cf.toLowerCase() : cf;
  });

describe("codice fiscale", () => {
  it("catches every valid codice fiscale, with any omocodia substitutions, in any case", () => {
    fc.assert(
      fc.property(
        validCodiceFiscale.chain((cf) => sentence(cf).map((text) => ({ cf, text }))),
        ({ cf, text }) => {
          expect(redactedOf(text, "CODICE_FISCALE")).toEqual([cf]);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("rejects a codice fiscale whose check character is wrong", () => {
    fc.assert(
      fc.property(validCodiceFiscale, fc.integer({ min: 1, max: 25 }), (cf, shift) => {
        const wrong = cf.slice(0, 15) + String.fromCharCode(65 + (((cf.toUpperCase().charCodeAt(15) - 65 + shift) % 26) as number));
        expect(redactedOf(`CF ${wrong}`, "CODICE_FISCALE")).toEqual([]);
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Partita IVA

const validPartitaIva: fc.Arbitrary<string> = fc
  .tuple(digits(7).filter((d) => !/^0+$/.test(d)), fc.integer({ min: 1, max: 100 }))
  .map(([first, office]) => {
    const first10 = first + String(office).padStart(3, "0");
    return first10 + pivaCheck(first10);
  });

describe("partita IVA", () => {
  it("catches every valid partita IVA with the IT prefix", () => {
    fc.assert(
      fc.property(
        validPartitaIva.chain((p) => sentence(`IT${p}`).map((text) => ({ p, text }))),
        ({ p, text }) => {
          expect(redactedOf(text, "PARTITA_IVA")).toEqual([`IT${p}`]);
          expect(redact(text).text).not.toContain(p);
        },
      ),
      { numRuns: 400 },
    );
  });

  it("catches a valid partita IVA after 'P.IVA'", () => {
    fc.assert(
      fc.property(validPartitaIva, fc.constantFrom("P.IVA", "P. IVA", "partita IVA:", "VAT"), (p, label) => {
        expect(redactedOf(`Rossi Srl ${label} ${p}`, "PARTITA_IVA")).toEqual([p]);
      }),
      { numRuns: 300 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Phones: the compiled metadata rules agree with libphonenumber-js itself.

describe("phone validation", () => {
  const NATIONAL_PREFIXES: Record<string, string[]> = {
    IT: ["3", "0", "02", "06", "8", "5"],
    GB: ["07", "020", "01", "03", "08"],
    DE: ["015", "017", "030", "089", "0"],
    FR: ["06", "07", "01", "04", "08", "09"],
    ES: ["6", "7", "9", "8"],
    US: ["2", "4", "6", "7", "9", "1"],
  };

  it("agrees with parsePhoneNumberFromString(...).isValid() on national numbers", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...Object.keys(NATIONAL_PREFIXES)).chain((country) =>
          fc
            .constantFrom(...(NATIONAL_PREFIXES[country] as string[]))
            .chain((prefix) => digits(5, 12).map((rest) => ({ country, number: prefix + rest }))),
        ),
        ({ country, number }) => {
          fc.pre(!number.startsWith("00"));
          const lib = parsePhoneNumberFromString(number, country as CountryCode);
          // By design GB/DE/FR national numbers must carry the trunk "0".
          const expected = !!lib?.isValid() && (number.startsWith("0") || !["GB", "DE", "FR"].includes(country));
          expect(validateNational(number, country) !== null).toBe(expected);
          if (expected) expect(validateNational(number, country)).toBe(lib?.number);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("agrees with parsePhoneNumberFromString(...).isValid() on international numbers", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("39", "44", "1", "49", "33", "34", "41", "31", "7", "86", "91", "351", "353", "61"),
        digits(6, 12),
        (cc, rest) => {
          const lib = parsePhoneNumberFromString(`+${cc}${rest}`);
          const mine = validateInternational(cc + rest);
          expect(mine !== null).toBe(!!lib?.isValid());
          if (mine !== null) expect(mine).toBe(lib?.number);
        },
      ),
      { numRuns: 3000 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Whole-engine invariants

/** Texts built from pieces that start or extend identifiers: separators, digit groups, IBAN groups, keywords. */
const hostileText: fc.Arbitrary<string> = fc
  .array(
    fc.constantFrom(
      " ", "  ", ".", "-", "/", "(", ")", "\u00a0", ":", "=", "@", "_", "\n", "è", "€", "+39 ", "00", "1", "23", "456", "7890",
      "12345678", "4111", "1111", "AA68", "GR12", "WEST", "GB82 WEST 1234 5698 7654 32", "IT60 X054 2811 1010 0000 0123 456",
      "4111 1111 1111 1111", "RSSMRA85T10A562S", "fe80::1", "10.0.0.1", "a.b@ex.com", "pin", "password", "pwd", "is ", "token",
      "sk-abcdefghijklmnop1234", "eyJhbGciOiJIUzI1NiJ9", "_".repeat(20), "x".repeat(20),
    ),
    { maxLength: 24 },
  )
  .map((pieces) => pieces.join(""));

describe("redact invariants", () => {
  it("returns sorted, non-overlapping entities that rebuild the output, for any input", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: "grapheme", maxLength: 120 }), hostileText), (text) => {
        const res = redact(text);
        let last = 0;
        let rebuilt = "";
        for (const e of res.entities) {
          expect(e.start).toBeGreaterThanOrEqual(last);
          expect(e.end).toBeGreaterThan(e.start);
          expect(e.end).toBeLessThanOrEqual(text.length);
          rebuilt += text.slice(last, e.start) + e.placeholder;
          last = e.end;
        }
        expect(rebuilt + text.slice(last)).toBe(res.text);
      }),
      { numRuns: 1000 },
    );
  });

  it("restore() undoes redact() with the same vault", () => {
    const identifier = fc.oneof(validCard, validIban, validCodiceFiscale, validPartitaIva.map((p) => `IT${p}`));
    const word = fc.constantFrom("ciao", "ordine", "grazie", "the", "card", "IBAN:", "e", "and", "€49,90", "14/03/2025");
    fc.assert(
      fc.property(fc.array(fc.oneof(identifier, word), { minLength: 1, maxLength: 12 }), (parts) => {
        const text = parts.join(" ");
        const vault = new PlaceholderVault();
        const first = redact(text, { vault });
        expect(restore(first.text, vault)).toBe(text);
        // The same text again gets the same placeholders.
        expect(redact(text, { vault }).text).toBe(first.text);
        const rebuilt = new PlaceholderVault(vault.toJSON());
        expect(restore(first.text, rebuilt)).toBe(text);
      }),
      { numRuns: 300 },
    );
  });
});
