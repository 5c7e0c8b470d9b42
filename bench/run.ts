/**
 * `npm run bench`: clip vs containerd's overlayfs snapshotter on this machine, in one run, against one
 * local registry holding images built offline by bench/build-images.py; writes docs/benchmarks.md and
 * docs/benchmarks-cold-start.svg (bench/report.ts).
 *
 * Environment:
 *   BENCH_RUNS=3            runs per case (each from a cold state: fresh containerd + clip, page cache dropped)
 *   BENCH_SECTIONS=cold,index,fuse,rss,metrics   which sections to run
 *   BENCH_IMAGES=python,large,node       cold-start images;  BENCH_PROFILES=loopback,limited
 *   BENCH_ROWS=indexing,published,overlayfs   cold-start rows (a subset is for profiling runs: the report's
 *                                         ratios need the overlayfs row)
 *   BENCH_CACHE=/var/cache/clip-bench    built images, the Debian rootfs, the last run's logs and results
 *   BENCH_DOCS=docs                       where the report goes (point elsewhere for partial or profiling runs)
 *   BENCH_CLIP_CONFIG='[lazy]\nbackground_fetch = false'   clip settings for the cold-start rows (default: none)
 *   BENCH_PUBLISH_SPAN_SIZE=4MiB         span size of the archives `clip index push` publishes
 *   BENCH_CLIP_CPU_PROF=DIR               clip daemons write V8 CPU profiles (node --cpu-prof) into DIR
 *
 * Every daemon is started per case and stopped by PID (scripts/registry.sh, scripts/containerd.sh,
 * clip and the proxy as child processes), every mount unmounted, also when a case fails or on Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { readArchiveFile } from '../src/archive';
import { chainIds } from '../test/helpers/images';
import { REPO_ROOT, Started, run, runOk, startProcess, stopProcess, tempDir, waitFor } from '../test/helpers/processes';
import { BenchNode, dropCaches, stopAllNodesSync, withNode } from './bench-node';
import { measureMetricsOverhead } from './metrics-overhead';
import { writeReport } from './report';
import { ColdStartCase, FuseResults, ImageInfo, IndexingResult, Machine, Results, RssSample, SmallFilesSample } from './results';

const SCRIPTS = path.join(REPO_ROOT, 'scripts');
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const CACHE = process.env.BENCH_CACHE ?? '/var/cache/clip-bench';
const LOGS = path.join(CACHE, 'last-run');
const list = (name: string, def: string): string[] => (process.env[name] ?? def).split(',').filter((s) => s !== '');
const SECTIONS = list('BENCH_SECTIONS', 'cold,index,fuse,rss,metrics');
const IMAGES = list('BENCH_IMAGES', 'python,large,node');
const PROFILES = list('BENCH_PROFILES', 'loopback,limited');
const ROWS = list('BENCH_ROWS', 'indexing,published,overlayfs');
const REPO = 'bench/images';
/** The same images in a second repository, with clip archives published next to them (`clip index push`). */
const PUBLISHED_REPO = 'bench/published';
/** Span size of the published archives (clip index push --span-size). */
const PUBLISH_SPAN_SIZE = process.env.BENCH_PUBLISH_SPAN_SIZE ?? '4MiB';
const LIMIT_RATE = 20_000_000;
const LIMIT_DELAY_MS = 10;
const RSS_LAYERS = [1, 10, 50];
/** clip's settings for the cold-start rows: its defaults unless BENCH_CLIP_CONFIG (TOML, `\n` for newlines) says otherwise. */
const CLIP_CONFIG = (process.env.BENCH_CLIP_CONFIG ?? '').replace(/\\n/g, '\n');
/** For the FUSE section: nothing but reads may fill the content cache, so that "cold" means the registry. */
const CLIP_CONFIG_FUSE = '[lazy]\nbackground_fetch = false\ncache_while_indexing = false\n';

interface LayerSummary {
  digest: string;
  size: number;
  diff_id: string;
  uncompressed_size: number;
}
type Summary = Record<string, { manifest: string; layers: LayerSummary[] }>;

const log = (msg: string): void => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

class Suite {
  dir = '';
  registry = '';
  proxy: Started | undefined;
  proxyAddress = '';
  summary: Summary = {};

  /** Seconds `clip index push` took per image (published once, before the cold starts; not part of them). */
  publishSeconds: Record<string, number> = {};
  /** Per image, what its container read as it started (from the recorded start-up profiles). */
  startupRead: Record<string, { bytes: number; gzipBytes: number; ranges: number }> = {};

