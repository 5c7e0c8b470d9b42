import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ArchiveEntry, EntryType } from '../../../src/archive/types';
import { InvalidArgumentError } from '../../../src/errors';
import { EntryCollector } from '../../../src/indexer/entry-collector';

let offset = 512;
function entry(path: string, type: EntryType = 'file', linkTarget = ''): ArchiveEntry {
  offset += 1024;
  const size = type === 'file' ? 100 : 0;
  return { path, type, mode: 0o644, uid: 0, gid: 0, size, mtimeMs: 0, linkTarget, devMajor: 0, devMinor: 0, xattrs: {}, dataOffset: type === 'file' ? offset : 0 };
}

function collect(entries: ArchiveEntry[]): ArchiveEntry[] {
  const collector = new EntryCollector();
  for (const e of entries) collector.add(e);
  return collector.entries;
}

const brief = (entries: ArchiveEntry[]) => entries.map((e) => `${e.path} ${e.type}${e.linkTarget ? ` -> ${e.linkTarget}` : ''}`);

describe('EntryCollector', () => {
  it('keeps proc, sys and dev and drops what is beneath them', () => {
    const kept = collect([entry('.', 'dir'), entry('proc', 'dir'), entry('proc/1', 'dir'), entry('dev', 'dir'), entry('dev/null', 'char'), entry('sys', 'dir'), entry('sys/x'), entry('devices/x')]);
    assert.deepEqual(brief(kept), ['. dir', 'proc dir', 'dev dir', 'sys dir', 'devices/x file']);
  });

  it('keeps ordinary hardlinks as they are', () => {
    const kept = collect([entry('a'), entry('b', 'hardlink', 'a'), entry('c', 'hardlink', 'b')]);
    assert.deepEqual(brief(kept), ['a file', 'b hardlink -> a', 'c hardlink -> b']);
  });

  it('re-points or replaces hardlinks to left-out entries', () => {
    const hidden = entry('dev/x');
    const kept = collect([
      hidden,
      entry('usr/one', 'hardlink', 'dev/x'), // becomes the file
      entry('usr/two', 'hardlink', 'dev/x'), // links to usr/one
      entry('dev/y', 'hardlink', 'usr/one'),
      entry('usr/three', 'hardlink', 'dev/y'), // same file again
      entry('usr/one'), // usr/one now holds another file ...
      entry('usr/four', 'hardlink', 'dev/x'), // ... so this one gets a copy (same data, its own inode)
    ]);
    assert.deepEqual(brief(kept).slice(0, 3), ['usr/one file', 'usr/two hardlink -> usr/one', 'usr/three hardlink -> usr/one']);
    assert.equal(kept[0].dataOffset, hidden.dataOffset);
    assert.deepEqual(brief(kept).slice(3), ['usr/one file', 'usr/four file']);
    assert.equal(kept[4].dataOffset, hidden.dataOffset);
  });

  it('links to a kept path of the same file when the target itself was left out', () => {
    const kept = collect([entry('etc/a'), entry('dev/b', 'hardlink', 'etc/a'), entry('usr/c', 'hardlink', 'dev/b')]);
    assert.deepEqual(brief(kept), ['etc/a file', 'usr/c hardlink -> etc/a']);
  });

  it('refuses hardlinks to nothing earlier, to a directory, or to themselves', () => {
    for (const [entries, pattern] of [
      [[entry('a', 'hardlink', 'missing')], /is not an earlier entry/],
      [[entry('d', 'dir'), entry('a', 'hardlink', 'd')], /is a directory/],
      [[entry('a'), entry('a', 'hardlink', 'a')], /is the link itself/],
    ] as const) {
      assert.throws(() => collect([...entries]), (err: unknown) => err instanceof InvalidArgumentError && pattern.test(err.message));
    }
  });
});
