/**
 * Start-up profiles: which spans of a layer containers read as they start.
 *
 * Recording: the FUSE server notes the order in which spans are first read (LayerFilesystem.touchedSpans).
 * Once a mounted layer has been read and its reads have settled (no new span for SETTLE_MS, or WINDOW_MS
 * after the first read, or at unmount), the list is written into the layer's archive in the archive store,
 * where `clip index push --reuse <root>/archives/sha256` publishes it with the archive.
 *
 * Replay: a node that mounts a layer whose archive carries a profile loads those spans at once, a few at a
 * time and in order, as foreground fetches (the background fetcher yields to them), while containerd is
 * still preparing the container; its reads then find the spans cached or already on their way. Spans the
 * layer's start-up bundle holds any of are left out (startup-bundle-reader.ts).
 */
import type { Logger } from 'winston';
import { startupRangesFromBlockMap, withStartupFields, type ClipArchive } from '../archive';
import { errorMessage } from '../errors';
import type { LayerSpanReader } from '../fusefs/layer-span-reader';
import type { ArchiveStore, StoredArchive } from './archive-store';

const POLL_MS = 2_000;
const SETTLE_MS = 10_000;
const WINDOW_MS = 60_000;
/** At most this many spans are kept in a profile (4 GiB of 4 MiB spans). */
export const MAX_PROFILE_SPANS = 1024;
/** Spans of a profile loaded at the same time. */
const REPLAY_CONCURRENCY = 3;

export interface ProfileSource {
  touchedSpans(): number[];
  /** Which 4096-byte blocks of the layer stream were read (bit b of byte b >> 3). */
  readMap(): Uint8Array;
}

/** Watches one mounted layer and stores its profile once; stop() stores what was seen so far. */
export class ProfileRecorder {
  private timer: NodeJS.Timeout | undefined;
  private firstSeen = 0;
  private lastChange = 0;
  private seen = 0;
  private done = false;

  private readonly archive: ClipArchive;

  constructor(
    private readonly stored: StoredArchive,
    private readonly source: ProfileSource,
    private readonly store: ArchiveStore,
    private readonly logger: Logger,
    /** Called once the profile is stored. */
    private readonly onSaved?: () => void,
  ) {
    this.archive = stored.archive;
    this.timer = setInterval(() => this.poll(), POLL_MS);
    this.timer.unref();
  }

  private poll(): void {
    const spans = this.source.touchedSpans();
    const now = Date.now();
    if (spans.length === 0) return;
    if (this.firstSeen === 0) this.firstSeen = now;
    if (spans.length !== this.seen) {
      this.seen = spans.length;
      this.lastChange = now;
    }
    if (now - this.lastChange >= SETTLE_MS || now - this.firstSeen >= WINDOW_MS) void this.save(spans);
  }

  /** Stops watching; stores the profile if the layer was read and none was stored yet. */
  async stop(): Promise<void> {
    if (this.done) return;
    const spans = this.source.touchedSpans();
    if (spans.length > 0) await this.save(spans);
    else this.finish();
  }

  private finish(): void {
    this.done = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async save(spans: number[]): Promise<void> {
    if (this.done) return;
    this.finish();
    const startupSpans = spans.slice(0, MAX_PROFILE_SPANS);
    const startupRanges = startupRangesFromBlockMap(this.source.readMap(), this.archive.uncompressedSize);
    try {
      // Only into the archive it was recorded on: the store may have replaced it since (a published archive
      // that failed verification, say), and must not get it back.
      const current = await this.store.get(this.archive.layerDigest);
      if (current?.digest !== this.stored.digest) return;
      // A bundle holds the ranges it was built for: it goes with them. The entries are neither decoded nor
      // encoded again (withStartupFields).
      const profiled = await withStartupFields(this.archive, { startupSpans, startupRanges: startupRanges.length > 0 ? startupRanges : undefined });
      await this.store.put(profiled.archive, this.stored.provenance, profiled.file);
      const readBytes = startupRanges.reduce((n, [start, end]) => n + end - start, 0);
      this.logger.info(
        `layer ${this.archive.layerDigest}: recorded a start-up profile of ${startupSpans.length} of ${this.archive.checkpoints.length} spans (${readBytes} bytes read in ${startupRanges.length} ranges)`,
      );
      this.onSaved?.();
    } catch (err) {
      this.logger.warn(`layer ${this.archive.layerDigest}: storing its start-up profile: ${errorMessage(err)}`);
    }
  }
}

/**
 * Loads the profile's spans that are not cached yet; resolves with how many were fetched. With a start-up
 * bundle it waits for the bundle first and then loads only the spans the bundle does not hold whole (all of
 * them if the bundle could not be had). A span the bundle holds part of is not loaded either: the start-up
 * reads in it come from the bundle, and loading the rest of it is what the bundle saves.
 */
export async function replayProfile(archive: ClipArchive, reader: LayerSpanReader, logger: Logger): Promise<number> {
  let spans = archive.startupSpans ?? [];
  const bundle = reader.startupBundle;
  if (bundle && (await bundle.load())) {
    const { checkpoints, uncompressedSize } = archive;
    spans = spans.filter((i) => !bundle.overlaps(checkpoints[i]?.uncompressedOffset ?? 0, checkpoints[i + 1]?.uncompressedOffset ?? uncompressedSize));
  }
  const started = Date.now();
  const fetched = await reader.warm(spans, REPLAY_CONCURRENCY);
  if (fetched > 0) {
    logger.info(`layer ${archive.layerDigest}: start-up profile: fetched ${fetched} of ${spans.length} spans ahead in ${Date.now() - started} ms`);
  }
  return fetched;
}
