/**
 * Encodes archive entries one at a time, in the form the archive body stores them (docs/format.md): each
 * as an Archive.entries field, delta-encoded against the previous entry (the path front-coded, mtime and
 * data offset as differences). encodeBody uses it for the entries of an archive; the indexer feeds it each
 * entry as the tar stream yields it, while the thread pool inflates and hashes, so that encoding the
 * archive once the layer is indexed no longer waits for the entries (a few thousand of them take tens of
 * milliseconds in a process whose encoder is not compiled yet), see rememberEncodedEntries.
 */
import { BinaryWriter } from '@bufbuild/protobuf/wire';
import { Entry as EntryBody, EntryType as EntryTypeBody } from '../generated/clip/archive/v1/archive';
import type { ArchiveEntry, EntryType } from './types';

/** Wire tag (field number << 3 | length-delimited) of Archive.entries. */
const ENTRIES_TAG = (7 << 3) | 2;

export const ENTRY_TYPE_TO_BODY: Record<EntryType, EntryTypeBody> = {
  file: EntryTypeBody.ENTRY_TYPE_FILE,
  dir: EntryTypeBody.ENTRY_TYPE_DIR,
  symlink: EntryTypeBody.ENTRY_TYPE_SYMLINK,
  hardlink: EntryTypeBody.ENTRY_TYPE_HARDLINK,
  char: EntryTypeBody.ENTRY_TYPE_CHAR,
  block: EntryTypeBody.ENTRY_TYPE_BLOCK,
  fifo: EntryTypeBody.ENTRY_TYPE_FIFO,
};

export class EntryEncoder {
  private readonly writer = new BinaryWriter();
  private prevPath: Buffer = Buffer.alloc(0);
  private prevMtimeMs = 0;
  private prevEnd = 0;
  private added = 0;

  /** Entries encoded so far. */
  get count(): number {
    return this.added;
  }

  add(e: ArchiveEntry): void {
    const path = Buffer.from(e.path, 'utf8');
    const prefix = sharedPrefixLength(this.prevPath, path);
    const body: EntryBody = {
      pathPrefix: prefix,
      pathSuffix: path.subarray(prefix),
      type: ENTRY_TYPE_TO_BODY[e.type],
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size: e.size,
      mtimeMsDelta: e.mtimeMs - this.prevMtimeMs,
      dataOffsetDelta: e.dataOffset - this.prevEnd,
      linkTarget: e.linkTarget,
      devMajor: e.devMajor,
      devMinor: e.devMinor,
      xattrs: sortedXattrs(e.xattrs),
    };
    EntryBody.encode(body, this.writer.uint32(ENTRIES_TAG).fork()).join();
    this.prevPath = path;
    this.prevMtimeMs = e.mtimeMs;
    this.prevEnd = e.dataOffset + e.size;
    this.added++;
  }

  /** The encoded entries, in the order added. The encoder starts over afterwards. */
  finish(): Uint8Array {
    const bytes = this.writer.finish();
    this.prevPath = Buffer.alloc(0);
    this.prevMtimeMs = 0;
    this.prevEnd = 0;
    this.added = 0;
    return bytes;
  }
}

/**
 * Entry lists encoded ahead of time, with how many entries the bytes hold, until the archive is encoded.
 * An entry list is never changed in place once built (format.ts); one that grew since is encoded again.
 */
const encodedEntries = new WeakMap<readonly ArchiveEntry[], { bytes: Uint8Array; count: number }>();

/** Records that `entries` encode to `bytes` (an EntryEncoder's output for exactly these entries, in order). */
export function rememberEncodedEntries(entries: readonly ArchiveEntry[], bytes: Uint8Array): void {
  encodedEntries.set(entries, { bytes, count: entries.length });
}

/** The bytes rememberEncodedEntries recorded for `entries` if they still cover all of them, forgotten now. */
export function takeEncodedEntries(entries: readonly ArchiveEntry[]): Uint8Array | undefined {
  const known = encodedEntries.get(entries);
  encodedEntries.delete(entries);
  return known !== undefined && known.count === entries.length ? known.bytes : undefined;
}

function sharedPrefixLength(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Xattrs in name order, so that equal archives encode to equal bytes. */
function sortedXattrs(xattrs: Record<string, Buffer>): Record<string, Buffer> {
  const sorted: Record<string, Buffer> = {};
  for (const name of Object.keys(xattrs).sort()) sorted[name] = xattrs[name]!;
  return sorted;
}
