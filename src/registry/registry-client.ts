/**
 * The registry client: resolves image references to platform manifests, fetches image configs and
 * opens blobs for range reads. One instance holds the connection pools, the token cache and the
 * configuration; share it, and close() it at shutdown.
 *
 *   const client = new RegistryClient({ hosts: { configDir: '/etc/containerd/certs.d' },
 *                                       credentials: await DockerCredentials.fromFile(path) });
 *   const image = await client.resolve('busybox');
 *   const { diffIds } = await client.fetchConfig(image.reference, image.config);
 *   const blob = await client.openBlob(image.reference, image.layers[0].digest);
 *   const bytes = await blob.readRange(0, 4096);
 */
import { NotFoundError, isClipError } from '../errors';
import { Authorizer } from './authorizer';
import { BlobLocator } from './blob-locator';
import { CredentialProvider } from './credentials';
import { computeDigest, validateDigest, verifyDigest } from './digest';
import { HostCapability, RegistryEndpoint, endpointUrl } from './endpoint';
import { DigestMismatchError, RegistryProtocolError } from './registry-errors';
import { HttpTransport, RequestObserver, Timeouts } from './http-transport';
import { ImageConfig, parseImageConfig } from './image-config';
import { RegistryLogger, silentLogger } from './logger';
import { Descriptor, ImageManifest, ParsedManifest, parseManifest } from './manifest';
import { MANIFEST_ACCEPT } from './media-types';
import { Platform, formatPlatform, hostPlatform, normalizePlatform, selectPlatformEntry } from './platform';
import { readLimited } from './read-body';
import { ImageReference, parseReference } from './reference';
import { RegistryHosts, RegistryHostsOptions } from './registry-hosts';
import { RegistryHttp } from './registry-http';
import { RemoteBlob } from './remote-blob';
import { ManifestMemo } from './manifest-memo';
import { RetryPolicy, abortReason, retryTransient, untilAborted } from './retry-policy';
import { TokenFetcher } from './token-fetcher';

/** containerd's limit for manifests and configs held in memory. */
export const MAX_MANIFEST_BYTES = 8 << 20;
/** Nested indexes followed before giving up. */
const MAX_INDEX_DEPTH = 4;

export interface RegistryClientOptions {
  /** Hosts directory and plain-HTTP setting (registry-hosts.ts). */
  hosts?: RegistryHostsOptions;
  credentials?: CredentialProvider;
  logger?: RegistryLogger;
  timeouts?: Partial<Timeouts>;
  retry?: Partial<RetryPolicy>;
  /** Platform chosen from indexes; default: linux and this machine's architecture. */
  platform?: Platform;
  userAgent?: string;
  /** Told about every request attempt (metrics). */
  observer?: RequestObserver;
}

export interface ResolveOptions {
  platform?: Platform;
  signal?: AbortSignal;
}

export interface ResolvedImage {
  /** The reference as given, normalised. */
  reference: ImageReference;
  /** Digest of the platform manifest (verified). */
  digest: string;
  /** Size of the platform manifest in bytes (with mediaType and digest: its descriptor). */
  size: number;
  mediaType: string;
  /** The platform manifest's bytes exactly as the registry sent them (their sha256 is `digest`). */
  bytes: Buffer;
  manifest: ImageManifest;
  config: Descriptor;
  layers: Descriptor[];
  /** Digest of the index the manifest was chosen from, when the reference named an index. */
  indexDigest?: string;
  /** The platform of the chosen index entry. */
  platform?: Platform;
}

/** A manifest or index as the registry stores it, not followed further. */
export interface FetchedManifest {
  digest: string;
  size: number;
  /** The body exactly as received (their sha256 is `digest`): what a content store keeps. */
  bytes: Buffer;
  parsed: ParsedManifest;
}

/** What push.ts and referrers.ts send their requests with (not part of the public API). */
export interface RegistryConnection {
  http: RegistryHttp;
  endpoints: RegistryEndpoint[];
  retry: RetryPolicy;
  logger: RegistryLogger;
}

export class RegistryClient {
  private readonly transport: HttpTransport;
  private readonly http: RegistryHttp;
  private readonly hosts: RegistryHosts;
  private readonly logger: RegistryLogger;
  private readonly platform: Platform;
  /** Manifests fetched by digest (manifest-memo.ts). */
  private readonly manifests = new ManifestMemo();

  constructor(options: RegistryClientOptions = {}) {
    this.logger = options.logger ?? silentLogger;
    this.transport = new HttpTransport({
      timeouts: options.timeouts,
      retry: options.retry,
      logger: this.logger,
      userAgent: options.userAgent,
      observer: options.observer,
    });
    const authorizer = new Authorizer(new TokenFetcher(this.transport), { credentials: options.credentials });
    this.http = new RegistryHttp(this.transport, authorizer);
    this.hosts = new RegistryHosts(options.hosts);
    this.platform = normalizePlatform(options.platform ?? hostPlatform());
  }

