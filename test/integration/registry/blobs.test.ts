/**
 * Blob size, range reads and streaming against local servers, including one that ignores Range,
 * one that refuses HEAD, and one that cuts transfers short.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import { InvalidArgumentError } from '../../../src/errors';
import { RegistryClient, RegistryNotFoundError, RegistryProtocolError } from '../../../src/registry';
import { FAST_RETRY, TestRepository, TestServer, recordingLogger, sendBlob, serveRegistry } from './test-servers';

interface Behaviour {
  ignoreRange?: boolean;
  refuseHead?: boolean;
  /** Cut the connection after this many body bytes of the first full GET. */
  cutAfter?: number;
  badContentRange?: boolean;
}

describe('blobs', () => {
  let server: TestServer;
  let repo: TestRepository;
  let big: ReturnType<TestRepository['addBlob']>;
  let small: ReturnType<TestRepository['addBlob']>;
  let behaviour: Behaviour = {};
  let abortedResponses = 0;
  let finishedResponses = 0;
  let client: RegistryClient;
  const logger = recordingLogger();
  const name = () => `${server.host}/team/app`;
  const blobGets = () => server.requests(/\/blobs\//).filter((s) => s.method === 'GET');

  before(async () => {
    repo = new TestRepository();
    big = repo.addBlob(randomBytes(32 << 20));
    small = repo.addBlob(randomBytes(1 << 20));
    server = await TestServer.start((req, res) => {
      const isBlob = /\/blobs\//.test(req.url ?? '');
      if (isBlob && req.method === 'HEAD' && behaviour.refuseHead) return void res.writeHead(405).end();
      if (isBlob && req.method === 'GET') {
        res.on('close', () => (res.writableFinished ? finishedResponses++ : abortedResponses++));
        const data = repo.blobs.get(decodeURIComponent((req.url ?? '').split('/blobs/')[1]!));
        if (!data) return void res.writeHead(404).end();
        if (behaviour.badContentRange && req.headers.range) {
          return void res.writeHead(206, { 'content-range': `bytes 0-9/${data.length}`, 'content-length': 10 }).end(data.subarray(0, 10));
        }
        if (behaviour.cutAfter !== undefined && !req.headers.range) {
          res.writeHead(200, { 'content-length': data.length });
          res.write(data.subarray(0, behaviour.cutAfter), () => res.destroy());
          behaviour.cutAfter = undefined;
          return;
        }
        return sendBlob(req, res, data, { ignoreRange: behaviour.ignoreRange });
      }
      if (!serveRegistry(repo, req as http.IncomingMessage, res, { ignoreRange: behaviour.ignoreRange })) res.writeHead(404).end();
    });
    client = new RegistryClient({ hosts: { plainHttp: true }, retry: FAST_RETRY, timeouts: { headersMs: 5_000, bodyMs: 5_000 }, logger });
  });

  beforeEach(() => {
    behaviour = {};
    server.seen.length = 0;
    logger.lines.length = 0;
    abortedResponses = 0;
    finishedResponses = 0;
  });

  after(async () => {
    await client?.close();
    await server?.close();
  });

  const settle = () => new Promise((r) => setTimeout(r, 100));

  it('reads ranges with 206 and checks Content-Range', async () => {
    const blob = await client.openBlob(name(), big.digest);
    assert.equal(blob.size, big.size);
    assert.ok(blob.rangesSupported);
    assert.deepEqual(await blob.readRange(12345, 65536), big.data.subarray(12345, 12345 + 65536));
    assert.deepEqual(await blob.readRange(big.size - 1, 1), big.data.subarray(big.size - 1));
    assert.deepEqual(await blob.readRange(5, 0), Buffer.alloc(0));
    assert.deepEqual(blobGets().map((s) => s.headers.range), ['bytes=12345-77880', `bytes=${big.size - 1}-${big.size - 1}`]);
    await assert.rejects(blob.readRange(big.size - 1, 2), InvalidArgumentError);
    await assert.rejects(blob.readRange(-1, 2), InvalidArgumentError);
  });

  it('handles a server that ignores Range: reads only what is needed, aborts, and stops asking', async () => {
    behaviour.ignoreRange = true;
    const blob = await client.openBlob(name(), big.digest);
    assert.equal(blob.size, big.size, 'HEAD still gives the size');
    assert.deepEqual(await blob.readRange(1000, 5000), big.data.subarray(1000, 6000));
    assert.equal(blob.rangesSupported, false);
    assert.deepEqual(await blob.readRange(70_000, 10), big.data.subarray(70_000, 70_010));
    await settle();
    assert.equal(abortedResponses, 2, 'both 32 MiB responses were cut off once the bytes were there');
    assert.equal(finishedResponses, 0);
    assert.deepEqual(blobGets().map((s) => s.headers.range), ['bytes=1000-5999', undefined]);
    assert.equal(logger.lines.filter((l) => /ignored a Range request/.test(l)).length, 1, 'warned once');
  });

  it('asks nothing to open a blob whose size is known, and still reads from a server that ignores Range', async () => {
    const blob = await client.openBlob(name(), big.digest, { size: big.size });
    assert.equal(server.requests(/\/blobs\//).length, 0, 'no HEAD and no size probe');
    assert.deepEqual(await blob.readRange(4096, 100), big.data.subarray(4096, 4196));
    behaviour.ignoreRange = true;
    const blind = await client.openBlob(name(), small.digest, { size: small.size });
    assert.deepEqual(await blind.readRange(10, 20), small.data.subarray(10, 30));
    assert.equal(blind.rangesSupported, false);
    assert.deepEqual(server.requests(/\/blobs\//).map((s) => s.method), ['GET', 'GET']);
    await assert.rejects(client.openBlob(name(), small.digest, { size: -1 }), RegistryProtocolError);
  });

  it('finds the size with a range request when HEAD is refused', async () => {
    behaviour.refuseHead = true;
    const blob = await client.openBlob(name(), small.digest);
    assert.equal(blob.size, small.size);
    assert.deepEqual(blobGets().map((s) => s.headers.range), ['bytes=0-0']);
    assert.ok(blob.rangesSupported);

    behaviour.ignoreRange = true;
    const blob2 = await client.openBlob(name(), big.digest);
    assert.equal(blob2.size, big.size, 'from the 200 Content-Length');
    assert.equal(blob2.rangesSupported, false);
    await settle();
    assert.equal(abortedResponses, 1, 'the whole-blob answer was not downloaded');
  });

  it('rejects a 206 for the wrong range', async () => {
    behaviour.badContentRange = true;
    const blob = await client.openBlob(name(), small.digest);
    await assert.rejects(blob.readRange(100, 10), (err: Error) => err instanceof RegistryProtocolError && /Content-Range/.test(err.message));
  });

  it('reports a missing blob as not found', async () => {
    await assert.rejects(client.openBlob(name(), `sha256:${'0'.repeat(64)}`), RegistryNotFoundError);
  });

  it('streams a whole blob and resumes with a range after a cut', async () => {
    behaviour.cutAfter = 3 << 20;
    const blob = await client.openBlob(name(), big.digest);
    const chunks: Buffer[] = [];
    for await (const chunk of blob.stream()) chunks.push(chunk as Buffer);
    assert.ok(Buffer.concat(chunks).equals(big.data));
    const ranges = blobGets().map((s) => s.headers.range);
    assert.equal(ranges.length, 2);
    assert.equal(ranges[0], undefined);
    assert.match(ranges[1] ?? '', /^bytes=\d+-$/);
    assert.ok(logger.lines.some((l) => /resuming/.test(l)));
  });

  it('reads only as the consumer pulls, and aborts the transfer when the consumer leaves', async () => {
    const chunks = (await client.openBlob(name(), big.digest)).stream();
    const first = await chunks.next();
    assert.equal(first.done, false);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(finishedResponses, 0, 'the body was not read to its end meanwhile');
    await chunks.return(undefined);
    await settle();
    assert.equal(abortedResponses, 1);
    assert.equal(finishedResponses, 0);
  });
});

