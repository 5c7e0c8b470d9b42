/** Label keys containerd and clip agree on. Every label constant lives here. */

/** Set by containerd's unpacker on Prepare: the chainID the snapshot is meant to become. */
export const LABEL_TARGET_REF = 'containerd.io/snapshot.ref';

/** Prefix of the labels containerd forwards to snapshotters (besides LABEL_TARGET_REF). */
export const LABEL_SNAPSHOT_PREFIX = 'containerd.io/snapshot/';

/** CRI labels that let a remote snapshotter find a layer in the registry. */
export const LABEL_CRI_IMAGE_REF = 'containerd.io/snapshot/cri.image-ref';
export const LABEL_CRI_MANIFEST_DIGEST = 'containerd.io/snapshot/cri.manifest-digest';
export const LABEL_CRI_LAYER_DIGEST = 'containerd.io/snapshot/cri.layer-digest';
export const LABEL_CRI_IMAGE_LAYERS = 'containerd.io/snapshot/cri.image-layers';

/** clip's own marker on a committed snapshot whose fs directory is a lazily loaded (FUSE) layer. */
export const LABEL_REMOTE = 'containerd.io/snapshot/remote';

/** containerd rejects a label whose key plus value exceeds this many bytes; so does clip. */
export const MAX_LABEL_BYTES = 4096;
