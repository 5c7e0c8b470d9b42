/**
 * The composition root: turns a DaemonConfig into a running snapshotter served over gRPC on a unix
 * socket, and stops it again.
 */
import { Server } from '@grpc/grpc-js';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import { CacheCollector } from '../fusefs/cache-collector';
import { filesystemSpace } from '../fusefs/cache-scan';
import { ContentCache, type CacheUsage } from '../fusefs/content-cache';
import { SnapshotsService } from '../generated/containerd/services/snapshots/v1/snapshots';
import { CriKeychain, ImageServiceProxy, RAW_IMAGE_SERVICE } from '../cri';
import { CredentialChain, DockerCredentials, RegistryClient, RegistryHosts } from '../registry';
import { ContentLayerLocator } from '../containerd/content-layer-locator';
import { ArchivePublisher } from '../remote/archive-publisher';
import { ArchiveStore } from '../remote/archive-store';
import { LazyLayers } from '../remote/lazy-layers';
import { createSnapshotsServer } from '../snapshotter/grpc-service';
import { TrustPolicy, loadSigningKey, type SigningKey } from '../trust';
import { Snapshotter } from '../snapshotter/snapshotter';
import { MountHandOff } from '../fusefs/mount-handoff';
import { buildInfo } from '../build-info';
import { readsWaitingLongerThan } from '../fusefs/layer-filesystem';
import { ClipMetrics } from '../metrics/clip-metrics';
import { directoryBytes } from '../metrics/directory-bytes';
import { parseListenAddress } from '../metrics/listen-address';
import { ConfigError, errorMessage } from '../errors';
import { DaemonConfig, ServiceEnvironment, adminSocketPath, diskShareBytes } from './config';
import { daemonStatus } from './daemon-status';
import { HttpEndpoint } from './http-endpoint';
import { prepareRoot } from './root-dir';
import { fdStoreFor, lockRoot, notifyReady, notifyStopping } from './service-manager';
import { bindPrivateSocket, prepareSocketPath } from './socket';

/** containerd's client sends and accepts messages up to 16 MiB. */
const MAX_MESSAGE_BYTES = 16 << 20;

/**
 * Lazy layers from the config: registry client, archive store and content cache under the root. Registry
 * credentials come from the CRI keychain first (when on), then from the docker config.
 */
interface Lazy {
  layers: LazyLayers;
  registry: RegistryClient;
  cache: ContentCache;
  /** Finds the layer of a Prepare that names only its chain ID, in containerd's content store. */
  locator: ContentLayerLocator | undefined;
  /** Publishes the archives this node indexes ([lazy] auto_publish). */
  publisher: ArchivePublisher | undefined;
}

async function createLazyLayers(
  config: DaemonConfig,
  logger: Logger,
  handOff: MountHandOff | undefined,
  keychain: CriKeychain | undefined,
  metrics: ClipMetrics | undefined,
): Promise<Lazy> {
  const { lazy, registry: reg } = config;
  const docker = reg.dockerConfig
    ? await DockerCredentials.fromFile(reg.dockerConfig, { logger, helperSearchPath: (process.env.PATH ?? '').split(':') })
    : undefined;
  const client = (credentials: CredentialChain): RegistryClient =>
    new RegistryClient({
      hosts: { configDir: reg.hostsDirs, plainHttp: reg.plainHttp },
      credentials,
      logger,
      timeouts: {
        headersMs: reg.requestTimeoutMs,
        bodyMs: reg.requestTimeoutMs,
        requestMs: reg.requestTimeoutMs,
        minBytesPerSecond: reg.minTransferRate,
        progressWindowMs: reg.transferWindowMs,
      },
      retry: { maxAttempts: reg.retries + 1 },
      observer: metrics,
    });
  const registry = client(new CredentialChain(keychain, docker));
  const policy = await TrustPolicy.load({ trustedKeys: lazy.trustedKeys, trustedRepositories: lazy.trustedRepositories });
  if (lazy.publishedArchives && !policy.trustsPublished) {
    logger.info('published archives are not used: no [lazy] trusted_keys or trusted_repositories (layers are indexed on this node)');
  }
  const cache = await openContentCache(config, logger);
  cache.removeIndexNamedSpans().then(
    (n) => n > 0 && logger.info(`removed ${n} span files of an older cache layout (named by index, not by digest)`),
    (err: unknown) => logger.warn(`cleaning the older cache layout: ${String(err)}`),
  );
  const { maxArchiveBytes, maxPublishedArchiveBytes, maxStartupBundleBytes, ...limits } = config.limits;
  const archives = new ArchiveStore(path.join(config.root, 'archives'), lazy.archiveStoreMaxBytes, logger, policy, {
    ...limits,
    maxBytes: maxArchiveBytes,
    maxStartupBundleBytes,
  });
  // Publishing pushes with the node's own credentials only: the CRI keychain holds kubelet's pull secrets,
  // which would be tried first and usually cannot push.
  const publisher = lazy.autoPublish
    ? new ArchivePublisher({ registry: client(new CredentialChain(docker)), archives, signingKey: await publishKey(lazy.publishKey), logger, metrics })
    : undefined;
  if (publisher) logger.info(`auto_publish: archives indexed on this node are published in their image's repository, signed by ${publisher.keyId}`);
  const layers = new LazyLayers({
    registry,
    archives,
    policy,
    verifyPublished: lazy.verifyPublished === 'background',
    cache,
    logger,
    spanSize: lazy.spanSize,
    cacheWhileIndexing: lazy.cacheWhileIndexing,
    backgroundFetch: lazy.backgroundFetch,
    prefetchImageLayers: lazy.prefetchImageLayers,
    indexConcurrency: lazy.indexConcurrency,
    readTimeoutMs: lazy.readTimeoutMs,
    publishedArchives: lazy.publishedArchives,
    startupProfiles: lazy.startupProfiles,
    startupBundles: lazy.startupBundles,
    limits,
    archiveLimits: { ...limits, maxBytes: maxPublishedArchiveBytes, maxStartupBundleBytes },
    handOff,
    metrics,
    publisher,
  });
  const hosts = new RegistryHosts({ configDir: reg.hostsDirs });
  const locator = lazy.containerdAddress
    ? new ContentLayerLocator({ address: lazy.containerdAddress, logger, registriesFor: (host) => hosts.domainsNamed(host) })
    : undefined;
  return { layers, registry, cache, locator, publisher };
}

