/**
 * A minimal CRI client for tests: ImageService/PullImage and RemoveImage of the Kubernetes CRI API
 * (runtime.v1), over containerd's gRPC socket or clip's CRI image-service proxy. The messages are those of
 * proto/cri/runtime/v1/image-service.proto (the fields these calls need, with the CRI's field numbers).
 */
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import { AuthConfig, PullImageRequest, PullImageResponse, RemoveImageRequest } from '../../src/generated/cri/runtime/v1/image-service';

const SERVICE = '/runtime.v1.ImageService';

export interface PullOptions {
  /** Registry credentials sent with the pull, as kubelet sends an image pull secret. */
  auth?: Partial<AuthConfig>;
  timeoutMs?: number;
}

const spec = (image: string): { image: string; annotations: Record<string, string>; userSpecifiedImage: string; runtimeHandler: string } => ({
  image,
  annotations: {},
  userSpecifiedImage: '',
  runtimeHandler: '',
});

export class CriClient {
  private readonly client: Client;

  constructor(socket: string) {
    this.client = new Client(`unix://${socket}`, credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
  }

  private call(method: string, request: Buffer, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest<Buffer, Buffer>(
        `${SERVICE}/${method}`,
        (b) => b,
        (b) => b,
        request,
        new Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  /** Pulls an image through CRI (namespace k8s.io); resolves with the image id containerd reports. */
  async pullImage(image: string, opts: PullOptions = {}): Promise<string> {
    const auth = opts.auth ? AuthConfig.fromPartial(opts.auth) : undefined;
    const request = Buffer.from(PullImageRequest.encode({ image: spec(image), auth }).finish());
    return PullImageResponse.decode(await this.call('PullImage', request, opts.timeoutMs ?? 300_000)).imageRef;
  }

  /** Removes an image by reference or image id. */
  async removeImage(image: string, timeoutMs = 60_000): Promise<void> {
    await this.call('RemoveImage', Buffer.from(RemoveImageRequest.encode({ image: spec(image) }).finish()), timeoutMs);
  }

  close(): void {
    this.client.close();
  }
}
