/** The image config blob (OCI image-spec config.md): the part clip needs is `rootfs.diff_ids`. */
import { validateDigest } from './digest';
import { InvalidArgumentError } from '../errors';

export interface ImageConfig {
  /** Digest of the config blob (verified). */
  digest: string;
  /** The exact bytes. */
  raw: Buffer;
  /** The parsed document. */
  config: Record<string, unknown>;
  /** Uncompressed layer digests, bottom layer first. */
  diffIds: string[];
}

export function parseImageConfig(raw: Buffer, digest: string, source: string): ImageConfig {
  let config: Record<string, unknown>;
  try {
    const doc: unknown = JSON.parse(raw.toString('utf8'));
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error('not an object');
    config = doc as Record<string, unknown>;
  } catch {
    throw new InvalidArgumentError(`${source}: image config is not a JSON object`);
  }
  const rootfs = config['rootfs'] as { diff_ids?: unknown } | undefined;
  const diffIds = rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.some((d) => typeof d !== 'string')) {
    throw new InvalidArgumentError(`${source}: image config has no rootfs.diff_ids array`);
  }
  try {
    diffIds.forEach((d) => validateDigest(d as string));
  } catch (err) {
    throw new InvalidArgumentError(`${source}: rootfs.diff_ids: ${(err as Error).message}`, { cause: err });
  }
  return { digest, raw, config, diffIds: diffIds as string[] };
}
