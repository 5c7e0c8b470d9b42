/**
 * Time to read 100 MiB of a lazily served file, as `cat` would (128 KiB reads): *cold* (clip fetches the
 * spans from the registry, loopback), *warm* (page cache dropped: clip's disk cache) and *hot* (page cache).
 * The file is the bench image `large`'s 1 GiB random file, read through an overlay of clip's FUSE layers
 * (`ctr snapshots prepare` + `mounts`) on a fresh node; three disjoint 100 MiB regions give three cold
 * samples. clip runs with background fetch off and without keeping the bytes it streams while indexing.
 *
 *   npm run build && node dist/bench/read-100mib.js      (BENCH_CACHE as for npm run bench)
 */
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { chainIds } from '../src/snapshotter/chain-id';
import { REPO_ROOT, runOk, tempDir } from '../test/helpers/processes';
import { dropCaches, withNode } from './bench-node';

const CACHE = process.env.BENCH_CACHE ?? '/var/cache/clip-bench';
const REPO = 'bench/images';
const MIB = 1 << 20;

/** Seconds to read 100 MiB of `file` from `skipMiB` on, in 128 KiB reads. */
function read100(file: string, skipMiB: number): number {
  const start = process.hrtime.bigint();
  execFileSync('dd', [`if=${file}`, 'of=/dev/null', 'bs=128k', `skip=${(skipMiB * MIB) / (128 << 10)}`, `count=${(100 * MIB) / (128 << 10)}`], {
    stdio: 'ignore',
    timeout: 600_000,
  });
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function main(): Promise<void> {
  const built = await runOk(path.join(REPO_ROOT, 'bench', 'build-images.py'), [CACHE, '--tag', 'large'], { timeoutMs: 3_600_000 });
  const summary = JSON.parse(built) as Record<string, { layers: Array<{ diff_id: string }> }>;
  const top = chainIds(summary.large!.layers.map((l) => l.diff_id)).at(-1)!;
  const dir = await tempDir('read-100mib');
  const registryState = path.join(dir, 'registry');
  const registry = (await runOk(path.join(REPO_ROOT, 'scripts', 'registry.sh'), ['start', registryState], { timeoutMs: 60_000 })).trim();
  try {
    await runOk(path.join(REPO_ROOT, 'scripts', 'push-test-image.sh'), [path.join(CACHE, 'layout'), 'large', registry, REPO], { timeoutMs: 900_000 });
    const clipConfig = '[lazy]\nbackground_fetch = false\ncache_while_indexing = false\n';
    await withNode({ parent: dir, name: 'node', registry, criSnapshotter: 'clip', clipConfig }, async (node) => {
      await node.criPull(node.imageRef(REPO, 'large'));
      const root = path.join(node.state, 'mnt-clip');
      const unmount = await node.mountSnapshot('clip', 'k8s.io', top, root);
      try {
        const file = path.join(root, 'data', 'big.bin');
        for (const skip of [0, 300, 600]) {
          await dropCaches();
          const cold = read100(file, skip);
          await dropCaches();
          const warm = read100(file, skip);
          const hot = read100(file, skip);
          console.log(`100 MiB from ${skip} MiB on: cold ${cold.toFixed(3)} s, warm ${warm.toFixed(3)} s, hot ${hot.toFixed(3)} s`);
        }
      } finally {
        await unmount();
      }
    });
  } finally {
    await runOk(path.join(REPO_ROOT, 'scripts', 'registry.sh'), ['stop', registryState], { timeoutMs: 60_000 });
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
