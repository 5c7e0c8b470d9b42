/**
 * The on-disk content cache: verified uncompressed spans of layers, keyed by layer digest and span
 * index, so every image sharing a layer shares its bytes, and they survive restarts.
 *
 *   <dir>/sha256/<layer hex>/<span index>
 *
 * A file appears only complete (written to a temporary name, then renamed). Readers check each span
 * against the archive's span digest, so a damaged file is never served: a span is verified once per process
 * (or written by it from verified bytes), after which slices of it are read from its file directly
 * (readSlice), without loading or hashing the whole span again. One ContentCache is shared by everything
 * in the process that reads or fills the cache, so that the indexer's writes count as verified for readers.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors';
import type { SpanWriter } from '../indexer';

/** A span writer of the cache: its commit needs no digest (the caller vouches for the bytes). */
export type CacheSpanWriter = Omit<SpanWriter, 'commit'> & { commit(): Promise<void> };

export class ContentCache {
  /** Per layer digest, the spans whose cache file this process wrote or checked against its digest. */
  private readonly verified = new Map<string, Set<number>>();
  private readonly watchers = new Map<string, Set<(index: number) => void>>();

  constructor(readonly dir: string) {}

  /** Whether span i's cache file was written or verified by this process (so its bytes can be trusted). */
  isVerified(layerDigest: string, index: number): boolean {
    return this.verified.get(layerDigest)?.has(index) ?? false;
  }

  /** Records that span i's cache file holds the verified span (after checking what get() returned). */
  markVerified(layerDigest: string, index: number): void {
    let set = this.verified.get(layerDigest);
    if (!set) this.verified.set(layerDigest, (set = new Set()));
    if (set.has(index)) return;
    set.add(index);
    for (const watcher of this.watchers.get(layerDigest) ?? []) watcher(index);
  }

  /**
   * Calls `onVerified` for every span of the layer verified so far and for each one verified later, until
   * the returned function is called. (A span may be forgotten again if its file goes missing; readers of
   * the file must cope with that, as readSlice does.)
   */
  watchVerified(layerDigest: string, onVerified: (index: number) => void): () => void {
    let set = this.watchers.get(layerDigest);
    if (!set) this.watchers.set(layerDigest, (set = new Set()));
    set.add(onVerified);
    for (const index of this.verified.get(layerDigest) ?? []) onVerified(index);
    return () => {
      set.delete(onVerified);
      if (set.size === 0 && this.watchers.get(layerDigest) === set) this.watchers.delete(layerDigest);
    };
  }

  private forget(layerDigest: string, index?: number): void {
    if (index === undefined) this.verified.delete(layerDigest);
    else this.verified.get(layerDigest)?.delete(index);
  }

  /** Where a layer's span files live: span i is the file named i. */
  spanDir(layerDigest: string): string {
    const m = /^sha256:([0-9a-f]{64})$/.exec(layerDigest);
    if (!m) throw new InvalidArgumentError(`invalid layer digest ${JSON.stringify(layerDigest)}`);
    return path.join(this.dir, 'sha256', m[1]!);
  }

  private spanFile(layerDigest: string, index: number): string {
    return path.join(this.spanDir(layerDigest), String(index));
  }

  /** The cached span, or undefined when it is not cached. */
  async get(layerDigest: string, index: number): Promise<Buffer | undefined> {
    try {
      return await fsp.readFile(this.spanFile(layerDigest, index));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.forget(layerDigest, index);
        return undefined;
      }
      throw err;
    }
  }

  /**
   * Bytes [from, from + length) of a span verified by this process (see isVerified), read from its file
   * alone; undefined when the span is not verified or its file is gone or short (then it is loaded whole
   * and checked again).
   */
  async readSlice(layerDigest: string, index: number, from: number, length: number): Promise<Buffer | undefined> {
    if (!this.isVerified(layerDigest, index)) return undefined;
    let file: fsp.FileHandle | undefined;
    try {
      file = await fsp.open(this.spanFile(layerDigest, index), 'r');
      const out = Buffer.allocUnsafe(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await file.read(out, got, length - got, from + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got === length) return out;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    } finally {
      await file?.close();
    }
    this.forget(layerDigest, index);
    return undefined;
  }

  async has(layerDigest: string, index: number): Promise<boolean> {
    return fsp.access(this.spanFile(layerDigest, index)).then(
      () => true,
      () => false,
    );
  }

  /**
   * Stores a span atomically; a concurrent put of the same span is harmless (same bytes). Callers put only
   * verified bytes (decoded and checked, or hashed by the indexer as they passed), so the span counts as
   * verified from then on.
   */
  async put(layerDigest: string, index: number, data: Buffer): Promise<void> {
    const writer = await this.openSpanWriter(layerDigest, index);
    try {
      await writer.write(data);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    await writer.commit();
  }

  /**
   * Streams span i of a layer into the cache: the bytes go to a temporary file, which commit() renames
   * into place (and counts as verified: the caller vouches for the bytes) and abort() removes.
   */
  async openSpanWriter(layerDigest: string, index: number): Promise<CacheSpanWriter> {
    const dir = this.spanDir(layerDigest);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(dir, `.tmp-${index}-${randomBytes(6).toString('hex')}`);
    const file = await fsp.open(tmp, 'wx', 0o600);
    let size = 0;
    let closed = false;
    const close = async (): Promise<void> => {
      if (closed) return;
      closed = true;
      await file.close();
    };
    return {
      write: async (chunk) => {
        if (closed) throw new InvalidArgumentError(`span ${index} of ${layerDigest}: written after commit or abort`);
        const position = size;
        size += chunk.length;
        for (let done = 0; done < chunk.length; ) {
          done += (await file.write(chunk, done, chunk.length - done, position + done)).bytesWritten;
        }
      },
      // No fsync: every span read from the cache is checked against its sha256, so a file torn by a power
      // loss is fetched again rather than served. The rename still keeps readers from seeing partial files.
      commit: async () => {
        try {
          await close();
          await fsp.rename(tmp, this.spanFile(layerDigest, index));
        } catch (err) {
          await fsp.rm(tmp, { force: true }).catch(() => undefined);
          throw err;
        }
        this.markVerified(layerDigest, index);
      },
      abort: async () => {
        await close().catch(() => undefined);
        await fsp.rm(tmp, { force: true });
      },
    };
  }

  /** Indexes of the spans of a layer that are cached. */
  async cachedSpans(layerDigest: string): Promise<Set<number>> {
    const names = await fsp.readdir(this.spanDir(layerDigest)).catch(() => [] as string[]);
    return new Set(names.filter((n) => /^[0-9]+$/.test(n)).map(Number));
  }

  /** Drops every cached span of a layer. */
  async removeLayer(layerDigest: string): Promise<void> {
    this.forget(layerDigest);
    await fsp.rm(this.spanDir(layerDigest), { recursive: true, force: true });
  }
}
