/**
 * The archive store keeps who described each layer, and checks it on every use: archives without a
 * provenance record (stored before it was kept), with a record for other bytes, with a key or repository
 * the policy no longer trusts, or marked distrusted are discarded, never served.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeArchive } from '../../../src/archive';
import { ArchiveStore } from '../../../src/remote/archive-store';
import { RepositoryPattern, TrustPolicy, parsePublicKey } from '../../../src/trust';
import { tempDir } from '../../helpers/processes';
import { TestLayer, recordingLogger, testLayers } from '../published/fixtures';

describe('ArchiveStore provenance', () => {
  let dir: string;
  let layers: TestLayer[];
  const key = parsePublicKey(generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString(), 'k');
  const policy = new TrustPolicy([key], [RepositoryPattern.parse('r.example.com/team/*')]);
  before(async () => {
    dir = await tempDir('archive-store');
    layers = await testLayers();
  });
  after(() => fsp.rm(dir, { recursive: true, force: true }));

  it('gives archives back with the provenance they were stored with', async () => {
    const store = new ArchiveStore(path.join(dir, 'a'), 1 << 30, recordingLogger(), policy);
    const [small, large] = layers as [TestLayer, TestLayer];
    const put = await store.put(small.archive, { source: 'signed', keyId: key.keyId });
    await store.put(large.archive, { source: 'local' });
    assert.deepEqual(await store.get(small.digest), put);
    assert.deepEqual((await store.get(large.digest))?.provenance, { source: 'local' });
  });

  it('evicts least recently used archives over its bound, never one pinned, even one pinned before it was stored', async () => {
    const [small, large] = layers as [TestLayer, TestLayer];
    const store = new ArchiveStore(path.join(dir, 'e'), 1, recordingLogger(), policy);
    const releaseLarge = store.pin(large.digest); // a mount about to fetch its archive
    await store.put(small.archive, { source: 'local' });
    await store.put(large.archive, { source: 'local' });
    assert.equal(await store.get(small.digest), undefined, 'over the bound and not pinned: evicted');
    assert.ok(await store.get(large.digest), 'pinned before it was stored: kept');
    releaseLarge();
    await store.evict();
    assert.equal(await store.get(large.digest), undefined, 'released: evicted at the next eviction');
  });

  it('stores a published archive as the very file it was decoded from', async () => {
    const store = new ArchiveStore(path.join(dir, 'f'), 1 << 30, recordingLogger(), policy);
    const [small] = layers as [TestLayer];
    const file = encodeArchive(small.archive);
    const put = await store.put(small.archive, { source: 'signed', keyId: key.keyId }, file);
    assert.deepEqual(await fsp.readFile(store.fileOf(small.digest)), file);
    assert.deepEqual(await store.get(small.digest), put);
  });

  it('discards an archive without a provenance record, or whose record names other bytes', async () => {
    const logger = recordingLogger();
    const store = new ArchiveStore(path.join(dir, 'b'), 1 << 30, logger, policy);
    const [small, large] = layers as [TestLayer, TestLayer];
    await fsp.mkdir(path.dirname(store.fileOf(small.digest)), { recursive: true });
    await fsp.writeFile(store.fileOf(small.digest), encodeArchive(small.archive)); // as an older clip left it
    assert.equal(await store.get(small.digest), undefined);
    await assert.rejects(fsp.access(store.fileOf(small.digest)), 'the file is gone');
    await store.put(large.archive, { source: 'local' });
    await fsp.writeFile(store.fileOf(large.digest), encodeArchive({ ...large.archive, startupSpans: [0] })); // swapped behind the record
    assert.equal(await store.get(large.digest), undefined);
    assert.match(logger.lines.join('\n'), /no record of who described the layer/);
    assert.match(logger.lines.join('\n'), /its provenance record is for archive sha256:[0-9a-f]{64}, the file is sha256:/);
  });

  it('gives an archive it wrote back from memory while its files are unchanged, from disk once they change', async () => {
    const store = new ArchiveStore(path.join(dir, 'm'), 1 << 30, recordingLogger(), policy);
    const [small] = layers as [TestLayer];
    const put = await store.put(small.archive, { source: 'local' });
    assert.equal(await store.get(small.digest), put, 'the very object put returned');
    assert.equal(await store.get(small.digest), put, 'also after get() touched the file for eviction');
    const bytes = await fsp.readFile(store.fileOf(small.digest));
    await fsp.writeFile(store.fileOf(small.digest), bytes); // the same bytes, written again by someone else
    const reread = await store.get(small.digest);
    assert.notEqual(reread, put);
    assert.deepEqual(reread, put);
  });

  it('discards what a crash can leave of unsynced writes: an empty archive or an empty record', async () => {
    const store = new ArchiveStore(path.join(dir, 'c'), 1 << 30, recordingLogger(), policy);
    const [small, large] = layers as [TestLayer, TestLayer];
    await store.put(small.archive, { source: 'local' });
    await store.put(large.archive, { source: 'local' });
    await fsp.writeFile(store.fileOf(small.digest), Buffer.alloc(0));
    await fsp.writeFile(store.fileOf(large.digest).replace(/\.clip$/, '.trust'), '');
    assert.equal(await store.get(small.digest), undefined);
    assert.equal(await store.get(large.digest), undefined);
    await store.put(small.archive, { source: 'local' });
    assert.equal((await store.get(small.digest))?.archive.layerDigest, small.digest, 'stored again, it is served');
  });

  it('stops serving archives whose key or repository was taken out of the trust settings', async () => {
    const root = path.join(dir, 'c');
    const [small, large] = layers as [TestLayer, TestLayer];
    const before = new ArchiveStore(root, 1 << 30, recordingLogger(), policy);
    await before.put(small.archive, { source: 'signed', keyId: key.keyId });
    await before.put(large.archive, { source: 'repository', repository: 'r.example.com/team/*' });
    const logger = recordingLogger();
    const after = new ArchiveStore(root, 1 << 30, logger, TrustPolicy.localOnly());
    assert.equal(await after.get(small.digest), undefined);
    assert.equal(await after.get(large.digest), undefined);
    assert.match(logger.lines.join('\n'), /signed by sha256:[0-9a-f]{64}, which the trust settings no longer allow/);
  });

  it('never serves a published archive marked distrusted, but keeps local ones', async () => {
    const store = new ArchiveStore(path.join(dir, 'd'), 1 << 30, recordingLogger(), policy);
    const [small, large] = layers as [TestLayer, TestLayer];
    const signed = await store.put(small.archive, { source: 'signed', keyId: key.keyId });
    const local = await store.put(large.archive, { source: 'local' });
    await store.distrust(signed.digest, 'test');
    await store.distrust(local.digest, 'test');
    assert.ok(await store.isDistrusted(signed.digest));
    assert.equal(await store.get(small.digest), undefined);
    assert.deepEqual((await store.get(large.digest))?.digest, local.digest, 'a local archive is the layer itself');
  });
});
