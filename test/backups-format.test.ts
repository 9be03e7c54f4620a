/**
 * The backup container and table catalogue, as pure units: round trips, every
 * kind of tampering, and a guard that every D1 table is either backed up or
 * deliberately left out.
 */
import { env } from "cloudflare:workers";
import { is } from "drizzle-orm";
import { SQLiteTable, getTableConfig } from "drizzle-orm/sqlite-core";
import { describe, expect, it } from "vitest";
import { BackupIntegrityError, BackupKeyUnavailableError, openRecords, sealRecords } from "../lib/backup-format";
import { BACKUP_TABLES, DeletionIndex, EXCLUDED_TABLES, judgeRow, tableColumns, tableSpec } from "../lib/backup-tables";
import { importMasterKey, masterKeyId } from "../lib/crypto";
import * as core from "../d1/schema";
import * as privacy from "../d1/schema-privacy";
import * as billing from "../d1/schema-billing";

const RAW_KEY = "q8l6Jk1o8rW5yq4H0m8c8bSg2mV1Q2b3c4d5e6f7g8E=";
const OTHER_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async function keyring(raw = RAW_KEY) {
  return { key: await importMasterKey(raw), id: await masterKeyId(raw) };
}

async function* from<T>(items: T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}

async function bytesOf(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function streamOf(bytes: Uint8Array, chunk = 997): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at + chunk));
      at += chunk;
    },
  });
}

async function seal(records: unknown[], backupId = "bak_1", frameSize = 256) {
  const ring = await keyring();
  return bytesOf(await sealRecords(from(records), { masterKey: ring.key, masterKeyId: ring.id, backupId, frameSize }));
}

async function open(bytes: Uint8Array, backupId = "bak_1", raw = RAW_KEY) {
  const ring = await keyring(raw);
  const out: unknown[] = [];
  for await (const record of openRecords(streamOf(bytes), { backupId, masterKeyFor: async (id) => (id === ring.id ? ring.key : null) })) out.push(record);
  return out;
}

/** Records big enough to span many frames, with text that compresses poorly. */
const RECORDS = Array.from({ length: 40 }, (_, i) => ({ t: "row", v: [`row-${i}`, crypto.randomUUID().repeat(3), i, null] }));

describe("backup container", () => {
  it("round-trips records through gzip and framed AES-256-GCM, with no plaintext in the bytes", async () => {
    const records = [{ t: "header", note: "Mario Rossi +393471112233" }, ...RECORDS];
    const bytes = await seal(records);
    expect(new TextDecoder().decode(bytes.subarray(0, 8))).toBe("PRLYBAK1");
    const text = new TextDecoder("latin1").decode(bytes);
    expect(text).not.toContain("Mario");
    expect(text).not.toContain("393471112233");
    expect(text).not.toContain("row-1");
    expect(await open(bytes)).toEqual(records);
  });

  it("refuses every modified byte position it is given, the header included", async () => {
    const bytes = await seal(RECORDS);
    const positions = [0, 9, 14, 40, bytes.length >> 2, bytes.length >> 1, bytes.length - 20, bytes.length - 1];
    for (const position of positions) {
      const tampered = bytes.slice();
      tampered[position] = (tampered[position] ?? 0) ^ 0x01;
      await expect(open(tampered), `byte ${position}`).rejects.toBeInstanceOf(BackupIntegrityError);
    }
  });

  it("refuses truncation, appended data, dropped or reordered frames, and another backup's id", async () => {
    const bytes = await seal(RECORDS);
    for (const cut of [5, 30, bytes.length >> 1, bytes.length - 1]) {
      await expect(open(bytes.slice(0, cut)), `cut at ${cut}`).rejects.toBeInstanceOf(BackupIntegrityError);
    }
    const appended = new Uint8Array(bytes.length + 4);
    appended.set(bytes);
    await expect(open(appended)).rejects.toBeInstanceOf(BackupIntegrityError);
    // Frames: find the first two by walking the length prefixes after the header.
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    const start = 12 + view.getUint32(8);
    const first = 4 + (view.getUint32(start) & 0x7fffffff);
    const second = 4 + (view.getUint32(start + first) & 0x7fffffff);
    const swapped = new Uint8Array(bytes.length);
    swapped.set(bytes.subarray(0, start));
    swapped.set(bytes.subarray(start + first, start + first + second), start);
    swapped.set(bytes.subarray(start, start + first), start + second);
    swapped.set(bytes.subarray(start + first + second), start + first + second);
    await expect(open(swapped)).rejects.toBeInstanceOf(BackupIntegrityError);
    const dropped = new Uint8Array([...bytes.subarray(0, start), ...bytes.subarray(start + first)]);
    await expect(open(dropped)).rejects.toBeInstanceOf(BackupIntegrityError);
    await expect(open(bytes, "bak_2")).rejects.toBeInstanceOf(BackupIntegrityError);
  });

  it("says which master key it needs when that key is not configured", async () => {
    const bytes = await seal(RECORDS.slice(0, 2));
    const error = await open(bytes, "bak_1", OTHER_KEY).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BackupKeyUnavailableError);
    expect((error as BackupKeyUnavailableError).keyId).toBe(await masterKeyId(RAW_KEY));
  });
});