  /** Resolves a reference to the manifest for one platform (following an index), with digests verified. */
  async resolve(ref: ImageReference | string, options: ResolveOptions = {}): Promise<ResolvedImage> {
    const reference = typeof ref === 'string' ? parseReference(ref) : ref;
    const platform = normalizePlatform(options.platform ?? this.platform);
    const { signal } = options;
    const capabilities: HostCapability[] = reference.digest ? ['pull'] : ['pull', 'resolve'];
    let fetched = await this.getManifest(reference, reference.object, reference.digest, undefined, capabilities, signal);
    let indexDigest: string | undefined;
    let chosen: Descriptor | undefined;
    for (let depth = 0; fetched.parsed.kind === 'index'; depth++) {
      if (depth >= MAX_INDEX_DEPTH) throw new RegistryProtocolError(`${reference}: indexes nested more than ${MAX_INDEX_DEPTH} deep`);
      indexDigest ??= fetched.digest;
      chosen = selectPlatformEntry(fetched.parsed.index.manifests, platform);
      this.logger.debug(`${reference}: index ${fetched.digest} -> ${chosen.digest} for ${formatPlatform(platform)}`);
      fetched = await this.getManifest(reference, chosen.digest, chosen.digest, chosen.size, ['pull'], signal);
    }
    const parsed = fetched.parsed;
    if (parsed.kind !== 'manifest') throw new RegistryProtocolError(`${reference}: expected a manifest`);
    const { manifest, mediaType } = parsed;
    return {
      reference,
      digest: fetched.digest,
      size: fetched.size,
      mediaType,
      bytes: fetched.bytes,
      manifest,
      config: manifest.config,
      layers: manifest.layers,
      indexDigest,
      platform: chosen?.platform ? normalizePlatform(chosen.platform) : undefined,
    };
  }

