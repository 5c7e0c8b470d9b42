/**
 * Hostile archives against the archive limits (src/archive/limits.ts, docs/limits.md): each is rejected
 * with an ArchiveLimitError naming the limit's setting, at the first entry or checkpoint over it, before
 * the rest of the body is decoded.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  ArchiveFormatError,
  ArchiveLimitError,
  DEFAULT_ARCHIVE_LIMITS,
  checkArchiveHeader,
  decodeArchive,
  decodeArchiveAsync,
  encodeArchive,
  encodeArchiveAsync,
  readArchiveFile,
  writeArchiveFile,
  type ArchiveLimits,
} from '../../../src/archive';
import { frameBody } from '../../../src/archive/header';
import { Archive as ArchiveBody, EntryType, type Entry as EntryBody } from '../../../src/generated/clip/archive/v1/archive';
import { largeArchive, realisticArchive } from './fixtures';

const HEADER = 56;

/** A directory entry whose path is the first `prefix` bytes of the previous path followed by `suffix`. */
function dirEntry(prefix: number, suffix: string): EntryBody {
  return {
    pathPrefix: prefix,
    pathSuffix: Buffer.from(suffix),
    type: EntryType.ENTRY_TYPE_DIR,
    mode: 0o755,
    uid: 0,
    gid: 0,
    size: 0,
    mtimeMsDelta: 0,
    dataOffsetDelta: 0,
    linkTarget: '',
    devMajor: 0,
    devMinor: 0,
    xattrs: {},
  };
}

/** A valid archive file (realisticArchive's header fields and checkpoints) with `entries` instead of its own. */
function withEntries(entries: EntryBody[]): Buffer {
  const body = ArchiveBody.decode(encodeArchive(realisticArchive()).subarray(HEADER));
  body.entries = entries;
  return frameBody(ArchiveBody.encode(body).finish());
}

function rejectsWithLimit(file: Buffer, limits: Partial<ArchiveLimits>, message: RegExp, limit: keyof ArchiveLimits): void {
  assert.throws(() => decodeArchive(file, limits), (err: unknown) => {
    assert.ok(err instanceof ArchiveLimitError, `want ArchiveLimitError, got ${String(err)}`);
    assert.ok(err instanceof ArchiveFormatError);
    assert.equal(err.code, 'INVALID_ARGUMENT');
    assert.equal(err.limit, limit);
    assert.match(err.message, message);
    return true;
  });
}

