/**
 * Registries that answer too slowly, against a real local server: one that trickles a blob (streamed whole
 * as indexing does, or read by range as the FUSE read path does) or a manifest is cut off by the minimum
 * transfer rate or the request deadline, retried a bounded number of times and reported as too slow with
 * the limit it missed; one that is slow but above the limits is read to the end; a caller's abort ends a
 * trickled transfer at once. Limits are small so each case takes about a second.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { UnavailableError } from '../../../src/errors';
import { RegistryClient } from '../../../src/registry';
import { FAST_RETRY, TestRepository, TestServer, recordingLogger, serveRegistry } from './test-servers';

/** Sends `data` from byte `start`: `step` bytes every `periodMs`, until done or the client goes away. */
function trickle(res: http.ServerResponse, data: Buffer, step: number, periodMs: number): void {
  let pos = 0;
  const timer = setInterval(() => {
    if (pos >= data.length) {
      clearInterval(timer);
      res.end();
      return;
    }
    res.write(data.subarray(pos, pos + step));
    pos += step;
  }, periodMs);
  res.on('close', () => clearInterval(timer));
}

/** A blob answered with Range support, its body trickled. */
function trickleBlob(req: http.IncomingMessage, res: http.ServerResponse, data: Buffer, step: number, periodMs: number): void {
  const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
  const start = m ? Number(m[1]) : 0;
  const end = m && m[2] !== '' ? Number(m[2]) : data.length - 1;
  const headers: http.OutgoingHttpHeaders = { 'content-type': 'application/octet-stream', 'content-length': end - start + 1 };
  if (m) headers['content-range'] = `bytes ${start}-${end}/${data.length}`;
  res.writeHead(m ? 206 : 200, headers);
  if (req.method === 'HEAD') return void res.end();
  trickle(res, data.subarray(start, end + 1), step, periodMs);
}

