// Words around a digit run decide whether it is a business fact (order 483920) or a phone.

/** Nouns that make the following number a business reference rather than a phone. */
const BUSINESS_WORDS = new Set([
  // EN
  "order", "orders", "invoice", "invoices", "receipt", "room", "rooms", "suite", "sku", "article", "item",
  "items", "product", "code", "ref", "reference", "tracking", "track", "shipment", "parcel", "package",
  "consignment", "waybill", "awb", "ticket", "case", "booking", "reservation", "pnr", "confirmation",
  "lot", "batch", "serial", "model", "customer", "account", "contract", "policy", "transaction",
  "payment", "voucher", "coupon", "claim", "return", "rma", "quote", "quotation", "table", "seat",
  "flight", "gate", "platform", "page", "step", "version", "build", "part", "isbn", "ean", "upc", "id",
  "#",
  // IT
  "ordine", "ordini", "ordinazione", "fattura", "fatture", "fatt", "ft", "ricevuta", "scontrino", "camera",
  "stanza", "articolo", "art", "prodotto", "cod", "codice", "rif", "riferimento", "spedizione",
  "pacco", "collo", "lettera", "vettura", "pratica", "prenotazione", "conferma", "lotto", "seriale",
  "matricola", "modello", "cliente", "contratto", "polizza", "transazione", "pagamento", "buono",
  "reso", "preventivo", "tavolo", "posto", "volo", "binario", "pagina", "versione", "tessera",
  "protocollo", "ddt", "bolla", "pos",
  // DE / FR / ES
  "bestellung", "rechnung", "zimmer", "sendung", "kundennummer", "auftrag", "commande", "facture",
  "chambre", "colis", "dossier", "pedido", "factura", "habitacion", "habitación", "envio", "envío",
  "referencia",
]);

/** Words that say the number that follows is a phone, whatever else is nearby. */
const PHONE_WORDS = new Set([
  "tel", "tele", "telephone", "telefono", "telefonico", "phone", "phones", "cell", "cellphone", "cellulare",
  "cel", "mobile", "mob", "mobil", "handy", "whatsapp", "wa", "call", "calling", "ring", "text", "sms",
  "fax", "chiama", "chiamami", "chiamatemi", "chiamare", "chiamarmi", "richiamami", "richiamatemi",
  "contattami", "contattatemi", "reach", "contact", "telefonnummer", "anrufen", "rufen", "téléphone",
  "portable", "appelez", "appeler", "appelle", "teléfono", "móvil", "movil", "llámame", "llamame", "llamar",
]);

/** Words skipped when looking for the noun a number belongs to ("order number is 123"). */
const FILLERS = new Set([
  "number", "numbers", "numero", "num", "nr", "nro", "n", "no", "nº", "is", "è", "e", "the", "il", "la",
  "lo", "l", "my", "mio", "mia", "our", "nostro", "nostra", "your", "vostro", "vostra", "tuo", "tua", "of",
  "del", "della", "dello", "di", "for", "per", "al", "at", "to", "da", "mein", "meine", "ist", "nummer",
  "mon", "ma", "est", "mi", "es", "el", "de", "du", "le", "with", "con", "n°", "nummer",
]);

function isLetterCode(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 0xc0 && c !== 0xd7 && c !== 0xf7 && c < 0x2000) || c === 0xba || c === 0xb0;
}

/** Up to `max` lowercase words before `pos`, nearest first, within 48 characters and the same line. */
export function wordsBefore(text: string, pos: number, max: number): string[] {
  const words: string[] = [];
  const limit = Math.max(0, pos - 48);
  let i = pos - 1;
  while (i >= limit && words.length < max) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) break;
    if (c === 35) {
      words.push("#");
      i--;
      continue;
    }
    if (!isLetterCode(c)) {
      i--;
      continue;
    }
    const end = i + 1;
    while (i >= limit && isLetterCode(text.charCodeAt(i))) i--;
    words.push(text.slice(i + 1, end).toLowerCase());
  }
  return words;
}

/** Context verdict for a number: a business fact, an explicit phone, or nothing either way. */
export type NumberContext = "none" | "business" | "phone";

/**
 * Classifies the words before a digit run. A phone word anywhere in the last five words wins;
 * otherwise the first word that is not a filler decides whether the number is a business fact.
 */
export function numberContext(text: string, pos: number): NumberContext {
  const words = wordsBefore(text, pos, 5);
  for (const w of words) if (PHONE_WORDS.has(w)) return "phone";
  let seen = 0;
  for (const w of words) {
    if (FILLERS.has(w)) continue;
    if (BUSINESS_WORDS.has(w)) return "business";
    if (++seen >= 2) break;
  }
  return "none";
}

const PIVA_CONTEXT = /p\.?\s?iva|partita\s+iva|\bvat\b|\biva\b|\bc\.\s?f\.|codice\s+fiscale|\bcf\b|ust-?id|\btva\b|\bnif\b/;
const SSN_CONTEXT = /\bssn\b|social\s+security|\bsoc\.?\s?sec/;

function windowBefore(text: string, pos: number, size: number): string {
  return text.slice(Math.max(0, pos - size), pos).toLowerCase();
}

/** "P.IVA", "partita IVA", "VAT", "C.F." ... shortly before `pos`. */
export function hasVatContext(text: string, pos: number): boolean {
  return PIVA_CONTEXT.test(windowBefore(text, pos, 40));
}

/** "SSN" or "social security" shortly before `pos`. */
export function hasSsnContext(text: string, pos: number): boolean {
  return SSN_CONTEXT.test(windowBefore(text, pos, 40));
}

const VERSION_WORDS = new Set(["version", "versione", "ver", "v", "release", "build", "firmware", "versión", "fw"]);

/** "version 1.2.3.4": dotted numbers after these words are versions, not IP addresses. */
export function hasVersionContext(text: string, pos: number): boolean {
  const w = wordsBefore(text, pos, 1)[0];
  return w !== undefined && VERSION_WORDS.has(w);
}

/** Price: a currency sign or code right before or right after the number. */
export function hasCurrencyContext(text: string, start: number, end: number): boolean {
  let i = start - 1;
  if (i >= 0 && text.charCodeAt(i) === 32) i--;
  if (i >= 0) {
    const c = text.charCodeAt(i);
    if (c === 0x20ac || c === 36 || c === 0xa3 || c === 0xa5) return true;
  }
  let j = end;
  if (j < text.length && text.charCodeAt(j) === 32) j++;
  if (j < text.length) {
    const c = text.charCodeAt(j);
    if (c === 0x20ac || c === 36 || c === 0xa3) return true;
    if (isLetterCode(c)) {
      const word = text.slice(j, j + 7).toLowerCase();
      if (/^(?:eur|euro|usd|gbp|chf|dollar|sterlin)/.test(word)) return true;
    }
  }
  return false;
}
