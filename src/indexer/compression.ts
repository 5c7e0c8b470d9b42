/**
 * Which compression a layer blob uses: from its media type when that is explicit, from its first bytes
 * (magic numbers, as containerd's compression.DetectCompression) when it is not.
 */
import type { Compression } from '../archive/types';
import { InvalidArgumentError } from '../errors';
import { UnsupportedCompressionError } from './errors';

export type DetectedCompression = Compression;

/** How many leading bytes detectCompression needs to tell every format apart. */
export const MAGIC_LENGTH = 4;

const GZIP_MAGIC = [0x1f, 0x8b, 0x08]; // ID1, ID2, CM = deflate
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

/** Sniffs the compression from the blob's first MAGIC_LENGTH bytes; anything unrecognised is 'none'. */
export function detectCompression(firstBytes: Uint8Array): DetectedCompression {
  if (startsWith(firstBytes, GZIP_MAGIC)) return 'gzip';
  if (startsWith(firstBytes, ZSTD_MAGIC)) return 'zstd';
  return 'none';
}

/**
 * The compression a layer media type declares, or undefined when it does not say (Docker's plain tar):
 * only then does layerCompression need the blob's first bytes.
 */
export function declaredCompression(mediaType: string): DetectedCompression | undefined {
  if (/[+.]gzip$/.test(mediaType)) return 'gzip';
  if (/[+.]zstd$/.test(mediaType)) return 'zstd';
  if (/^application\/vnd\.oci\.image\.layer\.(nondistributable\.)?v1\.tar$/.test(mediaType)) return 'none';
  return undefined;
}

function unsupported(compression: string, mediaType: string): UnsupportedCompressionError {
  return new UnsupportedCompressionError(
    compression,
    `layer media type ${mediaType}: ${compression} layers are not supported for lazy loading`,
  );
}

/**
 * The compression to index a layer with. Throws UnsupportedCompressionError for encrypted layers (the
 * caller should unpack those normally), InvalidArgumentError when the media type is ambiguous and no
 * first bytes were given.
 */
export function layerCompression(mediaType: string, firstBytes?: Uint8Array): Compression {
  if (mediaType.endsWith('+encrypted')) throw unsupported('encrypted', mediaType);
  const compression = declaredCompression(mediaType) ?? (firstBytes && detectCompression(firstBytes));
  if (compression === undefined) {
    throw new InvalidArgumentError(
      `layer media type ${mediaType}: compression is not declared; the blob's first bytes are needed`,
    );
  }
  return compression;
}

/** Checks a blob's first bytes against the compression it is about to be indexed with. */
export function checkMagic(compression: Compression, firstBytes: Uint8Array, layerDigest: string): void {
  const found = detectCompression(firstBytes);
  if (found !== compression) {
    const data = found === 'none' ? `not ${compression}` : found;
    throw new InvalidArgumentError(`layer ${layerDigest}: indexed as ${compression === 'none' ? 'uncompressed' : compression} but its data is ${data}`);
  }
}
