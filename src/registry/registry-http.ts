/**
 * Requests to a registry endpoint: adds the endpoint's configured headers and authorization, answers
 * one 401 through the Authorizer and retries once, and turns any final status >= 400 into a typed
 * error. Everything below (timeouts, retries, redirects, header stripping) is HttpTransport's.
 */
import { Authorizer } from './authorizer';
import { RegistryEndpoint } from './endpoint';
import { HttpTransport, TransportRequest, TransportResponse } from './http-transport';
import { discard } from './read-body';
import { statusError } from './response-error';
import { parseWwwAuthenticate } from './www-authenticate';

export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT';
  endpoint: RegistryEndpoint;
  /** A URL under the endpoint's API root (endpointUrl()). */
  url: URL;
  /** Token scope the request needs, e.g. `repository:library/busybox:pull`. */
  scope: string;
  accept?: string;
  range?: string;
  /** Body bytes the caller will read (TransportRequest.expectedBytes). */
  expectedBytes?: number;
  /** Request body (pushes) and its Content-Type. */
  body?: Buffer;
  contentType?: string;
  signal?: AbortSignal;
}

export class RegistryHttp {
  constructor(
    readonly transport: HttpTransport,
    private readonly authorizer: Authorizer,
  ) {}

  /** Sends `req`; resolves with a response whose status is below 400. */
  async send(req: RegistryRequest): Promise<TransportResponse> {
    let authorization = await this.authorizer.authorization(req.endpoint, req.scope, req.signal);
    let res = await this.transport.send(this.toTransport(req, authorization));
    if (res.statusCode === 401 && res.url.origin === req.url.origin) {
      const challenges = parseWwwAuthenticate(res.headers['www-authenticate']);
      discard(res.body);
      authorization = await this.authorizer.answer(req.endpoint, challenges, req.scope, authorization, req.signal);
      res = await this.transport.send(this.toTransport(req, authorization));
    }
    if (res.statusCode >= 400) throw await statusError(req.method, res);
    return res;
  }

  private toTransport(req: RegistryRequest, authorization: string | undefined): TransportRequest {
    const headers: Record<string, string | readonly string[]> = { ...req.endpoint.headers };
    if (req.accept !== undefined) headers['accept'] = req.accept;
    if (authorization !== undefined) headers['authorization'] = authorization;
    if (req.contentType !== undefined) headers['content-type'] = req.contentType;
    return { method: req.method, url: req.url, headers, range: req.range, expectedBytes: req.expectedBytes, body: req.body, signal: req.signal, skipVerify: req.endpoint.skipVerify, tls: req.endpoint.tls };
  }
}
