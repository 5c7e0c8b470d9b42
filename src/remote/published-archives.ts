/**
 * Clip archives published in the registry next to the image they describe, so that a node can serve an
 * image lazily without streaming every layer once to index it (docs/format.md, "Published archives").
 * One OCI artifact per image manifest:
 *
 *   manifest   application/vnd.oci.image.manifest.v1+json, artifactType application/vnd.clip.archive.v1
 *   config     the empty descriptor (application/vnd.oci.empty.v1+json, `{}`)
 *   layers     one clip archive file per image layer, in the image's order: media type
 *              application/vnd.clip.archive.v1, annotation dev.clip.layer.digest = the layer's digest
 *
 *              and, when published with a signing key, dev.clip.signature = a DSSE envelope over the
 *              archive statement (src/trust/archive-statement.ts)
 *   subject    the image's platform manifest
 *
 * Readers find it through the referrers API, or the referrers tag schema on registries without it
 * (src/registry/referrers.ts). A published archive can change everything a container sees in its layer, so
 * it is used only when the trust policy vouches for it (docs/security.md): a signature from a trusted key
 * over its digest, the layer, the diff ID and the image manifest, or a trusted repository; trust is decided
 * before the archive is fetched. One that fails any check is rejected with a log line and the layer is
 * indexed locally.
 */
import type { Logger } from 'winston';
import { ArchiveLimits, ClipArchive, DEFAULT_PUBLISHED_ARCHIVE_BYTES, StartupBundle, archiveLimits, decodeArchiveAsync, withStartupFields } from '../archive';
import { InvalidArgumentError, errorMessage } from '../errors';
import { layerCompression, UnsupportedCompressionError } from '../indexer';
import {
  Descriptor,
  DigestMismatchError,
  ImageManifest,
  ImageReference,
  MediaTypes,
  RegistryClient,
  ResolvedImage,
  addToReferrersTag,
  computeDigest,
  listReferrers,
  parseReference,
  pushBlob,
  pushManifest,
  referrersTag,
} from '../registry';
import { describeProvenance, signStatement, TrustPolicy, UntrustedError, type ArchiveProvenance, type SigningKey } from '../trust';
import type { LayerLocation } from './layer-indexer';
import { LazyBlobSource } from './lazy-blob-source';
import { STARTUP_BUNDLE_MEDIA_TYPE, buildStartupBundle } from './startup-bundle-blob';

/** The artifact type of a set of published clip archives; `v1` is the archive format's major version. */
export const ARCHIVE_ARTIFACT_TYPE = 'application/vnd.clip.archive.v1';
/** Media type of one clip archive file (docs/format.md) in the artifact. */
export const ARCHIVE_MEDIA_TYPE = 'application/vnd.clip.archive.v1';
/** Annotation of an archive's descriptor: the digest of the image layer it describes. */
export const ANNOTATION_LAYER_DIGEST = 'dev.clip.layer.digest';
/** Annotation of an archive's descriptor: a DSSE envelope signing its archive statement. */
export const ANNOTATION_SIGNATURE = 'dev.clip.signature';
/** Annotation of an archive's descriptor, "true" when the archive carries a start-up profile: readers try it first. */
export const ANNOTATION_STARTUP_PROFILE = 'dev.clip.startup-profile';

/** OCI 1.1's empty descriptor, the config of an artifact that needs none. */
const EMPTY_CONFIG = Buffer.from('{}');
const EMPTY_DESCRIPTOR = {
  mediaType: 'application/vnd.oci.empty.v1+json',
  digest: computeDigest(EMPTY_CONFIG),
  size: EMPTY_CONFIG.length,
  data: EMPTY_CONFIG.toString('base64'),
};

/** Newest referrers looked at per image. */
const MAX_ARTIFACTS = 16;
const LISTING_TTL_MS = 60_000;

interface ArtifactManifest extends ImageManifest {
  artifactType?: string;
  subject?: Descriptor;
}

/**
 * The artifact manifest for the archives of an image's layers. Deterministic: the same archives for the
 * same image give the same manifest, so publishing twice adds nothing.
 */
