/**
 * Background verification of published archives (`[lazy] verify_published = "background"`,
 * docs/security.md). A published archive is trusted because of who published it; this checks what it
 * says. Once a layer served from a published archive is mounted, and readers have left the registry alone
 * for a while, the layer is indexed again from its real bytes (streamed once, checked against the layer
 * digest, its spans kept in the cache, so this replaces the background fetch of that layer) and the two
 * archives are compared: diff ID, sizes, every entry, every span's digest, and the start-up bundle's
 * digest against the real bytes of its ranges.
 *
 *   match     the archive is stored again as verified by this node (provenance local)
 *   mismatch  logged at error level with both digests, counted, the archive marked distrusted (never used
 *             again, from any publisher), and the locally indexed archive stored in its place: new mounts
 *             of the layer get the real content. Mounts made before keep what they have.
 */
import { createHash, type Hash } from 'node:crypto';
import type { Logger } from 'winston';
import { ClipArchive, contentDifference, sameSpans } from '../archive';
import { errorMessage } from '../errors';
import type { ContentCache } from '../fusefs/content-cache';
import type { ForegroundActivity } from '../fusefs/layer-span-reader';
import { computeDigest } from '../registry';
import { describeProvenance, LOCAL } from '../trust';
import type { ArchiveStore, StoredArchive } from './archive-store';
import type { LayerIndexer, LayerLocation } from './layer-indexer';

/** How long readers must have left the registry alone before a verification starts. */
const QUIET_MS = 2_000;
const POLL_MS = 500;

export interface ArchiveVerifierOptions {
  indexer: LayerIndexer;
  archives: ArchiveStore;
  cache: ContentCache;
  activity: ForegroundActivity;
  logger: Logger;
}

export interface VerificationCounts {
  verified: number;
  mismatched: number;
  /** Verifications that could not finish (registry down, …); tried again at the next mount. */
  failed: number;
}

export class ArchiveVerifier {
  readonly counts: VerificationCounts = { verified: 0, mismatched: 0, failed: 0 };
  private readonly queue: Array<{ where: LayerLocation; stored: StoredArchive }> = [];
  private readonly queued = new Set<string>();
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;

  constructor(private readonly opts: ArchiveVerifierOptions) {}

  /** Verifies the archive of a mounted layer, once per archive and process, in the background. */
  add(where: LayerLocation, stored: StoredArchive): void {
    if (this.queued.has(stored.digest)) return;
    this.queued.add(stored.digest);
    this.queue.push({ where, stored });
    this.running ??= this.loop().finally(() => (this.running = undefined));
  }

  /** Resolves when every queued verification has run (for tests and an orderly stop). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.running?.catch(() => undefined);
  }

  private async loop(): Promise<void> {
    const { signal } = this.abort;
    for (let next = this.queue.shift(); next && !signal.aborted; next = this.queue.shift()) {
      while (!this.opts.activity.quietFor(QUIET_MS) && !signal.aborted) await new Promise((r) => setTimeout(r, POLL_MS));
      if (signal.aborted) return;
      try {
        await this.verify(next.where, next.stored, signal);
      } catch (err) {
        this.counts.failed++;
        this.queued.delete(next.stored.digest);
        if (!signal.aborted) this.opts.logger.warn(`layer ${next.where.layerDigest}: could not verify its published archive ${next.stored.digest}: ${errorMessage(err)}`);
      }
    }
  }

  private async verify(where: LayerLocation, stored: StoredArchive, signal: AbortSignal): Promise<void> {
    const { indexer, archives, logger } = this.opts;
    const claimed = stored.archive;
    logger.info(`layer ${where.layerDigest}: verifying the archive ${stored.digest} (${describeProvenance(stored.provenance)}) against the layer`);
    const real = await indexer.index(where, { signal, keepSpans: true, spanSize: spanSizeOf(claimed) });
    const problem = contentDifference(claimed, real) ?? (await this.spanDifference(claimed, real)) ?? (await this.bundleDifference(claimed, real));
    if (problem === undefined) {
      this.counts.verified++;
      logger.info(`layer ${where.layerDigest}: the published archive ${stored.digest} matches the layer`);
      const current = await archives.get(where.layerDigest);
      if (current?.digest === stored.digest) await archives.put(current.archive, LOCAL);
      return;
    }
    this.counts.mismatched++;
    const local = await archives.put(real, LOCAL);
    logger.error(
      `layer ${where.layerDigest}: the published archive ${stored.digest} (${describeProvenance(stored.provenance)}) does not match the layer: ` +
        `${problem}. The archive indexed from the layer is ${local.digest} (diff ID ${real.diffId}). The published archive is distrusted ` +
        `and no longer mounted; running containers that use it keep it until they stop.`,
    );
    await archives.distrust(stored.digest, `layer ${where.layerDigest}: ${problem}`);
  }

  /**
   * Whether every span the claimed archive expects has the digest of the real bytes at its place. With the
   * same cuts the digests compare directly; otherwise the real spans (kept in the cache by the indexing
   * above) are read back and hashed at the claimed cuts.
   */
  private async spanDifference(claimed: ClipArchive, real: ClipArchive): Promise<string | undefined> {
    if (sameSpans(claimed, real)) {
      const i = claimed.spanDigests.findIndex((d, k) => d !== real.spanDigests[k]);
      return i < 0 ? undefined : `span ${i}: ${claimed.spanDigests[i]}, the layer has ${real.spanDigests[i]}`;
    }
    const bytes = new RealBytes(real, (i) => this.realSpan(real, i));
    const bound = (i: number): number => (i < claimed.checkpoints.length ? claimed.checkpoints[i]!.uncompressedOffset : claimed.uncompressedSize);
    for (let i = 0; i < claimed.checkpoints.length; i++) {
      const hash = createHash('sha256');
      await bytes.hash(hash, bound(i), bound(i + 1));
      const digest = `sha256:${hash.digest('hex')}`;
      if (digest !== claimed.spanDigests[i]) return `span ${i}: ${claimed.spanDigests[i]}, the layer has ${digest}`;
    }
    return undefined;
  }

