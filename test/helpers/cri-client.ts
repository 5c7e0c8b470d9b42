/**
 * A minimal CRI client for tests: ImageService/PullImage of the Kubernetes CRI API (runtime.v1), over
 * containerd's gRPC socket. Only the fields a pull needs are encoded:
 *   PullImageRequest  { ImageSpec image = 1; AuthConfig auth = 2; PodSandboxConfig sandbox_config = 3; }
 *   ImageSpec         { string image = 1; map<string,string> annotations = 2; ... }
 *   PullImageResponse { string image_ref = 1; }
 */
import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { Client, credentials, Metadata } from '@grpc/grpc-js';

const PULL_IMAGE = '/runtime.v1.ImageService/PullImage';

function encodePullImageRequest(image: string): Buffer {
  const spec = new BinaryWriter().uint32(10).string(image).finish();
  return Buffer.from(new BinaryWriter().uint32(10).bytes(spec).finish());
}

function decodePullImageResponse(buf: Buffer): string {
  const reader = new BinaryReader(buf);
  let imageRef = '';
  while (reader.pos < reader.len) {
    const tag = reader.uint32();
    if (tag >>> 3 === 1) imageRef = reader.string();
    else reader.skip(tag & 7);
  }
  return imageRef;
}

export class CriClient {
  private readonly client: Client;

  constructor(containerdSocket: string) {
    this.client = new Client(`unix://${containerdSocket}`, credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
    });
  }

  /** Pulls an image through CRI (namespace k8s.io); resolves with the image id containerd reports. */
  pullImage(image: string, timeoutMs = 300_000): Promise<string> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest<string, string>(
        PULL_IMAGE,
        (ref) => encodePullImageRequest(ref),
        (buf) => decodePullImageResponse(buf),
        image,
        new Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, res) => (err ? reject(err) : resolve(res!)),
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