export function archiveArtifactManifest(
  subject: Descriptor,
  archives: Array<{ layerDigest: string; blob: Descriptor; signature?: string; profiled?: boolean; bundle?: Descriptor }>,
): Buffer {
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.ociManifest,
    artifactType: ARCHIVE_ARTIFACT_TYPE,
    config: EMPTY_DESCRIPTOR,
    layers: archives.flatMap((a) => [
      {
        mediaType: ARCHIVE_MEDIA_TYPE,
        digest: a.blob.digest,
        size: a.blob.size,
        annotations: {
          [ANNOTATION_LAYER_DIGEST]: a.layerDigest,
          ...(a.signature !== undefined ? { [ANNOTATION_SIGNATURE]: a.signature } : {}),
          ...(a.profiled ? { [ANNOTATION_STARTUP_PROFILE]: 'true' } : {}),
        },
      },
      // The archive's start-up bundle right after it: readers find it through the archive (its digest is in
      // the archive), the descriptor keeps the blob referenced in the registry.
      ...(a.bundle
        ? [{ mediaType: STARTUP_BUNDLE_MEDIA_TYPE, digest: a.bundle.digest, size: a.bundle.size, annotations: { [ANNOTATION_LAYER_DIGEST]: a.layerDigest } }]
        : []),
    ]),
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
  };
  return Buffer.from(JSON.stringify(manifest));
}

/**
 * The archive in `bytes`, published as `published` for the image layer `layer`, once it has passed every
 * check: the bytes match the descriptor (size, digest); the descriptor names the layer; the file decodes
 * (decodeArchive: header, checksum, format rules); the archive describes that layer (digest, blob size)
 * with the compression the layer's media type declares, and the diff ID a signature vouched for. Throws a
 * ClipError saying what failed. Whether the archive is trusted at all is decided before (trustOf).
 */
export async function checkPublishedArchive(
  bytes: Buffer,
  published: Descriptor,
  layer: Descriptor,
  signedDiffId?: string,
  limits: Partial<ArchiveLimits> = { maxBytes: DEFAULT_PUBLISHED_ARCHIVE_BYTES },
): Promise<ClipArchive> {
  const named = published.annotations?.[ANNOTATION_LAYER_DIGEST];
  if (named !== layer.digest) throw new InvalidArgumentError(`its descriptor names layer ${named ?? '(none)'}`);
  if (bytes.length !== published.size) throw new DigestMismatchError(`${bytes.length} bytes, its descriptor says ${published.size}`);
  const digest = computeDigest(bytes);
  if (digest !== published.digest) throw new DigestMismatchError(`its bytes hash to ${digest}, not ${published.digest}`);
  // Decoding checks the header's fields and the limits before the checksum and the body, and gives the
  // event loop back every few milliseconds.
  const archive = await decodeArchiveAsync(bytes, limits);
  if (archive.layerDigest !== layer.digest) throw new InvalidArgumentError(`it describes layer ${archive.layerDigest}`);
  if (archive.compressedSize !== layer.size) {
    throw new InvalidArgumentError(`it describes a ${archive.compressedSize}-byte blob, the layer has ${layer.size} bytes`);
  }
  let declared: string | undefined;
  try {
    declared = layerCompression(layer.mediaType);
  } catch (err) {
    if (err instanceof UnsupportedCompressionError) throw err;
    declared = undefined; // the media type leaves the compression open (Docker's rootfs.diff.tar)
  }
  if (declared !== undefined && declared !== archive.compression) {
    throw new InvalidArgumentError(`it describes a ${archive.compression} blob, the layer's media type ${layer.mediaType} says ${declared}`);
  }
  if (signedDiffId !== undefined && archive.diffId !== signedDiffId) {
    throw new UntrustedError(`its diff ID is ${archive.diffId}, its signature vouches for ${signedDiffId}`);
  }
  return archive;
}

/**
 * Whether the policy vouches for the archive `published` of layer `layerDigest` in the image `manifestDigest`
 * of repository `repository`, decided from the artifact alone, before anything is fetched: a signature
 * from a trusted key over exactly this archive, layer and image, or else a trusted repository. Throws
 * UntrustedError (or InvalidArgumentError for a malformed signature) when it does not.
 */
export function trustOf(
  policy: TrustPolicy,
  published: Descriptor,
  where: { repository: string; layerDigest: string; manifestDigest: string },
): { provenance: ArchiveProvenance; signedDiffId?: string } {
  const envelope = published.annotations?.[ANNOTATION_SIGNATURE];
  let signatureProblem: unknown;
  if (envelope !== undefined && policy.keys.length > 0) {
    try {
      const { statement, keyId } = policy.verify(envelope);
      if (statement.archive !== published.digest) throw new UntrustedError(`its signature is for archive ${statement.archive}`);
      if (statement.layer !== where.layerDigest) throw new UntrustedError(`its signature is for layer ${statement.layer}`);
      if (statement.manifest !== where.manifestDigest) throw new UntrustedError(`its signature is for image ${statement.manifest}, not ${where.manifestDigest}`);
      return { provenance: { source: 'signed', keyId }, signedDiffId: statement.diffId };
    } catch (err) {
      signatureProblem = err;
    }
  }
  const pattern = policy.trustedRepository(where.repository);
  if (pattern) return { provenance: { source: 'repository', repository: pattern.text } };
  if (signatureProblem !== undefined) throw signatureProblem;
  if (policy.keys.length === 0) throw new UntrustedError(`repository ${where.repository} is not trusted and no trusted key is configured`);
  throw new UntrustedError(`it is not signed, and repository ${where.repository} is not trusted`);
}

