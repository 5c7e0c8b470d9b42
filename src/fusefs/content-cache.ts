/**
 * The on-disk content cache: verified uncompressed spans of layers, keyed by layer digest and span
 * index, so every image sharing a layer shares its bytes, and they survive restarts.
 *
 *   <dir>/sha256/<layer hex>/<span index>
 *
 * A file appears only complete (written to a temporary name, then renamed). Readers check each span
 * against the archive's span digest, so a damaged file is never served.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors';

export class ContentCache {
  constructor(readonly dir: string) {}

  private layerDir(layerDigest: string): string {
    const m = /^sha256:([0-9a-f]{64})$/.exec(layerDigest);
    if (!m) throw new InvalidArgumentError(`invalid layer digest ${JSON.stringify(layerDigest)}`);
    return path.join(this.dir, 'sha256', m[1]!);
  }

  private spanFile(layerDigest: string, index: number): string {
    return path.join(this.layerDir(layerDigest), String(index));
  }

  /** The cached span, or undefined when it is not cached. */
  async get(layerDigest: string, index: number): Promise<Buffer | undefined> {
    try {
      return await fsp.readFile(this.spanFile(layerDigest, index));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async has(layerDigest: string, index: number): Promise<boolean> {
    return fsp.access(this.spanFile(layerDigest, index)).then(
      () => true,
      () => false,
    );
  }

  /** Stores a span atomically; a concurrent put of the same span is harmless (same bytes). */
  async put(layerDigest: string, index: number, data: Buffer): Promise<void> {
    const dir = this.layerDir(layerDigest);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    // No fsync: every span read from the cache is checked against its sha256, so a file torn by a power
    // loss is fetched again rather than served. The rename still keeps readers from seeing partial files.
    const tmp = path.join(dir, `.tmp-${index}-${randomBytes(6).toString('hex')}`);
    await fsp.writeFile(tmp, data, { mode: 0o600 });
    await fsp.rename(tmp, this.spanFile(layerDigest, index));
  }

  /** Indexes of the spans of a layer that are cached. */
  async cachedSpans(layerDigest: string): Promise<Set<number>> {
    const names = await fsp.readdir(this.layerDir(layerDigest)).catch(() => [] as string[]);
    return new Set(names.filter((n) => /^[0-9]+$/.test(n)).map(Number));
  }

  /** Drops every cached span of a layer. */
  async removeLayer(layerDigest: string): Promise<void> {
    await fsp.rm(this.layerDir(layerDigest), { recursive: true, force: true });
  }
}
