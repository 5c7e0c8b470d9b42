/**
 * The clip archive store: one archive per compressed layer digest, shared by every image and namespace
 * that uses the layer, kept when containerd removes snapshots (so a re-pull never indexes again). Each
 * archive is stored with its provenance (docs/security.md): who described the layer, checked against the
 * trust policy every time the archive is used.
 *
 *   <dir>/sha256/<layer hex>.clip         the archive (docs/format.md)
 *   <dir>/sha256/<layer hex>.trust        {"archive": "<sha256 of the .clip file>", "source": ..., ...}
 *   <dir>/distrusted/<archive hex>        a published archive found not to match its layer: never used again
 *
 * The .trust file names the exact archive bytes it vouches for, so an archive without one, with one for
 * other bytes (a crash between the two writes), or with a provenance the policy no longer allows is
 * discarded and the layer resolved again. Archives from before provenance was recorded are discarded
 * too: they may have come from an untrusted publisher.
 *
 * Writes are atomic but not synced to disk (no fsync): every read checks the archive against the digest
 * in its .trust file, so a file a crash left empty or stale is discarded like any other mismatch, and
 * waiting for the disk (tens to hundreds of ms on a busy node) stays off a lazy pull's path. Concurrent
 * requests for one layer build it once. The store's size is bounded: after
 * each new archive, the least recently used archives not in use are removed until the store fits.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import { ArchiveLimits, ClipArchive, archiveLimits, decodeArchiveAsync, encodeArchiveAsync, writeFileAtomic } from '../archive';
import { InvalidArgumentError, errorMessage } from '../errors';
import { computeDigest } from '../registry';
import { describeProvenance, TrustPolicy, type ArchiveProvenance } from '../trust';
import { SharedTasks } from './shared-task';

export interface StoredArchive {
  archive: ClipArchive;
  provenance: ArchiveProvenance;
  /** sha256 of the archive file's bytes. */
  digest: string;
}

const HEX = /^sha256:([0-9a-f]{64})$/;
/** A .trust file is a few hundred bytes. */
const MAX_TRUST_FILE_BYTES = 4096;

function hexOf(digest: string, what: string): string {
  const m = HEX.exec(digest);
  if (!m) throw new InvalidArgumentError(`invalid ${what} ${JSON.stringify(digest)}`);
  return m[1]!;
}

function parseProvenance(text: string): { archive: string; provenance: ArchiveProvenance } | undefined {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const archive = doc.archive;
  if (typeof archive !== 'string' || !HEX.test(archive)) return undefined;
  switch (doc.source) {
    case 'local':
      return { archive, provenance: { source: 'local' } };
    case 'signed':
      return typeof doc.keyId === 'string' ? { archive, provenance: { source: 'signed', keyId: doc.keyId } } : undefined;
    case 'repository':
      return typeof doc.repository === 'string' ? { archive, provenance: { source: 'repository', repository: doc.repository } } : undefined;
    default:
      return undefined;
  }
}

/** A file as stat sees it (inode, size, mtime in ns): a file rewritten or replaced has another stamp. */
async function stampOf(file: string): Promise<string> {
  const st = await fsp.stat(file, { bigint: true }).catch(() => undefined);
  return st ? `${st.ino}:${st.size}:${st.mtimeNs}` : '';
}

/** At most this many archives written by this process are kept in memory for get(). */
const MAX_WRITTEN = 32;

export class ArchiveStore {
  private readonly building = new SharedTasks<StoredArchive>();
  /**
   * Archives this process wrote, with the stamps of their two files: while both files are unchanged, get()
   * gives the archive back without reading, hashing and decoding it again (the next Prepare of an image
   * whose layers were fetched ahead).
   */
  private readonly written = new Map<string, { stored: StoredArchive; archive: string; trust: string }>();
  /** Layer digests whose archives are in use (mounted); never evicted. */
  private readonly pinned = new Map<string, number>();

  constructor(
    readonly dir: string,
    private readonly maxBytes: number,
    private readonly logger: Logger,
    private readonly policy: TrustPolicy = TrustPolicy.localOnly(),
    private readonly limits: Partial<ArchiveLimits> = {},
  ) {}

  fileOf(layerDigest: string): string {
    return path.join(this.dir, 'sha256', `${hexOf(layerDigest, 'layer digest')}.clip`);
  }

  private trustFileOf(layerDigest: string): string {
    return path.join(this.dir, 'sha256', `${hexOf(layerDigest, 'layer digest')}.trust`);
  }

  private distrustFileOf(archiveDigest: string): string {
    return path.join(this.dir, 'distrusted', hexOf(archiveDigest, 'archive digest'));
  }

  private async discard(layerDigest: string, why: string): Promise<undefined> {
    this.logger.warn(`discarding the stored archive of ${layerDigest}: ${why}`);
    this.written.delete(layerDigest);
    await fsp.rm(this.fileOf(layerDigest), { force: true });
    await fsp.rm(this.trustFileOf(layerDigest), { force: true });
    return undefined;
  }