  /**
   * Fetches the manifest or index the reference names (its digest, else its tag) as stored, without
   * following an index; verified like resolve(). RegistryNotFoundError when there is none.
   */
  async fetchManifest(ref: ImageReference | string, options: { signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    const reference = typeof ref === 'string' ? parseReference(ref) : ref;
    const capabilities: HostCapability[] = reference.digest ? ['pull'] : ['pull', 'resolve'];
    return this.getManifest(reference, reference.object, reference.digest, undefined, capabilities, options.signal);
  }

  /** Fetches and verifies an image config blob (`rootfs.diff_ids` are the uncompressed layer digests). */
  async fetchConfig(ref: ImageReference | string, config: Descriptor, options: { signal?: AbortSignal } = {}): Promise<ImageConfig> {
    const reference = typeof ref === 'string' ? parseReference(ref) : ref;
    const raw = await this.fetchBlob(reference, config, { ...options, what: 'config' });
    return parseImageConfig(raw, config.digest, `${reference}: config ${config.digest}`);
  }

  /**
   * Fetches a whole small blob (a config, an artifact) into memory, verified against its descriptor's size
   * and digest; refused up front when the descriptor says it is larger than `maxBytes` (default
   * MAX_MANIFEST_BYTES). `what` names the blob in errors (default "blob").
   */
  async fetchBlob(
    ref: ImageReference | string,
    descriptor: Descriptor,
    options: { signal?: AbortSignal; maxBytes?: number; what?: string } = {},
  ): Promise<Buffer> {
    const reference = typeof ref === 'string' ? parseReference(ref) : ref;
    const digest = validateDigest(descriptor.digest);
    const limit = options.maxBytes ?? MAX_MANIFEST_BYTES;
    const what = `${reference}: ${options.what ?? 'blob'} ${digest}`;
    if (descriptor.size > limit) throw new RegistryProtocolError(`${what} is ${descriptor.size} bytes, more than ${limit}`);
    const locator = new BlobLocator(this.http, reference, digest, await this.endpoints(reference, ['pull']), this.logger);
    const { signal } = options;
    const raw = await retryTransient({ policy: this.transport.retry, logger: this.logger, what, signal }, async () => {
      const res = await locator.send({ method: 'GET', expectedBytes: descriptor.size, signal });
      return readLimited(res, limit, what);
    });
    if (raw.length !== descriptor.size) throw new DigestMismatchError(`${what}: ${raw.length} bytes, the descriptor says ${descriptor.size}`);
    verifyDigest(raw, digest, what);
    return raw;
  }

  /** Opens a blob of the reference's repository for range reads and streaming; resolves its size first. */
  async openBlob(ref: ImageReference | string, digest: string, options: { signal?: AbortSignal; size?: number } = {}): Promise<RemoteBlob> {
    const reference = typeof ref === 'string' ? parseReference(ref) : ref;
    validateDigest(digest);
    const locator = new BlobLocator(this.http, reference, digest, await this.endpoints(reference, ['pull']), this.logger);
    return RemoteBlob.open(locator, this.transport.retry, this.transport.timeouts, this.logger, options);
  }

  /** The authorized HTTP layer and the endpoints with `capabilities` for a repository (push.ts, referrers.ts). */
  async connection(reference: ImageReference, capabilities: readonly HostCapability[]): Promise<RegistryConnection> {
    return { http: this.http, endpoints: await this.endpoints(reference, capabilities), retry: this.transport.retry, logger: this.logger };
  }

  /** Closes the connection pools; in-flight requests finish first. */
  async close(): Promise<void> {
    await this.transport.close();
  }

  private async endpoints(reference: ImageReference, capabilities: readonly HostCapability[]): Promise<RegistryEndpoint[]> {
    const all = await this.hosts.endpoints(reference.domain);
    const usable = all.filter((e) => capabilities.every((c) => e.capabilities.includes(c)));
    if (usable.length === 0) {
      throw new NotFoundError(`${reference.domain}: no configured host has the ${capabilities.join(' and ')} capabilit${capabilities.length > 1 ? 'ies' : 'y'}`);
    }
    return usable;
  }

  /**
   * GETs `/manifests/<object>` from each usable endpoint in turn until one answers. With an expected
   * digest the body must hash to it; otherwise its digest is the registry's Docker-Content-Digest
   * (verified) or the sha256 of the body.
   */
  private async getManifest(
    reference: ImageReference,
    object: string,
    expectedDigest: string | undefined,
    expectedSize: number | undefined,
    capabilities: readonly HostCapability[],
    signal?: AbortSignal,
  ): Promise<FetchedManifest> {
    if (expectedDigest !== undefined) {
      const digest = expectedDigest;
      // Shared by every caller meanwhile: fetched without one caller's signal (it is bounded by the
      // transport's timeouts and retries), and each caller stops waiting when its own signal aborts.
      const shared = this.manifests.get(`${reference.domain}/${reference.path}`, digest, () =>
        this.fetchManifestFrom(reference, object, digest, expectedSize, capabilities),
      );
      return untilAborted(shared, signal);
    }
    return this.fetchManifestFrom(reference, object, expectedDigest, expectedSize, capabilities, signal);
  }

  private async fetchManifestFrom(
    reference: ImageReference,
    object: string,
    expectedDigest: string | undefined,
    expectedSize: number | undefined,
    capabilities: readonly HostCapability[],
    signal?: AbortSignal,
  ): Promise<FetchedManifest> {
    const what = `${reference.name}@${object}`;
    let lastError: unknown;
    const endpoints = await this.endpoints(reference, capabilities);
    for (const [i, endpoint] of endpoints.entries()) {
      const url = endpointUrl(endpoint, reference.domain, reference.path, 'manifests', object);
      try {
        return await retryTransient({ policy: this.transport.retry, logger: this.logger, what: `GET ${what}`, signal }, async () => {
          const res = await this.http.send({ method: 'GET', endpoint, url, scope: reference.scope(), accept: MANIFEST_ACCEPT, signal });
          const body = await readLimited(res, MAX_MANIFEST_BYTES, what);
          const contentType = res.headers['content-type'];
          return this.checkManifest(body, typeof contentType === 'string' ? contentType : undefined, res.headers['docker-content-digest'], expectedDigest, expectedSize, what);
        });
      } catch (err) {
        if (signal?.aborted) throw abortReason(signal);
        if (!isClipError(err)) throw err;
        lastError = err;
        if (i < endpoints.length - 1) this.logger.debug(`${what}: ${endpoint.apiRoot.host} failed (${err.message}); trying the next endpoint`);
      }
    }
    throw lastError;
  }

  private checkManifest(
    body: Buffer,
    contentType: string | undefined,
    headerDigest: string | string[] | undefined,
    expectedDigest: string | undefined,
    expectedSize: number | undefined,
    what: string,
  ): FetchedManifest {
    if (expectedSize !== undefined && body.length !== expectedSize) {
      throw new DigestMismatchError(`${what}: manifest is ${body.length} bytes, the index says ${expectedSize}`);
    }
    let digest: string;
    if (expectedDigest !== undefined) {
      verifyDigest(body, expectedDigest, what);
      digest = expectedDigest;
    } else {
      const claimed = typeof headerDigest === 'string' ? headerDigest.trim() : undefined;
      let valid = false;
      if (claimed) {
        try {
          validateDigest(claimed);
          valid = true;
        } catch {
          this.logger.debug(`${what}: ignoring invalid Docker-Content-Digest header`);
        }
      }
      if (valid) verifyDigest(body, claimed!, `${what} (Docker-Content-Digest)`);
      digest = valid ? claimed! : computeDigest(body);
    }
    return { digest, size: body.length, bytes: body, parsed: parseManifest(body, contentType, what) };
  }
}
