/** withStartupFields: an archive's start-up profile and bundle replaced without touching its entries. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ArchiveFormatError,
  decodeArchiveAsync,
  encodeArchive,
  startupRangeBytes,
  withStartupFields,
  type ClipArchive,
  type StartupFields,
} from '../../../src/archive';
import { realisticArchive, sha256 } from './fixtures';

const BLOCK = 4096;

function profile(a: ClipArchive): StartupFields {
  const last = Math.floor((a.uncompressedSize - 1) / BLOCK) * BLOCK;
  const startupRanges: Array<[number, number]> = [[0, 2 * BLOCK], [last, a.uncompressedSize]];
  return { startupSpans: [0], startupRanges };
}

function bundled(a: ClipArchive): StartupFields {
  const p = profile(a);
  const size = startupRangeBytes(p.startupRanges!);
  return { ...p, startupBundle: { digest: sha256('blob'), compressedSize: 700, uncompressedSize: size, compression: 'gzip', uncompressedDigest: sha256('data') } };
}

/** A decoded archive whose entries getter counts its reads. */
async function decodedCountingReads(a: ClipArchive): Promise<{ archive: ClipArchive; reads: () => number }> {
  const archive = await decodeArchiveAsync(encodeArchive(a));
  const lazy = Object.getOwnPropertyDescriptor(archive, 'entries')!;
  let reads = 0;
  Object.defineProperty(archive, 'entries', {
    ...lazy,
    get: () => {
      reads++;
      return lazy.get!.call(archive);
    },
  });
  return { archive, reads: () => reads };
}

describe('withStartupFields', () => {
  it('gives the bytes encodeArchive gives for the archive with the new fields, without reading the entries', async () => {
    const a = realisticArchive();
    const { archive, reads } = await decodedCountingReads(a);
    const results = [];
    for (const fields of [profile(a), bundled(a)]) {
      const result = await withStartupFields(archive, fields);
      assert.ok(result.file.equals(encodeArchive({ ...a, ...fields })));
      assert.deepEqual(result.archive.startupRanges, fields.startupRanges);
      assert.equal(result.archive.startupBundle, fields.startupBundle);
      results.push(result);
    }
    assert.equal(reads(), 0, 'the entries were not decoded');
    for (const result of results) assert.deepEqual(result.archive.entries, a.entries, 'the same entries, read when asked for');
    assert.equal(reads(), 2);
  });

  it('replaces fields already there and removes those left out', async () => {
    const a = realisticArchive();
    const full = await decodeArchiveAsync(encodeArchive({ ...a, ...bundled(a) }));
    const other: StartupFields = { startupSpans: [1, 0], startupRanges: [[BLOCK, 3 * BLOCK]] };
    const replaced = await withStartupFields(full, other);
    assert.ok(replaced.file.equals(encodeArchive({ ...a, ...other })));
    assert.equal(replaced.file.readUInt16LE(10), 0, 'without a bundle the file is format 1.0');
    assert.equal('startupBundle' in replaced.archive, false);

    const cleared = await withStartupFields(full, {});
    assert.ok(cleared.file.equals(encodeArchive(a)));
    assert.equal('startupSpans' in cleared.archive, false);
  });

  it('works on an archive built in memory, and the result encodes to its own file', async () => {
    const a = realisticArchive();
    const { archive, file } = await withStartupFields(a, profile(a));
    assert.ok(encodeArchive(archive).equals(file));
    assert.equal(archive.entries, a.entries);
  });

  it('refuses fields that do not fit the archive', async () => {
    const a = realisticArchive();
    const bad: Array<[StartupFields, RegExp]> = [
      [{ startupSpans: [a.checkpoints.length] }, /start-up span \d+ is not one of the/],
      [{ ...profile(a), startupRanges: [[0, a.uncompressedSize + BLOCK]] }, /range/],
      [{ startupBundle: bundled(a).startupBundle }, /start-up bundle without start-up ranges/],
    ];
    for (const [fields, message] of bad) {
      await assert.rejects(withStartupFields(a, fields), (err: unknown) => err instanceof ArchiveFormatError && message.test(err.message));
    }
  });
});
