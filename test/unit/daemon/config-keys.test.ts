import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parseConfigText } from '../../../src/daemon/config';
import { editDistance, locateKey, nearestName } from '../../../src/daemon/config-keys';
import { prepareRoot } from '../../../src/daemon/root-dir';
import { ConfigError } from '../../../src/errors';
import { tempDir } from '../../helpers/processes';

const KNOWN = ['root', 'log_level', 'lazy.span_size', 'lazy.enabled', 'registry.hosts_dir', 'registry.plain_http'];

describe('config file help', () => {
  it('measures edit distance', () => {
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('span_size', 'span_size'), 0);
    assert.equal(editDistance('span_sise', 'span_size'), 1);
    assert.equal(editDistance('kitten', 'sitting'), 3);
  });

  it('suggests the setting a typo or a misplaced key meant, and nothing for a stranger', () => {
    assert.equal(nearestName('lazy.span_sise', KNOWN), 'lazy.span_size');
    assert.equal(nearestName('lazy.spansize', KNOWN), 'lazy.span_size');
    assert.equal(nearestName('span_size', KNOWN), 'lazy.span_size', 'right key, wrong section');
    assert.equal(nearestName('registry.hosts_dirs', KNOWN), 'registry.hosts_dir');
    assert.equal(nearestName('rot', KNOWN), 'root');
    assert.equal(nearestName('metrics.address', KNOWN), undefined);
    assert.equal(nearestName('zzz', KNOWN), undefined);
  });

  it('finds the line a key is set on, under its table, in the forms TOML allows', () => {
    const text = ['# comment', 'root = "/x"', '', '[lazy]', '  span_size = "1MiB"', '"enabled" = true', '[ registry ]', 'plain_http=true', 'lazy.enabled = 1'].join('\r\n');
    assert.equal(locateKey(text, 'root'), 2);
    assert.equal(locateKey(text, 'lazy.span_size'), 5);
    assert.equal(locateKey(text, 'lazy.enabled'), 6);
    assert.equal(locateKey(text, 'registry.plain_http'), 8);
    assert.equal(locateKey(text, 'registry.lazy.enabled'), 9, 'a dotted key inside a table');
    assert.equal(locateKey(text, 'span_size'), undefined, 'not at the top level');
  });

  it('puts the file, line and a suggestion in ConfigErrors', () => {
    assert.throws(() => parseConfigText('\n[lazy]\nspan_sise = 1\n', 'c.toml'), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, 'config c.toml:3: unknown setting [lazy] span_sise (did you mean [lazy] span_size?)');
      return true;
    });
    assert.throws(() => parseConfigText('[server]\nlisten = "x"\n', 'c.toml'), { message: /^config c\.toml:2: unknown setting \[server\] listen \(see config\/clip\.toml for the settings\)$/ });
    assert.throws(() => parseConfigText('[lazy]\naddress = "/x"\n', 'c.toml'), /unknown setting \[lazy\] address \(did you mean address\?\)$/);
    assert.throws(() => parseConfigText('a = 1\nroot = \n', 'c.toml'), { message: /^config c\.toml:2:8: invalid TOML: / });
    assert.throws(() => parseConfigText('[lazy]\nenabled = "yes"\n', 'c.toml'), { message: /^config c\.toml:2: lazy\.enabled must be true or false/ });
  });
});

describe('root directory checks', () => {
  it('refuses roots on /proc and /sys, also through a symlink, without creating anything', async () => {
    const dir = await tempDir('root-check');
    try {
      await fsp.symlink('/proc', path.join(dir, 'link'));
      for (const root of ['/proc/x', '/sys', '/proc/../proc/self/x', path.join(dir, 'link', 'clip')]) {
        await assert.rejects(prepareRoot(root), (err: Error) => err instanceof ConfigError && /is on the kernel's \/(proc|sys) filesystem/.test(err.message), root);
      }
      await assert.rejects(prepareRoot(path.join(dir, 'link-less', '..', 'link', 'x')), ConfigError);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('creates a writable root with mode 0700, and refuses one that cannot be written', async () => {
    const dir = await tempDir('root-check');
    try {
      const root = path.join(dir, 'a', 'root');
      await prepareRoot(root);
      assert.equal((await fsp.stat(root)).mode & 0o777, 0o700);
      assert.deepEqual(await fsp.readdir(root), [], 'the write probe is removed');
      await fsp.writeFile(path.join(dir, 'file'), '');
      await assert.rejects(prepareRoot(path.join(dir, 'file', 'root')), (err: Error) => err instanceof ConfigError && /is not writable \(.*ENOTDIR/.test(err.message));
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});
