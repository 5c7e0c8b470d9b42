/**
 * For the CLI tests: a throw-away registry (scripts/registry.sh) holding test images built by
 * scripts/build-test-image.py, and `bin/clip` run as a child process with a timeout.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, RunResult, run, runOk, tempDir } from '../../helpers/processes';
import type { ImageSummary } from '../../helpers/stack';

export const CLIP = path.join(REPO_ROOT, 'bin', 'clip');

export class CliFixture {
  dir = '';
  addr = '';
  images: Record<string, ImageSummary> = {};

  get registryState(): string {
    return path.join(this.dir, 'registry');
  }

  get layout(): string {
    return path.join(this.dir, 'layout');
  }

  ref(tag: string): string {
    return `${this.addr}/clip/test:${tag}`;
  }

  /** A layer blob of the layout the images were pushed from. */
  layerFile(digest: string): string {
    return path.join(this.layout, 'blobs', 'sha256', digest.slice('sha256:'.length));
  }

  async start(tags: string[]): Promise<void> {
    this.dir = await tempDir('cli');
    this.addr = (await runOk('bash', ['scripts/registry.sh', 'start', this.registryState], { timeoutMs: 60_000 })).trim().split('\n').pop()!;
    const tagArgs = tags.flatMap((t) => ['--tag', t]);
    this.images = JSON.parse(await runOk('python3', ['scripts/build-test-image.py', this.layout, ...tagArgs], { timeoutMs: 120_000 })) as Record<string, ImageSummary>;
    for (const tag of tags) await runOk('bash', ['scripts/push-test-image.sh', this.layout, tag, this.addr, 'clip/test'], { timeoutMs: 180_000 });
  }

  /** Body bytes the registry has sent for blob GETs so far. */
  async blobBytes(): Promise<number> {
    return Number((await runOk('bash', ['scripts/registry.sh', 'bytes', this.registryState])).trim());
  }

  clip(args: string[], timeoutMs = 120_000): Promise<RunResult> {
    return run(CLIP, args, { timeoutMs });
  }

  async clipOk(args: string[], timeoutMs?: number): Promise<string> {
    const r = await this.clip(args, timeoutMs);
    if (r.code !== 0) throw new Error(`clip ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  }

  async stop(): Promise<void> {
    if (!this.dir) return;
    await runOk('bash', ['scripts/registry.sh', 'stop', this.registryState]).catch((err: Error) => console.error(err.message));
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}
