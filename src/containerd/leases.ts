/**
 * containerd's leases (containerd.services.leases.v1). What is created under a lease (content, snapshots)
 * survives garbage collection until the lease is deleted or its `containerd.io/gc.expire` time passes.
 */
import { randomBytes } from 'node:crypto';
import { LeasesClient } from '../generated/containerd/services/leases/v1/leases';
import { LABEL_GC_EXPIRE } from './labels';
import { CallContext, unaryCall } from './grpc-call';

export class Leases {
  constructor(
    private readonly raw: LeasesClient,
    private readonly ctx: CallContext,
  ) {}

  /**
   * Creates a lease that expires after `expireMs` even if it is never deleted (a killed client leaves
   * nothing behind for longer), and returns its id.
   */
  async create(prefix: string, expireMs: number): Promise<string> {
    const id = `${prefix}-${Date.now()}-${randomBytes(4).toString('hex')}`;
    const expire = new Date(Date.now() + expireMs).toISOString().replace(/\.\d+Z$/, 'Z');
    await unaryCall(`create lease ${id}`, this.ctx, (md, opts, cb) => this.raw.create({ id, labels: { [LABEL_GC_EXPIRE]: expire } }, md, opts, cb));
    return id;
  }

  /** Deletes a lease; what only it kept alive becomes garbage. */
  async delete(id: string): Promise<void> {
    await unaryCall(`delete lease ${id}`, this.ctx, (md, opts, cb) => this.raw.delete({ id, sync: false }, md, opts, cb));
  }
}
