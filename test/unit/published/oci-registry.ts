/**
 * A small in-memory OCI registry on 127.0.0.1 (port 0) with what publishing needs beyond the read API of
 * test-servers.ts: blob uploads (POST, then a monolithic PUT with ?digest=, checked), manifest PUTs (by tag
 * or digest; referenced blobs must exist, as in distribution), and optionally the OCI 1.1 referrers API
 * (GET /referrers/<digest>, and OCI-Subject on a PUT of a manifest with a subject). Without it, the
 * referrers path answers 404 like distribution 2.8. With `auth`, every request needs a bearer token from
 * /token whose scope allows the action (pull for reads, pull,push for writes).
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { AddressInfo } from 'node:net';
import { TestRepository, sendError, serveRegistry, sha256 } from '../../integration/registry/test-servers';

export interface OciRegistryOptions {
  referrersApi?: boolean;
  auth?: boolean;
  /** Writes (uploads, manifest PUTs) answer 403 DENIED, or 405 UNSUPPORTED as a read-only registry's do. */
  writes?: 'denied' | 'unsupported';
}

interface Seen {
  method: string;
  path: string;
  authorization?: string;
}

const UPLOAD = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/;
const MANIFEST = /^\/v2\/(.+)\/manifests\/([^/]+)$/;
const REFERRERS = /^\/v2\/(.+)\/referrers\/([^/]+)$/;
const INDEX = 'application/vnd.oci.image.index.v1+json';

export class OciRegistry {
  readonly repo = new TestRepository();
  readonly seen: Seen[] = [];
  /** Scopes of the tokens handed out. */
  readonly grantedScopes: string[] = [];
  /** Subject digest → referrer descriptors (referrers API only). */
  private readonly referrers = new Map<string, object[]>();
  private readonly uploads = new Set<string>();
  /** Replaces the blob bytes served for a digest (to serve tampered bytes). */
  readonly servedInstead = new Map<string, Buffer>();

  private constructor(
    private readonly server: http.Server,
    private readonly options: OciRegistryOptions,
  ) {}

  static async start(options: OciRegistryOptions = {}): Promise<OciRegistry> {
    const server = http.createServer();
    const registry = new OciRegistry(server, options);
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        try {
          registry.handle(req, res, Buffer.concat(chunks));
        } catch (err) {
          if (!res.headersSent) res.writeHead(500);
          res.end(String((err as Error).message));
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return registry;
  }

  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  requests(method: string, path: RegExp): Seen[] {
    return this.seen.filter((s) => s.method === method && path.test(s.path));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private authorized(req: http.IncomingMessage, res: http.ServerResponse, name: string): boolean {
    if (!this.options.auth) return true;
    const actions = req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'pull,push';
    const scope = `repository:${name}:${actions}`;
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const granted = token ? Buffer.from(token, 'base64').toString().split(' ') : [];
    if (granted.includes(scope) || (actions === 'pull' && granted.includes(`repository:${name}:pull,push`))) return true;
    sendError(res, 401, 'UNAUTHORIZED', 'authentication required', {
      'www-authenticate': `Bearer realm="http://${this.host}/token",service="test",scope="${scope}"`,
    });
    return false;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
    const url = new URL(req.url ?? '/', `http://${this.host}`);
    const path = url.pathname;
    this.seen.push({ method: req.method ?? '', path, authorization: req.headers.authorization });
    if (path === '/token') {
      const scopes = url.searchParams.getAll('scope');
      this.grantedScopes.push(...scopes);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: Buffer.from(scopes.join(' ')).toString('base64') }));
      return;
    }
    const name = /^\/v2\/(.+?)\/(?:blobs|manifests|referrers)\//.exec(path)?.[1] ?? '';
    if (name && !this.authorized(req, res, name)) return;
    if (this.options.writes && req.method !== 'GET' && req.method !== 'HEAD') {
      if (this.options.writes === 'denied') return sendError(res, 403, 'DENIED', 'requested access to the resource is denied');
      return void res.writeHead(405, { 'content-type': 'text/plain' }).end('Method Not Allowed');
    }

