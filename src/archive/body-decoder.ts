/**
 * Decodes the protobuf body (proto/clip/archive/v1/archive.proto) into a ClipArchive within the archive
 * limits (limits.ts). The body is read one top-level field at a time: each entry is decoded, front-coded
 * back to its full path and counted as soon as it is read, each checkpoint's window inflated as it is
 * read, so a hostile body fails at the first entry or checkpoint over a limit, before the rest is decoded.
 * The few other fields (digests, sizes, span digests, the start-up profile) are decoded together at the
 * end; their bytes are bounded first. Only wire-level problems and limits are reported here; the
 * archive's rules are checked by validateArchive.
 */
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { inflateRawSync } from 'node:zlib';
import { errorMessage } from '../errors';
import {
  Archive as ArchiveBody,
  Checkpoint as CheckpointBody,
  Entry as EntryBody,
  type StartupBundle as StartupBundleBody,
} from '../generated/clip/archive/v1/archive';
import { COMPRESSION_FROM_BODY, ENTRY_TYPE_FROM_BODY, SHA256_BYTES, SHA256_PREFIX, rememberStoredWindow } from './body-codec';
import { ArchiveFormatError } from './format-error';
import { ArchiveLimitError, pathLengthProblem, type ArchiveLimits } from './limits';
import { ITEMS_PER_STEP, type Steps } from './slices';
import { decodeStartupRanges } from './startup-ranges';
import { MAX_STARTUP_RANGES, type ArchiveEntry, type Checkpoint, type ClipArchive, type StartupBundle } from './types';
import { WINDOW_SIZE } from './validate';

const ENTRIES_FIELD = 7;
const CHECKPOINTS_FIELD = 8;
/**
 * The fields other than entries and checkpoints take at most this much plus PER_CHECKPOINT_BYTES per
 * allowed checkpoint (a span digest is 34 bytes on the wire, a start-up span at most 5); start-up ranges
 * take at most two 10-byte varints each.
 */
const OTHER_FIELDS_BYTES = (64 << 10) + MAX_STARTUP_RANGES * 2 * 10;
const PER_CHECKPOINT_BYTES = 40;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The archive in `body`, decoded within `limits`, yielding every ITEMS_PER_STEP fields; the caller validates
 * it. With `entries` false the entries are skipped (left empty): the caller checks them otherwise
 * (entry-table.ts) and decodes them with decodeEntries when they are needed.
 */
export function* decodeBody(body: Uint8Array, limits: ArchiveLimits, entries = true): Steps<ClipArchive> {
  try {
    return yield* decodeFields(body, limits, entries);
  } catch (err) {
    if (err instanceof ArchiveFormatError) throw err;
    throw new ArchiveFormatError(`malformed body: ${errorMessage(err)}`, { cause: err });
  }
}

/** The entries of `body` alone, decoded within `limits`. */
export function decodeEntries(body: Uint8Array, limits: ArchiveLimits): ArchiveEntry[] {
  const reader = new BinaryReader(body);
  const entries = new EntryDecoder(limits);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === ENTRIES_FIELD && wireType === WireType.LengthDelimited) entries.add(EntryBody.decode(reader, reader.uint32()));
    else reader.skip(wireType, field);
  }
  return entries.entries;
}

