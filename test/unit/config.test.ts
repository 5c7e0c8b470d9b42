import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_ARCHIVE_LIMITS } from '../../src/archive';
import { DEFAULT_CONFIG, diskShareBytes, parseConfigText, parseDiskShare, parseDuration, resolveConfig } from '../../src/daemon/config';
import { DEFAULT_INDEX_LIMITS } from '../../src/indexer';
import { ConfigError, InvalidArgumentError } from '../../src/errors';
import { REPO_ROOT } from '../helpers/processes';

describe('daemon config', () => {
  it('defaults to /var/lib/clip and /run/clip/clip.sock', () => {
    assert.deepEqual(resolveConfig(), DEFAULT_CONFIG);
    assert.equal(DEFAULT_CONFIG.root, '/var/lib/clip');
    assert.equal(DEFAULT_CONFIG.address, '/run/clip/clip.sock');
  });

  it('lets the command line win over the file', () => {
    const file = parseConfigText('root = "/srv/clip"\nlog_level = "debug"\n[lazy]\nspan_size = "1MiB"\n', 'test.toml');
    const config = resolveConfig(file, { root: '/other', address: undefined });
    assert.equal(config.root, '/other');
    assert.equal(config.address, '/run/clip/clip.sock');
    assert.equal(config.logLevel, 'debug');
    assert.equal(config.logFormat, 'text');
    assert.equal(resolveConfig(parseConfigText('log_format = "json"\n', 'j.toml')).logFormat, 'json');
    assert.equal(config.lazy.spanSize, 1024 * 1024);
    assert.equal(config.lazy.backgroundFetch, true, 'defaults kept in a section the file touches');
  });

  it('reads sections, sizes, seconds and lists', () => {
    const config = resolveConfig(
      parseConfigText(
        '[lazy]\nenabled = false\narchive_store_max_size = 2048\nread_timeout_seconds = 2.5\n[registry]\nplain_http = true\nhosts_dir = ""\n' +
          'min_transfer_rate = "64KiB"\ntransfer_window_seconds = 10\n',
        'x.toml',
      ),
    );
    assert.equal(config.lazy.enabled, false);
    assert.equal(config.lazy.archiveStoreMaxBytes, 2048);
    assert.equal(config.lazy.readTimeoutMs, 2500);
    assert.equal(config.registry.plainHttp, true);
    assert.equal(config.registry.minTransferRate, 64 * 1024);
    assert.equal(config.registry.transferWindowMs, 10_000);
    assert.deepEqual(config.registry.hostsDirs, []);
  });

  it('reads hosts_dir as a ":"-separated list or an array, defaulting to containerd 2.x\'s config_path', () => {
    assert.deepEqual(DEFAULT_CONFIG.registry.hostsDirs, ['/etc/containerd/certs.d', '/etc/docker/certs.d']);
    const dirs = (text: string): string[] => resolveConfig(parseConfigText(`[registry]\nhosts_dir = ${text}\n`, 'x.toml')).registry.hostsDirs;
    assert.deepEqual(dirs('"/a/certs.d:/b//c/"'), ['/a/certs.d', '/b/c/']);
    assert.deepEqual(dirs('"/only"'), ['/only']);
    assert.deepEqual(dirs('["/x", "/y"]'), ['/x', '/y']);
    assert.deepEqual(dirs('[]'), []);
    for (const bad of ['"relative:/abs"', '["/x", 3]', '5']) {
      assert.throws(() => dirs(bad), /hosts_dir must be absolute paths/, bad);
    }
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
    ['log_format = "xml"', 'bad log format'],
    ['[lazy]\nspan_size = "4 parsecs"', 'bad size'],
    ['[lazy]\nenabled = "yes"', 'non-boolean flag'],
    ['[registry]\nplain_http = ["host"]', 'non-boolean plain_http'],
    ['[registry]\nmin_transfer_rate = 0', 'zero transfer rate'],
    ['[registry]\ntransfer_window_seconds = 0', 'zero transfer window'],
    ['[lazy]\nbogus = 1', 'unknown key in a section'],
    ['[limits]\nmax_entries = 0', 'zero limit'],
    ['[limits]\nmax_zstd_ratio = 2.5', 'fractional limit'],
  ] as const) {
    it(`rejects a config with a ${why}`, () => {
      assert.throws(() => parseConfigText(text, 'bad.toml'), InvalidArgumentError);
    });
  }

  it('reads [limits] into the IndexLimits the indexer takes, with the same defaults', () => {
    const { maxArchiveBytes, maxPublishedArchiveBytes, maxStartupBundleBytes, ...indexLimits } = DEFAULT_CONFIG.limits;
    assert.deepEqual(indexLimits, DEFAULT_INDEX_LIMITS);
    assert.equal(maxArchiveBytes, DEFAULT_ARCHIVE_LIMITS.maxBytes);
    assert.equal(maxStartupBundleBytes, 256 * 1024 * 1024);
    assert.equal(maxPublishedArchiveBytes, 64 * 1024 * 1024);
    const config = resolveConfig(parseConfigText('[limits]\nmax_entries = 300000\nmax_span_size = "32MiB"\nmax_layer_size = "8GiB"\n', 'l.toml'));
    assert.equal(config.limits.maxEntries, 300_000);
    assert.equal(config.limits.maxSpanBytes, 32 << 20);
    assert.equal(config.limits.maxLayerBytes, 8 * 1024 ** 3);
    assert.throws(
      () => resolveConfig(parseConfigText('[lazy]\nspan_size = "32MiB"\n', 'l.toml')),
      /^InvalidArgumentError: limits\.max_span_size \(16777216 bytes\) must be at least lazy\.span_size \(33554432 bytes\)$/,
    );
  });

  it('reads [cache] bounds as sizes or shares of the filesystem, and the grace period as a duration', () => {
    assert.deepEqual(DEFAULT_CONFIG.cache, { maxSize: { percent: 20 }, minFree: { percent: 20 }, gcGraceMs: 3_600_000 });
    const config = resolveConfig(parseConfigText('[cache]\nmax_size = "10GiB"\nmin_free = "12.5%"\ngc_grace = "90s"\n', 'c.toml'));
    assert.deepEqual(config.cache, { maxSize: { bytes: 10 * 1024 ** 3 }, minFree: { percent: 12.5 }, gcGraceMs: 90_000 });
    assert.deepEqual(parseDiskShare(0), { bytes: 0 });
    assert.deepEqual(parseDiskShare(' 20 % '), { percent: 20 });
    assert.equal(diskShareBytes({ percent: 20 }, 1000), 200);
    assert.equal(diskShareBytes({ bytes: 7 }, 1000), 7);
    assert.equal(parseDuration(2), 2000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('0s'), 0);
    for (const bad of ['101%', '-5%', 'lots', '%']) assert.throws(() => parseDiskShare(bad), InvalidArgumentError, bad);
    for (const bad of ['1 week', '-1s', 'h']) assert.throws(() => parseDuration(bad), InvalidArgumentError, bad);
    assert.throws(() => parseConfigText('[cache]\nmax_size = "big"\n', 'c.toml'), /c\.toml:2: cache\.max_size must be a size such as "10GiB" or a share/);
    assert.throws(() => parseConfigText('[cache]\ngc_grace = "soon"\n', 'c.toml'), /gc_grace must be a duration/);
  });

  it('rejects relative paths', () => {
    assert.throws(() => resolveConfig({ root: 'relative/root' }), /root must be an absolute path/);
    assert.throws(() => resolveConfig({ address: 'clip.sock' }), /address must be an absolute path/);
  });

  it('auto_publish needs a publish_key', () => {
    assert.equal(DEFAULT_CONFIG.lazy.autoPublish, false);
    assert.throws(
      () => resolveConfig(parseConfigText('[lazy]\nauto_publish = true\n', 'c.toml')),
      (err: unknown) => err instanceof ConfigError && /\[lazy\] auto_publish = true needs \[lazy\] publish_key/.test((err as Error).message),
    );
    const config = resolveConfig(parseConfigText('[lazy]\nauto_publish = true\npublish_key = "/etc/clip/keys/node.pem"\n', 'c.toml'));
    assert.equal(config.lazy.autoPublish, true);
    assert.equal(config.lazy.publishKey, '/etc/clip/keys/node.pem');
    assert.throws(() => parseConfigText('[lazy]\npublish_key = "node.pem"\n', 'c.toml'), /publish_key must be/);
  });
});
