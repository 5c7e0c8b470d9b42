/**
 * The progress bar of `clip index` and `clip index push`, drawn on a terminal only (elsewhere nothing): a
 * header line and one line per layer, redrawn in place at most every RENDER_INTERVAL_MS.
 *
 *   127.0.0.1:5000/clip/test:large  sha256:5e1c0f7a93b2  linux/amd64
 *     1/2  sha256:97e3ab6c71d4    1.1 MiB  indexed
 *     2/2  sha256:0b8f6d37e2a1  128.1 MiB  [#########...........]  45%
 */
import type { LayerProgress } from '../remote/image-indexer';
import { formatBytes } from './pull-progress';

const RENDER_INTERVAL_MS = 100;
const BAR_WIDTH = 20;

const shortDigest = (d: string): string => d.replace(/^(sha256:[0-9a-f]{12})[0-9a-f]*$/, '$1');

export class IndexProgress {
  private header: string;
  private layers: LayerProgress[] = [];
  private drawnLines = 0;
  private timer: NodeJS.Timeout | undefined;
  private dirty = true;

  constructor(
    private readonly out: NodeJS.WriteStream,
    title: string,
  ) {
    this.header = `${title}  resolving`;
    if (this.out.isTTY === true) {
      this.timer = setInterval(() => this.render(), RENDER_INTERVAL_MS);
      this.timer.unref();
    }
  }

  /** The header once the image (or file) is known. */
  title(text: string): void {
    this.header = text;
    this.dirty = true;
  }

  layer(progress: LayerProgress): void {
    this.layers[progress.index] = progress;
    this.dirty = true;
  }

  /** Draws the final state and stops (before the result or an error is printed). */
  stop(): void {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.render();
  }

  private status(p: LayerProgress): string {
    if (p.state !== 'indexing') return p.state;
    const fraction = p.size > 0 ? Math.min(1, p.bytes / p.size) : 0;
    const filled = Math.round(fraction * BAR_WIDTH);
    return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}%`;
  }

  private render(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const width = Math.max(20, (this.out.columns || 80) - 1);
    const layers = this.layers.filter((l) => l !== undefined);
    const n = layers.length;
    const sizeWidth = Math.max(0, ...layers.map((l) => formatBytes(l.size).length));
    const lines = [
      this.header,
      ...layers.map((l) => `  ${`${l.index + 1}/${n}`.padStart(String(n).length * 2 + 1)}  ${shortDigest(l.digest)}  ${formatBytes(l.size).padStart(sizeWidth)}  ${this.status(l)}`),
    ];
    let text = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A` : '';
    for (const line of lines) text += `\r\x1b[2K${line.length > width ? line.slice(0, width) : line}\n`;
    this.out.write(text);
    this.drawnLines = lines.length;
  }
}
