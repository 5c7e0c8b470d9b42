/**
 * Real HTTP servers on 127.0.0.1 (port 0) for the registry client's integration tests: a recording
 * server with a handler per test, and a small in-memory registry (distribution's read API: /v2/,
 * manifests and blobs with HEAD and single Range requests) that handlers can wrap with auth,
 * redirects or faults.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import path from 'node:path';
import { RegistryLogger } from '../../../src/registry';
import { runOk } from '../../helpers/processes';

export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse, seen: SeenRequest) => unknown;

export class TestServer {
  readonly seen: SeenRequest[] = [];
  handler: Handler;

  private constructor(
    private readonly server: http.Server,
    handler: Handler,
    private readonly scheme: 'http' | 'https',
  ) {
    this.handler = handler;
  }

  /** Starts a server; with `tls` (PEM key and certificate, and any other https server options) it speaks HTTPS. */
  static async start(handler: Handler = (_req, res) => res.writeHead(404).end(), tls?: https.ServerOptions & { key: Buffer; cert: Buffer }): Promise<TestServer> {
    const server = tls ? https.createServer(tls) : http.createServer();
    const ts = new TestServer(server, handler, tls ? 'https' : 'http');
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const seen = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
        ts.seen.push(seen);
        Promise.resolve()
          .then(() => ts.handler(req, res, seen))
          .catch((err: Error) => {
          if (!res.headersSent) res.writeHead(500);
          res.end(String(err.message));
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return ts;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** `127.0.0.1:PORT` */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get origin(): string {
    return `${this.scheme}://${this.host}`;
  }

  /** Requests whose path (without query) matches. */
  requests(path: RegExp): SeenRequest[] {
    return this.seen.filter((s) => path.test(s.url.split('?')[0]!));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A self-signed certificate for 127.0.0.1 made with openssl in `dir`, as TestServer.start's `tls`. */
export async function selfSignedTls(dir: string): Promise<{ key: Buffer; cert: Buffer }> {
  const key = path.join(dir, 'self-signed.key');
  const cert = path.join(dir, 'self-signed.pem');
  await runOk('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
  return { key: await fsp.readFile(key), cert: await fsp.readFile(cert) };
}

export const sha256 = (data: Buffer): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export interface Blob {
  digest: string;
  size: number;
  data: Buffer;
}

/** Repository contents served by serveRegistry. */
export class TestRepository {
  readonly blobs = new Map<string, Buffer>();
  readonly manifests = new Map<string, { body: Buffer; mediaType: string }>();

  addBlob(data: Buffer | string): Blob {
    const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
    const digest = sha256(buf);
    this.blobs.set(digest, buf);
    return { digest, size: buf.length, data: buf };
  }

  /** Stores a manifest under its digest and, if given, a tag; returns its descriptor fields. */
  addManifest(doc: object, mediaType: string, tag?: string): Blob {
    const body = Buffer.from(JSON.stringify(doc));
    const digest = sha256(body);
    this.manifests.set(digest, { body, mediaType });
    if (tag) this.manifests.set(tag, { body, mediaType });
    return { digest, size: body.length, data: body };
  }

  /** An OCI image of the given layers (gzip media type; the bytes need not be gzip). */
  addImage(layers: Array<Buffer | string>, tag?: string, platform = { architecture: 'amd64', os: 'linux' }) {
    const layerBlobs = layers.map((l) => this.addBlob(l));
    const config = this.addBlob(JSON.stringify({ ...platform, rootfs: { type: 'layers', diff_ids: layerBlobs.map((l) => l.digest) } }));
    const manifest = this.addManifest(
      {
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
        layers: layerBlobs.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
      },
      'application/vnd.oci.image.manifest.v1+json',
      tag,
    );
    return { manifest, config, layers: layerBlobs };
  }
}

export interface BlobServeOptions {
  /** Answer Range requests with 200 and the whole blob, as some servers do. */
  ignoreRange?: boolean;
}

/** Sends a blob: HEAD, GET, single `bytes=a-b` / `bytes=a-` ranges (206, 416), streamed with backpressure. */
export function sendBlob(req: http.IncomingMessage, res: http.ServerResponse, data: Buffer, options: BlobServeOptions = {}): void {
  const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream', 'docker-content-digest': sha256(data) };
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  let start = 0;
  let end = data.length - 1;
  let status = 200;
  if (m && !options.ignoreRange) {
    start = Number(m[1]);
    end = m[2] === '' ? data.length - 1 : Math.min(Number(m[2]), data.length - 1);
    if (start >= data.length || end < start) {
      res.writeHead(416, { 'content-range': `bytes */${data.length}` }).end();
      return;
    }
    status = 206;
    headers['content-range'] = `bytes ${start}-${end}/${data.length}`;
  }
  headers['content-length'] = end - start + 1;
  res.writeHead(status, headers);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const slice = data.subarray(start, end + 1);
  const chunks = function* () {
    for (let i = 0; i < slice.length; i += 64 * 1024) yield slice.subarray(i, i + 64 * 1024);
  };
  Readable.from(chunks()).pipe(res);
}

const MANIFEST = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const BLOB = /^\/v2\/(.+)\/blobs\/([^/]+)$/;

/** distribution's error body. */
export function sendError(res: http.ServerResponse, status: number, code: string, message: string, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ errors: [{ code, message }] }));
}

/** Serves `repo` under any repository name; returns false when the path is not a registry path. */
export function serveRegistry(repo: TestRepository, req: http.IncomingMessage, res: http.ServerResponse, options: BlobServeOptions = {}): boolean {
  const path = (req.url ?? '').split('?')[0]!;
  if (path === '/v2/' || path === '/v2') {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    return true;
  }
  let m = MANIFEST.exec(path);
  if (m) {
    const entry = repo.manifests.get(decodeURIComponent(m[2]!));
    if (!entry) {
      sendError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
      return true;
    }
    res.writeHead(200, { 'content-type': entry.mediaType, 'content-length': entry.body.length, 'docker-content-digest': sha256(entry.body) });
    res.end(req.method === 'HEAD' ? undefined : entry.body);
    return true;
  }
  m = BLOB.exec(path);
  if (m) {
    const data = repo.blobs.get(decodeURIComponent(m[2]!));
    if (!data) {
      sendError(res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry');
      return true;
    }
    sendBlob(req, res, data, options);
    return true;
  }
  return false;
}

/** A logger that keeps every line, to check what reaches logs. */
export function recordingLogger(): RegistryLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, debug: (m) => lines.push(`debug ${m}`), info: (m) => lines.push(`info ${m}`), warn: (m) => lines.push(`warn ${m}`) };
}

/** Fast retries for tests. */
export const FAST_RETRY = { maxAttempts: 3, baseDelayMs: 20, maxDelayMs: 100, maxRetryAfterMs: 500 };
