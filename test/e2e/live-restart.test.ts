/**
 * Live restart on the real stack (containerd 1.6 with CRI, runc, the registry, kernel FUSE, overlayfs): a
 * container started from a lazily pulled image keeps reading its lazy layers in a loop, printing
 * checksums, while clip is killed with SIGKILL and restarted three times, stopped with SIGTERM and started
 * again, and replaced by a build in another directory. Every checksum must be right and no read may fail;
 * new containers start after each restart without another pull. A second `clip serve` on the same root
 * fails with one line while the container reads, and leaves every mount alone.
 *
 * Each round reads a 64 KiB chunk of /data/large/random.bin that was never read before (so the page cache
 * cannot answer it: the read reaches clip, and often the registry, since background fetching is off), and
 * the checksums of two small files.
 */
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { listFuseMounts } from '../../src/fusefs/mounts';
import { CriClient } from '../helpers/cri-client';
import { REPO_ROOT, run, runOk, tempDir, waitFor } from '../helpers/processes';
import { mountsUnder, useStack } from '../helpers/stack';

const TEST_TIMEOUT = 900_000;
const K8S = ['-n', 'k8s.io'];
const CHUNK = 65536;
const CHUNKS = 384; // random.bin is 24 MiB
const STEP = 37; // coprime to CHUNKS: each round reads a chunk not read before

const LOOP = `
i=0
while true; do
  sha256sum /etc/clip-test/message /data/large/text.txt || echo "ERROR small files"
  n=$(( (i * ${STEP}) % ${CHUNKS} ))
  s=$(dd if=/data/large/random.bin bs=${CHUNK} skip=$n count=1 2>/dev/null | sha256sum) || echo "ERROR chunk $n"
  echo "chunk $n $s"
  echo "round $i"
  i=$((i + 1))
  sleep 0.2
done`;

interface Line {
  at: number;
  text: string;
}

