import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../../src/errors';
import { normalizeEntryPath } from '../../../src/indexer/entry-path';
import { isUnderRuntimeMount } from '../../../src/indexer/runtime-mounts';

describe('normalizeEntryPath', () => {
  it('makes paths relative and canonical', () => {
    const cases: Array<[string, string]> = [
      ['usr/bin/env', 'usr/bin/env'],
      ['./usr/bin/', 'usr/bin'],
      ['/etc//passwd', 'etc/passwd'],
      ['./', ''],
      ['/', ''],
      ['a/./b/../c', 'a/c'],
      ['a/b/../..', ''],
      ['..a/b..', '..a/b..'],
      ['.wh..wh..opq', '.wh..wh..opq'],
    ];
    for (const [raw, expected] of cases) assert.equal(normalizeEntryPath(raw, 'path'), expected, raw);
  });

  it('refuses paths that climb out of the layer root, and NUL bytes', () => {
    for (const raw of ['..', '../x', './../x', '/../x', 'a/../../x', 'a/b/../../../x', 'a/../..']) {
      assert.throws(() => normalizeEntryPath(raw, 'path'), (err: unknown) => err instanceof InvalidArgumentError && /escapes the layer root/.test(err.message), raw);
    }
    assert.throws(() => normalizeEntryPath('a\0b', 'path'), /NUL/);
  });
});

describe('isUnderRuntimeMount', () => {
  it('is true strictly beneath top-level proc, sys and dev', () => {
    for (const p of ['proc/1', 'sys/kernel/x', 'dev/null', 'dev/.wh..wh..opq']) assert.equal(isUnderRuntimeMount(p), true, p);
    for (const p of ['proc', 'sys', 'dev', '', 'devices/x', 'usr/dev/null', '.wh.dev', 'system/x']) assert.equal(isUnderRuntimeMount(p), false, p);
  });
});
