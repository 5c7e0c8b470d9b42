/**
 * Renders one run's results (bench/results.ts) as docs/benchmarks.md and the cold-start chart
 * docs/benchmarks-cold-start.svg. Both files are generated; edit this file, not them.
 *
 *   node dist/bench/report.js RESULTS.json     re-renders from a saved run (BENCH_CACHE/last-run/results.json)
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { median } from './median';
import { ColdStartCase, ColdStartSample, Results } from './results';
import { targetRows } from './targets';


/** "median (min–max)" */
function spread(xs: number[], fmt: (x: number) => string): string {
  if (xs.length === 0) return '–';
  if (xs.length === 1) return fmt(xs[0]!);
  return `${fmt(median(xs))} (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})`;
}

const secs = (ms: number): string => (ms / 1000).toFixed(2);
const mb = (b: number): string => (b / 1e6).toFixed(1);
const mbs = (x: number): string => x.toFixed(0);
const us = (x: number): string => x.toFixed(1);
const mib = (b: number): string => (b / 2 ** 20).toFixed(1);

const IMAGE_LABEL: Record<string, string> = {
  python: '(a) Debian + python3, imports a dozen stdlib modules',
  large: '(b) 1 GiB file never read',
  node: '(c) Node.js + express, lodash, semver',
};

/** "3 (3)": lazily served layers and, of those, layers clip indexed itself (medians). */
function lazy(c: ColdStartCase): string {
  if (c.samples.length === 0 || c.row === 'overlayfs') return c.samples.length ? '0' : '–';
  const indexed = c.samples.map((s) => s.indexedLayers ?? NaN);
  return `${median(c.samples.map((s) => s.lazyLayers))} (${Number.isNaN(indexed[0]) ? '?' : median(indexed)})`;
}

function coldStartTable(results: Results, profile: string): string {
  const rows = results.coldStart.filter((c) => c.profile === profile);
  const overlayTotal = (image: string): number | undefined => {
    const o = rows.find((c) => c.image === image && c.row === 'overlayfs');
    return o && o.samples.length ? median(o.samples.map((s) => s.totalMs)) : undefined;
  };
  const lines = [
    '| image | snapshotter | pull s | run → first output s | total s | × overlayfs (total) | registry MB | % of image | × read (gzip) | lazy layers |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const c of rows) {
    const img = results.images[c.image]!;
    if (c.unavailable) {
      lines.push(`| ${c.image} | ${c.row} | ${c.unavailable} | | | | | | | |`);
      continue;
    }
    const pick = (f: (s: ColdStartSample) => number): number[] => c.samples.map(f);
    const o = overlayTotal(c.image);
    const ratio = o && c.samples.length ? (median(pick((s) => s.totalMs)) / o).toFixed(2) : '–';
    const bytes = pick((s) => s.registryBytes);
    const err = c.error ? ` **failed:** ${c.error.replace(/\|/g, '\\|').slice(0, 200)}` : '';
    lines.push(
      `| ${c.image} | ${c.row}${err} | ${spread(pick((s) => s.pullMs), secs)} | ${spread(pick((s) => s.firstOutputMs), secs)} | ` +
        `${spread(pick((s) => s.totalMs), secs)} | ${c.row === 'overlayfs' ? '1' : ratio} | ${spread(bytes, mb)} | ` +
        `${bytes.length ? ((100 * median(bytes)) / img.layerBytes).toFixed(1) : '–'} | ` +
        `${bytes.length && img.startupRead ? (median(bytes) / img.startupRead.gzipBytes).toFixed(2) : '–'} | ${lazy(c)} |`,
    );
  }
  return lines.join('\n');
}

