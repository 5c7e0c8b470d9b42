/**
 * Encoding and decoding of a whole clip archive file: header (header.ts), protobuf body (body-codec.ts)
 * and the archive's rules (validate.ts). Both directions validate, so no invalid archive is ever written
 * and none is ever handed to a caller. Encoding is deterministic: equal archives give equal bytes.
 */
import { errorMessage } from '../errors';
import { Archive as ArchiveBody } from '../generated/clip/archive/v1/archive';
import { fromBody, toBody } from './body-codec';
import { ArchiveFormatError } from './format-error';
import { frameBody, unframeBody } from './header';
import type { ClipArchive } from './types';
import { validateArchive } from './validate';

/** The file bytes of `archive`; throws ArchiveFormatError if the archive breaks the format's rules. */
export function encodeArchive(archive: ClipArchive): Buffer {
  validateArchive(archive);
  return frameBody(ArchiveBody.encode(toBody(archive)).finish());
}

/** The archive in `file`; throws ArchiveFormatError if it is not a valid clip archive this reader supports. */
export function decodeArchive(file: Buffer): ClipArchive {
  const body = unframeBody(file);
  let message: ArchiveBody;
  try {
    message = ArchiveBody.decode(body);
  } catch (err) {
    throw new ArchiveFormatError(`malformed body: ${errorMessage(err)}`, { cause: err });
  }
  const archive = fromBody(message);
  validateArchive(archive);
  return archive;
}
