/**
 * The encrypted backup container (pure: Web Crypto and Web Streams only, no
 * Workers imports).
 *
 * A backup object is a stream of JSON lines, gzip-compressed, then encrypted in
 * frames with AES-256-GCM under a fresh random data key. The data key is
 * wrapped by MASTER_KEY (the `v1.<keyId>.<iv>.<ct>` envelope of lib/crypto),
 * bound to the backup's id, so an object copied under another backup's row
 * cannot be opened. Layout:
 *
 *     "PRLYBAK1"                     8 bytes, magic
 *     uint32 BE                      header length
 *     header                         UTF-8 JSON (format, cipher, key id, wrapped data key); no identifiers
 *     frame*                         uint32 BE (ciphertext length | 0x80000000 on the last frame), ciphertext+tag
 *
 * Frame i is encrypted with IV = 0x00000000 || uint64 BE i (a data key is
 * never reused across backups, so counter IVs are unique) and associated data
 * binding the backup id, the SHA-256 of the header, i and the "last frame"
 * flag. Reordered, dropped, duplicated, truncated or appended frames, a changed
 * header and any flipped bit all fail authentication. Readers only ever hand
 * authenticated plaintext to the decompressor.
 */
import { openBytes, randomBytes, sealBytes, sha256Hex } from "./crypto";
import { fromUtf8, utf8 } from "./encoding";

export const BACKUP_MAGIC = "PRLYBAK1";
/** Plaintext bytes per encrypted frame. */
export const DEFAULT_FRAME_SIZE = 64 * 1024;
const MAX_FRAME_SIZE = 4 * 1024 * 1024;
const MAX_HEADER_BYTES = 16 * 1024;
const FINAL_FLAG = 0x80000000;
const TAG_BYTES = 16;
/** Longest JSON line a reader accepts (a very large conversation snapshot). */
const MAX_LINE_CHARS = 64 * 1024 * 1024;

/** The object is not a backup this code can open: tampered, truncated, wrong key or malformed. */
export class BackupIntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BackupIntegrityError";
  }
}

/** The backup was sealed under a master key that is no longer configured (neither MASTER_KEY nor MASTER_KEY_PREVIOUS). */
export class BackupKeyUnavailableError extends BackupIntegrityError {
  constructor(readonly keyId: string) {
    super(`backup is encrypted under master key ${keyId}, which is not configured`);
    this.name = "BackupKeyUnavailableError";
  }
}

/** The clear-text header of a backup object (no identifiers, nothing secret). */
export interface BackupHeader {
  format: "parley-backup";
  version: 1;
  cipher: "AES-256-GCM";
  compression: "gzip";
  frameSize: number;
  /** Id of the MASTER_KEY that wraps the data key. */
  keyId: string;
  /** The data key, wrapped by MASTER_KEY and bound to the backup id. */
  wrappedKey: string;
}

/** R2 custom metadata of a backup object: the format and the wrapping key's id, nothing else. */
export function backupObjectMetadata(keyId: string): Record<string, string> {
  return { format: "parley-backup-v1", cipher: "AES-256-GCM", compression: "gzip", keyId };
}

const keyBinding = (backupId: string) => `backup-data-key:${backupId}`;

function frameIv(index: number): Uint8Array<ArrayBuffer> {
  const iv = new Uint8Array(12);
  new DataView(iv.buffer).setBigUint64(4, BigInt(index));
  return iv;
}

function frameAad(backupId: string, headerHash: string, index: number, final: boolean): Uint8Array<ArrayBuffer> {
  return utf8(`parley-backup/v1\n${backupId}\n${headerHash}\n${index}\n${final ? 1 : 0}`);
}

