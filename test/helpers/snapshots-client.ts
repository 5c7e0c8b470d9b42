/** A promise-based client for the Snapshots service over a unix socket, for tests. */
import { credentials, Metadata, ServiceError } from '@grpc/grpc-js';
import { Empty } from '../../src/generated/google/protobuf/empty';
import {
  Info,
  ListSnapshotsResponse,
  MountsResponse,
  PrepareSnapshotResponse,
  SnapshotsClient,
  StatSnapshotResponse,
  UpdateSnapshotResponse,
  UsageResponse,
  ViewSnapshotResponse,
} from '../../src/generated/containerd/services/snapshots/v1/snapshots';
import { Mount } from '../../src/generated/containerd/types/mount';

export type { Info, Mount };

type Callback<Res> = (err: ServiceError | null, res: Res) => void;

export class TestSnapshotsClient {
  readonly raw: SnapshotsClient;

  constructor(address: string) {
    // A private subchannel pool: a test restarts daemons on the same socket, and a shared pool would
    // hand a new client the dead connection of an old one.
    this.raw = new SnapshotsClient(`unix://${address}`, credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
  }

  close(): void {
    this.raw.close();
  }

  private call<Res>(invoke: (md: Metadata, cb: Callback<Res>) => unknown): Promise<Res> {
    const md = new Metadata();
    md.set('containerd-namespace', 'test');
    return new Promise((resolve, reject) => invoke(md, (err, res) => (err ? reject(err) : resolve(res))));
  }

  async prepare(key: string, parent = '', labels: Record<string, string> = {}): Promise<Mount[]> {
    return (await this.call((md, cb: Callback<PrepareSnapshotResponse>) => this.raw.prepare({ snapshotter: 'clip', key, parent, labels }, md, cb))).mounts;
  }

  async view(key: string, parent = '', labels: Record<string, string> = {}): Promise<Mount[]> {
    return (await this.call((md, cb: Callback<ViewSnapshotResponse>) => this.raw.view({ snapshotter: 'clip', key, parent, labels }, md, cb))).mounts;
  }

  async mounts(key: string): Promise<Mount[]> {
    return (await this.call((md, cb: Callback<MountsResponse>) => this.raw.mounts({ snapshotter: 'clip', key }, md, cb))).mounts;
  }

  async commit(name: string, key: string, labels: Record<string, string> = {}, parent = ''): Promise<void> {
    await this.call((md, cb: Callback<Empty>) => this.raw.commit({ snapshotter: 'clip', name, key, labels, parent }, md, cb));
  }

  async remove(key: string): Promise<void> {
    await this.call((md, cb: Callback<Empty>) => this.raw.remove({ snapshotter: 'clip', key }, md, cb));
  }

  async stat(key: string): Promise<Info> {
    const res = await this.call((md, cb: Callback<StatSnapshotResponse>) => this.raw.stat({ snapshotter: 'clip', key }, md, cb));
    if (!res.info) throw new Error('Stat response without info');
    return res.info;
  }

  async update(info: Partial<Info> & { name: string }, paths?: string[]): Promise<Info> {
    const full: Info = { parent: '', kind: 0, createdAt: undefined, updatedAt: undefined, labels: {}, ...info };
    const res = await this.call((md, cb: Callback<UpdateSnapshotResponse>) => this.raw.update({ snapshotter: 'clip', info: full, updateMask: paths }, md, cb));
    if (!res.info) throw new Error('Update response without info');
    return res.info;
  }

  async usage(key: string): Promise<UsageResponse> {
    return this.call((md, cb: Callback<UsageResponse>) => this.raw.usage({ snapshotter: 'clip', key }, md, cb));
  }

  async cleanup(): Promise<void> {
    await this.call((md, cb: Callback<Empty>) => this.raw.cleanup({ snapshotter: 'clip' }, md, cb));
  }

  /** Collects every Info of a List stream, and the number of stream messages it came in. */
  list(filters: string[] = []): Promise<{ infos: Info[]; messages: number }> {
    return new Promise((resolve, reject) => {
      const infos: Info[] = [];
      let messages = 0;
      const stream = this.raw.list({ snapshotter: 'clip', filters });
      stream.on('data', (res: ListSnapshotsResponse) => {
        messages++;
        infos.push(...res.info);
      });
      stream.on('error', reject);
      stream.on('end', () => resolve({ infos, messages }));
    });
  }
}