function* decodeFields(body: Uint8Array, limits: ArchiveLimits, withEntries: boolean): Steps<ClipArchive> {
  const reader = new BinaryReader(body);
  const entries = new EntryDecoder(limits);
  const checkpoints: Checkpoint[] = [];
  const others: Uint8Array[] = [];
  const maxOtherBytes = OTHER_FIELDS_BYTES + PER_CHECKPOINT_BYTES * limits.maxCheckpoints;
  let otherBytes = 0;
  for (let fields = 1; reader.pos < reader.len; fields++) {
    if (fields % ITEMS_PER_STEP === 0) yield;
    const start = reader.pos;
    const [field, wireType] = reader.tag();
    if (field === ENTRIES_FIELD && wireType === WireType.LengthDelimited) {
      if (withEntries) entries.add(EntryBody.decode(reader, reader.uint32()));
      else skipBytes(reader); // not reader.skip: that makes a subarray of every entry
    } else if (field === CHECKPOINTS_FIELD && wireType === WireType.LengthDelimited) {
      if (checkpoints.length === limits.maxCheckpoints) {
        throw new ArchiveLimitError(`more than ${limits.maxCheckpoints} checkpoints`, 'maxCheckpoints', limits.maxCheckpoints);
      }
      checkpoints.push(checkpointFromBody(CheckpointBody.decode(reader, reader.uint32()), checkpoints.length));
    } else {
      reader.skip(wireType, field);
      otherBytes += reader.pos - start;
      if (otherBytes > maxOtherBytes) {
        throw new ArchiveLimitError(
          `more than ${maxOtherBytes} bytes of fields other than entries and checkpoints`,
          'maxCheckpoints',
          limits.maxCheckpoints,
        );
      }
      others.push(body.subarray(start, reader.pos));
    }
  }
  const rest = ArchiveBody.decode(Buffer.concat(others));
  const compression = COMPRESSION_FROM_BODY.get(rest.compression);
  if (compression === undefined) throw new ArchiveFormatError(`unknown compression ${rest.compression}`);
  checkSpanSizes(checkpoints, rest.uncompressedSize, limits);
  return {
    layerDigest: rest.layerDigest,
    diffId: rest.diffId,
    mediaType: rest.mediaType,
    compression,
    compressedSize: rest.compressedSize,
    uncompressedSize: rest.uncompressedSize,
    entries: entries.entries,
    checkpoints,
    spanDigests: rest.spanSha256.map((d, i) => hexDigest(d, `span ${i} digest`)),
    ...(rest.startupSpans.length > 0 ? { startupSpans: [...rest.startupSpans] } : {}),
    ...(rest.startupRanges.length > 0 ? { startupRanges: decodeStartupRanges(rest.startupRanges, rest.uncompressedSize) } : {}),
    ...(rest.startupBundle !== undefined ? { startupBundle: startupBundleFromBody(rest.startupBundle, limits) } : {}),
  };
}

function hexDigest(d: Uint8Array, what: string): string {
  if (d.length !== SHA256_BYTES) throw new ArchiveFormatError(`${what} is ${d.length} bytes, want ${SHA256_BYTES}`);
  return SHA256_PREFIX + Buffer.from(d).toString('hex');
}

function startupBundleFromBody(b: StartupBundleBody, limits: ArchiveLimits): StartupBundle {
  if (COMPRESSION_FROM_BODY.get(b.compression) !== 'gzip') throw new ArchiveFormatError(`start-up bundle: compression ${b.compression} is not gzip`);
  const max = limits.maxStartupBundleBytes;
  if (b.uncompressedSize > max) {
    throw new ArchiveLimitError(`start-up bundle inflates to ${b.uncompressedSize} bytes`, 'maxStartupBundleBytes', max);
  }
  return {
    digest: hexDigest(b.sha256, 'start-up bundle digest'),
    compressedSize: b.compressedSize,
    uncompressedSize: b.uncompressedSize,
    compression: 'gzip',
    uncompressedDigest: hexDigest(b.uncompressedSha256, 'start-up bundle uncompressed digest'),
  };
}

function skipBytes(reader: BinaryReader): void {
  const length = reader.uint32();
  if (length > reader.len - reader.pos) throw new ArchiveFormatError('malformed body: premature end of a length-delimited field');
  reader.pos += length;
}

/** Front-codes entries back to full paths, counting entries and metadata bytes against the limits. */
class EntryDecoder {
  readonly entries: ArchiveEntry[] = [];
  private prevPath: Buffer = Buffer.alloc(0);
  private prevMtimeMs = 0;
  private prevEnd = 0;
  private metadataBytes = 0;

  constructor(private readonly limits: ArchiveLimits) {}

