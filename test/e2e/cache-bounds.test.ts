/**
 * The content cache within its bounds on the real stack (containerd from CLIP_TEST_CONTAINERD, CRI pulls,
 * `ctr run`): with `[cache] max_size = "8MiB"` (two 4 MiB spans) and background fetching on, a container
 * reading a 24 MiB file of a lazily served layer gets the right bytes while the cache (on a tmpfs of its
 * own, its use sampled throughout) never holds more than 8 MiB; a second read fetches the evicted spans from the registry again
 * and every cached file is named by the sha256 of its bytes; after the CRI RemoveImage and containerd's
 * garbage collection, the image's layers leave the cache once gc_grace has passed (`clip cache du`).
 * The tests share one stack and run in order.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CONTAINERD } from '../helpers/containerd-release';
import { CriClient } from '../helpers/cri-client';
import { criPull, runIn } from '../helpers/cri-run';
import { sha256 } from '../helpers/images';
import { REPO_ROOT, runOk, waitFor } from '../helpers/processes';
import { Stack, mountsUnder, useStack } from '../helpers/stack';

const TEST_TIMEOUT = 300_000;
const MAX_BYTES = 8 << 20;
const CACHE_FS_BYTES = 256 << 20;
const BIG_FILE = 'data/large/random.bin';
const BIG_SHA256 = sha256(createHash('shake256', { outputLength: 24 << 20 }).update('clip-lazy-random').digest());

/**
 * Bytes in use on the cache's own tmpfs, read in one statfs call: an exact, atomic view (a walk of the
 * directory is not: it can count a span evicted during the walk beside the span written in its place).
 */
async function usedBytes(dir: string): Promise<number> {
  const st = await fsp.statfs(dir);
  return (st.blocks - st.bfree) * st.bsize;
}

