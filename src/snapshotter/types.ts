/**
 * The snapshot model, in containerd's vocabulary.
 *
 * - A snapshot is named by a `key` (active and view snapshots) or a `name` (committed ones); both live in
 *   one key space. Keys arrive namespaced ("k8s.io/42/extract-… sha256:…") and are opaque strings: they
 *   contain '/' and spaces and are never used as path components. Every snapshot gets a numeric `id` of
 *   clip's own; its directory is `<root>/snapshots/<id>`.
 * - `parent` names a committed snapshot; only committed snapshots can be parents.
 * - Prepare creates an ACTIVE (writable) snapshot, View a VIEW (read-only) one, Commit turns an ACTIVE
 *   snapshot into a COMMITTED one under a new name.
 * - A committed snapshot may be *remote*: its fs directory is then a FUSE mount of a lazily loaded
 *   layer instead of an extracted one. The model does not care: mounts are computed from directories.
 */
import type { EpochMicros } from './wall-clock';

export enum Kind {
  VIEW = 1,
  ACTIVE = 2,
  COMMITTED = 3,
}

export type Labels = Record<string, string>;

/** What Stat, List and Update return for a snapshot. */
export interface Info {
  name: string;
  parent: string;
  kind: Kind;
  /** Microseconds since the Unix epoch. */
  created: EpochMicros;
  updated: EpochMicros;
  labels: Labels;
}

export interface Usage {
  size: number;
  inodes: number;
}

/** One mount the caller performs: `mount -t type source target -o options`. */
export interface Mount {
  type: string;
  source: string;
  options: string[];
}

export function kindName(kind: Kind): string {
  return Kind[kind] ?? `kind(${kind})`;
}
