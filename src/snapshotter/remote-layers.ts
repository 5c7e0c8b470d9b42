/**
 * The seam between the snapshotter and lazily loaded layers. The snapshotter decides *when* a layer is
 * served remotely (containerd's remote-snapshot handshake); an implementation of RemoteLayers decides
 * *how* (find or build the layer's clip archive, mount it through FUSE).
 */
import { Labels } from './types';

export interface RemoteLayers {
  /**
   * Whether the labels of a Prepare name a layer this source might serve lazily. Cheap and synchronous:
   * no network, no disk.
   */
  canServe(labels: Labels): boolean;

  /**
   * Mounts the layer the labels name, read-only, on the empty directory `dir`. Rejects when the layer
   * cannot be served lazily (the snapshotter then falls back to a normal unpack); on rejection nothing
   * is left mounted.
   */
  mount(dir: string, labels: Labels): Promise<void>;

  /** Unmounts `dir` if it is mounted; never throws for a directory that is not mounted. */
  unmount(dir: string): Promise<void>;

  /** Unmounts every mount found under `root` (stale mounts of an earlier process). Returns the count. */
  unmountAll(root: string): Promise<number>;
}
