import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  campaignMessage,
  decideRecipient,
  optOutLine,
  renderTemplate,
  rpoRegisterProblem,
  RPO_MAX_AGE_DAYS,
  templateVariables,
  type RecipientFacts,
} from "../lib/consent/campaign-rules";
import { csvCell, csvRow } from "../lib/consent/csv";
import { ageOn, birthDateFromAge, birthDateProblem, isUnderAge, parseBirthDate, youngest } from "../lib/consent/minors";
import { DEFAULT_NOTICES, defaultNoticeKey } from "../lib/consent/notices";
import { CAMPAIGN_PURPOSES, channelTypesForPurpose, marketingPurposeForChannel, stateOf, type PurposeState } from "../lib/consent/purposes";
import { newDataKey, openObject, sealObject } from "../lib/consent/sealed-object";
import { DecryptionError } from "../lib/crypto";
import { utf8 } from "../lib/encoding";

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 5, 15, 12);
const none: PurposeState = { state: "none" };
const granted = (since = NOW - DAY, expiresAt: number | null = null): PurposeState => ({ state: "granted", since, expiresAt });
const withdrawn: PurposeState = { state: "withdrawn", since: NOW - DAY };

function facts(overrides: Partial<RecipientFacts> = {}): RecipientFacts {
  return {
    purpose: "marketing_sms",
    consent: none,
    parentalAuthorization: none,
    restricted: false,
    age: null,
    minimumAge: 14,
    existingCustomer: false,
    publicDirectory: false,
    rpo: null,
    ...overrides,
  };
}

describe("decideRecipient", () => {
  it("sends only with a grant in force", () => {
    expect(decideRecipient(facts({ consent: granted() }))).toEqual({ send: true, basis: "consent" });
    expect(decideRecipient(facts())).toEqual({ send: false, reason: "no_consent" });
    expect(decideRecipient(facts({ consent: { state: "expired", since: NOW - 10 * DAY, expiresAt: NOW - DAY } }))).toEqual({ send: false, reason: "no_consent" });
    expect(decideRecipient(facts({ consent: withdrawn }))).toEqual({ send: false, reason: "opted_out" });
  });

  it("allows soft spam only by e-mail, to existing customers, unless they opted out", () => {
    expect(decideRecipient(facts({ purpose: "marketing_email", existingCustomer: true }))).toEqual({ send: true, basis: "soft_spam" });
    expect(decideRecipient(facts({ purpose: "marketing_email", existingCustomer: true, consent: withdrawn }))).toEqual({ send: false, reason: "opted_out" });
    expect(decideRecipient(facts({ purpose: "marketing_email", existingCustomer: true, consent: granted() }))).toEqual({ send: true, basis: "consent" });
    for (const purpose of ["marketing_sms", "marketing_whatsapp", "telemarketing"] as const) {
      expect(decideRecipient(facts({ purpose, existingCustomer: true, rpo: purpose === "telemarketing" ? { registered: false, consultedAt: NOW } : null }))).toEqual({
        send: false,
        reason: "no_consent",
      });
    }
  });

  it("blocks minors without parental authorization, whatever else holds", () => {
    expect(decideRecipient(facts({ age: 13, consent: granted() }))).toEqual({ send: false, reason: "minor_without_authorization" });
    expect(decideRecipient(facts({ age: 13, consent: granted(), parentalAuthorization: granted() }))).toEqual({ send: true, basis: "consent" });
    expect(decideRecipient(facts({ age: 13, consent: granted(), parentalAuthorization: withdrawn }))).toEqual({ send: false, reason: "minor_without_authorization" });
    expect(decideRecipient(facts({ age: 14, consent: granted() }))).toEqual({ send: true, basis: "consent" });
    expect(decideRecipient(facts({ age: 15, minimumAge: 16, consent: granted() }))).toEqual({ send: false, reason: "minor_without_authorization" });
    expect(decideRecipient(facts({ purpose: "marketing_email", age: 12, existingCustomer: true }))).toEqual({ send: false, reason: "minor_without_authorization" });
  });

  it("puts a DSR restriction before everything", () => {
    expect(decideRecipient(facts({ restricted: true, consent: granted() }))).toEqual({ send: false, reason: "restricted" });
    expect(decideRecipient(facts({ restricted: true, age: 10, consent: withdrawn }))).toEqual({ send: false, reason: "restricted" });
  });

  it("telemarketing: the RPO revokes consents older than the consultation; public directories are opt-out", () => {
    const consultedAt = NOW - 2 * DAY;
    const tm = (o: Partial<RecipientFacts>) => facts({ purpose: "telemarketing", rpo: { registered: false, consultedAt }, ...o });
    expect(decideRecipient(tm({ rpo: { registered: true, consultedAt } }))).toEqual({ send: false, reason: "rpo_registered" });
    expect(decideRecipient(tm({ rpo: { registered: true, consultedAt }, consent: granted(consultedAt - DAY) }))).toEqual({ send: false, reason: "rpo_registered" });
    expect(decideRecipient(tm({ rpo: { registered: true, consultedAt }, consent: granted(consultedAt + DAY) }))).toEqual({ send: true, basis: "consent" });
    expect(decideRecipient(tm({ rpo: { registered: true, consultedAt }, publicDirectory: true }))).toEqual({ send: false, reason: "rpo_registered" });
    expect(decideRecipient(tm({ rpo: { registered: true, consultedAt }, consent: withdrawn }))).toEqual({ send: false, reason: "opted_out" });
    expect(decideRecipient(tm({ publicDirectory: true }))).toEqual({ send: true, basis: "public_directory" });
    expect(decideRecipient(tm({}))).toEqual({ send: false, reason: "no_consent" });
    expect(decideRecipient(tm({ consent: granted() }))).toEqual({ send: true, basis: "consent" });
  });

  it("never sends to someone who opted out, is restricted, or is an unauthorised minor (property)", () => {
    const state = fc.constantFrom<PurposeState>(none, granted(), withdrawn, { state: "expired", since: NOW - 3 * DAY, expiresAt: NOW - DAY });
    fc.assert(
      fc.property(
        fc.record({
          purpose: fc.constantFrom(...CAMPAIGN_PURPOSES),
          consent: state,
          parentalAuthorization: state,
          restricted: fc.boolean(),
          age: fc.option(fc.integer({ min: 0, max: 99 })),
          minimumAge: fc.integer({ min: 13, max: 18 }),
          existingCustomer: fc.boolean(),
          publicDirectory: fc.boolean(),
          rpo: fc.option(fc.record({ registered: fc.boolean(), consultedAt: fc.constant(NOW - DAY) })),
        }),
        (f) => {
          const decision = decideRecipient(f);
          if (!decision.send) return;
          expect(f.restricted).toBe(false);
          expect(f.consent.state).not.toBe("withdrawn");
          if (f.age !== null && f.age < f.minimumAge) expect(f.parentalAuthorization.state).toBe("granted");
          if (decision.basis === "soft_spam") expect(f.purpose === "marketing_email" && f.existingCustomer).toBe(true);
          if (decision.basis === "public_directory") expect(f.purpose === "telemarketing" && !f.rpo?.registered).toBe(true);
          if (decision.basis === "consent") expect(f.consent.state).toBe("granted");
        },
      ),
    );
  });
});

