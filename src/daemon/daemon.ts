/**
 * The composition root: turns a DaemonConfig into a running snapshotter served over gRPC on a unix
 * socket, and stops it again.
 */
import { Server } from '@grpc/grpc-js';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import { ContentCache } from '../fusefs/content-cache';
import { SnapshotsService } from '../generated/containerd/services/snapshots/v1/snapshots';
import { CriKeychain, ImageServiceProxy, RAW_IMAGE_SERVICE } from '../cri';
import { CredentialChain, DockerCredentials, RegistryClient, RegistryHosts } from '../registry';
import { ContentLayerLocator } from '../containerd/content-layer-locator';
import { ArchiveStore } from '../remote/archive-store';
import { LazyLayers } from '../remote/lazy-layers';
import { createSnapshotsServer } from '../snapshotter/grpc-service';
import { TrustPolicy } from '../trust';
import { Snapshotter } from '../snapshotter/snapshotter';
import { MountHandOff } from '../fusefs/mount-handoff';
import { DaemonConfig, ServiceEnvironment } from './config';
import { prepareRoot } from './root-dir';
import { fdStoreFor, lockRoot, notifyReady, notifyStopping } from './service-manager';
import { bindPrivateSocket, prepareSocketPath } from './socket';

/** containerd's client sends and accepts messages up to 16 MiB. */
const MAX_MESSAGE_BYTES = 16 << 20;

/**
 * Lazy layers from the config: registry client, archive store and content cache under the root. Registry
 * credentials come from the CRI keychain first (when on), then from the docker config.
 */
async function createLazyLayers(
  config: DaemonConfig,
  logger: Logger,
  handOff: MountHandOff | undefined,
  keychain: CriKeychain | undefined,
): Promise<LazyParts> {
  const { lazy, registry: reg } = config;
  const docker = reg.dockerConfig
    ? await DockerCredentials.fromFile(reg.dockerConfig, { logger, helperSearchPath: (process.env.PATH ?? '').split(':') })
    : undefined;
  const registry = new RegistryClient({
    hosts: { configDir: reg.hostsDirs, plainHttp: reg.plainHttp },
    credentials: new CredentialChain(keychain, docker),
    logger,
    timeouts: {
      headersMs: reg.requestTimeoutMs,
      bodyMs: reg.requestTimeoutMs,
      requestMs: reg.requestTimeoutMs,
      minBytesPerSecond: reg.minTransferRate,
      progressWindowMs: reg.transferWindowMs,
    },
    retry: { maxAttempts: reg.retries + 1 },
  });
  const policy = await TrustPolicy.load({ trustedKeys: lazy.trustedKeys, trustedRepositories: lazy.trustedRepositories });
  if (lazy.publishedArchives && !policy.trustsPublished) {
    logger.info('published archives are not used: no [lazy] trusted_keys or trusted_repositories (layers are indexed on this node)');
  }
  const cache = new ContentCache(path.join(config.root, 'cache'));
  cache.removeIndexNamedSpans().then(
    (n) => n > 0 && logger.info(`removed ${n} span files of an older cache layout (named by index, not by digest)`),
    (err: unknown) => logger.warn(`cleaning the older cache layout: ${String(err)}`),
  );
  const { maxArchiveBytes, maxPublishedArchiveBytes, ...limits } = config.limits;
  const layers = new LazyLayers({
    registry,
    archives: new ArchiveStore(path.join(config.root, 'archives'), lazy.archiveStoreMaxBytes, logger, policy, { ...limits, maxBytes: maxArchiveBytes }),
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
    limits,
    archiveLimits: { ...limits, maxBytes: maxPublishedArchiveBytes },
    handOff,
  });
  const hosts = new RegistryHosts({ configDir: reg.hostsDirs });
  const locator = lazy.containerdAddress
    ? new ContentLayerLocator({ address: lazy.containerdAddress, logger, registriesFor: (host) => hosts.domainsNamed(host) })
    : undefined;
  return { layers, registry, locator };
}

interface LazyParts {
  layers: LazyLayers;
  registry: RegistryClient;
  locator: ContentLayerLocator | undefined;
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

export class Daemon {
  private constructor(
    private readonly server: Server,
    private readonly snapshotter: Snapshotter,
    private readonly config: DaemonConfig,
    private readonly logger: Logger,
    private readonly lazy: LazyParts | undefined,
    private readonly service: ServiceEnvironment,
    private readonly cri: { server: Server; proxy: ImageServiceProxy } | undefined,
  ) {}

  /**
   * Start-up order, so that a start can never hurt a node that is already serving: the root's lock, then
   * the socket (a live daemon's socket stops the start before any mount is touched), then the mounts the
   * earlier process handed over, then the snapshotter (stale mounts, remounts in the background), then
   * the socket is bound and the service manager told.
   */
  static async start(config: DaemonConfig, logger: Logger, service: ServiceEnvironment = { passedFds: [] }): Promise<Daemon> {
    await prepareRoot(config.root);
    lockRoot(config.root);
    await prepareSocketPath(config.address);
    let handOff: MountHandOff | undefined;
    if (config.lazy.enabled && config.lazy.liveRestart) {
      handOff = new MountHandOff(fdStoreFor(config.root, service, logger), logger);
      await handOff.load();
    }
    const keychain = config.criKeychain.enabled ? new CriKeychain() : undefined;
    const lazy = config.lazy.enabled ? await createLazyLayers(config, logger, handOff, keychain) : undefined;
    const hosts = new RegistryHosts({ configDir: config.registry.hostsDirs });
    const snapshotter = await Snapshotter.open({
      root: config.root,
      logger,
      remote: lazy?.layers,
      locator: lazy?.locator,
      fallback: { hostsDirs: hosts.configDirs, hostsFile: (host) => hosts.hostsFilePath(host) },
    });
    const server = grpcServer();
    server.addService(SnapshotsService, createSnapshotsServer(snapshotter, logger));
    let cri: { server: Server; proxy: ImageServiceProxy } | undefined;
    try {
      await bindPrivateSocket(server, config.address);
      if (keychain) cri = await startCriProxy(config, keychain, logger);
    } catch (err) {
      server.forceShutdown();
      snapshotter.close();
      await lazy?.layers.close();
      lazy?.locator?.close();
      throw err;
    }
    logger.info(`clip serving containerd snapshots on ${config.address} (root ${config.root}, lazy layers ${lazy ? 'on' : 'off'}${handOff ? `, live restart through ${handOff.description}` : ''})`);
    notifyReady(service, logger);
    return new Daemon(server, snapshotter, config, logger, lazy, service, cri);
  }

  /** Stops accepting calls, lets running ones finish (bounded), and closes the metadata store. */
  async stop(graceMs = 5000): Promise<void> {
    notifyStopping(this.service);
    await Promise.all([shutdown(this.server, graceMs), this.cri && shutdown(this.cri.server, graceMs)]);
    this.cri?.proxy.close();
    this.snapshotter.close();
    // With live restart the layer mounts stay, kept for the next clip process (reads meanwhile wait in the
    // kernel); without it they are unmounted and containers still running on them lose their lower layers.
    await this.lazy?.layers.close();
    await this.lazy?.registry.close();
    this.lazy?.locator?.close();
    await fsp.unlink(this.config.address).catch(() => undefined);
    if (this.cri) await fsp.unlink(this.config.criKeychain.imageServicePath).catch(() => undefined);
    this.logger.info('clip stopped');
  }
}
