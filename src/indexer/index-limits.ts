/**
 * The limits on one layer while it is indexed (docs/limits.md), so that a small hostile blob cannot make
 * clip keep a huge heap, fill its cache or produce an archive no reader would take. They include the
 * archive's content limits (src/archive/limits.ts), so an archive clip builds always decodes within them.
 * Each is a daemon setting (`[limits]`); an excess is an IndexLimitError naming the setting, and the
 * caller falls back to containerd's normal unpack.
 */
import { DEFAULT_CONTENT_LIMITS, LIMIT_SETTINGS, pathLengthProblem, withoutUndefined, type ContentLimits } from '../archive/limits';
import { InvalidArgumentError } from '../errors';
import { IndexLimitError } from './errors';

export interface IndexLimits extends ContentLimits {
  /** Bytes of the PAX ('x') and GNU long name/link ('L', 'K') records of one entry together (limits.max_pax_size). */
  maxPaxBytes: number;
  /** Uncompressed bytes of one layer (limits.max_layer_size). */
  maxLayerBytes: number;
  /** Uncompressed bytes per compressed byte of a zstd layer, past the grace size (limits.max_zstd_ratio). */
  maxZstdRatio: number;
  /** Uncompressed bytes of a zstd layer before its ratio is checked (limits.zstd_ratio_grace_size). */
  zstdRatioGraceBytes: number;
}

const MIB = 1024 * 1024;

export const DEFAULT_INDEX_LIMITS: Readonly<IndexLimits> = Object.freeze({
  ...DEFAULT_CONTENT_LIMITS,
  maxPaxBytes: 1 * MIB,
  maxLayerBytes: 64 * 1024 * MIB,
  maxZstdRatio: 1000,
  zstdRatioGraceBytes: 64 * MIB,
});

export const INDEX_LIMIT_SETTINGS: Readonly<Record<keyof IndexLimits, string>> = Object.freeze({
  ...LIMIT_SETTINGS,
  maxPaxBytes: 'limits.max_pax_size',
  maxLayerBytes: 'limits.max_layer_size',
  maxZstdRatio: 'limits.max_zstd_ratio',
  zstdRatioGraceBytes: 'limits.zstd_ratio_grace_size',
});

/** The defaults with `overrides` applied; every value must be a positive safe integer. */
export function indexLimits(overrides: Partial<IndexLimits> = {}): IndexLimits {
  const limits = { ...DEFAULT_INDEX_LIMITS, ...withoutUndefined(overrides) };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new InvalidArgumentError(`invalid limit ${name} = ${String(value)} (want a positive integer)`);
  }
  return limits;
}

/** The error for an excess of `limit`. */
export function limitError(detail: string, limits: IndexLimits, limit: keyof IndexLimits): IndexLimitError {
  return new IndexLimitError(detail, INDEX_LIMIT_SETTINGS[limit], limits[limit]);
}

/** Counts a layer's entries and the metadata they keep (paths, link targets, xattrs) against the limits. */
export class EntryBudget {
  private entries = 0;
  private metadataBytes = 0;

  constructor(private readonly limits: IndexLimits) {}

  /** Throws IndexLimitError if the entry at tar offset `at` goes over a limit. */
  add(at: number, path: string, linkTarget: string, xattrs: Record<string, Buffer>): void {
    const { limits } = this;
    if (++this.entries > limits.maxEntries) throw limitError(`tar entry at offset ${at}: more than ${limits.maxEntries} entries`, limits, 'maxEntries');
    let bytes = this.checkLength(at, 'path', path);
    if (linkTarget !== '') bytes += this.checkLength(at, 'link target', linkTarget);
    for (const name in xattrs) bytes += Buffer.byteLength(name) + xattrs[name]!.length;
    this.metadataBytes += bytes;
    if (this.metadataBytes > limits.maxMetadataBytes) {
      throw limitError(`tar entry at offset ${at}: paths, link targets and xattrs take more than ${limits.maxMetadataBytes} bytes`, limits, 'maxMetadataBytes');
    }
  }

  private checkLength(at: number, what: string, text: string): number {
    const bytes = Buffer.byteLength(text);
    const excess = pathLengthProblem(text, this.limits, bytes);
    if (excess !== undefined) throw limitError(`tar entry at offset ${at}: ${what} ${excess.problem}`, this.limits, excess.limit);
    return bytes;
  }
}

/** Checks the size of the uncompressed stream so far against the layer's limits. */
export function checkLayerGrowth(limits: IndexLimits, compression: string, uncompressed: number, compressed: number): void {
  if (uncompressed > limits.maxLayerBytes) {
    throw limitError(`layer: more than ${limits.maxLayerBytes} bytes uncompressed`, limits, 'maxLayerBytes');
  }
  if (compression === 'zstd' && uncompressed > limits.zstdRatioGraceBytes && uncompressed > limits.maxZstdRatio * compressed) {
    throw limitError(
      `zstd layer: ${compressed} compressed bytes expanded to ${uncompressed} bytes, more than ${limits.maxZstdRatio} times as many`,
      limits,
      'maxZstdRatio',
    );
  }
}
