/** CRI PullImage of a test image through the stack's containerd, as kubelet would do it. */
import { CriClient } from './cri-client';
import type { Stack } from './stack';

/**
 * Pulls `tag`. After clip restarts, containerd's connection to it is in gRPC back-off for a moment and
 * calls fail with UNAVAILABLE; like kubelet, retry those (bounded). Other failures carry the daemons' logs.
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
