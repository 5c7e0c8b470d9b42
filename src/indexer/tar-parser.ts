/**
 * A streaming tar parser that reports every entry of a layer's tar stream as an ArchiveEntry, with the
 * offset of its data in the stream. It reads ustar, GNU (long names 'L' and long links 'K', base-256
 * numbers) and PAX ('x' records; 'g' global records are checked but not applied, as containerd does);
 * it refuses GNU sparse files, unknown entry types, bad checksums and paths that escape the layer root.
 *
 * Buffering rules: `write` takes chunks cut anywhere. A header is decoded in place when its 512 bytes lie
 * in one chunk, otherwise its bytes are first gathered in one block buffer. File data is never copied,
 * only counted and skipped. Bodies of metadata entries are gathered whole, at most limits.maxPaxBytes for
 * one entry together (1 MiB by default, as Go's archive/tar per record). After the end-of-archive marker
 * (two zero blocks) the rest of the stream is ignored.
 *
 * Limits (index-limits.ts): entries, path and component lengths, metadata bytes and PAX/GNU record bytes
 * are counted as the stream is parsed; an excess throws IndexLimitError at once.
 */
import type { ArchiveEntry, EntryType } from '../archive/types';
import { InvalidArgumentError } from '../errors';
import { normalizeEntryPath } from './entry-path';
import { DEFAULT_INDEX_LIMITS, EntryBudget, limitError, type IndexLimits } from './index-limits';
import { applyPaxRecords, parsePaxRecords, type PaxOverrides } from './pax-records';
import { BLOCK_SIZE, isZeroBlock, parseHeader, utf8, type TarHeader } from './tar-header';

/** What the parser is waiting for. */
const enum State {
  Header,
  Skip,
  Meta,
  End,
}

/** Metadata gathered from 'x', 'L' and 'K' entries for the next real entry. */
interface Pending {
  pax: PaxOverrides;
  /** Bytes of the metadata entries' bodies gathered for this entry. */
  bytes: number;
  longName?: string;
  longLink?: string;
}

interface Meta {
  typeflag: string;
  position: number;
  body: Buffer;
  fill: number;
}

function fail(position: number, problem: string): never {
  throw new InvalidArgumentError(`tar entry at offset ${position}: ${problem}`);
}

