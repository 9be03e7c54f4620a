// Candidates produced by the scanners, before overlap resolution in redact().
import type { EntityType } from "./types";

/** A validated span before overlap resolution. */
export interface Candidate {
  type: EntityType;
  start: number;
  end: number;
  /** Normalised value used to key placeholders. */
  key: string;
  /** Higher wins an overlap; equal priorities prefer the longer span. */
  priority: number;
}

export const PRIORITY: Readonly<Record<EntityType, number>> = {
  CREDENTIAL: 100,
  EMAIL: 90,
  IBAN: 80,
  CARD: 70,
  CODICE_FISCALE: 65,
  IP: 50,
  SSN: 45,
  PARTITA_IVA: 40,
  PHONE: 30,
};
/** Token-shaped secrets rank below structured identifiers that happen to look random. */
export const PRIORITY_TOKEN = 60;

/** Which detectors run, derived from `RedactOptions.types`. */
export type Enabled = Readonly<Record<EntityType, boolean>>;

/** True when [start, end) overlaps a candidate already found by a higher-priority scanner. */
export function covered(out: Candidate[], from: number, start: number, end: number): boolean {
  for (let i = from; i < out.length; i++) {
    const c = out[i] as Candidate;
    if (start < c.end && c.start < end) return true;
  }
  return false;
}
