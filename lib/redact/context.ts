// Words around a digit run decide whether it is a business fact (order 483920) or a phone.
import { WordTable, hashStep } from "./word-table";

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

// Word kinds for the allocation-free lookup used on every phone candidate.
const KIND_BUSINESS = 1;
const KIND_PHONE = 2;
const KIND_FILLER = 3;

// Phone words first: a word in both lists counts as a phone word.
const KINDS = new WordTable().add(PHONE_WORDS, KIND_PHONE).add(BUSINESS_WORDS, KIND_BUSINESS).add(FILLERS, KIND_FILLER);

/**
 * Classifies the words before a digit run (up to four, same line, 40 characters). A phone word
 * anywhere wins; otherwise the first word that is not a filler decides whether the number is a
 * business fact ("order 483920", "fattura n. 12").
 */
export function numberContext(text: string, pos: number): NumberContext {
  const limit = pos > 40 ? pos - 40 : 0;
  let i = pos - 1;
  let words = 0;
  let business = false;
  let nonFillers = 0;
  while (i >= limit && words < 4) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 13) break;
    let kind: number;
    if (c === 35) {
      kind = KIND_BUSINESS; // "#483920"
      i--;
    } else if (!isLetterCode(c)) {
      i--;
      continue;
    } else {
      const end = i + 1;
      let h = 0;
      for (let d = c; ; d = text.charCodeAt(i)) {
        h = hashStep(h, d);
        i--;
        if (i < limit || !isLetterCode(text.charCodeAt(i))) break;
      }
      kind = KINDS.getHashed(text, i + 1, end, h);
    }
    words++;
    if (kind === KIND_PHONE) return "phone";
    // Only the two nearest words that are not fillers can make the number a business fact.
    if (kind !== KIND_FILLER && nonFillers < 2) {
      nonFillers++;
      if (kind === KIND_BUSINESS) business = true;
    }
  }
  return business ? "business" : "none";
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

const CURRENCY_WORDS = ["eur", "usd", "gbp", "chf", "dollar", "sterlin"];

/** "eur", "euro", "usd", "gbp", "chf", "dollar" or "sterlin" at `pos`, any case. */
function startsWithCurrencyCode(text: string, pos: number): boolean {
  for (const w of CURRENCY_WORDS) {
    let k = 0;
    while (k < w.length && (text.charCodeAt(pos + k) | 32) === w.charCodeAt(k)) k++;
    if (k === w.length) return true;
  }
  return false;
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
    if (isLetterCode(c) && startsWithCurrencyCode(text, j)) return true;
  }
  return false;
}
