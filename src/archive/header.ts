/**
 * The fixed 56-byte header in front of every clip archive body (see docs/format.md). All integers are
 * little-endian.
 *
 *   0  8  magic "\x89CLIP\r\n\x1a"
 *   8  2  major version
 *  10  2  minor version
 *  12  4  flags (none defined in 1.0; readers ignore bits they do not know)
 *  16  8  body length in bytes
 *  24 32  sha256 of header bytes 0-23 followed by the body
 *  56     body (protobuf clip.archive.v1.Archive)
 */
import { createHash } from 'node:crypto';
import { ArchiveFormatError } from './format-error';
import { ArchiveLimitError } from './limits';
import { runToEnd, type Steps } from './slices';

export const MAGIC = Buffer.from([0x89, 0x43, 0x4c, 0x49, 0x50, 0x0d, 0x0a, 0x1a]);
export const HEADER_SIZE = 56;
/** The version this code writes; it reads every 1.x. */
export const FORMAT_VERSION = { major: 1, minor: 1 } as const;

const CHECKSUM_OFFSET = 24;
/** Body bytes hashed between two yields (about 2 ms). */
const HASH_STEP = 1 << 20;

/** Prefixes `body` with a header for FORMAT_VERSION (or an older minor version of it). */
export function frameBody(body: Uint8Array, minor: number = FORMAT_VERSION.minor): Buffer {
  return runToEnd(frameSteps([body], minor));
}

/**
 * frameBody for a body given in parts (concatenated in order), yielding while it hashes the body. Each
 * byte is copied once: the file is allocated at its final size and every byte of it written here.
 */
export function* frameSteps(parts: readonly Uint8Array[], minor: number = FORMAT_VERSION.minor): Steps<Buffer> {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = Buffer.allocUnsafeSlow(HEADER_SIZE + length);
  MAGIC.copy(out, 0);
  out.writeUInt16LE(FORMAT_VERSION.major, 8);
  out.writeUInt16LE(minor, 10);
  out.writeUInt32LE(0, 12);
  out.writeBigUInt64LE(BigInt(length), 16);
  let at = HEADER_SIZE;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  (yield* checksum(out.subarray(0, CHECKSUM_OFFSET), out.subarray(HEADER_SIZE))).copy(out, CHECKSUM_OFFSET);
  return out;
}

export interface ArchiveHeader {
  major: number;
  minor: number;
  flags: number;
  /** Bytes of the body that follows the header. */
  bodyLength: number;
}

/**
 * Checks what the first HEADER_SIZE bytes of an archive say, before the body is fetched or decoded: the
 * magic, the major version, and that the whole file (header + body length) fits in `maxBytes`. `head` may
 * be the whole file or just its beginning; fewer than HEADER_SIZE bytes is an error (truncated).
 */
export function checkArchiveHeader(head: Buffer, maxBytes: number): ArchiveHeader {
  const magicSeen = head.subarray(0, MAGIC.length);
  if (!magicSeen.equals(MAGIC.subarray(0, magicSeen.length))) {
    throw new ArchiveFormatError(`not a clip archive (bad magic ${magicSeen.toString('hex')})`);
  }
  if (head.length < HEADER_SIZE) {
    throw new ArchiveFormatError(`truncated: ${head.length} bytes, shorter than the ${HEADER_SIZE}-byte header`);
  }
  const major = head.readUInt16LE(8);
  const minor = head.readUInt16LE(10);
  if (major !== FORMAT_VERSION.major) {
    throw new ArchiveFormatError(
      `unsupported format version ${major}.${minor} (this reader supports ${FORMAT_VERSION.major}.x)`,
    );
  }
  const bodyLength = head.readBigUInt64LE(16);
  if (bodyLength > BigInt(maxBytes - HEADER_SIZE)) {
    throw new ArchiveLimitError(`the header announces a ${bodyLength}-byte body`, 'maxBytes', maxBytes);
  }
  return { major, minor, flags: head.readUInt32LE(12), bodyLength: Number(bodyLength) };
}

/**
 * Checks the header of `file` (magic, version, size limit, length, checksum) and returns the body within
 * it. The checksum is computed only once the header's fields passed.
 */
export function* unframeBody(file: Buffer, maxBytes: number): Steps<Buffer> {
  const { bodyLength } = checkArchiveHeader(file, maxBytes);
  const present = file.length - HEADER_SIZE;
  if (bodyLength > present) {
    throw new ArchiveFormatError(`truncated: header says the body is ${bodyLength} bytes, only ${present} present`);
  }
  if (bodyLength < present) {
    throw new ArchiveFormatError(`${present - bodyLength} unexpected bytes after the ${bodyLength}-byte body`);
  }
  const body = file.subarray(HEADER_SIZE);
  const want = file.subarray(CHECKSUM_OFFSET, HEADER_SIZE);
  const got = yield* checksum(file.subarray(0, CHECKSUM_OFFSET), body);
  if (!got.equals(want)) {
    throw new ArchiveFormatError(
      `checksum mismatch (header says sha256 ${want.toString('hex')}, content has ${got.toString('hex')}): corrupted or tampered with`,
    );
  }
  return body;
}

/** sha256 of the header's first bytes and the body, yielding every HASH_STEP bytes. */
function* checksum(header: Uint8Array, body: Uint8Array): Steps<Buffer> {
  const hash = createHash('sha256').update(header);
  for (let at = 0; at < body.length; at += HASH_STEP) {
    hash.update(body.subarray(at, at + HASH_STEP));
    yield;
  }
  return hash.digest();
}
