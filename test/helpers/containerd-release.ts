/**
 * Which containerd the end-to-end tests run: CLIP_TEST_CONTAINERD=1.6 | 1.7 | 2.1 (default 1.6, the system's
 * package). scripts/run-tests.js sets it to run the e2e suite once per release; the stack fetches the binaries
 * with scripts/fetch-containerd.sh. Only tests read this variable, never the product.
 */
import path from 'node:path';
import { REPO_ROOT, runOk } from './processes';

export interface ContainerdRelease {
  /** What CLIP_TEST_CONTAINERD names: 1.6, 1.7 or 2.1. */
  series: '1.6' | '1.7' | '2.1';
  /** The exact release fetch-containerd.sh provides. */
  version: string;
  major: number;
  /**
   * `ctr images pull` goes through the transfer service, which sends the layer labels to a snapshotter
   * exporting enable_remote_snapshot_annotations (containerd 2.1+), so it is lazy with clip.
   */
  lazyCtrPull: boolean;
}

const RELEASES: Record<ContainerdRelease['series'], ContainerdRelease> = {
  '1.6': { series: '1.6', version: '1.6.20', major: 1, lazyCtrPull: false },
  '1.7': { series: '1.7', version: '1.7.24', major: 1, lazyCtrPull: false },
  '2.1': { series: '2.1', version: '2.1.9', major: 2, lazyCtrPull: true },
};

export function containerdRelease(value = process.env.CLIP_TEST_CONTAINERD): ContainerdRelease {
  const series = value === undefined || value === '' ? '1.6' : value;
  const release = RELEASES[series as ContainerdRelease['series']];
  if (!release) throw new Error(`CLIP_TEST_CONTAINERD=${series}: expected one of ${Object.keys(RELEASES).join(', ')}`);
  return release;
}

/** The release under test (from the environment, read once). */
export const CONTAINERD = containerdRelease();

/** Directory with the release's containerd, ctr and shims (fetched and unpacked on first use). */
export async function containerdBinDir(release: ContainerdRelease = CONTAINERD): Promise<string> {
  const out = await runOk(path.join(REPO_ROOT, 'scripts', 'fetch-containerd.sh'), [release.series], { timeoutMs: 1_200_000 });
  return out.trim();
}
