/** Hostile inputs shared by the fuzz tests (test/fuzz-*.test.ts). */
import fc from "fast-check";

const DEEP = 10_000;
/** 10,000 levels of nested arrays / objects: a parser that recurses naively overflows its stack. */
export const deepArray = "[".repeat(DEEP) + "]".repeat(DEEP);
export const deepObject = '{"a":'.repeat(DEEP) + "1" + "}".repeat(DEEP);
/** Keys that pollute prototypes or shadow Object.prototype methods when copied naively. */
export const PROTO_KEYS = ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "valueOf"];

/** Strings that break naive code: NUL, lone surrogates, bidi overrides, CR/LF, markup, injections, huge repeats, plus `extra` for the caller's domain. */
export function hostileStrings(extra: readonly string[] = [], repeat = 2000): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constantFrom(
      "",
      " ",
      "\u0000",
      "a\u0000b",
      "\uD800",
      "\uDFFF\uD800",
      "\u202Eevil",
      "𝕏😀👩‍👩‍👧",
      "\r\nX-Injected: 1",
      "<script>alert(1)</script>",
      "' OR 1=1 --",
      "../../../etc/passwd",
      "%00",
      "%ff%fe",
      "${7*7}{{7*7}}",
      "null",
      "undefined",
      "NaN",
      "-1",
      "1e309",
      "9".repeat(400),
      ...PROTO_KEYS,
      ...extra,
    ),
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.string({ maxLength: 20 }).map((s) => s.repeat(repeat)),
  );
}