describe('slow registries', () => {
  let server: TestServer;
  let repo: TestRepository;
  let image: ReturnType<TestRepository['addImage']>;
  /** Bytes per tick and tick period of blob and manifest bodies; undefined: served at full speed. */
  let blobPace: [number, number] | undefined;
  /** Bytes of the blob sent before the connection is cut; undefined: not cut. */
  let cutAfter: number | undefined;
  let manifestPace: [number, number] | undefined;
  const clients: RegistryClient[] = [];
  const logger = recordingLogger();
  const blobData = Buffer.alloc(48 * 1024);
  for (let i = 0; i < blobData.length; i++) blobData[i] = (i * 131) % 251;

  // 1 KiB/s over 0.5 s windows: at least 512 bytes per half second of waiting.
  const limits = { requestMs: 800, minBytesPerSecond: 1024, progressWindowMs: 500 };
  const client = () => {
    const c = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY, timeouts: limits, logger });
    clients.push(c);
    return c;
  };
  const ref = () => `${server.host}/app:v1`;
  const blobGets = () => server.requests(/\/blobs\//).filter((s) => s.method === 'GET').length;

  before(async () => {
    repo = new TestRepository();
    image = repo.addImage([blobData], 'v1');
    server = await TestServer.start((req, res) => {
      const path = (req.url ?? '').split('?')[0]!;
      if (cutAfter !== undefined && req.method === 'GET' && path.endsWith(`/blobs/${image.layers[0]!.digest}`)) {
        const start = Number(/^bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
        const headers = { 'content-length': blobData.length - start, ...(start > 0 ? { 'content-range': `bytes ${start}-${blobData.length - 1}/${blobData.length}` } : {}) };
        res.writeHead(start > 0 ? 206 : 200, headers);
        res.write(blobData.subarray(start, start + cutAfter));
        return void setTimeout(() => res.destroy(), 20);
      }
      if (blobPace && path.endsWith(`/blobs/${image.layers[0]!.digest}`)) return trickleBlob(req, res, blobData, ...blobPace);
      if (manifestPace && path.includes('/manifests/') && req.method === 'GET') {
        const entry = repo.manifests.get('v1')!;
        res.writeHead(200, { 'content-type': entry.mediaType, 'content-length': entry.body.length });
        return trickle(res, entry.body, ...manifestPace);
      }
      if (!serveRegistry(repo, req, res)) res.writeHead(404).end();
    });
  });

  beforeEach(() => {
    server.seen.length = 0;
    logger.lines.length = 0;
    blobPace = undefined;
    manifestPace = undefined;
    cutAfter = undefined;
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server?.close();
  });

  const layer = async (c: RegistryClient) => {
    const r = await c.resolve(ref());
    return c.openBlob(r.reference, r.layers[0]!.digest);
  };

  it('cuts off a trickled blob stream (indexing) after the bounded attempts, naming the limit', async () => {
    const blob = await layer(client());
    blobPace = [8, 50]; // 160 bytes/s
    const got: Buffer[] = [];
    await assert.rejects(
      (async () => {
        for await (const chunk of blob.stream()) got.push(chunk);
      })(),
      (err: Error) => {
        assert.ok(err instanceof UnavailableError, `${err.name}: ${err.message}`);
        assert.match(err.message, /registry too slow: fewer than 512 bytes in 0\.5 s \(\d+ bytes received; the minimum transfer rate is 1 KiB\/s\)/);
        assert.match(err.message, /gave up after 3 attempts/);
        return true;
      },
    );
    assert.equal(blobGets(), FAST_RETRY.maxAttempts);
    // What did arrive was the blob's start, resumed by range on each attempt.
    const prefix = Buffer.concat(got);
    assert.ok(prefix.length > 0);
    assert.deepEqual(prefix, blobData.subarray(0, prefix.length));
  });

  it('does not let a registry that sends a few bytes per connection restart the attempt count', async () => {
    const blob = await layer(client());
    cutAfter = 100; // progress on every attempt, but far less than one window's worth (512 bytes)
    let received = 0;
    await assert.rejects(
      (async () => {
        for await (const chunk of blob.stream()) received += chunk.length;
      })(),
      (err: Error) => err instanceof UnavailableError && /gave up after 3 attempts/.test(err.message),
    );
    assert.equal(blobGets(), FAST_RETRY.maxAttempts);
    assert.equal(received, 300);
  });

  it('cuts off a trickled range read (the FUSE read path) after the bounded attempts', async () => {
    const blob = await layer(client());
    blobPace = [8, 50];
    await assert.rejects(blob.readRange(1000, 4096), (err: Error) => {
      assert.ok(err instanceof UnavailableError, `${err.name}: ${err.message}`);
      assert.match(err.message, /bytes 1000-5095: ETIMEDOUT: registry too slow: fewer than 512 bytes in 0\.5 s/);
      assert.match(err.message, /gave up after 3 attempts/);
      return true;
    });
    assert.equal(blobGets(), FAST_RETRY.maxAttempts);
    assert.ok(server.requests(/\/blobs\//).every((s) => s.method !== 'GET' || s.headers.range === 'bytes=1000-5095'));
  });

  it('gives a trickled manifest the request deadline', async () => {
    manifestPace = [1, 100];
    await assert.rejects(client().resolve(ref()), (err: Error) => {
      assert.ok(err instanceof UnavailableError, `${err.name}: ${err.message}`);
      assert.match(err.message, /registry too slow: no complete response within 0\.8 s \(the request timeout\)/);
      assert.match(err.message, /gave up after 3 attempts/);
      return true;
    });
    assert.equal(server.requests(/\/manifests\//).length, FAST_RETRY.maxAttempts);
  });

  it('reads a slow registry that keeps above the minimum rate to the end', async () => {
    const c = client();
    const blob = await layer(c);
    blobPace = [4096, 100]; // 40 KiB/s, forty times the minimum
    const streamed: Buffer[] = [];
    for await (const chunk of blob.stream()) streamed.push(chunk);
    assert.deepEqual(Buffer.concat(streamed), blobData);
    assert.deepEqual(await blob.readRange(5000, 6000), blobData.subarray(5000, 11_000));
    assert.equal(blobGets(), 2);
    assert.equal(logger.lines.filter((l) => /too slow/.test(l)).length, 0);
  });

  it("ends a trickled transfer at once with the caller's abort reason", async () => {
    const blob = await layer(client());
    blobPace = [1, 1_000];
    const ac = new AbortController();
    const reason = new Error('prepare cancelled');
    setTimeout(() => ac.abort(reason), 200);
    await assert.rejects(blob.readRange(0, 4096, { signal: ac.signal }), (err: Error) => err === reason);
    assert.equal(blobGets(), 1);
  });
});
