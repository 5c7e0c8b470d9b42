/**
 * How long decoding an archive and parsing a layer's tar hold the JavaScript thread, for a node_modules-like
 * layer of 200 000 entries (docs/limits.md, "Event loop"). Run after a build:
 *
 *   node dist/bench/event-loop-blocking.js [entries]
 *
 * Times are CPU times of the main thread (process.cpuUsage around synchronous work with no thread-pool
 * work running), so that a busy machine, which delays the process but does not make its work longer,
 * matters less than it would for wall times. They include garbage collection.
 */
import { createHash } from 'node:crypto';
import { decodeArchive, decodeArchiveAsync, encodeArchive, encodeArchiveAsync } from '../src/archive';
import { indexLayer } from '../src/indexer';
import { EntryCollector } from '../src/indexer/entry-collector';
import { TarParser } from '../src/indexer/tar-parser';
import { endOfArchive, tarEntry } from '../test/unit/indexer/tar-writer';

function nodeModulesTar(entries: number): Buffer {
  const parts: Buffer[] = [tarEntry({ name: 'usr/lib/node_modules/', typeflag: '5' })];
  for (let p = 0; parts.length < entries; p++) {
    parts.push(tarEntry({ name: `usr/lib/node_modules/package-${p}/`, typeflag: '5' }));
    for (let f = 0; f < 39 && parts.length < entries; f++) parts.push(tarEntry({ name: `usr/lib/node_modules/package-${p}/lib/file-${f}.js` }));
  }
  return Buffer.concat([...parts, endOfArchive()]);
}

function cpuMs<T>(f: () => T): [T, number] {
  const before = process.cpuUsage();
  const result = f();
  const used = process.cpuUsage(before);
  return [result, (used.user + used.system) / 1000];
}

/** Parses `tar` `slice` bytes per call, as indexLayer does; the mean and longest call. */
function tarParse(tar: Buffer, slice: number): void {
  const entries = new EntryCollector();
  const parser = new TarParser((e) => entries.add(e));
  let total = 0;
  let longest = 0;
  let calls = 0;
  for (let at = 0; at < tar.length; at += slice, calls++) {
    const [, ms] = cpuMs(() => parser.write(tar.subarray(at, at + slice)));
    total += ms;
    longest = Math.max(longest, ms);
  }
  console.log(`tar parse, ${slice >> 10} KiB per call: mean ${(total / calls).toFixed(1)} ms, longest ${longest.toFixed(1)} ms (${calls} calls)`);
}

/** Runs `work`, reporting the CPU time it took in all and the longest between two turns of the event loop. */
async function sliced(what: string, work: () => Promise<unknown>): Promise<void> {
  let last = process.cpuUsage();
  let longest = 0;
  let turns = 0;
  let done = false;
  const turn = (): void => {
    const used = process.cpuUsage(last);
    longest = Math.max(longest, (used.user + used.system) / 1000);
    last = process.cpuUsage();
    turns++;
    if (!done) setImmediate(turn);
  };
  setImmediate(turn);
  const before = process.cpuUsage();
  await work();
  done = true;
  const used = process.cpuUsage(before);
  console.log(`${what}: ${((used.user + used.system) / 1000).toFixed(0)} ms in all, ${turns} turns of the event loop, longest turn ${longest.toFixed(1)} ms`);
}

async function main(): Promise<void> {
  const count = Number(process.argv[2] ?? 200_000);
  const tar = nodeModulesTar(count);
  console.log(`layer: ${count} entries, ${tar.length} bytes of tar (CPU ms of the main thread)`);
  tarParse(tar, 4 << 20);
  tarParse(tar, 256 << 10);
  const archive = await indexLayer([tar], { layerDigest: `sha256:${createHash('sha256').update(tar).digest('hex')}`, mediaType: '', compression: 'none' });
  const [file, encodeMs] = cpuMs(() => encodeArchive(archive));
  console.log(`archive: ${file.length} bytes; encodeArchive ${encodeMs.toFixed(0)} ms in one go`);
  for (let i = 0; i < 3; i++) console.log(`decodeArchive: ${cpuMs(() => decodeArchive(file))[1].toFixed(0)} ms in one go`);
  await sliced('decodeArchiveAsync', () => decodeArchiveAsync(file));
  await sliced('encodeArchiveAsync', () => encodeArchiveAsync(archive));
}

void main();
