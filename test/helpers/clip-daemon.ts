/** Starts the real `clip serve` (bin/clip) as a child process for integration and end-to-end tests. */
import path from 'node:path';
import { REPO_ROOT, Started, exists, startProcess, stopProcess, waitFor } from './processes';

export interface ClipDaemon {
  root: string;
  address: string;
  process: Started;
  /** Graceful stop (SIGTERM); resolves with the exit code. */
  stop(): Promise<number | null>;
  /** kill -9. */
  kill(): Promise<void>;
}

/** The clip-fd-holder a clip on `root` started (its pid file beside its socket), if any: for cleanup. */
export function holderPidFile(root: string): string {
  return path.join(root, 'fd-holder.sock.pid');
}

/** `installDir`: a build of clip elsewhere (an upgrade), default this repository. */
export async function startClip(root: string, address: string, extraArgs: string[] = [], installDir = REPO_ROOT): Promise<ClipDaemon> {
  const bin = path.join(installDir, 'bin', 'clip');
  const p = startProcess(bin, ['serve', '--root', root, '--address', address, '--log-level', 'debug', ...extraArgs]);
  try {
    await waitFor(`clip socket ${address}`, async () => {
      if (p.child.exitCode !== null) throw new Error(`clip exited early:\n${p.output()}`);
      return (await exists(address)) && p.output().includes('serving');
    });
  } catch (err) {
    // Do not leave a daemon running that the caller has no handle on.
    await stopProcess(p, 'SIGKILL');
    throw err;
  }
  return {
    root,
    address,
    process: p,
    stop: () => stopProcess(p, 'SIGTERM'),
    kill: async () => {
      await stopProcess(p, 'SIGKILL');
    },
  };
}
