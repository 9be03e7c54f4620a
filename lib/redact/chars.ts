// ASCII character classes shared by the scanners, looked up by char code.

export const DIGIT = 1;
export const LETTER = 2;
/** _ - + / : inside API keys and base64. */
export const TOKEN_EXTRA = 4;
export const CLS = new Uint8Array(128);
for (let c = 48; c <= 57; c++) CLS[c] = DIGIT;
for (let c = 65; c <= 90; c++) CLS[c] = LETTER;
for (let c = 97; c <= 122; c++) CLS[c] = LETTER;
CLS[95] = TOKEN_EXTRA;
CLS[45] = TOKEN_EXTRA;
CLS[43] = TOKEN_EXTRA;
CLS[47] = TOKEN_EXTRA;

export function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}

export function isAsciiLetter(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
}

/**
 * CLS over every UTF-16 code unit, so a charCodeAt() result indexes it without a `c < 128` test in
 * the loops that walk every character of a token or group (NaN, past the end, reads undefined: no class).
 */
const CLS16 = new Uint8Array(65536);
CLS16.set(CLS);

export function isAlnum(c: number): boolean {
  return ((CLS16[c] as number) & (DIGIT | LETTER)) !== 0;
}

export function isUpperAlnum(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90);
}

/** Letters (any script), digits and underscore: characters that glue a number into a word. */
export function isWordChar(c: number): boolean {
  return c < 128 ? ((CLS[c] as number) & (DIGIT | LETTER)) !== 0 || c === 95 : c >= 0xc0 && c !== 0xd7 && c !== 0xf7 && c < 0x2000;
}

export function isTokenChar(c: number): boolean {
  return (CLS16[c] as number) > 0;
}

export function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}
