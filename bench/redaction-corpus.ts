// Deterministic multilingual chat corpus for the redaction benchmark. Every message records the
// identifiers planted in it (which must disappear) and the business facts (which must survive).
// Generators only produce values that are valid by construction: issuer prefix + Luhn for cards,
// computed check digits for IBAN / codice fiscale / partita IVA, numbering-plan ranges for phones.

export type Lang = "en" | "it" | "de" | "fr" | "es";

export interface PlantedIdentifier {
  type: string;
  value: string;
}

export interface CorpusMessage {
  text: string;
  lang: Lang;
  /** Country of the channel the message came from, used as the default phone region. */
  country: string;
  identifiers: PlantedIdentifier[];
  facts: string[];
}

/** mulberry32: small, fast, seedable. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;

function int(r: Rng, min: number, max: number): number {
  return min + Math.floor(r() * (max - min + 1));
}

function pick<T>(r: Rng, xs: readonly T[]): T {
  const x = xs[Math.floor(r() * xs.length)];
  if (x === undefined) throw new Error("empty list");
  return x;
}

function digits(r: Rng, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += String(int(r, 0, 9));
  return s;
}

// ---------------------------------------------------------------------------------------------
// Checksums (written independently of lib/redact so the benchmark does not grade itself).

export function luhnCheckDigit(body: string): string {
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

export function luhnOk(num: string): boolean {
  return luhnCheckDigit(num.slice(0, -1)) === num.slice(-1);
}

function mod97(s: string): number {
  let r = 0;
  for (const ch of s) {
    const v = /[0-9]/.test(ch) ? ch : String(ch.toUpperCase().charCodeAt(0) - 55);
    for (const d of v) r = (r * 10 + Number(d)) % 97;
  }
  return r;
}

export function ibanWithCheck(country: string, bban: string): string {
  const check = 98 - mod97(bban + country + "00");
  return country + String(check).padStart(2, "0") + bban;
}

const CF_ODD_VALUES: Record<string, number> = {
  "0": 1, "1": 0, "2": 5, "3": 7, "4": 9, "5": 13, "6": 15, "7": 17, "8": 19, "9": 21,
  A: 1, B: 0, C: 5, D: 7, E: 9, F: 13, G: 15, H: 17, I: 19, J: 21, K: 2, L: 4, M: 18, N: 20, O: 11,
  P: 3, Q: 6, R: 8, S: 12, T: 14, U: 16, V: 10, W: 22, X: 25, Y: 24, Z: 23,
};

export function cfCheck(first15: string): string {
  let sum = 0;
  for (let i = 0; i < 15; i++) {
    const ch = first15[i] ?? "0";
    if (i % 2 === 0) sum += CF_ODD_VALUES[ch] ?? 0;
    else sum += /[0-9]/.test(ch) ? Number(ch) : ch.charCodeAt(0) - 65;
  }
  return String.fromCharCode(65 + (sum % 26));
}

export function pivaCheck(first10: string): string {
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

// ---------------------------------------------------------------------------------------------
// Identifier generators.

const FIRST = ["mario", "giulia", "luca", "francesca", "john", "emily", "james", "sarah", "hans", "anna", "pierre", "claire", "javier", "lucia", "marco", "chiara", "oliver", "sophie"];
const LAST = ["rossi", "bianchi", "esposito", "ferrari", "smith", "johnson", "brown", "muller", "schmidt", "dubois", "martin", "garcia", "lopez", "romano", "colombo", "taylor"];
const DOMAINS = ["gmail.com", "libero.it", "outlook.com", "yahoo.it", "hotmail.co.uk", "web.de", "orange.fr", "telefonica.es", "example.com", "studio-legale.it", "mail.company.eu", "icloud.com"];

function email(r: Rng): string {
  const f = pick(r, FIRST);
  const l = pick(r, LAST);
  const local = pick(r, [`${f}.${l}`, `${f}${l}${int(r, 1, 99)}`, `${f[0]}.${l}`, `${f}_${l}`, `${l}.${f}+shop`, `${f}${int(r, 70, 99)}`]);
  const e = `${local}@${pick(r, DOMAINS)}`;
  return r() < 0.15 ? e.charAt(0).toUpperCase() + e.slice(1) : e;
}

function groupsOf(s: string, sizes: number[], sep: string): string {
  const out: string[] = [];
  let i = 0;
  for (const n of sizes) {
    out.push(s.slice(i, i + n));
    i += n;
  }
  if (i < s.length) out.push(s.slice(i));
  return out.filter((x) => x.length > 0).join(sep);
}

const IT_MOBILE = ["320", "324", "327", "328", "329", "330", "331", "333", "334", "335", "338", "339", "340", "342", "345", "347", "348", "349", "350", "351", "360", "366", "368", "380", "388", "389", "391", "392", "393"];
const US_AREAS = ["212", "213", "305", "312", "415", "512", "617", "646", "702", "718", "773", "818", "917", "206", "303", "404", "503", "602", "713", "214"];

function phone(r: Rng, country: string): string {
  switch (country) {
    case "IT": {
      if (r() < 0.7) {
        const n = pick(r, IT_MOBILE) + digits(r, 7);
        return pick(r, [
          groupsOf(n, [3, 7], " "),
          groupsOf(n, [3, 3, 4], " "),
          n,
          groupsOf(n, [3, 7], "-"),
          groupsOf(n, [3, 3, 4], "."),
          "+39 " + groupsOf(n, [3, 3, 4], " "),
          "+39" + n,
          "0039 " + groupsOf(n, [3, 7], " "),
          groupsOf(n, [3, 7], "/"),
        ]);
      }
      const n = pick(r, ["02", "06"]) + String(int(r, 2, 9)) + digits(r, 7);
      return pick(r, [groupsOf(n, [2, 4, 4], " "), groupsOf(n, [2, 8], " "), "+39 " + groupsOf(n, [2, 4, 4], " "), n]);
    }
    case "GB": {
      if (r() < 0.6) {
        const n = "07" + pick(r, ["4", "5", "7", "8", "9"]) + digits(r, 8);
        return pick(r, [groupsOf(n, [5, 6], " "), "+44 " + groupsOf(n.slice(1), [4, 6], " "), "+44" + n.slice(1), n]);
      }
      const n = "020" + pick(r, ["7", "3", "8"]) + digits(r, 7);
      return pick(r, [groupsOf(n, [3, 4, 4], " "), "+44 (0)" + groupsOf(n.slice(1), [2, 4, 4], " "), "+44 " + groupsOf(n.slice(1), [2, 4, 4], " ")]);
    }
    case "US": {
      const area = pick(r, US_AREAS);
      const ex = String(int(r, 2, 9)) + digits(r, 2);
      const line = digits(r, 4);
      return pick(r, [`(${area}) ${ex}-${line}`, `${area}-${ex}-${line}`, `${area}.${ex}.${line}`, `+1 ${area} ${ex} ${line}`, `1-${area}-${ex}-${line}`, `+1 (${area}) ${ex}-${line}`]);
    }
    case "DE": {
      if (r() < 0.6) {
        const n = r() < 0.5 ? pick(r, ["0151", "0152", "0157"]) + digits(r, 8) : pick(r, ["0170", "0171", "0172", "0176", "0177"]) + digits(r, pick(r, [7, 8]));
        return pick(r, [groupsOf(n, [4, 8], " "), "+49 " + groupsOf(n.slice(1), [3, 8], " "), groupsOf(n, [4, 8], "/"), n]);
      }
      const n = pick(r, ["030", "089", "040"]) + String(int(r, 2, 9)) + digits(r, 7);
      return pick(r, [groupsOf(n, [3, 8], " "), "+49 " + groupsOf(n.slice(1), [2, 8], " "), groupsOf(n, [3, 8], "/")]);
    }
    case "FR": {
      const n = pick(r, ["06" + int(r, 0, 8), "07" + int(r, 3, 8), "01" + int(r, 2, 9), "04" + int(r, 2, 9)]) + digits(r, 7);
      return pick(r, [groupsOf(n, [2, 2, 2, 2, 2], " "), groupsOf(n, [2, 2, 2, 2, 2], "."), "+33 " + groupsOf(n.slice(1), [1, 2, 2, 2, 2], " "), "+33" + n.slice(1), n]);
    }
    default: {
      const n = r() < 0.7 ? pick(r, ["6" + digits(r, 1), "7" + int(r, 1, 4)]) + digits(r, 7) : "91" + String(int(r, 2, 7)) + digits(r, 6);
      return pick(r, [groupsOf(n, [3, 3, 3], " "), "+34 " + groupsOf(n, [3, 2, 2, 2], " "), "+34" + n, n, groupsOf(n, [3, 3, 3], "-")]);
    }
  }
}

interface Issuer {
  prefix: () => string;
  length: number;
  groups: number[];
}

function card(r: Rng): string {
  const issuers: Issuer[] = [
    { prefix: () => "4", length: 16, groups: [4, 4, 4, 4] },
    { prefix: () => String(int(r, 51, 55)), length: 16, groups: [4, 4, 4, 4] },
    { prefix: () => String(int(r, 2221, 2720)), length: 16, groups: [4, 4, 4, 4] },
    { prefix: () => pick(r, ["34", "37"]), length: 15, groups: [4, 6, 5] },
    { prefix: () => pick(r, ["6011", "65", String(int(r, 644, 649))]), length: 16, groups: [4, 4, 4, 4] },
    { prefix: () => String(int(r, 3528, 3589)), length: 16, groups: [4, 4, 4, 4] },
    { prefix: () => pick(r, ["36", "38", String(int(r, 300, 305))]), length: 14, groups: [4, 6, 4] },
    { prefix: () => "62", length: 16, groups: [4, 4, 4, 4] },
    { prefix: () => "4", length: 13, groups: [4, 4, 5] },
  ];
  const iss = pick(r, issuers);
  const p = iss.prefix();
  const body = p + digits(r, iss.length - p.length - 1);
  const n = body + luhnCheckDigit(body);
  const style = int(r, 0, 3);
  if (style === 0) return n;
  return groupsOf(n, iss.groups, style === 1 ? " " : style === 2 ? "-" : " ");
}

const IBAN_BBAN: Record<string, (r: Rng) => string> = {
  IT: (r) => String.fromCharCode(65 + int(r, 0, 25)) + digits(r, 10) + digits(r, 12),
  DE: (r) => digits(r, 18),
  FR: (r) => digits(r, 10) + digits(r, 11) + digits(r, 2),
  ES: (r) => digits(r, 20),
  GB: (r) => pick(r, ["NWBK", "BARC", "HBUK", "LOYD"]) + digits(r, 14),
  NL: (r) => pick(r, ["ABNA", "INGB", "RABO"]) + digits(r, 10),
  BE: (r) => digits(r, 12),
  AT: (r) => digits(r, 16),
  CH: (r) => digits(r, 17),
  PT: (r) => digits(r, 21),
};

function iban(r: Rng, country?: string): string {
  const cc = country && IBAN_BBAN[country] ? country : pick(r, Object.keys(IBAN_BBAN));
  const gen = IBAN_BBAN[cc];
  if (!gen) throw new Error("no BBAN generator");
  const compact = ibanWithCheck(cc, gen(r));
  const style = int(r, 0, 3);
  if (style === 0) return compact;
  if (style === 3) return compact.toLowerCase();
  return compact.replace(/(.{4})/g, "$1 ").trim();
}

const CONSONANTS = "BCDFGHLMNPRSTVZ";
const VOWELS = "AEIOU";

function codiceFiscale(r: Rng, omocodia: number): string {
  let s = "";
  for (let i = 0; i < 6; i++) s += i === 4 ? pick(r, [...VOWELS, ...CONSONANTS]) : pick(r, [...CONSONANTS]);
  s += digits(r, 2);
  s += pick(r, [..."ABCDEHLMPRST"]);
  const day = int(r, 1, 28) + (r() < 0.5 ? 40 : 0);
  s += String(day).padStart(2, "0");
  s += pick(r, [..."ABCDEFGHILM"]) + digits(r, 3);
  const chars = [...s];
  const positions = [14, 13, 12, 10, 9, 7, 6];
  for (let k = 0; k < omocodia && k < positions.length; k++) {
    const p = positions[k] ?? 14;
    chars[p] = "LMNPQRSTUV"[Number(chars[p])] ?? "L";
  }
  const first15 = chars.join("");
  return first15 + cfCheck(first15);
}

function partitaIva(r: Rng): string {
  let first7 = digits(r, 7);
  if (/^0+$/.test(first7)) first7 = "0000001";
  const office = String(int(r, 1, 100)).padStart(3, "0");
  const first10 = first7 + office;
  return first10 + pivaCheck(first10);
}

function ipv4(r: Rng): string {
  return pick(r, [
    `${int(r, 11, 223)}.${int(r, 0, 255)}.${int(r, 0, 255)}.${int(r, 1, 254)}`,
    `192.168.${int(r, 0, 255)}.${int(r, 1, 254)}`,
    `10.${int(r, 0, 255)}.${int(r, 0, 255)}.${int(r, 1, 254)}`,
  ]);
}

function hex(r: Rng, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += "0123456789abcdef"[int(r, 0, 15)];
  return s;
}

function ipv6(r: Rng): string {
  const g = (): string => hex(r, 4).replace(/^0+(?=.)/, "");
  return pick(r, [
    `2001:db8:${g()}:${g()}:${g()}:${g()}:${g()}:${g()}`,
    `fe80::${g()}:${g()}:${g()}:${g()}`,
    `2a02:${g()}:${g()}::${g()}`,
    `2${hex(r, 3)}:${g()}:${g()}:${g()}:${g()}:${g()}:${g()}:${g()}`,
  ]);
}

function ssn(r: Rng): string {
  let area = int(r, 1, 899);
  if (area === 666) area = 667;
  return `${String(area).padStart(3, "0")}-${String(int(r, 1, 99)).padStart(2, "0")}-${String(int(r, 1, 9999)).padStart(4, "0")}`;
}

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

function randomToken(r: Rng, n: number, alphabet = ALNUM): string {
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[int(r, 0, alphabet.length - 1)];
  return s;
}

function password(r: Rng): string {
  const words = ["Gatto", "Sole", "Blue", "Tiger", "Roma", "Summer", "Nebbia", "Falco", "Orso", "Luna"];
  return pick(r, [
    pick(r, words) + int(r, 10, 9999) + pick(r, ["!", "#", "", "$", "?"]),
    randomToken(r, int(r, 8, 14)),
    pick(r, words).toLowerCase() + pick(r, ["_", ".", "-"]) + int(r, 1, 99),
  ]);
}

function apiKey(r: Rng): string {
  return pick(r, [
    "sk-proj-" + randomToken(r, 40),
    "sk_live_" + randomToken(r, 24),
    "ghp_" + randomToken(r, 36),
    "AKIA" + randomToken(r, 16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
    "xoxb-" + digits(r, 11) + "-" + digits(r, 12) + "-" + randomToken(r, 24),
    hex(r, 40),
    randomToken(r, 40),
  ]);
}

// ---------------------------------------------------------------------------------------------
// Business facts.

function orderNumber(r: Rng): string {
  return pick(r, [String(int(r, 100000, 999999)), String(int(r, 10000000, 99999999)), digits(r, 10).replace(/^0/, "3")]);
}

function invoiceNumber(r: Rng): string {
  return pick(r, [`FT-2025/${String(int(r, 1, 999)).padStart(4, "0")}`, `INV-2025-${String(int(r, 1, 99999)).padStart(5, "0")}`, `${int(r, 1, 999)}/2025`]);
}

function price(r: Rng, lang: Lang): string {
  const euros = int(r, 1, 2500);
  const cents = String(int(r, 0, 99)).padStart(2, "0");
  if (lang === "en") return pick(r, [`£${euros}.${cents}`, `$${euros}.${cents}`, `€${euros}.${cents}`]);
  return pick(r, [`€${euros},${cents}`, `${euros},${cents} €`, `${euros},${cents} EUR`, `€ ${euros}.${cents}`]);
}

function date(r: Rng): string {
  const d = String(int(r, 1, 28)).padStart(2, "0");
  const m = String(int(r, 1, 12)).padStart(2, "0");
  return pick(r, [`${d}/${m}/2025`, `2025-${m}-${d}`, `${d}.${m}.2025`, `${d}/${m}/25`, `${d}-${m}-2026`]);
}

function time(r: Rng): string {
  return pick(r, [`${int(r, 8, 20)}:${pick(r, ["00", "15", "30", "45"])}`, `${int(r, 8, 20)}.${pick(r, ["00", "30"])}`]);
}

function sku(r: Rng): string {
  return pick(r, [`AB-${int(r, 1000, 9999)}-XL`, `SKU-${int(r, 10000, 99999)}`, `${randomToken(r, 2, "ABCDEFGHJKLMNPRSTUVWXYZ")}${int(r, 100, 999)}-${pick(r, ["BLK", "WHT", "RED", "M", "L"])}`]);
}

/** 16 digits that fail Luhn: a parcel tracking number, never a card. */
function trackingNumber(r: Rng): string {
  const body = digits(r, 15);
  const good = Number(luhnCheckDigit(body));
  const n = body + String((good + int(r, 1, 9)) % 10);
  return r() < 0.5 ? n : groupsOf(n, [4, 4, 4, 4], " ");
}

