import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ArchiveFormatError, encodeArchive, readArchiveFile, writeArchiveFile } from '../../../src/archive';
import { NotFoundError } from '../../../src/errors';
import { realisticArchive, sha256 } from './fixtures';

describe('clip archive files', () => {
  let dir: string;
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'clip-archive-')); });
  after(async () => { await rm(dir, { recursive: true, force: true }); });

  it('writes an archive and reads it back, leaving no temporary file', async () => {
    const file = join(dir, 'layer.clip');
    const a = realisticArchive();
    await writeArchiveFile(file, a);
    assert.deepEqual(await readFile(file), encodeArchive(a));
    assert.deepEqual(await readArchiveFile(file), a);
    assert.deepEqual(await readdir(dir), ['layer.clip']);
  });

  it('replaces an existing archive whole', async () => {
    const file = join(dir, 'replace.clip');
    await writeFile(file, 'old contents');
    const a = { ...realisticArchive(), layerDigest: sha256('other') };
    await writeArchiveFile(file, a);
    assert.deepEqual(await readArchiveFile(file), a);
  });

  it('writes nothing for an invalid archive', async () => {
    const file = join(dir, 'invalid.clip');
    const a = realisticArchive();
    a.entries[1]!.path = '../escape';
    await assert.rejects(writeArchiveFile(file, a), ArchiveFormatError);
    assert.ok(!(await readdir(dir)).some((n) => n.includes('invalid')));
  });

  it('fails with NotFoundError for a missing file and names the file of a damaged one', async () => {
    await assert.rejects(readArchiveFile(join(dir, 'missing.clip')), NotFoundError);
    const file = join(dir, 'damaged.clip');
    const bytes = encodeArchive(realisticArchive());
    bytes[bytes.length - 1]! ^= 1;
    await writeFile(file, bytes);
    await assert.rejects(readArchiveFile(file), (err: unknown) => {
      assert.ok(err instanceof ArchiveFormatError);
      assert.equal(err.message, `clip archive ${file}: ${err.detail}`);
      assert.match(err.detail, /^checksum mismatch/);
      return true;
    });
  });

  it('fails with the file system error when the directory is missing', async () => {
    await assert.rejects(writeArchiveFile(join(dir, 'no-such-dir', 'x.clip'), realisticArchive()), { code: 'ENOENT' });
  });
});
