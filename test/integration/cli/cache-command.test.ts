/**
 * `clip cache du` and `clip cache prune` (bin/clip as a child process) on a root with a real snapshot
 * metastore and content cache: per-layer bytes, whether a snapshot references each layer, the bound from
 * the config, pruning the unused layers or all of them, and the exit codes of wrong uses.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ContentCache } from '../../../src/fusefs/content-cache';
import { LABEL_CRI_LAYER_DIGEST } from '../../../src/snapshotter/labels';
import { Layout } from '../../../src/snapshotter/layout';
import { MetaStore } from '../../../src/snapshotter/metastore';
import { Kind } from '../../../src/snapshotter/types';
import { RunResult, run, tempDir } from '../../helpers/processes';
import { CLIP } from './cli-fixture';

const clip = (args: string[]): Promise<RunResult> => run(CLIP, args, { timeoutMs: 60_000 });
const sha = (b: Buffer | string): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const USED = sha('used layer');
const UNUSED = sha('unused layer');

describe('clip cache du and prune', () => {
  let dir: string;
  let root: string;
  let config: string;
  before(async () => {
    dir = await tempDir('cache-cli');
    root = path.join(dir, 'root');
    await fsp.mkdir(root);
    const store = new MetaStore(new Layout(root).metadataFile);
    store.insert({ key: 'layer-1', parentId: null, kind: Kind.COMMITTED, labels: { [LABEL_CRI_LAYER_DIGEST]: USED }, now: 1 });
    store.close();
    const cache = new ContentCache(path.join(root, 'cache'));
    for (const [layer, sizes] of [[USED, [5000, 9000]], [UNUSED, [100]]] as const) {
      for (const size of sizes) {
        const data = Buffer.alloc(size, `${layer}${size}`);
        await cache.put(layer, sha(data), data);
      }
    }
    config = path.join(dir, 'clip.toml');
    await fsp.writeFile(config, '[cache]\nmax_size = "1MiB"\n');
  });
  after(() => fsp.rm(dir, { recursive: true, force: true }));

  const du = async (): Promise<{ totalBytes: number; maxBytes: number; layers: Array<{ digest: string; bytes: number; spans: number; referenced: boolean }> }> => {
    const r = await clip(['cache', 'du', '--json', '--root', root, '--config', config]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };

  test('du reports bytes in whole blocks per layer, whether a snapshot uses it, the total and max_size', async () => {
    const report = await du();
    assert.deepEqual(report.layers, [
      { digest: USED, bytes: 8192 + 12288, spans: 2, referenced: true },
      { digest: UNUSED, bytes: 4096, spans: 1, referenced: false },
    ]);
    assert.equal(report.totalBytes, 24576);
    assert.equal(report.maxBytes, 1 << 20);
    const text = await clip(['cache', 'du', '--root', root, '--config', config]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, new RegExp(`^${UNUSED} +0\\.0 MiB +1  no$`, 'm'));
    assert.match(text.stdout, /^total 0\.0 MiB of max_size 1\.0 MiB in /m);
  });

  test('wrong uses exit with their codes', async () => {
    const both = await clip(['cache', 'prune', '--all', '--unused', '--root', root]);
    assert.equal(both.code, 2, both.stderr);
    assert.match(both.stderr, /--all or --unused, not both/);
    const nowhere = await clip(['cache', 'du', '--root', path.join(dir, 'missing')]);
    assert.equal(nowhere.code, 1);
    assert.match(nowhere.stderr, /no clip root at .*missing/);
    const badConfig = path.join(dir, 'bad.toml');
    await fsp.writeFile(badConfig, '[cache]\nmax_size = "huge"\n');
    assert.equal((await clip(['cache', 'du', '--root', root, '--config', badConfig])).code, 5);
  });

  test('prune removes the layers no snapshot uses; --all removes the rest', async () => {
    const unused = await clip(['cache', 'prune', '--root', root]);
    assert.equal(unused.code, 0, unused.stderr);
    assert.match(unused.stdout, /^removed 1 layers /);
    assert.deepEqual((await du()).layers.map((l) => l.digest), [USED]);
    const all = await clip(['cache', 'prune', '--all', '--root', root]);
    assert.equal(all.code, 0, all.stderr);
    assert.deepEqual((await du()).layers, []);
  });
});