/** The node's signing key ([lazy] publish_key); a key that cannot be loaded is a configuration error. */
async function publishKey(file: string): Promise<SigningKey> {
  try {
    return await loadSigningKey(file);
  } catch (err) {
    throw new ConfigError(`[lazy] publish_key: ${errorMessage(err)}`, { cause: err });
  }
}

/** The content cache under the root, with its bounds resolved against its filesystem's size ([cache]). */
async function openContentCache(config: DaemonConfig, logger: Logger): Promise<ContentCache> {
  const dir = path.join(config.root, 'cache');
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const { totalBytes } = await filesystemSpace(dir);
  const maxBytes = diskShareBytes(config.cache.maxSize, totalBytes);
  const minFreeBytes = diskShareBytes(config.cache.minFree, totalBytes);
  const cache = new ContentCache(dir, { maxBytes, minFreeBytes });
  await cache.load();
  const { totalBytes: held, layers, evictedBytes } = cache.usage();
  const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;
  logger.info(
    `content cache ${dir}: ${mib(held)} in ${layers.length} layers, max_size ${mib(maxBytes)}, min_free ${mib(minFreeBytes)}` +
      (evictedBytes > 0 ? ` (evicted ${mib(evictedBytes)} to fit max_size)` : ''),
  );
  return cache;
}

function grpcServer(): Server {
  return new Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
}

