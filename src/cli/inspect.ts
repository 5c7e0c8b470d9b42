/**
 * `clip inspect ARCHIVE`: a human-readable summary of a clip archive file (the layer it describes, its
 * entries by type, its checkpoints, its start-up profile and bundle, its size next to the layer's), or the
 * same as JSON with `--json`.
 */
import { Command } from 'commander';
import { promises as fsp } from 'node:fs';
import { ArchiveSummary, summarizeArchive } from '../archive';
import { EntryType } from '../archive/types';
import { errorMessage } from '../errors';
import { formatBytes } from './pull-progress';
import { oneLine } from './registry-flags';

const TYPE_NAMES: Record<EntryType, [string, string]> = {
  file: ['file', 'files'],
  dir: ['directory', 'directories'],
  symlink: ['symlink', 'symlinks'],
  hardlink: ['hard link', 'hard links'],
  char: ['character device', 'character devices'],
  block: ['block device', 'block devices'],
  fifo: ['fifo', 'fifos'],
};

const count = (n: number, [one, many]: [string, string]): string => `${n} ${n === 1 ? one : many}`;
const percent = (ratio: number): string => `${(ratio * 100).toFixed(ratio < 0.001 ? 4 : 2)}%`;

function startupLine({ startupProfile: p, startupBundle: b }: ArchiveSummary): string {
  if (!p) return 'no start-up profile recorded';
  const read = `${count(p.spans, ['span', 'spans'])} read by starting containers, ${count(p.ranges, ['range', 'ranges'])} of ${formatBytes(p.rangeBytes)}`;
  return `${read}; ${b ? 'a start-up bundle holds them' : 'no start-up bundle'}`;
}

/** The text `clip inspect` prints for a summary. */
export function formatSummary(file: string, s: ArchiveSummary): string {
  const types = (Object.keys(TYPE_NAMES) as EntryType[]).filter((t) => s.entries.byType[t] > 0).map((t) => count(s.entries.byType[t], TYPE_NAMES[t]));
  const { checkpoints: c } = s;
  const rows: Array<[string, string]> = [
    ['archive', `${file}: clip archive format ${s.formatVersion}, ${formatBytes(s.archiveSize)} (${s.archiveSize} bytes)`],
    ['layer', `${s.layerDigest}  ${s.mediaType || '(no media type)'}, ${s.compression === 'gzip' ? 'gzip' : 'uncompressed'}`],
    ['diff id', s.diffId],
    ['layer size', `${formatBytes(s.compressedSize)} as stored (${s.compressedSize} bytes), ${formatBytes(s.uncompressedSize)} uncompressed (${s.uncompressedSize} bytes)`],
    ['entries', `${s.entries.total}: ${types.join(', ') || 'none'}; ${formatBytes(s.entries.fileBytes)} of file data`],
    ['', `${count(s.entries.whiteouts, ['whiteout', 'whiteouts'])}, ${count(s.entries.opaqueMarkers, ['opaque directory', 'opaque directories'])}, ${count(s.entries.withXattrs, ['entry', 'entries'])} with xattrs`],
    ['checkpoints', `${c.count} (spans of ${formatBytes(c.meanSpan)} on average, ${formatBytes(c.largestSpan)} at most; ${formatBytes(c.windowBytes)} of windows)`],
    ['start-up', startupLine(s)],
    ...(s.startupBundle
      ? [['bundle', `${s.startupBundle.digest}, ${formatBytes(s.startupBundle.compressedSize)} (${s.startupBundle.compressedSize} bytes), inflating to ${s.startupBundle.uncompressedSize} bytes`] as [string, string]]
      : []),
    ['ratio', `the archive is ${percent(s.ratio.compressed)} of the layer as stored, ${percent(s.ratio.uncompressed)} of it uncompressed`],
  ];
  return rows.map(([k, v]) => `${k.padEnd(12)} ${v}`).join('\n') + '\n';
}

export function inspectCommand(): Command {
  return new Command('inspect')
    .description('summarise a clip archive file: entries by type, checkpoints, start-up profile and bundle, sizes')
    .argument('<archive>', 'a clip archive file (clip index -o writes them)')
    .option('--json', 'print the summary as JSON')
    .action(async (file: string, flags: { json?: boolean }) => {
      let summary: ArchiveSummary;
      try {
        summary = summarizeArchive(await fsp.readFile(file));
      } catch (err) {
        throw new Error(`inspect ${file}: ${oneLine(errorMessage(err))}`, { cause: err });
      }
      process.stdout.write(flags.json ? `${JSON.stringify({ file, ...summary }, null, 2)}\n` : formatSummary(file, summary));
    });
}