/** A FIFO of byte chunks that hands out exact-length slices. */
export class ByteQueue {
  #chunks: Uint8Array[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.#chunks.push(chunk);
    this.#length += chunk.byteLength;
  }

  /** The first `n` bytes without consuming them (n ≤ length). */
  peek(n: number): Uint8Array<ArrayBuffer> {
    return this.#copy(n, false);
  }

  /** Removes and returns the first `n` bytes (n ≤ length). */
  take(n: number): Uint8Array<ArrayBuffer> {
    return this.#copy(n, true);
  }

  #copy(n: number, consume: boolean): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(n);
    let filled = 0;
    let i = 0;
    while (filled < n) {
      const chunk = this.#chunks[i];
      if (!chunk) throw new Error("ByteQueue underflow");
      const part = Math.min(n - filled, chunk.byteLength);
      out.set(chunk.subarray(0, part), filled);
      filled += part;
      if (consume) {
        if (part === chunk.byteLength) this.#chunks.shift();
        else this.#chunks[0] = chunk.subarray(part);
      } else {
        i += 1;
      }
    }
    if (consume) this.#length -= n;
    return out;
  }
}

export interface SealOptions {
  masterKey: CryptoKey;
  masterKeyId: string;
  /** The backup's id: the wrapped data key and every frame are bound to it. */
  backupId: string;
  frameSize?: number;
}

/**
 * A transform that encrypts a byte stream into the container format with a
 * fresh data key (wrapped by the master key; the raw key never leaves memory).
 */
export async function encryptingStream(options: SealOptions): Promise<TransformStream<Uint8Array, Uint8Array>> {
  const frameSize = options.frameSize ?? DEFAULT_FRAME_SIZE;
  if (!Number.isInteger(frameSize) || frameSize < 1 || frameSize > MAX_FRAME_SIZE) throw new Error("invalid frame size");
  const raw = randomBytes(32);
  const wrappedKey = await sealBytes(options.masterKey, options.masterKeyId, raw, keyBinding(options.backupId));
  const dataKey = await crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["encrypt"]);
  raw.fill(0);
  const header: BackupHeader = { format: "parley-backup", version: 1, cipher: "AES-256-GCM", compression: "gzip", frameSize, keyId: options.masterKeyId, wrappedKey };
  const headerBytes = utf8(JSON.stringify(header));
  const headerHash = await sha256Hex(headerBytes);
  const prefix = new Uint8Array(8 + 4 + headerBytes.byteLength);
  prefix.set(utf8(BACKUP_MAGIC), 0);
  new DataView(prefix.buffer).setUint32(8, headerBytes.byteLength);
  prefix.set(headerBytes, 12);

  const pending = new ByteQueue();
  let index = 0;
  const seal = async (plain: Uint8Array<ArrayBuffer>, final: boolean): Promise<Uint8Array> => {
    const ciphertext = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-GCM", iv: frameIv(index), additionalData: frameAad(options.backupId, headerHash, index, final) }, dataKey, plain),
    );
    index += 1;
    const frame = new Uint8Array(4 + ciphertext.byteLength);
    new DataView(frame.buffer).setUint32(0, ciphertext.byteLength + (final ? FINAL_FLAG : 0));
    frame.set(ciphertext, 4);
    return frame;
  };
  return new TransformStream<Uint8Array, Uint8Array>({
    start(controller) {
      controller.enqueue(prefix);
    },
    async transform(chunk, controller) {
      pending.push(chunk);
      while (pending.length >= frameSize) controller.enqueue(await seal(pending.take(frameSize), false));
    },
    async flush(controller) {
      // The last frame may be empty: it still carries the authenticated "last" flag.
      controller.enqueue(await seal(pending.take(pending.length), true));
    },
  });
}

export interface OpenOptions {
  /** The master key with this id (current or, during a rotation, previous), or null when none is configured. */
  masterKeyFor: (keyId: string) => Promise<CryptoKey | null>;
  backupId: string;
}

