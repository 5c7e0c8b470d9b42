/**
 * A throw-away stack for one end-to-end test file: a registry holding the test images, the clip daemon and
 * a containerd with clip as a proxy snapshotter, all inside one fresh state directory. The containerd
 * release is CLIP_TEST_CONTAINERD's (containerd-release.ts; default 1.6, the system's).
 *
 *   describe('...', () => {
 *     const stack = useStack();            // before(): start; after(): teardown, even when tests fail
 *     test('...', async () => { await stack.ctrOk(['images', 'pull', ...]); });
 *   });
 *
 * Layout of the state dir (/tmp/clip-e2e-XXXXXX):
 *   registry.*, registry-data/   scripts/registry.sh         layout/   OCI layout (build-test-image.py)
 *   clip/                        clip's --root               clip.sock clip's --address
 *   clip.log                     clip's output (written at teardown)
 *   config.toml, containerd.*, root/, state/, certs.d/ ...   scripts/containerd.sh
 *
 * Every command has a timeout; daemons are stopped by PID (the scripts keep pid files); teardown is safe
 * after a partial start-up and runs at most once. Set CLIP_TEST_KEEP_LOGS=DIR to keep the daemons' logs in
 * DIR/<state dir name>/ after teardown.
 */
import { spawn, spawnSync } from 'node:child_process';
import { promises as fsp, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before } from 'node:test';
import { ClipDaemon, holderPidFile, startClip } from './clip-daemon';
import { CONTAINERD, containerdBinDir } from './containerd-release';
import { REPO_ROOT, RunResult, runOk, tempDir } from './processes';

const SCRIPTS = path.join(REPO_ROOT, 'scripts');
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface LayerSummary {
  mediaType: string;
  digest: string;
  size: number;
  diff_id: string;
  uncompressed_size: number;
}

/** What scripts/build-test-image.py prints for one tag. */
export interface ImageSummary {
  manifest: string;
  config: string;
  layers: LayerSummary[];
}

export interface StackOptions {
  /** Tags of the test layout to push (default: multilayer and demo). */
  tags?: string[];
  /** Repository in the registry (default clip/test). */
  repo?: string;
  /** Default timeout of ctr() calls (default 60 s). */
  ctrTimeoutMs?: number;
  /** Snapshotter CRI unpacks images with (default overlayfs; 'clip' for lazy pulls through CRI). */
  criSnapshotter?: string;
  /** Extra TOML for clip's config file; the stack already sets registry.plain_http and hosts_dir. */
  clipConfig?: string;
  /** Extra lines for the [registry] table of clip's config file (e.g. "retries = 5"). */
  clipRegistryConfig?: string;
  /**
   * containerd 2.1+: CRI pulls through the transfer service ('transfer', containerd's default) or on its
   * own ('local', disable_snapshot_annotations = false). containerd 1.x always pulls locally.
   */
  criPull?: 'local' | 'transfer';
  /** Runs once the state dir exists, before clip starts (e.g. to mount a filesystem under clip's root). */
  beforeClip?: (stack: Stack) => Promise<void>;
  /**
   * false: containerd sends no layer labels, only containerd.io/snapshot.ref, as for nerdctl's pull (CRI
   * with disable_snapshot_annotations = true; 2.x: the drop-in without enable_remote_snapshot_annotations).
   */
  layerLabels?: boolean;
  /** PEM certificates containerd trusts instead of the system's (SSL_CERT_FILE), for an https test registry. */
  containerdCaFile?: string;
  /**
   * Another node of a cluster: use the images of this started stack (returned by the function, called at
   * start) instead of building and pushing them: from its registry, or with `readOnly` from a read-only
   * registry of this stack's own serving the same storage (pushes answer 405).
   */
  registryOf?: () => { stack: Stack; readOnly?: boolean };
}

export interface CtrResult extends RunResult {
  timedOut: boolean;
  durationMs: number;
}

/** Runs a command with stdin closed (ctr run copies stdin into the container), bounded by timeoutMs (SIGKILL). */
export function runClosedStdin(cmd: string, args: string[], timeoutMs: number): Promise<CtrResult> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: stderr + err.message, timedOut, durationMs: Date.now() - started });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) stderr += `\n(killed after ${timeoutMs} ms)`;
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr, timedOut, durationMs: Date.now() - started });
    });
  });
}

async function tail(file: string, lines = 40): Promise<string> {
  const text = await fsp.readFile(file, 'utf8').catch(() => '');
  return text.split('\n').slice(-lines).join('\n');
}

