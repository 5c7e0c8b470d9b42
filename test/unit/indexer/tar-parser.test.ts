import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { ArchiveEntry } from '../../../src/archive/types';
import { InvalidArgumentError } from '../../../src/errors';
import { TarParser } from '../../../src/indexer/tar-parser';
import { prng, pythonTars, randomChunks } from './fixtures';

const LONG_DIR = `usr/${'d'.repeat(120)}`;
const LONG_TARGET = `/opt/${'t'.repeat(150)}/target`;
const USTAR_NAME = `${'a'.repeat(70)}/${'b'.repeat(70)}/file`;
const open = (format: string, extra = '') => `tf = tarfile.open(fileobj=buf, mode='w', format=tarfile.${format}${extra})\n`;

const TARS = pythonTars({
  // One of every entry type, long names and links, xattrs in both PAX forms, a fractional mtime, ids too
  // large for octal, and a global header (which must not leak into the entries).
  pax: `${open('PAX_FORMAT', ", pax_headers={'comment': 'global', 'uid': '77'}")}
add(tf, './', tarfile.DIRTYPE, mode=0o755)
add(tf, 'etc/', tarfile.DIRTYPE, mode=0o755)
add(tf, 'etc/hosts', data=b'127.0.0.1 localhost\\n', mode=0o644, uid=1, gid=2)
add(tf, '${LONG_DIR}/file.txt', data=b'x' * 1000, mode=0o4755, mtime=1700000000.123456)
add(tf, 'bin/link', tarfile.SYMTYPE, linkname='${LONG_TARGET}', mode=0o777)
add(tf, 'etc/hosts.hard', tarfile.LNKTYPE, linkname='./etc/hosts')
add(tf, 'null', tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
add(tf, 'sda', tarfile.BLKTYPE, devmajor=8, devminor=16, mode=0o660)
add(tf, 'pipe', tarfile.FIFOTYPE, mode=0o600)
add(tf, 'big-uid', data=b'u', uid=3000000, gid=4000000)
add(tf, 'xattrs', data=b'hi', pax_headers={
    'SCHILY.xattr.user.foo': 'bar',
    'LIBARCHIVE.xattr.user.lib%20name': base64.b64encode(b'\\x00\\x01binary').decode(),
})
add(tf, 'contiguous', tarfile.CONTTYPE, data=b'c' * 600)
tf.close()`,
  gnu: `${open('GNU_FORMAT')}
add(tf, '${LONG_DIR}/gnu-file', data=b'gnu', uid=10000000, gid=20000000, mtime=-1000)
add(tf, 'gnu-link', tarfile.SYMTYPE, linkname='${LONG_TARGET}')
add(tf, 'gnu-hard', tarfile.LNKTYPE, linkname='${LONG_DIR}/gnu-file')
tf.close()`,
  ustar: `${open('USTAR_FORMAT')}add(tf, '${USTAR_NAME}', data=b'u')\ntf.close()`,
  paths: `${open('PAX_FORMAT')}
add(tf, '/abs/file', data=b'1')
add(tf, './a/./b//c/', tarfile.DIRTYPE)
add(tf, 'a/x/../y', data=b'2')
add(tf, 'hard', tarfile.LNKTYPE, linkname='/a/x/../y')
tf.close()`,
  oldStyle: `${open('GNU_FORMAT')}
add(tf, 'olddir/', tarfile.AREGTYPE)
add(tf, 'oldfile', tarfile.AREGTYPE, data=b'z')
tf.close()`,
  escape: `${open('PAX_FORMAT')}add(tf, '../evil', data=b'x')\ntf.close()`,
  escapeInner: `${open('PAX_FORMAT')}add(tf, 'a/../../evil', data=b'x')\ntf.close()`,
  escapePax: `${open('PAX_FORMAT')}add(tf, 'fine', data=b'x', pax_headers={'path': 'x/../../../etc/passwd'})\ntf.close()`,
  escapeHardlink: `${open('PAX_FORMAT')}add(tf, 'link', tarfile.LNKTYPE, linkname='../../etc/shadow')\ntf.close()`,
  volume: `${open('GNU_FORMAT')}add(tf, 'vol', b'V')\ntf.close()`,
  hugeUid: `${open('GNU_FORMAT')}add(tf, 'f', data=b'x', uid=2**32)\ntf.close()`,
  badXattr: `${open('PAX_FORMAT')}add(tf, 'f', data=b'x', pax_headers={'SCHILY.xattr.nonamespace': 'v'})\ntf.close()`,
  rootFile: `${open('PAX_FORMAT')}add(tf, './', data=b'x')\ntf.close()`,
  latin1: `${open('GNU_FORMAT', ", encoding='latin-1'")}add(tf, 'caf\\xe9', data=b'x')\ntf.close()`,
});
const PAX_TAR = TARS.pax;

function parse(chunks: Buffer[]): ArchiveEntry[] {
  const entries: ArchiveEntry[] = [];
  const parser = new TarParser((entry) => entries.push(entry));
  for (const chunk of chunks) parser.write(chunk);
  parser.end();
  return entries;
}

