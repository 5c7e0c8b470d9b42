/**
 * Referrers of a manifest (OCI distribution spec 1.1): the manifests whose `subject` names it, such as
 * signatures or clip's published archives.
 *
 * * Where the registry has the referrers API, `GET /v2/<name>/referrers/<digest>[?artifactType=…]`
 *   answers an OCI index listing them (the registry maintains it as manifests with a subject are pushed).
 * * A registry without it (distribution 2.8, Debian's docker-registry) answers 404, and clients use the
 *   referrers tag schema instead: an OCI index tagged `<alg>-<hex>` of the subject's digest
 *   (`sha256-0123…`) that whoever pushes a referrer keeps up to date (read, append, put back; two
 *   concurrent pushers can lose one entry, as the spec acknowledges).
 *
 * Index entries carry the referrer's `artifactType` (and may carry its annotations), so a client can pick
 * the referrers it understands without fetching each one.
 */
import { isClipError } from '../errors';
import { validateDigest } from './digest';
import { endpointUrl } from './endpoint';
import { Descriptor, ImageIndex, parseManifest } from './manifest';
import { MediaTypes } from './media-types';
import { pushManifest } from './push';
import { readLimited } from './read-body';
import { ImageReference, parseReference } from './reference';
import { MAX_MANIFEST_BYTES, RegistryClient } from './registry-client';
import { RegistryNotFoundError, RegistryProtocolError } from './registry-errors';
import { abortReason, retryTransient } from './retry-policy';

/** A descriptor in a referrers list. */
export interface Referrer extends Descriptor {
  artifactType?: string;
}

export interface ReferrersList {
  referrers: Referrer[];
  /** Where the list came from: the referrers API, or the tag schema's index (absent tag: empty list). */
  via: 'api' | 'tag';
}

export interface ReferrersOptions {
  /** Only referrers of this artifact type. */
  artifactType?: string;
  signal?: AbortSignal;
}

/** The referrers tag schema's tag for a subject digest: `sha256:<hex>` → `sha256-<hex>`. */
export function referrersTag(subjectDigest: string): string {
  return validateDigest(subjectDigest).replace(':', '-').slice(0, 128);
}

function toReference(ref: ImageReference | string): ImageReference {
  return typeof ref === 'string' ? parseReference(ref) : ref;
}

function tagReference(reference: ImageReference, subjectDigest: string): ImageReference {
  return new ImageReference(reference.domain, reference.path, referrersTag(subjectDigest), undefined);
}

function ofType(referrers: Referrer[], artifactType: string | undefined): Referrer[] {
  return artifactType === undefined ? referrers : referrers.filter((r) => r.artifactType === artifactType);
}

/** The referrers API's answer from the first endpoint that has one; RegistryNotFoundError when none has it. */
async function fromApi(client: RegistryClient, reference: ImageReference, subjectDigest: string, options: ReferrersOptions): Promise<Referrer[]> {
  const { http, endpoints, retry, logger } = await client.connection(reference, ['pull', 'resolve']);
  const { signal } = options;
  let lastError: unknown;
  for (const endpoint of endpoints) {
    const url = endpointUrl(endpoint, reference.domain, reference.path, 'referrers', subjectDigest);
    if (options.artifactType !== undefined) url.searchParams.set('artifactType', options.artifactType);
    const what = `${reference.name} referrers of ${subjectDigest}`;
    try {
      return await retryTransient({ policy: retry, logger, what: `GET ${what}`, signal }, async () => {
        const res = await http.send({ method: 'GET', endpoint, url, scope: reference.scope(), accept: MediaTypes.ociIndex, signal });
        const body = await readLimited(res, MAX_MANIFEST_BYTES, what);
        const contentType = res.headers['content-type'];
        const parsed = parseManifest(body, typeof contentType === 'string' ? contentType : undefined, what);
        if (parsed.kind !== 'index') throw new RegistryProtocolError(`${what}: the registry answered a manifest, not an index`);
        return parsed.index.manifests as Referrer[];
      });
    } catch (err) {
      if (signal?.aborted) throw abortReason(signal);
      if (!isClipError(err)) throw err;
      // A 404 from one endpoint and a failure from another still mean: use the tag schema.
      if (!(lastError instanceof RegistryNotFoundError)) lastError = err;
    }
  }
  throw lastError;
}

