import type { SpecialCategory } from "./types";

// Lexicon of GDPR art. 9 special categories in English and Italian. Terms are regex fragments over
// accent-stripped lowercase text and are matched as whole words. Words that are common in shop chat
// with another meaning are left out or only matched in an unambiguous phrase: "razza" (dog breed),
// "ansia" (impatience), "di destra" (on the right), "church" (a landmark), "fingerprint sensor".
const LEXICON: Readonly<Record<SpecialCategory, readonly string[]>> = {
  health: [
    // EN
    "diabet(?:es|ic|ics)", "cancer", "tumou?rs?", "chemo(?:therapy)?", "radiotherapy", "hiv",
    "hepatitis", "asthma(?:tic)?", "epilep(?:sy|tic)", "depression", "depressed", "anxiety disorder",
    "panic attacks?", "bipolar", "schizophreni[ac]", "adhd", "autis(?:m|tic)", "dementia",
    "alzheimer'?s?", "parkinson'?s?", "multiple sclerosis", "heart attack", "had a stroke", "surgery",
    "hospitali[sz]ed", "in (?:the )?hospital", "emergency room", "pregnan(?:t|cy)", "miscarriage",
    "disabilit(?:y|ies)", "wheelchair", "medical prescription", "my prescriptions?", "my medications?", "antidepressants?",
    "insulin", "allerg(?:y|ies|ic)", "c[o]?eliac", "lactose intolerant", "diagnosed with", "illness",
    "sick leave", "mental health", "psychiatrist", "psychologist", "therapist", "my doctor",
    "chronic (?:pain|illness|disease)", "medical (?:condition|certificate|records?)", "blood test",
    // IT
    "diabet(?:e|ico|ica|ici|iche)", "cancro", "tumor(?:e|i)", "chemioterapia", "chemio", "radioterapia",
    "epatite", "asma", "epilessia", "epilettic(?:o|a|i|he)", "depressione", "depress[oaie]",
    "disturbo d'ansia", "attacchi di panico", "attacco di panico", "bipolare", "schizofrenia", "autismo",
    "autistic(?:o|a|i|he)", "demenza", "sclerosi multipla", "infarto", "ictus", "intervento chirurgico",
    "ricoverat[oaie]", "in ospedale", "pronto soccorso", "incinta", "gravidanza", "aborto",
    "disabil[ei]", "invalidita", "sedia a rotelle", "ricetta medica", "prescrizione medica",
    "insulina", "allergi(?:a|e|co|ca|ci|che)", "celiac(?:o|a|i|he)", "celiachia",
    "intollerante al lattosio", "diagnosi medica", "diagnosticat[oaie]", "malattia", "malat[oaie]",
    "certificato medico", "psichiatra", "psicolog[oa]", "salute mentale", "mio medico", "dal medico",
    "esami del sangue", "in terapia", "terapia (?:farmacologica|psicologica|oncologica)",
  ],
  religion: [
    "religion", "religious", "catholic", "(?:i am|i'm) (?:a )?christian", "christianity", "muslim", "moslem", "islam(?:ic)?", "jewish",
    "judaism", "hindu", "buddhist", "sikh", "atheist", "agnostic", "mormon", "jehovah'?s witness(?:es)?",
    "protestant", "evangelical", "fasting for ramadan", "go to church", "going to mass",
    "religione", "religios[oaie]", "cattolic(?:o|a|i|he)", "sono cristian[oa]", "cristianesimo", "fede cristiana", "musulman[oaie]",
    "islamic(?:o|a|i|he)", "ebre[oaie]", "ebraic(?:o|a|i|he)", "ebraismo", "induista", "buddista", "ate[oaie]",
    "agnostic(?:o|a|i|he)", "testimon[ei] di geova", "protestante", "evangelic(?:o|a|i|he)", "digiuno (?:per il )?ramadan",
    "vado a messa", "andare a messa", "fede religiosa",
  ],
  politics: [
    "political (?:party|views|opinions?|affiliation|beliefs)", "i vote(?:d)? for", "voting for",
    "democrat", "democratic party", "republican", "gop", "labour party", "labour voter", "tory", "tories",
    "conservative party", "liberal democrats", "communist", "socialist", "fascist", "nazi", "far[- ]right",
    "far[- ]left", "left[- ]wing", "right[- ]wing", "party member",
    "partito politico", "opinioni politiche", "idee politiche", "orientamento politico", "elettore", "elettrice", "comunista", "socialista", "fascista", "nazista",
    "estrema destra", "estrema sinistra", "partito democratico", "fratelli d'italia",
    "movimento 5 stelle", "forza italia", "lega nord", "iscritt[oa] al partito", "tessera del partito",
  ],
  sexual_orientation: [
    "gay", "lesbian", "bisexual", "homosexual", "heterosexual", "transgender", "queer", "lgbt(?:q|qia)?\\+?",
    "sexual orientation", "sex life", "non-binary",
    "lesbic(?:a|he)", "bisessuale", "omosessuale", "eterosessuale", "transessuale",
    "orientamento sessuale", "vita sessuale",
  ],
  trade_union: [
    "trade unions?", "labou?r unions?", "union member(?:ship)?", "union dues", "union rep(?:resentative)?",
    "shop steward", "unioni[sz]ed",
    "sindacat[oi]", "sindacal[ei]", "sindacalista", "iscritt[oa] al sindacato", "tessera sindacale",
    "cgil", "cisl", "uil",
  ],
  ethnic_origin: [
    "ethnic (?:origin|background|minority|group)", "ethnicity", "racial origin", "african american",
    "hispanic",
    "origine etnica", "etnia", "gruppo etnico", "minoranza etnica", "origine razziale",
    "afroamerican[oaie]", "ispanic(?:o|a|i|he)", "sinti",
  ],
  genetic_biometric: [
    "dna", "genetic (?:test(?:ing)?|data|disorder|condition|profile)", "genome", "genomic", "brca[12]?",
    "fingerprints?(?! (?:sensor|reader|scanner|unlock))", "biometrics?", "facial recognition",
    "retina scan", "iris scan", "voiceprint",
    "test genetic[oi]", "dati genetici", "genoma", "esame genetico", "malattia genetica",
    "(?<!(?:sensore|lettore) di )impronte? digital[ei]", "biometric(?:o|a|i|he)", "dati biometrici",
    "riconoscimento facciale", "scansione dell'iride",
  ],
};

