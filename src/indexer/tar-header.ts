/**
 * Decoding of one 512-byte tar header block (V7, ustar, GNU and star layouts): octal and base-256
 * numeric fields, the checksum, NUL-terminated names (which must be UTF-8) and the ustar name prefix.
 * The same leniency as Go's archive/tar (what containerd extracts with) where formats disagree.
 */
import { isUtf8 } from 'node:buffer';
import { InvalidArgumentError } from '../errors';

export const BLOCK_SIZE = 512;

export interface TarHeader {
  /** Full name (ustar prefix joined), not yet normalised. */
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch. */
  mtime: number;
  /** The type flag character ('\0' for old-style regular files). */
  typeflag: string;
  linkname: string;
  devMajor: number;
  devMinor: number;
}

function fail(position: number, problem: string): never {
  throw new InvalidArgumentError(`tar header at offset ${position}: ${problem}`);
}

export function isZeroBlock(buf: Buffer, offset: number): boolean {
  for (let i = offset; i < offset + BLOCK_SIZE; i++) if (buf[i] !== 0) return false;
  return true;
}

/** Decodes bytes as UTF-8, refusing anything else (names must survive the trip through FUSE intact). */
export function utf8(bytes: Buffer, position: number, what: string): string {
  if (!isUtf8(bytes)) fail(position, `${what} is not valid UTF-8`);
  return bytes.toString('utf8');
}

function cString(buf: Buffer, offset: number, length: number, position: number, what: string): string {
  let end = offset;
  while (end < offset + length && buf[end] !== 0) end++;
  return end === offset ? '' : utf8(buf.subarray(offset, end), position, what);
}

/** Octal ASCII, padded with spaces or NULs on either side; or base-256 (GNU) when the top bit is set. */
function numeric(buf: Buffer, offset: number, length: number, position: number, what: string): number {
  if (buf[offset] & 0x80) {
    // Base-256, big-endian two's complement; bit 6 of the first byte is the sign.
    const invert = buf[offset] & 0x40 ? 0xff : 0;
    let value = 0;
    for (let i = 0; i < length; i++) {
      let byte = buf[offset + i] ^ invert;
      if (i === 0) byte &= 0x7f;
      value = value * 256 + byte;
      if (value > Number.MAX_SAFE_INTEGER) fail(position, `${what} is out of range`);
    }
    return invert ? -value - 1 : value;
  }
  let start = offset;
  let end = offset + length;
  while (start < end && (buf[start] === 0x20 || buf[start] === 0)) start++;
  while (end > start && (buf[end - 1] === 0x20 || buf[end - 1] === 0)) end--;
  let value = 0;
  for (let i = start; i < end; i++) {
    const digit = buf[i] - 0x30;
    if (digit < 0 || digit > 7) fail(position, `${what} is not an octal number`);
    value = value * 8 + digit;
  }
  return value;
}

function unsigned(buf: Buffer, offset: number, length: number, position: number, what: string): number {
  const value = numeric(buf, offset, length, position, what);
  if (value < 0) fail(position, `${what} is negative`);
  return value;
}

/** The checksum covers the whole block with its own field read as spaces; old tars summed signed bytes. */
function verifyChecksum(buf: Buffer, offset: number, position: number): void {
  const stored = numeric(buf, offset + 148, 8, position, 'checksum');
  let sum = 8 * 0x20;
  let signedSum = 8 * 0x20;
  for (let i = 0; i < BLOCK_SIZE; i++) {
    if (i === 148) i = 156;
    const byte = buf[offset + i];
    sum += byte;
    signedSum += byte < 128 ? byte : byte - 256;
  }
  if (stored !== sum && stored !== signedSum) fail(position, 'checksum mismatch (corrupt or not a tar stream)');
}

function matches(buf: Buffer, offset: number, text: string): boolean {
  for (let i = 0; i < text.length; i++) if (buf[offset + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** Length of the name prefix field: ustar and PAX have 155 bytes, star 131, GNU and V7 none. */
function prefixLength(buf: Buffer, offset: number): number {
  if (!matches(buf, offset + 257, 'ustar\x0000')) return 0; // GNU ("ustar  \0") keeps atime there
  return matches(buf, offset + 508, 'tar\x00') ? 131 : 155;
}

/** Decodes the header block at buf[offset…offset+512), which starts at `position` in the tar stream. */
export function parseHeader(buf: Buffer, offset: number, position: number): TarHeader {
  verifyChecksum(buf, offset, position);
  let name = cString(buf, offset, 100, position, 'name');
  const prefixLen = prefixLength(buf, offset);
  if (prefixLen > 0) {
    const prefix = cString(buf, offset + 345, prefixLen, position, 'name prefix');
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  return {
    name,
    mode: unsigned(buf, offset + 100, 8, position, 'mode'),
    uid: unsigned(buf, offset + 108, 8, position, 'uid'),
    gid: unsigned(buf, offset + 116, 8, position, 'gid'),
    size: unsigned(buf, offset + 124, 12, position, 'size'),
    mtime: numeric(buf, offset + 136, 12, position, 'mtime'),
    typeflag: String.fromCharCode(buf[offset + 156]),
    linkname: cString(buf, offset + 157, 100, position, 'link name'),
    devMajor: unsigned(buf, offset + 329, 8, position, 'device major'),
    devMinor: unsigned(buf, offset + 337, 8, position, 'device minor'),
  };
}
