/** containerd's image records (containerd.services.images.v1): a name pointing at a root descriptor. */
import { Image, ImagesClient } from '../generated/containerd/services/images/v1/images';
import { AlreadyExistsError, InternalError, NotFoundError } from '../errors';
import { ContentDescriptor } from './content-store';
import { CallContext, unaryCall } from './grpc-call';

export interface ImageRecord {
  name: string;
  target: ContentDescriptor;
  labels: Record<string, string>;
}

function toImage(record: ImageRecord): Image {
  const { target } = record;
  return {
    name: record.name,
    labels: record.labels,
    target: { mediaType: target.mediaType, digest: target.digest, size: target.size, annotations: target.annotations ?? {} },
    createdAt: undefined,
    updatedAt: undefined,
  };
}

function fromImage(image: Image | undefined, name: string): ImageRecord {
  if (!image?.target) throw new InternalError(`image ${name}: containerd returned no target`);
  const { mediaType, digest, size, annotations } = image.target;
  return { name: image.name, labels: image.labels, target: { mediaType, digest, size, annotations } };
}

export class ImageStore {
  constructor(
    private readonly raw: ImagesClient,
    private readonly ctx: CallContext,
  ) {}

  /**
   * Creates the record, or points an existing one at the new target (its labels replaced), as
   * containerd's client does after a pull. A record deleted in between is created again.
   */
  async createOrUpdate(record: ImageRecord): Promise<ImageRecord> {
    const image = toImage(record);
    for (let attempt = 1; ; attempt++) {
      try {
        const res = await unaryCall<{ image?: Image }>(`create image ${record.name}`, this.ctx, (md, opts, cb) => this.raw.create({ image }, md, opts, cb));
        return fromImage(res.image, record.name);
      } catch (err) {
        if (!(err instanceof AlreadyExistsError)) throw err;
      }
      try {
        const res = await unaryCall<{ image?: Image }>(`update image ${record.name}`, this.ctx, (md, opts, cb) =>
          this.raw.update({ image, updateMask: undefined }, md, opts, cb),
        );
        return fromImage(res.image, record.name);
      } catch (err) {
        if (!(err instanceof NotFoundError) || attempt >= 3) throw err;
      }
    }
  }
}