export interface PublishResult {
  /** The artifact manifest. */
  digest: string;
  size: number;
  /** The image manifest it refers to. */
  subject: Descriptor;
  /** How readers find it: the registry's referrers API, or the referrers tag schema's tag. */
  via: 'api' | 'tag';
  tag?: string;
  /** One per image layer, in order, with its start-up bundle blob when it has one. */
  archives: Array<{ layerDigest: string; digest: string; size: number; existed: boolean; bundle?: { digest: string; size: number } }>;
}

/** Whether `archives` describe layers of `layers` in their order, each once (and every one, with `all`). */
function inLayerOrder(archives: ClipArchive[], layers: Descriptor[], all: boolean): boolean {
  if (all && archives.length !== layers.length) return false;
  let next = 0;
  for (const archive of archives) {
    while (next < layers.length && layers[next]!.digest !== archive.layerDigest) next++;
    if (next === layers.length) return false;
    next++;
  }
  return true;
}

/**
 * Pushes the archives of an image's layers (one per layer, in the image's order; with `allLayers: false`,
 * of some of its layers, in the image's order) as an artifact referring to the image manifest, and records
 * it in the referrers tag schema when the registry has no referrers API. An archive with start-up ranges
 * gets its start-up bundle (built from the layer in the registry, pushed beside it, recorded in the archive,
 * so its digest and signature cover it) unless `startupBundles` is false. `clip index push` and
 * auto-publishing (archive-publisher.ts) both publish through here.
 */
export async function publishArchives(
  registry: RegistryClient,
  image: ResolvedImage,
  archives: ClipArchive[],
  options: { signal?: AbortSignal; signingKey?: SigningKey; allLayers?: boolean; startupBundles?: boolean } = {},
): Promise<PublishResult> {
  const { signal, signingKey } = options;
  if (!inLayerOrder(archives, image.layers, options.allLayers !== false)) {
    throw new InvalidArgumentError(`${image.reference}: need ${options.allLayers !== false ? 'one archive per layer' : 'archives of distinct layers'}, in the image's order`);
  }
  const ref = image.reference;
  await pushBlob(registry, ref, EMPTY_CONFIG, { signal });
  const pushed: PublishResult['archives'] = [];
  const signatures: Array<string | undefined> = [];
  for (const original of archives) {
    // The archive's own start-up bundle is replaced by one built now (the entries are neither decoded nor
    // encoded again: withStartupFields).
    const { startupSpans, startupRanges } = original;
    let bundle: { digest: string; size: number } | undefined;
    let startupBundle: StartupBundle | undefined;
    if (options.startupBundles !== false) {
      const built = await buildStartupBundle(original, new LazyBlobSource(registry, ref.toString(), original.layerDigest), signal);
      if (built) {
        const { digest, size } = await pushBlob(registry, ref, built.blob, { signal });
        bundle = { digest, size };
        startupBundle = built.bundle;
      }
    }
    const { archive, file } = await withStartupFields(original, { startupSpans, startupRanges, startupBundle });
    const blob = await pushBlob(registry, ref, file, { signal });
    pushed.push({ layerDigest: archive.layerDigest, ...blob, ...(bundle ? { bundle } : {}) });
    signatures.push(
      signingKey && signStatement({ archive: blob.digest, layer: archive.layerDigest, diffId: archive.diffId, manifest: image.digest }, signingKey),
    );
  }
  const subject: Descriptor = { mediaType: image.mediaType, digest: image.digest, size: image.size };
  const body = archiveArtifactManifest(
    subject,
    pushed.map((p, i) => ({
      layerDigest: p.layerDigest,
      blob: { mediaType: ARCHIVE_MEDIA_TYPE, digest: p.digest, size: p.size },
      signature: signatures[i],
      profiled: (archives[i]!.startupSpans?.length ?? 0) > 0,
      bundle: p.bundle && { mediaType: STARTUP_BUNDLE_MEDIA_TYPE, ...p.bundle },
    })),
  );
  const manifest = await pushManifest(registry, ref, body, MediaTypes.ociManifest, { signal });
  const result = { digest: manifest.digest, size: manifest.size, subject, archives: pushed };
  if (manifest.subject !== undefined) return { ...result, via: 'api' };
  const referrer = { mediaType: MediaTypes.ociManifest, digest: manifest.digest, size: manifest.size, artifactType: ARCHIVE_ARTIFACT_TYPE };
  await addToReferrersTag(registry, ref, image.digest, referrer, { signal });
  return { ...result, via: 'tag', tag: referrersTag(image.digest) };
}

