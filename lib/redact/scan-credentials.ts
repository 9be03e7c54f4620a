// Credentials introduced by a keyword: "password: xyz", "pwd=xyz", "la mia password è xyz",
// "PIN 1234". Only the secret value is replaced, so "password:" stays readable.
import type { Candidate } from "./candidate";
import { PRIORITY } from "./candidate";
import { isWordChar } from "./chars";
import { WEAK_KEYWORD_SOURCE, keywordCount, keywordEnd, keywordStart } from "./prescan";
import { WordTable } from "./word-table";

// Two passes keep the common case cheap. Every keyword is looked for just before each ":" or "="
// ("api key: ...", "token=..."), found with indexOf. Only the frequent keywords, whose value may
// also follow "is"/"è" or bare digits ("PIN 1234"), are scanned for in the whole text, with one
// factored alternation whose left word boundary is checked in code (V8 scans it far faster).
const ANY_KEYWORD =
  "p(?:ass(?:word|wort|wd|code|phrase)|wd|in(?: ?code)?)|otp|cv[vc]|contrase(?:ñ|n)a|mot de passe|kennwort|parola d['’]ordine|api[ _-]?key|(?:access|auth)[ _-]?token|token|secret|clave|geheimnis|codice (?:pin|otp|segreto|di accesso)|one[ -]time (?:code|password)";
const KEYWORD_BEFORE_CONNECTOR_RE = new RegExp(`(?:^|[^A-Za-z0-9_])(${ANY_KEYWORD})[ \t]*$`, "i");
const WEAK_KEYWORD_RE = new RegExp(WEAK_KEYWORD_SOURCE, "gi");

/**
 * Last words of the keywords in ANY_KEYWORD (lowercase). A connector whose preceding word is not
 * one of these cannot follow a keyword, so the keyword regex is not run for it ("telefono:", "10:30").
 */
const KEYWORD_LAST_WORDS = new WordTable().add(
  [
    "password", "passwort", "passwd", "passcode", "passphrase", "pwd", "pin", "pincode", "code", "otp", "cvv",
    "cvc", "contraseña", "contrasena", "passe", "kennwort", "ordine", "apikey", "key", "accesstoken", "authtoken",
    "token", "secret", "clave", "geheimnis", "segreto", "accesso",
  ],
  1,
);

function isAsciiLetterCode(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
}

/**
 * Necessary condition for KEYWORD_BEFORE_CONNECTOR_RE to match text[.., pos): the ASCII letters just
 * before `pos` (after spaces and tabs) are the last word of a keyword (or its tail after an "ñ").
 */
export function mayEndKeyword(text: string, pos: number): boolean {
  let e = pos;
  while (e > 0) {
    const c = text.charCodeAt(e - 1);
    if (c !== 32 && c !== 9) break;
    e--;
  }
  let s = e;
  while (s > 0 && e - s <= 11 && isAsciiLetterCode(text.charCodeAt(s - 1))) s--;
  const n = e - s;
  if (n >= 3 && n <= 11 && KEYWORD_LAST_WORDS.get(text, s, e) !== 0) return true;
  // "contraseña": an "ñ" inside the last word.
  const b = s > 0 ? text.charCodeAt(s - 1) : 0;
  if (n >= 1 && n <= 4 && (b === 0xf1 || b === 0xd1)) {
    let s2 = s - 1;
    while (s2 > 0 && e - s2 <= 11 && isAsciiLetterCode(text.charCodeAt(s2 - 1))) s2--;
    return KEYWORD_LAST_WORDS.get(text, s2, e) !== 0;
  }
  return false;
}

