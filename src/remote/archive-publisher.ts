/**
 * Auto-publishing (`[lazy] auto_publish`): after this node indexed layers of an image, or recorded a
 * start-up profile in one, it publishes the archives it made itself (provenance "local") in the image's
 * repository, signed with its key, as the same artifact `clip index push` makes (publishArchives). Nodes
 * that trust the key then serve the image from its first pull without indexing anything.
 *
 * Everything here runs in the background and never delays a Prepare: a publish is scheduled per image
 * (repository and manifest digest) and starts once its layers have settled (no layer of the image still
 * being indexed, nothing new scheduled for SETTLE_MS). At most `concurrency` publishes run at once, at most
 * `maxPending` images wait (more are dropped and counted), each publish has a deadline, and a publish that
 * failed because the registry could not be reached is tried once more. Before pushing anything it reads the
 * image's artifacts: one that lists the same archive files, signed with this node's key, means there is
 * nothing to do. A failure is logged once per repository with its reason and the fix, and counted.
 */
import { createPublicKey } from 'node:crypto';
import type { Logger } from 'winston';
import { errorMessage } from '../errors';
import { ImageReference, RegistryClient, parseReference } from '../registry';
import type { FallbackReason } from '../snapshotter/fallback-reason';
import { TrustPolicy, type SigningKey } from '../trust';
import type { ArchiveStore, StoredArchive } from './archive-store';
import type { LayerLocation } from './layer-indexer';
import { Limiter } from './limiter';
import { isTransient, publishFailureHint, publishFailureReason } from './publish-failure';
import { ANNOTATION_LAYER_DIGEST, ANNOTATION_STARTUP_PROFILE, ARCHIVE_MEDIA_TYPE, ArchiveArtifact, newestArchiveArtifacts, publishArchives, trustOf } from './published-archives';

export type PublishOutcome = 'published' | 'exists' | 'failed' | 'dropped';
export const PUBLISH_OUTCOMES: readonly PublishOutcome[] = ['published', 'exists', 'failed', 'dropped'];

export interface PublishMetrics {
  /** One publish of an image ended so (`reason` for 'failed' only). */
  autoPublished(outcome: PublishOutcome, reason: FallbackReason | ''): void;
}

/** What LazyLayers tells the publisher. */
export interface ArchivePublishing {
  /** The archive of a layer of this image was made or changed on this node. */
  schedule(where: LayerLocation): void;
}

export interface ArchivePublisherOptions {
  /** The client publishes go through, with the node's push credentials; closed by close(). */
  registry: RegistryClient;
  archives: ArchiveStore;
  /** The node's key ([lazy] publish_key). */
  signingKey: SigningKey;
  logger: Logger;
  metrics?: PublishMetrics;
  /** Publishes running at once (default 2). */
  concurrency?: number;
  /**
   * Images waiting to be published; more are dropped (default 4096). A job is a reference and a digest
   * (a few hundred bytes), and a restart schedules every image whose layers it remounts, so the bound is
   * set for memory, not for a node's usual number of images.
   */
  maxPending?: number;
  /** Quiet time before an image is published (default 2 s). */
  settleMs?: number;
  /** Deadline of one publish (default 10 min). */
  timeoutMs?: number;
  /** Wait before the second attempt of a publish that could not reach the registry (default 60 s). */
  retryMs?: number;
}

interface Job {
  ref: ImageReference;
  manifestDigest: string;
  timer?: NodeJS.Timeout;
  /** Waiting for a publish slot or publishing. */
  busy: boolean;
  /** Scheduled again while busy: publish again afterwards. */
  again: boolean;
  attempts: number;
}

const MAX_ATTEMPTS = 2;
const DEFAULT_MAX_PENDING = 4096;

export class ArchivePublisher implements ArchivePublishing {
  private readonly jobs = new Map<string, Job>();
  private readonly limiter: Limiter;
  private readonly closing = new AbortController();
  /** Repositories whose failure was logged at warn level. */
  private readonly reported = new Set<string>();
  private droppedReported = false;
  /** Trusts exactly this node's key: recognises what it published before. */
  private readonly own: TrustPolicy;
  private readonly settleMs: number;

  constructor(private readonly opts: ArchivePublisherOptions) {
    this.limiter = new Limiter(opts.concurrency ?? 2);
    this.settleMs = opts.settleMs ?? 2_000;
    const { keyId, key } = opts.signingKey;
    this.own = new TrustPolicy([{ keyId, key: createPublicKey(key), source: '[lazy] publish_key' }], []);
  }

  schedule(where: LayerLocation): void {
    if (this.closing.signal.aborted || !where.manifestDigest) return;
    let ref: ImageReference;
    try {
      ref = parseReference(where.imageRef);
    } catch {
      return;
    }
    const key = `${ref.name}@${where.manifestDigest}`;
    const job = this.jobs.get(key);
    if (job) {
      if (job.busy) job.again = true;
      else this.arm(key, job, this.settleMs);
      return;
    }
    if (this.jobs.size >= (this.opts.maxPending ?? DEFAULT_MAX_PENDING)) {
      this.opts.metrics?.autoPublished('dropped', '');
      this.opts.logger.log(this.droppedReported ? 'debug' : 'warn', `auto-publish: ${this.jobs.size} images wait to be published already; not publishing ${key} (it is checked again at the next restart)`);
      this.droppedReported = true;
      return;
    }
    const created: Job = { ref, manifestDigest: where.manifestDigest, busy: false, again: false, attempts: 0 };
    this.jobs.set(key, created);
    this.arm(key, created, this.settleMs);
  }

