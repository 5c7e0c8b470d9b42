/**
 * Reading response bodies with bounds: never more than a limit in memory, never more than needed.
 *
 * undici's body emits 'error' (RequestAbortedError) when destroyed before its end; every body
 * handled here gets a no-op 'error' listener first, so abandoning one can never become an uncaught
 * exception (readers still see errors through their async iterator).
 *
 * Readers take the response rather than its bare body and pull its `chunks()`, so the transport's
 * minimum transfer rate applies to them (http-transport.ts).
 */
import { Readable } from 'node:stream';
import { RegistryProtocolError } from './registry-errors';

/** What the readers need of a response (TransportResponse has it). */
export interface ResponseBody {
  body: Readable;
  chunks(): AsyncIterable<Buffer>;
}

const ignore = (): void => undefined;

/** Stops a response body: the rest is not downloaded (the connection is closed). */
export function abortBody(body: Readable): void {
  body.on('error', ignore);
  body.destroy();
}

/** Reads what is left of a small body in the background so the connection can be reused. */
export function discard(body: Readable): void {
  body.on('error', ignore);
  const dump = (body as Readable & { dump?: (opts?: { limit: number }) => Promise<void> }).dump;
  if (typeof dump === 'function') void dump.call(body, { limit: 64 * 1024 }).catch(ignore);
  else body.destroy();
}

/** Reads a whole body that must not exceed `limit` bytes (manifests, configs, token responses). */
export async function readLimited(res: ResponseBody, limit: number, what: string): Promise<Buffer> {
  res.body.on('error', ignore);
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const c of res.chunks()) {
    total += c.length;
    if (total > limit) {
      abortBody(res.body);
      throw new RegistryProtocolError(`${what}: response larger than ${limit} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks, total);
}

/** Reads exactly `length` bytes: the body of a 206 for that many bytes. */
export async function readExact(res: ResponseBody, length: number, what: string): Promise<Buffer> {
  const data = await readLimited(res, length, what);
  if (data.length !== length) throw new RegistryProtocolError(`${what}: got ${data.length} bytes, expected ${length}`);
  return data;
}

/**
 * Takes bytes [offset, offset+length) from a body that starts at byte 0 (a 200 to a range request),
 * then destroys the body so the rest of the blob is not downloaded.
 */
export async function readSlice(res: ResponseBody, offset: number, length: number, what: string): Promise<Buffer> {
  res.body.on('error', ignore);
  const out = Buffer.allocUnsafe(length);
  let pos = 0; // bytes of the body seen so far
  let filled = 0;
  try {
    for await (const c of res.chunks()) {
      const from = Math.max(0, offset - pos);
      pos += c.length;
      if (from >= c.length) continue;
      filled += c.copy(out, filled, from, Math.min(c.length, from + length - filled));
      if (filled === length) return out;
    }
  } finally {
    abortBody(res.body);
  }
  throw new RegistryProtocolError(`${what}: body ended at byte ${pos}, before ${offset + length}`);
}
