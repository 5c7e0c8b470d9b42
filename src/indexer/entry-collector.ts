/**
 * Collects a layer's tar entries into the archive's entry list. It leaves out what lies beneath the
 * runtime's mount points (see runtime-mounts.ts) and makes every hardlink point at an earlier entry of
 * the archive, as the archive format requires:
 * - a hardlink whose target is not an earlier entry of the layer, is a directory or is itself is refused
 *   (containerd could not extract it either);
 * - a hardlink whose target was left out links to a kept path of the same file instead, or, when there
 *   is none, takes the left-out entry's place (same type, attributes and data) so the file is not lost.
 */
import { EntryEncoder, rememberEncodedEntries } from '../archive';
import type { ArchiveEntry } from '../archive/types';
import { InvalidArgumentError } from '../errors';
import { isUnderRuntimeMount } from './runtime-mounts';

export class EntryCollector {
  readonly entries: ArchiveEntry[] = [];
  /** What each path holds now, kept or not; for a hardlink, the entry whose file it shares. */
  private readonly files = new Map<string, ArchiveEntry>();
  /** For a file whose own entry was left out: the kept path that took its place. */
  private readonly standIns = new Map<ArchiveEntry, string>();
  private readonly encoder = new EntryEncoder();

  add(entry: ArchiveEntry): void {
    const file = entry.type === 'hardlink' ? this.linkedFile(entry) : entry;
    this.files.set(entry.path, file);
    if (isUnderRuntimeMount(entry.path)) return;
    if (entry.type !== 'hardlink' || !isUnderRuntimeMount(entry.linkTarget)) {
      this.keep(entry);
      return;
    }
    const keptPath = [this.standIns.get(file), file.path].find(
      (p) => p !== undefined && !isUnderRuntimeMount(p) && this.files.get(p) === file,
    );
    if (keptPath !== undefined) {
      this.keep({ ...entry, linkTarget: keptPath });
    } else {
      this.keep({ ...file, path: entry.path });
      this.standIns.set(file, entry.path);
    }
  }

  /** The entries, their encoding remembered for encoding the archive. No entry may be added afterwards. */
  finish(): ArchiveEntry[] {
    rememberEncodedEntries(this.entries, this.encoder.finish());
    return this.entries;
  }

  private keep(entry: ArchiveEntry): void {
    this.entries.push(entry);
    this.encoder.add(entry);
  }

  private linkedFile(link: ArchiveEntry): ArchiveEntry {
    const refuse = (problem: string): never => {
      throw new InvalidArgumentError(`tar entry ${JSON.stringify(link.path)}: hardlink target ${JSON.stringify(link.linkTarget)} ${problem}`);
    };
    if (link.linkTarget === link.path) refuse('is the link itself');
    const file = this.files.get(link.linkTarget) ?? refuse('is not an earlier entry of the layer');
    if (file.type === 'dir') refuse('is a directory');
    return file;
  }
}