// ---------------------------------------------------------------------------------------------
// Templates. {X} slots: identifiers EMAIL PHONE CARD IBAN CF PIVA IP IP6 SSN PWD PIN KEY;
// facts ORDER INVOICE PRICE DATE TIME ROOM SKU TRACK QTY.

const TEMPLATES: Record<Lang, string[]> = {
  it: [
    "Ciao, il mio ordine {ORDER} non è ancora arrivato. Potete ricontattarmi al {PHONE}?",
    "Buongiorno, vorrei sapere lo stato dell'ordine n. {ORDER} del {DATE}.",
    "Mi chiamo Giulia, la mia email è {EMAIL} e il cellulare {PHONE}",
    "Per il rimborso di {PRICE} potete usare l'IBAN {IBAN}, intestato a me.",
    "Vi mando il codice fiscale per la fattura: {CF}",
    "Fattura intestata a Rossi Srl, P.IVA {PIVA}, sede a Milano.",
    "La fattura {INVOICE} riporta {PRICE} ma avevo pagato meno.",
    "Ho pagato con la carta {CARD} ma l'addebito è doppio!",
    "Il pacco con tracking {TRACK} risulta fermo da giorni.",
    "Prenotazione per la camera {ROOM} dal {DATE}, arrivo verso le {TIME}.",
    "Avete ancora l'articolo {SKU} in taglia M? Ne vorrei {QTY}.",
    "Grazie mille, gentilissimi! A presto.",
    "Perfetto, allora passo in negozio domani pomeriggio.",
    "Non riesco ad accedere: la mia password è {PWD} ma dice che è sbagliata.",
    "Il pin della carta regalo è {PIN}, ma non funziona alla cassa.",
    "Scrivetemi pure a {EMAIL}, preferisco la mail al telefono.",
    "Numero di telefono: {PHONE}. Orari migliori dopo le {TIME}.",
    "Il mio indirizzo IP è {IP}, il sito mi blocca ancora.",
    "Codice fiscale {CF} e partita IVA IT{PIVA} per la fattura elettronica.",
    "Il corriere dice consegna il {DATE} alle {TIME}, ordine {ORDER}, totale {PRICE}.",
    "Buonasera, avete disponibilità per due persone sabato sera?",
    "Ho ricevuto un prodotto diverso da quello ordinato, come posso fare il reso?",
    "Il bonifico di {PRICE} è partito dall'IBAN {IBAN} il {DATE}.",
    "Chiamatemi al {PHONE} oppure al {PHONE2}, grazie.",
    "Accesso al gestionale: utente admin, password: {PWD}",
    "Vi giro la chiave API {KEY} per l'integrazione.",
    "Camera {ROOM}: il condizionatore non funziona, potete mandare qualcuno?",
    "Sono {QTY} pezzi dell'articolo {SKU}, prezzo unitario {PRICE}.",
  ],
  en: [
    "Hi, where is order {ORDER}? It was due on {DATE}.",
    "You can reach me at {PHONE} or email {EMAIL}.",
    "My card {CARD} was charged twice for {PRICE}.",
    "Please refund to IBAN {IBAN}, thanks.",
    "My SSN is {SSN}, do you need anything else for the form?",
    "Invoice {INVOICE} shows {PRICE} but the quote was lower.",
    "Tracking number {TRACK} hasn't moved since {DATE}.",
    "I booked room {ROOM} for {DATE}, checking in around {TIME}.",
    "Do you have SKU {SKU} in stock? I need {QTY}.",
    "Thanks so much, that was really helpful!",
    "Great, I'll pick it up tomorrow afternoon.",
    "I can't log in, my password is {PWD} and it keeps failing.",
    "Here's the API key for the webhook: {KEY}",
    "The server at {IP} is returning 502 errors since {TIME}.",
    "Our IPv6 range starts at {IP6}, please whitelist it.",
    "Call me on {PHONE} after {TIME} please.",
    "Send the receipt to {EMAIL}, order {ORDER}, total {PRICE}.",
    "Is the store open on Sunday?",
    "Could you check order #{ORDER}? The courier says {DATE}.",
    "pwd={PWD} for the staging box, don't share it.",
    "My PIN is {PIN} but the terminal rejects it.",
    "Can I change the delivery address for my last order?",
    "Payment of {PRICE} from card {CARD} failed at {TIME}.",
    "Wire it to {IBAN} before {DATE} please.",
  ],
  de: [
    "Hallo, wo ist meine Bestellung {ORDER}? Sie war für {DATE} angekündigt.",
    "Sie erreichen mich unter {PHONE} oder per Mail an {EMAIL}.",
    "Bitte überweisen Sie {PRICE} auf IBAN {IBAN}.",
    "Rechnung {INVOICE} über {PRICE} ist noch offen.",
    "Vielen Dank für die schnelle Hilfe!",
    "Meine Karte {CARD} wurde doppelt belastet.",
    "Mein Passwort ist {PWD}, aber der Login geht nicht.",
    "Zimmer {ROOM} ab {DATE}, Ankunft gegen {TIME}.",
  ],
  fr: [
    "Bonjour, où en est ma commande {ORDER} du {DATE} ?",
    "Vous pouvez me joindre au {PHONE} ou à {EMAIL}.",
    "Merci de rembourser {PRICE} sur l'IBAN {IBAN}.",
    "La facture {INVOICE} indique {PRICE}.",
    "Merci beaucoup, bonne journée !",
    "Ma carte {CARD} a été débitée deux fois.",
    "Mot de passe : {PWD}",
    "Chambre {ROOM} du {DATE}, arrivée vers {TIME}.",
  ],
  es: [
    "Hola, ¿dónde está mi pedido {ORDER}? Debía llegar el {DATE}.",
    "Pueden llamarme al {PHONE} o escribir a {EMAIL}.",
    "Devuélvanme {PRICE} a la cuenta IBAN {IBAN}, por favor.",
    "La factura {INVOICE} marca {PRICE}.",
    "¡Muchas gracias por la ayuda!",
    "Mi tarjeta {CARD} tiene un cargo duplicado.",
    "Contraseña: {PWD}",
    "Habitación {ROOM} desde el {DATE}, llego sobre las {TIME}.",
  ],
};