describe("RPO register freshness", () => {
  it(`is usable for ${RPO_MAX_AGE_DAYS} days after consultation`, () => {
    expect(rpoRegisterProblem(null, NOW)).toBe("absent");
    expect(rpoRegisterProblem({ consultedAt: NOW }, NOW)).toBeNull();
    expect(rpoRegisterProblem({ consultedAt: NOW - 15 * DAY }, NOW)).toBeNull();
    expect(rpoRegisterProblem({ consultedAt: NOW - 15 * DAY - 1 }, NOW)).toBe("stale");
    expect(rpoRegisterProblem({ consultedAt: NOW - 40 * DAY }, NOW)).toBe("stale");
  });
});

describe("templates", () => {
  it("lists and fills {{variables}} as plain text, never re-expanding values", () => {
    expect(templateVariables("Ciao {{name}}, {{ name }} — il tuo codice è {{code_2}}")).toEqual(["name", "code_2"]);
    expect(renderTemplate("Hi {{name}}!", { name: "Mario" })).toEqual({ ok: true, text: "Hi Mario!" });
    expect(renderTemplate("Hi {{name}} {{surname}}", { name: "Mario" })).toEqual({ ok: false, missing: ["surname"] });
    expect(renderTemplate("{{a}}", { a: "{{b}}", b: "x" })).toEqual({ ok: true, text: "{{b}}" });
    expect(renderTemplate("no variables, {single} braces {{ }}", {})).toEqual({ ok: true, text: "no variables, {single} braces {{ }}" });
    expect(renderTemplate("{{toString}}", {})).toEqual({ ok: false, missing: ["toString"] });
  });

  it("ends every message with an opt-out line in the campaign's language", () => {
    expect(campaignMessage("Saldi!  ", "it", "consent")).toBe(`Saldi!\n\n${optOutLine("it", "consent")}`);
    expect(optOutLine("en", "soft_spam")).toMatch(/because you are our customer.*STOP/);
    expect(optOutLine("it", "soft_spam")).toMatch(/sei nostro cliente.*STOP o ANNULLA/);
  });
});