/** Samples the cache's use every 20 ms while `work` runs; resolves with its result and the largest sample. */
async function whileSampling<T>(dir: string, work: () => Promise<T>): Promise<{ result: T; max: number; samples: number }> {
  let max = 0;
  let samples = 0;
  let done = false;
  const sampler = (async () => {
    while (!done) {
      max = Math.max(max, await usedBytes(dir));
      samples++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  try {
    return { result: await work(), max, samples };
  } finally {
    done = true;
    await sampler;
  }
}

interface DuReport {
  totalBytes: number;
  maxBytes: number;
  layers: Array<{ digest: string; bytes: number; referenced: boolean }>;
}

async function cacheDu(stack: Stack): Promise<DuReport> {
  const out = await runOk(path.join(REPO_ROOT, 'bin', 'clip'), ['cache', 'du', '--json', '--root', stack.clipRoot, '--config', stack.clipConfigFile], { timeoutMs: 30_000 });
  return JSON.parse(out) as DuReport;
}

/** The host path of `file` in the FUSE mount of the layer that holds it. */
async function inLayerMount(stack: Stack, file: string): Promise<string> {
  for (const mount of await mountsUnder(path.join(stack.clipRoot, 'snapshots'))) {
    const candidate = path.join(mount, file);
    if (await fsp.access(candidate).then(() => true, () => false)) return candidate;
  }
  throw new Error(`no layer mount of clip holds ${file}`);
}

describe(`content cache bounds (containerd ${CONTAINERD.version})`, () => {
  const stack = useStack({
    tags: ['lazy'],
    criSnapshotter: 'clip',
    clipConfig: `[cache]\nmax_size = "${MAX_BYTES}"\ngc_grace = "2s"\n`,
    // The cache on a filesystem of its own, so that its use can be read exactly (usedBytes); teardown
    // unmounts everything under the state dir.
    beforeClip: async (s) => {
      const dir = path.join(s.clipRoot, 'cache');
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      await runOk('mount', ['-t', 'tmpfs', '-o', `size=${CACHE_FS_BYTES},mode=0700`, 'tmpfs', dir]);
    },
  });
  const cacheDir = (): string => path.join(stack.clipRoot, 'cache');
  const bigLayer = (): string => stack.images.lazy!.layers[3]!.digest;

  test('a container reading a layer larger than max_size gets the right bytes and the cache never exceeds max_size', { timeout: TEST_TIMEOUT }, async () => {
    const uncompressed = stack.images.lazy!.layers[3]!.uncompressed_size;
    assert.ok(uncompressed > 3 * MAX_BYTES, `the layer (${uncompressed} bytes) is larger than max_size`);
    const { result: out, max, samples } = await whileSampling(cacheDir(), async () => {
      await criPull(stack, 'lazy');
      return runIn(stack, 'lazy', 'bounds-1', ['sha256sum', `/${BIG_FILE}`]);
    });
    assert.equal(out.split(/\s+/)[0], BIG_SHA256, 'the container read the right bytes');
    console.log(`# ${samples} samples of the cache during pull and read: at most ${max} bytes in use; max_size ${MAX_BYTES}`);
    assert.ok(samples >= 5, `sampled ${samples} times`);
    assert.ok(max > 0, 'the cache was used');
    assert.ok(max <= MAX_BYTES, `the cache held ${max} bytes, over max_size ${MAX_BYTES}`);
    const du = await cacheDu(stack);
    assert.equal(du.maxBytes, MAX_BYTES);
    assert.ok(du.totalBytes <= MAX_BYTES && du.totalBytes > 0, `clip cache du: ${du.totalBytes} bytes`);
    assert.ok(du.layers.every((l) => l.referenced), 'every cached layer is referenced by a snapshot');
  });

  test('evicted spans are fetched again, verified and served correctly', { timeout: TEST_TIMEOUT }, async () => {
    // The kernel keeps the file's pages; drop them (this file's only) so that the read reaches clip again.
    await runOk('dd', [`if=${await inLayerMount(stack, BIG_FILE)}`, 'iflag=nocache', 'count=0', 'status=none']);
    const before = await stack.registryBlobBytes([bigLayer()]);
    const { result: out, max } = await whileSampling(cacheDir(), () => runIn(stack, 'lazy', 'bounds-2', ['sha256sum', `/${BIG_FILE}`]));
    assert.equal(out.split(/\s+/)[0], BIG_SHA256, 'the second read got the right bytes');
    const fetched = (await stack.registryBlobBytes([bigLayer()])) - before;
    console.log(`# second read of the 24 MiB file: registry served ${fetched} bytes of its layer again; cache at most ${max} bytes`);
    assert.ok(fetched > 0, 'spans evicted from the cache were fetched from the registry again');
    const layerSize = stack.images.lazy!.layers[3]!.size;
    assert.ok(fetched <= layerSize, `no span fetched twice: ${fetched} bytes of a ${layerSize}-byte layer`);
    assert.ok(max <= MAX_BYTES, `the cache held ${max} bytes, over max_size ${MAX_BYTES}`);
    // Whatever is cached now was verified: each file is named by the sha256 of its bytes.
    const root = path.join(cacheDir(), 'sha256');
    let files = 0;
    for (const layer of await fsp.readdir(root)) {
      for (const name of await fsp.readdir(path.join(root, layer))) {
        if (name.startsWith('.tmp-')) continue;
        assert.equal(sha256(await fsp.readFile(path.join(root, layer, name))), name, `cache file ${layer}/${name}`);
        files++;
      }
    }
    assert.ok(files > 0, 'the cache holds spans');
    assert.match(stack.clipLog(), /content cache .*max_size 8\.0 MiB/);
  });

  test('after the CRI RemoveImage and containerd\'s garbage collection, the layers leave the cache after gc_grace', { timeout: TEST_TIMEOUT }, async () => {
    const layers = new Set(stack.images.lazy!.layers.map((l) => l.digest));
    const before = await cacheDu(stack);
    assert.ok(before.layers.some((l) => layers.has(l.digest)), 'the image has bytes in the cache');
    const cri = new CriClient(stack.containerdAddress);
    try {
      await cri.removeImage(stack.imageRef('lazy'));
    } finally {
      cri.close();
    }
    let after = before;
    await waitFor('the image\'s layers to leave the content cache', async () => {
      after = await cacheDu(stack);
      return !after.layers.some((l) => layers.has(l.digest));
    }, 120_000);
    console.log(`# content cache: ${before.totalBytes} bytes before RemoveImage, ${after.totalBytes} after GC and gc_grace`);
    assert.ok(after.totalBytes < before.totalBytes, 'the cache shrank');
    assert.match(stack.clipLog(), /removed layer sha256:[0-9a-f]{64} from the content cache .*no snapshot has referenced it for 2 s/);
  });
});
