/**
 * A client for containerd's gRPC API on its unix socket, for one namespace: the content store, image
 * records, leases, snapshotters and the diff service. `withLease(id)` gives a view whose calls run inside
 * a lease (what they create is kept from the garbage collector until the lease goes).
 *
 *   const containerd = new ContainerdClient({ address: '/run/containerd/containerd.sock', namespace: 'default' });
 *   const lease = await containerd.leases.create('clip-pull', 24 * 3600_000);
 *   const leased = containerd.withLease(lease);
 *   await leased.snapshots('clip').stat('sha256:…');
 *   containerd.close();
 */
import { ChannelOptions, credentials } from '@grpc/grpc-js';
import { ContentClient } from '../generated/containerd/services/content/v1/content';
import { DiffClient } from '../generated/containerd/services/diff/v1/diff';
import { ImagesClient } from '../generated/containerd/services/images/v1/images';
import { LeasesClient } from '../generated/containerd/services/leases/v1/leases';
import { SnapshotsClient } from '../generated/containerd/services/snapshots/v1/snapshots';
import { ContentStore } from './content-store';
import { DiffService } from './diff-service';
import { CallContext } from './grpc-call';
import { ImageStore } from './image-store';
import { Leases } from './leases';
import { SnapshotService } from './snapshot-service';

export interface ContainerdClientOptions {
  /** Path of containerd's gRPC socket. */
  address: string;
  namespace: string;
}

/** containerd accepts and sends messages up to 16 MiB. */
const MAX_MESSAGE_BYTES = 16 << 20;

/** What a view of the client adds to every call. */
type CallScope = Omit<CallContext, 'namespace'>;

interface RawClients {
  content: ContentClient;
  diff: DiffClient;
  images: ImagesClient;
  leases: LeasesClient;
  snapshots: SnapshotsClient;
}

function connect(address: string): RawClients {
  const target = `unix://${address}`;
  const options: ChannelOptions = {
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  };
  const content = new ContentClient(target, credentials.createInsecure(), options);
  // One connection for every service.
  const shared = { ...options, channelOverride: content.getChannel() };
  return {
    content,
    diff: new DiffClient(target, credentials.createInsecure(), shared),
    images: new ImagesClient(target, credentials.createInsecure(), shared),
    leases: new LeasesClient(target, credentials.createInsecure(), shared),
    snapshots: new SnapshotsClient(target, credentials.createInsecure(), shared),
  };
}

export class ContainerdClient {
  readonly content: ContentStore;
  readonly images: ImageStore;
  readonly leases: Leases;
  readonly diff: DiffService;
  private readonly ctx: CallContext;

  constructor(options: ContainerdClientOptions);
  constructor(options: ContainerdClientOptions, raw: RawClients, scope: CallScope);
  constructor(
    readonly options: ContainerdClientOptions,
    private readonly raw: RawClients = connect(options.address),
    scope: CallScope = {},
  ) {
    this.ctx = { namespace: options.namespace, ...scope };
    this.content = new ContentStore(raw.content, this.ctx);
    this.images = new ImageStore(raw.images, this.ctx);
    this.leases = new Leases(raw.leases, this.ctx);
    this.diff = new DiffService(raw.diff, this.ctx);
  }

  /**
   * The same connection and namespace, every call inside lease `lease`; `signal` cancels calls in
   * flight (a cancelled call fails with the signal's reason).
   */
  withLease(lease: string, signal?: AbortSignal): ContainerdClient {
    return new ContainerdClient(this.options, this.raw, { lease, signal });
  }

  /** The same connection and namespace, every call cancelled when `signal` aborts. */
  withSignal(signal: AbortSignal): ContainerdClient {
    return new ContainerdClient(this.options, this.raw, { signal });
  }

  /** The snapshotter registered in containerd under `name` (e.g. `clip`, `overlayfs`). */
  snapshots(name: string): SnapshotService {
    return new SnapshotService(this.raw.snapshots, this.ctx, name);
  }

  /** Closes the connection (of this client and every view of it). */
  close(): void {
    this.raw.content.getChannel().close();
  }
}
