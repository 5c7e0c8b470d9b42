/**
 * src/fusefs: clip archives presented as read-only FUSE filesystems, and the FUSE mount housekeeping the
 * daemon needs at start-up.
 */
export { LayerFilesystem } from './layer-filesystem';
export type { LayerFilesystemOptions, OpaqueXattr } from './layer-filesystem';
export type { SpanReader } from './span-reader';
export { abortFuseConnection, forceUnmount, listFuseMounts } from './mounts';
export type { ForceUnmountOptions, MountInfo } from './mounts';
