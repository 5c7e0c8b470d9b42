/**
 * A throttling HTTP reverse proxy that stands for a slow link between a node and its registry:
 * every request waits `delayMs` before it is forwarded, and response bodies of all connections
 * together pass through one token bucket of `rateBytesPerSec` (a shared link, not per connection).
 * It also counts response body bytes of blob GETs, so the bench can read what the registry served.
 *
 *   node dist/bench/throttle-proxy.js --target 127.0.0.1:5000 [--rate 20000000] [--delay-ms 10] [--port 0]
 *
 * prints `listening 127.0.0.1:PORT` once ready; `GET /_throttle/stats` answers
 * `{"blobBytes": N, "requests": N}`. SIGTERM/SIGINT stop it.
 */
import http from 'node:http';
import { AddressInfo } from 'node:net';
import { Transform, TransformCallback, pipeline } from 'node:stream';

/** Bytes per second shared by every stream that takes from it; FIFO, bursts of at most `burst` bytes. */
export class TokenBucket {
  private tokens: number;
  private last = process.hrtime.bigint();
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly rate: number,
    private readonly burst = 64 << 10,
  ) {
    this.tokens = burst;
  }

  /** Resolves once n bytes may be sent (n may exceed the burst; it is then taken in pieces). */
  take(n: number): Promise<void> {
    const turn = this.queue.then(() => this.takeNow(n));
    this.queue = turn;
    return turn;
  }

  private async takeNow(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      this.refill();
      const piece = Math.min(left, this.burst);
      if (this.tokens < piece) {
        await new Promise((r) => setTimeout(r, Math.max(1, ((piece - this.tokens) / this.rate) * 1000)));
        continue;
      }
      this.tokens -= piece;
      left -= piece;
    }
  }

  private refill(): void {
    const now = process.hrtime.bigint();
    this.tokens = Math.min(this.burst, this.tokens + (Number(now - this.last) / 1e9) * this.rate);
    this.last = now;
  }
}

class Throttle extends Transform {
  constructor(
    private readonly bucket: TokenBucket | undefined,
    private readonly onBytes: (n: number) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const pass = (): void => {
      this.onBytes(chunk.length);
      done(null, chunk);
    };
    if (!this.bucket) pass();
    else this.bucket.take(chunk.length).then(pass, done);
  }
}

export interface ThrottleProxyOptions {
  target: string;
  rateBytesPerSec?: number;
  delayMs?: number;
  port?: number;
}

export function startThrottleProxy(opts: ThrottleProxyOptions): Promise<{ server: http.Server; address: string }> {
  const [host, portText] = opts.target.split(':');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const bucket = opts.rateBytesPerSec ? new TokenBucket(opts.rateBytesPerSec) : undefined;
  const stats = { blobBytes: 0, requests: 0 };

  const server = http.createServer((req, res) => {
    if (req.url === '/_throttle/stats') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(stats));
      return;
    }
    stats.requests++;
    const isBlobGet = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
    const forward = (): void => {
      const up = http.request(
        { host, port: Number(portText), method: req.method, path: req.url, headers: req.headers, agent },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, upRes.headers);
          const count = (n: number): void => {
            if (isBlobGet) stats.blobBytes += n;
          };
          pipeline(upRes, new Throttle(bucket, count), res, () => undefined);
        },
      );
      up.on('error', (err) => {
        if (!res.headersSent) res.writeHead(502);
        res.end(String(err));
      });
      pipeline(req, up, () => undefined);
    };
    if (opts.delayMs) setTimeout(forward, opts.delayMs);
    else forward();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, address: `127.0.0.1:${port}` });
    });
  });
}

function main(argv: string[]): void {
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(name);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const target = arg('--target');
  if (!target) {
    console.error('usage: throttle-proxy.js --target HOST:PORT [--rate BYTES_PER_SEC] [--delay-ms MS] [--port PORT]');
    process.exit(2);
  }
  startThrottleProxy({
    target,
    rateBytesPerSec: Number(arg('--rate') ?? 0),
    delayMs: Number(arg('--delay-ms') ?? 0),
    port: Number(arg('--port') ?? 0),
  }).then(
    ({ server, address }) => {
      console.log(`listening ${address}`);
      const stop = (): void => {
        server.close();
        server.closeAllConnections();
        process.exit(0);
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    },
    (err: Error) => {
      console.error(err.message);
      process.exit(1);
    },
  );
}

if (require.main === module) main(process.argv.slice(2));