    let m = UPLOAD.exec(path);
    if (m && req.method === 'POST') {
      const id = randomUUID();
      this.uploads.add(id);
      res.writeHead(202, { location: `/v2/${m[1]}/blobs/uploads/${id}?_state=s%3D%3D`, 'docker-upload-uuid': id }).end();
      return;
    }
    if (m && req.method === 'PUT') {
      const digest = url.searchParams.get('digest');
      if (!this.uploads.delete(m[2]!) || url.searchParams.get('_state') !== 's==') return sendError(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'upload unknown');
      if (digest !== sha256(body)) return sendError(res, 400, 'DIGEST_INVALID', 'digest does not match');
      this.repo.blobs.set(digest, body);
      res.writeHead(201, { location: `/v2/${m[1]}/blobs/${digest}`, 'docker-content-digest': digest }).end();
      return;
    }
    m = MANIFEST.exec(path);
    if (m && req.method === 'PUT') return this.putManifest(res, m[1]!, decodeURIComponent(m[2]!), body, req.headers['content-type'] ?? '');
    m = REFERRERS.exec(path);
    if (m) {
      if (!this.options.referrersApi) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found');
      const type = url.searchParams.get('artifactType');
      const list = (this.referrers.get(m[2]!) ?? []).filter((d) => type === null || (d as { artifactType?: string }).artifactType === type);
      res.writeHead(200, { 'content-type': INDEX }).end(JSON.stringify({ schemaVersion: 2, mediaType: INDEX, manifests: list }));
      return;
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      const blob = /^\/v2\/.+\/blobs\/([^/]+)$/.exec(path)?.[1];
      const instead = blob ? this.servedInstead.get(blob) : undefined;
      if (instead) {
        res.writeHead(200, { 'content-length': instead.length, 'docker-content-digest': blob! });
        res.end(req.method === 'HEAD' ? undefined : instead);
        return;
      }
      if (serveRegistry(this.repo, req, res)) return;
    }
    sendError(res, 405, 'UNSUPPORTED', `${req.method} ${path}`);
  }

  private putManifest(res: http.ServerResponse, name: string, ref: string, body: Buffer, contentType: string): void {
    const doc = JSON.parse(body.toString()) as {
      config?: { digest: string };
      layers?: Array<{ digest: string }>;
      manifests?: Array<{ digest: string }>;
      subject?: { digest: string };
      artifactType?: string;
      mediaType?: string;
    };
    const digest = sha256(body);
    if (ref.startsWith('sha256:') && ref !== digest) return sendError(res, 400, 'DIGEST_INVALID', 'manifest digest');
    for (const d of [doc.config, ...(doc.layers ?? [])].filter((x) => x !== undefined)) {
      if (!this.repo.blobs.has(d.digest)) return sendError(res, 400, 'MANIFEST_BLOB_UNKNOWN', d.digest);
    }
    for (const d of doc.manifests ?? []) {
      if (!this.repo.manifests.has(d.digest)) return sendError(res, 400, 'MANIFEST_UNKNOWN', d.digest);
    }
    const entry = { body, mediaType: contentType };
    this.repo.manifests.set(digest, entry);
    if (!ref.startsWith('sha256:')) this.repo.manifests.set(ref, entry);
    const headers: http.OutgoingHttpHeaders = { location: `/v2/${name}/manifests/${digest}`, 'docker-content-digest': digest };
    if (this.options.referrersApi && doc.subject) {
      const list = (this.referrers.get(doc.subject.digest) ?? []).filter((d) => (d as { digest: string }).digest !== digest);
      list.push({ mediaType: doc.mediaType ?? contentType, digest, size: body.length, artifactType: doc.artifactType });
      this.referrers.set(doc.subject.digest, list);
      headers['oci-subject'] = doc.subject.digest;
    }
    res.writeHead(201, headers).end();
  }
}
