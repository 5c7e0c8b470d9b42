/**
 * Encoding and decoding of a whole clip archive file: header (header.ts), protobuf body (body-codec.ts,
 * body-decoder.ts) and the archive's rules (validate.ts). Each direction has a synchronous form and an
 * async one that does the same work in slices of about 10 ms (slices.ts). Both directions validate, so no invalid archive
 * is ever written and none is ever handed to a caller. Decoding stays within the archive limits
 * (limits.ts): the header's fields are checked before the checksum is computed, and the body is decoded
 * entry by entry, failing at the first one over a limit. Encoding is deterministic: equal archives give
 * equal bytes.
 */
import { encodeBody } from './body-codec';
import { decodeBody } from './body-decoder';
import { frameSteps, unframeBody } from './header';
import { archiveLimits, type ArchiveLimits } from './limits';
import type { ClipArchive } from './types';
import { runInSlices, runToEnd, type Steps } from './slices';
import { validationSteps } from './validate';

/** The file bytes of `archive`; throws ArchiveFormatError if the archive breaks the format's rules. */
export function encodeArchive(archive: ClipArchive): Buffer {
  return runToEnd(encodeSteps(archive));
}

/** encodeArchive without holding the event loop for more than about `sliceMs` at a time. */
export function encodeArchiveAsync(archive: ClipArchive, sliceMs?: number): Promise<Buffer> {
  return runInSlices(encodeSteps(archive), sliceMs);
}

function* encodeSteps(archive: ClipArchive): Steps<Buffer> {
  yield* validationSteps(archive);
  // An archive that uses nothing of 1.1 (the start-up bundle) is written as 1.0, byte for byte as before.
  return yield* frameSteps(yield* encodeBody(archive), archive.startupBundle ? 1 : 0);
}

/**
 * The archive in `file`; throws ArchiveFormatError if it is not a valid clip archive this reader supports,
 * ArchiveLimitError (a kind of ArchiveFormatError) if it breaks one of `limits` (default
 * DEFAULT_ARCHIVE_LIMITS, each field overridable).
 */
export function decodeArchive(file: Buffer, limits: Partial<ArchiveLimits> = {}): ClipArchive {
  return runToEnd(decodeSteps(file, limits));
}

/**
 * decodeArchive without blocking the event loop for more than about `sliceMs` at a time: the same work,
 * handed back to the event loop between slices. For archives from a registry or the archive store, which
 * may hold hundreds of thousands of entries (a 200 000-entry archive takes several hundred ms to decode).
 */
export function decodeArchiveAsync(file: Buffer, limits: Partial<ArchiveLimits> = {}, sliceMs?: number): Promise<ClipArchive> {
  return runInSlices(decodeSteps(file, limits), sliceMs);
}

function* decodeSteps(file: Buffer, limits: Partial<ArchiveLimits>): Steps<ClipArchive> {
  const within = archiveLimits(limits);
  const body = yield* unframeBody(file, within.maxBytes);
  const archive = yield* decodeBody(body, within);
  yield* validationSteps(archive);
  return archive;
}
