/**
 * Answers the read requests the native server passes up (bytes of spans it cannot read from verified
 * cache files itself): from spans kept in memory at once, otherwise when the LayerStream has them, with EIO
 * if they fail or do not arrive within the read timeout. Nothing is answered twice.
 */
import { InternalError, UnavailableError, errorMessage } from '../errors';
import type { FuseErrorReporter } from './errno';
import type { LayerStream } from './layer-stream';
import type { TableFiles } from './table-files';

export interface ReadAnswers {
  reply(id: number, bytes: Buffer): void;
  /** A positive errno. */
  fail(id: number, errno: number): void;
}

const joined = (pieces: Buffer[]): Buffer => (pieces.length === 1 ? pieces[0] : Buffer.concat(pieces));

/**
 * The handler for the server's read requests: file `ino` of the table, `length` bytes at `offset`, all
 * inside the file (the server has checked).
 */
export function readRequests(stream: LayerStream, files: TableFiles, errors: FuseErrorReporter, readTimeoutMs: number, answers: () => ReadAnswers) {
  return (id: number, ino: number, offset: number, length: number): void => {
    const dataOffset = files.dataOffset(ino);
    if (dataOffset === undefined) return answers().fail(id, -errors.errno('read', `inode ${ino}`, new InternalError('not a file of this layer')));
    const at = dataOffset + offset;
    const kept = stream.readKept(at, length);
    if (kept) return answers().reply(id, joined(kept));

    let answered = false;
    const controller = new AbortController();
    const fail = (err: unknown): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      const failure = new UnavailableError(`[${offset}, ${offset + length}): ${errorMessage(err)}`, { cause: err });
      controller.abort(failure);
      answers().fail(id, -errors.errno('read', files.pathOf(ino), failure));
    };
    const timer = setTimeout(() => fail(new Error(`no data within ${readTimeoutMs} ms`)), readTimeoutMs);
    stream.read(at, length, controller.signal).then((pieces) => {
      if (answered) return;
      const total = pieces.reduce((sum, piece) => sum + piece.length, 0);
      if (total !== length) return fail(new InternalError(`spans gave ${total} bytes, ${length} asked`));
      answered = true;
      clearTimeout(timer);
      answers().reply(id, joined(pieces));
    }, fail);
  };
}