  /**
   * The stored archive of a layer with its provenance, or undefined. An unreadable archive, one without a
   * matching provenance, one the policy does not allow (any more) or one marked distrusted is removed and
   * reported as absent.
   */
  async get(layerDigest: string): Promise<StoredArchive | undefined> {
    const file = this.fileOf(layerDigest);
    const written = this.written.get(layerDigest);
    if (written) {
      const unchanged = (await stampOf(file)) === written.archive && (await stampOf(this.trustFileOf(layerDigest))) === written.trust;
      const { provenance, digest } = written.stored;
      if (unchanged && this.policy.allows(provenance) && (provenance.source === 'local' || !(await this.isDistrusted(digest)))) {
        const now = new Date();
        await fsp.utimes(file, now, now).catch(() => undefined); // recency for eviction
        written.archive = await stampOf(file);
        return written.stored;
      }
      this.written.delete(layerDigest); // read from disk below, with every check
    }
    const { maxBytes } = archiveLimits(this.limits);
    let bytes: Buffer;
    try {
      const size = (await fsp.stat(file)).size;
      if (size > maxBytes) return this.discard(layerDigest, `${size} bytes, over [limits] max_archive_size (${maxBytes})`);
      bytes = await fsp.readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const trustText = await fsp
      .readFile(this.trustFileOf(layerDigest), 'utf8')
      .then((t) => (t.length <= MAX_TRUST_FILE_BYTES ? t : ''))
      .catch(() => '');
    const trust = parseProvenance(trustText);
    const digest = computeDigest(bytes);
    if (!trust) return this.discard(layerDigest, 'no record of who described the layer (stored before provenance was kept, or damaged)');
    if (trust.archive !== digest) return this.discard(layerDigest, `its provenance record is for archive ${trust.archive}, the file is ${digest}`);
    if (!this.policy.allows(trust.provenance)) {
      return this.discard(layerDigest, `it was ${describeProvenance(trust.provenance)}, which the trust settings no longer allow`);
    }
    if (trust.provenance.source !== 'local' && (await this.isDistrusted(digest))) {
      return this.discard(layerDigest, `archive ${digest} was found not to match the layer`);
    }
    let archive: ClipArchive;
    try {
      archive = await decodeArchiveAsync(bytes, this.limits);
    } catch (err) {
      return this.discard(layerDigest, `unreadable: ${errorMessage(err)}`);
    }
    if (archive.layerDigest !== layerDigest) return this.discard(layerDigest, `it describes ${archive.layerDigest}`);
    const now = new Date();
    await fsp.utimes(file, now, now).catch(() => undefined); // recency for eviction
    return { archive, provenance: trust.provenance, digest };
  }

  /**
   * The archive of a layer: from the store, or built by `build` and stored. Concurrent calls for one
   * layer share one build, which is aborted only when every caller waiting for it has given up.
   */
  async getOrBuild(
    layerDigest: string,
    build: (signal: AbortSignal) => Promise<{ archive: ClipArchive; provenance: ArchiveProvenance; bytes?: Buffer }>,
    signal?: AbortSignal,
  ): Promise<StoredArchive> {
    const stored = await this.get(layerDigest);
    if (stored) return stored;
    return this.building.run(
      layerDigest,
      async (buildSignal) => {
        const { archive, provenance, bytes } = await build(buildSignal);
        if (archive.layerDigest !== layerDigest) {
          throw new InvalidArgumentError(`built archive describes ${archive.layerDigest}, not ${layerDigest}`);
        }
        return this.put(archive, provenance, bytes);
      },
      signal,
    );
  }

  /** Whether the layer's archive is being built (and stored) now. */
  isBuilding(layerDigest: string): boolean {
    return this.building.has(layerDigest);
  }

  /**
   * Stores `archive` with its provenance, replacing what the store had for the layer. `encoded`, when the
   * caller has it, is the archive file `archive` was decoded from (a published archive, checked against its
   * digest): it is stored as it is instead of encoding the archive again.
   */
  async put(archive: ClipArchive, provenance: ArchiveProvenance, encoded?: Buffer): Promise<StoredArchive> {
    const file = this.fileOf(archive.layerDigest);
    await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    // The archive first, then the record naming its bytes: a crash in between leaves a record that does not
    // match, and the pair is discarded.
    const bytes = encoded ?? (await encodeArchiveAsync(archive));
    await writeFileAtomic(file, bytes, { durable: false });
    const digest = computeDigest(bytes);
    const trustFile = this.trustFileOf(archive.layerDigest);
    await writeFileAtomic(trustFile, Buffer.from(JSON.stringify({ archive: digest, ...provenance })), { durable: false });
    const stored = { archive, provenance, digest };
    this.written.delete(archive.layerDigest);
    this.written.set(archive.layerDigest, { stored, archive: await stampOf(file), trust: await stampOf(trustFile) });
    if (this.written.size > MAX_WRITTEN) this.written.delete(this.written.keys().next().value!);
    await this.evict();
    return stored;
  }

  /** Marks a published archive as not matching its layer: it is never used again, from any source. */
  async distrust(archiveDigest: string, reason: string): Promise<void> {
    const file = this.distrustFileOf(archiveDigest);
    await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    await writeFileAtomic(file, Buffer.from(`${reason}\n`));
  }

  async isDistrusted(archiveDigest: string): Promise<boolean> {
    return fsp.access(this.distrustFileOf(archiveDigest)).then(
      () => true,
      () => false,
    );
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
      await fsp.rm(this.trustFileOf(f.digest), { force: true });
      this.written.delete(f.digest);
      total -= f.size;
      removed++;
      this.logger.info(`archive store over its bound: removed the archive of ${f.digest}`);
    }
    return removed;
  }
}
