/**
 * Checks and creates clip's root directory before anything is stored there. A root on a kernel
 * filesystem (/proc, /sys) is refused up front: Node's recursive mkdir never returns there. A root that
 * cannot be written (read-only filesystem, permissions) is refused with the reason, not found out by a
 * later failure deep in the metadata store.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { ConfigError, errorMessage } from '../errors';

const KERNEL_FILESYSTEMS = ['/proc', '/sys'];

/** `dir` with symlinks of its nearest existing ancestor resolved (the rest does not exist yet). */
async function realTarget(dir: string): Promise<string> {
  const rest: string[] = [];
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    try {
      return path.join(await fsp.realpath(current), ...rest.reverse());
    } catch {
      if (current === path.dirname(current)) return path.resolve(dir);
      rest.push(path.basename(current));
    }
  }
}

function isUnder(dir: string, parent: string): boolean {
  return dir === parent || dir.startsWith(`${parent}/`);
}

/** Creates `root` (mode 0700) if needed; ConfigError when it is under /proc or /sys or is not writable. */
export async function prepareRoot(root: string): Promise<void> {
  for (const target of [path.resolve(root), await realTarget(root)]) {
    const kernel = KERNEL_FILESYSTEMS.find((fs) => isUnder(target, fs));
    if (kernel) throw new ConfigError(`root ${root} is on the kernel's ${kernel} filesystem: set root (--root) to a directory on a disk, e.g. /var/lib/clip`);
  }
  const probe = path.join(root, `.write-test-${process.pid}`);
  try {
    await fsp.mkdir(root, { recursive: true, mode: 0o700 });
    await fsp.writeFile(probe, '');
    await fsp.unlink(probe);
  } catch (err) {
    throw new ConfigError(`root ${root} is not writable (${errorMessage(err)}): set root (--root) to a writable directory`, { cause: err });
  }
}
