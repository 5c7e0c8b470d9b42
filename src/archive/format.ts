/**
 * Encoding and decoding of a whole clip archive file: header (header.ts), protobuf body (body-codec.ts,
 * body-decoder.ts, and entry-table.ts for the entries of decodeArchiveAsync) and the archive's rules
 * (validate.ts). Each direction has a synchronous form and an
 * async one that does the same work in slices of about 10 ms (slices.ts). Both directions validate, so no invalid archive
 * is ever written and none is ever handed to a caller. Decoding stays within the archive limits
 * (limits.ts): the header's fields are checked before the checksum is computed, and the body is decoded
 * entry by entry, failing at the first one over a limit. Encoding is deterministic: equal archives give
 * equal bytes.
 */
import { encodeBody } from './body-codec';
import { decodeBody, decodeEntries } from './body-decoder';
import { checkEntries } from './entry-table';
import { HEADER_SIZE, frameSteps, unframeBody } from './header';
import { archiveLimits, type ArchiveLimits } from './limits';
import type { ArchiveEntry, ClipArchive } from './types';
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
  const file = yield* frameSteps(yield* encodeBody(archive), archive.startupBundle ? 1 : 0);
  bodies.set(archive, { body: file.subarray(HEADER_SIZE), entries: archive.entries });
  return file;
}

/**
 * The encoded body each archive was last decoded from or encoded to. `entries` is the entries array it was
 * encoded from (an archive whose entries were replaced since is encoded again); undefined for a decoded
 * archive, whose entries are decoded from this body when first read.
 */
const bodies = new WeakMap<ClipArchive, { body: Uint8Array; entries?: ArchiveEntry[] }>();

/**
 * The protobuf body of `archive` (docs/format.md): the bytes it was decoded from or last encoded to, or
 * else encoded now. The FUSE table is built from it (entry-table.ts). Entries are never changed in place
 * once an archive is decoded or encoded; an archive whose entries array was replaced is encoded again.
 */
export async function archiveBody(archive: ClipArchive): Promise<Uint8Array> {
  const known = bodies.get(archive);
  if (known && (known.entries === undefined || known.entries === archive.entries)) return known.body;
  return (await encodeArchiveAsync(archive)).subarray(HEADER_SIZE);
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
 * decodeArchive without blocking the event loop for more than about `sliceMs` at a time, for archives from
 * a registry or the archive store, which may hold hundreds of thousands of entries. The same checks, in
 * a different order: the header and every field but the entries in JavaScript, handing the event loop back
 * between slices, then the entries in C on the thread pool (entry-table.ts; a cold process decoding them
 * in JavaScript spent a few hundred ms of CPU on 8000 entries). The entries of the archive returned are
 * decoded from the body in JavaScript when first read (the FUSE server's table is built from the body
 * itself, see archiveBody).
 */
export async function decodeArchiveAsync(file: Buffer, limits: Partial<ArchiveLimits> = {}, sliceMs?: number): Promise<ClipArchive> {
  const within = archiveLimits(limits);
  const { archive, body } = await runInSlices(decodeWithoutEntries(file, within), sliceMs);
  await checkEntries(body, within, archive.uncompressedSize);
  let entries: ArchiveEntry[] | undefined;
  Object.defineProperty(archive, 'entries', {
    enumerable: true,
    configurable: true,
    get: () => (entries ??= decodeEntries(body, within)),
    set: (replaced: ArchiveEntry[]) => {
      entries = replaced;
      bodies.delete(archive);
    },
  });
  bodies.set(archive, { body });
  return archive;
}

function* decodeWithoutEntries(file: Buffer, within: ArchiveLimits): Steps<{ archive: ClipArchive; body: Buffer }> {
  const body = yield* unframeBody(file, within.maxBytes);
  const archive = yield* decodeBody(body, within, false);
  yield* validationSteps(archive, false);
  return { archive, body };
}

function* decodeSteps(file: Buffer, limits: Partial<ArchiveLimits>): Steps<ClipArchive> {
  const within = archiveLimits(limits);
  const body = yield* unframeBody(file, within.maxBytes);
  const archive = yield* decodeBody(body, within);
  yield* validationSteps(archive);
  bodies.set(archive, { body, entries: archive.entries });
  return archive;
}