describe("backup table catalogue", () => {
  it("covers every table the migrations create (not only those of the schema modules it imports)", async () => {
    const { results } = await env.DB.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%' AND name NOT LIKE 'd1_%'",
    ).all<{ name: string }>();
    const classified = new Set([...BACKUP_TABLES.map((t) => t.name), ...Object.keys(EXCLUDED_TABLES)]);
    expect(results.length).toBeGreaterThan(10);
    expect(results.map((r) => r.name).filter((name) => !classified.has(name))).toEqual([]);
  });

  it("classifies every D1 table exactly once: backed up, or left out with a reason", () => {
    const exported: unknown[] = [...Object.values(core), ...Object.values(privacy), ...Object.values(billing)];
    const schemaTables = exported.filter((v): v is SQLiteTable => is(v, SQLiteTable)).map((t) => getTableConfig(t).name);
    const backedUp = BACKUP_TABLES.map((t) => t.name);
    const excluded = Object.keys(EXCLUDED_TABLES);
    expect(new Set(backedUp).size).toBe(backedUp.length);
    expect(backedUp.filter((t) => excluded.includes(t))).toEqual([]);
    expect([...backedUp, ...excluded].sort()).toEqual([...schemaTables].sort());
    // Subject keys are never in a backup: erasure by key destruction must hold against every copy.
    expect(excluded).toContain("subject_keys");
    for (const spec of BACKUP_TABLES) expect(getTableConfig(spec.table).name).toBe(spec.name);
    // Parents before children.
    expect(backedUp.indexOf("tenants")).toBe(0);
    expect(backedUp.indexOf("campaigns")).toBeLessThan(backedUp.indexOf("campaign_recipients"));
    expect(backedUp.indexOf("notices")).toBeLessThan(backedUp.indexOf("consents"));
    expect(tableColumns(tableSpec("consents") ?? BACKUP_TABLES[0]!)).toContain("seq");
  });

  it("keeps deleted things deleted, but lets a conversation created after its deletion come back", () => {
    const deletions = new DeletionIndex();
    deletions.add("conversation", "conv_a", 2_000, "dsr_erasure");
    deletions.add("attachment", "att_1", 500, "retention_expired");
    deletions.add("subject_key", "subj_x", 3_000, "dsr_erasure");
    const conversations = tableSpec("conversations")!;
    const attachments = tableSpec("attachments")!;
    const dsr = tableSpec("dsr_requests")!;
    expect(judgeRow(conversations, { id: "conv_a", subject_hash: "s", created_at: 1_000 }, deletions).action).toBe("skip");
    expect(judgeRow(conversations, { id: "conv_a", subject_hash: "s", created_at: 2_500 }, deletions).action).toBe("restore");
    expect(judgeRow(conversations, { id: "conv_b", subject_hash: "subj_x", created_at: 2_900 }, deletions)).toEqual({ action: "skip", reason: "erased_subject" });
    expect(judgeRow(conversations, { id: "conv_b", subject_hash: "subj_x", created_at: 3_100 }, deletions).action).toBe("restore");
    // Random ids are never reused: any logged deletion applies.
    expect(judgeRow(attachments, { id: "att_1", conversation_id: "conv_z", subject_hash: "s", created_at: 9_999, r2_key: "k" }, deletions).action).toBe("skip");
    expect(judgeRow(attachments, { id: "att_2", conversation_id: "conv_a", subject_hash: "s", created_at: 1_500, r2_key: "k" }, deletions)).toEqual({ action: "skip", reason: "deleted_conversation" });
    // A DSR row of an erased subject is kept as a record, without the sealed address.
    const verdict = judgeRow(dsr, { id: "dsr_1", subject_hash: "subj_x", subject_sealed: "v1.sealed", verification_code_hash: "h", received_at: 2_000 }, deletions);
    expect(verdict).toEqual({ action: "restore", row: { id: "dsr_1", subject_hash: "subj_x", subject_sealed: null, verification_code_hash: null, received_at: 2_000 } });
  });
});
