/**
 * The seam between the snapshotter and lazily loaded layers. The snapshotter decides *when* a layer is
 * served remotely (containerd's remote-snapshot handshake); an implementation of RemoteLayers decides
 * *how* (find or build the layer's clip archive, mount it through FUSE).
 */
import { Labels } from './types';

/** What a mounted remote layer tells the snapshotter about itself. */
export interface RemoteLayerInfo {
  /** sha256 of the layer's uncompressed tar stream, as its archive records it. */
  diffId: string;
}

export interface RemoteMountOptions {
  /**
   * The layer is mounted again at start-up (it was committed before): nothing may keep the daemon from
   * serving, so work the layer needs before it is complete goes on in the background.
   */
  remount?: boolean;
  /** Aborts when containerd gives up on the Prepare: work nobody else waits for stops. */
  signal?: AbortSignal;
}

export interface RemoteLayers {
  /**
   * Whether the labels of a Prepare name a layer this source might serve lazily. Cheap and synchronous:
   * no network, no disk.
   */
  canServe(labels: Labels): boolean;

  /**
   * Mounts the layer the labels name, read-only, on the empty directory `dir`. Rejects when the layer
   * cannot be served lazily (the snapshotter then falls back to a normal unpack); on rejection nothing
   * is left mounted. When it returns the layer's diff ID, the snapshotter checks it against the chain ID
   * containerd named the snapshot after.
   */
  mount(dir: string, labels: Labels, options?: RemoteMountOptions): Promise<RemoteLayerInfo | void>;

  /** Unmounts `dir` if it is mounted; never throws for a directory that is not mounted. */
  unmount(dir: string): Promise<void>;

  /**
   * Unmounts every mount found under `root` (stale mounts of an earlier process). With keepHandedOver,
   * mounts an earlier process handed over (waiting to be served again by a remount) are left alone; without
   * it they are given up too. Returns the count.
   */
  unmountAll(root: string, options?: { keepHandedOver?: boolean }): Promise<number>;

  /**
   * The start-up remounts are done: mounts handed over by an earlier process that no remount took are
   * unmounted (their readers get an error rather than waiting).
   */
  endTakeOver(): Promise<void>;
}

/**
 * Finds the layer of an unpack Prepare that carries no layer labels, only the target chain ID (nerdctl's
 * pull, CRI without snapshot annotations), in what containerd already stored for the image.
 */
export interface LayerLocator {
  /**
   * The labels a CRI pull would have sent for the layer whose chain ID is `target`, as seen in containerd
   * namespace `namespace`, or undefined when it cannot be found. Never rejects; bounded in time.
   */
  locate(target: string, namespace: string, signal?: AbortSignal): Promise<Labels | undefined>;
}