function parseHeader(bytes: Uint8Array<ArrayBuffer>): BackupHeader {
  let value: unknown;
  try {
    value = JSON.parse(fromUtf8(bytes));
  } catch {
    throw new BackupIntegrityError("backup header is not valid JSON");
  }
  const h = value as Partial<BackupHeader> | null;
  if (
    !h ||
    h.format !== "parley-backup" ||
    h.version !== 1 ||
    h.cipher !== "AES-256-GCM" ||
    h.compression !== "gzip" ||
    typeof h.frameSize !== "number" ||
    !Number.isInteger(h.frameSize) ||
    h.frameSize < 1 ||
    h.frameSize > MAX_FRAME_SIZE ||
    typeof h.keyId !== "string" ||
    typeof h.wrappedKey !== "string"
  ) {
    throw new BackupIntegrityError("backup header is not a supported format");
  }
  return h as BackupHeader;
}

/**
 * A transform that authenticates and decrypts a container back to the
 * compressed byte stream. Any failure errors the stream with a
 * {@link BackupIntegrityError}; nothing unauthenticated is ever emitted.
 */
export function decryptingStream(options: OpenOptions, onFailure?: (err: unknown) => void): TransformStream<Uint8Array, Uint8Array> {
  const buffer = new ByteQueue();
  let header: BackupHeader | null = null;
  let headerHash = "";
  let dataKey: CryptoKey | null = null;
  let index = 0;
  let finished = false;

  const openHeader = async (): Promise<boolean> => {
    if (buffer.length < 12) return false;
    const start = buffer.peek(12);
    if (fromUtf8(start.subarray(0, 8)) !== BACKUP_MAGIC) throw new BackupIntegrityError("not a Parley backup object (bad magic)");
    const length = new DataView(start.buffer).getUint32(8);
    if (length === 0 || length > MAX_HEADER_BYTES) throw new BackupIntegrityError("backup header length is invalid");
    if (buffer.length < 12 + length) return false;
    buffer.take(12);
    const headerBytes = buffer.take(length);
    header = parseHeader(headerBytes);
    const masterKey = await options.masterKeyFor(header.keyId);
    if (!masterKey) throw new BackupKeyUnavailableError(header.keyId);
    headerHash = await sha256Hex(headerBytes);
    let raw: Uint8Array<ArrayBuffer>;
    try {
      raw = await openBytes(masterKey, header.wrappedKey, keyBinding(options.backupId));
    } catch {
      throw new BackupIntegrityError("backup data key failed authentication (tampered, wrong master key, or not this backup's object)");
    }
    if (raw.byteLength !== 32) throw new BackupIntegrityError("backup data key has the wrong length");
    dataKey = await crypto.subtle.importKey("raw", raw, { name: "AES-GCM" }, false, ["decrypt"]);
    raw.fill(0);
    return true;
  };

  const openFrames = async (controller: TransformStreamDefaultController<Uint8Array>): Promise<void> => {
    if (!header || !dataKey) return;
    while (buffer.length >= 4) {
      if (finished) throw new BackupIntegrityError("data after the last frame");
      const word = new DataView(buffer.peek(4).buffer).getUint32(0);
      const final = word >= FINAL_FLAG;
      const length = final ? word - FINAL_FLAG : word;
      if (length < TAG_BYTES || length > header.frameSize + TAG_BYTES) throw new BackupIntegrityError(`frame ${index} has an invalid length`);
      if (buffer.length < 4 + length) return;
      buffer.take(4);
      const ciphertext = buffer.take(length);
      let plain: ArrayBuffer;
      try {
        plain = await crypto.subtle.decrypt({ name: "AES-GCM", iv: frameIv(index), additionalData: frameAad(options.backupId, headerHash, index, final) }, dataKey, ciphertext);
      } catch {
        throw new BackupIntegrityError(`frame ${index} failed authentication (the object was modified or truncated)`);
      }
      index += 1;
      if (final) finished = true;
      if (plain.byteLength > 0) controller.enqueue(new Uint8Array(plain));
    }
  };

  // Errors crossing native transforms (gunzip, text decoding) may arrive as other objects: report the original too.
  const failing = async (work: () => Promise<void>): Promise<void> => {
    try {
      await work();
    } catch (err) {
      onFailure?.(err);
      throw err;
    }
  };
  return new TransformStream<Uint8Array, Uint8Array>({
    transform: (chunk, controller) =>
      failing(async () => {
        buffer.push(chunk);
        if (!header && !(await openHeader())) return;
        await openFrames(controller);
      }),
    flush: (controller) =>
      failing(async () => {
        if (!header && !(await openHeader())) throw new BackupIntegrityError("backup object is truncated (no complete header)");
        await openFrames(controller);
        if (buffer.length > 0 && finished) throw new BackupIntegrityError("data after the last frame");
        if (!finished) throw new BackupIntegrityError("backup object is truncated (last frame missing)");
      }),
  });
}