/** Lets running calls finish for up to graceMs, then cuts them off. */
function shutdown(server: Server, graceMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** The CRI image-service proxy ([cri_keychain]) on its own socket. */
async function startCriProxy(config: DaemonConfig, keychain: CriKeychain, logger: Logger): Promise<{ server: Server; proxy: ImageServiceProxy }> {
  const proxy = new ImageServiceProxy({ containerdSocket: config.criKeychain.containerdImageService, keychain, logger });
  const server = grpcServer();
  server.addService(RAW_IMAGE_SERVICE, proxy.implementation());
  try {
    await bindPrivateSocket(server, config.criKeychain.imageServicePath);
  } catch (err) {
    server.forceShutdown();
    proxy.close();
    throw err;
  }
  logger.info(`clip serving the CRI image service on ${config.criKeychain.imageServicePath}, forwarding to ${config.criKeychain.containerdImageService}`);
  return { server, proxy };
}

/**
 * The operators' endpoints: /metrics on [metrics] address (when set), and /status on the admin socket
 * beside the main one (adminSocketPath).
 */
async function startEndpoints(
  config: DaemonConfig,
  logger: Logger,
  snapshotter: Snapshotter,
  lazy: Lazy | undefined,
  metrics: ClipMetrics | undefined,
  configFile: string | undefined,
): Promise<HttpEndpoint[]> {
  const endpoints: HttpEndpoint[] = [];
  const startedAt = Date.now();
  try {
    if (metrics) {
      metrics.setSources({
        archiveStoreBytes: () => directoryBytes(path.join(config.root, 'archives')),
        contentCacheBytes: async () => lazy?.cache.usage().totalBytes ?? 0,
        mountedLayers: () => lazy?.layers.mountedCount ?? 0,
        readsWaitingLongerThan,
      });
      const address = parseListenAddress(config.metrics.address);
      if (address.kind !== 'off') {
        const endpoint = await HttpEndpoint.start(address, { '/metrics': () => metrics.exposition() }, logger);
        endpoints.push(endpoint);
        logger.info(`clip serving metrics on ${endpoint.description}/metrics`);
      }
    }
    const metricsAt = endpoints[0]?.description;
    const status = async () => ({
      contentType: 'application/json',
      body: `${JSON.stringify(
        await daemonStatus({ build: buildInfo(), startedAt, configFile, root: config.root, address: config.address, metrics: metricsAt, snapshotter, lazy }),
        null,
        2,
      )}\n`,
    });
    endpoints.push(await HttpEndpoint.start({ kind: 'unix', path: adminSocketPath(config.address) }, { '/status': status }, logger));
  } catch (err) {
    await Promise.all(endpoints.map((e) => e.close()));
    throw err;
  }
  return endpoints;
}

export class Daemon {
  private constructor(
    private readonly server: Server,
    private readonly snapshotter: Snapshotter,
    private readonly config: DaemonConfig,
    private readonly logger: Logger,
    private readonly lazy: Lazy | undefined,
    private readonly service: ServiceEnvironment,
    private readonly cri: { server: Server; proxy: ImageServiceProxy } | undefined,
    private readonly endpoints: HttpEndpoint[],
    private readonly metrics: ClipMetrics | undefined,
    private readonly collector: CacheCollector | undefined,
  ) {}

  /** The content cache's bytes per layer, bound and evictions (undefined when lazy layers are off). */
  cacheUsage(): CacheUsage | undefined {
    return this.lazy?.cache.usage();
  }

  /**
   * Start-up order, so that a start can never hurt a node that is already serving: the root's lock, then
   * the socket (a live daemon's socket stops the start before any mount is touched), then the mounts the
   * earlier process handed over, then the snapshotter (stale mounts, remounts in the background), then
   * the socket is bound and the service manager told.
   */
  static async start(config: DaemonConfig, logger: Logger, service: ServiceEnvironment = { passedFds: [] }, configFile?: string): Promise<Daemon> {
    await prepareRoot(config.root);
    lockRoot(config.root);
    await prepareSocketPath(config.address);
    let handOff: MountHandOff | undefined;
    if (config.lazy.enabled && config.lazy.liveRestart) {
      handOff = new MountHandOff(fdStoreFor(config.root, service, logger, config.lazy.liveRestartTimeoutMs), logger);
      await handOff.load();
    }
    const keychain = config.criKeychain.enabled ? new CriKeychain() : undefined;
    const metrics = config.metrics.address !== '' ? new ClipMetrics(buildInfo()) : undefined;
    const lazy = config.lazy.enabled ? await createLazyLayers(config, logger, handOff, keychain, metrics) : undefined;
    const hosts = new RegistryHosts({ configDir: config.registry.hostsDirs });
    const snapshotter = await Snapshotter.open({
      root: config.root,
      logger,
      remote: lazy?.layers,
      locator: lazy?.locator,
      fallback: { hostsDirs: hosts.configDirs, hostsFile: (host) => hosts.hostsFilePath(host) },
      metrics,
    });
    const server = grpcServer();
    server.addService(SnapshotsService, createSnapshotsServer(snapshotter, logger));
    let cri: { server: Server; proxy: ImageServiceProxy } | undefined;
    let endpoints: HttpEndpoint[] = [];
    try {
      await bindPrivateSocket(server, config.address);
      if (keychain) cri = await startCriProxy(config, keychain, logger);
      endpoints = await startEndpoints(config, logger, snapshotter, lazy, metrics, configFile);
    } catch (err) {
      server.forceShutdown();
      if (cri) {
        cri.server.forceShutdown();
        cri.proxy.close();
      }
      snapshotter.close();
      metrics?.close();
      await lazy?.publisher?.close();
      await lazy?.layers.close();
      lazy?.locator?.close();
      throw err;
    }
    let collector: CacheCollector | undefined;
    if (lazy) {
      collector = new CacheCollector({ cache: lazy.cache, referenced: () => snapshotter.referencedLayers(), graceMs: config.cache.gcGraceMs, logger });
      collector.start();
    }
    logger.info(`clip serving containerd snapshots on ${config.address} (root ${config.root}, lazy layers ${lazy ? 'on' : 'off'}${handOff ? `, live restart through ${handOff.description}` : ''})`);
    notifyReady(service, logger);
    return new Daemon(server, snapshotter, config, logger, lazy, service, cri, endpoints, metrics, collector);
  }

  /** Stops accepting calls, lets running ones finish (bounded), and closes the metadata store. */
  async stop(graceMs = 5000): Promise<void> {
    notifyStopping(this.service);
    await Promise.all([shutdown(this.server, graceMs), this.cri && shutdown(this.cri.server, graceMs), ...this.endpoints.map((e) => e.close())]);
    this.metrics?.close();
    this.cri?.proxy.close();
    await this.collector?.stop();
    this.snapshotter.close();
    // With live restart the layer mounts stay, kept for the next clip process (reads meanwhile wait in the
    // kernel); without it they are unmounted and containers still running on them lose their lower layers.
    await this.lazy?.publisher?.close();
    await this.lazy?.layers.close();
    await this.lazy?.registry.close();
    this.lazy?.locator?.close();
    await fsp.unlink(this.config.address).catch(() => undefined);
    if (this.cri) await fsp.unlink(this.config.criKeychain.imageServicePath).catch(() => undefined);
    this.logger.info('clip stopped');
  }
}
