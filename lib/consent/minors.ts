/**
 * Ages of subjects for the minimum-age rule (Italy: 14, GDPR art. 8 and
 * d.lgs. 196/2003 art. 2-quinquies). Pure: no Workers imports.
 */

/** Default minimum age for AI processing and marketing without parental authorization. */
export const DEFAULT_MINIMUM_AGE = 14;

const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Parses a real calendar date `YYYY-MM-DD` (UTC midnight, Unix ms), or null. */
export function parseBirthDate(value: string): number | null {
  const m = DATE.exec(value);
  if (!m) return null;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const at = Date.UTC(year, month - 1, day);
  const check = new Date(at);
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return null;
  return at;
}

/** Why a birth date is unusable (`null` when it is fine): not a date, in the future, or implausibly old. */
export function birthDateProblem(value: string, now: number): string | null {
  const at = parseBirthDate(value);
  if (at === null) return "must be a calendar date YYYY-MM-DD";
  if (at > now) return "must not be in the future";
  if (at < Date.UTC(1900, 0, 1)) return "must be after 1900-01-01";
  return null;
}

/** Age in completed years on `now` of someone born on `birthDate` (`YYYY-MM-DD`). */
export function ageOn(birthDate: string, now: number): number {
  const born = new Date(parseBirthDate(birthDate) ?? now);
  const today = new Date(now);
  let age = today.getUTCFullYear() - born.getUTCFullYear();
  const beforeBirthday =
    today.getUTCMonth() < born.getUTCMonth() || (today.getUTCMonth() === born.getUTCMonth() && today.getUTCDate() < born.getUTCDate());
  if (beforeBirthday) age -= 1;
  return Math.max(0, age);
}

/**
 * The latest birth date compatible with a declared age on `now`: the youngest
 * the person can be. Storing it keeps the minimum-age rule on the safe side
 * (a 13-year-old stays a minor until the day they surely turn 14).
 */
export function birthDateFromAge(age: number, now: number): string {
  const today = new Date(now);
  // Date.UTC rolls 29 February into 1 March in common years: one day younger, still the safe side.
  const at = new Date(Date.UTC(today.getUTCFullYear() - age, today.getUTCMonth(), today.getUTCDate()));
  return at.toISOString().slice(0, 10);
}

/** The younger of two known ages (either may be unknown). */
export function youngest(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

/** True when a known age is under the minimum age. Unknown ages are not treated as minors. */
export function isUnderAge(age: number | null, minimumAge: number): boolean {
  return age !== null && age < minimumAge;
}
