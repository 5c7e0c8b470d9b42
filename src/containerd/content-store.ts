/**
 * containerd's content store (containerd.services.content.v1) as clip uses it: look a blob up, set
 * labels on it, and write one, streamed, verified by containerd against the expected digest and size.
 */
import { ContentClient, Info } from '../generated/containerd/services/content/v1/content';
import { NotFoundError } from '../errors';
import { writeContent, WriteSource } from './content-writer';
import { CallContext, unaryCall } from './grpc-call';

/** A content descriptor: what containerd needs to know about a blob. */
export interface ContentDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface ContentInfo {
  digest: string;
  size: number;
  labels: Record<string, string>;
}

export interface WriteOptions {
  /** Ingest name; a second writer with the same ref waits for (or resumes) the first. */
  ref: string;
  descriptor: ContentDescriptor;
  data: WriteSource;
  /** Labels stored with the blob; set on it as well when the blob is already there. */
  labels?: Record<string, string>;
  /** Called with the number of bytes containerd has accepted so far. */
  onProgress?: (written: number) => void;
}

export class ContentStore {
  constructor(
    private readonly raw: ContentClient,
    private readonly ctx: CallContext,
  ) {}

  /** The blob's info, or undefined when this namespace does not have it. */
  async info(digest: string): Promise<ContentInfo | undefined> {
    try {
      const res = await unaryCall<{ info?: Info }>(`content ${digest}`, this.ctx, (md, opts, cb) => this.raw.info({ digest }, md, opts, cb));
      if (!res.info) return undefined;
      return { digest: res.info.digest, size: res.info.size, labels: res.info.labels };
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /** Sets (or, with an empty value, removes) the given labels; other labels are left alone. */
  async setLabels(digest: string, labels: Record<string, string>): Promise<void> {
    const keys = Object.keys(labels);
    if (keys.length === 0) return;
    const info: Info = { digest, size: 0, createdAt: undefined, updatedAt: undefined, labels };
    await unaryCall(`label content ${digest}`, this.ctx, (md, opts, cb) =>
      this.raw.update({ info, updateMask: keys.map((k) => `labels.${k}`) }, md, opts, cb),
    );
  }

  /**
   * Writes a blob. Returns 'exists' when containerd already had it (it is then added to the current
   * lease by containerd, and the labels are set on it).
   */
  async write(options: WriteOptions): Promise<'written' | 'exists'> {
    const { descriptor, labels = {} } = options;
    const outcome = await writeContent(this.raw, this.ctx, {
      ref: options.ref,
      digest: descriptor.digest,
      size: descriptor.size,
      data: options.data,
      labels,
      onProgress: options.onProgress,
    });
    if (outcome === 'exists') await this.setLabels(descriptor.digest, labels);
    return outcome;
  }
}
