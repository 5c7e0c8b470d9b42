/**
 * The on-disk content cache: verified uncompressed spans of layers, content-addressed. A span's file is
 * named by the sha256 of its bytes, under the layer it belongs to, so every image sharing a layer shares
 * its bytes, they survive restarts, and a file can only ever be served as the span whose digest it is named
 * after: an archive that expects other bytes for "span 3" asks for another file (docs/security.md).
 *
 *   <dir>/sha256/<layer hex>/<span sha256 hex>
 *
 * A file appears only complete (written to a temporary name, then renamed). A file is served only once
 * this process has written it from bytes it hashed itself, or read it back and checked its hash
 * (markVerified); after that, slices of it are read from the file directly (readSlice), without loading or
 * hashing the whole span again. One ContentCache is shared by everything in the process that reads or fills
 * the cache, so that the indexer's writes count as verified for readers.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors';
import type { SpanWriter } from '../indexer';

const LAYER_DIGEST = /^sha256:([0-9a-f]{64})$/;
const SPAN_FILE = /^[0-9a-f]{64}$/;

/** The file name of a span in its layer's directory: the hex of its sha256 ("sha256:…"). */
export function spanFileName(spanDigest: string): string {
  const m = LAYER_DIGEST.exec(spanDigest);
  if (!m) throw new InvalidArgumentError(`invalid span digest ${JSON.stringify(spanDigest)}`);
  return m[1]!;
}

export class ContentCache {
  /** Per layer digest, the span digests whose cache file this process wrote or checked. */
  private readonly verified = new Map<string, Set<string>>();
  private readonly watchers = new Map<string, Set<(spanDigest: string) => void>>();

  constructor(readonly dir: string) {}

  /** Whether the file of the span with this digest was written or checked by this process. */
  isVerified(layerDigest: string, spanDigest: string): boolean {
    return this.verified.get(layerDigest)?.has(spanDigest) ?? false;
  }

  /** Records that the span's file holds bytes hashing to `spanDigest` (the caller hashed them). */
  markVerified(layerDigest: string, spanDigest: string): void {
    let set = this.verified.get(layerDigest);
    if (!set) this.verified.set(layerDigest, (set = new Set()));
    if (set.has(spanDigest)) return;
    set.add(spanDigest);
    for (const watcher of this.watchers.get(layerDigest) ?? []) watcher(spanDigest);
  }

  /**
   * Calls `onVerified` for every span digest of the layer verified so far and for each one verified later,
   * until the returned function is called. (A span may be forgotten again if its file goes missing; readers
   * of the file must cope with that, as readSlice does.)
   */
  watchVerified(layerDigest: string, onVerified: (spanDigest: string) => void): () => void {
    let set = this.watchers.get(layerDigest);
    if (!set) this.watchers.set(layerDigest, (set = new Set()));
    set.add(onVerified);
    for (const digest of this.verified.get(layerDigest) ?? []) onVerified(digest);
    return () => {
      set.delete(onVerified);
      if (set.size === 0 && this.watchers.get(layerDigest) === set) this.watchers.delete(layerDigest);
    };
  }

  private forget(layerDigest: string, spanDigest?: string): void {
    if (spanDigest === undefined) this.verified.delete(layerDigest);
    else this.verified.get(layerDigest)?.delete(spanDigest);
  }

  /** Where a layer's span files live (each named by spanFileName). */
  spanDir(layerDigest: string): string {
    const m = LAYER_DIGEST.exec(layerDigest);
    if (!m) throw new InvalidArgumentError(`invalid layer digest ${JSON.stringify(layerDigest)}`);
    return path.join(this.dir, 'sha256', m[1]!);
  }

  private spanFile(layerDigest: string, spanDigest: string): string {
    return path.join(this.spanDir(layerDigest), spanFileName(spanDigest));
  }

