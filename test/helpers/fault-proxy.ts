/**
 * A fault-injecting HTTP reverse proxy for end-to-end tests, in the test process, on loopback: it forwards
 * every request to the real registry and can be told to break blob GETs (the requests a lazy read makes).
 * Modeled on bench/throttle-proxy.ts.
 *
 *   const proxy = await startFaultProxy(stack.registryAddress);
 *   await proxy.refuse();                         // stop listening: connections are refused ...
 *   await proxy.restore();                        // ... until it listens on the same port again
 *   proxy.fault({ kind: 'status', status: 500 }); // every blob GET answers 500 ...
 *   proxy.fault({ kind: 'truncate' }, 2);         // ... or only the next two blob GETs are cut short
 *   proxy.pass();                                 // forward everything again
 *   await proxy.close();
 *
 * Manifests, HEAD requests and token requests are always forwarded. `faulted` counts the blob GETs that
 * were broken since the last fault() call.
 */
import http from 'node:http';
import { AddressInfo } from 'node:net';

export type Fault =
  /** Answer with this status (and a Retry-After header, in seconds, if given). */
  | { kind: 'status'; status: number; retryAfterSeconds?: number }
  /** Forward the registry's headers, then only half of the body, then close the connection. */
  | { kind: 'truncate' }
  /** Forward the registry's answer with one byte of the body changed (same length). */
  | { kind: 'corrupt' };

export interface FaultProxy {
  /** host:port to use in image references. */
  readonly address: string;
  /** Blob GETs broken since the last fault(). */
  readonly faulted: number;
  /** Break blob GETs: all of them, or only the next `times`. */
  fault(fault: Fault, times?: number): void;
  pass(): void;
  /** Stops listening and drops open connections: connections are refused until restore(). */
  refuse(): Promise<void>;
  /** Listens on the same port again. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

const isBlobGet = (req: http.IncomingMessage): boolean => req.method === 'GET' && /\/blobs\/sha256:[0-9a-f]{64}$/.test((req.url ?? '').split('?')[0]!);

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const [host, portText] = target.split(':');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  let current: Fault | undefined;
  let left = Infinity;
  let faulted = 0;
  let closed = false;

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, fault: Fault | undefined): void => {
    const up = http.request({ host, port: Number(portText), method: req.method, path: req.url, headers: req.headers, agent, timeout: 30_000 }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.headers);
      const length = Number(upRes.headers['content-length'] ?? 0);
      let sent = 0;
      let done = false;
      upRes.on('data', (chunk: Buffer) => {
        if (done) return;
        if (fault?.kind === 'truncate' && sent + chunk.length >= Math.floor(length / 2)) {
          done = true;
          upRes.destroy();
          res.write(chunk.subarray(0, Math.floor(length / 2) - sent), () => res.socket?.destroy());
          return;
        }
        if (fault?.kind === 'corrupt' && sent === 0 && chunk.length > 0) {
          chunk = Buffer.from(chunk);
          chunk[Math.floor(chunk.length / 2)]! ^= 0xff;
        }
        sent += chunk.length;
        if (!res.write(chunk)) upRes.pause();
      });
      res.on('drain', () => upRes.resume());
      upRes.on('end', () => {
        if (!done) res.end();
      });
      upRes.on('error', () => res.destroy());
      res.on('close', () => upRes.destroy()); // the client went away: stop reading from the registry
    });
    up.on('timeout', () => up.destroy(new Error('registry did not answer within 30 s')));
    up.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(err));
    });
    req.pipe(up);
  };

  const server = http.createServer((req, res) => {
    const fault = isBlobGet(req) && left > 0 ? current : undefined;
    if (fault) {
      faulted++;
      left--;
    }
    if (fault?.kind === 'status') {
      req.resume();
      const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/json' };
      if (fault.retryAfterSeconds !== undefined) headers['retry-after'] = String(fault.retryAfterSeconds);
      res.writeHead(fault.status, headers);
      res.end(`{"errors":[{"code":"UNAVAILABLE","message":"injected by the test's fault proxy"}]}`);
      return;
    }
    forward(req, res, fault);
  });

  const listen = (port: number): Promise<number> =>
    new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
  const stopListening = (): Promise<void> =>
    new Promise((resolve) => {
      if (!server.listening) return resolve();
      server.close(() => resolve());
      server.closeAllConnections();
    });

  const port = await listen(0);
  return {
    address: `127.0.0.1:${port}`,
    get faulted() {
      return faulted;
    },
    fault(fault: Fault, times = Infinity) {
      current = fault;
      left = times;
      faulted = 0;
    },
    pass() {
      current = undefined;
    },
    refuse: stopListening,
    async restore() {
      if (!closed && !server.listening) await listen(port);
    },
    async close() {
      closed = true;
      await stopListening();
      agent.destroy();
    },
  };
}
