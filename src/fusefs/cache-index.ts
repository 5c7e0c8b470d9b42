/**
 * What the content cache holds, in memory: per layer, each cached span's size on disk and when it was
 * last read, and the order in which spans are evicted (docs/cache.md). Pure bookkeeping: no files.
 *
 * Sizes are counted in whole filesystem blocks (BLOCK_BYTES), as `du` counts them, so that the bound is a
 * bound on the disk space the files take, not only on their lengths.
 */

/** Space is counted in blocks of this many bytes (ext4's and xfs's default block size). */
export const BLOCK_BYTES = 4096;

/** The disk space a file of `length` bytes takes, rounded up to whole blocks. */
export function diskBytes(length: number): number {
  return Math.ceil(length / BLOCK_BYTES) * BLOCK_BYTES;
}

export interface CachedSpan {
  layer: string;
  span: string;
  /** Disk bytes (diskBytes of its length). */
  bytes: number;
  /** When it was last read or written: milliseconds of the monotonic clock (monotonicMs). */
  lastRead: number;
}

/** Milliseconds of CLOCK_MONOTONIC, the clock the native FUSE server stamps span reads with. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint() / 1_000_000n);
}

/**
 * The spans to evict to free at least `need` bytes, least valuable first: spans of layers that are not
 * mounted before spans of mounted layers (a running container is reading those), and within each group
 * the least recently read first. With `unmountedOnly`, spans of mounted layers are never chosen. Returns
 * fewer bytes than `need` when there is not enough to evict.
 */
export function pickVictims(
  spans: Iterable<CachedSpan>,
  need: number,
  isMounted: (layer: string) => boolean,
  options: { unmountedOnly?: boolean } = {},
): CachedSpan[] {
  if (need <= 0) return [];
  const candidates = [...spans]
    .map((s) => ({ s, mounted: isMounted(s.layer) }))
    .filter((c) => !(options.unmountedOnly && c.mounted))
    .sort((a, b) => Number(a.mounted) - Number(b.mounted) || a.s.lastRead - b.s.lastRead);
  const victims: CachedSpan[] = [];
  let freed = 0;
  for (const { s } of candidates) {
    if (freed >= need) break;
    victims.push(s);
    freed += s.bytes;
  }
  return victims;
}

export interface LayerUsage {
  digest: string;
  /** Disk bytes of the layer's cached spans. */
  bytes: number;
  spans: number;
}

export class CacheIndex {
  private readonly layers = new Map<string, Map<string, CachedSpan>>();
  private total = 0;

  /** Disk bytes of every span recorded. */
  get totalBytes(): number {
    return this.total;
  }

  /** Records a span (again: its size and read time are replaced). */
  add(layer: string, span: string, bytes: number, lastRead: number): void {
    let spans = this.layers.get(layer);
    if (!spans) this.layers.set(layer, (spans = new Map()));
    const old = spans.get(span);
    if (old) this.total -= old.bytes;
    spans.set(span, { layer, span, bytes, lastRead: Math.max(lastRead, old?.lastRead ?? -Infinity) });
    this.total += bytes;
  }

  /** Notes that a span was read at `when` (monotonicMs), if it is recorded and was not read later already. */
  noteRead(layer: string, span: string, when: number): void {
    const entry = this.layers.get(layer)?.get(span);
    if (entry && entry.lastRead < when) entry.lastRead = when;
  }

  has(layer: string, span: string): boolean {
    return this.layers.get(layer)?.has(span) ?? false;
  }

  remove(layer: string, span: string): void {
    const spans = this.layers.get(layer);
    const entry = spans?.get(span);
    if (!spans || !entry) return;
    spans.delete(span);
    this.total -= entry.bytes;
    if (spans.size === 0) this.layers.delete(layer);
  }

  removeLayer(layer: string): void {
    for (const entry of this.layers.get(layer)?.values() ?? []) this.total -= entry.bytes;
    this.layers.delete(layer);
  }

  layerDigests(): string[] {
    return [...this.layers.keys()];
  }

  *spans(): Iterable<CachedSpan> {
    for (const spans of this.layers.values()) yield* spans.values();
  }

  /** Bytes per layer, largest first. */
  usage(): LayerUsage[] {
    const out: LayerUsage[] = [];
    for (const [digest, spans] of this.layers) {
      let bytes = 0;
      for (const s of spans.values()) bytes += s.bytes;
      out.push({ digest, bytes, spans: spans.size });
    }
    return out.sort((a, b) => b.bytes - a.bytes || a.digest.localeCompare(b.digest));
  }
}
