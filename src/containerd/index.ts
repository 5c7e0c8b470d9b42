/**
 * clip's containerd client: containerd's own gRPC API (content, images, leases, snapshots, diff) over its
 * unix socket, and an image pull that unpacks with the labels a remote snapshotter needs.
 */
export { ContainerdClient } from './containerd-client';
export type { ContainerdClientOptions } from './containerd-client';
export { ImagePuller } from './image-puller';
export type { PullRequest, PullResult } from './image-puller';
export type { LayerOutcome, LayerStatus, PullObserver, ResolvedImageSummary } from './pull-events';
export type { ContentDescriptor, ContentInfo } from './content-store';
export type { ImageRecord } from './image-store';