  /** The cached file of the span with this digest, unchecked, or undefined when it is not cached. */
  async get(layerDigest: string, spanDigest: string): Promise<Buffer | undefined> {
    try {
      return await fsp.readFile(this.spanFile(layerDigest, spanDigest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.forget(layerDigest, spanDigest);
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
  async readSlice(layerDigest: string, spanDigest: string, from: number, length: number): Promise<Buffer | undefined> {
    if (!this.isVerified(layerDigest, spanDigest)) return undefined;
    let file: fsp.FileHandle | undefined;
    try {
      file = await fsp.open(this.spanFile(layerDigest, spanDigest), 'r');
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
    this.forget(layerDigest, spanDigest);
    return undefined;
  }

  async has(layerDigest: string, spanDigest: string): Promise<boolean> {
    return fsp.access(this.spanFile(layerDigest, spanDigest)).then(
      () => true,
      () => false,
    );
  }

  /**
   * Stores a span atomically under its digest; a concurrent put of the same span is harmless (same bytes).
   * `spanDigest` must be the sha256 of `data`, as the caller checked (decoded and verified, or hashed as
   * the bytes passed): the span counts as verified from then on.
   */
  async put(layerDigest: string, spanDigest: string, data: Buffer): Promise<void> {
    const writer = await this.openSpanWriter(layerDigest);
    try {
      await writer.write(data);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    await writer.commit(spanDigest);
  }

  /**
   * Streams a span of a layer into the cache: the bytes go to a temporary file, which commit(digest)
   * renames to the digest's name (and counts as verified: the caller hashed exactly the bytes it wrote)
   * and abort() removes.
   */
  async openSpanWriter(layerDigest: string): Promise<SpanWriter> {
    const dir = this.spanDir(layerDigest);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const tmp = path.join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
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
        if (closed) throw new InvalidArgumentError(`span of ${layerDigest}: written after commit or abort`);
        const position = size;
        size += chunk.length;
        for (let done = 0; done < chunk.length; ) {
          done += (await file.write(chunk, done, chunk.length - done, position + done)).bytesWritten;
        }
      },
      // No fsync: a file read back from the cache is checked against its digest before it is served, so
      // a file torn by a power loss is fetched again. The rename keeps readers from seeing partial files.
      commit: async (spanDigest) => {
        try {
          const target = this.spanFile(layerDigest, spanDigest);
          await close();
          await fsp.rename(tmp, target);
        } catch (err) {
          await fsp.rm(tmp, { force: true }).catch(() => undefined);
          throw err;
        }
        this.markVerified(layerDigest, spanDigest);
      },
      abort: async () => {
        await close().catch(() => undefined);
        await fsp.rm(tmp, { force: true });
      },
    };
  }

  /** Digests ("sha256:…") of the spans of a layer that are cached. */
  async cachedSpans(layerDigest: string): Promise<Set<string>> {
    const names = await fsp.readdir(this.spanDir(layerDigest)).catch(() => [] as string[]);
    return new Set(names.filter((n) => SPAN_FILE.test(n)).map((n) => `sha256:${n}`));
  }

  /** Drops every cached span of a layer. */
  async removeLayer(layerDigest: string): Promise<void> {
    this.forget(layerDigest);
    await fsp.rm(this.spanDir(layerDigest), { recursive: true, force: true });
  }

  /**
   * Removes span files named by index (`<layer>/<i>`), as clip wrote them before the cache was
   * content-addressed: they are never read again. Returns how many were removed.
   */
  async removeIndexNamedSpans(): Promise<number> {
    const root = path.join(this.dir, 'sha256');
    let removed = 0;
    for (const layer of await fsp.readdir(root).catch(() => [] as string[])) {
      if (!SPAN_FILE.test(layer)) continue;
      for (const name of await fsp.readdir(path.join(root, layer)).catch(() => [] as string[])) {
        if (!/^[0-9]+$/.test(name)) continue;
        await fsp.rm(path.join(root, layer, name), { force: true });
        removed++;
      }
    }
    return removed;
  }

  /** Drops the cached files of these spans of a layer (a failed zstd restore, for example). */
  async removeSpans(layerDigest: string, spanDigests: Iterable<string>): Promise<void> {
    for (const digest of spanDigests) {
      this.forget(layerDigest, digest);
      await fsp.rm(this.spanFile(layerDigest, digest), { force: true });
    }
  }
}