interface Candidate {
  /** The artifact manifest that lists it. */
  artifact: string;
  descriptor: Descriptor;
}

interface ImageListing {
  /** The image's layer descriptors by digest. */
  layers: Map<string, Descriptor>;
  /** Published archives by layer digest, newest artifact first. */
  candidates: Map<string, Candidate[]>;
}

export interface PublishedArchivesOptions {
  registry: RegistryClient;
  logger: Logger;
  /** Who may describe a layer; with no trusted key or repository, nothing published is ever used. */
  policy: TrustPolicy;
  /** Limits of a published archive (docs/limits.md); one larger than maxBytes is not fetched. */
  limits?: Partial<ArchiveLimits>;
  /** Published archives found not to match their layer (ArchiveStore.isDistrusted). */
  isDistrusted?: (archiveDigest: string) => Promise<boolean>;
  /** How long one listing of an image's published archives is reused (default 60 s). */
  listingTtlMs?: number;
}

/** Finds, fetches and checks the published archive of a layer (LazyLayers asks before indexing one). */
export class PublishedArchives {
  private readonly listings = new Map<string, { expires: number; listing: Promise<ImageListing> }>();

  constructor(private readonly opts: PublishedArchivesOptions) {}

  /**
   * The published archive of the layer, trusted and checked, with its provenance and its file's bytes
   * (exactly those the archive was decoded from); undefined when the image
   * has none that passes (or no manifest digest is known, or the policy trusts nothing published). Never
   * rejects: every failure is logged here.
   */
  async find(where: LayerLocation): Promise<{ archive: ClipArchive; provenance: ArchiveProvenance; bytes: Buffer } | undefined> {
    const { registry, logger, policy } = this.opts;
    if (!where.manifestDigest || !policy.trustsPublished) return undefined;
    const manifestDigest = where.manifestDigest;
    let ref: ImageReference;
    let listing: ImageListing;
    try {
      ref = parseReference(where.imageRef);
      listing = await this.listing(ref, manifestDigest);
    } catch (err) {
      logger.warn(`looking for published archives of ${where.imageRef}@${where.manifestDigest}: ${errorMessage(err)}`);
      return undefined;
    }
    const layer = listing.layers.get(where.layerDigest);
    const candidates = listing.candidates.get(where.layerDigest) ?? [];
    if (!layer || candidates.length === 0) {
      logger.debug(`layer ${where.layerDigest}: no published archive`);
      return undefined;
    }
    const limits = archiveLimits({ maxBytes: DEFAULT_PUBLISHED_ARCHIVE_BYTES, ...this.opts.limits });
    const { maxBytes } = limits;
    for (const { artifact, descriptor } of candidates) {
      try {
        // Everything that can be decided from the artifact manifest is, before a byte of the archive is fetched.
        const { provenance, signedDiffId } = trustOf(policy, descriptor, { repository: ref.name, layerDigest: where.layerDigest, manifestDigest });
        if (!Number.isSafeInteger(descriptor.size) || descriptor.size <= 0 || descriptor.size > maxBytes) {
          throw new InvalidArgumentError(`its descriptor says ${descriptor.size} bytes; the limit is ${maxBytes} ([limits] max_published_archive_size)`);
        }
        if (await this.opts.isDistrusted?.(descriptor.digest)) throw new UntrustedError('it was found not to match its layer before');
        const fetchedAt = performance.now();
        const bytes = await registry.fetchBlob(ref, descriptor, { maxBytes, what: 'published archive' });
        const checkedAt = performance.now();
        const archive = await checkPublishedArchive(bytes, descriptor, layer, signedDiffId, limits);
        logger.info(
          `layer ${where.layerDigest}: using the archive ${descriptor.digest} (${bytes.length} bytes, ${describeProvenance(provenance)}) published in ${artifact}` +
            ` (fetched in ${(checkedAt - fetchedAt).toFixed(0)} ms, checked in ${(performance.now() - checkedAt).toFixed(0)} ms)`,
        );
        return { archive, provenance, bytes };
      } catch (err) {
        logger.warn(`layer ${where.layerDigest}: rejected the published archive ${descriptor.digest} (artifact ${artifact}): ${errorMessage(err)}`);
      }
    }
    logger.warn(`layer ${where.layerDigest}: no published archive passed its checks; indexing the layer locally`);
    return undefined;
  }

