/**
 * `clip index --layer-file` takes a layer blob as a registry stores it: gzip, zstd or an uncompressed
 * tar. Anything else is refused before indexing with a message that says so, instead of a tar parser
 * error from deep inside the stream.
 */
import { promises as fsp } from 'node:fs';
import { errorMessage } from '../errors';
import { detectCompression } from '../indexer';
import { UsageError } from './exit-codes';

const BLOCK = 512;

/** A tar header block: its checksum field (octal) matches the sum of its bytes with that field as spaces. */
function isTarHeader(block: Buffer): boolean {
  if (block.length < BLOCK) return false;
  if (block.every((b) => b === 0)) return true; // an empty layer: just the end-of-archive blocks
  const field = block.subarray(148, 156).toString('latin1').replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]{1,8}$/.test(field)) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  return parseInt(field, 8) === sum;
}

/** UsageError unless `file` can be read and starts like a gzip, zstd or tar layer. */
export async function checkLayerFile(file: string): Promise<void> {
  let head: Buffer;
  try {
    const handle = await fsp.open(file, 'r');
    try {
      const buf = Buffer.alloc(BLOCK);
      const { bytesRead } = await handle.read(buf, 0, BLOCK, 0);
      head = buf.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new UsageError(`index --layer-file ${file}: ${errorMessage(err)}`, { cause: err });
  }
  if (detectCompression(head) !== 'none' || isTarHeader(head)) return;
  const what = head.length === 0 ? 'is empty' : head.length < BLOCK ? `is ${head.length} bytes, too short for a tar` : 'does not start with a gzip or zstd header or a tar header';
  throw new UsageError(`index --layer-file ${file}: not a layer blob: the file ${what} (expected a gzip, zstd or tar layer, e.g. a file from an OCI layout's blobs/sha256/)`);
}
