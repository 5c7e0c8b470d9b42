/** containerd's diff service (containerd.services.diff.v1): applies a layer blob onto mounts. */
import { Descriptor } from '../generated/containerd/types/descriptor';
import { DiffClient } from '../generated/containerd/services/diff/v1/diff';
import { Mount } from '../generated/containerd/types/mount';
import { InternalError } from '../errors';
import { ContentDescriptor } from './content-store';
import { CallContext, unaryCall } from './grpc-call';

/** Extracting a large layer takes a while. */
const APPLY_TIMEOUT_MS = 30 * 60_000;

export class DiffService {
  constructor(
    private readonly raw: DiffClient,
    private readonly ctx: CallContext,
  ) {}

  /**
   * Extracts the layer blob (which must be in containerd's content store) onto the mounts and returns
   * the digest of the uncompressed tar: the layer's diff ID.
   */
  async apply(layer: ContentDescriptor, mounts: Mount[]): Promise<string> {
    const diff: Descriptor = { mediaType: layer.mediaType, digest: layer.digest, size: layer.size, annotations: layer.annotations ?? {} };
    const res = await unaryCall<{ applied?: Descriptor }>(
      `apply layer ${layer.digest}`,
      this.ctx,
      (md, opts, cb) => this.raw.apply({ diff, mounts, payloads: {} }, md, opts, cb),
      APPLY_TIMEOUT_MS,
    );
    if (!res.applied?.digest) throw new InternalError(`apply layer ${layer.digest}: containerd returned no digest`);
    return res.applied.digest;
  }
}
