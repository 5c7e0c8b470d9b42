/**
 * What `clip pull` prints. On a terminal: one line per layer, redrawn in place (plain ANSI: cursor up,
 * clear line) at most every RENDER_INTERVAL_MS, then a summary line. Elsewhere (a pipe, a log file):
 * nothing until the summary line.
 *
 *   127.0.0.1:5000/clip/test:large  sha256:5e1c0f7a93b2  linux/amd64
 *     1/2  sha256:97e3ab6c71d4    1.1 MiB  lazy
 *     2/2  sha256:0b8f6d37e2a1  128.1 MiB  preparing 2.4s
 */
import type { LayerOutcome, LayerStatus, PullObserver, PullResult, ResolvedImageSummary } from '../containerd';

const RENDER_INTERVAL_MS = 100;

const OUTCOME_TEXT: Record<LayerOutcome, string> = {
  present: 'already present',
  lazy: 'lazy',
  unpacked: 'unpacked',
};

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

const shortDigest = (d: string): string => d.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]*$/, '$1');
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)}s`;

interface LayerLine {
  digest: string;
  size: number;
  status: LayerStatus;
  since: number;
}

/** One line summing up a finished pull. */
export function summaryLine(result: PullResult, elapsedMs: number): string {
  const counts = new Map<LayerOutcome, number>();
  for (const l of result.layers) counts.set(l.outcome, (counts.get(l.outcome) ?? 0) + 1);
  const parts = (['lazy', 'unpacked', 'present'] as const).filter((o) => counts.has(o)).map((o) => `${counts.get(o)} ${OUTCOME_TEXT[o]}`);
  const n = result.layers.length;
  return `pulled ${result.name} (${shortDigest(result.target.digest)}) in ${seconds(elapsedMs)}: ${n} layer${n === 1 ? '' : 's'}, ${parts.join(', ')}`;
}

export class PullProgress implements PullObserver {
  private header = '';
  private layers: LayerLine[] = [];
  private drawnLines = 0;
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private readonly started = Date.now();

  constructor(
    private readonly out: NodeJS.WriteStream,
    reference: string,
  ) {
    this.header = `${reference}  resolving`;
    if (this.interactive) {
      this.render();
      this.timer = setInterval(() => this.render(), RENDER_INTERVAL_MS);
      this.timer.unref();
    }
  }

  private get interactive(): boolean {
    return this.out.isTTY === true;
  }

  resolved(image: ResolvedImageSummary): void {
    this.header = [image.name, shortDigest(image.digest), image.platform].filter((p) => p).join('  ');
    this.layers = image.layers.map((l) => ({ digest: l.digest, size: l.size, status: { state: 'waiting' }, since: Date.now() }));
    this.dirty = true;
  }

  layer(index: number, status: LayerStatus): void {
    const line = this.layers[index];
    if (!line) return;
    if (line.status.state !== status.state) line.since = Date.now();
    line.status = status;
    this.dirty = true;
  }

  /** Final state and the summary line (printed whether or not stdout is a terminal). */
  finish(result: PullResult): void {
    this.stop();
    this.out.write(`${summaryLine(result, Date.now() - this.started)}\n`);
  }

  /** Stops redrawing, leaving the last state on screen (before an error is reported). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.interactive) {
      this.dirty = true;
      this.render();
    }
  }

  private statusText(line: LayerLine): string {
    const s = line.status;
    switch (s.state) {
      case 'waiting':
        return 'waiting';
      case 'preparing':
        return `preparing ${seconds(Date.now() - line.since)}`;
      case 'fetching':
        return `downloading ${formatBytes(s.bytes)} / ${formatBytes(line.size)}`;
      case 'applying':
        return `extracting ${seconds(Date.now() - line.since)}`;
      case 'done':
        return OUTCOME_TEXT[s.outcome];
    }
  }

  private render(): void {
    const active = this.layers.some((l) => l.status.state === 'preparing' || l.status.state === 'applying');
    if (!this.dirty && !active && this.drawnLines > 0) return;
    this.dirty = false;
    const width = Math.max(20, (this.out.columns || 80) - 1);
    const n = this.layers.length;
    const sizeWidth = Math.max(0, ...this.layers.map((l) => formatBytes(l.size).length));
    const lines = [
      this.header,
      ...this.layers.map((l, i) => `  ${`${i + 1}/${n}`.padStart(String(n).length * 2 + 1)}  ${shortDigest(l.digest)}  ${formatBytes(l.size).padStart(sizeWidth)}  ${this.statusText(l)}`),
    ];
    let text = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A` : '';
    for (const line of lines) text += `\r\x1b[2K${line.length > width ? line.slice(0, width) : line}\n`;
    this.out.write(text);
    this.drawnLines = lines.length;
  }
}
