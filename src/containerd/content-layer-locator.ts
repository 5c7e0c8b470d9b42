/**
 * Finds the layer an unpack Prepare is for when containerd sends no layer labels, only
 * `containerd.io/snapshot.ref` (the chain ID): nerdctl's pull for snapshotters it does not know, CRI with
 * `disable_snapshot_annotations = true`, containerd 2.x's transfer service without the
 * `enable_remote_snapshot_annotations` export. containerd's unpacker stores the image's manifest and
 * config in the content store before it prepares the first layer, and fetches no layer blob before a
 * Prepare that is not ALREADY_EXISTS (README, "Lazy pulls without layer labels"). The manifest carries
 * `containerd.io/gc.ref.content.config` (its config) and `containerd.io/distribution.source.<host>` (the
 * repositories it came from); the config's diff IDs give the chain IDs of the manifest's layers. The
 * manifest whose chain holds the target names the layer; the result is the labels CRI would have sent.
 *
 * Everything read here is untrusted: manifest and config bytes are checked against their digests, and the
 * layer they name is only a suggestion, since the layer's bytes are verified against its digest and its
 * diff ID against the chain ID when it is indexed (docs/security.md). The search is bounded: one listing
 * of at most maxListed manifests, the maxManifests most recently updated ones read, within deadlineMs;
 * what a manifest maps to is cached (manifests never change).
 */
import type { Logger } from 'winston';
import { errorMessage, InvalidArgumentError, NotFoundError, NotImplementedError } from '../errors';
import { computeDigest, parseImageConfig, parseManifest, parseReference, type Descriptor } from '../registry';
import { chainIds } from '../snapshotter/chain-id';
import type { LayerLocator } from '../snapshotter/remote-layers';
import type { Labels } from '../snapshotter/types';
import { ContainerdClient } from './containerd-client';
import type { ContentInfo } from './content-store';
import { LABEL_GC_REF_CONFIG, DISTRIBUTION_SOURCE_PREFIX } from './labels';
import { layerSnapshotLabels } from './snapshot-labels';

export interface LocatorLimits {
  /** Manifests listed from the content store at most (a bigger store fails the lookup). */
  maxListed: number;
  /** Manifests (and their configs) read per lookup, most recently updated first. */
  maxManifests: number;
  /** Largest manifest or config blob read. */
  maxBlobBytes: number;
  /** Time a lookup may take, all calls to containerd included. */
  deadlineMs: number;
  /** Manifests whose chain IDs are remembered. */
  maxCached: number;
}

export const DEFAULT_LOCATOR_LIMITS: LocatorLimits = {
  maxListed: 10_000,
  maxManifests: 32,
  maxBlobBytes: 8 << 20,
  deadlineMs: 20_000,
  maxCached: 1024,
};

export interface ContentLayerLocatorOptions {
  /** containerd's gRPC socket. */
  address: string;
  logger: Logger;
  /**
   * The registries (`host[:port]`) a distribution-source host may stand for, best first. containerd's
   * label keeps the host name only, without the port (remotes/docker/handler.go, AppendDistributionSourceLabel).
   */
  registriesFor: (hostname: string) => Promise<string[]>;
  limits?: Partial<LocatorLimits>;
}

/** What one manifest of the content store maps to. */
interface ManifestChains {
  digest: string;
  layers: Descriptor[];
  chainIds: string[];
}

/** Connections to containerd kept open, one per namespace. */
const MAX_CLIENTS = 8;

const NAMESPACE = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;

export class ContentLayerLocator implements LayerLocator {
  private readonly limits: LocatorLimits;
  private readonly clients = new Map<string, ContainerdClient>();
  /** By `<namespace> <manifest digest>`, oldest first; an unusable manifest maps to no chain IDs. */
  private readonly manifests = new Map<string, ManifestChains>();
  /** The scan running per namespace: lookups of one namespace take turns. */
  private readonly scans = new Map<string, Promise<unknown>>();

  constructor(private readonly opts: ContentLayerLocatorOptions) {
    this.limits = { ...DEFAULT_LOCATOR_LIMITS, ...opts.limits };
  }

