/**
 * One cold "node" for a benchmark case: a fresh containerd (scripts/containerd.sh) and a fresh clip daemon,
 * both in a new state directory, pulling from a given registry address (the registry itself or the
 * throttling proxy in front of it). Nothing is shared with an earlier case but the registry.
 *
 * Every node that was started is registered until stop() has run; stopAllNodesSync() is the last resort
 * for a bench process that exits without having stopped them (signal, crash).
 */
import { spawn, spawnSync } from 'node:child_process';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { ClipDaemon } from '../test/helpers/clip-daemon';
import { CriClient } from '../test/helpers/cri-client';
import { REPO_ROOT, exists, runOk, startProcess, stopProcess, waitFor } from '../test/helpers/processes';
import { mountsUnder } from '../test/helpers/stack';

const SCRIPTS = path.join(REPO_ROOT, 'scripts');
const live = new Set<BenchNode>();

export interface NodeOptions {
  /** Directory to create the node's state directory in. */
  parent: string;
  name: string;
  /** host:port that image references point at (registry or proxy). */
  registry: string;
  /** Snapshotter CRI unpacks images with: 'clip' or 'overlayfs'. */
  criSnapshotter: string;
  /** Extra TOML for clip's config ([lazy] ...). */
  clipConfig?: string;
}

export interface RunTiming {
  /** ms from spawning `ctr run` to the first byte on its stdout. */
  firstOutputMs: number;
  /** ms from spawning `ctr run` to its exit. */
  exitMs: number;
  stdout: string;
}

export class BenchNode {
  clip: ClipDaemon | undefined;
  readonly state: string;
  private stopped = false;

  constructor(readonly opts: NodeOptions) {
    this.state = path.join(opts.parent, opts.name);
  }

  get containerdAddress(): string {
    return path.join(this.state, 'containerd.sock');
  }

  get clipRoot(): string {
    return path.join(this.state, 'clip');
  }

  async start(): Promise<void> {
    live.add(this);
    await fsp.mkdir(this.state, { recursive: true });
    const cfg = path.join(this.state, 'clip.toml');
    await fsp.writeFile(
      cfg,
      `${this.opts.clipConfig ?? ''}\n[registry]\nplain_http = true\nhosts_dir = "${path.join(this.state, 'certs.d')}"\ndocker_config = ""\n`,
    );
    this.clip = await startClip(this.clipRoot, path.join(this.state, 'clip.sock'), ['--config', cfg], process.env.BENCH_CLIP_CPU_PROF);
    await runOk(
      path.join(SCRIPTS, 'containerd.sh'),
      [
        'start', this.state,
        '--clip-address', path.join(this.state, 'clip.sock'),
        '--cri-snapshotter', this.opts.criSnapshotter,
        '--registry', this.opts.registry,
        '--log-level', 'info',
      ],
      { timeoutMs: 60_000 },
    );
  }

  imageRef(repo: string, tag: string): string {
    return `${this.opts.registry}/${repo}:${tag}`;
  }

  /** CRI ImageService/PullImage (namespace k8s.io); resolves with its duration in ms. */
  async criPull(ref: string, timeoutMs = 900_000): Promise<number> {
    const cri = new CriClient(this.containerdAddress);
    const t0 = performance.now();
    try {
      await cri.pullImage(ref, { timeoutMs });
    } catch (err) {
      throw new Error(`CRI PullImage ${ref}: ${(err as Error).message}\n${await this.logTails()}`);
    } finally {
      cri.close();
    }
    return performance.now() - t0;
  }

