/**
 * Where two archives of the same layer disagree about what the layer holds: its identity and sizes, its
 * entries (every field, in order), and its spans. Checkpoints themselves (offsets into the blob, windows)
 * are not compared: they only say how to reach the bytes, and every span read is checked against its
 * digest, so a wrong checkpoint can cause an error but never wrong bytes. Used to check a published
 * archive against one indexed from the layer's real bytes (src/remote/archive-verifier.ts).
 */
import type { ArchiveEntry, ClipArchive } from './types';

function entryDifference(a: ArchiveEntry, b: ArchiveEntry): string | undefined {
  for (const field of ['path', 'type', 'mode', 'uid', 'gid', 'size', 'mtimeMs', 'linkTarget', 'devMajor', 'devMinor', 'dataOffset'] as const) {
    if (a[field] !== b[field]) return `${field} ${JSON.stringify(a[field])} vs ${JSON.stringify(b[field])}`;
  }
  const names = Object.keys(a.xattrs).sort();
  const other = Object.keys(b.xattrs).sort();
  if (names.join('\0') !== other.join('\0')) return `xattrs ${names.join(',')} vs ${other.join(',')}`;
  for (const name of names) if (!a.xattrs[name]!.equals(b.xattrs[name]!)) return `xattr ${name}`;
  return undefined;
}

/** The first difference in what `claimed` and `real` say about the layer's files, or undefined. */
export function contentDifference(claimed: ClipArchive, real: ClipArchive): string | undefined {
  for (const field of ['layerDigest', 'diffId', 'compression', 'compressedSize', 'uncompressedSize'] as const) {
    if (claimed[field] !== real[field]) return `${field}: ${JSON.stringify(claimed[field])}, the layer has ${JSON.stringify(real[field])}`;
  }
  if (claimed.entries.length !== real.entries.length) return `${claimed.entries.length} entries, the layer has ${real.entries.length}`;
  for (let i = 0; i < claimed.entries.length; i++) {
    const why = entryDifference(claimed.entries[i]!, real.entries[i]!);
    if (why) return `entry ${i} (${JSON.stringify(real.entries[i]!.path)}): ${why}`;
  }
  return undefined;
}

/** Whether both archives cut the layer into the same spans (so their span digests compare one to one). */
export function sameSpans(a: ClipArchive, b: ClipArchive): boolean {
  return (
    a.checkpoints.length === b.checkpoints.length &&
    a.checkpoints.every((c, i) => c.uncompressedOffset === b.checkpoints[i]!.uncompressedOffset)
  );
}