function padding(size: number): number {
  return (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
}

/** Linux ids and device numbers are 32-bit: a larger value could not be applied by anyone. */
function uint32(value: number, position: number, what: string): number {
  if (value > 0xffffffff) fail(position, `${what} ${value} does not fit in 32 bits`);
  return value;
}

function entryType(typeflag: string, name: string, position: number): EntryType {
  switch (typeflag) {
    case '0':
    case '7': // contiguous file: an ordinary file everywhere but on a few historic systems
      return 'file';
    case '\0': // pre-POSIX regular file; a trailing slash meant a directory
      return name.endsWith('/') ? 'dir' : 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '3':
      return 'char';
    case '4':
      return 'block';
    case '5':
      return 'dir';
    case '6':
      return 'fifo';
    case 'S':
      return fail(position, 'GNU sparse files are not supported (re-create the layer without --sparse)');
    default:
      return fail(position, `unsupported entry type ${JSON.stringify(typeflag)}`);
  }
}

export class TarParser {
  /** Offset in the tar stream of the next byte to be consumed. */
  private position = 0;
  private state = State.Header;
  private readonly block = Buffer.alloc(BLOCK_SIZE);
  private blockFill = 0;
  private skip = 0;
  private meta: Meta | null = null;
  private pending: Pending | null = null;
  private zeroBlocks = 0;
  private readonly budget: EntryBudget;

  constructor(
    private readonly onEntry: (entry: ArchiveEntry) => void,
    private readonly limits: IndexLimits = DEFAULT_INDEX_LIMITS,
  ) {
    this.budget = new EntryBudget(limits);
  }

  write(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length) {
      const available = chunk.length - i;
      if (this.state === State.Skip) {
        const n = Math.min(available, this.skip);
        this.skip -= n;
        this.position += n;
        i += n;
        if (this.skip === 0) this.state = State.Header;
      } else if (this.state === State.Header) {
        if (this.blockFill === 0 && available >= BLOCK_SIZE) {
          this.position += BLOCK_SIZE;
          this.header(chunk, i, this.position - BLOCK_SIZE);
          i += BLOCK_SIZE;
        } else {
          const n = Math.min(available, BLOCK_SIZE - this.blockFill);
          chunk.copy(this.block, this.blockFill, i, i + n);
          this.blockFill += n;
          this.position += n;
          i += n;
          if (this.blockFill === BLOCK_SIZE) {
            this.blockFill = 0;
            this.header(this.block, 0, this.position - BLOCK_SIZE);
          }
        }
      } else if (this.state === State.Meta) {
        const meta = this.meta as Meta;
        const n = Math.min(available, meta.body.length - meta.fill);
        chunk.copy(meta.body, meta.fill, i, i + n);
        meta.fill += n;
        this.position += n;
        i += n;
        if (meta.fill === meta.body.length) this.finishMeta(meta);
      } else {
        this.position += available; // State.End: trailing padding, not part of the archive
        i += available;
      }
    }
  }

  /** Checks the stream did not stop in the middle of an entry. */
  end(): void {
    const atBoundary = this.state === State.End || (this.state === State.Header && this.blockFill === 0);
    if (!atBoundary) throw new InvalidArgumentError(`tar stream: unexpected end of data at offset ${this.position}`);
  }

  private header(buf: Buffer, offset: number, at: number): void {
    if (isZeroBlock(buf, offset)) {
      // End of archive. Like Go's archive/tar: one zero block then EOF is accepted too, and metadata
      // left without an entry is dropped.
      this.pending = null;
      if (++this.zeroBlocks === 2) this.state = State.End;
      return;
    }
    if (this.zeroBlocks > 0) fail(at, 'data after an end-of-archive block');
    const header = parseHeader(buf, offset, at);
    switch (header.typeflag) {
      case 'x':
      case 'g':
      case 'L':
      case 'K':
        this.startMeta(header, at);
        return;
      default:
        this.entry(header, at);
    }
  }

  private startMeta(header: TarHeader, at: number): void {
    const gathered = header.typeflag === 'g' ? 0 : (this.pending?.bytes ?? 0);
    if (gathered + header.size > this.limits.maxPaxBytes) {
      const after = gathered > 0 ? ` after ${gathered} bytes of records for the same entry` : '';
      throw limitError(
        `tar entry at offset ${at}: ${header.typeflag} header of ${header.size} bytes${after}: more than ${this.limits.maxPaxBytes} bytes of records for one entry`,
        this.limits,
        'maxPaxBytes',
      );
    }
    const meta: Meta = { typeflag: header.typeflag, position: at, body: Buffer.allocUnsafe(header.size), fill: 0 };
    if (header.size === 0) {
      this.finishMeta(meta);
    } else {
      this.meta = meta;
      this.state = State.Meta;
    }
  }

  private finishMeta(meta: Meta): void {
    this.meta = null;
    const { body, position } = meta;
    if (meta.typeflag === 'g') {
      // Checked (sparse refused) but not applied: containerd ignores global headers, and a layer must
      // look the same whether it is served lazily or unpacked by containerd.
      applyPaxRecords({ xattrs: {} }, parsePaxRecords(body, position), position);
    } else {
      const pending = (this.pending ??= { pax: { xattrs: {} }, bytes: 0 });
      pending.bytes += body.length;
      if (meta.typeflag === 'x') applyPaxRecords(pending.pax, parsePaxRecords(body, position), position);
      else if (meta.typeflag === 'L') pending.longName = this.gnuLongText(body, position);
      else pending.longLink = this.gnuLongText(body, position); // 'K'
    }
    this.skipData(0, body.length); // the body itself is consumed; only its padding is left
  }

  private gnuLongText(body: Buffer, position: number): string {
    const nul = body.indexOf(0);
    return utf8(nul < 0 ? body : body.subarray(0, nul), position, 'long name');
  }

  /** Skips `unread` data bytes, then the padding of an entry of `size` bytes. */
  private skipData(unread: number, size: number): void {
    this.skip = unread + padding(size);
    this.state = this.skip > 0 ? State.Skip : State.Header;
  }

  private entry(header: TarHeader, at: number): void {
    const pax = this.pending?.pax;
    const rawName = pax?.path ?? this.pending?.longName ?? header.name;
    const rawLink = pax?.linkpath ?? this.pending?.longLink ?? header.linkname;
    this.pending = null;

    const type = entryType(header.typeflag, rawName, at);
    const path = normalizeEntryPath(rawName, 'path') || '.';
    if (path === '.' && type !== 'dir') fail(at, `${type} entry for the layer root ${JSON.stringify(rawName)}`);
    let linkTarget = '';
    if (type === 'hardlink') {
      linkTarget = normalizeEntryPath(rawLink, 'hardlink target');
      if (linkTarget === '') fail(at, `hardlink ${path} has no target`);
    } else if (type === 'symlink') {
      if (rawLink === '' || rawLink.includes('\0')) fail(at, `symlink ${path} has an invalid target`);
      linkTarget = rawLink;
    }
    // Only regular files have data in the stream, whatever the size field of other types says.
    const size = type === 'file' ? (pax?.size ?? header.size) : 0;
    const device = type === 'char' || type === 'block';
    const mtimeMs = pax?.mtimeMs ?? header.mtime * 1000;
    if (!Number.isSafeInteger(mtimeMs)) fail(at, `${path}: mtime out of range`);
    const xattrs = pax?.xattrs ?? {};
    this.budget.add(at, path, linkTarget, xattrs);
    this.onEntry({
      path,
      type,
      mode: header.mode & 0o7777,
      uid: uint32(pax?.uid ?? header.uid, at, 'uid'),
      gid: uint32(pax?.gid ?? header.gid, at, 'gid'),
      size,
      mtimeMs,
      linkTarget,
      devMajor: device ? uint32(header.devMajor, at, 'device major') : 0,
      devMinor: device ? uint32(header.devMinor, at, 'device minor') : 0,
      xattrs,
      dataOffset: type === 'file' ? at + BLOCK_SIZE : 0,
    });
    this.skipData(size, size);
  }
}