  /** The publisher's ed25519 key pair: archives are pushed signed, and clip nodes trust the public key. */
  get signKey(): string {
    return path.join(this.dir, 'publisher.pem');
  }

  get trustedKey(): string {
    return path.join(this.dir, 'publisher.pub');
  }

  /** `config` with the publisher's key added to [lazy] trusted_keys. */
  trusting(config: string): string {
    const line = `trusted_keys = ["${this.trustedKey}"]`;
    return /^\[lazy\]$/m.test(config) ? config.replace(/^\[lazy\]$/m, `[lazy]\n${line}`) : `${config}\n[lazy]\n${line}\n`;
  }

  async start(tags: string[], publish: string[]): Promise<void> {
    this.dir = await tempDir('bench');
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    await fsp.writeFile(this.signKey, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    await fsp.writeFile(this.trustedKey, publicKey.export({ type: 'spki', format: 'pem' }));
    await fsp.mkdir(LOGS, { recursive: true });
    log(`building images (cached in ${CACHE})`);
    const out = await runOk(path.join(REPO_ROOT, 'bench', 'build-images.py'), [CACHE, ...tags.flatMap((t) => ['--tag', t])], {
      timeoutMs: 3_600_000,
    });
    this.summary = JSON.parse(out) as Summary;
    this.registry = (await runOk(path.join(SCRIPTS, 'registry.sh'), ['start', this.registryState], { timeoutMs: 60_000 })).trim();
    for (const tag of tags) {
      log(`pushing ${tag} to ${this.registry}`);
      await runOk(path.join(SCRIPTS, 'push-test-image.sh'), [path.join(CACHE, 'layout'), tag, this.registry, REPO], { timeoutMs: 900_000 });
    }
    for (const tag of publish) {
      log(`pushing ${tag} to ${PUBLISHED_REPO} and publishing its clip archives (clip index push)`);
      await runOk(path.join(SCRIPTS, 'push-test-image.sh'), [path.join(CACHE, 'layout'), tag, this.registry, PUBLISHED_REPO], { timeoutMs: 900_000 });
      const t0 = performance.now();
      await runOk(
        path.join(REPO_ROOT, 'bin', 'clip'),
        ['index', 'push', '--plain-http', '--span-size', PUBLISH_SPAN_SIZE, '--sign-key', this.signKey, `${this.registry}/${PUBLISHED_REPO}:${tag}`],
        { timeoutMs: 1_800_000 },
      );
      this.publishSeconds[tag] = (performance.now() - t0) / 1000;
      await this.publishStartupProfile(tag);
    }
    const proxy = startProcess(process.execPath, [
      path.join(REPO_ROOT, 'dist', 'bench', 'throttle-proxy.js'),
      '--target', this.registry, '--rate', String(LIMIT_RATE), '--delay-ms', String(LIMIT_DELAY_MS),
    ]);
    this.proxy = proxy;
    await waitFor('the throttling proxy', () => /listening (\S+)/.test(proxy.output()), 10_000);
    this.proxyAddress = /listening (\S+)/.exec(proxy.output())![1]!;
  }

  /**
   * What a CI job would do after a smoke test: run the image once on a clip node that uses the published
   * archives, let clip record the start-up profile of each layer the container read, and publish the
   * archives again with their profiles (clip index push --reuse <root>/archives/sha256).
   */
  private async publishStartupProfile(tag: string): Promise<void> {
    log(`recording the start-up profile of ${tag} and publishing it with the archives`);
    await withNode({ parent: this.dir, name: `profile-${tag}`, registry: this.registry, criSnapshotter: 'clip', clipConfig: this.trusting('') }, async (node) => {
      const ref = node.imageRef(PUBLISHED_REPO, tag);
      await node.criPull(ref);
      await node.runContainer(ref, `profile-${tag}`, 'clip');
      // clip stores a layer's profile once its reads have settled for 10 s (polled every 2 s).
      await waitFor('start-up profiles', async () => /recorded a start-up profile/.test(node.clipLog()), 60_000);
      await new Promise((r) => setTimeout(r, 15_000));
      await runOk(
        path.join(REPO_ROOT, 'bin', 'clip'),
        ['index', 'push', '--plain-http', '--reuse', path.join(node.clipRoot, 'archives', 'sha256'), '--sign-key', this.signKey, ref],
        { timeoutMs: 1_800_000 },
      );
      const recorded = node.clipLog().match(/recorded a start-up profile of \d+ of \d+ spans/g) ?? [];
      log(`  ${recorded.join('; ')}`);
      // Kept with the run's logs, for looking at the profiles afterwards (clip inspect).
      const kept = path.join(LOGS, `profile-${tag}-archives`);
      await fsp.rm(kept, { recursive: true, force: true });
      await fsp.cp(path.join(node.clipRoot, 'archives', 'sha256'), kept, { recursive: true });
      this.startupRead[tag] = await startupRead(this.summary[tag]!.layers, kept);
      const read = this.startupRead[tag]!;
      log(`  the container read ${(read.bytes / 1e6).toFixed(1)} MB of file data as it started (${read.ranges} ranges), ${(read.gzipBytes / 1e6).toFixed(1)} MB gzip-compressed`);
    }, path.join(LOGS, `profile-${tag}.clip.log`));
  }

  get registryState(): string {
    return path.join(this.dir, 'registry');
  }

  address(profile: string): string {
    return profile === 'limited' ? this.proxyAddress : this.registry;
  }

  /**
   * Body bytes of blob GETs in the registry's access log: the rule of `scripts/registry.sh bytes`, summed
   * here because that script's awk (mawk) prints sums above 2^31 with 6 significant digits.
   */
  async registryBytes(): Promise<number> {
    const text = await fsp.readFile(path.join(this.registryState, 'registry.log'), 'utf8');
    let n = 0;
    for (const line of text.split('\n')) {
      const f = line.split(' ');
      if (/^[0-9.]+$/.test(f[0] ?? '') && f[5] === '"GET' && /\/blobs\/sha256:/.test(f[6] ?? '') && /^[0-9]+$/.test(f[9] ?? '')) n += Number(f[9]);
    }
    return n;
  }

  image(tag: string): ImageInfo {
    const layers = this.summary[tag]!.layers;
    return {
      layerBytes: layers.reduce((s, l) => s + l.size, 0),
      uncompressedBytes: layers.reduce((s, l) => s + l.uncompressed_size, 0),
      layers: layers.length,
      ...(this.startupRead[tag] ? { startupRead: this.startupRead[tag] } : {}),
    };
  }

  topChainId(tag: string): string {
    return chainIds(this.summary[tag]!.layers.map((l) => l.diff_id)).at(-1)!;
  }

  async stop(): Promise<void> {
    if (!this.dir) return;
    if (this.proxy) await stopProcess(this.proxy, 'SIGTERM', 5_000);
    await run(path.join(SCRIPTS, 'registry.sh'), ['stop', this.registryState], { timeoutMs: 30_000 });
    await fsp.rm(this.dir, { recursive: true, force: true });
  }

  stopSync(): void {
    if (!this.dir) return;
    try {
      execFileSync(path.join(SCRIPTS, 'registry.sh'), ['stop', this.registryState], { stdio: 'ignore', timeout: 30_000 });
    } catch {
      // best effort at exit
    }
    // the proxy is a tracked child process: test/helpers/processes kills it at exit.
  }
}

/**
 * The bytes a container read as it started, from the start-up ranges clip recorded in each layer's
 * archive (in `archives`): those parts of each layer's uncompressed stream (the blob from the OCI layout,
 * gunzipped), and their size once concatenated and gzip -6 compressed.
 */
async function startupRead(layers: LayerSummary[], archives: string): Promise<{ bytes: number; gzipBytes: number; ranges: number }> {
  const gzip = zlib.createGzip({ level: 6 });
  let gzipBytes = 0;
  gzip.on('data', (chunk: Buffer) => (gzipBytes += chunk.length));
  const ended = new Promise((resolve, reject) => gzip.once('end', resolve).once('error', reject));
  let bytes = 0;
  let count = 0;
  for (const layer of layers) {
    const hex = layer.digest.slice('sha256:'.length);
    const ranges = (await readArchiveFile(path.join(archives, `${hex}.clip`)).catch(() => undefined))?.startupRanges ?? [];
    if (ranges.length === 0) continue;
    count += ranges.length;
    let offset = 0;
    let next = 0;
    for await (const chunk of fs.createReadStream(path.join(CACHE, 'layout', 'blobs', 'sha256', hex)).pipe(zlib.createGunzip()) as AsyncIterable<Buffer>) {
      for (; next < ranges.length; next++) {
        const [start, end] = ranges[next]!;
        if (start >= offset + chunk.length) break;
        const piece = chunk.subarray(Math.max(0, start - offset), Math.min(chunk.length, end - offset));
        bytes += piece.length;
        if (!gzip.write(piece)) await new Promise((r) => gzip.once('drain', r));
        if (end > offset + chunk.length) break; // the range goes on in the next chunk
      }
      offset += chunk.length;
      if (next === ranges.length) break;
    }
  }
  gzip.end();
  await ended;
  return { bytes, gzipBytes, ranges: count };
}

async function coldStart(suite: Suite, published: Availability): Promise<ColdStartCase[]> {
  const cases: ColdStartCase[] = [];
  let n = 0;
  for (const profile of PROFILES) {
    for (const image of IMAGES) {
      const clipCase: ColdStartCase = { profile, image, row: 'clip, indexing on Prepare', samples: [] };
      const pubCase: ColdStartCase = {
        profile, image, row: 'clip, published archives', samples: [], ...(published.available ? {} : { unavailable: published.note }),
      };
      const overlay: ColdStartCase = { profile, image, row: 'overlayfs', samples: [] };
      const rows: Array<[ColdStartCase, string, string]> = [];
      if (ROWS.includes('indexing')) rows.push([clipCase, 'clip', REPO]);
      if (ROWS.includes('published') && published.available) rows.push([pubCase, 'clip', PUBLISHED_REPO]);
      if (ROWS.includes('overlayfs')) rows.push([overlay, 'overlayfs', REPO]);
      cases.push(...rows.map(([c]) => c));
      if (ROWS.includes('published') && !published.available) cases.push(pubCase);
      for (let r = 0; r < RUNS; r++) {
        for (const [c, snapshotter, repo] of rows) {
          if (c.error) continue;
          const name = `cold-${++n}`;
          log(`cold start: ${profile} ${image} ${c.row} run ${r + 1}/${RUNS}`);
          try {
            await withNode(
              { parent: suite.dir, name, registry: suite.address(profile), criSnapshotter: snapshotter, clipConfig: suite.trusting(CLIP_CONFIG) },
              async (node) => {
                const ref = node.imageRef(repo, image);
                await dropCaches();
                const before = await suite.registryBytes();
                const pullMs = await node.criPull(ref);
                const lazyLayers = await node.fuseMounts();
                const t = await node.runContainer(ref, `${name}-${Date.now()}`, snapshotter);
                const registryBytes = (await suite.registryBytes()) - before;
                const indexedLayers = (node.clipLog().match(/ indexing layer sha256:/g) ?? []).length;
                c.samples.push({ pullMs, firstOutputMs: t.firstOutputMs, exitMs: t.exitMs, totalMs: pullMs + t.firstOutputMs, registryBytes, lazyLayers, indexedLayers });
                log(`  pull ${pullMs.toFixed(0)} ms, first output ${t.firstOutputMs.toFixed(0)} ms, exit ${t.exitMs.toFixed(0)} ms, ${registryBytes} B from registry, ${lazyLayers} lazy layers (${indexedLayers} indexed by clip), output ${JSON.stringify(t.stdout.slice(0, 60))}`);
              },
              path.join(LOGS, `${name}-${profile}-${image}-${repo === REPO ? snapshotter : 'published'}.clip.log`),
            );
          } catch (err) {
            c.error = (err as Error).message.split('\n').slice(0, 3).join(' ');
            log(`  FAILED: ${(err as Error).message}`);
          }
        }
      }
    }
  }
  return cases;
}

/** Runs bench/indexer/throughput.js on the gzip layers of the benchmark images and parses its report. */
async function indexing(suite: Suite): Promise<IndexingResult[]> {
  const pick: Array<[string, string, number]> = [
    ['Debian + python3 rootfs', 'python', 0],
    ['node_modules (express, lodash, semver)', 'node', 2],
    ['10,000 small files', 'smallfiles', 1],
    ['1 GiB random file', 'large', 1],
  ];
  const files = pick.map(([, tag, i]) => path.join(CACHE, 'layout', 'blobs', 'sha256', suite.summary[tag]!.layers[i]!.digest.slice(7)));
  log('indexing throughput (bench/indexer/throughput.js)');
  const out = await runOk(process.execPath, [path.join(REPO_ROOT, 'bench', 'indexer', 'throughput.js'), '--runs', String(RUNS), ...files], {
    timeoutMs: 1_800_000,
  });
  await fsp.writeFile(path.join(LOGS, 'indexing.txt'), out);
  const num = (re: RegExp, text: string): number => Number(re.exec(text)?.[1] ?? NaN);
  return pick.map(([label], i) => {
    const start = out.indexOf(`${path.basename(files[i]!)}:`);
    const block = out.slice(start, out.indexOf('ratio', start) + 40);
    return {
      layer: label,
      compressedMB: num(/: ([\d.]+) MB ->/, block),
      uncompressedMB: num(/-> ([\d.]+) MB/, block),
      entries: num(/, (\d+) entries/, block),
      gzipBestMBs: num(/gzip -dc\s+best [\d.]+ s\s+(\d+) MB\/s/, block),
      gzipMedianMBs: num(/gzip -dc.*median\s+(\d+) MB\/s/, block),
      indexBestMBs: num(/indexLayer\s+best [\d.]+ s\s+(\d+) MB\/s/, block),
      indexMedianMBs: num(/indexLayer.*median\s+(\d+) MB\/s/, block),
      ratioBest: num(/ratio \(best\/best\) ([\d.]+)x/, block),
    };
  });
}

/** Sequential read of a file with dd; MB/s (10^6 bytes). */
async function seqRead(file: string, bytes: number): Promise<number> {
  const t0 = performance.now();
  await runOk('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M'], { timeoutMs: 900_000 });
  return bytes / 1e6 / ((performance.now() - t0) / 1000);
}