function parseTar(tar: Buffer): ArchiveEntry[] {
  return parse([tar]);
}

function rejects(tar: Buffer, pattern: RegExp): void {
  assert.throws(
    () => parseTar(tar),
    (err: unknown) => err instanceof InvalidArgumentError && pattern.test(err.message),
  );
}

function summary(entry: ArchiveEntry): unknown {
  const { path, type, mode, uid, gid, size, mtimeMs, linkTarget, devMajor, devMinor } = entry;
  return { path, type, mode, uid, gid, size, mtimeMs, linkTarget, devMajor, devMinor, xattrs: Object.keys(entry.xattrs) };
}

const T = 1700000000000;
const BASE = { uid: 0, gid: 0, size: 0, mtimeMs: T, linkTarget: '', devMajor: 0, devMinor: 0, xattrs: [] };

describe('TarParser', () => {
  it('reads a PAX tarball: every entry type, long names, xattrs, fractional mtime, large ids', () => {
    const entries = parseTar(PAX_TAR);
    assert.deepEqual(entries.map(summary), [
      { ...BASE, path: '.', type: 'dir', mode: 0o755 },
      { ...BASE, path: 'etc', type: 'dir', mode: 0o755 },
      { ...BASE, path: 'etc/hosts', type: 'file', mode: 0o644, uid: 1, gid: 2, size: 20 },
      { ...BASE, path: `${LONG_DIR}/file.txt`, type: 'file', mode: 0o4755, size: 1000, mtimeMs: T + 123 },
      { ...BASE, path: 'bin/link', type: 'symlink', mode: 0o777, linkTarget: LONG_TARGET },
      { ...BASE, path: 'etc/hosts.hard', type: 'hardlink', mode: 0o644, linkTarget: 'etc/hosts' },
      { ...BASE, path: 'null', type: 'char', mode: 0o666, devMajor: 1, devMinor: 3 },
      { ...BASE, path: 'sda', type: 'block', mode: 0o660, devMajor: 8, devMinor: 16 },
      { ...BASE, path: 'pipe', type: 'fifo', mode: 0o600 },
      { ...BASE, path: 'big-uid', type: 'file', mode: 0o644, uid: 3000000, gid: 4000000, size: 1 },
      { ...BASE, path: 'xattrs', type: 'file', mode: 0o644, size: 2, xattrs: ['user.foo', 'user.lib name'] },
      { ...BASE, path: 'contiguous', type: 'file', mode: 0o644, size: 600 },
    ]);
    const xattrs = entries.find((e) => e.path === 'xattrs')!.xattrs;
    assert.deepEqual(xattrs['user.foo'], Buffer.from('bar'));
    assert.deepEqual(xattrs['user.lib name'], Buffer.from('\x00\x01binary', 'latin1'));
  });

  it('records where each file’s data lies in the stream', () => {
    const files = parseTar(PAX_TAR).filter((e) => e.type === 'file');
    const data = (name: string) => {
      const entry = files.find((e) => e.path === name)!;
      return PAX_TAR.subarray(entry.dataOffset, entry.dataOffset + entry.size).toString();
    };
    assert.equal(data('etc/hosts'), '127.0.0.1 localhost\n');
    assert.equal(data(`${LONG_DIR}/file.txt`), 'x'.repeat(1000));
    assert.equal(data('contiguous'), 'c'.repeat(600));
    for (const file of files) assert.equal(file.dataOffset % 512, 0);
  });

  it('gives the same entries whatever the chunk boundaries (every two-way split, random splits)', () => {
    const expected = parseTar(PAX_TAR);
    for (let cut = 0; cut <= PAX_TAR.length; cut++) {
      assert.deepEqual(parse([PAX_TAR.subarray(0, cut), PAX_TAR.subarray(cut)]), expected, `split at ${cut}`);
    }
    for (let seed = 1; seed <= 50; seed++) {
      assert.deepEqual(parse(randomChunks(PAX_TAR, 1 + (seed % 7) * 300, seed)), expected, `seed ${seed}`);
    }
    assert.deepEqual(parse(randomChunks(PAX_TAR, 1, 1)), expected, 'one byte at a time');
  });

  it('reads GNU tarballs: long names (L), long links (K), base-256 numbers', () => {
    assert.ok(TARS.gnu.includes('././@LongLink'), 'python wrote GNU long-name entries');
    assert.deepEqual(parseTar(TARS.gnu).map(summary), [
      { ...BASE, path: `${LONG_DIR}/gnu-file`, type: 'file', mode: 0o644, uid: 10000000, gid: 20000000, size: 3, mtimeMs: -1000000 },
      { ...BASE, path: 'gnu-link', type: 'symlink', mode: 0o644, linkTarget: LONG_TARGET },
      { ...BASE, path: 'gnu-hard', type: 'hardlink', mode: 0o644, linkTarget: `${LONG_DIR}/gnu-file` },
    ]);
  });

  it('joins the ustar name prefix', () => {
    assert.deepEqual(parseTar(TARS.ustar).map((e) => e.path), [USTAR_NAME]);
  });

  it('normalises paths: leading ./ and /, dot and empty components, inner ..', () => {
    assert.deepEqual(parseTar(TARS.paths).map((e) => [e.path, e.linkTarget]), [
      ['abs/file', ''],
      ['a/b/c', ''],
      ['a/y', ''],
      ['hard', 'a/y'],
    ]);
  });

  it('treats an old-style regular entry with a trailing slash as a directory', () => {
    assert.deepEqual(parseTar(TARS.oldStyle).map((e) => [e.path, e.type]), [
      ['olddir', 'dir'],
      ['oldfile', 'file'],
    ]);
  });

  it('refuses paths and hardlink targets that escape the layer root', () => {
    rejects(TARS.escape, /"\.\.\/evil": path escapes the layer root/);
    rejects(TARS.escapeInner, /path escapes the layer root/);
    rejects(TARS.escapePax, /path escapes the layer root/);
    rejects(TARS.escapeHardlink, /hardlink target escapes the layer root/);
  });

  it('refuses GNU sparse files, both GNU (S) and PAX (GNU.sparse.*) forms, as written by GNU tar', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'clip-sparse-'));
    try {
      const file = path.join(dir, 'sparse.img');
      writeFileSync(file, '');
      execFileSync('truncate', ['-s', '4M', file]);
      execFileSync('dd', ['if=/dev/urandom', `of=${file}`, 'bs=4096', 'count=1', 'seek=100', 'conv=notrunc'], { stdio: 'ignore' });
      for (const format of ['gnu', 'pax']) {
        const tar = execFileSync('tar', ['--sparse', `--format=${format}`, '-C', dir, '-cf', '-', 'sparse.img'], { maxBuffer: 1 << 26 });
        rejects(tar, /sparse files are not supported/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a header whose checksum does not match', () => {
    const name = Buffer.from(PAX_TAR);
    name[0] ^= 0x01; // one bit of the first header's name
    rejects(name, /checksum mismatch/);
    const field = Buffer.from(PAX_TAR);
    field[148] = field[148] === 0x30 ? 0x31 : 0x30;
    rejects(field, /checksum mismatch/);
  });

  it('refuses unknown entry types, ids beyond 32 bits, bad xattr names, non-UTF-8 names and truncated streams', () => {
    rejects(TARS.volume, /unsupported entry type "V"/);
    rejects(TARS.hugeUid, /uid 4294967296 does not fit in 32 bits/);
    rejects(TARS.badXattr, /xattr name "nonamespace" is not "namespace.name"/);
    rejects(TARS.rootFile, /file entry for the layer root/);
    rejects(TARS.latin1, /not valid UTF-8/);
    const entries = parseTar(PAX_TAR);
    const last = entries[entries.length - 1];
    rejects(PAX_TAR.subarray(0, last.dataOffset + 100), /unexpected end of data/);
    rejects(PAX_TAR.subarray(0, last.dataOffset - 100), /unexpected end of data/);
  });

  it('accepts a stream that ends without the end-of-archive blocks, and ignores what follows them', () => {
    const entries = parseTar(PAX_TAR);
    const last = entries[entries.length - 1];
    const end = last.dataOffset + 1024; // 600 bytes of data padded to 1024
    assert.deepEqual(parseTar(PAX_TAR.subarray(0, end)), entries);
    const trailing = Buffer.concat([PAX_TAR, Buffer.from('not a tar header at all'.repeat(40))]);
    assert.deepEqual(parseTar(trailing), entries);
    // A zero block followed by a real header is corrupt, as Go's archive/tar says.
    const early = Buffer.concat([PAX_TAR.subarray(0, end), Buffer.alloc(512), PAX_TAR.subarray(0, 1024)]);
    rejects(early, /data after an end-of-archive block/);
  });

  it('survives random corruption with InvalidArgumentError or a result, never anything else', () => {
    const headers: number[] = [];
    for (let at = 0; at < PAX_TAR.length; at += 512) if (PAX_TAR.toString('latin1', at + 257, at + 262) === 'ustar') headers.push(at);
    const next = prng(7);
    const attempt = (tar: Buffer) => {
      try {
        parseTar(tar);
      } catch (err) {
        assert.ok(err instanceof InvalidArgumentError, String(err));
      }
    };
    for (let round = 0; round < 1000; round++) {
      const tar = Buffer.from(PAX_TAR);
      // Change header fields and fix the checksum, so the damage reaches the field decoders.
      const at = headers[next() % headers.length];
      for (let i = 0; i < 1 + (next() % 3); i++) {
        const field = next() % 512;
        if (field < 148 || field >= 156) tar[at + field] = next() & 0xff;
      }
      let sum = 8 * 0x20;
      for (let i = 0; i < 512; i++) if (i < 148 || i >= 156) sum += tar[at + i];
      tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, at + 148, 'latin1');
      attempt(tar);
      // And plain random damage anywhere.
      const anywhere = Buffer.from(PAX_TAR);
      anywhere[next() % anywhere.length] = next() & 0xff;
      attempt(anywhere);
    }
  });
});
