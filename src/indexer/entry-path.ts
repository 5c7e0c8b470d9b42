/**
 * Normalisation of paths found in a layer's tar: relative to the layer root, without "./", "/" or empty
 * components, ".." resolved lexically. A path that would climb out of the layer root is refused: paths
 * from a layer must never escape it. The layer root itself normalises to "" (the archive calls it ".").
 */
import { InvalidArgumentError } from '../errors';

export function normalizeEntryPath(raw: string, what: string): string {
  if (raw.includes('\0')) throw new InvalidArgumentError(`tar entry ${JSON.stringify(raw)}: ${what} contains a NUL byte`);
  const parts: string[] = [];
  for (const part of raw.split('/')) {
    if (part === '' || part === '.') continue;
    if (part !== '..') {
      parts.push(part);
    } else if (parts.pop() === undefined) {
      throw new InvalidArgumentError(`tar entry ${JSON.stringify(raw)}: ${what} escapes the layer root`);
    }
  }
  return parts.join('/');
}
