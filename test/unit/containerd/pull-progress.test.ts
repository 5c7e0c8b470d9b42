import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PullProgress, formatBytes, summaryLine } from '../../../src/cli/pull-progress';
import type { PullResult } from '../../../src/containerd';

/** A stand-in for process.stdout that records what is written. */
function output(isTTY: boolean): NodeJS.WriteStream & { text: string } {
  const out = { isTTY, columns: 100, text: '', write(s: string) { out.text += s; return true; } };
  return out as unknown as NodeJS.WriteStream & { text: string };
}

const result: PullResult = {
  name: 'r.example/a:b',
  target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'ab'.repeat(32)}`, size: 10 },
  chainId: 'sha256:c',
  layers: [
    { digest: 'sha256:1', size: 1, outcome: 'lazy' },
    { digest: 'sha256:2', size: 1, outcome: 'lazy' },
    { digest: 'sha256:3', size: 1, outcome: 'unpacked' },
  ],
};

describe('pull progress', () => {
  it('formats sizes and the summary', () => {
    assert.equal(formatBytes(512), '512 B');
    assert.equal(formatBytes(1536), '1.5 KiB');
    assert.equal(formatBytes(128 << 20), '128.0 MiB');
    assert.equal(summaryLine(result, 2500), `pulled r.example/a:b (sha256:${'ab'.repeat(6)}) in 2.5s: 3 layers, 2 lazy, 1 unpacked`);
  });

  it('prints only the summary when stdout is not a terminal', () => {
    const out = output(false);
    const p = new PullProgress(out, 'r.example/a:b');
    p.resolved({ name: 'r.example/a:b', digest: result.target.digest, layers: [{ digest: 'sha256:1', size: 1 }] });
    p.layer(0, { state: 'done', outcome: 'lazy' });
    p.finish(result);
    assert.match(out.text, /^pulled r\.example\/a:b .*\n$/);
  });

  it('redraws one line per layer in place on a terminal', () => {
    const out = output(true);
    const p = new PullProgress(out, 'r.example/a:b');
    p.resolved({ name: 'r.example/a:b', digest: result.target.digest, platform: 'linux/amd64', layers: [{ digest: `sha256:${'1'.repeat(64)}`, size: 2 << 20 }] });
    p.layer(0, { state: 'fetching', bytes: 1 << 20 });
    p.stop();
    assert.match(out.text, /\x1b\[1A/, 'moves up over the previous drawing');
    const last = out.text.split('\x1b[2A').pop()!;
    assert.match(last, /r\.example\/a:b {2}sha256:abababababab {2}linux\/amd64\n/);
    assert.match(last, /1\/1 {2}sha256:111111111111 {2}2\.0 MiB {2}downloading 1\.0 MiB \/ 2\.0 MiB\n$/);
  });
});
