/**
 * Metrics and `clip status` on the real containerd (CLIP_TEST_CONTAINERD): a lazy CRI pull and run shows
 * up in /metrics (fetches, FUSE operations, Prepare outcomes) and in `clip status --json`; then clip is
 * restarted with registry settings that cannot reach the (plain http) registry, and a CRI pull of another
 * image makes containerd unpack its layer itself: a fallback reason in both. Values are scraped from the
 * daemon's real endpoint; nothing is asserted about time.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { FALLBACK_REASONS } from '../../src/snapshotter/fallback-reason';
import { clipStatus, scrape, total } from '../helpers/clip-status';
import { criPull } from '../helpers/cri-run';
import { assertPulledLazily } from '../helpers/images';
import { REPO_ROOT } from '../helpers/processes';
import { CONTAINERD } from '../helpers/containerd-release';
import { runClosedStdin, useStack } from '../helpers/stack';

const TEST_TIMEOUT = 300_000;


describe(`metrics and clip status (containerd ${CONTAINERD.version})`, () => {
  // Spans are fetched when the container reads them: nothing is cached while indexing or in the background.
  const stack = useStack({
    tags: ['multilayer', 'demo'],
    criSnapshotter: 'clip',
    clipConfig: '[lazy]\nbackground_fetch = false\ncache_while_indexing = false\n[metrics]\naddress = "127.0.0.1:0"\n',
  });

  test('a lazy pull and run show in /metrics and clip status; a registry clip cannot reach shows as a fallback reason', { timeout: TEST_TIMEOUT }, async () => {
    await criPull(stack, 'multilayer');
    await assertPulledLazily(stack, 'multilayer', true, 'k8s.io');
    const run = await stack.ctr(['-n', 'k8s.io', 'run', '--rm', '--snapshotter', 'clip', stack.imageRef('multilayer'), 'metrics-hello']);
    assert.equal(run.code, 0, `ctr run: ${run.stderr}\n${await stack.diagnostics()}`);
    assert.equal(run.stdout, 'hello from clip, layer 3\n');

    const lazy = await scrape(stack);
    const layers = stack.images.multilayer!.layers;
    assert.ok(total(lazy, 'clip_prepare_total', { outcome: 'remote' }) >= layers.length, 'Prepare: every layer served lazily');
    assert.ok(total(lazy, 'clip_fetched_bytes_total', { kind: 'foreground' }) > 0, 'bytes fetched for the container');
    assert.ok(total(lazy, 'clip_fetched_spans_total') > 0, 'spans fetched');
    assert.ok(total(lazy, 'clip_fuse_operation_duration_seconds_count', { operation: 'lookup' }) > 0, 'FUSE lookups');
    assert.ok(total(lazy, 'clip_fuse_operation_duration_seconds_count', { operation: 'read' }) > 0, 'FUSE reads');
    assert.ok(total(lazy, 'clip_fuse_operation_duration_seconds_bucket', { operation: 'read', le: '+Inf' }) > 0, 'FUSE read histogram');
    assert.ok(total(lazy, 'clip_registry_responses_total', { status: '206' }) > 0, 'range requests answered 206');
    assert.ok(total(lazy, 'clip_indexed_layers_total') >= layers.length, 'layers indexed');
    assert.ok(total(lazy, 'clip_index_bytes_total') > 0, 'bytes indexed');
    assert.equal(total(lazy, 'clip_mounted_layers'), layers.length, 'every layer mounted');
    assert.ok(total(lazy, 'clip_content_cache_bytes') > 0, 'content cache bytes');
    assert.ok(total(lazy, 'clip_archive_store_bytes') > 0, 'archive store bytes');
    assert.equal(total(lazy, 'clip_fuse_hung_reads'), 0, 'no hung reads');

    const status = await clipStatus(stack);
    assert.equal(status.root, stack.clipRoot);
    assert.equal(status.configFile, stack.clipConfigFile);
    for (const l of layers) {
      const shown = status.layers.find((s) => s.digest === l.digest);
      assert.ok(shown, `clip status lists layer ${l.digest}`);
      assert.equal(shown.state, 'lazy');
      assert.ok(shown.images.includes(stack.imageRef('multilayer')), `image reference of ${l.digest}: ${shown.images.join(', ')}`);
      assert.ok(shown.mounts.length >= 1, 'mounted');
      assert.equal(shown.bytesTotal, l.uncompressed_size);
      assert.equal(shown.archive, 'local');
    }
    const cached = status.layers.filter((s) => layers.some((l) => l.digest === s.digest)).reduce((sum, s) => sum + (s.bytesCached ?? 0), 0);
    assert.ok(cached > 0, 'bytes cached for the layers the container read');

    // clip alone loses its way to the registry: https (plain_http off) and no hosts.toml for it.
    const empty = path.join(stack.state, 'no-hosts');
    await fsp.mkdir(empty, { recursive: true });
    const config = await fsp.readFile(stack.clipConfigFile, 'utf8');
    await fsp.writeFile(stack.clipConfigFile, config.replace('plain_http = true', 'plain_http = false').replace(/^hosts_dir = .*$/m, `hosts_dir = "${empty}"`));
    await stack.restartClip();
    await criPull(stack, 'demo');
    await assertPulledLazily(stack, 'demo', false, 'k8s.io');

    const fallen = await scrape(stack);
    const counts = FALLBACK_REASONS.map((reason) => [reason, total(fallen, 'clip_prepare_total', { outcome: 'fallback', reason })] as const);
    assert.ok(counts.some(([, n]) => n > 0), `a fallback reason was counted: ${JSON.stringify(counts)}`);
    assert.ok(total(fallen, 'clip_registry_responses_total', { status: 'network' }) + total(fallen, 'clip_registry_responses_total', { status: 'timeout' }) > 0, 'failed registry requests counted');
    const demo = stack.images.demo!.layers[0]!;
    const shown = (await clipStatus(stack)).layers.find((s) => s.digest === demo.digest);
    assert.ok(shown, 'clip status lists the layer containerd unpacked');
    assert.equal(shown.state, 'fallback');
    assert.ok(shown.reason && (FALLBACK_REASONS as readonly string[]).includes(shown.reason), `reason ${shown.reason}`);
    assert.equal(total(fallen, 'clip_prepare_total', { outcome: 'fallback', reason: shown.reason }) > 0, true, 'the reason status shows is counted');
    assert.ok(shown.hint, 'with what to do about it');
    assert.ok(shown.images.includes(stack.imageRef('demo')));
    console.log(`# fallback: ${shown.reason}: ${shown.hint}`);
  });

  test('clip status against a stopped daemon says so and exits 3', { timeout: TEST_TIMEOUT }, async () => {
    await stack.stopClip();
    const r = await runClosedStdin(path.join(REPO_ROOT, 'bin', 'clip'), ['status', '--address', stack.clipAddress], 30_000);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /clip is not running: no daemon listens on .*clip\.sock\.admin/);
  });
});
