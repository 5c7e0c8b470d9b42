/**
 * A layer blob in the registry, opened on first use: mounting a layer whose bytes are all cached (after
 * a restart, say) needs no network at all.
 */
import { RangeSource } from '../fusefs/layer-span-reader';
import { RegistryClient } from '../registry';
import type { RemoteBlob } from '../registry';

export class LazyBlobSource implements RangeSource {
  private blob: Promise<RemoteBlob> | undefined;

  constructor(
    private readonly registry: RegistryClient,
    private readonly imageRef: string,
    private readonly digest: string,
    /** The blob's size when known (the archive's compressed_size): no request is spent on finding it. */
    private readonly size?: number,
  ) {}

  async readRange(offset: number, length: number, signal?: AbortSignal): Promise<Buffer> {
    return (await this.open(signal)).readRange(offset, length, { signal });
  }

  async *stream(signal?: AbortSignal): AsyncGenerator<Buffer> {
    yield* (await this.open(signal)).stream({ signal });
  }

  private async open(signal?: AbortSignal): Promise<RemoteBlob> {
    this.blob ??= this.registry.openBlob(this.imageRef, this.digest, { signal, size: this.size });
    try {
      return await this.blob;
    } catch (err) {
      this.blob = undefined; // try again on the next read
      throw err;
    }
  }
}