const SMALL_FILES = Array.from({ length: 10_000 }, (_, n) => `data/small/d${String(Math.floor(n / 100)).padStart(2, '0')}/f${String(n).padStart(5, '0')}`);

/**
 * Mean µs per stat, and per open+read-to-EOF+close, over the 10,000 small files, in a separate Node process
 * (so that timing is not disturbed by this process's timers), cold (page cache, dentries and inodes dropped)
 * then cached (the same pass again).
 */
async function smallFiles(root: string): Promise<SmallFilesSample> {
  const script = `
    const fs = require('node:fs');
    const [root, op] = process.argv.slice(1);
    const files = JSON.parse(fs.readFileSync(0, 'utf8'));
    const buf = Buffer.alloc(1 << 16);
    const t0 = process.hrtime.bigint();
    for (const f of files) {
      const p = root + '/' + f;
      if (op === 'stat') fs.statSync(p);
      else { const fd = fs.openSync(p, 'r'); while (fs.readSync(fd, buf, 0, buf.length, null) > 0); fs.closeSync(fd); }
    }
    console.log(Number(process.hrtime.bigint() - t0) / 1e3 / files.length);`;
  const pass = async (op: string): Promise<number> => {
    const { spawn } = await import('node:child_process');
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', script, root, op], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
      child.once('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(Number(out.trim()));
        else reject(new Error(`small-file ${op} pass over ${root} exited ${code}: ${err}`));
      });
      child.stdin.end(JSON.stringify(SMALL_FILES));
    });
  };
  await dropCaches();
  const statCold = await pass('stat');
  const statCached = await pass('stat');
  await dropCaches();
  const readCold = await pass('read');
  const readCached = await pass('read');
  return { statCold, statCached, readCold, readCached };
}

