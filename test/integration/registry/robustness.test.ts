/**
 * Retries, timeouts and aborts against misbehaving local servers: transient failures are retried a
 * bounded number of times with back-off, final 4xx are not, nothing hangs, and the end is a typed error.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { UnavailableError } from '../../../src/errors';
import { RegistryAuthError, RegistryClient, RegistryNotFoundError, RegistryRequestError } from '../../../src/registry';
import { FAST_RETRY, TestRepository, TestServer, recordingLogger, serveRegistry } from './test-servers';

type Fault = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => boolean;

describe('retries and timeouts', () => {
  let server: TestServer;
  let repo: TestRepository;
  let image: ReturnType<TestRepository['addImage']>;
  let fault: Fault | undefined;
  let count = 0;
  const clients: RegistryClient[] = [];
  const logger = recordingLogger();

  const client = (extra: ConstructorParameters<typeof RegistryClient>[0] = {}) => {
    const c = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY, timeouts: { headersMs: 300, bodyMs: 300 }, logger, ...extra });
    clients.push(c);
    return c;
  };
  const ref = () => `${server.host}/app:v1`;
  const manifestGets = () => server.requests(/\/manifests\//).length;

  before(async () => {
    repo = new TestRepository();
    image = repo.addImage([Buffer.alloc(200_000, 7)], 'v1');
    server = await TestServer.start((req, res) => {
      count++;
      if (fault?.(req, res, count)) return;
      if (!serveRegistry(repo, req, res)) res.writeHead(404).end();
    });
  });

  beforeEach(() => {
    server.seen.length = 0;
    logger.lines.length = 0;
    fault = undefined;
    count = 0;
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server?.close();
  });

  it('retries 500s and succeeds', async () => {
    fault = (_req, res, n) => n <= 2 && (res.writeHead(500).end('boom'), true);
    assert.equal((await client().resolve(ref())).digest, image.manifest.digest);
    assert.equal(manifestGets(), 3);
    assert.equal(logger.lines.filter((l) => /HTTP 500; retrying in \d+ ms \(attempt \d\/3\)/.test(l)).length, 2);
  });

  it('gives up after the configured attempts with UnavailableError', async () => {
    fault = (_req, res) => (res.writeHead(503).end(), true);
    await assert.rejects(client().resolve(ref()), (err: Error) => err instanceof UnavailableError && /HTTP 503 \(gave up after 3 attempts\)/.test(err.message));
    assert.equal(manifestGets(), 3);
  });

  it('honours Retry-After on 429, capped', async () => {
    fault = (_req, res, n) => n === 1 && (res.writeHead(429, { 'retry-after': '30' }).end(), true);
    await client().resolve(ref());
    // The server asked for 30 s; the client waits the capped delay (what it waits is what it logs).
    const waited = logger.lines.filter((l) => /HTTP 429; retrying in (\d+) ms/.test(l));
    assert.equal(waited.length, 1, logger.lines.join('\n'));
    assert.equal(Number(/retrying in (\d+) ms/.exec(waited[0]!)![1]), FAST_RETRY.maxRetryAfterMs);
    assert.equal(manifestGets(), 2);
  });

  for (const [status, cls] of [
    [404, RegistryNotFoundError],
    [400, RegistryRequestError],
    [403, RegistryAuthError],
    [405, RegistryRequestError],
  ] as const) {
    it(`does not retry ${status}`, async () => {
      if (status !== 404) fault = (_req, res) => (res.writeHead(status).end(), true);
      await assert.rejects(client().resolve(status === 404 ? `${server.host}/app:nope` : ref()), (err: Error) => {
        assert.ok(err instanceof cls, `${err.name}: ${err.message}`);
        if (status === 404) assert.match(err.message, /HTTP 404 \(MANIFEST_UNKNOWN: manifest unknown\)/);
        return true;
      });
      assert.equal(manifestGets(), 1);
    });
  }

  it('times out a server that never answers, boundedly', async () => {
    fault = () => true; // accept the request, never respond
    const started = Date.now();
    await assert.rejects(client().resolve(ref()), (err: Error) => err instanceof UnavailableError && /UND_ERR_HEADERS_TIMEOUT/.test(err.message) && /gave up after 3 attempts/.test(err.message));
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 3 * 300 && elapsed < 5_000, `took ${elapsed} ms`);
    assert.equal(manifestGets(), 3);
  });

  it('retries a body that stalls mid-transfer', async () => {
    const layer = image.layers[0]!;
    fault = (req, res) => {
      if (!req.url?.includes('/blobs/') || req.method !== 'GET' || server.requests(/\/blobs\//).filter((s) => s.method === 'GET').length > 1) return false;
      res.writeHead(206, { 'content-range': `bytes 0-99999/${layer.size}`, 'content-length': 100_000 });
      res.write(layer.data.subarray(0, 1000)); // then nothing
      return true;
    };
    const blob = await client().openBlob(ref(), layer.digest);
    assert.deepEqual(await blob.readRange(0, 100_000), layer.data.subarray(0, 100_000));
    assert.ok(logger.lines.some((l) => /UND_ERR_BODY_TIMEOUT.*retrying/.test(l)), logger.lines.join('\n'));
  });

  it('stops at once when aborted, with the abort reason', async () => {
    fault = () => true;
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort(), 100);
    await assert.rejects(client({ timeouts: { headersMs: 10_000 } }).resolve(ref(), { signal: ac.signal }), (err: Error) => err.name === 'AbortError');
    assert.ok(Date.now() - started < 1_000);
  });

  it('reports a refused connection as UnavailableError after retries', async () => {
    const gone = await TestServer.start();
    const host = gone.host;
    await gone.close();
    await assert.rejects(client().resolve(`${host}/app:v1`), (err: Error) => err instanceof UnavailableError && /ECONNREFUSED/.test(err.message) && /gave up after 3 attempts/.test(err.message));
  });
});
