/**
 * Real inputs for the indexer tests: tarballs written by python3's tarfile and GNU tar, gzip streams from
 * zlib and the gzip command, and deterministic pseudo-random data.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';

const PRELUDE = `
import base64, io, json, sys, tarfile
def add(tf, name, type=tarfile.REGTYPE, data=b'', **attrs):
    info = tarfile.TarInfo(name)
    info.type = type
    info.size = len(data)
    info.mtime = attrs.pop('mtime', 1700000000)
    for key, value in attrs.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data) if data else None)
`;

/**
 * Runs python3 snippets, each of which fills `buf` (a BytesIO) with a tarball using the `add` helper
 * above, in one python process (starting python is the slow part).
 */
export function pythonTars<K extends string>(scripts: Record<K, string>): Record<K, Buffer> {
  const code = `${PRELUDE}
scripts = json.loads(sys.stdin.read())
out = {}
for name, script in scripts.items():
    scope = {'add': add, 'base64': base64, 'io': io, 'tarfile': tarfile, 'buf': io.BytesIO()}
    exec(script, scope)
    out[name] = base64.b64encode(scope['buf'].getvalue()).decode()
sys.stdout.write(json.dumps(out))
`;
  const stdout = execFileSync('python3', ['-c', code], { input: JSON.stringify(scripts), maxBuffer: 1 << 28 });
  const encoded = JSON.parse(stdout.toString()) as Record<K, string>;
  return Object.fromEntries(Object.entries<string>(encoded).map(([k, v]) => [k, Buffer.from(v, 'base64')])) as Record<K, Buffer>;
}

export function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** xorshift32: deterministic bytes so failures reproduce. */
export function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

export function randomBytes(size: number, seed: number): Buffer {
  const next = prng(seed);
  const out = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) out[i] = next() & 0xff;
  return out;
}

const WORDS = 'the quick brown fox jumps over lazy dog layer snapshot container image gzip deflate block span'.split(' ');

/** Text-like data with varying redundancy: word salad, numbers, and runs of random bytes. */
export function mixedData(size: number, seed: number): Buffer {
  const next = prng(seed);
  const parts: Buffer[] = [];
  let total = 0;
  while (total < size) {
    const kind = next() % 4;
    let part: Buffer;
    if (kind === 0) part = randomBytes(1 + (next() % 20000), next());
    else if (kind === 1) part = Buffer.from(Array.from({ length: 1 + (next() % 3000) }, () => WORDS[next() % WORDS.length]).join(' '));
    else if (kind === 2) part = Buffer.from(Array.from({ length: 1 + (next() % 2000) }, () => String(next() % 100000)).join(','));
    else part = Buffer.alloc(1 + (next() % 50000), next() & 0xff);
    parts.push(part);
    total += part.length;
  }
  return Buffer.concat(parts).subarray(0, size);
}

/** Compresses with the gzip command (GNU gzip's own deflate, not zlib). */
export function gzipCommand(data: Buffer, level: number): Buffer {
  return execFileSync('gzip', [`-${level}`, '-c', '-n'], { input: data, maxBuffer: 1 << 28 });
}

/** Splits `data` into chunks of pseudo-random sizes between 1 and maxChunk. */
export function randomChunks(data: Buffer, maxChunk: number, seed: number): Buffer[] {
  const next = prng(seed);
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; ) {
    const n = 1 + (next() % maxChunk);
    chunks.push(data.subarray(i, i + n));
    i += n;
  }
  return chunks;
}