async function fuse(suite: Suite): Promise<FuseResults> {
  const fileBytes = 1 << 30;
  const res: FuseResults = { fileBytes, files: SMALL_FILES.length, seq: { clip: [], overlayfs: [] }, small: { clip: [], overlayfs: [] } };
  const errors: string[] = [];
  /** One part (an image, clip and overlayfs side by side) on a fresh node; a failure is recorded and the rest goes on. */
  const part = async (tag: string, r: number, measure: (clipRoot: string, overlayRoot: string) => Promise<void>): Promise<void> => {
    try {
      await withNode(
        { parent: suite.dir, name: `fuse-${tag}-${r}`, registry: suite.registry, criSnapshotter: 'clip', clipConfig: CLIP_CONFIG_FUSE },
        async (node) => {
          const ref = node.imageRef(REPO, tag);
          await node.criPull(ref);
          await node.ctr(['images', 'pull', '--snapshotter', 'overlayfs', '--plain-http', ref], 900_000);
          const unmounts: Array<() => Promise<void>> = [];
          try {
            const clipRoot = path.join(node.state, 'mnt-clip');
            unmounts.push(await node.mountSnapshot('clip', 'k8s.io', suite.topChainId(tag), clipRoot));
            const overlayRoot = path.join(node.state, 'mnt-overlayfs');
            unmounts.push(await node.mountSnapshot('overlayfs', 'default', suite.topChainId(tag), overlayRoot));
            await measure(clipRoot, overlayRoot);
          } finally {
            for (const unmount of unmounts.reverse()) await unmount();
          }
        },
        path.join(LOGS, `fuse-${tag}-${r}.clip.log`),
      );
    } catch (err) {
      errors.push(`${tag}: ${(err as Error).message.split('\n').slice(0, 3).join(' ')}`);
      log(`  FAILED: ${(err as Error).message}`);
    }
  };
  for (let r = 0; r < RUNS; r++) {
    log(`FUSE reads run ${r + 1}/${RUNS}`);
    if (!errors.some((e) => e.startsWith('large:'))) {
      await part('large', r, async (clipRoot, overlayRoot) => {
        const big = (root: string): string => path.join(root, 'data', 'big.bin');
        await dropCaches();
        const cold = await seqRead(big(clipRoot), fileBytes);
        await dropCaches();
        const warm = await seqRead(big(clipRoot), fileBytes);
        const hot = await seqRead(big(clipRoot), fileBytes);
        res.seq.clip.push({ cold, warm, hot });
        await dropCaches();
        const oCold = await seqRead(big(overlayRoot), fileBytes);
        const oHot = await seqRead(big(overlayRoot), fileBytes);
        res.seq.overlayfs.push({ cold: oCold, hot: oHot });
        log(`  seq MB/s clip cold ${cold.toFixed(0)} warm ${warm.toFixed(0)} hot ${hot.toFixed(0)}; overlayfs cold ${oCold.toFixed(0)} hot ${oHot.toFixed(0)}`);
      });
    }
    await part('smallfiles', r, async (clipRoot, overlayRoot) => {
      res.small.clip.push(await smallFiles(clipRoot));
      res.small.overlayfs.push(await smallFiles(overlayRoot));
      log(`  small files µs/op clip ${JSON.stringify(res.small.clip.at(-1))} overlayfs ${JSON.stringify(res.small.overlayfs.at(-1))}`);
    });
  }
  if (errors.length) res.error = errors.join('; ');
  return res;
}

