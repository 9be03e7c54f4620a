// Encryption-at-rest benchmark: what per-subject encryption costs per chat message and per attachment.
// Run with `npx tsx bench/encryption.ts` (Node's WebCrypto). Writes bench/results/encryption.json.
//
// Every figure is compared with a plaintext baseline measured in the same run, doing the same
// serialisation work without the crypto:
// - chat message: the conversation object's stored body `{ t, m }` — JSON + UTF-8 encode on write,
//   decode + JSON.parse on read — against the same plus AES-256-GCM under the subject key
//   (sealBytes/openBytes, bound to the message id as associated data);
// - attachment (1 MiB): copying the bytes (the least a plaintext store does) against sealFile/openFile
//   (fresh data key, AES-256-GCM, data key wrapped by the subject key);
// - cold subject key: unwrapping a subject key from its MASTER_KEY envelope and importing it (paid
//   once per conversation object per cache period, not per message).
// Timings are medians of several rounds after a warm-up.
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { openBytes, randomBytes, sealBytes } from "../lib/crypto";
import { fromUtf8, utf8 } from "../lib/encoding";
import { openFile, sealFile } from "../lib/file-envelope";
import { resultsPath } from "./lib-results";

const ROUNDS = 7;
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 10_000);
const FILES = Number(process.env.BENCH_FILES ?? 40);
const KEYS = Number(process.env.BENCH_KEYS ?? 5_000);
const ATTACHMENT_BYTES = 1024 * 1024;

const MESSAGE_TEXT =
  "Ciao! I ordered the blue sneakers (order #48213) last Tuesday, size 42, but the tracking hasn't moved since Friday. Can you check? My email is mario.rossi@example.com";

