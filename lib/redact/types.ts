/** Kinds of personal identifier the redaction engine replaces with placeholders. */
export type EntityType =
  | "EMAIL"
  | "PHONE"
  | "CARD"
  | "IBAN"
  | "CODICE_FISCALE"
  | "PARTITA_IVA"
  | "IP"
  | "SSN"
  | "CREDENTIAL";

/** One replaced identifier. `start`/`end` are UTF-16 offsets into the ORIGINAL text (end exclusive). */
export interface RedactedEntity {
  type: EntityType;
  start: number;
  end: number;
  placeholder: string;
}

/** Result of {@link redact}: the redacted text and the entities that were replaced, sorted by start. */
export interface RedactResult {
  text: string;
  entities: RedactedEntity[];
}

/** Special categories of personal data (GDPR art. 9). */
export type SpecialCategory =
  | "health"
  | "religion"
  | "politics"
  | "sexual_orientation"
  | "trade_union"
  | "ethnic_origin"
  | "genetic_biometric";

/** Every entity type, in placeholder-numbering order. */
export const ENTITY_TYPES: readonly EntityType[] = [
  "EMAIL",
  "PHONE",
  "CARD",
  "IBAN",
  "CODICE_FISCALE",
  "PARTITA_IVA",
  "IP",
  "SSN",
  "CREDENTIAL",
];
