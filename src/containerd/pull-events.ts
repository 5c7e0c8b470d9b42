/** What an image pull reports while it runs, for a progress display. */

/** How a layer ended up in the snapshotter. */
export type LayerOutcome =
  /** The snapshot was there before this pull. */
  | 'present'
  /** The snapshotter serves the layer itself (a remote snapshot, e.g. clip's lazy layers). */
  | 'lazy'
  /** Downloaded into containerd's content store and extracted by containerd's diff service. */
  | 'unpacked';

export type LayerStatus =
  | { state: 'waiting' }
  /** Prepare is in flight: a remote snapshotter may be indexing the layer. */
  | { state: 'preparing' }
  | { state: 'fetching'; bytes: number }
  | { state: 'applying' }
  | { state: 'done'; outcome: LayerOutcome };

export interface ResolvedImageSummary {
  /** The image name the record gets. */
  name: string;
  /** The record's target (manifest or index) digest. */
  digest: string;
  platform?: string;
  layers: Array<{ digest: string; size: number }>;
}

export interface PullObserver {
  resolved?(image: ResolvedImageSummary): void;
  layer?(index: number, status: LayerStatus): void;
}