const ORDER: readonly SpecialCategory[] = [
  "health",
  "religion",
  "politics",
  "sexual_orientation",
  "trade_union",
  "ethnic_origin",
  "genetic_biometric",
];

const GROUP_NAMES: Readonly<Record<SpecialCategory, string>> = {
  health: "health",
  religion: "religion",
  politics: "politics",
  sexual_orientation: "sexual",
  trade_union: "union",
  ethnic_origin: "ethnic",
  genetic_biometric: "genetic",
};

const CATEGORY_RE = new RegExp(
  "(?<![\\p{L}\\p{N}])(?:" +
    ORDER.map((cat) => `(?<${GROUP_NAMES[cat]}>${LEXICON[cat].join("|")})`).join("|") +
    ")(?![\\p{L}\\p{N}])",
  "gu",
);

const MARKS_RE = /\p{M}+/gu;
const APOSTROPHES_RE = /[’‘`´]/g;

/**
 * GDPR art. 9 special categories mentioned in `text` (English and Italian lexicon, whole words,
 * accent- and case-insensitive), in a fixed order without duplicates.
 */
export function detectSpecialCategories(text: string): SpecialCategory[] {
  const norm = text.normalize("NFD").replace(MARKS_RE, "").replace(APOSTROPHES_RE, "'").toLowerCase();
  const found = new Set<SpecialCategory>();
  CATEGORY_RE.lastIndex = 0;
  for (const m of norm.matchAll(CATEGORY_RE)) {
    const groups = m.groups;
    if (!groups) continue;
    for (const cat of ORDER) {
      if (groups[GROUP_NAMES[cat]] !== undefined) {
        found.add(cat);
        break;
      }
    }
    if (found.size === ORDER.length) break;
  }
  return ORDER.filter((c) => found.has(c));
}
