import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatBytes, formatDuration, formatStatus } from '../../../src/cli/status-format';
import type { DaemonStatus } from '../../../src/daemon/daemon-status';

const LAYER = `sha256:${'a'.repeat(64)}`;
const OTHER = `sha256:${'b'.repeat(64)}`;

const status: DaemonStatus = {
  version: '0.1.0',
  commit: 'abc123',
  pid: 42,
  uptimeSeconds: 3725,
  configFile: '/etc/clip/clip.toml',
  root: '/var/lib/clip',
  address: '/run/clip/clip.sock',
  metrics: '127.0.0.1:9122',
  lazy: true,
  layers: [
    { digest: LAYER, images: ['r/x:1', 'r/y:2'], state: 'lazy', bytesCached: 1536, bytesTotal: 6144, mounts: ['/m/1'], startupProfile: true, archive: 'local' },
    { digest: OTHER, images: ['r/z:3'], state: 'fallback', reason: 'tls', hint: 'point [registry] hosts_dir at containerd config_path', mounts: [] },
  ],
};

test('bytes and durations read like a person would write them', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1023), '1023 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(5 * 1024 ** 3), '5.0 GiB');
  assert.equal(formatDuration(5), '5s');
  assert.equal(formatDuration(3725), '1h2m5s');
  assert.equal(formatDuration(90061), '1d1h1m1s');
});

test('the table has the daemon, one row per layer, and the fix for each fallback', () => {
  const text = formatStatus(status);
  assert.match(text, /^clip 0\.1\.0 \(commit abc123\), pid 42, up 1h2m5s\n/);
  assert.match(text, /config \/etc\/clip\/clip\.toml, root \/var\/lib\/clip, socket \/run\/clip\/clip\.sock/);
  assert.match(text, /metrics on 127\.0\.0\.1:9122/);
  const rows = text.split('\n');
  const lazy = rows.find((r) => r.startsWith('sha256:aaaaaaaaaaaa'));
  assert.ok(lazy);
  assert.match(lazy, /lazy\s+1\.5 KiB \/ 6\.0 KiB \(25%\)\s+1\s+yes\s+local\s+r\/x:1, r\/y:2$/);
  const fallback = rows.find((r) => r.startsWith('sha256:bbbbbbbbbbbb'));
  assert.match(fallback ?? '', /fallback \(tls\)\s+-\s+0\s+-\s+-\s+r\/z:3$/);
  assert.ok(rows.includes('sha256:bbbbbbbbbbbb fix: point [registry] hosts_dir at containerd config_path'));
});

test('no layers yet is said in words', () => {
  assert.match(formatStatus({ ...status, layers: [], metrics: null }), /metrics off\n\nno layers served lazily or fallen back yet\n$/);
});