describe('archive limits', () => {
  it('rejects a quadratic front-coding archive at the first path over limits.max_path_bytes, without building the rest', () => {
    // Each entry's path is the previous one plus "/a": 17 000 entries in < 1 MB would decode to 289 MB of paths.
    const entries = [dirEntry(0, 'a')];
    for (let i = 1; i < 17_000; i++) entries.push(dirEntry(2 * i - 1, '/a'));
    const file = withEntries(entries);
    assert.ok(file.length < 1_000_000, `bomb is ${file.length} bytes`);
    const heapBefore = process.memoryUsage().heapUsed;
    rejectsWithLimit(file, {}, /^clip archive: entry 2048: path is 4097 bytes long \(limit limits\.max_path_bytes = 4096\)$/, 'maxPathBytes');
    const grown = process.memoryUsage().heapUsed - heapBefore;
    assert.ok(grown < 64 << 20, `heap grew by ${grown} bytes`);
  });

  it('rejects a component longer than limits.max_name_bytes', () => {
    rejectsWithLimit(
      withEntries([dirEntry(0, 'usr'), dirEntry(3, `/${'n'.repeat(256)}`)]),
      {},
      /^clip archive: entry 1: path has a 256-byte component \(limit limits\.max_name_bytes = 255\)$/,
      'maxNameBytes',
    );
  });

  it('rejects paths of 4096 bytes each once they add up to more than limits.max_metadata_size', () => {
    const base = `${'c'.repeat(100)}/`.repeat(40) + 'x'.repeat(54); // 4094 bytes, components of 100
    const entries = [dirEntry(0, `${base}00`)];
    for (let i = 1; i < 1000; i++) entries.push(dirEntry(base.length, String(i % 100).padStart(2, '0')));
    rejectsWithLimit(
      withEntries(entries),
      { maxMetadataBytes: 1 << 20 },
      /^clip archive: entry 256: paths, link targets and xattrs take more than 1048576 bytes \(limit limits\.max_metadata_size = 1048576\)$/,
      'maxMetadataBytes',
    );
  });

  it('rejects a link target longer than limits.max_path_bytes', () => {
    const link = { ...dirEntry(0, 'l'), type: EntryType.ENTRY_TYPE_SYMLINK, linkTarget: 't/'.repeat(2100) };
    rejectsWithLimit(withEntries([link]), {}, /^clip archive: entry 0: link target is 4200 bytes long \(limit limits\.max_path_bytes = 4096\)$/, 'maxPathBytes');
  });

  it('counts entries and checkpoints against limits.max_entries and limits.max_checkpoints', () => {
    const file = encodeArchive(realisticArchive());
    rejectsWithLimit(file, { maxEntries: 3 }, /^clip archive: more than 3 entries \(limit limits\.max_entries = 3\)$/, 'maxEntries');
    const big = encodeArchive(largeArchive(100, { span: 1 << 16 }));
    rejectsWithLimit(big, { maxCheckpoints: 2 }, /^clip archive: more than 2 checkpoints \(limit limits\.max_checkpoints = 2\)$/, 'maxCheckpoints');
  });

  it('rejects a span longer than limits.max_span_size (a reader holds a whole span in memory)', () => {
    const archive = largeArchive(100, { span: 1 << 16 });
    const longest = Math.max(
      ...archive.checkpoints.map((c, i) => (archive.checkpoints[i + 1]?.uncompressedOffset ?? archive.uncompressedSize) - c.uncompressedOffset),
    );
    rejectsWithLimit(encodeArchive(archive), { maxSpanBytes: 1 << 16 }, /^clip archive: span \d+ is \d+ bytes long \(limit limits\.max_span_size = 65536\)$/, 'maxSpanBytes');
    assert.deepEqual(decodeArchive(encodeArchive(archive), { maxSpanBytes: longest }), archive);
  });

  it('checks the header against limits.max_archive_size before the checksum, from the first 56 bytes alone', () => {
    const file = Buffer.from(encodeArchive(realisticArchive()));
    const head = file.subarray(0, HEADER);
    assert.deepEqual(checkArchiveHeader(head, DEFAULT_ARCHIVE_LIMITS.maxBytes), { major: 1, minor: 0, flags: 0, bodyLength: file.length - HEADER });
    const huge = Buffer.from(head);
    huge.writeBigUInt64LE(1n << 40n, 16);
    assert.throws(() => checkArchiveHeader(huge, DEFAULT_ARCHIVE_LIMITS.maxBytes), {
      name: 'ArchiveLimitError',
      message: `clip archive: the header announces a ${2 ** 40}-byte body (limit limits.max_archive_size = ${DEFAULT_ARCHIVE_LIMITS.maxBytes})`,
    });
    assert.throws(() => checkArchiveHeader(file.subarray(0, 20), DEFAULT_ARCHIVE_LIMITS.maxBytes), /truncated: 20 bytes/);
    file[40]! ^= 1; // a bad checksum is not even computed when the size is over the limit
    rejectsWithLimit(file, { maxBytes: file.length - 1 }, /header announces a \d+-byte body \(limit limits\.max_archive_size = \d+\)$/, 'maxBytes');
    assert.throws(() => decodeArchive(file), /checksum mismatch/);
  });

  it('encodes and decodes in slices (the async forms) to the same bytes and archive, in ArchiveBody field order', async () => {
    const archive = largeArchive(5000, { span: 1 << 16 });
    const file = encodeArchive(archive);
    assert.deepEqual(await encodeArchiveAsync(archive, 0), file);
    // Field by field, the body is what the generated encoder writes for the whole message.
    assert.deepEqual(Buffer.from(ArchiveBody.encode(ArchiveBody.decode(file.subarray(HEADER))).finish()), file.subarray(HEADER));
    assert.deepEqual(await decodeArchiveAsync(file, {}, 0), decodeArchive(file));
    await assert.rejects(decodeArchiveAsync(file, { maxEntries: 4000 }, 0), { name: 'ArchiveLimitError', message: /more than 4000 entries/ });
  });

  it('reads archive files within the limits, naming the file', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'clip-archive-limits-'));
    try {
      const file = path.join(dir, 'a.clip');
      await writeArchiveFile(file, realisticArchive());
      const size = statSync(file).size;
      await assert.rejects(readArchiveFile(file, { maxBytes: size - 1 }), {
        name: 'ArchiveLimitError',
        message: `clip archive ${file}: ${size} bytes (limit limits.max_archive_size = ${size - 1})`,
      });
      await assert.rejects(readArchiveFile(file, { maxEntries: 2 }), {
        name: 'ArchiveLimitError',
        message: `clip archive ${file}: more than 2 entries (limit limits.max_entries = 2)`,
      });
      assert.deepEqual(await readArchiveFile(file), realisticArchive());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects limits that are not positive integers', () => {
    assert.throws(() => decodeArchive(encodeArchive(realisticArchive()), { maxEntries: 0 }), /invalid limit maxEntries = 0/);
  });
});