async function rss(suite: Suite): Promise<Record<string, RssSample[]>> {
  const out: Record<string, RssSample[]> = {};
  for (const layers of RSS_LAYERS) {
    out[layers] = [];
    for (let r = 0; r < RUNS; r++) {
      log(`daemon RSS with ${layers} lazy layers, run ${r + 1}/${RUNS}`);
      await withNode({ parent: suite.dir, name: `rss-${layers}-${r}`, registry: suite.registry, criSnapshotter: 'clip' }, async (node: BenchNode) => {
        const idleBytes = await node.clipRss();
        await node.criPull(node.imageRef(REPO, `layers${layers}`));
        await new Promise((res) => setTimeout(res, 3000)); // background work of the pull settles
        const sample = { idleBytes, bytes: await node.clipRss(), mounts: await node.fuseMounts() };
        out[layers]!.push(sample);
        log(`  idle ${(idleBytes / 2 ** 20).toFixed(1)} MiB, with ${sample.mounts} FUSE mounts ${(sample.bytes / 2 ** 20).toFixed(1)} MiB`);
      });
    }
  }
  return out;
}

function machine(): Machine {
  const sh = (cmd: string, args: string[]): string => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', timeout: 10_000 }).trim();
    } catch {
      return 'unknown';
    }
  };
  const dirty = sh('git', ['-C', REPO_ROOT, 'status', '--porcelain']) !== '';
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryBytes: os.totalmem(),
    kernel: os.release(),
    node: process.version,
    containerd: sh('containerd', ['--version']).split(' ').slice(2).join(' '),
    runc: sh('runc', ['--version']).split('\n')[0]!,
    clipCommit: `${sh('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'])}${dirty ? ' + uncommitted changes' : ''}`,
  };
}

