/**
 * Registry faults on the real stack (containerd with CRI, runc, the registry, kernel FUSE), in the spirit
 * of SOCI's TestNetworkRetry and stargz's network tests but on loopback only: clip reaches the registry
 * through a fault-injecting proxy (test/helpers/fault-proxy.ts) that refuses connections for a while, or
 * answers blob GETs with 500, with 429 and Retry-After, with a body cut short, or with a corrupted body.
 * A container started from the lazily pulled image reads 64 KiB chunks of /data/large/random.bin that are
 * not cached (background fetching and caching while indexing are off; each test reads another 4 MiB span),
 * with O_DIRECT so that every read reaches clip.
 *
 * Asserted outcomes: a 2 s outage is ridden out by retries; a registry that keeps failing makes the read
 * fail with EIO after exactly `retries + 1` attempts per fetch (bounded, and before read_timeout_seconds);
 * once the registry answers again, the same read succeeds without a restart; and every file in the content
 * cache is named by the sha256 of its own bytes (nothing wrong is ever cached).
 * (A stopped registry, cached reads and EIO across a restart are covered by live-restart.test.ts.)
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CriClient } from '../helpers/cri-client';
import { FaultProxy, startFaultProxy } from '../helpers/fault-proxy';
import { waitFor } from '../helpers/processes';
import { useStack } from '../helpers/stack';

const TEST_TIMEOUT = 120_000;
const K8S = ['-n', 'k8s.io'];
const CHUNK = 65536;
/** 64 KiB chunks per 4 MiB span (the default span size). */
const CHUNKS_PER_SPAN = 64;
const RETRIES = 5;
const ATTEMPTS = RETRIES + 1;

/** Reads the chunks given as arguments, one line each: "<chunk> ok <sha256>" or "<chunk> failed: <error>". */
const READ_CHUNKS = `
for n in "$@"; do
  if dd if=/data/large/random.bin iflag=direct bs=${CHUNK} skip=$n count=1 of=/tmp/chunk 2>/tmp/err; then
    echo "$n ok $(sha256sum < /tmp/chunk | cut -d' ' -f1)"
  else
    echo "$n failed: $(tail -n 1 /tmp/err)"
  fi
done`;

const WARM_UP = 'dd if=/dev/null of=/dev/null 2>/dev/null; echo | sha256sum | cut -c1 >/dev/null; tail -n 1 /etc/clip-test/message';

const sha256 = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex');

