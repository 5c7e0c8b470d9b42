/**
 * Answers the read requests the native server passes up (bytes of spans it cannot read from verified
 * cache files itself): from spans kept in memory at once, otherwise when the LayerStream has them, with EIO
 * if they fail or do not arrive within the read timeout. Nothing is answered twice.
 */
import { InternalError, UnavailableError, errorMessage } from '../errors';
import type { FuseErrorReporter } from './errno';
import type { LayerStream } from './layer-stream';
import type { LayerNode } from './layer-tree';

export interface ReadAnswers {
  reply(id: number, bytes: Buffer): void;
  /** A positive errno. */
  fail(id: number, errno: number): void;
}

const joined = (pieces: Buffer[]): Buffer => (pieces.length === 1 ? pieces[0] : Buffer.concat(pieces));

/** The path of a node, for messages ("/usr/bin/env"). */
function pathOf(node: LayerNode): string {
  const names: string[] = [];
  for (let n = node; n.parent; n = n.parent) {
    for (const [name, child] of n.parent.children!) {
      if (child === n) {
        names.unshift(name);
        break;
      }
    }
  }
  return `/${names.join('/')}`;
}

/**
 * The handler for the server's read requests: file `ino` (nodes[ino - 1]), `length` bytes at `offset`,
 * all inside the file (the server has checked).
 */
export function readRequests(stream: LayerStream, nodes: readonly LayerNode[], errors: FuseErrorReporter, readTimeoutMs: number, answers: () => ReadAnswers) {
  return (id: number, ino: number, offset: number, length: number): void => {
    const node = nodes[ino - 1];
    if (!node || node.inode.kind !== 'file') return answers().fail(id, -errors.errno('read', `inode ${ino}`, new InternalError('not a file of this layer')));
    const at = node.inode.dataOffset + offset;
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
      answers().fail(id, -errors.errno('read', pathOf(node), failure));
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