  /** `ctr -n k8s.io run --rm --snapshotter S REF ID`, timing the first byte of output and the exit. */
  runContainer(ref: string, id: string, snapshotter: string, timeoutMs = 300_000): Promise<RunTiming> {
    return new Promise((resolve, reject) => {
      const args = [this.state, '-n', 'k8s.io', 'run', '--rm', '--snapshotter', snapshotter, ref, id];
      const t0 = performance.now();
      const child = spawn(path.join(SCRIPTS, 'ctr.sh'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
      let first = -1;
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => {
        if (first < 0) first = performance.now() - t0;
        stdout += d.toString();
      });
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.once('error', reject);
      child.once('close', (code) => {
        clearTimeout(timer);
        const exitMs = performance.now() - t0;
        if (code !== 0 || first < 0) {
          void this.logTails().then((tails) => reject(new Error(`ctr run ${ref} exited ${code}: ${stderr}\n${tails}`)));
        } else {
          resolve({ firstOutputMs: first, exitMs, stdout });
        }
      });
    });
  }

  ctr(args: string[], timeoutMs = 120_000): Promise<string> {
    return runOk(path.join(SCRIPTS, 'ctr.sh'), [this.state, ...args], { timeoutMs });
  }

  /** Prepares an active snapshot on `parent` and mounts it at `target`; returns an unmount+remove function. */
  async mountSnapshot(snapshotter: string, namespace: string, parent: string, target: string): Promise<() => Promise<void>> {
    const key = `bench-${snapshotter}-${path.basename(target)}`;
    const snaps = ['-n', namespace, 'snapshots', '--snapshotter', snapshotter];
    await fsp.mkdir(target, { recursive: true });
    await this.ctr([...snaps, 'prepare', key, parent]);
    const cmd = (await this.ctr([...snaps, 'mounts', target, key])).trim();
    await runOk('sh', ['-c', cmd], { timeoutMs: 60_000 });
    return async () => {
      await runOk('umount', [target], { timeoutMs: 60_000 });
      await this.ctr([...snaps, 'rm', key]);
    };
  }

  /** Resident set of the clip daemon in bytes (VmRSS of /proc/PID/status). */
  async clipRss(): Promise<number> {
    const status = await fsp.readFile(`/proc/${this.clip!.process.pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+) kB/.exec(status);
    if (!kb) throw new Error('no VmRSS in /proc/PID/status');
    return Number(kb[1]) * 1024;
  }

  /** FUSE mounts under clip's root (one per lazily served layer). */
  async fuseMounts(): Promise<number> {
    const info = await fsp.readFile('/proc/self/mountinfo', 'utf8');
    const root = `${this.clipRoot}/`;
    return info.split('\n').filter((l) => {
      const f = l.split(' ');
      const sep = f.indexOf('-');
      return sep > 0 && f[sep + 1]?.startsWith('fuse') && f[4]!.startsWith(root);
    }).length;
  }

  clipLog(): string {
    return this.clip?.process.output() ?? '';
  }

  async logTails(lines = 30): Promise<string> {
    const containerd = await fsp.readFile(path.join(this.state, 'containerd.log'), 'utf8').catch(() => '');
    const child = this.clip?.process.child;
    const clipState = child && (child.exitCode !== null || child.signalCode !== null) ? `clip EXITED (code ${child.exitCode}, signal ${child.signalCode})` : 'clip running';
    return [
      clipState,
      `--- clip log (tail) ---\n${this.clipLog().split('\n').slice(-lines).join('\n')}`,
      `--- containerd log (tail) ---\n${containerd.split('\n').slice(-lines).join('\n')}`,
    ].join('\n');
  }

  /**
   * containerd (and its shims, and every mount under the state dir), then clip, then a second unmount
   * pass; the state dir is removed when nothing is mounted below it. `keepLog` keeps clip's output.
   */
  async stop(keepLog?: string): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const errors: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${(err as Error).message}`);
      }
    };
    const containerdStop = (): Promise<string> => runOk(path.join(SCRIPTS, 'containerd.sh'), ['stop', this.state], { timeoutMs: 90_000 });
    await step('stop containerd', containerdStop);
    await step('stop clip', async () => this.clip?.stop());
    await step('unmount leftovers', containerdStop);
    if (keepLog) await step('keep clip log', () => fsp.writeFile(keepLog, this.clipLog()));
    const left = await mountsUnder(this.state).catch(() => [] as string[]);
    if (left.length > 0) errors.push(`mounts left under ${this.state}: ${left.join(', ')}`);
    else await step('remove state', () => fsp.rm(this.state, { recursive: true, force: true }));
    live.delete(this);
    if (errors.length > 0) throw new Error(`stopping node ${this.opts.name}:\n${errors.join('\n')}`);
  }

  /** Synchronous last resort (process exit): containerd.sh stop, SIGKILL clip, unmount pass. */
  stopSync(): void {
    if (this.stopped) return;
    this.stopped = true;
    const stop = (): void => {
      spawnSync(path.join(SCRIPTS, 'containerd.sh'), ['stop', this.state], { stdio: 'ignore', timeout: 60_000 });
    };
    stop();
    const child = this.clip?.process.child;
    if (child && child.exitCode === null && child.pid) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    stop();
    live.delete(this);
  }
}

/**
 * `bin/clip serve` like test/helpers/clip-daemon's startClip, optionally under `node --cpu-prof`
 * (BENCH_CLIP_CPU_PROF=DIR: the daemon writes a V8 CPU profile into DIR when it stops).
 */
async function startClip(root: string, address: string, extraArgs: string[], cpuProfDir?: string): Promise<ClipDaemon> {
  const prof = cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : [];
  const p = startProcess(process.execPath, [...prof, path.join(REPO_ROOT, 'bin', 'clip'), 'serve', '--root', root, '--address', address, '--log-level', 'debug', ...extraArgs]);
  try {
    await waitFor(`clip socket ${address}`, async () => {
      if (p.child.exitCode !== null) throw new Error(`clip exited early:\n${p.output()}`);
      return (await exists(address)) && p.output().includes('serving');
    });
  } catch (err) {
    await stopProcess(p, 'SIGKILL');
    throw err;
  }
  return { root, address, process: p, stop: () => stopProcess(p, 'SIGTERM'), kill: async () => void (await stopProcess(p, 'SIGKILL')) };
}

export function stopAllNodesSync(): void {
  for (const node of [...live]) node.stopSync();
}

/** Starts a node, runs fn, and always stops the node again. */
export async function withNode<T>(opts: NodeOptions, fn: (node: BenchNode) => Promise<T>, keepLog?: string): Promise<T> {
  const node = new BenchNode(opts);
  try {
    await node.start();
    return await fn(node);
  } finally {
    await node.stop(keepLog);
  }
}

/** sync; echo 3 > /proc/sys/vm/drop_caches */
export async function dropCaches(): Promise<void> {
  await runOk('sh', ['-c', 'sync; echo 3 > /proc/sys/vm/drop_caches'], { timeoutMs: 120_000 });
}

export function readMountinfo(): string {
  return readFileSync('/proc/self/mountinfo', 'utf8');
}