  /**
   * Whether the claimed archive's start-up bundle holds the layer's real bytes: a node serves the bundle
   * only once its inflated bytes hash to the archive's uncompressed digest, so hashing the real bytes of the
   * start-up ranges and comparing with that digest compares the bundle with the layer.
   */
  private async bundleDifference(claimed: ClipArchive, real: ClipArchive): Promise<string | undefined> {
    const bundle = claimed.startupBundle;
    if (!bundle) return undefined;
    const bytes = new RealBytes(real, (i) => this.realSpan(real, i));
    const hash = createHash('sha256');
    for (const [start, end] of claimed.startupRanges ?? []) await bytes.hash(hash, start, end);
    const digest = `sha256:${hash.digest('hex')}`;
    return digest === bundle.uncompressedDigest ? undefined : `start-up bundle ${bundle.digest}: holds ${bundle.uncompressedDigest}, the layer's bytes at its ranges hash to ${digest}`;
  }

  private async realSpan(real: ClipArchive, i: number): Promise<Buffer> {
    const digest = real.spanDigests[i]!;
    const data = await this.opts.cache.get(real.layerDigest, digest);
    if (!data || computeDigest(data) !== digest) {
      throw new Error(`span ${i} of the re-indexed layer is not in the cache (is the disk full?)`);
    }
    return data;
  }
}

/** The re-indexed layer's stream, read forward from its cached spans (one span in memory at a time). */
class RealBytes {
  private span = -1;
  private piece: Buffer = Buffer.alloc(0);

  constructor(
    private readonly real: ClipArchive,
    private readonly load: (i: number) => Promise<Buffer>,
  ) {}

  private bound(i: number): number {
    return i < this.real.checkpoints.length ? this.real.checkpoints[i]!.uncompressedOffset : this.real.uncompressedSize;
  }

  /** Feeds the stream bytes [start, end) to `hash`; calls go forward through the stream. */
  async hash(hash: Hash, start: number, end: number): Promise<void> {
    for (let at = start; at < end; ) {
      if (this.span < 0) this.piece = await this.load((this.span = 0));
      while (this.bound(this.span + 1) <= at) this.piece = await this.load(++this.span);
      const to = Math.min(end, this.bound(this.span + 1));
      hash.update(this.piece.subarray(at - this.bound(this.span), to - this.bound(this.span)));
      at = to;
    }
  }
}

/** The span size that reproduces an archive's cuts when they were made with clip's defaults. */
function spanSizeOf(archive: ClipArchive): number | undefined {
  return archive.checkpoints.length > 1 ? archive.checkpoints[1]!.uncompressedOffset : undefined;
}
