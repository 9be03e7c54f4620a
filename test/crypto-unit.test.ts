import { describe, expect, it } from "vitest";
import { normalizeAddress, normalizePhone } from "../lib/addresses";
import { callbackUrlProblem, isPrivateHost } from "../lib/channels/config";
import { parseRetryAfter } from "../lib/channels/outbound";
import { DecryptionError, importMasterKey, masterKeyId, openJson, sealJson, timingSafeEqual } from "../lib/crypto";
import { fromBase64, toBase32, toBase64, utf8 } from "../lib/encoding";
import { newId } from "../lib/ids";
import { canManageRole, resolveScopes, ROLE_SCOPES } from "../lib/roles";
import { metaSignature, parleySignature, twilioSignature, verifyMetaSignature, verifyParleySignature, verifyTwilioSignature } from "../lib/signatures";

const KEY_A = toBase64(new Uint8Array(32).fill(7));
const KEY_B = toBase64(new Uint8Array(32).fill(9));

describe("AES-256-GCM envelope", () => {
  it("round-trips and names its key", async () => {
    const key = await importMasterKey(KEY_A);
    const kid = await masterKeyId(KEY_A);
    const sealed = await sealJson(key, kid, { authToken: "secret-token" }, "channel-secrets:ch_1");
    expect(sealed.split(".")[1]).toBe(kid);
    expect(sealed).not.toContain("secret-token");
    expect(await openJson(key, sealed, "channel-secrets:ch_1")).toEqual({ authToken: "secret-token" });
  });

  it("fails with a clear error on tampering, the wrong key or the wrong binding", async () => {
    const key = await importMasterKey(KEY_A);
    const sealed = await sealJson(key, "k", { a: 1 }, "ctx");
    const parts = sealed.split(".");
    const body = fromBase64(parts[3] ?? "") ?? new Uint8Array();
    body[0] = (body[0] ?? 0) ^ 1;
    const tampered = [parts[0], parts[1], parts[2], toBase64(body)].join(".");
    await expect(openJson(key, tampered, "ctx")).rejects.toBeInstanceOf(DecryptionError);
    await expect(openJson(await importMasterKey(KEY_B), sealed, "ctx")).rejects.toThrow(/tampered, or wrong key/);
    await expect(openJson(key, sealed, "other-ctx")).rejects.toBeInstanceOf(DecryptionError);
    await expect(openJson(key, "garbage", "ctx")).rejects.toThrow(/unrecognised envelope/);
  });

  it("refuses master keys that are not 32 bytes", async () => {
    await expect(importMasterKey(toBase64(new Uint8Array(16)))).rejects.toThrow(/32 bytes/);
    await expect(importMasterKey("not base64!!")).rejects.toThrow();
  });

  it("compares in constant time with correct results", () => {
    expect(timingSafeEqual(utf8("abc"), utf8("abc"))).toBe(true);
    expect(timingSafeEqual(utf8("abc"), utf8("abd"))).toBe(false);
    expect(timingSafeEqual(utf8("abc"), utf8("abcd"))).toBe(false);
  });
});

