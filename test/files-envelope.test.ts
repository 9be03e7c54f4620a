import { describe, expect, it } from "vitest";
import { DecryptionError, envelopeKeyId } from "../lib/crypto";
import { fromUtf8, utf8 } from "../lib/encoding";
import { FILE_CIPHER, FILE_FORMAT, fileMetadataRecord, openFile, parseFileMetadata, sealFile } from "../lib/file-envelope";

const aesKey = () => crypto.subtle.importKey("raw", crypto.getRandomValues(new Uint8Array(32)), { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
const PLAIN = utf8("Scan of my ID card: MARIO ROSSI RSSMRA80A01H501U — please keep it safe.");
const KEY = "t/ten_1/a/att_1";

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

describe("file envelope (lib/file-envelope)", () => {
  it("round-trips, with a fresh data key per file and no plaintext in the sealed bytes or metadata", async () => {
    const key = await aesKey();
    const a = await sealFile(key, "sk_one", PLAIN, KEY);
    const b = await sealFile(key, "sk_one", PLAIN, KEY);
    expect(fromUtf8(await openFile(key, a.metadata, a.body, KEY))).toBe(fromUtf8(PLAIN));
    expect(a.metadata).toMatchObject({ cipher: FILE_CIPHER, format: FILE_FORMAT, keyId: "sk_one" });
    expect(envelopeKeyId(a.metadata.dataKey)).toBe("sk_one");
    // Fresh IV and data key every time: equal files give unrelated ciphertexts and wrapped keys.
    expect(a.metadata.dataKey).not.toBe(b.metadata.dataKey);
    expect(contains(a.body, b.body.subarray(12, 40))).toBe(false);
    expect(a.body.length).toBe(PLAIN.length + 12 + 16);
    expect(contains(a.body, utf8("MARIO ROSSI"))).toBe(false);
    expect(JSON.stringify(fileMetadataRecord(a.metadata))).not.toContain("MARIO");
    expect(parseFileMetadata(fileMetadataRecord(a.metadata))).toEqual(a.metadata);
  });

  it("refuses a flipped bit anywhere in the bytes, with DecryptionError", async () => {
    const key = await aesKey();
    const sealed = await sealFile(key, "sk_one", PLAIN, KEY);
    for (const at of [0, 11, 12, 40, sealed.body.length - 1]) {
      const tampered = sealed.body.slice();
      tampered[at] = (tampered[at] ?? 0) ^ 0x01;
      await expect(openFile(key, sealed.metadata, tampered, KEY)).rejects.toBeInstanceOf(DecryptionError);
    }
    await expect(openFile(key, sealed.metadata, sealed.body.slice(0, 20), KEY)).rejects.toBeInstanceOf(DecryptionError);
  });

  it("refuses the wrong key, another file's data key, and a file moved to another storage key", async () => {
    const key = await aesKey();
    const sealed = await sealFile(key, "sk_one", PLAIN, KEY);
    const other = await sealFile(key, "sk_one", utf8("another file"), KEY);
    await expect(openFile(await aesKey(), sealed.metadata, sealed.body, KEY)).rejects.toBeInstanceOf(DecryptionError);
    await expect(openFile(key, other.metadata, sealed.body, KEY)).rejects.toBeInstanceOf(DecryptionError);
    await expect(openFile(key, sealed.metadata, sealed.body, "t/ten_1/a/att_2")).rejects.toBeInstanceOf(DecryptionError);
    const moved = await sealFile(key, "sk_one", PLAIN, "t/ten_2/a/att_1");
    await expect(openFile(key, moved.metadata, moved.body, KEY)).rejects.toBeInstanceOf(DecryptionError);
  });

  it("refuses missing, foreign or inconsistent metadata", async () => {
    const key = await aesKey();
    const sealed = await sealFile(key, "sk_one", PLAIN, KEY);
    const record = fileMetadataRecord(sealed.metadata);
    expect(() => parseFileMetadata(undefined)).toThrow(DecryptionError);
    expect(() => parseFileMetadata({ ...record, format: "1" })).toThrow(DecryptionError);
    expect(() => parseFileMetadata({ ...record, cipher: "AES-128-CBC" })).toThrow(DecryptionError);
    expect(() => parseFileMetadata({ ...record, keyId: "sk_two" })).toThrow(/two different keys/);
    const { dataKey: _dropped, ...incomplete } = record;
    expect(() => parseFileMetadata(incomplete)).toThrow(DecryptionError);
    await expect(openFile(key, { ...sealed.metadata, keyId: "sk_two" }, sealed.body, KEY)).rejects.toBeInstanceOf(DecryptionError);
  });
});
