/**
 * Notices: the exact texts shown to people when they are asked for (or
 * withdraw) consent, and the defaults every tenant starts with, in English and
 * Italian. Pure: no Workers imports.
 */
import { CONSENT_PURPOSES, type ConsentPurpose } from "./purposes";

/** A notice either asks for consent or confirms its withdrawal. */
export const NOTICE_KINDS = ["consent", "withdrawal"] as const;
export type NoticeKind = (typeof NOTICE_KINDS)[number];

/** Locale tags notices are written in: `en`, `it`, `it-IT`… */
export const NOTICE_LOCALE = /^[a-z]{2}(?:-[A-Z]{2})?$/;

/** Series keys: lower-case slugs. */
export const NOTICE_KEY = /^[a-z0-9](?:[a-z0-9_.-]{0,62}[a-z0-9])?$/;

/** A default notice before it is given the tenant's name. */
export interface DefaultNotice {
  key: string;
  purposes: readonly ConsentPurpose[];
  kind: NoticeKind;
  locale: "en" | "it";
  text: (business: string) => string;
}

const COOKIE_PURPOSES = ["cookies_functional", "cookies_analytics", "cookies_marketing", "cookies_profiling"] as const;
const KEYWORD_MARKETING = ["marketing_sms", "marketing_whatsapp", "marketing_email"] as const;

/** Key of the default notice a keyword opt-in (START, ISCRIVIMI) is recorded on. */
export const KEYWORD_NOTICE_KEY = "marketing_keyword";

