/**
 * Fuzz-style tests (fast-check, fixed seed, a fixed number of cases, so runs are deterministic and take
 * seconds): random and mutated tar streams, gzip layers, clip archives and native FUSE tables go to the
 * parsers that meet them in production. Each must either accept the input or fail with one of clip's
 * typed errors (for the native table parser: its own CLIP_FUSE_BAD_TABLE error), never crash the process
 * or throw anything else, and the heap must not grow beyond a fixed budget over all cases.
 *
 * The native table parser runs in the FUSE addon's LayerServer constructor, which parses and checks the
 * table without mounting anything; a server built from a table that passes is destroyed at once. The C
 * decoder of archive entries (src/archive/native/layer_table.c) must refuse every body the JavaScript
 * decoder refuses, decode the same entries from the others, and build a table the server loads.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import zlib from 'node:zlib';
import fc from 'fast-check';
import { DEFAULT_ARCHIVE_LIMITS, buildLayerTable, decodeArchive, decodeArchiveAsync, encodeArchive } from '../../../src/archive';
import { frameBody } from '../../../src/archive/header';
import { isClipError } from '../../../src/errors';
import { nativeLayerServer } from '../../../src/fusefs/layer-server';
import { indexLayer } from '../../../src/indexer';
import { EntryCollector } from '../../../src/indexer/entry-collector';
import { TarParser } from '../../../src/indexer/tar-parser';
import { realisticArchive } from '../archive/fixtures';
import { sha256 } from '../indexer/fixtures';
import { endOfArchive, paxEntry, tarEntry } from '../indexer/tar-writer';

const SEED = 20261205;
/** Heap growth allowed over all the cases of one property, after garbage collection. */
const HEAP_BUDGET = 32 << 20;

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function heapUsed(): number {
  gc();
  return process.memoryUsage().heapUsed;
}

/** Runs `property` for `numRuns` cases with the fixed seed and checks the heap stayed within budget. */
async function within(property: fc.IAsyncPropertyWithHooks<unknown> | fc.IPropertyWithHooks<unknown>, numRuns: number): Promise<void> {
  const before = heapUsed();
  await fc.assert(property, { seed: SEED, numRuns, endOnFailure: true });
  const grown = heapUsed() - before;
  assert.ok(grown < HEAP_BUDGET, `heap grew by ${grown} bytes over ${numRuns} cases`);
}

/** A typed clip error for bad input: INVALID_ARGUMENT (malformed) or FAILED_PRECONDITION (a limit). */
function assertInputError(err: unknown): void {
  if (!isClipError(err) || (err.code !== 'INVALID_ARGUMENT' && err.code !== 'FAILED_PRECONDITION')) {
    assert.fail(`not a typed input error: ${err instanceof Error ? err.stack : String(err)}`);
  }
}

interface Mutation {
  at: number;
  byte: number;
}

/** Byte changes anywhere in `base`, then perhaps a truncation or some appended bytes. */
function mutated(base: Buffer): fc.Arbitrary<Buffer> {
  return fc
    .record({
      changes: fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 12 }),
      cut: fc.option(fc.nat(), { freq: 4 }),
      extra: fc.option(fc.uint8Array({ maxLength: 1024 }), { freq: 4 }),
    })
    .map(({ changes, cut, extra }) => {
      const out = Buffer.from(base);
      for (const c of changes as Mutation[]) out[c.at % out.length] = c.byte;
      const cutAt = cut === null ? out.length : cut % (out.length + 1);
      return extra === null ? out.subarray(0, cutAt) : Buffer.concat([out.subarray(0, cutAt), extra]);
    });
}

/** A small tar stream with every kind of header the parser reads. */
function sampleTar(): Buffer {
  return Buffer.concat([
    tarEntry({ name: 'etc/', typeflag: '5' }),
    tarEntry({ name: 'etc/passwd' }, Buffer.from('root:x:0:0:root:/root:/bin/sh\n')),
    tarEntry({ name: 'etc/link', typeflag: '2', linkname: 'passwd' }),
    tarEntry({ name: 'etc/hard', typeflag: '1', linkname: 'etc/passwd' }),
    paxEntry([['path', 'usr/lib/a-long-name'], ['SCHILY.xattr.user.k', 'v'], ['mtime', '1700000000.5']]),
    tarEntry({ name: 'x' }, Buffer.from('data')),
    tarEntry({ name: '././@LongLink', typeflag: 'L' }, Buffer.from('usr/share/a-gnu-long-name\0')),
    tarEntry({ name: 'y' }),
    tarEntry({ name: 'dev/null', typeflag: '3' }),
    endOfArchive(),
  ]);
}

function parseTar(stream: Buffer, chunk: number): void {
  const entries = new EntryCollector();
  const parser = new TarParser((e) => entries.add(e));
  for (let i = 0; i < stream.length; i += chunk) parser.write(stream.subarray(i, i + chunk));
  parser.end();
}

/** No case may hang: each property has this long for all its cases (they take a few seconds). */
const NO_HANG = { timeout: 120_000 };

