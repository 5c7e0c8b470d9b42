/**
 * An image mounted lazily on a directory without containerd (`clip mount`; the programmatic API): every
 * layer is served read-only through FUSE by LazyLayers, with the same archive resolution as the
 * snapshotter (archive store → published archive → indexing the layer), and an overlay on the target
 * stacks them under a writable upper directory, so the target can be a runc bundle's rootfs.
 *
 * State directory (default `<parent of target>/.<name of target>.clip`):
 *
 *   mount.json       what is mounted (MountState), written atomically once everything is mounted
 *   layers/<i>       FUSE mount of layer i (0 = bottom layer)
 *   upper/, work/    the overlay's upper and work directories
 *   archives/, cache/  clip archives and fetched spans, unless `root` keeps them elsewhere
 *   mount.log        the serving process's log when `clip mount` runs in the background
 *
 * The FUSE layers are served by the process that mounted them, which must live until the image is
 * unmounted. unmount() undoes everything in that process; unmountImage() does it from any other process
 * (it signals the serving process and waits, then removes whatever a dead one left behind). Both end with
 * no mount and no state directory left. Nothing here touches the layer mounts synchronously: the serving
 * process answers their requests on its one thread.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError, errorMessage } from '../errors';
import { filesystemSpace } from '../fusefs/cache-scan';
import { ContentCache, type CacheBounds } from '../fusefs/content-cache';
import { forceUnmount, listFuseMounts, mountAt, readMountInfo } from '../fusefs/mounts';
import { DEFAULT_SPAN_SIZE } from '../indexer';
import { Platform, RegistryClient } from '../registry';
import { LABEL_CRI_IMAGE_REF, LABEL_CRI_LAYER_DIGEST, LABEL_CRI_MANIFEST_DIGEST } from '../snapshotter/labels';
import { ArchiveStore } from './archive-store';
import { silentLogger } from './image-indexer';
import type { TrustPolicy } from '../trust';
import { LazyLayers } from './lazy-layers';

export const MOUNT_STATE_FILE = 'mount.json';
const COMMAND_TIMEOUT_MS = 30_000;
const ARCHIVE_STORE_BYTES = Number.MAX_SAFE_INTEGER;

/** What mount.json records. */
export interface MountState {
  version: 1;
  /** The image reference as resolved, and its platform manifest. */
  image: string;
  manifestDigest: string;
  target: string;
  stateDir: string;
  /** The process serving the FUSE layers, and its start time (so a reused pid is never signalled). */
  pid: number;
  pidStart: string;
  /** Bottom layer first. */
  layers: Array<{ digest: string; mountPoint: string }>;
  /** The target directory was created by the mount (and is removed by the unmount). */
  createdTarget: boolean;
}

export interface MountImageOptions {
  registry: RegistryClient;
  /** Platform to pick from a multi-platform image (default: the registry client's). */
  platform?: Platform;
  /** State directory (default `<parent of target>/.<name of target>.clip`). */
  stateDir?: string;
  /** Keep archives and fetched spans in `<root>/archives` and `<root>/cache` instead of the state directory. */
  root?: string;
  logger?: Logger;
  spanSize?: number;
  /** A read waiting longer for the registry fails with EIO (default 30 s). */
  readTimeoutMs?: number;
  /** Fetch the rest of every layer in the background (default false: only what is read). */
  backgroundFetch?: boolean;
  /** Look for archives published in the registry (default true; used only where `policy` trusts them). */
  publishedArchives?: boolean;
  /** Who may describe a layer besides this machine (default: nobody; docs/security.md). */
  policy?: TrustPolicy;
  /**
   * The content cache's bounds, given the size of the filesystem it is on (default: unbounded). They bound
   * the spans this mount fetched; another mount sharing `root` keeps its own account.
   */
  cacheBounds?: (filesystemBytes: number) => Partial<CacheBounds>;
}