describe('containers keep their lazy layers while clip restarts', () => {
  // Spans are fetched when first read (nothing cached while indexing, no background fetch), so the loop
  // reads both cached and uncached bytes; a read waits at most 5 s for the registry.
  const stack = useStack({
    tags: ['lazy'],
    criSnapshotter: 'clip',
    clipConfig: '[lazy]\nbackground_fetch = false\ncache_while_indexing = false\nread_timeout_seconds = 5\n',
  });
  const random = createHash('shake256', { outputLength: 24 << 20 }).update('clip-lazy-random').digest();
  const chunkSum = (n: number): string => createHash('sha256').update(random.subarray(n * CHUNK, (n + 1) * CHUNK)).digest('hex');

  async function criPull(tag: string): Promise<void> {
    const cri = new CriClient(stack.containerdAddress);
    try {
      await cri.pullImage(stack.imageRef(tag));
    } finally {
      cri.close();
    }
  }

  /** A container started after a restart (the image is not pulled again); containerd may need a moment to reconnect. */
  async function startsNewContainer(id: string): Promise<void> {
    let last = '';
    await waitFor(`container ${id} to run`, async () => {
      const r = await stack.ctr([...K8S, 'run', '--rm', '--snapshotter', 'clip', stack.imageRef('lazy'), `${id}-${Date.now()}`, '/bin/sh', '-c', 'cat /etc/clip-test/message']);
      last = `${r.stdout}${r.stderr}`;
      return r.code === 0 && r.stdout === 'hello from clip, layer 3\n';
    }, 60_000).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: ${last}`);
    });
  }

  /** A copy of this build in another directory, as an upgrade installs one (node_modules shared). */
  async function otherBuild(): Promise<string> {
    const dir = await tempDir('upgrade');
    await run('cp', ['-a', path.join(REPO_ROOT, 'dist'), path.join(REPO_ROOT, 'bin'), path.join(REPO_ROOT, 'package.json'), dir], { timeoutMs: 60_000 });
    await fsp.symlink(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    return dir;
  }

  /** Blob bytes of layer 2 the registry served for the pull (indexing streams the layer once). */
  let layer2Pulled = -1;

  test('a container reading in a loop sees no error and right checksums through kill -9, SIGTERM and an upgrade', { timeout: TEST_TIMEOUT }, async () => {
    await criPull('lazy');
    layer2Pulled = await stack.registryBlobBytes([stack.images.lazy!.layers[1]!.digest]);
    const id = `reader-${Date.now()}`;
    const lines: Line[] = [];
    let partial = '';
    const reader: ChildProcess = spawn(
      path.join(REPO_ROOT, 'scripts', 'ctr.sh'),
      [stack.state, ...K8S, 'run', '--rm', '--snapshotter', 'clip', stack.imageRef('lazy'), id, '/bin/sh', '-c', LOOP],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    reader.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    reader.stdout!.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop()!;
      for (const text of parts) lines.push({ at: Date.now(), text });
    });
    const rounds = (): number => lines.filter((l) => l.text.startsWith('round ')).length;
    const moreRounds = async (what: string, n: number): Promise<void> => {
      const target = rounds() + n;
      await waitFor(`${n} more rounds ${what}`, () => {
        if (reader.exitCode !== null) throw new Error(`the reading container ended: ${stderr}\n${lines.slice(-10).map((l) => l.text).join('\n')}`);
        return rounds() >= target;
      }, 120_000);
    };
    let upgradeDir: string | undefined;
    const stalls: number[] = [];
    const takeOvers: number[] = [];
    try {
      await moreRounds('before any restart', 3);
      const mountsBefore = (await mountsUnder(stack.clipRoot)).sort();

      // A second daemon on the same root stops at once and touches nothing.
      const second = await run(path.join(REPO_ROOT, 'bin', 'clip'), ['serve', '--root', stack.clipRoot, '--address', path.join(stack.state, 'second.sock'), '--config', stack.clipConfigFile], { timeoutMs: 30_000 });
      assert.equal(second.code, 1);
      assert.match(second.stderr, /^clip: another clip serve is running on .*\n$/);
      assert.deepEqual((await mountsUnder(stack.clipRoot)).sort(), mountsBefore, 'every mount left alone');
      await moreRounds('after the second daemon gave up', 2);

      for (let i = 1; i <= 3; i++) {
        const killedAt = Date.now();
        await stack.restartClip({ kill: true });
        await moreRounds(`after kill -9 number ${i}`, 3);
        stalls.push(longestGap(lines, killedAt));
        takeOvers.push(lastTakeOver(stack.clipLog()) - killedAt);
        await startsNewContainer(`after-kill-${i}`);
      }
      await stack.restartClip();
      await moreRounds('after SIGTERM and a start', 3);
      await startsNewContainer('after-term');
      upgradeDir = await otherBuild();
      await stack.restartClip({ installDir: upgradeDir });
      await moreRounds('after the upgrade', 3);
      await startsNewContainer('after-upgrade');
      const mountsAfter = await mountsUnder(stack.clipRoot);
      assert.deepEqual(mountsBefore.filter((m) => !mountsAfter.includes(m)), [], 'the layer mounts of the running container are the same mounts');
    } finally {
      await stack.ctr([...K8S, 'task', 'kill', '-s', 'KILL', id]).catch(() => undefined);
      await new Promise<void>((resolve) => {
        if (reader.exitCode !== null) return resolve();
        const timer = setTimeout(() => {
          reader.kill('SIGKILL');
          resolve();
        }, 30_000);
        reader.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      if (upgradeDir) await fsp.rm(upgradeDir, { recursive: true, force: true });
    }

    const text = lines.map((l) => l.text);
    assert.deepEqual(text.filter((t) => /ERROR|error|Stale|not connected/i.test(t)), [], 'no read failed');
    const small = new Map<string, Set<string>>();
    let chunks = 0;
    for (const t of text) {
      const chunk = /^chunk (\d+) ([0-9a-f]{64}) {2}-$/.exec(t);
      if (chunk) {
        assert.equal(chunk[2], chunkSum(Number(chunk[1])), `chunk ${chunk[1]} of random.bin`);
        chunks++;
        continue;
      }
      const file = /^([0-9a-f]{64}) {2}(\/.*)$/.exec(t);
      if (file) {
        if (!small.has(file[2]!)) small.set(file[2]!, new Set());
        small.get(file[2]!)!.add(file[1]!);
        continue;
      }
      assert.match(t, /^round \d+$/, `unexpected output: ${t}`);
    }
    assert.equal(small.get('/etc/clip-test/message')?.size, 1);
    assert.deepEqual([...small.get('/etc/clip-test/message')!], [createHash('sha256').update('hello from clip, layer 3\n').digest('hex')]);
    assert.equal(small.get('/data/large/text.txt')?.size, 1, 'text.txt has one checksum throughout');
    assert.ok(chunks >= 20, `${chunks} chunks read`);
    const sorted = [...stalls].sort((a, b) => a - b);
    console.log(
      `# longest gap between two rounds of the reading container across kill -9 + restart: median ${sorted[1]} ms ` +
        `(${stalls.join(', ')} ms; a round takes ~200 ms + reads); from the kill to the new clip serving the layers again: ${takeOvers.join(', ')} ms`,
    );
    const since = stack.clipLog().split('received SIGTERM').slice(1).join('');
    assert.doesNotMatch(since, /indexing layer/, 'no layer indexed again after the restarts');
  });

  test('with the registry down, a restarted clip serves its layers: cached bytes, EIO for uncached ones, and reads succeed once the registry is back', { timeout: TEST_TIMEOUT }, async () => {
    const registry = path.join(REPO_ROOT, 'scripts', 'registry.sh');
    const port = stack.registryAddress.split(':')[1]!;
    const layer2 = stack.images.lazy!.layers[1]!.digest;
    assert.equal(await stack.registryBlobBytes([layer2]), layer2Pulled, 'precondition: no span of layer 2 (/data/random.bin) was fetched since the pull');
    const checks = async (id: string): Promise<Record<string, string>> => {
      const r = await stack.ctr([...K8S, 'run', '--rm', '--snapshotter', 'clip', stack.imageRef('lazy'), `${id}-${Date.now()}`, '/bin/sh', '-c', OUTAGE_CHECKS], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${await stack.diagnostics()}`);
      return Object.fromEntries(r.stdout.trim().split('\n').map((l) => [l.split(' ')[0]!, l.slice(l.indexOf(' ') + 1)]));
    };
    const uncachedSum = createHash('sha256').update(createHash('shake256', { outputLength: 3 << 20 }).update('clip-test-seed').digest().subarray(0, CHUNK)).digest('hex');
    await runOk(registry, ['stop', stack.state], { timeoutMs: 30_000 });
    try {
      await stack.restartClip({ kill: true });
      const output = (): string => stack.clip!.process.output();
      await waitFor('the remounts after the restart', () => /remote layers again/.test(output()), 60_000);
      assert.match(output(), /mounted 4 of 4 remote layers again/, 'every layer taken over without the registry');
      assert.match(output(), /took over the FUSE connection/);
      let seen: Record<string, string> = {};
      await waitFor('a container to start with the registry down', async () => {
        seen = await checks('outage').catch(() => ({}));
        return seen.cached !== undefined;
      }, 60_000);
      assert.equal(seen.cached, `${chunkSum(0)}  -`, 'bytes in the cache are served with the registry down');
      assert.match(seen.uncached!, /^failed: .*(I\/O error|Input\/output error)/, 'an uncached read fails with EIO instead of hanging');
    } finally {
      await runOk(registry, ['start', stack.state, port], { timeoutMs: 60_000 });
    }
    const back = await checks('registry-back');
    assert.equal(back.cached, `${chunkSum(0)}  -`);
    assert.equal(back.uncached, `${uncachedSum}  -`, 'the registry is back: the read succeeds without a restart');
  });

  test('a kept mount that cannot be served again (archives gone, registry down) is unmounted with a log line; its readers get errors, not a hang', { timeout: TEST_TIMEOUT }, async () => {
    const registry = path.join(REPO_ROOT, 'scripts', 'registry.sh');
    const port = stack.registryAddress.split(':')[1]!;
    const id = `orphan-reader-${Date.now()}`;
    const loop = `while true; do if dd if=/data/large/random.bin iflag=direct bs=${CHUNK} count=1 of=/dev/null 2>/dev/null; then echo ok; else echo failed; fi; sleep 0.2; done`;
    const reader = spawn(path.join(REPO_ROOT, 'scripts', 'ctr.sh'), [stack.state, ...K8S, 'run', '--rm', '--snapshotter', 'clip', stack.imageRef('lazy'), id, '/bin/sh', '-c', loop], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    reader.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await waitFor('the reader to read', () => out.split('\n').filter((l) => l === 'ok').length >= 2, 120_000);
      await runOk(registry, ['stop', stack.state], { timeoutMs: 30_000 });
      await stack.clip!.kill();
      await fsp.rm(path.join(stack.clipRoot, 'archives'), { recursive: true, force: true });
      await stack.restartClip({ kill: true });
      const output = (): string => stack.clip!.process.output();
      await waitFor('the remounts to give up', () => /remote layers again/.test(output()), 300_000);
      assert.match(output(), /mounted 0 of 4 remote layers again/);
      assert.equal(output().match(/cannot be served again .*aborting its connection and unmounting it/g)?.length, 4, output());
      assert.deepEqual((await listFuseMounts(stack.clipRoot)).map((m) => m.mountPoint), [], 'no layer mount left');
      const failedAt = out.length;
      await waitFor('the reader to see errors and go on', () => out.slice(failedAt).split('\n').filter((l) => l === 'failed').length >= 2, 60_000);
    } finally {
      await stack.ctr([...K8S, 'task', 'kill', '-s', 'KILL', id]).catch(() => undefined);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          reader.kill('SIGKILL');
          resolve();
        }, 30_000);
        if (reader.exitCode !== null) resolve();
        reader.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      await runOk(registry, ['start', stack.state, port], { timeoutMs: 60_000 }).catch(() => undefined);
    }
  });
});


/** The checks of the registry-outage test, run in one new container: every line is "name result". */
const OUTAGE_CHECKS = `
dd if=/data/large/random.bin iflag=direct bs=${CHUNK} count=1 of=/tmp/cached 2>/dev/null && echo "cached $(sha256sum < /tmp/cached)"
if dd if=/data/random.bin iflag=direct bs=${CHUNK} count=1 of=/tmp/uncached 2>/tmp/err; then
  echo "uncached $(sha256sum < /tmp/uncached)"
else
  echo "uncached failed: $(tail -n 1 /tmp/err)"
fi`;

/** When the last layer was taken over, from the clip log's timestamps (ms since the epoch). */
function lastTakeOver(log: string): number {
  const stamps = log.split('\n').filter((l) => l.includes('took over the FUSE connection')).map((l) => Date.parse(l.split(' ')[0]!));
  return stamps[stamps.length - 1] ?? NaN;
}

/** The longest time between two consecutive round lines from `from` until the third round after it. */
function longestGap(lines: Line[], from: number): number {
  const rounds = lines.filter((l) => l.text.startsWith('round '));
  let last = [...rounds].reverse().find((l) => l.at <= from)?.at ?? from;
  let longest = 0;
  for (const l of rounds.filter((r) => r.at > from).slice(0, 3)) {
    longest = Math.max(longest, l.at - last);
    last = l.at;
  }
  return longest;
}