/** The notices seeded for every tenant (version 1 of each series). */
export const DEFAULT_NOTICES: readonly DefaultNotice[] = [
  {
    key: "recording",
    purposes: ["recording"],
    kind: "consent",
    locale: "en",
    text: (b) =>
      `${b} would like to record this conversation (the audio, and a written transcript made from it) to keep an accurate record of what was agreed, to handle complaints and to improve our service. ` +
      "Recording starts only if every participant agrees; if you say no, the conversation continues normally without being recorded. " +
      "Recordings and transcripts are encrypted, kept for up to 12 months and then deleted, and are never used to train AI models. " +
      "The transcript may be produced by an automated speech-to-text service working on our behalf. " +
      "You can withdraw your consent at any time (nothing more is recorded from then on) and ask us for a copy of your recordings, or for their deletion, by replying to this conversation.",
  },
  {
    key: "recording",
    purposes: ["recording"],
    kind: "consent",
    locale: "it",
    text: (b) =>
      `${b} vorrebbe registrare questa conversazione (l'audio e la trascrizione scritta ricavata dall'audio) per conservare una traccia fedele di quanto concordato, gestire eventuali reclami e migliorare il servizio. ` +
      "La registrazione parte solo se tutti i partecipanti sono d'accordo; se non acconsenti, la conversazione prosegue normalmente senza essere registrata. " +
      "Registrazioni e trascrizioni sono cifrate, conservate per un massimo di 12 mesi e poi cancellate, e non vengono mai usate per addestrare modelli di intelligenza artificiale. " +
      "La trascrizione può essere prodotta da un servizio automatico di riconoscimento vocale che opera per nostro conto. " +
      "Puoi revocare il consenso in qualsiasi momento (da allora non verrà registrato più nulla) e chiederci una copia delle tue registrazioni, o la loro cancellazione, rispondendo a questa conversazione.",
  },
  {
    key: "voice_clone",
    purposes: ["voice_clone"],
    kind: "consent",
    locale: "en",
    text: (b) =>
      `${b} asks your permission to create a synthetic copy of your voice (a "voice model") from recordings you provide, to be used only for the purpose and for the period stated when you agree. ` +
      "Your source recordings and the voice model are kept encrypted, used for nothing else, never passed on to others and never used to train general-purpose AI models. " +
      "Your consent lasts until the end date shown, and you can revoke it at any time: when you do, or when the period ends, the voice model and its source recordings are permanently deleted, and we keep only a record that the deletion took place. " +
      "Giving this consent is optional; refusing it changes nothing in the service you receive.",
  },
  {
    key: "voice_clone",
    purposes: ["voice_clone"],
    kind: "consent",
    locale: "it",
    text: (b) =>
      `${b} ti chiede il permesso di creare una copia sintetica della tua voce (un "modello vocale") a partire dalle registrazioni che ci fornisci, da usare solo per la finalità e per il periodo indicati al momento del consenso. ` +
      "Le registrazioni di origine e il modello vocale sono conservati cifrati, non vengono usati per nessun altro scopo, non sono ceduti a terzi e non servono ad addestrare modelli di intelligenza artificiale generici. " +
      "Il consenso vale fino alla data di scadenza indicata e puoi revocarlo in qualsiasi momento: quando lo revochi, o alla scadenza, il modello vocale e le registrazioni di origine vengono cancellati definitivamente e conserviamo soltanto la traccia dell'avvenuta cancellazione. " +
      "Il consenso è facoltativo; se non lo dai, il servizio che ricevi non cambia in nulla.",
  },
  {
    key: "voice_clone_revocation",
    purposes: ["voice_clone"],
    kind: "withdrawal",
    locale: "en",
    text: (b) =>
      `You have revoked your consent to the use of your voice by ${b}. From now on your voice model will not be used again: the model and the recordings it was made from are being permanently deleted, and only a record that the deletion took place is kept. ` +
      "Revoking does not make uses before this moment unlawful. You can give your consent again at any time; a new voice model would need new recordings.",
  },
  {
    key: "voice_clone_revocation",
    purposes: ["voice_clone"],
    kind: "withdrawal",
    locale: "it",
    text: (b) =>
      `Hai revocato il consenso all'uso della tua voce da parte di ${b}. Da questo momento il tuo modello vocale non sarà più usato: il modello e le registrazioni da cui è stato creato vengono cancellati definitivamente e conserviamo solo la traccia dell'avvenuta cancellazione. ` +
      "La revoca non rende illeciti gli utilizzi precedenti a questo momento. Puoi dare di nuovo il consenso in qualsiasi momento; un nuovo modello vocale richiederebbe nuove registrazioni.",
  },
  {
    key: "cookies",
    purposes: COOKIE_PURPOSES,
    kind: "consent",
    locale: "en",
    text: (b) =>
      `${b} uses cookies and similar technologies on this site. Technical storage is strictly necessary for the chat to work and is always on: it keeps your conversation open in this tab and remembers the cookie choice you make here. ` +
      "With your consent we would also use: functional storage, to remember your conversation on this device between visits; analytics cookies, to measure in aggregate how the site is used; marketing cookies, to show you relevant offers of ours; and profiling cookies, to tailor content to your interests. " +
      "You can accept all, refuse all, or choose category by category; closing this banner is not a choice and keeps only the technical storage. " +
      'You can change your choice at any time from the "Cookie settings" link at the bottom of every page.',
  },
  {
    key: "cookies",
    purposes: COOKIE_PURPOSES,
    kind: "consent",
    locale: "it",
    text: (b) =>
      `${b} usa cookie e tecnologie simili su questo sito. La memoria tecnica è strettamente necessaria al funzionamento della chat ed è sempre attiva: mantiene aperta la tua conversazione in questa scheda e ricorda la scelta sui cookie che fai qui. ` +
      "Con il tuo consenso useremmo anche: memoria funzionale, per ricordare la tua conversazione su questo dispositivo tra una visita e l'altra; cookie analitici, per misurare in forma aggregata come viene usato il sito; cookie di marketing, per mostrarti nostre offerte pertinenti; cookie di profilazione, per adattare i contenuti ai tuoi interessi. " +
      "Puoi accettarli tutti, rifiutarli tutti o scegliere categoria per categoria; chiudere questo banner non è una scelta e lascia attiva solo la memoria tecnica. " +
      'Puoi cambiare la tua scelta in qualsiasi momento dal link "Impostazioni cookie" in fondo a ogni pagina.',
  },
  {
    key: KEYWORD_NOTICE_KEY,
    purposes: KEYWORD_MARKETING,
    kind: "consent",
    locale: "en",
    text: (b) =>
      `${b} would like to send you news and offers on this channel. Reply START to agree; reply STOP at any time to stop. ` +
      "We use your contact details only for these messages and never pass them on for anyone else's marketing.",
  },
  {
    key: KEYWORD_NOTICE_KEY,
    purposes: KEYWORD_MARKETING,
    kind: "consent",
    locale: "it",
    text: (b) =>
      `${b} vorrebbe inviarti novità e offerte su questo canale. Rispondi ISCRIVIMI per accettare; rispondi ANNULLA o STOP in qualsiasi momento per smettere. ` +
      "Usiamo i tuoi recapiti solo per questi messaggi e non li cediamo mai a terzi per il loro marketing.",
  },
];

/** The series key a notice gets when the caller names none: the purpose (`recording`), `cookies`, or the purposes joined. */
export function defaultNoticeKey(purposes: readonly ConsentPurpose[], kind: NoticeKind): string {
  const sorted = [...new Set(purposes)].sort((a, b) => CONSENT_PURPOSES.indexOf(a) - CONSENT_PURPOSES.indexOf(b));
  const base = sorted.every((p) => p.startsWith("cookies_")) ? "cookies" : sorted.join(".");
  return kind === "withdrawal" ? `${base}_revocation` : base;
}