  /** The key ID of the node's key. */
  get keyId(): string {
    return this.opts.signingKey.keyId;
  }

  /** Images scheduled or being published (for tests and status). */
  get pending(): number {
    return this.jobs.size;
  }

  /** Stops: nothing new starts, running publishes are aborted, the registry client is closed. */
  async close(): Promise<void> {
    if (this.closing.signal.aborted) return;
    this.closing.abort(new Error('clip is stopping'));
    for (const job of this.jobs.values()) clearTimeout(job.timer);
    this.jobs.clear();
    await this.opts.registry.close();
  }

  private arm(key: string, job: Job, delayMs: number): void {
    clearTimeout(job.timer);
    job.timer = setTimeout(() => void this.run(key, job), delayMs);
    job.timer.unref();
  }

  private async run(key: string, job: Job): Promise<void> {
    job.timer = undefined;
    job.busy = true;
    let retryInMs: number | undefined;
    try {
      retryInMs = await this.limiter.run(() => this.publish(job), this.closing.signal);
    } catch {
      // only a stop ends up here; publish() handles its own failures
    } finally {
      job.busy = false;
    }
    if (this.closing.signal.aborted || this.jobs.get(key) !== job) return;
    if (job.again) {
      job.again = false;
      this.arm(key, job, this.settleMs);
    } else if (retryInMs !== undefined) {
      this.arm(key, job, retryInMs);
    } else {
      this.jobs.delete(key);
    }
  }

  /** One attempt; resolves with when to try again, if at all. */
  private async publish(job: Job): Promise<number | undefined> {
    const { registry, archives, logger, signingKey, metrics } = this.opts;
    const { ref, manifestDigest } = job;
    const image = `${ref.name}@${manifestDigest}`;
    const signal = AbortSignal.any([this.closing.signal, AbortSignal.timeout(this.opts.timeoutMs ?? 600_000)]);
    job.attempts++;
    try {
      const resolved = await registry.resolve(ref.withDigest(manifestDigest), { signal });
      // A layer still being indexed would be left out: wait for it (indexing has its own deadline).
      if (resolved.layers.some((l) => archives.isBuilding(l.digest))) {
        job.attempts--;
        return this.settleMs;
      }
      const local: StoredArchive[] = [];
      for (const layer of resolved.layers) {
        if (local.some((s) => s.archive.layerDigest === layer.digest)) continue;
        const stored = await archives.get(layer.digest);
        // Only what this node indexed itself: never someone else's archive under this node's key.
        if (stored?.provenance.source === 'local') local.push(stored);
      }
      if (local.length === 0) {
        logger.debug(`auto-publish ${image}: no archive of its layers was indexed on this node`);
        return undefined;
      }
      const artifacts = await newestArchiveArtifacts(registry, ref, manifestDigest, logger);
      const existing = artifacts.find((a) => this.lists(a, local, ref.name, manifestDigest));
      if (existing) {
        metrics?.autoPublished('exists', '');
        logger.debug(`auto-publish ${image}: artifact ${existing.digest} has these archives already`);
        return undefined;
      }
      const result = await publishArchives(
        registry,
        resolved,
        local.map((s) => s.archive),
        { signal, signingKey, allLayers: false },
      );
      metrics?.autoPublished('published', '');
      const profiled = local.filter((s) => (s.archive.startupSpans?.length ?? 0) > 0).length;
      logger.info(
        `auto-publish ${image}: published the archives of ${local.length} of ${resolved.layers.length} layers ` +
          `(${profiled} with a start-up profile) as ${result.digest}, signed by ${signingKey.keyId}`,
      );
      return undefined;
    } catch (err) {
      if (this.closing.signal.aborted) throw err;
      const reason = publishFailureReason(err);
      metrics?.autoPublished('failed', reason);
      const hint = publishFailureHint(reason, ref.domain, ref.name);
      const line = `auto-publish ${image} failed (${reason}): ${errorMessage(err).replace(/\s*\n\s*/g, ' ')}${hint ? `. Fix: ${hint}` : ''}`;
      if (this.reported.has(ref.name)) logger.debug(line);
      else logger.warn(line);
      this.reported.add(ref.name);
      return isTransient(reason) && job.attempts < MAX_ATTEMPTS ? (this.opts.retryMs ?? 60_000) : undefined;
    }
  }

  /**
   * Whether `artifact` lists each of `local`'s archives, signed with this node's key for this image: the same
   * file, or, for an archive with a start-up profile, one published with a profile (publishing adds the
   * profile's start-up bundle to the archive, so its file differs; a layer's profile is recorded once).
   */
  private lists(artifact: ArchiveArtifact, local: StoredArchive[], repository: string, manifestDigest: string): boolean {
    return local.every(({ archive, digest }) =>
      artifact.layers.some((d) => {
        if (d.mediaType !== ARCHIVE_MEDIA_TYPE || d.annotations?.[ANNOTATION_LAYER_DIGEST] !== archive.layerDigest) return false;
        const profiled = (archive.startupSpans?.length ?? 0) > 0 && d.annotations?.[ANNOTATION_STARTUP_PROFILE] === 'true';
        if (d.digest !== digest && !profiled) return false;
        try {
          return trustOf(this.own, d, { repository, layerDigest: archive.layerDigest, manifestDigest }).provenance.source === 'signed';
        } catch {
          return false;
        }
      }),
    );
  }
}