export function defaultStateDir(target: string): string {
  const t = path.resolve(target);
  return path.join(path.dirname(t), `.${path.basename(t)}.clip`);
}

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: COMMAND_TIMEOUT_MS, killSignal: 'SIGKILL' }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const detail = String(stderr).trim() || errorMessage(err);
      reject(new UnavailableError(`${cmd} ${args.join(' ')}: ${err.killed ? `no answer within ${COMMAND_TIMEOUT_MS} ms` : detail}`));
    });
  });
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks), or undefined when there is no such process. */
async function processStart(pid: number): Promise<string | undefined> {
  const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

async function isEmptyDir(dir: string): Promise<boolean> {
  return (await fsp.readdir(dir)).length === 0;
}

/** Mount points at or below `dir` (any file system). */
async function mountsUnder(dir: string): Promise<string[]> {
  const root = path.resolve(dir);
  return (await readMountInfo()).map((m) => m.mountPoint).filter((p) => p === root || p.startsWith(`${root}/`));
}

/** Unmounts the overlay on `target`; lazily (detached, a warning) when it is busy. */
async function unmountOverlay(target: string, logger: Logger): Promise<void> {
  if (!(await mountAt(target))) return;
  try {
    await run('umount', [target]);
  } catch (err) {
    logger.warn(`${errorMessage(err)}; detaching it lazily`);
    await run('umount', ['-l', target]);
  }
}

/** Removes the state directory once nothing is mounted below it, and the target if the mount created it. */
async function removeState(stateDir: string, target: string, createdTarget: boolean): Promise<void> {
  const left = await mountsUnder(stateDir);
  if (left.length > 0) throw new FailedPreconditionError(`not removing ${stateDir}: still mounted: ${left.join(', ')}`);
  await fsp.rm(stateDir, { recursive: true, force: true });
  if (createdTarget && !(await mountAt(target))) await fsp.rmdir(target).catch(() => undefined);
}

export class ImageMount {
  private unmounting?: Promise<void>;

  private constructor(
    readonly state: MountState,
    private readonly layers: LazyLayers,
    private readonly logger: Logger,
  ) {}

  /** Mounts `image` on `target` (an empty directory, created if missing). */
  static async mount(image: string, target: string, options: MountImageOptions): Promise<ImageMount> {
    const logger = options.logger ?? silentLogger();
    const dir = path.resolve(target);
    const stateDir = path.resolve(options.stateDir ?? defaultStateDir(dir));
    if (stateDir === dir || stateDir.startsWith(`${dir}/`)) throw new InvalidArgumentError(`the state directory ${stateDir} cannot be inside ${dir}`);
    if (await mountAt(dir)) throw new FailedPreconditionError(`${dir} is already a mount point`);
    let createdTarget = false;
    try {
      if (!(await isEmptyDir(dir))) throw new FailedPreconditionError(`${dir} is not empty`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await fsp.mkdir(dir, { recursive: true });
      createdTarget = true;
    }
    // A state directory may exist already (the background `clip mount` puts its log there), but not in use.
    await fsp.mkdir(stateDir, { recursive: true, mode: 0o700 });
    if (await fsp.access(path.join(stateDir, MOUNT_STATE_FILE)).then(() => true, () => false)) {
      throw new FailedPreconditionError(`${stateDir} holds another mount's state (clip umount ${dir} first)`);
    }

    const { registry } = options;
    const storeRoot = options.root ? path.resolve(options.root) : stateDir;
    const cacheDir = path.join(storeRoot, 'cache');
    await fsp.mkdir(cacheDir, { recursive: true, mode: 0o700 });
    const cacheBounds = options.cacheBounds?.((await filesystemSpace(cacheDir)).totalBytes);
    const layers = new LazyLayers({
      registry,
      archives: new ArchiveStore(path.join(storeRoot, 'archives'), ARCHIVE_STORE_BYTES, logger, options.policy),
      policy: options.policy,
      cache: new ContentCache(cacheDir, cacheBounds),
      logger,
      spanSize: options.spanSize ?? DEFAULT_SPAN_SIZE,
      cacheWhileIndexing: true,
      backgroundFetch: options.backgroundFetch ?? false,
      // The layers are mounted concurrently below instead, so that no indexing outlives a failed mount.
      prefetchImageLayers: false,
      indexConcurrency: 3,
      readTimeoutMs: options.readTimeoutMs ?? 30_000,
      publishedArchives: options.publishedArchives,
    });
    const state: MountState = {
      version: 1,
      image,
      manifestDigest: '',
      target: dir,
      stateDir,
      pid: process.pid,
      pidStart: (await processStart(process.pid)) ?? '',
      layers: [],
      createdTarget,
    };
    try {
      const resolved = await registry.resolve(image, { platform: options.platform });
      state.image = resolved.reference.toString();
      state.manifestDigest = resolved.digest;
      const digests = resolved.layers.map((l) => l.digest);
      logger.info(`mounting ${state.image} (${resolved.digest}, ${digests.length} layers) on ${dir}`);
      state.layers = digests.map((digest, i) => ({ digest, mountPoint: path.join(stateDir, 'layers', String(i)) }));
      const mounted = await Promise.allSettled(
        state.layers.map(async ({ digest, mountPoint }) => {
          await fsp.mkdir(mountPoint, { recursive: true });
          await layers.mount(mountPoint, {
            [LABEL_CRI_IMAGE_REF]: state.image,
            [LABEL_CRI_LAYER_DIGEST]: digest,
            [LABEL_CRI_MANIFEST_DIGEST]: resolved.digest,
          });
        }),
      );
      const failed = mounted.find((m): m is PromiseRejectedResult => m.status === 'rejected');
      if (failed) throw failed.reason;
      const upper = path.join(stateDir, 'upper');
      const work = path.join(stateDir, 'work');
      await fsp.mkdir(upper);
      await fsp.mkdir(work);
      const lower = state.layers.map((l) => l.mountPoint).reverse().join(':');
      await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower},upperdir=${upper},workdir=${work}`, dir]);
      const tmp = path.join(stateDir, `.${MOUNT_STATE_FILE}.tmp`);
      await fsp.writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
      await fsp.rename(tmp, path.join(stateDir, MOUNT_STATE_FILE));
    } catch (err) {
      await unmountOverlay(dir, logger).catch(() => undefined);
      await layers.close();
      await removeState(stateDir, dir, createdTarget).catch((cleanup: unknown) => logger.warn(`cleaning up after a failed mount: ${errorMessage(cleanup)}`));
      throw err;
    }
    logger.info(`mounted ${state.image} on ${dir}`);
    return new ImageMount(state, layers, logger);
  }

  /** Unmounts the overlay and the layers and removes the state directory. Safe to call twice. */
  unmount(): Promise<void> {
    this.unmounting ??= (async () => {
      const { target, stateDir, createdTarget } = this.state;
      await unmountOverlay(target, this.logger);
      await this.layers.close();
      await removeState(stateDir, target, createdTarget);
      this.logger.info(`unmounted ${this.state.image} from ${target}`);
    })();
    return this.unmounting;
  }
}

/** The state directory of the clip mount on `target`: from the overlay's upperdir, else the default place. */
async function findStateDir(target: string): Promise<string> {
  const overlay = await mountAt(target);
  const upper = overlay?.fsType === 'overlay' ? /(?:^|,)upperdir=([^,]+)/.exec(overlay.superOptions)?.[1] : undefined;
  return upper ? path.dirname(upper) : defaultStateDir(target);
}

async function readState(stateDir: string): Promise<MountState | undefined> {
  try {
    return JSON.parse(await fsp.readFile(path.join(stateDir, MOUNT_STATE_FILE), 'utf8')) as MountState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InvalidArgumentError(`${path.join(stateDir, MOUNT_STATE_FILE)}: ${errorMessage(err)}`, { cause: err });
  }
}

/**
 * Unmounts the image mounted on `target` by another process (clip umount): asks the serving process to
 * stop (SIGTERM; it unmounts everything and removes its state) and waits for it, then unmounts and removes
 * whatever is left, e.g. after that process was killed.
 */
export async function unmountImage(target: string, options: { stateDir?: string; logger?: Logger; timeoutMs?: number } = {}): Promise<void> {
  const logger = options.logger ?? silentLogger();
  const dir = path.resolve(target);
  const stateDir = path.resolve(options.stateDir ?? (await findStateDir(dir)));
  const state = await readState(stateDir);
  const stateExists = await fsp.access(stateDir).then(() => true, () => false);
  if (!state && !stateExists) throw new NotFoundError(`not a clip mount (no state in ${stateDir})`);

  if (state && state.pid !== process.pid && state.pidStart && (await processStart(state.pid)) === state.pidStart) {
    process.kill(state.pid, 'SIGTERM');
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    while ((await processStart(state.pid)) === state.pidStart && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if ((await processStart(state.pid)) === state.pidStart) logger.warn(`the serving process ${state.pid} did not stop; unmounting without it`);
  }
  // Whatever is left: the overlay, then the layers (their server is gone or stuck), then the files.
  await unmountOverlay(dir, logger);
  if (!(await fsp.access(stateDir).then(() => true, () => false))) return;
  for (const m of await listFuseMounts(stateDir)) await forceUnmount(m.mountPoint, { abortConnection: true });
  await removeState(stateDir, dir, state?.createdTarget ?? false);
}
