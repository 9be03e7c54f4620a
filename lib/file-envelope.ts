/**
 * Envelope encryption of stored files (attachments): each file is encrypted
 * with AES-256-GCM under a fresh 256-bit data key, and that data key is wrapped
 * (AES-256-GCM, `v1.<keyId>.<iv>.<ct>` envelope) by a longer-lived wrapping key
 * — the data subject's key — whose id travels with the object. Destroying the
 * wrapping key makes every file under it unreadable (crypto-shredding).
 *
 * Both layers are bound to the object's storage key through the GCM associated
 * data, so bytes or a wrapped key copied to another object fail to open.
 * Pure: Web Crypto only (no Workers imports), usable from Node as well.
 */
import { DecryptionError, envelopeKeyId, openBytes, sealBytes } from "./crypto";
import { newDataKey, openObject, sealObject } from "./consent/sealed-object";

/** Cipher recorded next to every file. */
export const FILE_CIPHER = "AES-256-GCM";
/** Format of the stored bytes: `iv (12) || ciphertext || tag (16)`, data key wrapped in the metadata. */
export const FILE_FORMAT = "file-v1";

/**
 * What a reader needs besides the bytes, stored as the object's custom metadata
 * (string values only). It names keys, never people.
 */
export interface FileMetadata {
  cipher: string;
  format: string;
  /** Id of the wrapping key (the subject key). */
  keyId: string;
  /** The file's data key, wrapped by the wrapping key (an envelope naming `keyId`). */
  dataKey: string;
}

/** A sealed file: the bytes to store and the metadata to store with them. */
export interface SealedFile {
  body: Uint8Array<ArrayBuffer>;
  metadata: FileMetadata;
}

const contentBinding = (binding: string) => `file:${binding}`;
const keyBinding = (binding: string) => `file-key:${binding}`;

/**
 * Encrypts `plaintext` under a fresh data key and wraps that key with
 * `wrappingKey`. `binding` is the object's storage key (or anything naming its
 * one true location).
 */
export async function sealFile(wrappingKey: CryptoKey, wrappingKeyId: string, plaintext: Uint8Array<ArrayBuffer>, binding: string): Promise<SealedFile> {
  const dataKey = newDataKey();
  try {
    const body = await sealObject(dataKey, plaintext, contentBinding(binding));
    const wrapped = await sealBytes(wrappingKey, wrappingKeyId, dataKey, keyBinding(binding));
    return { body, metadata: { cipher: FILE_CIPHER, format: FILE_FORMAT, keyId: wrappingKeyId, dataKey: wrapped } };
  } finally {
    dataKey.fill(0);
  }
}

/**
 * Reads file metadata from an object's custom metadata; throws
 * {@link DecryptionError} when it is missing, of another format, or its
 * wrapped data key does not name the recorded key id.
 */
export function parseFileMetadata(custom: Readonly<Record<string, string>> | undefined): FileMetadata {
  const cipher = custom?.cipher;
  const format = custom?.format;
  const keyId = custom?.keyId;
  const dataKey = custom?.dataKey;
  if (cipher !== FILE_CIPHER || format !== FILE_FORMAT) throw new DecryptionError("object is not a sealed file of a known format");
  if (!keyId || !dataKey) throw new DecryptionError("sealed file metadata is incomplete");
  if (envelopeKeyId(dataKey) !== keyId) throw new DecryptionError("sealed file metadata names two different keys");
  return { cipher, format, keyId, dataKey };
}

/**
 * Decrypts a file sealed by {@link sealFile}. Throws {@link DecryptionError}
 * when the metadata or bytes were altered, the wrong key is given, or the
 * object was moved to another storage key.
 */
export async function openFile(wrappingKey: CryptoKey, metadata: FileMetadata, body: Uint8Array<ArrayBuffer>, binding: string): Promise<Uint8Array<ArrayBuffer>> {
  if (metadata.cipher !== FILE_CIPHER || metadata.format !== FILE_FORMAT) throw new DecryptionError("object is not a sealed file of a known format");
  if (envelopeKeyId(metadata.dataKey) !== metadata.keyId) throw new DecryptionError("sealed file metadata names two different keys");
  const dataKey = await openBytes(wrappingKey, metadata.dataKey, keyBinding(binding));
  try {
    return await openObject(dataKey, body, contentBinding(binding));
  } finally {
    dataKey.fill(0);
  }
}

/** Custom metadata as R2 stores it (a plain string record). */
export function fileMetadataRecord(metadata: FileMetadata): Record<string, string> {
  return { cipher: metadata.cipher, format: metadata.format, keyId: metadata.keyId, dataKey: metadata.dataKey };
}
