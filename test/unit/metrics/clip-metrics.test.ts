import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ClipMetrics } from '../../../src/metrics/clip-metrics';

function line(text: string, prefix: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith(prefix));
}

test('the exposition carries what the parts recorded, with bounded labels', async () => {
  const metrics = new ClipMetrics({ version: '1.2.3', commit: 'abc' });
  try {
    metrics.setSources({
      archiveStoreBytes: async () => 1234,
      contentCacheBytes: async () => 5678,
      mountedLayers: () => 2,
      readsWaitingLongerThan: (ms) => (ms === 10_000 ? 1 : 99),
    });
    metrics.fetched('foreground', 1000, 1);
    metrics.fetched('background', 500, 0);
    metrics.cacheLookup(true);
    metrics.cacheLookup(false);
    metrics.registryRequest(206, 0.02);
    metrics.registryRequest(777, 0.02);
    metrics.registryRequest('timeout', 30);
    metrics.prepared('fallback', 'tls');
    metrics.prepared('local', 'tls'); // a reason only goes with a fallback
    metrics.layerIndexed(4096, 0.5);
    const { body, contentType } = await metrics.exposition();
    assert.match(contentType, /^text\/plain/);
    assert.equal(line(body, 'clip_build_info{'), 'clip_build_info{version="1.2.3",commit="abc"} 1');
    assert.equal(line(body, 'clip_fetched_bytes_total{kind="foreground"}'), 'clip_fetched_bytes_total{kind="foreground"} 1000');
    assert.equal(line(body, 'clip_fetched_spans_total{kind="background"}'), 'clip_fetched_spans_total{kind="background"} 0');
    assert.equal(line(body, 'clip_content_cache_misses_total'), 'clip_content_cache_misses_total 1');
    assert.match(line(body, 'clip_content_cache_hits_total ') ?? '', /^clip_content_cache_hits_total [1-9]/);
    assert.equal(line(body, 'clip_registry_responses_total{status="206"}'), 'clip_registry_responses_total{status="206"} 1');
    assert.equal(line(body, 'clip_registry_responses_total{status="7'), undefined);
    assert.equal(line(body, 'clip_registry_responses_total{status="other"}'), 'clip_registry_responses_total{status="other"} 1');
    assert.equal(line(body, 'clip_registry_responses_total{status="timeout"}'), 'clip_registry_responses_total{status="timeout"} 1');
    assert.equal(line(body, 'clip_prepare_total{outcome="fallback",reason="tls"}'), 'clip_prepare_total{outcome="fallback",reason="tls"} 1');
    assert.equal(line(body, 'clip_prepare_total{outcome="local",reason=""}'), 'clip_prepare_total{outcome="local",reason=""} 1');
    assert.equal(line(body, 'clip_prepare_total{outcome="fallback",reason="auth"}'), 'clip_prepare_total{outcome="fallback",reason="auth"} 0');
    assert.equal(line(body, 'clip_index_bytes_total'), 'clip_index_bytes_total 4096');
    assert.equal(line(body, 'clip_archive_store_bytes'), 'clip_archive_store_bytes 1234');
    assert.equal(line(body, 'clip_content_cache_bytes'), 'clip_content_cache_bytes 5678');
    assert.equal(line(body, 'clip_mounted_layers'), 'clip_mounted_layers 2');
    assert.equal(line(body, 'clip_fuse_hung_reads'), 'clip_fuse_hung_reads 1');
    assert.match(body, /# TYPE clip_fuse_operation_duration_seconds histogram/);
    assert.match(body, /clip_fuse_operation_duration_seconds_bucket\{operation="read",le="\+Inf"\} \d+/);
  } finally {
    metrics.close();
  }
});
