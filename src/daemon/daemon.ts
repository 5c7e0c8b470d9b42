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
import { CredentialChain, DockerCredentials, RegistryClient } from '../registry';
import { ArchiveStore } from '../remote/archive-store';
import { LazyLayers } from '../remote/lazy-layers';
import { createSnapshotsServer } from '../snapshotter/grpc-service';
import { Snapshotter } from '../snapshotter/snapshotter';
import { DaemonConfig } from './config';
import { bindPrivateSocket } from './socket';

/** containerd's client sends and accepts messages up to 16 MiB. */
const MAX_MESSAGE_BYTES = 16 << 20;

/**
 * Lazy layers from the config: registry client, archive store and content cache under the root. Registry
 * credentials come from the CRI keychain first (when on), then from the docker config.
 */
async function createLazyLayers(
  config: DaemonConfig,
  logger: Logger,
  keychain: CriKeychain | undefined,
): Promise<{ layers: LazyLayers; registry: RegistryClient }> {
  const { lazy, registry: reg } = config;
  const docker = reg.dockerConfig
    ? await DockerCredentials.fromFile(reg.dockerConfig, { logger, helperSearchPath: (process.env.PATH ?? '').split(':') })
    : undefined;
  const registry = new RegistryClient({
    hosts: { configDir: reg.hostsDir || undefined, plainHttp: reg.plainHttp },
    credentials: new CredentialChain(keychain, docker),
    logger,
    timeouts: { headersMs: reg.requestTimeoutMs, bodyMs: reg.requestTimeoutMs },
    retry: { maxAttempts: reg.retries + 1 },
  });
  const layers = new LazyLayers({
    registry,
    archives: new ArchiveStore(path.join(config.root, 'archives'), lazy.archiveStoreMaxBytes, logger),
    cache: new ContentCache(path.join(config.root, 'cache')),
    logger,
    spanSize: lazy.spanSize,
    cacheWhileIndexing: lazy.cacheWhileIndexing,
    backgroundFetch: lazy.backgroundFetch,
    prefetchImageLayers: lazy.prefetchImageLayers,
    indexConcurrency: lazy.indexConcurrency,
    readTimeoutMs: lazy.readTimeoutMs,
    publishedArchives: lazy.publishedArchives,
    startupProfiles: lazy.startupProfiles,
  });
  return { layers, registry };
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
    private readonly lazy: { layers: LazyLayers; registry: RegistryClient } | undefined,
    private readonly cri: { server: Server; proxy: ImageServiceProxy } | undefined,
  ) {}

  static async start(config: DaemonConfig, logger: Logger): Promise<Daemon> {
    await fsp.mkdir(config.root, { recursive: true, mode: 0o700 });
    const keychain = config.criKeychain.enabled ? new CriKeychain() : undefined;
    const lazy = config.lazy.enabled ? await createLazyLayers(config, logger, keychain) : undefined;
    const snapshotter = await Snapshotter.open({ root: config.root, logger, remote: lazy?.layers });
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
      throw err;
    }
    logger.info(`clip serving containerd snapshots on ${config.address} (root ${config.root}, lazy layers ${lazy ? 'on' : 'off'})`);
    return new Daemon(server, snapshotter, config, logger, lazy, cri);
  }

  /** Stops accepting calls, lets running ones finish (bounded), and closes the metadata store. */
  async stop(graceMs = 5000): Promise<void> {
    await Promise.all([shutdown(this.server, graceMs), this.cri && shutdown(this.cri.server, graceMs)]);
    this.cri?.proxy.close();
    this.snapshotter.close();
    // Layer mounts go with the process; containers still running on them lose their lower layers (see
    // README). A restart mounts every remote layer again.
    await this.lazy?.layers.close();
    await this.lazy?.registry.close();
    await fsp.unlink(this.config.address).catch(() => undefined);
    if (this.cri) await fsp.unlink(this.config.criKeychain.imageServicePath).catch(() => undefined);
    this.logger.info('clip stopped');
  }
}
