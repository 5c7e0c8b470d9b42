import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NoMatchingPlatformError, formatPlatform, hostPlatform, normalizePlatform, parsePlatform, platformRank, selectPlatformEntry } from '../../../src/registry';

interface Entry {
  name: string;
  platform?: { os: string; architecture: string; variant?: string };
}
const entry = (name: string, os: string, architecture: string, variant?: string): Entry => ({ name, platform: { os, architecture, variant } });

describe('platforms', () => {
  it('maps Node architectures to OCI names', () => {
    assert.deepEqual(hostPlatform('x64'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(hostPlatform('arm64'), { os: 'linux', architecture: 'arm64' });
    assert.deepEqual(hostPlatform('arm', '7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(hostPlatform('arm', '6'), { os: 'linux', architecture: 'arm', variant: 'v6' });
    assert.deepEqual(hostPlatform('ia32'), { os: 'linux', architecture: '386' });
    assert.deepEqual(hostPlatform('s390x'), { os: 'linux', architecture: 's390x' });
    assert.equal(hostPlatform().os, 'linux');
  });

  it('normalises like containerd', () => {
    assert.deepEqual(normalizePlatform({ os: 'Linux', architecture: 'x86_64' }), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'aarch64', variant: 'v8' }), { os: 'linux', architecture: 'arm64' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm' }), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'armhf' }), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'armel' }), { os: 'linux', architecture: 'arm', variant: 'v6' });
    assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'amd64', variant: 'v1' }), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(parsePlatform('linux/arm/7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.equal(formatPlatform(parsePlatform('linux/arm64/v8')), 'linux/arm64');
    assert.throws(() => parsePlatform('amd64'), /os\/architecture/);
  });

  it('ranks exact matches before older compatible variants', () => {
    const v7 = { os: 'linux', architecture: 'arm', variant: 'v7' };
    assert.equal(platformRank(v7, v7), 0);
    assert.equal(platformRank(v7, { os: 'linux', architecture: 'arm', variant: 'v6' }), 1);
    assert.equal(platformRank(v7, { os: 'linux', architecture: 'arm', variant: 'v8' }), undefined);
    assert.equal(platformRank({ os: 'linux', architecture: 'arm', variant: 'v6' }, v7), undefined);
    assert.equal(platformRank({ os: 'linux', architecture: 'amd64' }, { os: 'linux', architecture: 'arm64' }), undefined);
    assert.equal(platformRank({ os: 'linux', architecture: 'amd64' }, { os: 'windows', architecture: 'amd64' }), undefined);
    assert.equal(platformRank({ os: 'linux', architecture: 'amd64', variant: 'v3' }, { os: 'linux', architecture: 'amd64' }), 2);
  });

  it('selects the index entry for the wanted platform', () => {
    const index = [
      entry('win', 'windows', 'amd64'),
      entry('amd64', 'linux', 'amd64'),
      entry('armv6', 'linux', 'arm', 'v6'),
      entry('armv7', 'linux', 'arm', 'v7'),
      entry('arm64', 'linux', 'arm64', 'v8'),
      entry('attestation', 'unknown', 'unknown'),
    ];
    assert.equal(selectPlatformEntry(index, { os: 'linux', architecture: 'amd64' }).name, 'amd64');
    assert.equal(selectPlatformEntry(index, { os: 'linux', architecture: 'arm64' }).name, 'arm64');
    assert.equal(selectPlatformEntry(index, { os: 'linux', architecture: 'arm', variant: 'v7' }).name, 'armv7');
    assert.equal(selectPlatformEntry(index, { os: 'linux', architecture: 'arm', variant: 'v6' }).name, 'armv6');
    assert.equal(selectPlatformEntry(index.filter((e) => e.name !== 'armv7'), { os: 'linux', architecture: 'arm', variant: 'v7' }).name, 'armv6');
    assert.equal(selectPlatformEntry<Entry>([{ name: 'none' }, ...index], { os: 'linux', architecture: 'amd64' }).name, 'amd64');
    assert.equal(selectPlatformEntry<Entry>([{ name: 'none' }], { os: 'linux', architecture: 'amd64' }).name, 'none');
    assert.throws(
      () => selectPlatformEntry(index, { os: 'linux', architecture: 'riscv64' }),
      (err: Error) => err instanceof NoMatchingPlatformError && /linux\/riscv64/.test(err.message) && /linux\/arm\/v7/.test(err.message),
    );
  });
});
