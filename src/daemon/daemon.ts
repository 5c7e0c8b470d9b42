/**
 * The composition root: turns a DaemonConfig into a running snapshotter served over gRPC on a unix
 * socket, and stops it again.
 */
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { promises as fsp } from 'node:fs';
import type { Logger } from 'winston';
import { SnapshotsService } from '../generated/containerd/services/snapshots/v1/snapshots';
import { createSnapshotsServer } from '../snapshotter/grpc-service';
import { Snapshotter } from '../snapshotter/snapshotter';
import { DaemonConfig } from './config';
import { prepareSocketPath, withPrivateUmask } from './socket';

/** containerd's client sends and accepts messages up to 16 MiB. */
const MAX_MESSAGE_BYTES = 16 << 20;

export class Daemon {
  private constructor(
    private readonly server: Server,
    private readonly snapshotter: Snapshotter,
    private readonly config: DaemonConfig,
    private readonly logger: Logger,
  ) {}

  static async start(config: DaemonConfig, logger: Logger): Promise<Daemon> {
    await fsp.mkdir(config.root, { recursive: true, mode: 0o700 });
    const snapshotter = await Snapshotter.open({ root: config.root, logger });
    const server = new Server({
      'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
    });
    server.addService(SnapshotsService, createSnapshotsServer(snapshotter, logger));
    try {
      await prepareSocketPath(config.address);
      await withPrivateUmask(
        () =>
          new Promise<number>((resolve, reject) =>
            server.bindAsync(`unix://${config.address}`, ServerCredentials.createInsecure(), (err, port) =>
              err ? reject(err) : resolve(port),
            ),
          ),
      );
      await fsp.chmod(config.address, 0o600);
    } catch (err) {
      server.forceShutdown();
      snapshotter.close();
      throw err;
    }
    logger.info(`clip serving containerd snapshots on ${config.address} (root ${config.root})`);
    return new Daemon(server, snapshotter, config, logger);
  }

  /** Stops accepting calls, lets running ones finish (bounded), and closes the metadata store. */
  async stop(graceMs = 5000): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.snapshotter.close();
    await fsp.unlink(this.config.address).catch(() => undefined);
    this.logger.info('clip stopped');
  }
}
