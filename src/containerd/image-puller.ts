/**
 * Pulls an image into containerd for one snapshotter the way containerd's client pull with unpacking
 * does, with the snapshot labels CRI adds, so that a remote snapshotter such as clip can serve the
 * layers lazily (containerd 1.6/1.7 `ctr images pull` sends none):
 *
 * 1. Resolve the reference for the platform and fetch the config (RegistryClient, digests verified).
 * 2. Under a lease (expiring after a day if this process dies), store the config, the manifest and the
 *    index it was chosen from (if any) in containerd's content store, with the garbage-collection
 *    references containerd's pull sets: `containerd.io/gc.ref.content.config` and `…content.l.<i>` on
 *    the manifest, `…content.m.<i>` on the index.
 * 3. Unpack the layers through the snapshots service (LayerUnpacker): layers the snapshotter serves
 *    itself are never downloaded; the others are fetched and extracted by containerd's diff service.
 * 4. Label the config `containerd.io/gc.ref.snapshot.<snapshotter> = <top chain ID>` (what keeps the
 *    snapshots alive), create or update the image record (target: the index, else the manifest), and
 *    delete the lease.
 *
 * After that `ctr run --snapshotter <snapshotter> IMAGE` starts containers, and removing the image lets
 * containerd's garbage collector remove the content and the snapshots.
 */
import { DaemonUnreachableError, UnavailableError } from '../errors';
import {
  ImageReference,
  NoMatchingPlatformError,
  RegistryClient,
  ResolvedImage,
  formatPlatform,
  normalizePlatform,
  parseReference,
  platformRank,
} from '../registry';
import type { Platform } from '../registry';
import { ContentDescriptor, ContentStore, WriteOptions } from './content-store';
import { ContainerdClient } from './containerd-client';
import { childGcLabels, distributionSourceLabel, gcRefSnapshotLabel, mergeDistributionSource } from './labels';
import { LayerUnpacker } from './layer-unpacker';
import { LayerOutcome, PullObserver } from './pull-events';

/** A lease outlives a killed `clip pull` by at most this long. */
const LEASE_EXPIRY_MS = 24 * 3600_000;

export interface PullRequest {
  reference: string;
  snapshotter: string;
  platform?: Platform;
  signal?: AbortSignal;
}

export interface PullResult {
  /** The image record's name. */
  name: string;
  target: ContentDescriptor;
  /** Chain ID of the image's top snapshot. */
  chainId: string;
  layers: Array<{ digest: string; size: number; outcome: LayerOutcome }>;
}

/** A document (manifest or index) that goes into containerd's content store, with its exact bytes. */
interface StoredDocument {
  descriptor: ContentDescriptor;
  bytes: Buffer;
}

export class ImagePuller {
  constructor(
    private readonly containerd: ContainerdClient,
    private readonly registry: RegistryClient,
    private readonly observer: PullObserver = {},
  ) {}

  async pull(req: PullRequest): Promise<PullResult> {
    const { signal } = req;
    const reference = parseReference(req.reference);
    const name = reference.toString();
    const lease = await this.createLease();
    let pulled: PullResult | undefined;
    try {
      pulled = await this.pullLeased(req, this.containerd.withLease(lease, signal), reference, name, signal);
    } finally {
      // Without the lease, what the image does not reference (everything, after a failure) is garbage.
      const deleted = this.containerd.leases.delete(lease);
      if (pulled) await deleted;
      else await deleted.catch(() => undefined);
    }
    return pulled;
  }

  /** The first call to containerd: a lease, or a clear error when containerd cannot be reached. */
  private async createLease(): Promise<string> {
    try {
      return await this.containerd.leases.create('clip-pull', LEASE_EXPIRY_MS);
    } catch (err) {
      if (!(err instanceof UnavailableError)) throw err;
      throw new DaemonUnreachableError(`cannot reach containerd at ${this.containerd.options.address}: ${connectionProblem(err)}`, { cause: err });
    }
  }

  /**
   * The index the platform manifest was chosen from (the image record's target, as in containerd), with
   * its exact bytes and all its entries (containerd's pull references every platform's manifest from
   * the index, fetched or not). Undefined for a reference that names a manifest, and for nested indexes,
   * whose record then points at the platform manifest.
   */
  private async indexDocument(image: ResolvedImage, manifest: StoredDocument, signal?: AbortSignal): Promise<(StoredDocument & { manifests: ContentDescriptor[] }) | undefined> {
    if (image.indexDigest === undefined) return undefined;
    const fetched = await this.registry.fetchManifest(image.reference.withDigest(image.indexDigest), { signal });
    if (fetched.parsed.kind !== 'index') return undefined;
    const { index, mediaType } = fetched.parsed;
    if (!index.manifests.some((m) => m.digest === manifest.descriptor.digest)) return undefined;
    return { descriptor: { mediaType, digest: fetched.digest, size: fetched.size }, bytes: fetched.bytes, manifests: index.manifests };
  }

