import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CommanderError } from 'commander';
import { buildInfo, versionLine } from '../../../src/build-info';
import { EXIT_CODES, UsageError, exitCodeFor } from '../../../src/cli/exit-codes';
import { checkLayerFile } from '../../../src/cli/layer-file-check';
import { ConfigError, DaemonUnreachableError, InternalError, UnavailableError } from '../../../src/errors';
import { DigestMismatchError, RegistryAuthError, RegistryNotFoundError } from '../../../src/registry';
import { tempDir } from '../../helpers/processes';

const wrapped = (err: unknown): Error => new Error(`pull x: ${(err as Error).message}`, { cause: err });

describe('clip exit codes', () => {
  it('classifies errors along their cause chain', () => {
    assert.equal(exitCodeFor(new Error('boom')), EXIT_CODES.runtime);
    assert.equal(exitCodeFor(new InternalError('bug')), 1);
    assert.equal(exitCodeFor(new CommanderError(1, 'commander.unknownOption', 'x')), 2);
    assert.equal(exitCodeFor(new CommanderError(0, 'commander.helpDisplayed', '')), 0);
    assert.equal(exitCodeFor(wrapped(new UsageError('index: give an image'))), 2);
    assert.equal(exitCodeFor(wrapped(new DaemonUnreachableError('cannot reach containerd'))), 3);
    assert.equal(exitCodeFor(wrapped(new RegistryNotFoundError('404'))), 4);
    assert.equal(exitCodeFor(wrapped(new RegistryAuthError('401'))), 4);
    assert.equal(exitCodeFor(wrapped(new DigestMismatchError('mismatch'))), 4);
    assert.equal(exitCodeFor(new ConfigError('config x.toml:3: unknown setting')), 5);
  });

  it('counts socket and TLS failures under the registry, other unavailability as runtime', () => {
    const net = (code: string): Error => Object.assign(new Error(code), { code });
    for (const code of ['ECONNREFUSED', 'ENOTFOUND', 'UND_ERR_CONNECT_TIMEOUT', 'ERR_SSL_WRONG_VERSION_NUMBER', 'DEPTH_ZERO_SELF_SIGNED_CERT']) {
      assert.equal(exitCodeFor(wrapped(new UnavailableError('GET /v2/: failed', { cause: net(code) }))), 4, code);
    }
    assert.equal(exitCodeFor(new UnavailableError('busy')), 1);
    assert.equal(exitCodeFor(wrapped(net('ENOENT'))), 1);
  });
});

describe('clip --version', () => {
  it('knows the version from package.json and the commit recorded at build time', async () => {
    const root = path.join(__dirname, '..', '..', '..', '..');
    const pkg = JSON.parse(await fsp.readFile(path.join(root, 'package.json'), 'utf8')) as { version: string };
    const recorded = JSON.parse(await fsp.readFile(path.join(root, 'dist', 'build-info.json'), 'utf8')) as { commit: string };
    assert.deepEqual(buildInfo(), { version: pkg.version, commit: recorded.commit });
    assert.match(recorded.commit, /^([0-9a-f]{12}(-dirty)?|unknown)$/);
    assert.equal(versionLine(), `${pkg.version} (commit ${recorded.commit})`);
  });
});

describe('--layer-file check', () => {
  it('accepts gzip, zstd and tar (also an empty one) and refuses anything else', async () => {
    const dir = await tempDir('layer-check');
    const file = async (name: string, data: Buffer): Promise<string> => {
      await fsp.writeFile(path.join(dir, name), data);
      return path.join(dir, name);
    };
    try {
      const tar = Buffer.alloc(1024);
      tar.write('hello.txt', 0);
      tar.write('0000644\0', 100);
      tar.write('00000000000\0', 124);
      tar.write('0', 156);
      tar.write('ustar\x0000', 257);
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : tar[i]!;
      tar.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
      await checkLayerFile(await file('layer.tar', tar));
      await checkLayerFile(await file('empty.tar', Buffer.alloc(1024)));
      await checkLayerFile(await file('layer.gz', Buffer.from([0x1f, 0x8b, 0x08, 0, 0, 0])));
      await checkLayerFile(await file('layer.zst', Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0])));
      const broken = Buffer.from(tar);
      broken[0] = 0x41; // checksum no longer matches
      for (const [name, data, why] of [
        ['text', Buffer.from('not a layer\n'.repeat(100)), /does not start with a gzip or zstd header or a tar header/],
        ['broken.tar', broken, /does not start with/],
        ['short', Buffer.from('abc'), /is 3 bytes, too short for a tar/],
        ['nothing', Buffer.alloc(0), /is empty/],
      ] as const) {
        await assert.rejects(checkLayerFile(await file(name, data)), (err: Error) => err instanceof UsageError && why.test(err.message), name);
      }
      await assert.rejects(checkLayerFile(path.join(dir, 'absent')), (err: Error) => err instanceof UsageError && /ENOENT/.test(err.message));
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});