  private listing(ref: ImageReference, manifestDigest: string): Promise<ImageListing> {
    const key = `${ref.name}@${manifestDigest}`;
    const now = Date.now();
    for (const [k, v] of this.listings) if (v.expires <= now) this.listings.delete(k);
    const cached = this.listings.get(key);
    if (cached) return cached.listing;
    const listing = this.list(ref, manifestDigest);
    this.listings.set(key, { expires: now + (this.opts.listingTtlMs ?? LISTING_TTL_MS), listing });
    // A failed listing is not remembered: the next layer asks again.
    listing.catch(() => {
      if (this.listings.get(key)?.listing === listing) this.listings.delete(key);
    });
    return listing;
  }

  private async list(ref: ImageReference, manifestDigest: string): Promise<ImageListing> {
    const { registry, logger } = this.opts;
    // The image manifest (for its layer descriptors) and the published artifacts are asked for side by side.
    const imageP = registry.resolve(ref.withDigest(manifestDigest));
    const artifactsP = newestArchiveArtifacts(registry, ref, manifestDigest, logger);
    artifactsP.catch(() => undefined);
    const image = await imageP;
    const listing: ImageListing = { layers: new Map(image.layers.map((l) => [l.digest, l])), candidates: new Map() };
    for (const artifact of await artifactsP) {
      for (const descriptor of artifact.layers) {
        const layerDigest = descriptor.annotations?.[ANNOTATION_LAYER_DIGEST];
        if (descriptor.mediaType !== ARCHIVE_MEDIA_TYPE || layerDigest === undefined) continue;
        const list = listing.candidates.get(layerDigest) ?? [];
        list.push({ artifact: artifact.digest, descriptor });
        listing.candidates.set(layerDigest, list);
      }
    }
    // An archive with a start-up profile first, whatever order the registry lists artifacts in (the referrers
    // API has none); otherwise newest first. Trust is still decided for each candidate on its own.
    const profiled = (c: Candidate): number => (c.descriptor.annotations?.[ANNOTATION_STARTUP_PROFILE] === 'true' ? 0 : 1);
    for (const list of listing.candidates.values()) list.sort((x, y) => profiled(x) - profiled(y));
    return listing;
  }
}

/** A published archive artifact of an image: its manifest's digest and the descriptors it lists. */
export interface ArchiveArtifact {
  digest: string;
  /** The artifact manifest's `layers`: clip archives, each annotated with the layer it describes. */
  layers: Descriptor[];
}

/**
 * The newest archive artifacts published for the image `manifestDigest` (at most MAX_ARTIFACTS, newest
 * first), each checked to be a clip archive artifact whose subject is that image; one that is not is
 * logged and left out.
 */
export async function newestArchiveArtifacts(registry: RegistryClient, ref: ImageReference, manifestDigest: string, logger: Logger): Promise<ArchiveArtifact[]> {
  const { referrers, via } = await listReferrers(registry, ref, manifestDigest, { artifactType: ARCHIVE_ARTIFACT_TYPE });
  logger.debug(`${ref.name}@${manifestDigest}: ${referrers.length} published archive artifact(s) (referrers ${via === 'api' ? 'API' : 'tag schema'})`);
  const newest = referrers.slice(-MAX_ARTIFACTS).reverse();
  // Fetched side by side (at most MAX_ARTIFACTS), each a round trip on the pull's critical path.
  const fetches = newest.map((referrer) => registry.fetchManifest(ref.withDigest(referrer.digest)));
  for (const fetch of fetches) fetch.catch(() => undefined);
  const artifacts: ArchiveArtifact[] = [];
  for (const [i, referrer] of newest.entries()) {
    try {
      const fetched = await fetches[i]!;
      if (fetched.parsed.kind !== 'manifest') throw new InvalidArgumentError('not a manifest');
      const manifest = fetched.parsed.manifest as ArtifactManifest;
      if ((manifest.artifactType ?? manifest.config.mediaType) !== ARCHIVE_ARTIFACT_TYPE) throw new InvalidArgumentError(`artifact type ${manifest.artifactType}`);
      if (manifest.subject?.digest !== manifestDigest) throw new InvalidArgumentError(`its subject is ${manifest.subject?.digest ?? '(none)'}`);
      artifacts.push({ digest: referrer.digest, layers: manifest.layers });
    } catch (err) {
      logger.warn(`${ref.name}: ignoring published archives ${referrer.digest}: ${errorMessage(err)}`);
    }
  }
  return artifacts;
}