describe("ages", () => {
  it("computes completed years and the youngest birth date for a declared age", () => {
    expect(ageOn("2012-06-15", NOW)).toBe(14);
    expect(ageOn("2012-06-16", NOW)).toBe(13);
    expect(ageOn(birthDateFromAge(13, NOW), NOW)).toBe(13);
    expect(ageOn(birthDateFromAge(13, NOW), NOW + 364 * DAY)).toBe(13);
    expect(ageOn(birthDateFromAge(13, NOW), NOW + 366 * DAY)).toBe(14);
    // 29 February: the declared age maps to 1 March of a common year (one day younger: the safe side).
    expect(birthDateFromAge(1, Date.UTC(2028, 1, 29))).toBe("2027-03-01");
  });

  it("validates birth dates", () => {
    expect(parseBirthDate("2024-02-30")).toBeNull();
    expect(birthDateProblem("2024-02-29", NOW)).toBeNull();
    expect(birthDateProblem("2030-01-01", NOW)).toMatch(/future/);
    expect(birthDateProblem("1850-01-01", NOW)).toMatch(/1900/);
    expect(birthDateProblem("15/06/2012", NOW)).toMatch(/YYYY-MM-DD/);
    expect(youngest(20, 12)).toBe(12);
    expect(youngest(null, 12)).toBe(12);
    expect(youngest(null, null)).toBeNull();
    expect(isUnderAge(null, 14)).toBe(false);
    expect(isUnderAge(13, 14)).toBe(true);
  });
});

describe("purposes and state", () => {
  it("maps channels to the marketing purpose their keywords withdraw", () => {
    expect(marketingPurposeForChannel("twilio_sms")).toBe("marketing_sms");
    expect(marketingPurposeForChannel("twilio_whatsapp")).toBe("marketing_whatsapp");
    expect(marketingPurposeForChannel("whatsapp_cloud")).toBe("marketing_whatsapp");
    expect(marketingPurposeForChannel("custom")).toBe("marketing_email");
    expect(marketingPurposeForChannel("web_chat")).toBe("marketing_email");
    expect(channelTypesForPurpose("marketing_email")).toEqual(["custom"]);
    expect(channelTypesForPurpose("telemarketing")).toEqual([]);
  });

  it("folds the latest entry into a state; grants lapse at their expiry", () => {
    expect(stateOf(null, NOW)).toEqual({ state: "none" });
    expect(stateOf({ purpose: "voice_clone", status: "granted", createdAt: NOW - DAY, expiresAt: NOW + 1 }, NOW).state).toBe("granted");
    expect(stateOf({ purpose: "voice_clone", status: "granted", createdAt: NOW - DAY, expiresAt: NOW }, NOW).state).toBe("expired");
    expect(stateOf({ purpose: "recording", status: "withdrawn", createdAt: NOW - DAY, expiresAt: null }, NOW).state).toBe("withdrawn");
  });
});

describe("default notices", () => {
  it("ship recording, voice cloning (consent and revocation), cookies and keyword marketing in English and Italian", () => {
    const keys = new Set(DEFAULT_NOTICES.map((n) => `${n.key}:${n.locale}`));
    for (const key of ["recording", "voice_clone", "voice_clone_revocation", "cookies", "marketing_keyword"]) {
      expect(keys.has(`${key}:en`)).toBe(true);
      expect(keys.has(`${key}:it`)).toBe(true);
    }
    for (const n of DEFAULT_NOTICES) expect(n.text("Bottega Rossi")).toContain("Bottega Rossi");
    expect(DEFAULT_NOTICES.find((n) => n.key === "voice_clone_revocation")?.kind).toBe("withdrawal");
    expect(defaultNoticeKey(["cookies_analytics", "cookies_marketing"], "consent")).toBe("cookies");
    expect(defaultNoticeKey(["voice_clone"], "withdrawal")).toBe("voice_clone_revocation");
    expect(defaultNoticeKey(["marketing_sms", "marketing_email"], "consent")).toBe("marketing_email.marketing_sms");
  });
});

describe("CSV and sealed objects", () => {
  it("quotes cells and neutralises spreadsheet formulas", () => {
    expect(csvRow(["a", 1, null, 'say "hi", ok', "=HYPERLINK(\"x\")", "-2+3", "@SUM(A1)"])).toBe(
      `a,1,,"say ""hi"", ok","'=HYPERLINK(""x"")",'-2+3,'@SUM(A1)\r\n`,
    );
    expect(csvCell(-5)).toBe("-5");
  });

  it("encrypts objects under their data key, bound to their storage key", async () => {
    const key = newDataKey();
    const plain = utf8("hello voice");
    const sealed = await sealObject(key, plain, "object:a");
    expect(new TextDecoder().decode(sealed)).not.toContain("hello voice");
    expect(new TextDecoder().decode(await openObject(key, sealed, "object:a"))).toBe("hello voice");
    await expect(openObject(key, sealed, "object:b")).rejects.toBeInstanceOf(DecryptionError);
    await expect(openObject(newDataKey(), sealed, "object:a")).rejects.toBeInstanceOf(DecryptionError);
    const tampered = sealed.slice();
    tampered[20] = (tampered[20] ?? 0) ^ 1;
    await expect(openObject(key, tampered, "object:a")).rejects.toBeInstanceOf(DecryptionError);
  });
});
