/**
 * OCI and Docker schema 2 manifests and indexes (manifest lists): the shapes clip reads and a parser
 * that checks them. The media type comes from the body's `mediaType` when present (it is covered by
 * the digest), else from Content-Type, else from the shape of the document. Docker schema 1 is
 * refused with an explanation.
 */
import { validateDigest } from './digest';
import { InvalidArgumentError } from '../errors';
import { UnsupportedManifestError } from './registry-errors';
import { MediaTypes, baseMediaType, isIndexMediaType, isManifestMediaType, isSchema1MediaType } from './media-types';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string; 'os.version'?: string; 'os.features'?: string[] };
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export type ParsedManifest =
  | { kind: 'manifest'; mediaType: string; manifest: ImageManifest }
  | { kind: 'index'; mediaType: string; index: ImageIndex };

const SCHEMA1_HELP =
  'Docker schema 1 manifests are deprecated and not supported (containerd 2.1 removed them too); re-push the image as Docker schema 2 or OCI, e.g. with skopeo copy --format v2s2';

function invalid(source: string, what: string): InvalidArgumentError {
  return new InvalidArgumentError(`${source}: invalid manifest: ${what}`);
}

function parseDescriptor(value: unknown, where: string, source: string): Descriptor {
  if (typeof value !== 'object' || value === null) throw invalid(source, `${where} is not an object`);
  const d = value as Record<string, unknown>;
  if (typeof d['mediaType'] !== 'string' || d['mediaType'] === '') throw invalid(source, `${where}.mediaType missing`);
  if (typeof d['digest'] !== 'string') throw invalid(source, `${where}.digest missing`);
  try {
    validateDigest(d['digest']);
  } catch (err) {
    throw invalid(source, `${where}.digest: ${(err as Error).message}`);
  }
  if (typeof d['size'] !== 'number' || !Number.isSafeInteger(d['size']) || d['size'] < 0) throw invalid(source, `${where}.size must be a non-negative integer`);
  return value as Descriptor;
}

function shapeMediaType(doc: Record<string, unknown>): string | undefined {
  if (doc['schemaVersion'] === 1) return MediaTypes.dockerSchema1;
  if (Array.isArray(doc['manifests'])) return MediaTypes.ociIndex;
  if (doc['config'] !== undefined && Array.isArray(doc['layers'])) return MediaTypes.ociManifest;
  return undefined;
}

/** Parses manifest bytes; `source` names the manifest in errors (e.g. the reference). */
export function parseManifest(body: Buffer, contentType: string | undefined, source: string): ParsedManifest {
  const headerType = baseMediaType(contentType);
  if (isSchema1MediaType(headerType)) throw new UnsupportedManifestError(`${source}: ${SCHEMA1_HELP}`);
  let doc: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    doc = parsed as Record<string, unknown>;
  } catch {
    throw invalid(source, 'not a JSON object');
  }
  const bodyType = typeof doc['mediaType'] === 'string' ? doc['mediaType'] : undefined;
  const known = (t: string): boolean => isIndexMediaType(t) || isManifestMediaType(t) || isSchema1MediaType(t);
  const mediaType = bodyType ?? (known(headerType) ? headerType : shapeMediaType(doc));
  if (mediaType === undefined) throw invalid(source, `cannot tell its type (Content-Type ${JSON.stringify(headerType)}, no mediaType)`);
  if (isSchema1MediaType(mediaType) || doc['schemaVersion'] === 1) throw new UnsupportedManifestError(`${source}: ${SCHEMA1_HELP}`);
  if (!known(mediaType)) throw new UnsupportedManifestError(`${source}: unsupported manifest media type ${JSON.stringify(mediaType)}`);
  if (doc['schemaVersion'] !== 2) throw invalid(source, `schemaVersion ${JSON.stringify(doc['schemaVersion'])}, expected 2`);

  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(doc['manifests'])) throw invalid(source, 'index without a manifests array');
    doc['manifests'].forEach((m, i) => parseDescriptor(m, `manifests[${i}]`, source));
    return { kind: 'index', mediaType, index: doc as unknown as ImageIndex };
  }
  parseDescriptor(doc['config'], 'config', source);
  if (!Array.isArray(doc['layers'])) throw invalid(source, 'manifest without a layers array');
  doc['layers'].forEach((l, i) => parseDescriptor(l, `layers[${i}]`, source));
  return { kind: 'manifest', mediaType, manifest: doc as unknown as ImageManifest };
}
