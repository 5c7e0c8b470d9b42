/**
 * `clip status` as a readable table: the daemon's line, then one row per layer. Pure, so it is
 * unit-tested on its own.
 */
import type { DaemonStatus, LayerStatus } from '../daemon/daemon-status';

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 -> "1.5 KiB". */
export function formatBytes(n: number): string {
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${UNITS[unit]}`;
}

/** 3725 -> "1h2m5s". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const parts: string[] = [];
  if (s >= 86400) parts.push(`${Math.floor(s / 86400)}d`);
  if (s >= 3600) parts.push(`${Math.floor((s % 86400) / 3600)}h`);
  if (s >= 60) parts.push(`${Math.floor((s % 3600) / 60)}m`);
  parts.push(`${s % 60}s`);
  return parts.join('');
}

function shortDigest(digest: string): string {
  return digest.startsWith('sha256:') ? digest.slice(0, 19) : digest;
}

function cached(layer: LayerStatus): string {
  if (layer.bytesCached === undefined) return '-';
  if (layer.bytesTotal === undefined) return formatBytes(layer.bytesCached);
  const pct = layer.bytesTotal > 0 ? ` (${Math.min(100, Math.round((layer.bytesCached / layer.bytesTotal) * 100))}%)` : '';
  return `${formatBytes(layer.bytesCached)} / ${formatBytes(layer.bytesTotal)}${pct}`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('  ').trimEnd());
}

export function formatStatus(status: DaemonStatus): string {
  const lines = [
    `clip ${status.version} (commit ${status.commit}), pid ${status.pid}, up ${formatDuration(status.uptimeSeconds)}`,
    `config ${status.configFile ?? 'built-in defaults'}, root ${status.root}, socket ${status.address}`,
    `lazy layers ${status.lazy ? 'on' : 'off'}, metrics ${status.metrics ? `on ${status.metrics}` : 'off'}`,
    '',
  ];
  if (status.layers.length === 0) return `${[...lines, 'no layers served lazily or fallen back yet'].join('\n')}\n`;
  const rows = [['LAYER', 'STATE', 'CACHED (UNCOMPRESSED)', 'MOUNTS', 'PROFILE', 'ARCHIVE', 'IMAGES']];
  for (const l of status.layers) {
    rows.push([
      shortDigest(l.digest),
      l.state === 'fallback' ? `fallback (${l.reason ?? 'other'})` : 'lazy',
      cached(l),
      String(l.mounts.length),
      l.startupProfile === undefined ? '-' : l.startupProfile ? 'yes' : 'no',
      l.archive ?? '-',
      l.images.join(', ') || '-',
    ]);
  }
  lines.push(...table(rows));
  const hints = status.layers.filter((l) => l.state === 'fallback' && l.hint);
  if (hints.length > 0) {
    lines.push('');
    for (const l of hints) lines.push(`${shortDigest(l.digest)} fix: ${l.hint}`);
  }
  return `${lines.join('\n')}\n`;
}
