/** `clip status --json` and the /metrics endpoint it names, of a stack's clip daemon, for end-to-end tests. */
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import type { DaemonStatus } from '../../src/daemon/daemon-status';
import { REPO_ROOT } from './processes';
import { Stack, runClosedStdin } from './stack';

export async function clipStatus(stack: Stack): Promise<DaemonStatus> {
  const r = await runClosedStdin(path.join(REPO_ROOT, 'bin', 'clip'), ['status', '--json', '--address', stack.clipAddress], 30_000);
  assert.equal(r.code, 0, `clip status --json: ${r.stderr}`);
  return JSON.parse(r.stdout) as DaemonStatus;
}

/** The text exposition at the metrics endpoint clip status names (TCP, port picked by the daemon). */
export async function scrape(stack: Stack): Promise<string> {
  const at = (await clipStatus(stack)).metrics;
  assert.ok(at, 'clip status names the metrics endpoint');
  return new Promise((resolve, reject) => {
    const req = http.get(`http://${at}/metrics`, { timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('scrape timed out')));
    req.on('error', reject);
  });
}

/** The sum of a family's samples whose labels include every given label (name="value"). */
export function total(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
