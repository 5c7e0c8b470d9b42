/**
 * Clip archives on disk. A write is atomic: the archive is written to a temporary file in the same
 * directory, flushed, renamed over the target and the directory flushed, so a crash leaves either the
 * old file or the complete new one, never a partial archive under the final name.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { NotFoundError } from '../errors';
import { ArchiveFormatError } from './format-error';
import { decodeArchiveAsync, encodeArchiveAsync } from './format';
import { ArchiveLimitError, archiveLimits, type ArchiveLimits } from './limits';
import type { ClipArchive } from './types';

/**
 * Reads and decodes the archive at `file` within `limits` (a file larger than limits.maxBytes is not read):
 * NotFoundError if absent, ArchiveFormatError (ArchiveLimitError for a limit) if invalid.
 */
export async function readArchiveFile(file: string, limits: Partial<ArchiveLimits> = {}): Promise<ClipArchive> {
  const within = archiveLimits(limits);
  let bytes: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > within.maxBytes) throw new ArchiveLimitError(`${size} bytes`, 'maxBytes', within.maxBytes, { file });
      bytes = await handle.readFile();
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`clip archive ${file}: not found`, { cause: err });
    throw err;
  }
  try {
    return await decodeArchiveAsync(bytes, within);
  } catch (err) {
    if (err instanceof ArchiveLimitError) throw new ArchiveLimitError(err.excess, err.limit, err.value, { cause: err, file });
    if (err instanceof ArchiveFormatError) throw new ArchiveFormatError(err.detail, { cause: err, file });
    throw err;
  }
}

/** Encodes `archive` and atomically replaces `file` with it; the directory must exist. Returns the bytes written. */
export async function writeArchiveFile(file: string, archive: ClipArchive): Promise<Buffer> {
  const bytes = await encodeArchiveAsync(archive);
  await writeFileAtomic(file, bytes);
  return bytes;
}

/**
 * Atomically replaces `file` with `bytes` (temporary file, fsync, rename, fsync of the directory). With
 * `durable` false, without the two fsyncs: for files that are checked against a digest when read back
 * (after a crash the file may be empty or old; the reader then finds out and discards it).
 */
export async function writeFileAtomic(file: string, bytes: Uint8Array, { durable = true } = {}): Promise<void> {
  const dir = dirname(file);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(tmp, 'wx', 0o644);
    try {
      await handle.writeFile(bytes);
      if (durable) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  if (!durable) return;
  const dirHandle = await open(dir, 'r');
  try {
    await dirHandle.sync();
  } finally {
    await dirHandle.close();
  }
}
