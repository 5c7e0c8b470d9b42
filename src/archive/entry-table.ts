/**
 * The one door to the clip_archive native addon (native/layer_table.c, built by `npm run build:native`):
 * an archive body's entries checked against the format's entry rules and the archive limits
 * (docs/format.md "Validation", docs/limits.md) and decoded into the table the native FUSE server answers
 * from (format at the top of src/fusefs/native/clip_fuse.c), in C, on the libuv thread pool. A cold daemon
 * does this for 8000 entries in a few ms of CPU, where JavaScript decoding, a tree of objects and the table
 * encoder took several hundred (V8 runs that code once, before it has optimised it).
 */
import path from 'node:path';
import { InternalError } from '../errors';
import { lazyAddon } from '../native-addon';
import { ArchiveFormatError } from './format-error';
import { ArchiveLimitError, type ArchiveLimits, type ContentLimits } from './limits';

interface NativeResult {
  entryCount: number;
  problemCount: number;
  problems: string[];
  table?: Buffer;
  error?: 'format' | 'limit';
  message?: string;
  limit?: keyof ArchiveLimits;
  limitValue?: number;
}

interface Addon {
  buildLayerTable(
    body: Buffer,
    options: {
      maxEntries: number;
      maxPathBytes: number;
      maxNameBytes: number;
      maxMetadataBytes: number;
      uncompressedSize: number;
      bounds: Float64Array;
      opaqueXattrNames: readonly string[];
      table: boolean;
    },
  ): Promise<NativeResult>;
}

const loaded = lazyAddon<Addon>(path.join(__dirname, 'native', 'clip_archive.node'), 'archive addon');

export type EntryLimits = Pick<ContentLimits, 'maxEntries' | 'maxPathBytes' | 'maxNameBytes' | 'maxMetadataBytes'>;

export interface LayerTableInput {
  limits: EntryLimits;
  uncompressedSize: number;
  /** Span i is [bounds[i], bounds[i + 1]) of the uncompressed layer stream. */
  bounds: readonly number[];
  /** xattr names an opaque directory reports with the value "y". */
  opaqueXattrNames: readonly string[];
}

export interface LayerTable {
  /** The table, for NativeLayerServer. */
  bytes: Buffer;
  entryCount: number;
  /** Entries that could not be applied (a hard link to a name replaced since, a name inside a whiteout, ...). */
  problemCount: number;
  /** The first few of them, "path: what". */
  problems: string[];
}

async function run(body: Uint8Array, input: LayerTableInput, table: boolean): Promise<NativeResult> {
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const { maxEntries, maxPathBytes, maxNameBytes, maxMetadataBytes } = input.limits;
  const result = await loaded().buildLayerTable(bytes, {
    maxEntries,
    maxPathBytes,
    maxNameBytes,
    maxMetadataBytes,
    uncompressedSize: input.uncompressedSize,
    bounds: Float64Array.from(input.bounds),
    opaqueXattrNames: input.opaqueXattrNames,
    table,
  });
  if (result.error === 'limit') throw new ArchiveLimitError(result.message!, result.limit!, result.limitValue!);
  if (result.error === 'format') throw new ArchiveFormatError(result.message!);
  return result;
}

/**
 * Checks every entry of an archive body (wire format, limits, entry rules, hard links to earlier entries);
 * resolves with the number of entries, or rejects with an ArchiveFormatError (an ArchiveLimitError for a
 * limit).
 */
export async function checkEntries(body: Uint8Array, limits: EntryLimits, uncompressedSize: number): Promise<number> {
  return (await run(body, { limits, uncompressedSize, bounds: [], opaqueXattrNames: [] }, false)).entryCount;
}

/** The FUSE server's table of an archive body, checked as checkEntries checks it. */
export async function buildLayerTable(body: Uint8Array, input: LayerTableInput): Promise<LayerTable> {
  const { table, entryCount, problemCount, problems } = await run(body, input, true);
  if (!table) throw new InternalError('layer table: the addon returned no table');
  return { bytes: table, entryCount, problemCount, problems };
}
