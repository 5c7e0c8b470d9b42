/**
 * `clip cache du` and `clip cache prune`: the content cache (<root>/cache, docs/cache.md) seen and trimmed
 * from its directory, so they work whether the daemon runs or not. Which layers are in use comes from the
 * snapshotter's metadata, opened read-only (SQLite lets one process read while the daemon writes; the
 * root's lock is the daemon's and is not taken). A running daemon copes with span files that vanish: it
 * fetches, verifies and caches them again when they are read, and forgets pruned layers within a minute.
 */
import { Command } from 'commander';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import { DEFAULT_CONFIG, diskShareBytes, type DaemonConfig } from '../daemon/config';
import { FailedPreconditionError } from '../errors';
import { CacheIndex } from '../fusefs/cache-index';
import { filesystemSpace, layerDir, scanCache } from '../fusefs/cache-scan';
import { Layout } from '../snapshotter/layout';
import { MetaStore } from '../snapshotter/metastore';
import { configFromFlags } from './config-flags';
import { UsageError } from './exit-codes';

interface RootFlags {
  root?: string;
  config?: string;
}

/** Layer digests the snapshots in the root's metadata reference (none if there is no metadata yet). */
function referencedLayers(root: string): Set<string> {
  const file = new Layout(root).metadataFile;
  if (!existsSync(file)) return new Set();
  const store = new MetaStore(file, { readonly: true });
  try {
    return store.layerDigests();
  } finally {
    store.close();
  }
}

export interface CacheReport {
  dir: string;
  totalBytes: number;
  maxBytes: number;
  minFreeBytes: number;
  /** Free bytes on the cache's filesystem. */
  freeBytes: number;
  layers: Array<{ digest: string; bytes: number; spans: number; referenced: boolean }>;
}

export async function cacheReport(config: DaemonConfig): Promise<CacheReport> {
  if (!existsSync(config.root)) throw new FailedPreconditionError(`no clip root at ${config.root}: give --root, or --config with the daemon's root`);
  const dir = path.join(config.root, 'cache');
  const scan = await scanCache(dir);
  const index = new CacheIndex();
  for (const s of scan.spans) index.add(s.layer, s.span, s.bytes, 0);
  const space = await filesystemSpace(existsSync(dir) ? dir : config.root);
  const referenced = referencedLayers(config.root);
  return {
    dir,
    totalBytes: index.totalBytes,
    maxBytes: diskShareBytes(config.cache.maxSize, space.totalBytes),
    minFreeBytes: diskShareBytes(config.cache.minFree, space.totalBytes),
    freeBytes: space.freeBytes,
    layers: index.usage().map((l) => ({ ...l, referenced: referenced.has(l.digest) })),
  };
}

const mib = (n: number): string => `${(n / 1048576).toFixed(1)} MiB`;

function printReport(r: CacheReport): void {
  const lines = [`${'LAYER'.padEnd(71)} ${'SIZE'.padStart(12)} ${'SPANS'.padStart(6)}  USED`];
  for (const l of r.layers) lines.push(`${l.digest.padEnd(71)} ${mib(l.bytes).padStart(12)} ${String(l.spans).padStart(6)}  ${l.referenced ? 'yes' : 'no'}`);
  lines.push(`total ${mib(r.totalBytes)} of max_size ${mib(r.maxBytes)} in ${r.dir}; ${mib(r.freeBytes)} free on its filesystem (min_free ${mib(r.minFreeBytes)})`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

function withRootOptions(cmd: Command): Command {
  return cmd
    .option('--root <dir>', `clip's root directory (default: the config's root, ${DEFAULT_CONFIG.root})`)
    .option('--config <file>', 'TOML configuration file of the daemon (for root and [cache]; default: /etc/clip/clip.toml if it exists)');
}

async function configOf(flags: RootFlags): Promise<DaemonConfig> {
  return (await configFromFlags(flags.config, { root: flags.root })).config;
}

export function cacheCommand(): Command {
  const cache = new Command('cache').description("inspect and trim clip's content cache of layer bytes");
  withRootOptions(cache.command('du'))
    .description('show the bytes the content cache holds per layer, its total and its bound')
    .option('--json', 'print JSON')
    .action(async (flags: RootFlags & { json?: boolean }) => {
      const report = await cacheReport(await configOf(flags));
      if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else printReport(report);
    });
  withRootOptions(cache.command('prune'))
    .description('remove cached layers: those no snapshot uses (--unused, the default) or all of them (--all)')
    .option('--all', 'remove every cached layer (mounted layers fetch their bytes again when read)')
    .option('--unused', 'remove the layers no snapshot references')
    .action(async (flags: RootFlags & { all?: boolean; unused?: boolean }) => {
      if (flags.all && flags.unused) throw new UsageError('clip cache prune: give --all or --unused, not both');
      const config = await configOf(flags);
      const report = await cacheReport(config);
      const scan = await scanCache(report.dir);
      const inReport = new Map(report.layers.map((l) => [l.digest, l]));
      let layers = 0;
      let bytes = 0;
      for (const digest of scan.layers) {
        const layer = inReport.get(digest);
        if (!flags.all && layer?.referenced) continue;
        await fsp.rm(layerDir(report.dir, digest), { recursive: true, force: true });
        layers++;
        bytes += layer?.bytes ?? 0;
      }
      process.stdout.write(`removed ${layers} layers (${mib(bytes)}) from ${report.dir}\n`);
    });
  return cache;
}
