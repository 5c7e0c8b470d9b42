/**
 * LayerFuse relies on internals of @cocalc/fuse-native 2.4.x (see src/fusefs/fuse-binding.ts). These tests
 * fail if an upgrade changes them, before a mount silently loses an option or the xattr size protocol.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fuse from '@cocalc/fuse-native';
import { ERANGE } from '../../../src/fusefs/errno';
import { LayerFuse, LayerOperations } from '../../../src/fusefs/fuse-binding';

type Internals = {
  _fuseOptions(): string;
  _op_getxattr(signal: (...a: unknown[]) => void, path: string, name: string, buf: Buffer, position: number): void;
  _op_listxattr(signal: (...a: unknown[]) => void, path: string, buf: Buffer): void;
  timeout: unknown;
};

const value = Buffer.from('hello world');
const ops = {
  getxattr: (_p: string, _n: string, size: number, cb: (r: number, v?: Buffer) => void) =>
    size === 0 ? cb(value.length) : size < value.length ? cb(ERANGE) : cb(value.length, value),
  listxattr: (_p: string, size: number, cb: (r: number, v?: Buffer) => void) => (size === 0 ? cb(4) : cb(4, Buffer.from('a\0b\0'))),
} as unknown as LayerOperations;

function layerFuse(): Internals {
  return new LayerFuse('/nonexistent', ops, { allowOther: true, kernelCache: true, maxRead: 131072, timeout: { default: 15_000, read: 35_000 } }, ['ro', 'use_ino']) as unknown as Internals;
}

describe('LayerFuse (fuse-native internals)', () => {
  it('finds the internals it overrides', () => {
    const proto = Fuse.prototype as unknown as Record<string, unknown>;
    for (const name of ['_fuseOptions', '_op_getxattr', '_op_listxattr']) assert.equal(typeof proto[name], 'function', name);
  });

  it('appends options fuse-native does not know to its own', () => {
    assert.equal(layerFuse()._fuseOptions(), '-oallow_other,max_read=131072,kernel_cache,ro,use_ino');
  });

  it('passes per-operation timeouts through', () => {
    assert.deepEqual(layerFuse().timeout, { default: 15_000, read: 35_000 });
  });

  it('gives the getxattr handler the caller\'s buffer size and copies only what fits', () => {
    const fuse = layerFuse();
    const answers: unknown[][] = [];
    const signal = (...a: unknown[]): void => void answers.push(a);
    const exact = Buffer.alloc(11);
    fuse._op_getxattr(signal, '/f', 'user.x', Buffer.alloc(0), 0);
    fuse._op_getxattr(signal, '/f', 'user.x', Buffer.alloc(4), 0);
    fuse._op_getxattr(signal, '/f', 'user.x', exact, 0);
    assert.deepEqual(
      answers.map((a) => a[0]),
      [11, ERANGE, 11],
    );
    assert.equal(exact.toString(), 'hello world');
    const list = Buffer.alloc(16);
    fuse._op_listxattr(signal, '/f', list);
    assert.equal(answers[3][0], 4);
    assert.equal(list.subarray(0, 4).toString(), 'a\0b\0');
  });
});
