import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_CONFIG, parseConfigText, resolveConfig } from '../../src/daemon/config';
import { InvalidArgumentError } from '../../src/errors';
import { REPO_ROOT } from '../helpers/processes';

describe('daemon config', () => {
  it('defaults to /var/lib/clip and /run/clip/clip.sock', () => {
    assert.deepEqual(resolveConfig(), DEFAULT_CONFIG);
    assert.equal(DEFAULT_CONFIG.root, '/var/lib/clip');
    assert.equal(DEFAULT_CONFIG.address, '/run/clip/clip.sock');
  });

  it('lets the command line win over the file', () => {
    const file = parseConfigText('root = "/srv/clip"\nlog_level = "debug"\n', 'test.toml');
    assert.deepEqual(resolveConfig(file, { root: '/other', address: undefined }), {
      root: '/other',
      address: '/run/clip/clip.sock',
      logLevel: 'debug',
    });
  });

  it('parses the shipped default config to the built-in defaults', () => {
    const text = readFileSync(path.join(REPO_ROOT, 'config', 'clip.toml'), 'utf8');
    assert.deepEqual(resolveConfig(parseConfigText(text, 'config/clip.toml')), DEFAULT_CONFIG);
  });

  for (const [text, why] of [
    ['root = ', 'TOML syntax'],
    ['rooot = "/x"', 'unknown key'],
    ['root = 5', 'wrong type'],
    ['log_level = "loud"', 'bad level'],
  ] as const) {
    it(`rejects a config with a ${why}`, () => {
      assert.throws(() => parseConfigText(text, 'bad.toml'), InvalidArgumentError);
    });
  }

  it('rejects relative paths', () => {
    assert.throws(() => resolveConfig({ root: 'relative/root' }), /root must be an absolute path/);
    assert.throws(() => resolveConfig({ address: 'clip.sock' }), /address must be an absolute path/);
  });
});
