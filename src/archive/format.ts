/**
 * Encoding and decoding of a whole clip archive file: header (header.ts), protobuf body (body-codec.ts,
 * body-decoder.ts) and the archive's rules (validate.ts). Both directions validate, so no invalid archive
 * is ever written and none is ever handed to a caller. Decoding stays within the archive limits
 * (limits.ts): the header's fields are checked before the checksum is computed, and the body is decoded
 * entry by entry, failing at the first one over a limit. Encoding is deterministic: equal archives give
 * equal bytes.
 */
import { Archive as ArchiveBody } from '../generated/clip/archive/v1/archive';
import { toBody } from './body-codec';
import { decodeBody } from './body-decoder';
import { frameBody, unframeBody } from './header';
import { archiveLimits, type ArchiveLimits } from './limits';
import type { ClipArchive } from './types';
import { validateArchive } from './validate';

/** The file bytes of `archive`; throws ArchiveFormatError if the archive breaks the format's rules. */
export function encodeArchive(archive: ClipArchive): Buffer {
  validateArchive(archive);
  return frameBody(ArchiveBody.encode(toBody(archive)).finish());
}

/**
 * The archive in `file`; throws ArchiveFormatError if it is not a valid clip archive this reader supports,
 * ArchiveLimitError (a kind of ArchiveFormatError) if it breaks one of `limits` (default
 * DEFAULT_ARCHIVE_LIMITS, each field overridable).
 */
export function decodeArchive(file: Buffer, limits: Partial<ArchiveLimits> = {}): ClipArchive {
  const within = archiveLimits(limits);
  const archive = decodeBody(unframeBody(file, within.maxBytes), within);
  validateArchive(archive);
  return archive;
}
