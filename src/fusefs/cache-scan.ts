/**
 * Reads what the content cache directory holds (`<dir>/sha256/<layer hex>/<span hex>`, content-cache.ts)
 * from the disk: for the daemon at start-up and for `clip cache du|prune`, which work on the directory
 * directly. Temporary files (`.tmp-*`, a write in progress or one cut short by a crash) are listed apart.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { diskBytes } from './cache-index';

export const HEX_DIGEST = /^[0-9a-f]{64}$/;

export interface ScannedSpan {
  layer: string;
  span: string;
  /** Disk bytes (whole blocks). */
  bytes: number;
  /** Last modification, ms since the epoch. */
  mtimeMs: number;
}

export interface CacheScan {
  spans: ScannedSpan[];
  /** Paths of temporary files. */
  temporary: string[];
  /** Layer digests ("sha256:…") that have a directory. */
  layers: string[];
}

/** The directory of a layer's spans: `<dir>/sha256/<hex>`. */
export function layerDir(dir: string, layerDigest: string): string {
  return path.join(dir, 'sha256', layerDigest.replace(/^sha256:/, ''));
}

export async function scanCache(dir: string): Promise<CacheScan> {
  const root = path.join(dir, 'sha256');
  const out: CacheScan = { spans: [], temporary: [], layers: [] };
  for (const hex of await fsp.readdir(root).catch(() => [] as string[])) {
    if (!HEX_DIGEST.test(hex)) continue;
    const layer = `sha256:${hex}`;
    out.layers.push(layer);
    for (const name of await fsp.readdir(path.join(root, hex)).catch(() => [] as string[])) {
      const file = path.join(root, hex, name);
      if (name.startsWith('.tmp-')) {
        out.temporary.push(file);
        continue;
      }
      if (!HEX_DIGEST.test(name)) continue;
      const st = await fsp.stat(file).catch(() => undefined);
      if (st?.isFile()) out.spans.push({ layer, span: `sha256:${name}`, bytes: diskBytes(st.size), mtimeMs: st.mtimeMs });
    }
  }
  return out;
}

/** Total and free bytes of the filesystem holding `dir` (free: what an unprivileged writer may use). */
export async function filesystemSpace(dir: string): Promise<{ totalBytes: number; freeBytes: number }> {
  const st = await fsp.statfs(dir);
  return { totalBytes: st.blocks * st.bsize, freeBytes: st.bavail * st.bsize };
}
