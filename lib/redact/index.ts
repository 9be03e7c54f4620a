/**
 * Parley PII redaction engine. Plain TypeScript with no platform imports: runs in Node and workerd.
 *
 * - {@link redact} replaces validated identifiers with stable placeholders (`[EMAIL_1]`, `[PHONE_2]`).
 * - {@link PlaceholderVault} keeps placeholders stable across the messages of one conversation.
 * - {@link restore} puts originals back into text produced from redacted input.
 * - {@link detectSpecialCategories} flags GDPR art. 9 topics (EN + IT lexicon).
 */
export type { EntityType, RedactedEntity, RedactResult, SpecialCategory } from "./types";
export { ENTITY_TYPES } from "./types";
export type { RedactOptions } from "./redact";
export { redact } from "./redact";
export { PlaceholderVault, restore } from "./vault";
export { detectSpecialCategories } from "./special-categories";
