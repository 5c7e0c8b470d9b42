/**
 * The daemon's state as `clip status` shows it (GET /status on the admin socket): version, uptime,
 * configuration, and per layer whether it is served lazily or was left to containerd (with the reason and
 * what to do), how much of it is cached, where it is mounted, and where its archive came from.
 */
import type { ContentCache } from '../fusefs/content-cache';
import { directoryBytes } from '../metrics/directory-bytes';
import type { LazyLayers } from '../remote/lazy-layers';
import type { Snapshotter } from '../snapshotter/snapshotter';
import { describeProvenance } from '../trust';

export interface LayerStatus {
  digest: string;
  /** Image references whose Prepare named this layer. */
  images: string[];
  state: 'lazy' | 'fallback';
  /** Fallback only: the reason class (snapshotter/fallback-reason.ts) and what to do about it. */
  reason?: string;
  hint?: string;
  /** Lazy layers: uncompressed bytes in the content cache, out of the layer's uncompressed size. */
  bytesCached?: number;
  bytesTotal?: number;
  /** Where the layer is mounted (one per remote snapshot of it that is mounted). */
  mounts: string[];
  startupProfile?: boolean;
  /** Where the layer's clip archive came from: "local" (indexed on this node), "signed" or "repository". */
  archive?: string;
  archiveDetail?: string;
}

export interface DaemonStatus {
  version: string;
  commit: string;
  pid: number;
  uptimeSeconds: number;
  configFile: string | null;
  root: string;
  address: string;
  /** The metrics endpoint, or null when off. */
  metrics: string | null;
  lazy: boolean;
  layers: LayerStatus[];
}

export interface StatusSources {
  build: { version: string; commit: string };
  startedAt: number;
  configFile?: string;
  root: string;
  address: string;
  metrics?: string;
  snapshotter: Snapshotter;
  lazy?: { layers: LazyLayers; cache: ContentCache };
}

export async function daemonStatus(src: StatusSources): Promise<DaemonStatus> {
  const layers = new Map<string, LayerStatus>();
  for (const snap of src.snapshotter.remoteSnapshots()) {
    let layer = layers.get(snap.layerDigest);
    if (!layer) layers.set(snap.layerDigest, (layer = { digest: snap.layerDigest, images: [], state: 'lazy', mounts: [] }));
    if (snap.imageRef && !layer.images.includes(snap.imageRef)) layer.images.push(snap.imageRef);
    const mounted = snap.mounted ? src.lazy?.layers.describe(snap.dir) : undefined;
    if (!mounted) continue;
    layer.mounts.push(snap.dir);
    layer.bytesTotal = mounted.uncompressedBytes;
    layer.startupProfile = mounted.startupProfile;
    layer.archive = mounted.provenance.source;
    layer.archiveDetail = describeProvenance(mounted.provenance);
  }
  if (src.lazy) {
    for (const layer of layers.values()) {
      if (/^sha256:[0-9a-f]{64}$/.test(layer.digest)) layer.bytesCached = await directoryBytes(src.lazy.cache.spanDir(layer.digest));
    }
  }
  for (const f of src.snapshotter.outcomes.recentFallbacks()) {
    if (layers.has(f.layerDigest)) continue;
    layers.set(f.layerDigest, { digest: f.layerDigest, images: f.imageRef ? [f.imageRef] : [], state: 'fallback', reason: f.reason, hint: f.hint, mounts: [] });
  }
  return {
    version: src.build.version,
    commit: src.build.commit,
    pid: process.pid,
    uptimeSeconds: Math.round((Date.now() - src.startedAt) / 1000),
    configFile: src.configFile ?? null,
    root: src.root,
    address: src.address,
    metrics: src.metrics ?? null,
    lazy: src.lazy !== undefined,
    layers: [...layers.values()],
  };
}
