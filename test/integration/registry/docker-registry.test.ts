/**
 * The client against the real Debian docker-registry (distribution 2.8) over plain HTTP, with the
 * multilayer test image pushed by skopeo: resolve, config, range reads and a full stream, compared
 * with the blobs of the OCI layout the image was built from.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RegistryClient } from '../../../src/registry';
import { runOk, tempDir } from '../../helpers/processes';

interface LayerSummary {
  digest: string;
  size: number;
  diff_id: string;
}
interface ImageSummary {
  manifest: string;
  config: string;
  layers: LayerSummary[];
}

describe('against docker-registry', () => {
  let dir: string;
  let stateDir: string;
  let layout: string;
  let addr: string;
  let summary: ImageSummary;
  let pushedDigest: string;
  let client: RegistryClient;

  const layoutBlob = (digest: string) => fsp.readFile(path.join(layout, 'blobs', 'sha256', digest.slice('sha256:'.length)));
  const bytesServed = async () => Number((await runOk('bash', ['scripts/registry.sh', 'bytes', stateDir])).trim());

  before(async () => {
    dir = await tempDir('registry-client');
    stateDir = path.join(dir, 'registry');
    layout = path.join(dir, 'layout');
    addr = (await runOk('bash', ['scripts/registry.sh', 'start', stateDir], { timeoutMs: 60_000 })).trim().split('\n').pop()!;
    assert.match(addr, /^127\.0\.0\.1:\d+$/);
    summary = (JSON.parse(await runOk('python3', ['scripts/build-test-image.py', layout, '--tag', 'multilayer'])) as Record<string, ImageSummary>)['multilayer']!;
    pushedDigest = (await runOk('bash', ['scripts/push-test-image.sh', layout, 'multilayer', addr, 'clip/test'], { timeoutMs: 180_000 })).trim();
    client = new RegistryClient({ hosts: { plainHttp: true } });
  });

  after(async () => {
    await client?.close();
    if (stateDir) await runOk('bash', ['scripts/registry.sh', 'stop', stateDir]).catch((err: Error) => console.error(err.message));
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  it('resolves the pushed image with the digests of the layout', async () => {
    assert.equal(pushedDigest, summary.manifest);
    const image = await client.resolve(`${addr}/clip/test:multilayer`);
    assert.equal(image.digest, summary.manifest);
    assert.equal(image.config.digest, summary.config);
    assert.deepEqual(image.layers.map((l) => [l.digest, l.size]), summary.layers.map((l) => [l.digest, l.size]));
    assert.equal((await client.resolve(`${addr}/clip/test@${summary.manifest}`)).digest, summary.manifest);

    const config = await client.fetchConfig(image.reference, image.config);
    assert.deepEqual(config.diffIds, summary.layers.map((l) => l.diff_id));
    assert.deepEqual(config.raw, await layoutBlob(summary.config));
  });

  it('range-reads layers byte for byte, transferring only the ranges', async () => {
    const image = await client.resolve(`${addr}/clip/test:multilayer`);
    for (const layer of summary.layers) {
      const expected = await layoutBlob(layer.digest);
      const blob = await client.openBlob(image.reference, layer.digest);
      assert.equal(blob.size, layer.size);
      const before = await bytesServed();
      const ranges: Array<[number, number]> = [
        [0, Math.min(512, layer.size)],
        [Math.floor(layer.size / 2), Math.min(70_000, layer.size - Math.floor(layer.size / 2))],
        [layer.size - 1, 1],
      ];
      for (const [offset, length] of ranges) {
        assert.ok((await blob.readRange(offset, length)).equals(expected.subarray(offset, offset + length)), `${layer.digest} @${offset}+${length}`);
      }
      assert.ok(blob.rangesSupported);
      const wanted = ranges.reduce((n, [, length]) => n + length, 0);
      assert.equal((await bytesServed()) - before, wanted, 'the registry sent exactly the requested bytes');
    }
  });

  it('streams a whole layer that hashes to its digest', async () => {
    const layer = summary.layers.reduce((a, b) => (b.size > a.size ? b : a));
    const blob = await client.openBlob(`${addr}/clip/test`, layer.digest);
    const hash = createHash('sha256');
    let total = 0;
    for await (const chunk of blob.stream()) {
      hash.update(chunk as Buffer);
      total += (chunk as Buffer).length;
    }
    assert.equal(total, layer.size);
    assert.equal(`sha256:${hash.digest('hex')}`, layer.digest);
  });
});