/** Mount points at or below dir, from /proc/self/mountinfo (field 5, octal escapes decoded). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const info = await fsp.readFile('/proc/self/mountinfo', 'utf8');
  return info
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((mp) => mp === dir || mp.startsWith(`${dir}/`));
}

export class Stack {
  /** The state directory ('' until start() created it). */
  state = '';
  registryAddress = '';
  clip: ClipDaemon | undefined;
  images: Record<string, ImageSummary> = {};
  readonly repo: string;
  private readonly tags: string[];
  private readonly ctrTimeoutMs: number;
  private readonly criSnapshotter: string;
  private readonly clipConfig: string;
  private readonly clipRegistryConfig: string;
  private readonly criPull: 'local' | 'transfer' | undefined;
  private readonly beforeClip: ((stack: Stack) => Promise<void>) | undefined;
  private readonly layerLabels: boolean;
  private readonly containerdCaFile: string | undefined;
  private readonly registryOf: StackOptions['registryOf'];
  /** The state dir of the registry this stack uses (another stack's, for a node sharing it). */
  private registryState = '';
  private tornDown: Promise<void> | undefined;
  /** Set once teardown has finished or the emergency stop has run. */
  private stopped = false;
  private readonly onExit = (): void => this.emergencyStop();
  /** Killed by a signal (Ctrl-C, the test runner giving up): Node would exit without 'exit' handlers. */
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.emergencyStop();
    process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGHUP' ? 1 : 15));
  };

  constructor(opts: StackOptions = {}) {
    this.tags = opts.tags ?? ['multilayer', 'demo'];
    this.repo = opts.repo ?? 'clip/test';
    this.ctrTimeoutMs = opts.ctrTimeoutMs ?? 60_000;
    this.criSnapshotter = opts.criSnapshotter ?? 'overlayfs';
    this.clipConfig = opts.clipConfig ?? '';
    this.clipRegistryConfig = opts.clipRegistryConfig ?? '';
    this.criPull = opts.criPull;
    this.beforeClip = opts.beforeClip;
    this.layerLabels = opts.layerLabels ?? true;
    this.containerdCaFile = opts.containerdCaFile;
    this.registryOf = opts.registryOf;
  }

  get clipRoot(): string {
    return path.join(this.state, 'clip');
  }

  get clipAddress(): string {
    return path.join(this.state, 'clip.sock');
  }

  get containerdAddress(): string {
    return path.join(this.state, 'containerd.sock');
  }

  /** hosts.toml directory for the registry, for `ctr images pull --hosts-dir`. */
  get hostsDir(): string {
    return path.join(this.state, 'certs.d');
  }

  imageRef(tag: string): string {
    if (!this.registryAddress) throw new Error('stack not started');
    return `${this.registryAddress}/${this.repo}:${tag}`;
  }

  async start(): Promise<void> {
    if (this.state) throw new Error('stack already started');
    this.state = await tempDir('e2e');
    process.on('exit', this.onExit);
    for (const sig of SIGNALS) process.once(sig, this.onSignal);
    if (`${this.containerdAddress}.ttrpc`.length > 100) throw new Error(`state dir path too long for sockets: ${this.state}`);

    await this.startRegistry();
    // clip reads this stack's containerd (not the system's) to find layers Prepared without labels.
    const lazy = `[lazy]\ncontainerd_address = "${this.containerdAddress}"\n`;
    const clipConfig = this.clipConfig.includes('[lazy]\n') ? this.clipConfig.replace('[lazy]\n', lazy) : `${lazy}${this.clipConfig}`;
    await fsp.writeFile(
      this.clipConfigFile,
      `${clipConfig}\n[registry]\nplain_http = true\nhosts_dir = "${this.hostsDir}"\ndocker_config = ""\n${this.clipRegistryConfig}\n`,
    );
    await this.beforeClip?.(this);
    this.clip = await startClip(this.clipRoot, this.clipAddress, ['--config', this.clipConfigFile]);
    const criPull = [...(this.criPull ? ['--cri-pull', this.criPull] : []), ...(this.layerLabels ? [] : ['--no-layer-labels']),
      ...(this.containerdCaFile ? ['--ca-file', this.containerdCaFile] : []),
    ];
    await runOk(
      path.join(SCRIPTS, 'containerd.sh'),
      ['start', this.state, '--bin-dir', await containerdBinDir(), '--clip-address', this.clipAddress, '--cri-snapshotter', this.criSnapshotter,
        '--registry', this.registryAddress, ...criPull],
      { timeoutMs: 60_000 },
    );
  }

  /** The registry with the test images: started and filled here, or another stack's (registryOf). */
  private async startRegistry(): Promise<void> {
    const shared = this.registryOf?.();
    if (shared) {
      if (shared.stack.repo !== this.repo) throw new Error(`registryOf: the other stack's images are in ${shared.stack.repo}, not ${this.repo}`);
      this.images = shared.stack.images;
      if (!shared.readOnly) {
        this.registryAddress = shared.stack.registryAddress;
        this.registryState = shared.stack.state;
        return;
      }
      const storage = path.join(shared.stack.state, 'registry-data');
      this.registryAddress = (await runOk(path.join(SCRIPTS, 'registry.sh'), ['start', this.state, '--storage', storage, '--read-only'], { timeoutMs: 60_000 })).trim();
      this.registryState = this.state;
      return;
    }
    this.registryAddress = (await runOk(path.join(SCRIPTS, 'registry.sh'), ['start', this.state], { timeoutMs: 60_000 })).trim();
    this.registryState = this.state;
    const layout = path.join(this.state, 'layout');
    const tagArgs = this.tags.flatMap((t) => ['--tag', t]);
    const summary = await runOk(path.join(SCRIPTS, 'build-test-image.py'), [layout, ...tagArgs], { timeoutMs: 120_000 });
    this.images = JSON.parse(summary) as Record<string, ImageSummary>;
    for (const tag of this.tags) {
      await runOk(path.join(SCRIPTS, 'push-test-image.sh'), [layout, tag, this.registryAddress, this.repo], { timeoutMs: 150_000 });
    }
  }

  get clipConfigFile(): string {
    return path.join(this.state, 'clip.toml');
  }

  /**
   * Stops clip (SIGTERM, or SIGKILL with kill) and starts it again on the same root and socket (the build
   * in installDir if given: an upgrade).
   */
  async restartClip(opts: { kill?: boolean; installDir?: string } = {}): Promise<void> {
    if (opts.kill) await this.clip?.kill();
    else await this.clip?.stop();
    this.earlierClipLogs += this.clip?.process.output() ?? '';
    this.clip = await startClip(this.clipRoot, this.clipAddress, ['--config', this.clipConfigFile], opts.installDir);
  }

  /** Kills the clip-fd-holder clip started (it keeps layer connections across clip restarts), by its PID. */
  private killFdHolder(): void {
    let pid = 0;
    try {
      pid = Number(readFileSync(holderPidFile(this.clipRoot), 'utf8').trim());
      if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('clip-fd-holder')) process.kill(pid, 'SIGKILL');
    } catch {
      // no holder, or gone already
    }
  }

  /** Body bytes the registry has sent for blob GETs so far (of the given blobs only, if any), from its access log. */
  async registryBlobBytes(digests: string[] = []): Promise<number> {
    return Number((await runOk(path.join(SCRIPTS, 'registry.sh'), ['bytes', this.registryState, ...digests], { timeoutMs: 30_000 })).trim());
  }

  /** `ctr --address <containerd.sock> ARGS` through scripts/ctr.sh, stdin closed, bounded by a timeout. */
  ctr(args: string[], opts: { timeoutMs?: number } = {}): Promise<CtrResult> {
    if (!this.state) throw new Error('stack not started');
    return runClosedStdin(path.join(SCRIPTS, 'ctr.sh'), [this.state, ...args], opts.timeoutMs ?? this.ctrTimeoutMs);
  }

  /** Like ctr(), but a non-zero exit is an error carrying the output and the tails of the daemons' logs. */
  async ctrOk(args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
    const r = await this.ctr(args, opts);
    if (r.code !== 0) {
      throw new Error(`ctr ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}\n${await this.diagnostics()}`);
    }
    return r.stdout;
  }

  /** Stops the clip daemon (SIGTERM, SIGKILL after 10 s); the rest of the stack keeps running. */
  async stopClip(): Promise<void> {
    await this.clip?.stop();
  }

  /** Output of clip daemons that were restarted. */
  private earlierClipLogs = '';

  /** The clip daemon's output so far (of every daemon this stack started). */
  clipLog(): string {
    return this.earlierClipLogs + (this.clip?.process.output() ?? '');
  }

  /** containerd's log so far. */
  containerdLog(): Promise<string> {
    return fsp.readFile(path.join(this.state, 'containerd.log'), 'utf8');
  }

  /** Tails of clip's, containerd's and the registry's logs, for failure messages. */
  async diagnostics(lines = 25): Promise<string> {
    const clip = this.clipLog().split('\n').slice(-lines).join('\n');
    return [
      `--- clip log (tail) ---\n${clip}`,
      `--- containerd log (tail) ---\n${await tail(path.join(this.state, 'containerd.log'), lines)}`,
    ].join('\n');
  }

  /**
   * Stops everything and removes the state dir. Safe after a partial start and idempotent. Order:
   * containerd (containerd.sh stop also kills leftover shims and unmounts everything under the state dir),
   * clip, a second unmount pass (mounts clip may have left), the registry. The state dir is removed only
   * when nothing is mounted below it any more; otherwise it is kept and teardown fails.
   */
  teardown(): Promise<void> {
    this.tornDown ??= this.doTeardown();
    return this.tornDown;
  }

  private async doTeardown(): Promise<void> {
    if (!this.state) return;
    const errors: string[] = [];
    const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
    };
    const containerdStop = (): Promise<string> =>
      runOk(path.join(SCRIPTS, 'containerd.sh'), ['stop', this.state], { timeoutMs: 90_000 });

    await step('stop containerd', containerdStop);
    await step('stop clip', async () => {
      await this.clip?.stop();
    });
    // containerd.sh stop is a no-op for containerd by now; it unmounts whatever is still mounted below state
    // (the layer mounts clip kept for a next process among them).
    await step('unmount leftovers', containerdStop);
    await step('stop clip-fd-holder', async () => this.killFdHolder());
    await step('stop registry', () => runOk(path.join(SCRIPTS, 'registry.sh'), ['stop', this.state], { timeoutMs: 30_000 }));
    await step('save clip log', () => fsp.writeFile(path.join(this.state, 'clip.log'), this.clipLog()));
    const keep = process.env.CLIP_TEST_KEEP_LOGS;
    if (keep) {
      await step('keep logs', async () => {
        const dest = path.join(keep, path.basename(this.state));
        await fsp.mkdir(dest, { recursive: true });
        for (const name of ['clip.log', 'containerd.log', 'registry.log']) {
          await fsp.copyFile(path.join(this.state, name), path.join(dest, name)).catch(() => undefined);
        }
      });
    }
    const left = await mountsUnder(this.state).catch(() => [] as string[]);
    if (left.length > 0) {
      errors.push(`mounts left under ${this.state}, not removing it: ${left.join(', ')}`);
    } else {
      await step('remove state dir', () => fsp.rm(this.state, { recursive: true, force: true }));
    }
    process.off('exit', this.onExit);
    for (const sig of SIGNALS) process.off(sig, this.onSignal);
    this.stopped = true;
    if (errors.length > 0) throw new Error(`stack teardown:\n${errors.join('\n')}`);
  }

  /**
   * Last resort when the test process exits without teardown (crash, signal): synchronously stop containerd,
   * kill clip, unmount leftovers, stop the registry (the scripts stop the setsid'd daemons by PID) and
   * remove the state dir if nothing is mounted in it. Synchronous calls are fine: this is the test process,
   * not the daemon serving any mount.
   */
  private emergencyStop(): void {
    if (!this.state || this.stopped) return;
    this.stopped = true;
    const script = (name: string, timeout: number): void => {
      spawnSync(path.join(SCRIPTS, name), ['stop', this.state], { stdio: 'ignore', timeout });
    };
    script('containerd.sh', 60_000);
    const pid = this.clip?.process.pid;
    if (pid !== undefined && this.clip?.process.child.exitCode === null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    script('containerd.sh', 30_000); // unmount pass
    this.killFdHolder();
    script('registry.sh', 20_000);
    const mounted = readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${this.state}`);
    if (!mounted) rmSync(this.state, { recursive: true, force: true });
  }
}

/**
 * Registers node:test hooks in the current suite (or file): before() starts a Stack, after() tears it down
 * whatever happened in between. Returns the Stack; use it inside tests only.
 */
export function useStack(opts: StackOptions & { startTimeoutMs?: number } = {}): Stack {
  const stack = new Stack(opts);
  // The first start of a release may fetch it from Debian's archive (scripts/fetch-containerd.sh).
  before(() => stack.start(), { timeout: opts.startTimeoutMs ?? (CONTAINERD.series === '1.6' ? 300_000 : 1_500_000) });
  after(() => stack.teardown(), { timeout: 300_000 });
  return stack;
}