describe('hostile input (fuzz, fixed seed)', () => {
  it('tar parser: mutated and random tar streams, cut anywhere', NO_HANG, async () => {
    const base = sampleTar();
    parseTar(base, 512); // the unmutated stream is valid
    const streams = fc.oneof(mutated(base), fc.uint8Array({ minLength: 512, maxLength: 4096 }).map((a) => Buffer.from(a)));
    await within(
      fc.property(streams, fc.integer({ min: 1, max: 2048 }), (stream, chunk) => {
        try {
          parseTar(stream, chunk);
        } catch (err) {
          assertInputError(err);
        }
      }),
      600,
    );
  });

  it('indexer: mutated gzip layers (native zran, tar, limits)', NO_HANG, async () => {
    const base = zlib.gzipSync(sampleTar());
    await within(
      fc.asyncProperty(mutated(base), async (blob) => {
        try {
          await indexLayer([blob], { layerDigest: sha256(blob), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', compression: 'gzip', spanSize: 4096 });
        } catch (err) {
          assertInputError(err);
        }
      }),
      150,
    );
  });

  it('archive decoder: mutated archives, with a recomputed checksum or as they are', NO_HANG, async () => {
    const gzip = realisticArchive();
    const file = encodeArchive(gzip);
    // The same entries without windows, so that most mutations land in entries rather than windows.
    const plain = encodeArchive({
      ...gzip,
      compression: 'none',
      compressedSize: gzip.uncompressedSize,
      checkpoints: gzip.checkpoints.map((c) => ({ compressedOffset: c.uncompressedOffset, bits: 0, uncompressedOffset: c.uncompressedOffset, window: Buffer.alloc(0) })),
    });
    const inputs = fc.oneof(
      mutated(file.subarray(56)).map((b) => frameBody(b)), // reaches the body decoder and the rules
      mutated(plain.subarray(56)).map((b) => frameBody(b)),
      mutated(file), // mostly stopped by the header and checksum
    );
    await within(
      fc.property(inputs, (bytes) => {
        try {
          decodeArchive(bytes);
        } catch (err) {
          assertInputError(err);
        }
      }),
      600,
    );
  });

  it('archive entries in C (decodeArchiveAsync, layer table): mutated bodies are refused as the JavaScript decoder refuses them', NO_HANG, async () => {
    const gzip = realisticArchive();
    const plain = encodeArchive({
      ...gzip,
      compression: 'none',
      compressedSize: gzip.uncompressedSize,
      checkpoints: gzip.checkpoints.map((c) => ({ compressedOffset: c.uncompressedOffset, bits: 0, uncompressedOffset: c.uncompressedOffset, window: Buffer.alloc(0) })),
    });
    const bounds = [...gzip.checkpoints.map((c) => c.uncompressedOffset), gzip.uncompressedSize];
    let accepted = 0;
    await within(
      fc.asyncProperty(mutated(plain.subarray(56)), async (body) => {
        const file = frameBody(body);
        let js: ReturnType<typeof decodeArchive> | undefined;
        try {
          js = decodeArchive(file);
        } catch (err) {
          assertInputError(err);
        }
        let native: Awaited<ReturnType<typeof decodeArchiveAsync>> | undefined;
        try {
          native = await decodeArchiveAsync(file);
        } catch (err) {
          assertInputError(err);
        }
        // C is stricter only where JavaScript would replace invalid UTF-8 in a link target or xattr name.
        if (native) {
          assert.ok(js, 'an archive the C decoder accepts is one the JavaScript decoder accepts');
          assert.deepEqual(native.entries, js.entries);
          const table = await buildLayerTable(body, { limits: DEFAULT_ARCHIVE_LIMITS, uncompressedSize: native.uncompressedSize, bounds, opaqueXattrNames: ['trusted.overlay.opaque'] });
          const server = nativeLayerServer(table.bytes, '/nonexistent', 1, () => undefined, () => undefined);
          server.destroy();
          accepted++;
        }
      }),
      600,
    );
    assert.ok(accepted > 0, 'some mutations are still valid archives');
  });

  it('native FUSE table parser: mutated tables are refused with CLIP_FUSE_BAD_TABLE or load, never crash', NO_HANG, async () => {
    const archive = realisticArchive();
    const bounds = [...archive.checkpoints.map((c) => c.uncompressedOffset), archive.uncompressedSize];
    const body = encodeArchive(archive).subarray(56);
    const { bytes } = await buildLayerTable(body, { limits: DEFAULT_ARCHIVE_LIMITS, uncompressedSize: archive.uncompressedSize, bounds, opaqueXattrNames: ['trusted.overlay.opaque'] });
    const load = (table: Buffer): void => {
      const server = nativeLayerServer(table, '/nonexistent', 1, () => undefined, () => undefined);
      server.destroy();
    };
    load(bytes);
    // Mutations of the header (counts, pool length) and of the records both matter.
    const header = fc.record({ at: fc.integer({ min: 0, max: 39 }), value: fc.nat() }).map(({ at, value }) => {
      const out = Buffer.from(bytes);
      out.writeUInt32LE(value >>> 0, at - (at % 4));
      return out;
    });
    await within(
      fc.property(fc.oneof(mutated(bytes), header), (table) => {
        try {
          load(table);
        } catch (err) {
          assert.equal((err as { code?: string }).code, 'CLIP_FUSE_BAD_TABLE', String(err));
        }
      }),
      600,
    );
  });
});
