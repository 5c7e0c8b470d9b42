import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../../src/errors';
import { adminSocketPath, parseConfigText, resolveConfig } from '../../../src/daemon/config';
import { parseListenAddress } from '../../../src/metrics/listen-address';
import { registryStatusLabel } from '../../../src/metrics/status-label';
import { isTimeoutError } from '../../../src/registry/timeout-error';

describe('registry status label', () => {
  test('usual codes keep their number; others collapse to their class; no response is network or timeout', () => {
    assert.equal(registryStatusLabel(206), '206');
    assert.equal(registryStatusLabel(404), '404');
    assert.equal(registryStatusLabel(418), '4xx');
    assert.equal(registryStatusLabel(599), '5xx');
    assert.equal(registryStatusLabel(999), 'other');
    assert.equal(registryStatusLabel(42), 'other');
    assert.equal(registryStatusLabel(200.5), 'other');
    assert.equal(registryStatusLabel('network'), 'network');
    assert.equal(registryStatusLabel('timeout'), 'timeout');
  });

  test('a hostile registry cannot make more than a bounded set of label values', () => {
    const values = new Set<string>();
    for (let code = -1000; code < 2000; code++) values.add(registryStatusLabel(code));
    assert.ok(values.size <= 30, `${values.size} values`);
  });

  test('timeouts are told from network errors along the cause chain', () => {
    assert.equal(isTimeoutError(Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_TIMEOUT' })), true);
    assert.equal(isTimeoutError(new Error('wrapped', { cause: Object.assign(new Error('slow'), { code: 'ETIMEDOUT' }) })), true);
    assert.equal(isTimeoutError(new DOMException('t', 'TimeoutError')), true);
    assert.equal(isTimeoutError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })), false);
  });
});

describe('[metrics] address', () => {
  test('"", host:port, [v6]:port and absolute unix paths', () => {
    assert.deepEqual(parseListenAddress(''), { kind: 'off' });
    assert.deepEqual(parseListenAddress('127.0.0.1:9122'), { kind: 'tcp', host: '127.0.0.1', port: 9122 });
    assert.deepEqual(parseListenAddress('[::1]:9122'), { kind: 'tcp', host: '::1', port: 9122 });
    assert.deepEqual(parseListenAddress('localhost:0'), { kind: 'tcp', host: 'localhost', port: 0 });
    assert.deepEqual(parseListenAddress('/run/clip/metrics.sock'), { kind: 'unix', path: '/run/clip/metrics.sock' });
    for (const bad of ['9122', ':9122', '127.0.0.1:70000', 'metrics.sock', 'http://127.0.0.1:9122', '127.0.0.1:91 22']) {
      assert.throws(() => parseListenAddress(bad), /invalid listen address/, bad);
    }
  });

  test('off by default; read from the config file; a bad value names the file and line', () => {
    assert.equal(resolveConfig().metrics.address, '');
    assert.equal(resolveConfig(parseConfigText('[metrics]\naddress = "127.0.0.1:9122"\n', 'c.toml')).metrics.address, '127.0.0.1:9122');
    assert.throws(() => parseConfigText('[metrics]\naddress = "9122"\n', 'c.toml'), (err: unknown) => err instanceof ConfigError && /c\.toml:2: .*invalid listen address/.test(err.message));
    assert.throws(() => parseConfigText('[metrics]\naddres = ""\n', 'c.toml'), /did you mean \[metrics\] address\?/);
  });

  test('the admin socket sits beside the main one', () => {
    assert.equal(adminSocketPath('/run/clip/clip.sock'), '/run/clip/clip.sock.admin');
  });
});
