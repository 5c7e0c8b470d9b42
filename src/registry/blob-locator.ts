/**
 * Where one blob's bytes come from. The first GET goes to the registry (the endpoint that last
 * worked first, then the others in order); when the registry redirects to another origin (object
 * storage, a CDN), that final URL is kept and later GETs go straight to it, with no registry
 * headers. When the kept URL stops working (an expired pre-signed URL answers 403, a network
 * failure) it is dropped and the blob is resolved through the registry again.
 *
 * HEAD requests always go through the registry and never set the kept URL: pre-signed URLs are
 * usually signed for GET only.
 */
import { isClipError } from '../errors';
import { RegistryEndpoint, endpointUrl, otherOriginTls } from './endpoint';
import { TransportResponse } from './http-transport';
import { discard } from './read-body';
import { RegistryLogger, redactUrl } from './logger';
import { ImageReference } from './reference';
import { RegistryHttp } from './registry-http';
import { abortReason } from './retry-policy';

export interface BlobRequest {
  method: 'GET' | 'HEAD';
  range?: string;
  /** Body bytes the caller will read (TransportRequest.expectedBytes). */
  expectedBytes?: number;
  signal?: AbortSignal;
}

export class BlobLocator {
  private resolvedUrl?: URL;
  private preferred = 0;

  constructor(
    private readonly http: RegistryHttp,
    readonly reference: ImageReference,
    readonly digest: string,
    private readonly endpoints: readonly RegistryEndpoint[],
    private readonly logger: RegistryLogger,
  ) {}

  /** Resolves with a response below 400 (200, 206…); throws the last endpoint's typed error otherwise. */
  async send(req: BlobRequest): Promise<TransportResponse> {
    if (req.method === 'GET' && this.resolvedUrl) {
      const url = this.resolvedUrl;
      try {
        const tls = otherOriginTls(this.endpoints[this.preferred]?.tls);
        const res = await this.http.transport.send({ method: 'GET', url, range: req.range, expectedBytes: req.expectedBytes, signal: req.signal, tls });
        if (res.statusCode < 400) return res;
        discard(res.body);
        this.logger.debug(`blob ${this.digest}: ${redactUrl(url)} answered ${res.statusCode}; resolving it through the registry again`);
      } catch (err) {
        if (req.signal?.aborted) throw abortReason(req.signal);
        this.logger.debug(`blob ${this.digest}: ${redactUrl(url)} failed (${(err as Error).message}); resolving it through the registry again`);
      }
      if (this.resolvedUrl === url) this.resolvedUrl = undefined;
    }
    return this.viaRegistry(req);
  }

  private async viaRegistry(req: BlobRequest): Promise<TransportResponse> {
    let lastError: unknown;
    const order = [this.preferred, ...this.endpoints.keys()].filter((i, pos, all) => all.indexOf(i) === pos);
    for (const i of order) {
      const endpoint = this.endpoints[i]!;
      const url = endpointUrl(endpoint, this.reference.domain, this.reference.path, 'blobs', this.digest);
      try {
        const res = await this.http.send({ method: req.method, endpoint, url, scope: this.reference.scope(), range: req.range, expectedBytes: req.expectedBytes, signal: req.signal });
        this.preferred = i;
        if (req.method === 'GET' && res.url.origin !== url.origin) this.resolvedUrl = res.url;
        return res;
      } catch (err) {
        if (req.signal?.aborted) throw abortReason(req.signal);
        if (!isClipError(err)) throw err;
        lastError = err;
        if (i !== order[order.length - 1]) this.logger.debug(`blob ${this.digest}: ${endpoint.apiRoot.host} failed (${err.message}); trying the next endpoint`);
      }
    }
    throw lastError;
  }
}