/** JSON values a backup record may hold. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Characters of JSON lines gathered before they are handed on as one chunk (per-chunk stream overhead dominates otherwise). */
const LINES_CHUNK_CHARS = 64 * 1024;

/** A byte stream of JSON lines from an async source of records. */
export function jsonLinesStream(records: AsyncIterable<unknown>): ReadableStream<Uint8Array> {
  const iterator = records[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let text = "";
      while (text.length < LINES_CHUNK_CHARS) {
        const next = await iterator.next();
        if (next.done) {
          if (text) controller.enqueue(utf8(text));
          controller.close();
          return;
        }
        text += `${JSON.stringify(next.value)}\n`;
      }
      controller.enqueue(utf8(text));
    },
    async cancel(reason) {
      await iterator.return?.(reason);
    },
  });
}

/** Plain records → gzip → encrypted container bytes. */
export async function sealRecords(records: AsyncIterable<unknown>, options: SealOptions): Promise<ReadableStream<Uint8Array>> {
  return jsonLinesStream(records).pipeThrough(new CompressionStream("gzip")).pipeThrough(await encryptingStream(options));
}

/**
 * Container bytes → authenticated plaintext → gunzip → one parsed record per
 * line. Every failure surfaces as a {@link BackupIntegrityError}.
 */
export async function* openRecords(body: ReadableStream<Uint8Array>, options: OpenOptions): AsyncGenerator<unknown> {
  let failure: unknown = null;
  const decrypt = decryptingStream(options, (err) => {
    failure ??= err;
  });
  const reader = body.pipeThrough(decrypt).pipeThrough(new DecompressionStream("gzip")).pipeThrough(new TextDecoderStream("utf-8", { fatal: true })).getReader();
  let carry = "";
  try {
    for (;;) {
      let step: ReadableStreamReadResult<string>;
      try {
        step = await reader.read();
      } catch (err) {
        if (failure instanceof BackupIntegrityError) throw failure;
        if (err instanceof BackupIntegrityError) throw err;
        if (failure) throw failure; // not an integrity problem (e.g. the R2 read failed): as it is
        throw new BackupIntegrityError(`backup could not be decoded (${err instanceof Error ? err.message : String(err)})`);
      }
      if (step.done) break;
      carry += step.value;
      if (!step.value.includes("\n")) {
        if (carry.length > MAX_LINE_CHARS) throw new BackupIntegrityError("backup record is too long");
        continue;
      }
      const lines = carry.split("\n");
      carry = lines.pop() ?? "";
      for (const line of lines) if (line.length > 0) yield parseLine(line);
      if (carry.length > MAX_LINE_CHARS) throw new BackupIntegrityError("backup record is too long");
    }
    if (carry.length > 0) throw new BackupIntegrityError("backup ends in the middle of a record");
  } finally {
    // Stops the pipeline (and the R2 read) when the consumer leaves early or decoding failed.
    await reader.cancel().catch(() => undefined);
  }
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line) as unknown;
  } catch {
    throw new BackupIntegrityError("backup record is not valid JSON");
  }
}
