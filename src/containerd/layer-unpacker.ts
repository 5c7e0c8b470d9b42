/**
 * Unpacks an image's layers into a snapshotter the way containerd's unpacker does (containerd 1.6
 * unpacker.go, 1.7 pkg/unpack), so that a remote snapshotter can serve layers itself. For each layer,
 * bottom up, with chainID = ChainID(layers 0…i) and parent = ChainID(layers 0…i−1):
 *
 * 1. Stat(chainID): it exists → next layer.
 * 2. Prepare("extract-<unique> <chainID>", parent, labels with containerd.io/snapshot.ref = chainID and
 *    the cri.* labels), up to 3 keys:
 *    * ALREADY_EXISTS → Stat(chainID): found → the snapshotter committed it itself (a lazy layer), next
 *      layer; not found → try another key.
 * 3. Otherwise the snapshotter returned mounts to fill: the layer blob is fetched into containerd's
 *    content store, containerd's diff service extracts it onto the mounts, the result must equal the
 *    layer's diff ID, and the snapshot is committed as chainID (ALREADY_EXISTS: another pull won, fine).
 *    The blob gets `containerd.io/uncompressed = <diff ID>`. On failure the extraction snapshot is removed.
 */
import { randomBytes } from 'node:crypto';
import { AlreadyExistsError, InternalError } from '../errors';
import { ImageReference, RegistryClient } from '../registry';
import { LABEL_REMOTE } from '../snapshotter/labels';
import { chainIds } from '../snapshotter/chain-id';
import { ContentDescriptor, ContentStore } from './content-store';
import { DiffService } from './diff-service';
import { LABEL_UNCOMPRESSED } from './labels';
import { LayerOutcome, PullObserver } from './pull-events';
import { SnapshotInfo, SnapshotService, Mount } from './snapshot-service';
import { layerSnapshotLabels } from './snapshot-labels';

const PREPARE_ATTEMPTS = 3;

export interface UnpackRequest {
  /** Where layer blobs are fetched from when a layer must be extracted locally. */
  reference: ImageReference;
  /** The image reference snapshotters see in containerd.io/snapshot/cri.image-ref. */
  imageRef: string;
  manifestDigest: string;
  layers: ContentDescriptor[];
  diffIds: string[];
  /** Labels for layer blobs written to the content store (e.g. the distribution source). */
  blobLabels: Record<string, string>;
  signal?: AbortSignal;
}

export interface UnpackResult {
  /** Chain ID of the top layer: the image's snapshot. */
  chainId: string;
  outcomes: LayerOutcome[];
}

export interface LayerUnpackerDeps {
  snapshots: SnapshotService;
  content: ContentStore;
  diff: DiffService;
  registry: RegistryClient;
  observer?: PullObserver;
}

/** containerd's uniquePart(): `<nanoseconds of now>-<base64url of 3 random bytes>`. */
function uniquePart(): string {
  return `${process.hrtime.bigint() % 1_000_000_000n}-${randomBytes(3).toString('base64url')}`;
}

const outcomeOf = (info: SnapshotInfo, lazy: LayerOutcome): LayerOutcome => (info.labels[LABEL_REMOTE] ? lazy : 'present');

export class LayerUnpacker {
  constructor(private readonly deps: LayerUnpackerDeps) {}

  async unpack(req: UnpackRequest): Promise<UnpackResult> {
    if (req.layers.length === 0) throw new InternalError(`${req.imageRef}: the image has no layers`);
    if (req.diffIds.length !== req.layers.length) {
      throw new InternalError(`${req.imageRef}: the config lists ${req.diffIds.length} diff IDs for ${req.layers.length} layers`);
    }
    const chain = chainIds(req.diffIds);
    const outcomes: LayerOutcome[] = [];
    req.layers.forEach((_, i) => this.deps.observer?.layer?.(i, { state: 'waiting' }));
    for (let i = 0; i < req.layers.length; i++) {
      req.signal?.throwIfAborted();
      const outcome = await this.unpackLayer(req, i, chain[i]!, chain[i - 1] ?? '');
      outcomes.push(outcome);
      this.deps.observer?.layer?.(i, { state: 'done', outcome });
    }
    return { chainId: chain[chain.length - 1]!, outcomes };
  }

  private async unpackLayer(req: UnpackRequest, index: number, chainId: string, parent: string): Promise<LayerOutcome> {
    const { snapshots } = this.deps;
    const existing = await snapshots.stat(chainId);
    if (existing) return 'present';

    this.deps.observer?.layer?.(index, { state: 'preparing' });
    const labels = layerSnapshotLabels({ chainId, imageRef: req.imageRef, manifestDigest: req.manifestDigest, layers: req.layers, index });
    for (let attempt = 1; attempt <= PREPARE_ATTEMPTS; attempt++) {
      const key = `extract-${uniquePart()} ${chainId}`;
      let mounts: Mount[];
      try {
        mounts = await snapshots.prepare(key, parent, labels);
      } catch (err) {
        if (!(err instanceof AlreadyExistsError)) throw err;
        const committed = await snapshots.stat(chainId);
        if (committed) return outcomeOf(committed, 'lazy');
        continue; // "extraction snapshot already exists, chain id not found": another key
      }
      await this.extract(req, index, key, mounts, chainId, labels);
      return 'unpacked';
    }
    throw new InternalError(`layer ${req.layers[index]!.digest}: unable to prepare extraction snapshot ${chainId} after ${PREPARE_ATTEMPTS} attempts`);
  }

  /** Fetches, applies and commits one layer into the prepared snapshot `key`; removes `key` on failure. */
  private async extract(req: UnpackRequest, index: number, key: string, mounts: Mount[], chainId: string, labels: Record<string, string>): Promise<void> {
    const { snapshots, content, diff, observer } = this.deps;
    const layer = req.layers[index]!;
    try {
      await this.fetchLayer(req, index);
      observer?.layer?.(index, { state: 'applying' });
      const diffId = await diff.apply(layer, mounts);
      if (diffId !== req.diffIds[index]) {
        throw new InternalError(`layer ${layer.digest}: extracted content has diff ID ${diffId}, the image config says ${req.diffIds[index]}`);
      }
      try {
        await snapshots.commit(chainId, key, labels);
      } catch (err) {
        if (!(err instanceof AlreadyExistsError)) throw err;
        await snapshots.remove(key); // another pull committed this chain ID first
      }
    } catch (err) {
      await snapshots.remove(key).catch(() => undefined);
      throw err;
    }
    await content.setLabels(layer.digest, { [LABEL_UNCOMPRESSED]: req.diffIds[index]! });
  }

  /**
   * Streams the layer blob from the registry into containerd's content store. A blob containerd has
   * already is only added to the lease: the registry is asked for the blob once containerd wants data.
   */
  private async fetchLayer(req: UnpackRequest, index: number): Promise<void> {
    const { content, registry, observer } = this.deps;
    const layer = req.layers[index]!;
    observer?.layer?.(index, { state: 'fetching', bytes: 0 });
    async function* blobBytes(): AsyncGenerator<Buffer> {
      const blob = await registry.openBlob(req.reference, layer.digest, { signal: req.signal });
      yield* blob.stream({ signal: req.signal });
    }
    await content.write({
      ref: `layer-${layer.digest}`,
      descriptor: layer,
      data: blobBytes(),
      labels: req.blobLabels,
      onProgress: (bytes) => observer?.layer?.(index, { state: 'fetching', bytes }),
    });
  }
}
