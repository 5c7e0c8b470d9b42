/**
 * The clip archive store: one archive per compressed layer digest, shared by every image and namespace
 * that uses the layer, kept when containerd removes snapshots (so a re-pull never indexes again).
 *
 *   <dir>/sha256/<layer hex>.clip
 *
 * Archives are written atomically. Concurrent requests for one layer build it once. The store's size is
 * bounded: after each new archive, the least recently used archives not in use are removed until the
 * store fits.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import { ClipArchive, readArchiveFile, writeArchiveFile } from '../archive';
import { InvalidArgumentError, NotFoundError, errorMessage } from '../errors';

export class ArchiveStore {
  private readonly building = new Map<string, Promise<ClipArchive>>();
  /** Layer digests whose archives are in use (mounted); never evicted. */
  private readonly pinned = new Map<string, number>();

  constructor(
    readonly dir: string,
    private readonly maxBytes: number,
    private readonly logger: Logger,
  ) {}

  fileOf(layerDigest: string): string {
    const m = /^sha256:([0-9a-f]{64})$/.exec(layerDigest);
    if (!m) throw new InvalidArgumentError(`invalid layer digest ${JSON.stringify(layerDigest)}`);
    return path.join(this.dir, 'sha256', `${m[1]}.clip`);
  }

  /** The stored archive of a layer, or undefined. A corrupt file is removed and reported as absent. */
  async get(layerDigest: string): Promise<ClipArchive | undefined> {
    const file = this.fileOf(layerDigest);
    let archive: ClipArchive;
    try {
      archive = await readArchiveFile(file);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      this.logger.warn(`discarding unreadable archive ${file}: ${errorMessage(err)}`);
      await fsp.rm(file, { force: true });
      return undefined;
    }
    if (archive.layerDigest !== layerDigest) {
      this.logger.warn(`discarding archive ${file}: it describes ${archive.layerDigest}`);
      await fsp.rm(file, { force: true });
      return undefined;
    }
    const now = new Date();
    await fsp.utimes(file, now, now).catch(() => undefined); // recency for eviction
    return archive;
  }

  /**
   * The archive of a layer: from the store, or built by `build` and stored. Concurrent calls for one
   * layer share one build.
   */
  async getOrBuild(layerDigest: string, build: () => Promise<ClipArchive>): Promise<ClipArchive> {
    const stored = await this.get(layerDigest);
    if (stored) return stored;
    let pending = this.building.get(layerDigest);
    if (!pending) {
      pending = (async () => {
        const archive = await build();
        if (archive.layerDigest !== layerDigest) {
          throw new InvalidArgumentError(`built archive describes ${archive.layerDigest}, not ${layerDigest}`);
        }
        await this.put(archive);
        return archive;
      })().finally(() => this.building.delete(layerDigest));
      this.building.set(layerDigest, pending);
    }
    return pending;
  }

  async put(archive: ClipArchive): Promise<void> {
    const file = this.fileOf(archive.layerDigest);
    await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeArchiveFile(file, archive);
    await this.evict();
  }

  /** Marks a layer's archive as in use until the returned function is called. */
  pin(layerDigest: string): () => void {
    this.pinned.set(layerDigest, (this.pinned.get(layerDigest) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const n = (this.pinned.get(layerDigest) ?? 1) - 1;
      if (n <= 0) this.pinned.delete(layerDigest);
      else this.pinned.set(layerDigest, n);
    };
  }

  /** Removes least recently used, unpinned archives until the store fits its bound. */
  async evict(): Promise<number> {
    const dir = path.join(this.dir, 'sha256');
    const names = await fsp.readdir(dir).catch(() => [] as string[]);
    const files: { digest: string; file: string; size: number; used: number }[] = [];
    for (const name of names) {
      const m = /^([0-9a-f]{64})\.clip$/.exec(name);
      if (!m) continue;
      const file = path.join(dir, name);
      const st = await fsp.stat(file).catch(() => undefined);
      if (st) files.push({ digest: `sha256:${m[1]}`, file, size: st.size, used: st.mtimeMs });
    }
    let total = files.reduce((sum, f) => sum + f.size, 0);
    let removed = 0;
    for (const f of files.sort((a, b) => a.used - b.used)) {
      if (total <= this.maxBytes) break;
      if (this.pinned.has(f.digest)) continue;
      await fsp.rm(f.file, { force: true });
      total -= f.size;
      removed++;
      this.logger.info(`archive store over its bound: removed the archive of ${f.digest}`);
    }
    return removed;
  }
}