  async locate(target: string, namespace: string, signal?: AbortSignal): Promise<Labels | undefined> {
    if (!NAMESPACE.test(namespace) || namespace.length > 76) return undefined;
    const previous = this.scans.get(namespace) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.lookUp(target, namespace, signal));
    this.scans.set(namespace, run);
    try {
      return await run;
    } catch (err) {
      this.opts.logger.info(`layer ${target}: looking it up in containerd's content store (namespace ${namespace}) failed: ${errorMessage(err)}`);
      return undefined;
    } finally {
      if (this.scans.get(namespace) === run) this.scans.delete(namespace);
    }
  }

  close(): void {
    for (const client of this.clients.values()) client.close();
    this.clients.clear();
  }

  private async lookUp(target: string, namespace: string, outer?: AbortSignal): Promise<Labels | undefined> {
    const deadline = AbortSignal.timeout(this.limits.deadlineMs);
    const signal = outer ? AbortSignal.any([outer, deadline]) : deadline;
    const client = this.clientFor(namespace).withSignal(signal);
    let found = this.cached(namespace, target);
    let info: ContentInfo | undefined;
    if (found) {
      info = await client.content.info(found.digest);
      // The image was removed since: forget it and look again (another image may share the layer).
      if (!info) this.manifests.delete(`${namespace} ${found.digest}`);
    }
    if (!found || !info) {
      found = undefined;
      const listed = await client.content.list([`labels."${LABEL_GC_REF_CONFIG}"`], this.limits.maxListed, this.limits.deadlineMs);
      const newest = listed
        .filter((i) => !this.manifests.has(`${namespace} ${i.digest}`))
        .sort((a, b) => (b.updatedMs ?? 0) - (a.updatedMs ?? 0))
        .slice(0, this.limits.maxManifests);
      for (const candidate of newest) {
        const chains = await this.examine(client, candidate);
        if (!chains) continue;
        this.remember(namespace, chains);
        if (chains.chainIds.includes(target)) {
          found = chains;
          info = candidate;
          break;
        }
      }
    }
    if (!found) {
      this.opts.logger.info(`layer ${target}: no manifest in containerd's content store (namespace ${namespace}) has it`);
      return undefined;
    }
    const imageRef = info && (await this.imageRefOf(info));
    if (!imageRef) {
      this.opts.logger.info(`layer ${target}: manifest ${found.digest} has no usable containerd.io/distribution.source label`);
      return undefined;
    }
    const index = found.chainIds.indexOf(target);
    this.opts.logger.info(`layer ${target} is ${found.layers[index]!.digest} of ${imageRef} (found in containerd's content store, namespace ${namespace})`);
    return layerSnapshotLabels({ chainId: target, imageRef, manifestDigest: found.digest, layers: found.layers, index });
  }

  private cached(namespace: string, target: string): ManifestChains | undefined {
    for (const [key, chains] of this.manifests) {
      if (key.startsWith(`${namespace} `) && chains.chainIds.includes(target)) return chains;
    }
    return undefined;
  }

  private remember(namespace: string, chains: ManifestChains): void {
    this.manifests.set(`${namespace} ${chains.digest}`, chains);
    while (this.manifests.size > this.limits.maxCached) this.manifests.delete(this.manifests.keys().next().value!);
  }

  /**
   * The manifest's layers and their chain IDs; none for a blob that is not a usable image manifest;
   * undefined (not remembered) while its config is not stored yet (another pull in progress).
   */
  private async examine(client: ContainerdClient, info: ContentInfo): Promise<ManifestChains | undefined> {
    const none: ManifestChains = { digest: info.digest, layers: [], chainIds: [] };
    const source = `manifest ${info.digest} in containerd's content store`;
    try {
      const manifestBytes = await this.readVerified(client, info.digest);
      const parsed = parseManifest(manifestBytes, undefined, source);
      if (parsed.kind !== 'manifest') return none;
      const { config, layers } = parsed.manifest;
      const configBytes = await this.readVerified(client, config.digest);
      const { diffIds } = parseImageConfig(configBytes, config.digest, `config of ${source}`);
      // containerd's unpack refuses such an image too ("mismatched image rootfs and manifest layers").
      if (diffIds.length !== layers.length) return none;
      return { digest: info.digest, layers, chainIds: chainIds(diffIds) };
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      // A blob that is no manifest clip can read (bad JSON, schema 1, another media type): remembered as such.
      if (!(err instanceof InvalidArgumentError || err instanceof NotImplementedError)) throw err;
      this.opts.logger.debug(`${source}: ${errorMessage(err)}`);
      return none;
    }
  }

  private async readVerified(client: ContainerdClient, digest: string): Promise<Buffer> {
    const bytes = await client.content.read(digest, this.limits.maxBlobBytes, this.limits.deadlineMs);
    if (computeDigest(bytes) !== digest) throw new InvalidArgumentError(`content ${digest}: bytes do not match the digest`);
    return bytes;
  }

  /**
   * `registry/repository@manifest` from the manifest's distribution-source labels: the first host (in
   * name order) with a repository, the registry it most likely stands for.
   */
  private async imageRefOf(info: ContentInfo): Promise<string | undefined> {
    const sources = Object.entries(info.labels)
      .filter(([key]) => key.startsWith(DISTRIBUTION_SOURCE_PREFIX))
      .sort(([a], [b]) => (a < b ? -1 : 1));
    for (const [key, value] of sources) {
      const host = key.slice(DISTRIBUTION_SOURCE_PREFIX.length);
      const repository = value.split(',').find((r) => r !== '');
      if (!repository) continue;
      const registry = (await this.opts.registriesFor(host))[0] ?? host;
      const ref = `${registry}/${repository}@${info.digest}`;
      try {
        parseReference(ref);
        return ref;
      } catch {
        continue;
      }
    }
    return undefined;
  }

  private clientFor(namespace: string): ContainerdClient {
    let client = this.clients.get(namespace);
    if (!client) {
      client = new ContainerdClient({ address: this.opts.address, namespace });
      this.clients.set(namespace, client);
      // One connection per namespace: a node has a handful of them; keep the most recent few.
      while (this.clients.size > MAX_CLIENTS) {
        const [oldest, old] = this.clients.entries().next().value!;
        this.clients.delete(oldest);
        old.close();
      }
    }
    return client;
  }
}