interface Availability {
  available: boolean;
  note: string;
}

/** `clip index push` is what publishes archives; without it in the CLI, that row cannot run. */
async function publishedArchivesAvailability(): Promise<Availability> {
  const help = await run(path.join(REPO_ROOT, 'bin', 'clip'), ['index', 'push', '--help'], { timeoutMs: 30_000 });
  return help.code === 0 && /clip index push/.test(help.stdout)
    ? {
        available: true,
        note:
          'signed with an ed25519 key the clip nodes list in `[lazy] trusted_keys`, published once per image with `clip index push --sign-key`, then, after one run of the image on a clip node (which records ' +
          "each layer's start-up profile: the spans the container read, in order), published again with the profiles " +
          '(`clip index push --reuse <root>/archives/sha256`), as a CI job would after a smoke test; none of this is timed as part of the cold start',
      }
    : { available: false, note: 'not available yet (`clip index push` does not exist)' };
}

async function main(): Promise<void> {
  const started = performance.now();
  const suite = new Suite();
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: stopping every node and the registry`);
    stopAllNodesSync();
    suite.stopSync();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.on('exit', () => {
    stopAllNodesSync();
    suite.stopSync();
  });

  const tags = new Set<string>();
  if (SECTIONS.includes('cold')) IMAGES.forEach((t) => tags.add(t));
  if (SECTIONS.includes('index')) ['python', 'node', 'smallfiles', 'large'].forEach((t) => tags.add(t));
  if (SECTIONS.includes('fuse')) ['large', 'smallfiles'].forEach((t) => tags.add(t));
  if (SECTIONS.includes('rss')) RSS_LAYERS.forEach((n) => tags.add(`layers${n}`));

  const results: Results = {
    date: new Date().toISOString(),
    command: `${Object.entries(process.env).filter(([k]) => k.startsWith('BENCH_')).map(([k, v]) => `${k}=${v} `).join('')}npm run bench`,
    runs: RUNS,
    machine: machine(),
    profiles: {
      loopback: 'registry on 127.0.0.1, no limit',
      limited: `through bench/throttle-proxy.ts: ${LIMIT_RATE / 1e6} MB/s shared by all response bodies, ${LIMIT_DELAY_MS} ms added before each request`,
    },
    images: {},
    clipConfig: CLIP_CONFIG ? `\`${CLIP_CONFIG.replace(/\n/g, ' ')}\`` : 'its defaults (config/clip.toml: background fetch on, bytes streamed while indexing kept)',
    publishedArchives: '',
    coldStart: [],
    indexing: [],
    rss: {},
    durationS: 0,
  };
  const published = await publishedArchivesAvailability();
  results.publishedArchives = published.note;
  try {
    await suite.start([...tags], SECTIONS.includes('cold') && published.available ? IMAGES : []);
    results.publishSeconds = suite.publishSeconds;
    for (const tag of tags) results.images[tag] = suite.image(tag);
    if (SECTIONS.includes('cold')) results.coldStart = await coldStart(suite, published);
    if (SECTIONS.includes('index')) {
      try {
        results.indexing = await indexing(suite);
      } catch (err) {
        results.indexingError = (err as Error).message.split('\n')[0];
      }
    }
    if (SECTIONS.includes('fuse')) {
      try {
        results.fuse = await fuse(suite);
      } catch (err) {
        results.fuse = { fileBytes: 0, files: 0, seq: { clip: [], overlayfs: [] }, small: { clip: [], overlayfs: [] }, error: (err as Error).message.split('\n')[0] };
        log(`FUSE section failed: ${(err as Error).message}`);
      }
    }
    if (SECTIONS.includes('rss')) {
      try {
        results.rss = await rss(suite);
      } catch (err) {
        results.rssError = (err as Error).message.split('\n')[0];
        log(`RSS section failed: ${(err as Error).message}`);
      }
    }
    if (SECTIONS.includes('metrics')) {
      try {
        results.metricsOverhead = await measureMetricsOverhead(Math.max(RUNS, 5), 4000, log);
      } catch (err) {
        results.metricsOverheadError = (err as Error).message.split('\n')[0];
        log(`metrics section failed: ${(err as Error).message}`);
      }
    }
  } finally {
    await suite.stop();
  }
  results.durationS = (performance.now() - started) / 1000;
  await fsp.writeFile(path.join(LOGS, 'results.json'), JSON.stringify(results, null, 2));
  const written = await writeReport(results, process.env.BENCH_DOCS ?? path.join(REPO_ROOT, 'docs'));
  log(`wrote ${written.join(', ')} (results: ${path.join(LOGS, 'results.json')}) in ${results.durationS.toFixed(0)} s`);
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message);
  process.exitCode = 1;
});