  add(b: EntryBody): void {
    const { limits } = this;
    const i = this.entries.length;
    const where = `entry ${i}`;
    if (i === limits.maxEntries) throw new ArchiveLimitError(`more than ${limits.maxEntries} entries`, 'maxEntries', limits.maxEntries);
    if (b.pathPrefix > this.prevPath.length) {
      throw new ArchiveFormatError(`${where}: path shares ${b.pathPrefix} bytes with the previous path, which has ${this.prevPath.length}`);
    }
    // Checked before the path is built: front coding lets a few bytes stand for a long path.
    const pathLength = b.pathPrefix + b.pathSuffix.length;
    if (pathLength > limits.maxPathBytes) {
      throw new ArchiveLimitError(`${where}: path is ${pathLength} bytes long`, 'maxPathBytes', limits.maxPathBytes);
    }
    this.count(pathLength, where);
    const pathBytes = b.pathPrefix === 0 ? b.pathSuffix : Buffer.concat([this.prevPath.subarray(0, b.pathPrefix), b.pathSuffix]);
    const path = decodeUtf8(pathBytes, `${where}: path`);
    this.checkLength(path, pathLength, `${where}: path`);
    const type = ENTRY_TYPE_FROM_BODY.get(b.type);
    if (type === undefined) throw new ArchiveFormatError(`${where} (${JSON.stringify(path)}): unknown entry type ${b.type}`);
    if (b.linkTarget !== '') {
      const targetLength = Buffer.byteLength(b.linkTarget);
      this.checkLength(b.linkTarget, targetLength, `${where}: link target`);
      this.count(targetLength, where);
    }
    if (Object.getPrototypeOf(b.xattrs) !== Object.prototype) {
      throw new ArchiveFormatError(`${where} (${JSON.stringify(path)}): xattr name "__proto__" is not "namespace.name"`);
    }
    for (const name in b.xattrs) this.count(Buffer.byteLength(name) + b.xattrs[name]!.length, where);
    const mtimeMs = this.prevMtimeMs + b.mtimeMsDelta;
    const dataOffset = this.prevEnd + b.dataOffsetDelta;
    if (!Number.isSafeInteger(mtimeMs) || !Number.isSafeInteger(dataOffset + b.size)) {
      throw new ArchiveFormatError(`${where} (${JSON.stringify(path)}): mtime or data offset out of range`);
    }
    this.prevPath = pathBytes;
    this.prevMtimeMs = mtimeMs;
    this.prevEnd = dataOffset + b.size;
    this.entries.push({
      path,
      type,
      mode: b.mode,
      uid: b.uid,
      gid: b.gid,
      size: b.size,
      mtimeMs,
      linkTarget: b.linkTarget,
      devMajor: b.devMajor,
      devMinor: b.devMinor,
      xattrs: { ...b.xattrs },
      dataOffset,
    });
  }

  private checkLength(text: string, bytes: number, what: string): void {
    const excess = pathLengthProblem(text, this.limits, bytes);
    if (excess !== undefined) throw new ArchiveLimitError(`${what} ${excess.problem}`, excess.limit, this.limits[excess.limit]);
  }

  private count(bytes: number, where: string): void {
    this.metadataBytes += bytes;
    const max = this.limits.maxMetadataBytes;
    if (this.metadataBytes > max) {
      throw new ArchiveLimitError(`${where}: paths, link targets and xattrs take more than ${max} bytes`, 'maxMetadataBytes', max);
    }
  }
}

function checkpointFromBody(c: CheckpointBody, i: number): Checkpoint {
  return {
    compressedOffset: c.compressedOffset,
    bits: c.bits,
    uncompressedOffset: c.uncompressedOffset,
    window: inflateWindow(c.windowDeflate, `checkpoint ${i}`),
  };
}

/** Spans are read whole into memory: none may be longer than the limit. */
function checkSpanSizes(checkpoints: Checkpoint[], uncompressedSize: number, limits: ArchiveLimits): void {
  checkpoints.forEach((c, i) => {
    const length = (checkpoints[i + 1]?.uncompressedOffset ?? uncompressedSize) - c.uncompressedOffset;
    if (length > limits.maxSpanBytes) {
      throw new ArchiveLimitError(`span ${i} is ${length} bytes long`, 'maxSpanBytes', limits.maxSpanBytes);
    }
  });
}

function inflateWindow(deflated: Buffer, where: string): Buffer {
  if (deflated.length === 0) return deflated;
  try {
    const window = inflateRawSync(deflated, { maxOutputLength: WINDOW_SIZE });
    rememberStoredWindow(window, deflated);
    return window;
  } catch (err) {
    const detail = (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
      ? `inflates to more than ${WINDOW_SIZE} bytes`
      : `does not inflate: ${errorMessage(err)}`;
    throw new ArchiveFormatError(`${where}: window ${detail}`, { cause: err });
  }
}

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return utf8.decode(bytes);
  } catch (err) {
    throw new ArchiveFormatError(`${what} is not valid UTF-8`, { cause: err });
  }
}
