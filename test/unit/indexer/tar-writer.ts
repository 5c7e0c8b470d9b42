/**
 * A minimal ustar writer for tests that need tar streams python's tarfile will not write (hostile PAX
 * records, hundreds of thousands of entries built in memory quickly, headers to mutate).
 */
export const BLOCK = 512;

export interface HeaderFields {
  name: string;
  typeflag?: string;
  size?: number;
  mode?: number;
  linkname?: string;
  mtime?: number;
}

function octal(buf: Buffer, offset: number, length: number, value: number): void {
  buf.write(value.toString(8).padStart(length - 1, '0'), offset, length - 1, 'latin1');
}

/** One 512-byte ustar header with a valid checksum. */
export function tarHeader(h: HeaderFields): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(h.name, 0, 100, 'utf8');
  octal(b, 100, 8, h.mode ?? (h.typeflag === '5' ? 0o755 : 0o644));
  octal(b, 108, 8, 0);
  octal(b, 116, 8, 0);
  octal(b, 124, 12, h.size ?? 0);
  octal(b, 136, 12, h.mtime ?? 1_700_000_000);
  b.write(h.typeflag ?? '0', 156, 1, 'latin1');
  b.write(h.linkname ?? '', 157, 100, 'utf8');
  b.write('ustar\u000000', 257, 8, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i]!;
  b.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'latin1');
  return b;
}

function padded(data: Buffer): Buffer {
  const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
  return pad === 0 ? data : Buffer.concat([data, Buffer.alloc(pad)]);
}

/** A header and its data, padded to whole blocks. */
export function tarEntry(h: HeaderFields, data: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([tarHeader({ ...h, size: h.size ?? data.length }), padded(data)]);
}

/** A PAX 'x' (or 'g') header carrying `records`, each written as "%d %s=%s\n". */
export function paxEntry(records: Array<[string, string | Buffer]>, typeflag = 'x'): Buffer {
  const body = Buffer.concat(
    records.map(([key, value]) => {
      const text = Buffer.concat([Buffer.from(` ${key}=`), Buffer.from(value), Buffer.from('\n')]);
      let length = text.length + 1;
      while (String(length).length + text.length !== length) length = String(length).length + text.length;
      return Buffer.concat([Buffer.from(String(length)), text]);
    }),
  );
  return tarEntry({ name: 'PaxHeader', typeflag }, body);
}

/** Two zero blocks. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(2 * BLOCK);
}