  private async pullLeased(req: PullRequest, leased: ContainerdClient, reference: ImageReference, name: string, signal?: AbortSignal): Promise<PullResult> {
    const image = await this.registry.resolve(reference, { platform: req.platform, signal });
    const config = await this.registry.fetchConfig(reference, image.config, { signal });
    if (req.platform && image.indexDigest === undefined) checkConfigPlatform(config.config, req.platform);
    const manifest = manifestDocument(image);
    const index = await this.indexDocument(image, manifest, signal);
    const target = (index ?? manifest).descriptor;
    this.observer.resolved?.({
      name,
      digest: target.digest,
      platform: image.platform ? formatPlatform(image.platform) : undefined,
      layers: image.layers.map((l) => ({ digest: l.digest, size: l.size })),
    });

    const source = { host: reference.domain, repository: reference.path };
    await storeBlob(leased.content, source, { ref: `config-${config.digest}`, descriptor: image.config, data: config.raw });
    await storeBlob(leased.content, source, {
      ref: `manifest-${manifest.descriptor.digest}`,
      descriptor: manifest.descriptor,
      data: manifest.bytes,
      labels: childGcLabels([image.config, ...image.layers]),
    });
    if (index) {
      await storeBlob(leased.content, source, {
        ref: `index-${index.descriptor.digest}`,
        descriptor: index.descriptor,
        data: index.bytes,
        labels: childGcLabels(index.manifests),
      });
    }

    const unpacker = new LayerUnpacker({
      snapshots: leased.snapshots(req.snapshotter),
      content: leased.content,
      diff: leased.diff,
      registry: this.registry,
      observer: this.observer,
    });
    const { chainId, outcomes } = await unpacker.unpack({
      reference,
      imageRef: name,
      manifestDigest: image.digest,
      layers: image.layers,
      diffIds: config.diffIds,
      blobLabels: { [distributionSourceLabel(source.host)]: source.repository },
      signal,
    });

    await leased.content.setLabels(config.digest, { [gcRefSnapshotLabel(req.snapshotter)]: chainId });
    await leased.images.createOrUpdate({ name, target, labels: {} });
    return { name, target, chainId, layers: image.layers.map((l, i) => ({ digest: l.digest, size: l.size, outcome: outcomes[i]! })) };
  }
}

/** The platform manifest with the exact bytes the registry sent (verified against its digest). */
function manifestDocument(image: ResolvedImage): StoredDocument {
  return { descriptor: { mediaType: image.mediaType, digest: image.digest, size: image.size }, bytes: image.bytes };
}

/** The useful part of grpc-js's "No connection established. Last error: Error: connect ENOENT /x. Resolution note: …". */
function connectionProblem(err: Error): string {
  const details = err.cause instanceof Error && 'details' in err.cause ? String(err.cause.details) : err.message;
  const last = /Last error: (?:Error: )?(.*?)\.?(?: Resolution note:.*)?$/.exec(details);
  return last?.[1] || details;
}

/**
 * A single-platform image (no index to choose from) must still be for the platform asked for; containerd
 * checks the config the same way when it reads the image.
 */
function checkConfigPlatform(config: Record<string, unknown>, wanted: Platform): void {
  const { os, architecture, variant } = config;
  if (typeof os !== 'string' || typeof architecture !== 'string') return;
  const actual: Platform = { os, architecture, variant: typeof variant === 'string' ? variant : undefined };
  if (platformRank(wanted, actual) === undefined) {
    throw new NoMatchingPlatformError(`the image is for ${formatPlatform(normalizePlatform(actual))}, not ${formatPlatform(normalizePlatform(wanted))}`);
  }
}

/**
 * Stores a blob (a blob containerd has already is added to the lease and only labelled), with the
 * distribution-source label (the repositories a blob is known to be in, which lets a later push mount
 * it across repositories) as containerd's pull sets it.
 */
async function storeBlob(content: ContentStore, source: { host: string; repository: string }, write: WriteOptions): Promise<void> {
  const key = distributionSourceLabel(source.host);
  const existing = await content.info(write.descriptor.digest);
  await content.write({ ...write, labels: { ...write.labels, [key]: mergeDistributionSource(existing?.labels[key], source.repository) } });
}
