#!/usr/bin/env node
// Indexing throughput of src/indexer against `gzip -dc FILE > /dev/null` on the same layer.
// Usage (after npm run build):
//   node bench/indexer/throughput.js [--runs N] [--span BYTES] [--chunk BYTES] LAYER.tar.gz...
// --chunk cuts the blob into pieces of that size (default 64 KiB), read ahead 1 MiB at a time like a socket
// buffers an HTTP body, so the measurement is the indexer's and not the latency of tiny file reads.
// Reports MB/s of uncompressed output (1 MB = 10^6 bytes), best of N runs each. Indexing includes the
// sha256 of the blob, the diffID, per-span sha256, tar parsing and checkpoint windows.
'use strict';
const { spawnSync } = require('node:child_process');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { indexLayer } = require(path.resolve(__dirname, '../../dist/src/indexer'));

const args = process.argv.slice(2);
let runs = 3;
let spanSize;
let chunkSize = 64 << 10;
const files = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--runs') runs = Number(args[++i]);
  else if (args[i] === '--span') spanSize = Number(args[++i]);
  else if (args[i] === '--chunk') chunkSize = Number(args[++i]);
  else files.push(args[i]);
}
if (files.length === 0) {
  console.error('usage: throughput.js [--runs N] [--span BYTES] [--chunk BYTES] LAYER.tar.gz...');
  process.exit(2);
}

function seconds(start) {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function digestOf(file) {
  return `sha256:${createHash('sha256').update(fs.readFileSync(file)).digest('hex')}`;
}

function gzipSeconds(file) {
  const start = process.hrtime.bigint();
  const result = spawnSync('sh', ['-c', 'gzip -dc "$1" > /dev/null', 'sh', file], { stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`gzip -dc ${file} failed`);
  return seconds(start);
}

async function* pieces(file) {
  for await (const block of fs.createReadStream(file, { highWaterMark: 1 << 20 })) {
    for (let i = 0; i < block.length; i += chunkSize) yield block.subarray(i, i + chunkSize);
  }
}

async function indexSeconds(file, layerDigest) {
  const start = process.hrtime.bigint();
  const cpuStart = process.cpuUsage();
  const archive = await indexLayer(pieces(file), {
    layerDigest,
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
    compression: 'gzip',
    spanSize,
  });
  const cpu = process.cpuUsage(cpuStart);
  return { time: seconds(start), cpu: (cpu.user + cpu.system) / 1e6, archive };
}

(async () => {
  console.log(`node ${process.version}, ${require('node:os').cpus()[0].model}, zlib ${process.versions.zlib} (node) / system zlib for the addon`);
  for (const file of files) {
    const layerDigest = digestOf(file);
    fs.readFileSync(file); // warm the page cache for both contenders
    const gzip = [];
    const index = [];
    let archive;
    for (let run = 0; run < runs; run++) {
      gzip.push(gzipSeconds(file));
      const result = await indexSeconds(file, layerDigest);
      index.push(result);
      archive = result.archive;
    }
    const mb = archive.uncompressedSize / 1e6;
    const bestGzip = Math.min(...gzip);
    const bestIndex = index.reduce((a, b) => (b.time < a.time ? b : a));
    const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    const rate = (t) => `${(mb / t).toFixed(0).padStart(4)} MB/s`;
    console.log(
      `${path.basename(file)}: ${(archive.compressedSize / 1e6).toFixed(1)} MB -> ${mb.toFixed(1)} MB, ` +
        `${archive.entries.length} entries, ${archive.checkpoints.length} checkpoints, ${runs} runs\n` +
        `  gzip -dc    best ${bestGzip.toFixed(3)} s ${rate(bestGzip)}   median ${rate(median(gzip))}\n` +
        `  indexLayer  best ${bestIndex.time.toFixed(3)} s ${rate(bestIndex.time)}   median ${rate(median(index.map((r) => r.time)))}` +
        `   first ${rate(index[0].time)}   cpu ${bestIndex.cpu.toFixed(2)} s\n` +
        `  ratio (best/best) ${(bestGzip / bestIndex.time).toFixed(2)}x gzip -dc`,
    );
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
