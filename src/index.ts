/**
 * clip as a library (package.json `main`): the same code the `clip` command runs.
 *
 *   import { RegistryClient, indexImage, mountArchive, ImageMount } from 'clip-snapshotter';
 *
 *   const registry = new RegistryClient({ hosts: { plainHttp: true } });
 *   // Index an image: one clip archive per layer (reusing valid ones from a directory, if given).
 *   const { image, layers } = await indexImage('127.0.0.1:5000/app:1.0', { registry });
 *   await writeArchives('/tmp/archives', layers.map((l) => l.archive));
 *   // Mount one archive read-only; its bytes are read from the registry on demand.
 *   const mounted = await mountArchive(layers[0].archive, '/mnt/layer0', { source: { registry, image: '127.0.0.1:5000/app' } });
 *   await mounted.unmount();
 *   // Or a whole image with a writable overlay (what `clip mount` does), and publish its archives.
 *   const m = await ImageMount.mount('127.0.0.1:5000/app:1.0', '/run/app/rootfs', { registry });
 *   await m.unmount();
 *   await publishArchives(registry, image, layers.map((l) => l.archive));
 *   await registry.close();
 *
 * Mounting needs root, /dev/fuse and the fuse3 and libfuse2 packages. A process serving mounts must never
 * touch them with synchronous fs calls (its one thread answers their requests).
 */
export {
  ArchiveFormatError,
  ArchiveLimitError,
  DEFAULT_ARCHIVE_LIMITS,
  FORMAT_VERSION,
  decodeArchive,
  decodeArchiveAsync,
  encodeArchive,
  readArchiveFile,
  summarizeArchive,
  writeArchiveFile,
} from './archive';
export type { ArchiveEntry, ArchiveLimits, ArchiveSummary, Checkpoint, ClipArchive, Compression, EntryType } from './archive';

export { archiveFileName, indexImage, indexLayerFile, writeArchives } from './remote/image-indexer';
export type { IndexImageOptions, IndexLayerFileOptions, IndexedImage, IndexedLayer, LayerProgress, LayerState } from './remote/image-indexer';
export { mountArchive } from './remote/archive-mount';
export type { ArchiveSource, MountArchiveOptions, MountedArchive } from './remote/archive-mount';
export { ImageMount, defaultStateDir, unmountImage } from './remote/image-mount';
export type { MountImageOptions, MountState } from './remote/image-mount';
export {
  ANNOTATION_LAYER_DIGEST,
  ANNOTATION_SIGNATURE,
  ARCHIVE_ARTIFACT_TYPE,
  ARCHIVE_MEDIA_TYPE,
  PublishedArchives,
  checkPublishedArchive,
  publishArchives,
  trustOf,
} from './remote/published-archives';
export type { PublishResult, PublishedArchivesOptions } from './remote/published-archives';
export { RepositoryPattern, TrustPolicy, UntrustedError, loadPublicKey, loadSigningKey, signStatement, verifyStatement } from './trust';
export type { ArchiveProvenance, ArchiveStatement, PublicKey, SigningKey } from './trust';

export { DockerCredentials, RegistryClient, listReferrers, parsePlatform, parseReference } from './registry';
export type { Descriptor, Platform, RegistryClientOptions, ResolvedImage } from './registry';

export {
  AlreadyExistsError,
  ClipError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  NotImplementedError,
  UnavailableError,
} from './errors';
export type { ClipErrorCode } from './errors';
