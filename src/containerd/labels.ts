/**
 * Labels containerd's metadata store keeps on content and leases (they never reach a snapshotter), and
 * the keys its image pull sets. Snapshot labels (containerd.io/snapshot.ref, cri.*) live in
 * src/snapshotter/labels.ts.
 */

/** On a lease: RFC 3339 time after which the garbage collector deletes it. */
export const LABEL_GC_EXPIRE = 'containerd.io/gc.expire';

/** On a manifest: the config blob it references. */
export const LABEL_GC_REF_CONFIG = 'containerd.io/gc.ref.content.config';

/** On a compressed layer blob: the digest of its uncompressed tar (diff ID). */
export const LABEL_UNCOMPRESSED = 'containerd.io/uncompressed';

/** On a blob: `containerd.io/distribution.source.<registry host>` = repositories it came from. */
export const DISTRIBUTION_SOURCE_PREFIX = 'containerd.io/distribution.source.';

/** On an image config: the top snapshot of the image unpacked for `snapshotter`. */
export function gcRefSnapshotLabel(snapshotter: string): string {
  return `containerd.io/gc.ref.snapshot.${snapshotter}`;
}

export function distributionSourceLabel(registryHost: string): string {
  return `${DISTRIBUTION_SOURCE_PREFIX}${registryHost}`;
}

/** Merges a repository into a distribution-source value (comma separated, sorted, no duplicates). */
export function mergeDistributionSource(existing: string | undefined, repository: string): string {
  const repos = new Set((existing ?? '').split(',').filter((r) => r !== ''));
  repos.add(repository);
  return [...repos].sort().join(',');
}

/** containerd's images.IsLayerType: OCI layer types and Docker rootfs diff types (suffixes ignored). */
export function isLayerMediaType(mediaType: string): boolean {
  const base = mediaType.split('+')[0]!;
  return (
    mediaType.startsWith('application/vnd.oci.image.layer.') ||
    base === 'application/vnd.docker.image.rootfs.diff.tar.gzip' ||
    base === 'application/vnd.docker.image.rootfs.diff.tar' ||
    base === 'application/vnd.docker.image.rootfs.diff.tar.zstd' ||
    base.startsWith('application/vnd.docker.image.rootfs.foreign.diff.tar')
  );
}

const MANIFEST_TYPES = new Set(['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json']);
const CONFIG_TYPES = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);

/**
 * The garbage-collection reference labels a parent blob (index or manifest) gets for its children, as
 * containerd's pull sets them (images.SetChildrenMappedLabels with images.ChildGCLabels): the config is
 * `containerd.io/gc.ref.content.config`, manifests `…content.m.<n>`, layers `…content.l.<n>`, anything
 * else `…content.<n>`, numbered per key in the children's order.
 */
export function childGcLabels(children: ReadonlyArray<{ mediaType: string; digest: string }>): Record<string, string> {
  const labels: Record<string, string> = {};
  const counts = new Map<string, number>();
  for (const child of children) {
    let key: string;
    if (CONFIG_TYPES.has(child.mediaType)) key = LABEL_GC_REF_CONFIG;
    else if (MANIFEST_TYPES.has(child.mediaType)) key = 'containerd.io/gc.ref.content.m.';
    else if (isLayerMediaType(child.mediaType)) key = 'containerd.io/gc.ref.content.l.';
    else key = 'containerd.io/gc.ref.content.';
    const n = counts.get(key) ?? 0;
    counts.set(key, n + 1);
    labels[n > 0 || key.endsWith('.') ? `${key}${n}` : key] = child.digest;
  }
  return labels;
}
