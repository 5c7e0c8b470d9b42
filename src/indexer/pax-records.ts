/**
 * PAX extended header records ("%d %s=%s\n", the length counting the whole record) and the overrides
 * clip takes from them: path, linkpath, size, uid, gid, mtime (fractional seconds) and extended
 * attributes (SCHILY.xattr.NAME = raw value, LIBARCHIVE.xattr.URL-ENCODED-NAME = base64 value).
 * Other keys (uname, gname, atime, ctime, charset, comment, …) are ignored; GNU sparse keys are refused.
 */
import { InvalidArgumentError } from '../errors';
import { utf8 } from './tar-header';

export interface PaxOverrides {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  mtimeMs?: number;
  xattrs: Record<string, Buffer>;
}

const SCHILY_XATTR = 'SCHILY.xattr.';
const LIBARCHIVE_XATTR = 'LIBARCHIVE.xattr.';
const USED_KEYS = new Set(['path', 'linkpath', 'size', 'uid', 'gid', 'mtime']);

function fail(position: number, problem: string): never {
  throw new InvalidArgumentError(`tar extended header at offset ${position}: ${problem}`);
}

/** Splits a PAX body into key/value records (values stay bytes: xattr values may be binary). */
export function parsePaxRecords(body: Buffer, position: number): Array<[string, Buffer]> {
  const records: Array<[string, Buffer]> = [];
  let i = 0;
  while (i < body.length) {
    const space = body.indexOf(0x20, i);
    const lengthText = space < 0 ? '' : body.toString('latin1', i, space);
    const length = /^[1-9][0-9]{0,15}$/.test(lengthText) ? Number(lengthText) : NaN;
    const end = i + length;
    if (!(end <= body.length) || body[end - 1] !== 0x0a) fail(position, 'malformed record');
    const equals = body.indexOf(0x3d, space + 1);
    if (equals < 0 || equals >= end - 1) fail(position, 'malformed record');
    records.push([utf8(body.subarray(space + 1, equals), position, 'record key'), body.subarray(equals + 1, end - 1)]);
    i = end;
  }
  return records;
}

/** "namespace.name" within Linux's limits (XATTR_NAME_MAX), as setxattr(2) would require. */
function xattrName(name: string, position: number): string {
  if (!/^[^.\0]+\.[^\0]+$/.test(name) || Buffer.byteLength(name) > 255) {
    fail(position, `xattr name ${JSON.stringify(name)} is not "namespace.name" of at most 255 bytes`);
  }
  return name;
}

/** At most XATTR_SIZE_MAX (64 KiB). */
function xattrValue(value: Buffer, position: number): Buffer {
  if (value.length > 65536) fail(position, `xattr value of ${value.length} bytes is larger than 64 KiB`);
  return value;
}

function decimal(value: string, position: number, key: string): number {
  if (!/^[0-9]{1,16}$/.test(value) || !Number.isSafeInteger(Number(value))) fail(position, `invalid ${key} ${JSON.stringify(value)}`);
  return Number(value);
}

/** "1700000000.123456789" → milliseconds, truncated toward zero; negative times allowed. */
function paxTimeMs(value: string, position: number): number {
  const m = /^(-?)([0-9]{1,15})(?:\.([0-9]*))?$/.exec(value);
  if (!m) fail(position, `invalid mtime ${JSON.stringify(value)}`);
  const ms = Number(m[2]) * 1000 + Number(((m[3] ?? '') + '000').slice(0, 3));
  return m[1] === '-' ? -ms : ms;
}

/** Folds records into `into` (later records win), refusing GNU sparse files. */
export function applyPaxRecords(into: PaxOverrides, records: Array<[string, Buffer]>, position: number): void {
  for (const [key, raw] of records) {
    if (key.startsWith('GNU.sparse.')) {
      fail(position, 'GNU sparse files are not supported (re-create the layer without --sparse)');
    }
    if (key.startsWith(SCHILY_XATTR)) {
      into.xattrs[xattrName(key.slice(SCHILY_XATTR.length), position)] = xattrValue(Buffer.from(raw), position);
      continue;
    }
    if (key.startsWith(LIBARCHIVE_XATTR)) {
      let name: string;
      try {
        name = decodeURIComponent(key.slice(LIBARCHIVE_XATTR.length));
      } catch (err) {
        throw new InvalidArgumentError(`tar extended header at offset ${position}: invalid xattr name ${key}`, { cause: err });
      }
      // SCHILY wins when an archiver wrote both forms.
      if (!(xattrName(name, position) in into.xattrs)) {
        into.xattrs[name] = xattrValue(Buffer.from(raw.toString('latin1'), 'base64'), position);
      }
      continue;
    }
    if (!USED_KEYS.has(key)) continue;
    const value = utf8(raw, position, key);
    if (value === '') continue; // an empty value cancels the key: the header field applies
    switch (key) {
      case 'path':
        into.path = value;
        break;
      case 'linkpath':
        into.linkpath = value;
        break;
      case 'size':
        into.size = decimal(value, position, key);
        break;
      case 'uid':
        into.uid = decimal(value, position, key);
        break;
      case 'gid':
        into.gid = decimal(value, position, key);
        break;
      default: // 'mtime'
        into.mtimeMs = paxTimeMs(value, position);
        break;
    }
  }
}