describe('registry faults while a container reads lazily served files', () => {
  // With 5 retries, the back-offs of one request add up to at least 3.1 s (200 ms doubling, jittered
  // between half and all of it): a 2 s outage is covered. read_timeout_seconds is above the longest retry series
  // (at most 6.2 s of back-off, or 5 × 1 s of Retry-After), so a failed read ends by running out of attempts.
  const stack = useStack({
    tags: ['lazy'],
    criSnapshotter: 'clip',
    clipConfig: '[lazy]\nbackground_fetch = false\ncache_while_indexing = false\nread_timeout_seconds = 15\n',
    clipRegistryConfig: `retries = ${RETRIES}\n`,
  });
  let proxy: FaultProxy | undefined;
  let image = '';
  const random = createHash('shake256', { outputLength: 24 << 20 }).update('clip-lazy-random').digest();
  const chunkSum = (n: number): string => sha256(random.subarray(n * CHUNK, (n + 1) * CHUNK));
  /**
   * A chunk in span `span` of random.bin (each test reads its own, so its first read is not cached). The
   * tests read spans 5, 2, 0, 4, 1 in this order: never one of the three spans after the one read last,
   * which would make clip load the spans after it ahead (LayerSpanReader's read-ahead).
   */
  const chunkOfSpan = (span: number): number => span * CHUNKS_PER_SPAN + CHUNKS_PER_SPAN / 2;

  before(async () => {
    proxy = await startFaultProxy(stack.registryAddress);
    // containerd and clip reach the proxy over plain http, as their one endpoint for it (with a [host] entry
    // as well, clip would try the same address twice: once as the host, once as the server).
    const hosts = path.join(stack.hostsDir, proxy.address);
    await fsp.mkdir(hosts, { recursive: true });
    await fsp.writeFile(path.join(hosts, 'hosts.toml'), `server = "http://${proxy.address}"\n`);
    image = `${proxy.address}/${stack.repo}:lazy`;
    const cri = new CriClient(stack.containerdAddress);
    try {
      await cri.pullImage(image);
    } finally {
      cri.close();
    }
    // A first container loads the spans every container start needs (busybox's sh, dd, sha256sum, cut, tail).
    const r = await stack.ctr([...K8S, 'run', '--rm', '--snapshotter', 'clip', image, `warm-up-${Date.now()}`, '/bin/sh', '-c', WARM_UP], { timeoutMs: 90_000 });
    assert.equal(r.stdout, 'hello from clip, layer 3\n', `${r.stderr}\n${await stack.diagnostics()}`);
  }, { timeout: 180_000 });
  after(() => proxy?.close());

  /** Starts a container that reads the chunks; returns each chunk's result line. */
  async function readChunks(id: string, chunks: number[]): Promise<Record<number, string>> {
    const r = await stack.ctr([...K8S, 'run', '--rm', '--snapshotter', 'clip', image, `${id}-${Date.now()}`, '/bin/sh', '-c', READ_CHUNKS, 'sh', ...chunks.map(String)], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\n${await stack.diagnostics()}`);
    const lines = r.stdout.trim().split('\n');
    return Object.fromEntries(lines.map((l) => [Number(l.split(' ')[0]), l.slice(l.indexOf(' ') + 1)]));
  }

  /** Every span file in the content cache, as layer hex/file name, after checking that its name is the sha256 of its bytes. */
  async function checkedCacheFiles(): Promise<string[]> {
    const root = path.join(stack.clipRoot, 'cache', 'sha256');
    const files: string[] = [];
    for (const layer of await fsp.readdir(root)) {
      for (const name of await fsp.readdir(path.join(root, layer))) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue; // a temporary file being written
        const bytes = await fsp.readFile(path.join(root, layer, name)).catch(() => undefined);
        if (bytes === undefined) continue; // removed meanwhile
        assert.equal(sha256(bytes), name, `cache file ${layer}/${name} holds other bytes`);
        files.push(`${layer}/${name}`);
      }
    }
    assert.ok(files.length > 0, 'the content cache holds the spans read so far');
    return files.sort();
  }

  /** Waits until the cache holds a (checked) file that is not in `before`: the span just read. */
  async function cachedMoreThan(before: string[]): Promise<void> {
    await waitFor('the span read to be cached under its own digest', async () => (await checkedCacheFiles()).some((f) => !before.includes(f)), 20_000);
  }

  /** clip's log from `mark` (a length of it) on. */
  const logSince = (mark: number): string => stack.clipLog().slice(mark);

  /**
   * A fetch that fails on every attempt: the read fails with EIO after exactly ATTEMPTS blob GETs per fetch,
   * and no cache file appears. Then the registry fails only `recoverAfter` more times (fewer than the
   * attempts): the same read succeeds, without a restart, and its span is cached under its own digest.
   */
  async function failsThenRecovers(name: string, span: number, fault: Parameters<FaultProxy['fault']>[0], recoverAfter: number): Promise<string> {
    const chunk = chunkOfSpan(span);
    const cachedBefore = await checkedCacheFiles();
    const mark = stack.clipLog().length;
    proxy!.fault(fault);
    let seen: Record<number, string>;
    try {
      seen = await readChunks(`${name}-down`, [chunk]);
    } finally {
      proxy!.pass();
    }
    assert.match(seen[chunk]!, /^failed: .*(I\/O error|Input\/output error)/, `the read fails with EIO\n${logSince(mark)}`);
    const faulted = proxy!.faulted;
    assert.ok(faulted >= ATTEMPTS && faulted % ATTEMPTS === 0, `each fetch gave up after ${ATTEMPTS} attempts (${faulted} blob GETs broken)\n${logSince(mark)}`);
    assert.deepEqual(await checkedCacheFiles(), cachedBefore, 'nothing was cached from the failed fetches');

    proxy!.fault(fault, recoverAfter);
    try {
      seen = await readChunks(`${name}-back`, [chunk]);
    } finally {
      proxy!.pass();
    }
    assert.equal(seen[chunk], `ok ${chunkSum(chunk)}`, `the registry recovered: the read succeeds\n${logSince(mark)}`);
    assert.equal(proxy!.faulted, recoverAfter, 'the read was retried past the faults');
    await cachedMoreThan(cachedBefore);
    return logSince(mark);
  }

  test('a 2 s outage (connections refused) with retries on: every read succeeds', { timeout: TEST_TIMEOUT }, async () => {
    const chunks = [chunkOfSpan(5), chunkOfSpan(5) + 5];
    const cachedBefore = await checkedCacheFiles();
    const mark = stack.clipLog().length;
    await proxy!.refuse();
    let seen: Record<number, string>;
    try {
      const reading = readChunks('outage', chunks);
      // The outage lasts 2 s from the first refused attempt of the read.
      await waitFor('a read to meet the outage', () => /ECONNREFUSED.*retrying in \d+ ms/.test(logSince(mark)), 60_000);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      await proxy!.restore();
      seen = await reading;
    } finally {
      await proxy!.restore();
    }
    assert.deepEqual(seen, Object.fromEntries(chunks.map((n) => [n, `ok ${chunkSum(n)}`])), logSince(mark));
    await cachedMoreThan(cachedBefore);
  });

  test('HTTP 500: bounded retries, then EIO, nothing cached; the same read succeeds once the registry recovers', { timeout: TEST_TIMEOUT }, async () => {
    const log = await failsThenRecovers('status-500', 2, { kind: 'status', status: 500 }, 2);
    assert.match(log, /HTTP 500 \(gave up after 6 attempts\)/);
  });

  test('HTTP 429 with Retry-After: the wait is honoured, retries are bounded, then EIO; the read succeeds once the registry recovers', { timeout: TEST_TIMEOUT }, async () => {
    const log = await failsThenRecovers('status-429', 0, { kind: 'status', status: 429, retryAfterSeconds: 1 }, 3);
    assert.match(log, /HTTP 429; retrying in 1000 ms/, 'Retry-After: 1 honoured');
    assert.match(log, /HTTP 429 \(gave up after 6 attempts\)/);
  });

  test('a body cut short: bounded retries, then EIO, nothing cached; the read succeeds once bodies are whole again', { timeout: TEST_TIMEOUT }, async () => {
    await failsThenRecovers('truncated', 4, { kind: 'truncate' }, 2);
  });

  test('a corrupted body never reaches a reader or the cache: EIO until the registry sends the right bytes', { timeout: TEST_TIMEOUT }, async () => {
    const chunk = chunkOfSpan(1);
    const cachedBefore = await checkedCacheFiles();
    proxy!.fault({ kind: 'corrupt' });
    let seen: Record<number, string>;
    try {
      seen = await readChunks('corrupt', [chunk]);
    } finally {
      proxy!.pass();
    }
    assert.match(seen[chunk]!, /^failed: .*(I\/O error|Input\/output error)/, 'the read fails with EIO');
    assert.ok(proxy!.faulted >= 1);
    assert.deepEqual(await checkedCacheFiles(), cachedBefore, 'the corrupted span was not cached');
    seen = await readChunks('corrupt-back', [chunk]);
    assert.equal(seen[chunk], `ok ${chunkSum(chunk)}`);
    await cachedMoreThan(cachedBefore);
  });
});
