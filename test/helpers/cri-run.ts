/** CRI pulls, `ctr run` of pulled images, and how CRI pulled, for the end-to-end tests that pull through CRI with clip. */
import assert from 'node:assert/strict';
import { CriClient } from './cri-client';
import { Stack } from './stack';

export const K8S = ['-n', 'k8s.io'];

/**
 * CRI PullImage. After clip restarts, containerd's connection to it is in gRPC back-off for a moment and
 * calls fail with UNAVAILABLE; like kubelet, retry those (bounded).
 */
export async function criPull(stack: Stack, tag: string): Promise<void> {
  const cri = new CriClient(stack.containerdAddress);
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await cri.pullImage(stack.imageRef(tag));
        return;
      } catch (err) {
        const message = (err as Error).message;
        if (attempt < 10 && /UNAVAILABLE/.test(message) && /clip\.sock/.test(message)) {
          await new Promise((r) => setTimeout(r, 1000));
          continue;
        }
        throw new Error(`CRI PullImage ${tag}: ${message}\n${await stack.diagnostics()}`);
      }
    }
  } finally {
    cri.close();
  }
}

/** Runs a container of the CRI-pulled image `tag` on clip's snapshots; resolves with its output. */
export async function runIn(stack: Stack, tag: string, id: string, args: string[] = []): Promise<string> {
  const r = await stack.ctr([...K8S, 'run', '--rm', '--snapshotter', 'clip', stack.imageRef(tag), id, ...args]);
  assert.equal(r.code, 0, `ctr run ${tag} failed:\n${r.stderr}\n${await stack.diagnostics()}`);
  return r.stdout;
}

/** containerd 2.1's CRI logs at debug level which way it pulls an image (internal/cri/server/images/image_pull.go). */
export async function assertCriPullPath(stack: Stack, tag: string, path: 'transfer' | 'local'): Promise<void> {
  const log = await stack.containerdLog();
  const way = path === 'transfer' ? 'using transfer service' : 'using client.Pull()';
  const lines = log.split('\n').filter((l) => l.includes('msg="PullImage') && l.includes(stack.imageRef(tag)));
  assert.ok(lines.some((l) => l.includes(`with snapshotter clip ${way}`)), `CRI pulled ${tag} ${way}:\n${lines.join('\n')}`);
  assert.equal(log.includes('Falling back to local image pull mode'), path === 'local', 'CRI fell back to local pulls');
}
