/**
 * The labels an image unpacker puts on the Prepare of each layer's extraction snapshot, as containerd's
 * unpacker does when CRI pulls (containerd 1.6 pkg/cri/server/image_pull.go, 1.7+
 * pkg/snapshotters.AppendInfoHandlerWrapper): the target chain ID, which makes a remote snapshotter
 * consider serving the layer itself, and what it needs to find the layer in the registry.
 */
import {
  LABEL_CRI_IMAGE_LAYERS,
  LABEL_CRI_IMAGE_REF,
  LABEL_CRI_LAYER_DIGEST,
  LABEL_CRI_MANIFEST_DIGEST,
  LABEL_SNAPSHOT_PREFIX,
  LABEL_TARGET_REF,
  MAX_LABEL_BYTES,
} from '../snapshotter/labels';
import { isLayerMediaType } from './labels';

export interface LayerForLabels {
  mediaType: string;
  digest: string;
  annotations?: Record<string, string>;
}

/**
 * Comma-separated digests of `layers` (this layer and the ones above it), as many as fit: containerd
 * stops before the first digest that would make key + value exceed 4096 bytes.
 */
export function imageLayersLabel(layers: readonly LayerForLabels[]): string {
  let value = '';
  for (const layer of layers) {
    if (!isLayerMediaType(layer.mediaType)) continue;
    const next = value === '' ? layer.digest : `${value},${layer.digest}`;
    if (Buffer.byteLength(LABEL_CRI_IMAGE_LAYERS) + Buffer.byteLength(next) > MAX_LABEL_BYTES) break;
    value = next;
  }
  return value;
}

/**
 * Labels for layer `index` of a manifest. Annotations of the layer descriptor under
 * `containerd.io/snapshot/` are inherited too, as containerd's unpacker inherits them.
 */
export function layerSnapshotLabels(opts: {
  chainId: string;
  imageRef: string;
  manifestDigest: string;
  layers: readonly LayerForLabels[];
  index: number;
}): Record<string, string> {
  const layer = opts.layers[opts.index]!;
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(layer.annotations ?? {})) {
    if (key.startsWith(LABEL_SNAPSHOT_PREFIX)) labels[key] = value;
  }
  labels[LABEL_CRI_IMAGE_REF] = opts.imageRef;
  labels[LABEL_CRI_MANIFEST_DIGEST] = opts.manifestDigest;
  labels[LABEL_CRI_LAYER_DIGEST] = layer.digest;
  labels[LABEL_CRI_IMAGE_LAYERS] = imageLayersLabel(opts.layers.slice(opts.index));
  labels[LABEL_TARGET_REF] = opts.chainId;
  return labels;
}