/** Horizontal stacked bars (pull, then run to first output) of the median totals, one group per profile and image. */
export function coldStartSvg(results: Results): string {
  const cases = results.coldStart.filter((c) => c.samples.length > 0);
  const barH = 16;
  const gap = 6;
  const groupGap = 18;
  const left = 330;
  const width = 900;
  const plotW = width - left - 90;
  const max = Math.max(1, ...cases.map((c) => median(c.samples.map((s) => s.totalMs))));
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const parts: string[] = [];
  let y = 40;
  const groups = [...new Set(cases.map((c) => `${c.profile}|${c.image}`))];
  for (const g of groups) {
    const [profile, image] = g.split('|') as [string, string];
    parts.push(`<text x="10" y="${y + 12}" font-weight="bold">${esc(`${profile}: ${image}`)}</text>`);
    y += 18;
    for (const c of cases.filter((x) => x.profile === profile && x.image === image)) {
      const pull = median(c.samples.map((s) => s.pullMs));
      const first = median(c.samples.map((s) => s.firstOutputMs));
      const total = median(c.samples.map((s) => s.totalMs));
      const wPull = (pull / max) * plotW;
      const wRun = (first / max) * plotW;
      const colour = c.row === 'overlayfs' ? '#8c8c8c' : '#2b7bb9';
      parts.push(
        `<text x="${left - 8}" y="${y + barH - 4}" text-anchor="end">${esc(c.row)}</text>`,
        `<rect x="${left}" y="${y}" width="${wPull.toFixed(1)}" height="${barH}" fill="${colour}"/>`,
        `<rect x="${(left + wPull).toFixed(1)}" y="${y}" width="${Math.max(0.5, wRun).toFixed(1)}" height="${barH}" fill="${colour}" fill-opacity="0.45"/>`,
        `<text x="${(left + wPull + wRun + 6).toFixed(1)}" y="${y + barH - 4}">${secs(total)} s</text>`,
      );
      y += barH + gap;
    }
    y += groupGap;
  }
  const height = y + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">Cold start, median of ${results.runs} runs: pull (solid) + run to first output (light)</text>`,
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

export function renderMarkdown(r: Results): string {
  const m = r.machine;
  const out: string[] = [];
  const p = (s = ''): void => {
    out.push(s);
  };
  p('# Benchmarks: clip vs containerd\'s overlayfs snapshotter');
  p();
  p('<!-- Generated by `npm run bench` (bench/run.ts, bench/report.ts). Do not edit by hand: run the suite again. -->');
  p();
  p(`Run on ${r.date.slice(0, 10)} (${r.date}), ${r.runs} runs per case, ${Math.round(r.durationS / 60)} minutes in all. Command: \`${r.command}\`.`);
  p();
  p('| machine | |');
  p('| --- | --- |');
  p(`| CPU | ${m.cpus} cores, ${m.cpuModel} |`);
  p(`| memory | ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB |`);
  p(`| kernel | ${m.kernel} |`);
  p(`| Node.js | ${m.node} |`);
  p(`| containerd | ${m.containerd} |`);
  p(`| runc | ${m.runc} |`);
  p(`| clip | ${m.clipCommit} |`);
  p();
  p('Every case starts cold: a fresh containerd and clip daemon with empty state directories (no content, no');
  p('snapshots, no clip archives or cache) and `sync; echo 3 > /proc/sys/vm/drop_caches`. Numbers are');
  p('**median (min–max)** over the runs. All images are built offline by `bench/build-images.py` and pushed once');
  p('to one local registry (Debian\'s `docker-registry`); registry bytes are blob body bytes from the registry\'s');
  p('own access log (the rule of `scripts/registry.sh bytes`), counted from the start of the pull to the container\'s exit.');
  p();
  p('Network profiles:');
  p();
  for (const [k, v] of Object.entries(r.profiles)) p(`* **${k}**: ${v}`);
  p();
  p('## Targets');
  p();
  p('What the start-up work is held to, from the medians of this run (sections 1 and 3); "not measured" when');
  p('the rows it needs did not run.');
  p();
  p('| target | measured | met |');
  p('| --- | --- | --- |');
  for (const t of targetRows(r)) p(`| ${t.target} | ${t.measured} | ${t.met === undefined ? '–' : t.met ? 'yes' : '**no**'} |`);
  p();
  p('## 1. Cold start: pull, then run to first output');
  p();
  p('Both snapshotters pull through CRI `ImageService/PullImage` (containerd\'s CRI configured with that');
  p('snapshotter and `disable_snapshot_annotations = false`), then `ctr -n k8s.io run --rm --snapshotter S`.');
  p('*run → first output* is from spawning `ctr run` to the first byte the container prints. *lazy layers* is the');
  p('number of FUSE mounts clip had after the pull, and in brackets how many of those layers clip indexed itself');
  p('(streaming the whole layer from the registry) instead of finding a published archive. The *published archives*');
  p(`rows pull the same images from a second repository (\`bench/published\`), whose clip archives were ${r.publishedArchives}.`);
  p(`clip runs with ${r.clipConfig}.`);
  if (r.publishSeconds && Object.keys(r.publishSeconds).length) {
    p(`\`clip index push\` took ${Object.entries(r.publishSeconds).map(([t, x]) => `${x.toFixed(1)} s for ${t}`).join(', ')} (loopback).`);
  }
  p();
  p('| image | what | layers | compressed MB | uncompressed MB | read at start-up MB | the same, gzip MB |');
  p('| --- | --- | --- | --- | --- | --- | --- |');
  for (const [tag, img] of Object.entries(r.images)) {
    if (!IMAGE_LABEL[tag]) continue;
    const read = img.startupRead;
    p(`| ${tag} | ${IMAGE_LABEL[tag]} | ${img.layers} | ${mb(img.layerBytes)} | ${mb(img.uncompressedBytes)} | ${read ? mb(read.bytes) : '–'} | ${read ? mb(read.gzipBytes) : '–'} |`);
  }
  p();
  p('*read at start-up* is what the container read as it started, from the start-up profiles clip recorded in the');
  p('published-archives setup run (`startup_ranges`, docs/format.md: the 4 KiB blocks of each layer the FUSE server');
  p('was asked for, the kernel\'s read-ahead included), and those bytes compressed as one gzip -6 stream: about the');
  p('least any lazy loader must move to start the container. *× read (gzip)* in the tables below is the registry');
  p('bytes of a row (archives included) divided by that.');
  p();
  for (const profile of Object.keys(r.profiles)) {
    if (!r.coldStart.some((c) => c.profile === profile)) continue;
    p(`### ${profile}`);
    p();
    p(coldStartTable(r, profile));
    p();
  }
  if (r.coldStart.length) {
    p('![cold start](benchmarks-cold-start.svg)');
    p();
  }
  p('## 2. Indexing throughput');
  p();
  p('`bench/indexer/throughput.js` on the benchmark images\' gzip layers (from the page cache): clip\'s indexer');
  p('(sha256 of the blob, diffID, tar parsing, checkpoints, per-span sha256) vs `gzip -dc > /dev/null` on the');
  p(`same bytes, MB/s of uncompressed output, ${r.runs} runs each.`);
  p();
  if (r.indexingError) p(`Failed: ${r.indexingError}`);
  p('| layer | compressed MB | uncompressed MB | entries | gzip -dc MB/s best (median) | indexer MB/s best (median) | indexer / gzip -dc |');
  p('| --- | --- | --- | --- | --- | --- | --- |');
  for (const x of r.indexing) {
    p(`| ${x.layer} | ${x.compressedMB} | ${x.uncompressedMB} | ${x.entries} | ${x.gzipBestMBs} (${x.gzipMedianMBs}) | ${x.indexBestMBs} (${x.indexMedianMBs}) | ${x.ratioBest.toFixed(2)}× |`);
  }
  p();
  p('## 3. FUSE reads');
  p();
  const f = r.fuse;
  if (f?.error) p(`Failed: ${f.error}`);
  if (f) {
    p(`The lazily served rootfs of an image (an overlay mount over clip\'s FUSE layers, as a container sees it,`);
    p('from `ctr snapshots prepare` + `mounts`) vs the same image unpacked by overlayfs. clip runs with');
    p('`background_fetch = false` and `cache_while_indexing = false`, so that only reads fill its content cache.');
    p();
    p(`Sequential read (\`dd bs=1M\`) of a ${mib(f.fileBytes)} MiB random file, MB/s: *cold* = page cache dropped,`);
    p('clip fetches every span from the registry (loopback); *warm* = page cache dropped again, clip serves from its');
    p('disk cache; *hot* = read again at once (page cache).');
    p();
    p('| snapshotter | cold | warm (disk cache) | hot (page cache) |');
    p('| --- | --- | --- | --- |');
    p(`| clip | ${spread(f.seq.clip.map((s) => s.cold), mbs)} | ${spread(f.seq.clip.map((s) => s.warm ?? 0), mbs)} | ${spread(f.seq.clip.map((s) => s.hot), mbs)} |`);
    p(`| overlayfs (local disk) | ${spread(f.seq.overlayfs.map((s) => s.cold), mbs)} | (= cold) | ${spread(f.seq.overlayfs.map((s) => s.hot), mbs)} |`);
    p();
    p(`${f.files.toLocaleString('en')} files of 1–4 KiB in 100 directories, mean µs per operation (one process walking`);
    p('a fixed list): *cold* = after dropping page cache, dentries and inodes; *cached* = the same pass again.');
    p('For clip, the cold open+read pass fetches the layer\'s spans from the registry.');
    p();
    p('| snapshotter | stat cold | stat cached | open+read cold | open+read cached |');
    p('| --- | --- | --- | --- | --- |');
    for (const k of ['clip', 'overlayfs'] as const) {
      const s = f.small[k];
      p(`| ${k} | ${spread(s.map((x) => x.statCold), us)} | ${spread(s.map((x) => x.statCached), us)} | ${spread(s.map((x) => x.readCold), us)} | ${spread(s.map((x) => x.readCached), us)} |`);
    }
    p();
  }
  p('## 4. Daemon memory');
  p();
  p('VmRSS of the clip daemon (`/proc/PID/status`) right after start (*idle*) and 3 s after a CRI pull of an image');
  p('whose layers it all serves lazily (a busybox layer plus small layers of 20 files each).');
  p();
  if (r.rssError) p(`Failed: ${r.rssError}`);
  p('| lazy layers mounted | idle MiB | MiB with the layers mounted | FUSE mounts seen |');
  p('| --- | --- | --- | --- |');
  for (const [n, s] of Object.entries(r.rss)) {
    p(`| ${n} | ${spread(s.map((x) => x.idleBytes), mib)} | ${spread(s.map((x) => x.bytes), mib)} | ${s.map((x) => x.mounts).join(', ')} |`);
  }
  p();
  const overhead = r.metricsOverhead;
  if (overhead || r.metricsOverheadError) {
    p('## 5. Metrics overhead on the FUSE path');
    p();
    p(`Per request, ${overhead?.files ?? ''} cached files of 2 KiB on a fresh mount per sample, answered by the native server`);
    p('alone, with `[metrics] address` unset (off) and set (on); medians of the samples, and their ratio');
    p('(`node dist/bench/metrics-overhead.js` measures it on its own).');
    p();
    if (r.metricsOverheadError) p(`Failed: ${r.metricsOverheadError}`);
    if (overhead) {
      p('| request | metrics off | metrics on | on / off |');
      p('| --- | --- | --- | --- |');
      for (const [what, label] of [['stat', '`stat`'], ['read', '`open` + `read` + `close`']] as const) {
        const off = median(overhead[what].off);
        const on = median(overhead[what].on);
        p(`| ${label} | ${off.toFixed(1)} µs | ${on.toFixed(1)} µs | ${(on / off).toFixed(2)} |`);
      }
      p();
    }
  }
  return out.join('\n');
}

export async function writeReport(results: Results, docsDir: string): Promise<string[]> {
  await fsp.mkdir(docsDir, { recursive: true });
  const md = path.join(docsDir, 'benchmarks.md');
  const svg = path.join(docsDir, 'benchmarks-cold-start.svg');
  await fsp.writeFile(md, renderMarkdown(results));
  await fsp.writeFile(svg, coldStartSvg(results));
  return [md, svg];
}

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: report.js RESULTS.json');
    process.exit(2);
  }
  fsp
    .readFile(file, 'utf8')
    .then((text) => writeReport(JSON.parse(text) as Results, path.resolve(__dirname, '..', '..', 'docs')))
    .then((files) => console.log(`wrote ${files.join(', ')}`))
    .catch((err: Error) => {
      console.error(err.message);
      process.exit(1);
    });
}
