/**
 * Disk usage of a directory tree the way containerd computes it: allocated bytes (st_blocks * 512) and
 * the number of distinct inodes, hard links counted once. Fully asynchronous, so it can never block the
 * daemon's thread on a filesystem the daemon itself serves.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Usage } from './types';

export async function diskUsage(root: string): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  const visit = async (p: string): Promise<void> => {
    const st = await fsp.lstat(p, { bigint: true });
    const inode = `${st.dev}:${st.ino}`;
    if (!seen.has(inode)) {
      seen.add(inode);
      size += Number(st.blocks) * 512;
    }
    if (!st.isDirectory()) return;
    for (const name of await fsp.readdir(p)) await visit(path.join(p, name));
  };
  await visit(root);
  return { size, inodes: seen.size };
}