interface Timing {
  /** Median microseconds per operation. */
  medianUs: number;
  /** Fastest round, microseconds per operation. */
  bestUs: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** Runs `op` `n` times per round (sequentially: the way one conversation object works), ROUNDS rounds after one warm-up. */
async function time(n: number, op: (i: number) => unknown | Promise<unknown>): Promise<Timing> {
  const perOp: number[] = [];
  for (let round = -1; round < ROUNDS; round++) {
    const start = performance.now();
    for (let i = 0; i < n; i++) await op(i);
    const us = ((performance.now() - start) * 1000) / n;
    if (round >= 0) perOp.push(us);
  }
  return { medianUs: median(perOp), bestUs: Math.min(...perOp) };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

async function main(): Promise<void> {
  const importAes = (raw: Uint8Array<ArrayBuffer>) => crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt", "decrypt"]);
  const masterKey = await importAes(randomBytes(32));
  const subjectKey = await importAes(randomBytes(32));
  const subjectKeyId = "sk_bench";
  const body = JSON.stringify({ t: MESSAGE_TEXT, m: [] });
  const context = (i: number) => `message:conv_bench:msg_${i}`;

  // Correctness first: the sealed path round-trips.
  const sealedOnce = await sealBytes(subjectKey, subjectKeyId, utf8(body), context(0));
  if (fromUtf8(await openBytes(subjectKey, sealedOnce, context(0))) !== body) throw new Error("message round trip failed");

  // --- chat message: write + read
  let sink = 0;
  const plainMessage = await time(MESSAGES, (i) => {
    const stored = utf8(JSON.stringify({ t: MESSAGE_TEXT, m: [], i }));
    const back = JSON.parse(fromUtf8(stored)) as { t: string };
    sink += back.t.length;
  });
  const sealedMessage = await time(MESSAGES, async (i) => {
    const stored = await sealBytes(subjectKey, subjectKeyId, utf8(JSON.stringify({ t: MESSAGE_TEXT, m: [], i })), context(i));
    const back = JSON.parse(fromUtf8(await openBytes(subjectKey, stored, context(i)))) as { t: string };
    sink += back.t.length;
  });
  const sealOnly = await time(MESSAGES, (i) => sealBytes(subjectKey, subjectKeyId, utf8(body), context(i)));
  const envelopes = await Promise.all(Array.from({ length: MESSAGES }, (_, i) => sealBytes(subjectKey, subjectKeyId, utf8(body), context(i))));
  const openOnly = await time(MESSAGES, (i) => openBytes(subjectKey, envelopes[i] ?? "", context(i)));

  // --- attachment: 1 MiB
  // getRandomValues fills at most 64 KiB per call.
  const file = new Uint8Array(ATTACHMENT_BYTES);
  for (let i = 0; i < file.length; i += 65_536) crypto.getRandomValues(file.subarray(i, i + 65_536));
  const binding = "t/ten_bench/a/att_bench";
  const sealedFile = await sealFile(subjectKey, subjectKeyId, file, binding);
  const reopened = await openFile(subjectKey, sealedFile.metadata, sealedFile.body, binding);
  if (reopened.length !== file.length || reopened[12345] !== file[12345]) throw new Error("file round trip failed");
  const plainFile = await time(FILES, () => {
    const stored = file.slice();
    sink += stored.slice()[0] ?? 0;
  });
  const sealedFileTiming = await time(FILES, async () => {
    const stored = await sealFile(subjectKey, subjectKeyId, file, binding);
    sink += (await openFile(subjectKey, stored.metadata, stored.body, binding))[0] ?? 0;
  });

  // --- cold subject key: unwrap from MASTER_KEY + import (once per conversation object per cache period)
  const wrapped = await sealBytes(masterKey, "mk_bench", randomBytes(32), "subject-key:ten:hash:sk");
  const coldKey = await time(KEYS, async () => importAes(await openBytes(masterKey, wrapped, "subject-key:ten:hash:sk")));

  const messageRatio = sealedMessage.medianUs / plainMessage.medianUs;
  const fileRatio = sealedFileTiming.medianUs / plainFile.medianUs;
  const mbPerSec = (ATTACHMENT_BYTES * 2) / (sealedFileTiming.medianUs / 1e6) / (1024 * 1024);
  const results = {
    node: process.version,
    cpu: cpus()[0]?.model ?? "unknown",
    date: new Date().toISOString(),
    rounds: ROUNDS,
    message: {
      bytes: utf8(body).length,
      iterations: MESSAGES,
      plaintextUs: round2(plainMessage.medianUs),
      sealedUs: round2(sealedMessage.medianUs),
      overheadUs: round2(sealedMessage.medianUs - plainMessage.medianUs),
      ratio: round2(messageRatio),
      sealUs: round2(sealOnly.medianUs),
      openUs: round2(openOnly.medianUs),
      bestPlaintextUs: round2(plainMessage.bestUs),
      bestSealedUs: round2(sealedMessage.bestUs),
    },
    attachment: {
      bytes: ATTACHMENT_BYTES,
      iterations: FILES,
      plaintextCopyUs: round2(plainFile.medianUs),
      sealAndOpenUs: round2(sealedFileTiming.medianUs),
      ratio: round2(fileRatio),
      sealAndOpenMBps: round2(mbPerSec),
    },
    coldSubjectKey: { iterations: KEYS, unwrapAndImportUs: round2(coldKey.medianUs) },
  };

  const line = (label: string, value: string) => process.stdout.write(`${label.padEnd(48)} ${value}\n`);
  process.stdout.write(`Node ${process.version} on ${results.cpu}; medians of ${ROUNDS} rounds\n\n`);
  process.stdout.write(`Chat message (${results.message.bytes} B stored body), write + read, ${MESSAGES} per round\n`);
  line("  plaintext (JSON + UTF-8)", `${results.message.plaintextUs.toFixed(2)} µs/message`);
  line("  sealed under the subject key (AES-256-GCM)", `${results.message.sealedUs.toFixed(2)} µs/message`);
  line("  overhead", `+${results.message.overheadUs.toFixed(2)} µs/message (×${results.message.ratio.toFixed(2)})`);
  line("  seal only / open only", `${results.message.sealUs.toFixed(2)} / ${results.message.openUs.toFixed(2)} µs`);
  process.stdout.write(`\nAttachment (1 MiB), store + read, ${FILES} per round\n`);
  line("  plaintext (byte copy)", `${results.attachment.plaintextCopyUs.toFixed(0)} µs/file`);
  line("  sealFile + openFile", `${results.attachment.sealAndOpenUs.toFixed(0)} µs/file (×${results.attachment.ratio.toFixed(2)}, ${results.attachment.sealAndOpenMBps.toFixed(0)} MB/s through both)`);
  process.stdout.write("\nCold subject key (once per conversation object per cache period)\n");
  line("  unwrap from MASTER_KEY + import", `${results.coldSubjectKey.unwrapAndImportUs.toFixed(2)} µs`);

  writeFileSync(resultsPath("encryption.json"), `${JSON.stringify(results, null, 2)}\n`);
  // `sink` keeps the baselines' work observable, so it cannot be optimised away.
  process.stdout.write(`\nwrote ${resultsPath("encryption.json")} (checksum ${sink % 1000})\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
