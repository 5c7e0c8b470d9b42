/**
 * A small read-only HTTP server for operators' tools: the metrics endpoint ([metrics] address) and the
 * admin socket (`clip status`). GET (and HEAD) of a fixed set of paths; anything else is 404 or 405.
 * Clients are bounded: a request must arrive within a few seconds, at most a handful of connections are
 * served at once, and nothing is read from a request body.
 */
import http from 'node:http';
import { promises as fsp } from 'node:fs';
import type { Logger } from 'winston';
import { errorMessage } from '../errors';
import type { ListenAddress } from '../metrics/listen-address';
import { listenPrivate } from './socket';

export interface Reply {
  contentType: string;
  body: string;
}

export type Routes = Record<string, () => Promise<Reply>>;

const REQUEST_TIMEOUT_MS = 10_000;
const MAX_CONNECTIONS = 16;

export class HttpEndpoint {
  private constructor(
    private readonly server: http.Server,
    readonly description: string,
    private readonly socketPath: string | undefined,
  ) {}

  static async start(address: Exclude<ListenAddress, { kind: 'off' }>, routes: Routes, logger: Logger): Promise<HttpEndpoint> {
    const server = http.createServer({ requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS }, (req, res) => {
      const route = routes[new URL(req.url ?? '/', 'http://clip').pathname];
      if (!route) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      if (req.method !== 'GET' && req.method !== 'HEAD') return void res.writeHead(405, { allow: 'GET, HEAD' }).end();
      route().then(
        (reply) => res.writeHead(200, { 'content-type': reply.contentType }).end(req.method === 'HEAD' ? undefined : reply.body),
        (err: unknown) => {
          logger.warn(`${req.url}: ${errorMessage(err)}`);
          res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error\n');
        },
      );
    });
    server.maxConnections = MAX_CONNECTIONS;
    server.keepAliveTimeout = REQUEST_TIMEOUT_MS;
    if (address.kind === 'unix') {
      await listenPrivate(server, address.path);
      return new HttpEndpoint(server, address.path, address.path);
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(address.port, address.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address();
    const where = typeof bound === 'object' && bound ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : `${address.host}:${address.port}`;
    return new HttpEndpoint(server, where, undefined);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.socketPath) await fsp.unlink(this.socketPath).catch(() => undefined);
  }
}