/**
 * Ordinary chat with no identifiers. Slots are business facts, and {=...} marks phrases that
 * look risky but must survive ("password is not working", "version 2.3.1", coupon codes).
 */
const CHATTER: Record<Lang, string[]> = {
  it: [
    "Grazie, gentilissimi!",
    "Ok perfetto, a domani.",
    "A che ora aprite domani mattina?",
    "Il negozio è aperto anche la domenica?",
    "Avete la taglia {=42} in nero?",
    "Posso usare il codice sconto {=ESTATE20} sull'ordine {ORDER}?",
    "Ho dimenticato la password, come posso reimpostarla?",
    "{=Il pin è scaduto}, me ne mandate uno nuovo?",
    "Perfetto, passo in negozio domani alle {TIME}.",
    "Quanto costa la spedizione in Sicilia?",
    "Il pacco è arrivato ma la scatola era tutta rovinata, potete sostituirla?",
    "Sì, confermo l'ordine {ORDER}, grazie.",
    "Riuscite a spedire entro il {DATE}? È per un compleanno.",
    "Mi serve per un regalo, potete fare il pacchetto?",
    "Ne vorrei {QTY}, c'è lo sconto del {=20%}?",
    "L'app è alla {=versione 2.3.1} ma continua a bloccarsi.",
    "Buonasera, vorrei prenotare un tavolo per quattro persone sabato.",
    "Non ho ricevuto la mail di conferma, potete controllare?",
    "Va benissimo, grazie per la pazienza e la disponibilità!",
    "Quali sono i tempi di consegna per la Germania?",
    "La camera {ROOM} era splendida, torneremo sicuramente.",
    "Il totale era {PRICE}, giusto?",
    "Come funziona il reso? Devo stampare io l'etichetta?",
    "Scusate il ritardo nella risposta, ero fuori città per lavoro e non ho visto i messaggi.",
    "C'è un parcheggio vicino all'hotel o conviene arrivare in treno?",
    "Va bene anche il bonifico o accettate solo la carta?",
    "{=La mia password non funziona} più da ieri sera.",
    "Ho visto che il prezzo è sceso a {PRICE}, posso avere la differenza?",
    "Arriviamo il {DATE} verso le {TIME}, il check-in è già possibile?",
    "Il modello {=X200} è compatibile con il caricatore vecchio?",
  ],
  en: [
    "Thanks, that's great!",
    "Ok, see you tomorrow.",
    "What time do you open on Saturday?",
    "Do you ship to Canada?",
    "Do you have it in size {=10}?",
    "Can I use the promo code {=WELCOME10} on order {ORDER}?",
    "I forgot my password, how do I reset it?",
    "My {=password is not working} since the update.",
    "Perfect, I'll come by at {TIME}.",
    "The parcel arrived but the box was damaged, can you replace it?",
    "Yes, please go ahead with order {ORDER}.",
    "Could it arrive before {DATE}? It's a birthday present.",
    "Can you gift wrap it?",
    "I'd like {QTY}, is there a {=15%} discount for that?",
    "The app is on {=version 4.1.2} and keeps crashing.",
    "Hi, I'd like to book a table for four on Friday evening.",
    "I didn't get the confirmation email, could you check?",
    "That's perfect, thank you so much for your patience!",
    "How long does delivery to Ireland take?",
    "Room {ROOM} was lovely, we'll definitely be back.",
    "The total was {PRICE}, right?",
    "How do returns work? Do I need to print the label myself?",
    "Sorry for the late reply, I was travelling and missed your messages.",
    "Is there parking near the hotel or is it better to come by train?",
    "Can I pay by bank transfer or only by card?",
    "The price dropped to {PRICE}, can I get the difference refunded?",
    "We arrive on {DATE} around {TIME}, is early check-in possible?",
    "Is model {=X200} compatible with the old charger?",
    "{=The PIN is on the back} of the gift card, right?",
  ],
  de: [
    "Danke, alles klar!",
    "Wann öffnen Sie morgen?",
    "Liefern Sie auch nach Österreich?",
    "Kann ich den Gutschein {=SOMMER15} für Bestellung {ORDER} verwenden?",
    "Ich habe mein Passwort vergessen, wie setze ich es zurück?",
    "Wir kommen am {DATE} gegen {TIME} an.",
    "Das Paket ist angekommen, aber der Karton war beschädigt.",
  ],
  fr: [
    "Merci beaucoup !",
    "Vous ouvrez à quelle heure demain ?",
    "Livrez-vous en Belgique ?",
    "Puis-je utiliser le code promo {=PRINTEMPS10} sur la commande {ORDER} ?",
    "J'ai oublié mon mot de passe, comment le réinitialiser ?",
    "Nous arrivons le {DATE} vers {TIME}.",
    "Le colis est arrivé mais le carton était abîmé.",
  ],
  es: [
    "¡Muchas gracias!",
    "¿A qué hora abren mañana?",
    "¿Envían a Portugal?",
    "¿Puedo usar el código {=VERANO10} en el pedido {ORDER}?",
    "Olvidé mi contraseña, ¿cómo la restablezco?",
    "Llegamos el {DATE} sobre las {TIME}.",
    "El paquete llegó pero la caja estaba dañada.",
  ],
};

