/**
 * containerd's content store (containerd.services.content.v1) as clip uses it: look a blob up, set
 * labels on it, and write one, streamed, verified by containerd against the expected digest and size.
 */
import { ContentClient, Info } from '../generated/containerd/services/content/v1/content';
import { InvalidArgumentError, NotFoundError } from '../errors';
import { writeContent, WriteSource } from './content-writer';
import { CallContext, DEFAULT_CALL_TIMEOUT_MS, streamCall, unaryCall } from './grpc-call';

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
  /** When the blob or its labels last changed, in milliseconds since the epoch (0 when containerd sent none). */
  updatedMs?: number;
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

  /**
   * Infos of the blobs matching any of containerd's content filters (e.g. `labels."key"` for blobs
   * carrying a label). More than `maxItems` matches is an InvalidArgumentError: the caller's bound.
   */
  async list(filters: string[], maxItems: number, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<ContentInfo[]> {
    const out: ContentInfo[] = [];
    await streamCall('list content', this.ctx, (md, opts) => this.raw.list({ filters }, md, opts), timeoutMs, (res: { info: Info[] }) => {
      for (const info of res.info) {
        if (out.length >= maxItems) throw new InvalidArgumentError(`content store lists more than ${maxItems} blobs for ${filters.join(' or ')}`);
        const updated = info.updatedAt;
        const updatedMs = updated ? Number(updated.seconds) * 1000 + Math.floor(updated.nanos / 1e6) : 0;
        out.push({ digest: info.digest, size: info.size, labels: info.labels, updatedMs });
      }
    });
    return out;
  }

  /** The whole blob, refused (before reading) when containerd says it is larger than maxBytes. */
  async read(digest: string, maxBytes: number, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<Buffer> {
    const info = await this.info(digest);
    if (!info) throw new NotFoundError(`content ${digest}: not found`);
    if (info.size > maxBytes) throw new InvalidArgumentError(`content ${digest} is ${info.size} bytes, more than the ${maxBytes} allowed`);
    const chunks: Buffer[] = [];
    let total = 0;
    await streamCall(`read content ${digest}`, this.ctx, (md, opts) => this.raw.read({ digest, offset: 0, size: 0 }, md, opts), timeoutMs, (res: { data: Buffer }) => {
      total += res.data.length;
      if (total > maxBytes) throw new InvalidArgumentError(`content ${digest} is more than the ${maxBytes} bytes allowed`);
      chunks.push(res.data);
    });
    return Buffer.concat(chunks, total);
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