/** The tag schema's index for a subject, or undefined when the tag does not exist. */
async function tagIndex(client: RegistryClient, reference: ImageReference, subjectDigest: string, signal?: AbortSignal): Promise<ImageIndex | undefined> {
  const tag = tagReference(reference, subjectDigest);
  try {
    const fetched = await client.fetchManifest(tag, { signal });
    if (fetched.parsed.kind !== 'index') throw new RegistryProtocolError(`${tag}: the referrers tag names a manifest, not an index`);
    return fetched.parsed.index;
  } catch (err) {
    if (err instanceof RegistryNotFoundError) return undefined;
    throw err;
  }
}

/** How long what a registry answered (API or tag schema) is remembered before both are asked again. */
const REMEMBERED_MS = 10 * 60_000;

/** Per client, per registry host: which of the two answered last, and until when that is trusted. */
const answeredBy = new WeakMap<RegistryClient, Map<string, { via: 'api' | 'tag'; until: number }>>();

function remembered(client: RegistryClient, domain: string): 'api' | 'tag' | undefined {
  const known = answeredBy.get(client)?.get(domain);
  return known && known.until > Date.now() ? known.via : undefined;
}

function remember(client: RegistryClient, domain: string, via: 'api' | 'tag'): void {
  let hosts = answeredBy.get(client);
  if (!hosts) answeredBy.set(client, (hosts = new Map()));
  hosts.set(domain, { via, until: Date.now() + REMEMBERED_MS });
}

/**
 * Lists the referrers of `subjectDigest` in the reference's repository, through the API or the tag schema.
 * A registry this client has not asked lately is asked both at once (the tag schema's answer is used only
 * when the API answers 404), so a registry without the API costs one round trip, not two; which of the two
 * answered is then remembered per registry host for a while, and only that one is asked. A remembered API
 * that answers 404 still falls back to the tag schema.
 */
export async function listReferrers(client: RegistryClient, ref: ImageReference | string, subjectDigest: string, options: ReferrersOptions = {}): Promise<ReferrersList> {
  const reference = toReference(ref);
  validateDigest(subjectDigest);
  const known = remembered(client, reference.domain);
  const fromTag = (): Promise<ReferrersList> =>
    tagIndex(client, reference, subjectDigest, options.signal).then((index) => ({
      referrers: ofType((index?.manifests ?? []) as Referrer[], options.artifactType),
      via: 'tag',
    }));
  if (known === 'tag') return fromTag();
  // Unless the API is known to answer, the tag is asked for at the same time; its outcome waits here.
  const tagEarly = known === undefined ? fromTag() : undefined;
  tagEarly?.catch(() => undefined);
  try {
    const referrers = await fromApi(client, reference, subjectDigest, options);
    remember(client, reference.domain, 'api');
    return { referrers: ofType(referrers, options.artifactType), via: 'api' };
  } catch (err) {
    if (!(err instanceof RegistryNotFoundError)) throw err;
  }
  const listed = await (tagEarly ?? fromTag());
  remember(client, reference.domain, 'tag');
  return listed;
}

/**
 * Adds a referrer to the subject's tag schema index (creating the index when the tag does not exist).
 * Resolves false when the index already lists it. For registries without the referrers API.
 */
export async function addToReferrersTag(
  client: RegistryClient,
  ref: ImageReference | string,
  subjectDigest: string,
  referrer: Referrer,
  options: { signal?: AbortSignal } = {},
): Promise<boolean> {
  const reference = toReference(ref);
  const existing = await tagIndex(client, reference, subjectDigest, options.signal);
  const manifests = (existing?.manifests ?? []) as Referrer[];
  if (manifests.some((m) => m.digest === referrer.digest)) return false;
  const index = { schemaVersion: 2, mediaType: MediaTypes.ociIndex, manifests: [...manifests, referrer] };
  await pushManifest(client, reference, Buffer.from(JSON.stringify(index)), MediaTypes.ociIndex, { tag: referrersTag(subjectDigest), signal: options.signal });
  return true;
}