describe("provider signatures", () => {
  it("computes Twilio signatures exactly as the official library (vectors from twilio.getExpectedTwilioSignature)", async () => {
    const params = new Map(Object.entries({ CallSid: "CA1234567890ABCDE", Caller: "+12349013030", Digits: "1234", From: "+12349013030", To: "+18005551212" }).map(([k, v]) => [k, [v]]));
    expect(await twilioSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", params)).toBe("0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
    const multi = new Map([["Body", ["ciao àè €"]], ["MediaUrl0", ["x"]], ["B", ["2", "1", "2"]]]);
    expect(await twilioSignature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", multi)).toBe("6Im5tb3kokLOcVe9IoEoKBa1sZA=");
  });

  it("accepts Twilio's port variants and rejects anything altered", async () => {
    const params = new Map([["Body", ["hi"]]]);
    const sig = await twilioSignature("tok", "https://example.com/hook", params);
    expect(await verifyTwilioSignature("tok", "https://example.com:443/hook", params, sig)).toBe(true);
    expect(await verifyTwilioSignature("tok", "https://example.com/hook", new Map([["Body", ["hi!"]]]), sig)).toBe(false);
    expect(await verifyTwilioSignature("tok", "https://example.com/hook", params, null)).toBe(false);
    expect(await verifyTwilioSignature("tok", "https://example.com/hook", params, "%%%")).toBe(false);
  });

  it("verifies Meta X-Hub-Signature-256 over the raw bytes", async () => {
    const body = utf8('{"object":"whatsapp_business_account"}');
    const sig = await metaSignature("app-secret", body);
    expect(sig).toMatch(/^sha256=[0-9a-f]{64}$/);
    expect(await verifyMetaSignature("app-secret", body, sig)).toBe(true);
    expect(await verifyMetaSignature("other", body, sig)).toBe(false);
    expect(await verifyMetaSignature("app-secret", utf8('{"object":"x"}'), sig)).toBe(false);
    expect(await verifyMetaSignature("app-secret", body, "sha1=abc")).toBe(false);
  });

  it("verifies X-Parley-Signature with a 300 s tolerance and several secrets", async () => {
    const now = 1_700_000_000;
    const header = await parleySignature("s1", '{"a":1}', now);
    expect(await verifyParleySignature(["s1"], '{"a":1}', header, now + 300)).toEqual({ ok: true });
    expect(await verifyParleySignature(["s1"], '{"a":1}', header, now + 301)).toEqual({ ok: false, reason: "stale" });
    expect(await verifyParleySignature(["s1"], '{"a":1}', header, now - 301)).toEqual({ ok: false, reason: "stale" });
    expect(await verifyParleySignature(["s0", "s1"], '{"a":1}', header, now)).toEqual({ ok: true });
    expect(await verifyParleySignature(["s2"], '{"a":1}', header, now)).toEqual({ ok: false, reason: "mismatch" });
    expect(await verifyParleySignature(["s1"], '{"a":2}', header, now)).toEqual({ ok: false, reason: "mismatch" });
    expect(await verifyParleySignature(["s1"], "", "t=abc,v1=zz", now)).toEqual({ ok: false, reason: "malformed" });
    expect(await verifyParleySignature(["s1"], "", undefined, now)).toEqual({ ok: false, reason: "missing" });
  });
});

describe("addresses, ids, roles, outbound helpers", () => {
  it("normalises channel addresses to one subject form", () => {
    expect(normalizeAddress("whatsapp:+39 347 123 4567")).toBe("tel:+393471234567");
    expect(normalizeAddress("+39 (347) 123-4567")).toBe("tel:+393471234567");
    expect(normalizeAddress("Mario.Rossi@Example.COM")).toBe("email:mario.rossi@example.com");
    expect(normalizeAddress("crm-contact-42")).toBe("id:crm-contact-42");
    expect(normalizeAddress("")).toBeNull();
    expect(normalizeAddress("bad\u0000id")).toBeNull();
    expect(normalizePhone("00393471234567")).toBe("+393471234567");
    expect(normalizePhone("12")).toBeNull();
  });

  it("makes sortable, unique ids", () => {
    const a = newId("msg", 1000);
    const b = newId("msg", 2000);
    expect(a < b).toBe(true);
    expect(newId("x")).not.toBe(newId("x"));
    expect(toBase32(new Uint8Array([0xff]))).toBe("74");
  });

  it("keeps keys within their role and their creator", () => {
    expect(canManageRole("owner", "owner")).toBe(true);
    expect(canManageRole("admin", "owner")).toBe(false);
    expect(canManageRole("agent", "viewer")).toBe(false);
    expect(resolveScopes("viewer", ["conversations:write"], new Set(ROLE_SCOPES.owner))).toEqual({ ok: false, notAllowed: ["conversations:write"] });
    expect(resolveScopes("agent", undefined, new Set(ROLE_SCOPES.owner))).toMatchObject({ ok: true });
    expect(ROLE_SCOPES.viewer.some((s) => s.endsWith(":write"))).toBe(false);
  });

  it("refuses private callback targets and parses Retry-After", () => {
    for (const host of ["localhost", "127.0.0.1", "10.1.2.3", "192.168.0.1", "172.16.5.4", "169.254.169.254", "[::1]", "fd00::1"]) expect(isPrivateHost(host)).toBe(true);
    expect(isPrivateHost("hooks.zapier.com")).toBe(false);
    expect(callbackUrlProblem("http://hooks.example.com/x", false)).toMatch(/https/);
    expect(callbackUrlProblem("https://user:pw@hooks.example.com/x", false)).toMatch(/credentials/);
    expect(callbackUrlProblem("http://127.0.0.1:9000/x", true)).toBeNull();
    expect(parseRetryAfter("7")).toBe(7000);
    expect(parseRetryAfter(new Date(Date.now() + 5000).toUTCString())).toBeGreaterThan(3000);
    expect(parseRetryAfter("soon")).toBeUndefined();
  });
});
