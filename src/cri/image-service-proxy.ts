/**
 * A CRI ImageService (runtime.v1) in front of containerd's: kubelet's `--image-service-endpoint` points
 * here, every call is forwarded to containerd as raw bytes (unknown fields and future message versions pass
 * through untouched), and the answer goes back unchanged. On the way, PullImage's credentials are stored
 * in the CriKeychain for clip's lazy registry reads of that image, and a RemoveImage that succeeded
 * forgets them. Only the image reference and the call's status are ever logged, never an AuthConfig.
 */
import {
  Client,
  Deadline,
  Metadata,
  ServerUnaryCall,
  ServiceDefinition,
  ServiceError,
  UntypedServiceImplementation,
  credentials,
  sendUnaryData,
  status,
} from '@grpc/grpc-js';
import type { Logger } from 'winston';
import { errorMessage } from '../errors';
import { PullImageRequest, PullImageResponse, RemoveImageRequest } from '../generated/cri/runtime/v1/image-service';
import { credentialsOf } from './auth-config';
import { CriKeychain } from './cri-keychain';

const SERVICE = 'runtime.v1.ImageService';
const METHODS = ['ListImages', 'ImageStatus', 'PullImage', 'RemoveImage', 'ImageFsInfo'] as const;
type Method = (typeof METHODS)[number];

/** Longest a forwarded call may take when the caller set no deadline (kubelet sets none on pulls). */
const PULL_TIMEOUT_MS = 60 * 60_000;
const CALL_TIMEOUT_MS = 5 * 60_000;

const identity = (b: Buffer): Buffer => b;

/** ImageService with every method taking and returning the encoded message as is. */
export const RAW_IMAGE_SERVICE: ServiceDefinition = Object.fromEntries(
  METHODS.map((name) => [
    name,
    {
      path: `/${SERVICE}/${name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  ]),
);

/** The image a PullImage or RemoveImage request names ('' when it cannot be decoded). */
function imageOf(method: 'PullImage' | 'RemoveImage', request: Buffer): string {
  try {
    const spec = method === 'PullImage' ? PullImageRequest.decode(request).image : RemoveImageRequest.decode(request).image;
    return spec?.image ?? '';
  } catch {
    return '';
  }
}

export interface ImageServiceProxyOptions {
  /** containerd's socket, which serves runtime.v1.ImageService. */
  containerdSocket: string;
  keychain: CriKeychain;
  logger: Logger;
}

export class ImageServiceProxy {
  private readonly upstream: Client;

  constructor(private readonly options: ImageServiceProxyOptions) {
    this.upstream = new Client(`unix://${options.containerdSocket}`, credentials.createInsecure(), {
      'grpc.max_receive_message_length': 16 << 20,
      'grpc.max_send_message_length': 16 << 20,
    });
  }

  /** The handlers to add to a grpc-js Server with RAW_IMAGE_SERVICE. */
  implementation(): UntypedServiceImplementation {
    return Object.fromEntries(
      METHODS.map((method) => [
        method,
        (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
          this.handle(method, call).then(
            (response) => callback(null, response),
            (err: ServiceError) => callback(err),
          );
        },
      ]),
    );
  }

  close(): void {
    this.upstream.close();
  }

  private async handle(method: Method, call: ServerUnaryCall<Buffer, Buffer>): Promise<Buffer> {
    if (method === 'PullImage') return this.pullImage(call);
    const response = await this.forward(method, call);
    if (method === 'RemoveImage') {
      const image = imageOf(method, call.request);
      this.options.keychain.forget(image);
      this.options.logger.debug(`cri: RemoveImage ${image}: credentials forgotten`);
    }
    return response;
  }

  private async pullImage(call: ServerUnaryCall<Buffer, Buffer>): Promise<Buffer> {
    const { keychain, logger } = this.options;
    let image = '';
    let restore = (): void => {};
    try {
      const request = PullImageRequest.decode(call.request);
      image = request.image?.image ?? '';
      const creds = credentialsOf(request.auth);
      if (creds) restore = keychain.remember(image, creds);
      logger.info(`cri: PullImage ${image} (${creds ? 'with' : 'without'} credentials)`);
    } catch (err) {
      logger.warn(`cri: PullImage request not decoded, forwarded as is: ${errorMessage(err)}`);
    }
    let response: Buffer;
    try {
      response = await this.forward('PullImage', call);
    } catch (err) {
      restore(); // the pull failed: these credentials did not work, keep the ones that did
      throw err;
    }
    try {
      keychain.setImageId(image, PullImageResponse.decode(response).imageRef);
    } catch {
      // A response we cannot read still goes back to the caller unchanged.
    }
    return response;
  }

  private forward(method: Method, call: ServerUnaryCall<Buffer, Buffer>): Promise<Buffer> {
    const caller: Deadline = call.getDeadline();
    const cap = Date.now() + (method === 'PullImage' ? PULL_TIMEOUT_MS : CALL_TIMEOUT_MS);
    const deadline = Math.min(caller instanceof Date ? caller.getTime() : caller, cap);
    return new Promise((resolve, reject) => {
      const upstreamCall = this.upstream.makeUnaryRequest<Buffer, Buffer>(
        `/${SERVICE}/${method}`,
        identity,
        identity,
        call.request,
        new Metadata(),
        { deadline },
        (err, response) => {
          call.off('cancelled', cancel);
          if (err) {
            this.options.logger.debug(`cri: ${method} → containerd: ${status[err.code] ?? err.code} ${err.details}`);
            reject(err);
          } else resolve(response!);
        },
      );
      const cancel = (): void => upstreamCall.cancel();
      call.on('cancelled', cancel);
    });
  }
}