const LANG_COUNTRY: Record<Lang, readonly string[]> = {
  it: ["IT"],
  en: ["GB", "US"],
  de: ["DE"],
  fr: ["FR"],
  es: ["ES"],
};

const IBAN_FOR_LANG: Record<Lang, string | undefined> = { it: "IT", en: undefined, de: "DE", fr: "FR", es: "ES" };

function fillOne(r: Rng, lang: Lang, country: string, template: string): CorpusMessage | null {
  const identifiers: PlantedIdentifier[] = [];
  const facts: string[] = [];
  const text = template.replace(/\{(=[^}]+|[A-Z0-9]+)\}/g, (_m, slot: string) => {
    let v: string;
    if (slot.startsWith("=")) {
      v = slot.slice(1);
      facts.push(v);
      return v;
    }
    switch (slot) {
      case "EMAIL": v = email(r); identifiers.push({ type: "EMAIL", value: v }); return v;
      case "PHONE":
      case "PHONE2": {
        // Mostly local numbers, some foreign numbers in international format.
        const c = r() < 0.85 ? country : pick(r, ["IT", "GB", "US", "DE", "FR", "ES"]);
        v = phone(r, c);
        if (c !== country && !v.startsWith("+") && !v.startsWith("00")) v = phone(r, country);
        identifiers.push({ type: "PHONE", value: v });
        return v;
      }
      case "CARD": v = card(r); identifiers.push({ type: "CARD", value: v }); return v;
      case "IBAN": v = iban(r, r() < 0.7 ? IBAN_FOR_LANG[lang] : undefined); identifiers.push({ type: "IBAN", value: v }); return v;
      case "CF": v = codiceFiscale(r, r() < 0.2 ? int(r, 1, 7) : 0); if (r() < 0.15) v = v.toLowerCase(); identifiers.push({ type: "CODICE_FISCALE", value: v }); return v;
      case "PIVA": v = partitaIva(r); identifiers.push({ type: "PARTITA_IVA", value: v }); return v;
      case "IP": v = ipv4(r); identifiers.push({ type: "IP", value: v }); return v;
      case "IP6": v = ipv6(r); identifiers.push({ type: "IP", value: v }); return v;
      case "SSN": v = ssn(r); identifiers.push({ type: "SSN", value: v }); return v;
      case "PWD": v = password(r); identifiers.push({ type: "CREDENTIAL", value: v }); return v;
      case "PIN": v = String(int(r, 1000, 999999)); identifiers.push({ type: "CREDENTIAL", value: v }); return v;
      case "KEY": v = apiKey(r); identifiers.push({ type: "CREDENTIAL", value: v }); return v;
      case "ORDER": v = orderNumber(r); facts.push(v); return v;
      case "INVOICE": v = invoiceNumber(r); facts.push(v); return v;
      case "PRICE": v = price(r, lang); facts.push(v); return v;
      case "DATE": v = date(r); facts.push(v); return v;
      case "TIME": v = time(r); facts.push(v); return v;
      case "ROOM": v = String(int(r, 101, 950)); facts.push(v); return v;
      case "SKU": v = sku(r); facts.push(v); return v;
      case "TRACK": v = trackingNumber(r); facts.push(v); return v;
      case "QTY": v = pick(r, ["2 x 3", "3", "12", "2 x 6 items", "4 pz"]); facts.push(v); return v;
      default: throw new Error(`unknown slot ${slot}`);
    }
  });
  // Ground truth must be unambiguous: each planted value occurs exactly once and never inside a fact.
  for (const id of identifiers) {
    if (text.indexOf(id.value) !== text.lastIndexOf(id.value)) return null;
    if (facts.some((f) => f.includes(id.value) || id.value.includes(f))) return null;
  }
  return { text, lang, country, identifiers, facts };
}

/**
 * Builds `count` messages deterministically from `seed`. `plainShare` of them are ordinary chat
 * (no identifiers, some business facts); the rest carry identifiers and/or business facts.
 */
export function buildCorpus(count: number, seed = 20250314, plainShare = 0.5): CorpusMessage[] {
  const r = prng(seed);
  const langs: Lang[] = [];
  const weights: [Lang, number][] = [["it", 40], ["en", 35], ["de", 9], ["fr", 8], ["es", 8]];
  for (const [l, w] of weights) for (let i = 0; i < w; i++) langs.push(l);
  const out: CorpusMessage[] = [];
  while (out.length < count) {
    const lang = pick(r, langs);
    const country = pick(r, LANG_COUNTRY[lang]);
    const template = r() < plainShare ? pick(r, CHATTER[lang]) : pick(r, TEMPLATES[lang]);
    const msg = fillOne(r, lang, country, template);
    if (msg) out.push(msg);
  }
  return out;
}