/** 2: password-like ("is"/"è" accepted); 3: PIN-like (also "PIN 1234"); 4: generic, ":"/"=" only. */
function keywordKind(text: string, start: number, end: number): number {
  const c0 = text.charCodeAt(start) | 32;
  const c1 = text.charCodeAt(start + 1) | 32;
  if (c0 === 112 && c1 === 105) return 3; // pin
  if (c0 === 111) return 3; // otp, one-time code
  if (c0 === 99 && c1 === 118) return 3; // cvv, cvc
  if (c0 === 99 && c1 === 111 && end - start >= 9) {
    const c7 = text.charCodeAt(start + 7) | 32;
    if (c7 === 112 || c7 === 111) return 3; // codice pin / codice otp
    if (c7 === 115 || c7 === 100) return 2; // codice segreto / codice di accesso
  }
  if (c0 === 116 || c0 === 115 || c0 === 103) return 4; // token, secret, geheimnis
  if (c0 === 99 && c1 === 108) return 4; // clave
  if ((c0 === 97 && c1 === 99) || (c0 === 97 && c1 === 117)) return 2; // access/auth token
  return 2;
}

/** ":" "=" "->" between keyword and value. */
const STRONG_CONNECTOR_RE = /[ \t]*(?:[:=]|->|=>)[ \t]*/y;
/** "is", "è", "was", "ist"... possibly after a few words ("password for my account is"). */
const WEAK_CONNECTOR_RE =
  /(?:[ \t]+(?!is\b|was\b|è|e'|era\b|ist\b|est\b|es\b|lautet\b)[A-Za-zÀ-ÿ']{1,12}){0,3}?[ \t]+(?:is|was|è|e'|é|era|sarebbe|ist|lautet|est|es)(?![A-Za-z0-9À-ÿ])[ \t]*:?[ \t]*/iy;
const PIN_DIGITS_RE = /[ \t]+(?:n\.?[ \t]*|#[ \t]*)?(?=\d{3,8}(?!\d))/y;
const VALUE_RE = /["'“‘«]?([^\s"'”’»]+)/y;
const DIGITS_ONLY_RE = /^\d{3,10}$/;

/** Words that follow "password is" in ordinary sentences ("my password is wrong"). */
const NOT_A_SECRET = new Set([
  "not", "wrong", "incorrect", "invalid", "expired", "correct", "right", "the", "a", "an", "too", "very",
  "still", "now", "being", "blocked", "locked", "same", "different", "missing", "empty", "required",
  "changed", "reset", "ok", "okay", "fine", "working", "weak", "strong", "long", "short", "in", "on",
  "for", "of", "to", "that", "this", "my", "your", "no", "also", "already", "it", "case", "sensitive",
  "saved", "stored", "sent", "forgotten", "lost", "new", "old", "there", "here", "what", "which",
  "non", "sbagliata", "sbagliato", "errata", "errato", "scaduta", "scaduto", "corretta", "corretto",
  "giusta", "giusto", "la", "il", "lo", "una", "un", "troppo", "ancora", "bloccata", "bloccato",
  "cambiata", "cambiato", "diversa", "diverso", "uguale", "vuota", "obbligatoria", "nuova", "nuovo",
  "vecchia", "vecchio", "stata", "stato", "già", "sempre", "molto", "questa", "questo", "quella",
  "quello", "valida", "valido", "invalida", "corta", "lunga", "debole", "sicura", "persa", "dimenticata",
  "falsch", "nicht", "abgelaufen", "richtig", "incorrecte", "fausse", "pas", "incorrecta", "caducada",
  "null", "none", "undefined",
]);

function trimValue(text: string, s: number, e: number): number {
  // Sentence punctuation after the secret is not part of it; "!" and "?" are kept since passwords use them.
  while (e > s + 1) {
    const c = text.charCodeAt(e - 1);
    if (c === 46 || c === 44 || c === 59 || c === 58 || c === 41 || c === 93 || c === 125) e--;
    else break;
  }
  return e;
}

/** Secret value after a credential keyword ending at `after`; returns the value end or -1. */
function credentialAt(text: string, after: number, kind: number, out: Candidate[]): number {
  let valueStart = -1;
  let weak = false;
  STRONG_CONNECTOR_RE.lastIndex = after;
  if (STRONG_CONNECTOR_RE.test(text)) {
    valueStart = STRONG_CONNECTOR_RE.lastIndex;
  } else if (kind !== 4) {
    WEAK_CONNECTOR_RE.lastIndex = after;
    if (WEAK_CONNECTOR_RE.test(text)) {
      valueStart = WEAK_CONNECTOR_RE.lastIndex;
      weak = true;
    } else if (kind === 3) {
      PIN_DIGITS_RE.lastIndex = after;
      if (PIN_DIGITS_RE.test(text)) valueStart = PIN_DIGITS_RE.lastIndex;
    }
  }
  if (valueStart < 0) return -1;
  VALUE_RE.lastIndex = valueStart;
  const v = VALUE_RE.exec(text);
  if (!v || v[1] === undefined) return -1;
  const s = valueStart + v[0].length - v[1].length;
  const e = trimValue(text, s, s + v[1].length);
  const value = text.slice(s, e);
  if (weak && NOT_A_SECRET.has(value.toLowerCase())) return -1;
  // A PIN given with "is"/"è" must be digits ("il pin è 1234", not "il pin è scaduto").
  if (weak && kind === 3 && !DIGITS_ONLY_RE.test(value)) return -1;
  out.push({ type: "CREDENTIAL", start: s, end: e, key: value, priority: PRIORITY.CREDENTIAL });
  return e;
}

function scanConnectors(text: string, out: Candidate[], connector: string, first: number): void {
  for (let pos = first; pos > 0; pos = text.indexOf(connector, pos + 1)) {
    if (!mayEndKeyword(text, pos)) continue;
    const from = pos > 40 ? pos - 40 : 0;
    const m = KEYWORD_BEFORE_CONNECTOR_RE.exec(text.slice(from, pos));
    if (m === null || m[1] === undefined) continue;
    const keywordEnd = from + m.index + m[0].lastIndexOf(m[1]) + m[1].length;
    const end = credentialAt(text, keywordEnd, keywordKind(text, keywordEnd - m[1].length, keywordEnd), out);
    if (end > pos) pos = end - 1;
  }
}

/**
 * @param colon text.indexOf(":"), when the caller already knows it.
 * @param prescanned the weak keywords were recorded by prescan() for this text.
 */
export function scanCredentials(text: string, out: Candidate[], colon = text.indexOf(":"), prescanned = false): void {
  const before = out.length;
  if (colon >= 0) scanConnectors(text, out, ":", colon);
  scanConnectors(text, out, "=", text.indexOf("="));
  const strong = out.length - before;
  const count = prescanned ? (keywordCount[0] as number) : -1;
  if (count >= 0) {
    let lastIndex = 0;
    for (let k = 0; k < count; k++) {
      const start = keywordStart[k] as number;
      if (start < lastIndex) continue;
      const end = keywordEnd[k] as number;
      lastIndex = weakKeyword(text, out, start, end, strong);
    }
    return;
  }
  WEAK_KEYWORD_RE.lastIndex = 0;
  for (let m = WEAK_KEYWORD_RE.exec(text); m !== null; m = WEAK_KEYWORD_RE.exec(text)) {
    WEAK_KEYWORD_RE.lastIndex = weakKeyword(text, out, m.index, m.index + m[0].length, strong);
  }
}

/** Handles the weak keyword text[start, end); returns where the next keyword may start. */
function weakKeyword(text: string, out: Candidate[], start: number, end: number, strong: number): number {
  // Whole words only: "spin", "pinot", "passed" are not keywords.
  if ((start > 0 && isWordChar(text.charCodeAt(start - 1))) || (end < text.length && isWordChar(text.charCodeAt(end)))) {
    return start + 1;
  }
  // "passe" only as in "mot de passe".
  if (end - start === 5 && (text.charCodeAt(start + 4) | 32) === 101 && !/mot de $/i.test(text.slice(Math.max(0, start - 7), start))) return end;
  // Values after ":" or "=" were taken by the connector pass.
  if (strong > 0) {
    STRONG_CONNECTOR_RE.lastIndex = end;
    if (STRONG_CONNECTOR_RE.test(text)) return end;
  }
  const valueEnd = credentialAt(text, end, keywordKind(text, start, end), out);
  return valueEnd > 0 ? valueEnd : end;
}
