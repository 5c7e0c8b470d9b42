/**
 * Bytes of the regular files under a directory (the archive store, the content cache, one layer's
 * spans), walked asynchronously and never into another file system's mount. Never used on a directory
 * clip serves through FUSE. Missing directories count 0.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';

/** Directories deeper than this are not walked (the stores are two or three levels deep). */
const MAX_DEPTH = 4;

export async function directoryBytes(dir: string, depth = 0): Promise<number> {
  const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
  let total = 0;
  for (const entry of entries) {
    const file = path.join(dir, entry.name);
    if (entry.isFile()) total += (await fsp.lstat(file).catch(() => undefined))?.size ?? 0;
    else if (entry.isDirectory() && depth < MAX_DEPTH) total += await directoryBytes(file, depth + 1);
  }
  return total;
}
