/**
 * One snapshotter behind containerd's snapshots service (containerd.services.snapshots.v1, with
 * `snapshotter` naming it), as an image unpacker uses it. Keys and names are containerd's (chain IDs,
 * "extract-… <chainID>"); containerd maps them to the snapshotter's own.
 */
import { Info, SnapshotsClient } from '../generated/containerd/services/snapshots/v1/snapshots';
import { Mount } from '../generated/containerd/types/mount';
import { NotFoundError } from '../errors';
import { CallContext, unaryCall } from './grpc-call';

export type { Info as SnapshotInfo, Mount };

/** Prepare may make a remote snapshotter index a whole layer before it answers. */
const PREPARE_TIMEOUT_MS = 30 * 60_000;

export class SnapshotService {
  constructor(
    private readonly raw: SnapshotsClient,
    private readonly ctx: CallContext,
    readonly snapshotter: string,
  ) {}

  /** The snapshot's info, or undefined when there is no snapshot by that key or name. */
  async stat(key: string): Promise<Info | undefined> {
    try {
      const res = await unaryCall<{ info?: Info }>(`stat snapshot ${key}`, this.ctx, (md, opts, cb) =>
        this.raw.stat({ snapshotter: this.snapshotter, key }, md, opts, cb),
      );
      return res.info;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async prepare(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    const res = await unaryCall<{ mounts: Mount[] }>(
      `prepare snapshot ${key}`,
      this.ctx,
      (md, opts, cb) => this.raw.prepare({ snapshotter: this.snapshotter, key, parent, labels }, md, opts, cb),
      PREPARE_TIMEOUT_MS,
    );
    return res.mounts;
  }

  async commit(name: string, key: string, labels: Record<string, string>): Promise<void> {
    await unaryCall(`commit snapshot ${name}`, this.ctx, (md, opts, cb) =>
      this.raw.commit({ snapshotter: this.snapshotter, name, key, labels, parent: '' }, md, opts, cb),
    );
  }

  async remove(key: string): Promise<void> {
    await unaryCall(`remove snapshot ${key}`, this.ctx, (md, opts, cb) => this.raw.remove({ snapshotter: this.snapshotter, key }, md, opts, cb));
  }
}
