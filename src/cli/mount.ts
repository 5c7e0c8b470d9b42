/**
 * `clip mount IMAGE DIR` mounts an image lazily on DIR without containerd (image-mount.ts), e.g. as a runc
 * bundle's rootfs; `clip umount DIR` undoes it.
 *
 * The FUSE layers are served by the `clip mount` process itself, so that process has to outlive the
 * command: by default `clip mount` starts a copy of itself in the background (its own session, its log in
 * the state directory's mount.log), waits until the image is mounted and exits, leaving that copy to serve
 * until `clip umount DIR` or a SIGTERM to it. With `--foreground` the command serves itself, logging to
 * stderr, until SIGTERM or SIGINT.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { Command, Option } from 'commander';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import { DiskShare, LOG_LEVELS, LogLevel, diskShareBytes, parseDiskShare } from '../daemon/config';
import { createLogger } from '../daemon/logger';
import { FailedPreconditionError, InvalidArgumentError, errorMessage } from '../errors';
import { ImageMount, MOUNT_STATE_FILE, defaultStateDir, unmountImage } from '../remote/image-mount';
import { RegistryClient } from '../registry';
import { TrustPolicy } from '../trust';
import { RegistryFlags, addRegistryOptions, hostsDirs, oneLine, registryFromFlags } from './registry-flags';

interface MountFlags extends RegistryFlags {
  state?: string;
  root?: string;
  foreground?: boolean;
  backgroundFetch?: boolean;
  published: boolean;
  trustedKey?: string[];
  trustedRepository?: string[];
  cacheMaxSize: DiskShare;
  cacheMinFree: DiskShare;
  logLevel: LogLevel;
}

/** The bounds of the content cache, as the daemon's [cache] max_size and min_free (README). */
const DEFAULT_CACHE_SHARE = '20%';

/** Messages from the background copy to the command that started it (over the IPC channel). */
type ReadyMessage = { ready: true; pid: number } | { error: string };

/** Sends a message to the parent, if there is one, and waits until it is written. */
function tellParent(message: ReadyMessage): Promise<void> {
  return new Promise((resolve) => (process.send ? process.send(message, undefined, {}, () => resolve()) : resolve()));
}

function stateDirOf(dir: string, flags: { state?: string }): string {
  return path.resolve(flags.state ?? defaultStateDir(dir));
}

/** Resolves when the process gets SIGTERM or SIGINT. */
function untilSignal(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      logger.info(`received ${signal}, unmounting`);
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/** Mounts and serves until a signal; tells a parent over IPC (if any) when mounted or why not. */
async function serve(image: string, dir: string, flags: MountFlags): Promise<void> {
  const logger = createLogger(flags.logLevel);
  const stopped = untilSignal(logger); // a signal during the mount unmounts as soon as it is done
  let registry: RegistryClient | undefined;
  let mount: ImageMount;
  try {
    const fromFlags = await registryFromFlags(flags);
    registry = fromFlags.registry;
    const { platform } = fromFlags;
    mount = await ImageMount.mount(image, dir, {
      registry,
      platform,
      stateDir: stateDirOf(dir, flags),
      root: flags.root,
      logger,
      backgroundFetch: flags.backgroundFetch === true,
      publishedArchives: flags.published,
      cacheBounds: (fsBytes) => ({ maxBytes: diskShareBytes(flags.cacheMaxSize, fsBytes), minFreeBytes: diskShareBytes(flags.cacheMinFree, fsBytes) }),
      policy: await TrustPolicy.load({ trustedKeys: (flags.trustedKey ?? []).map((k) => path.resolve(k)), trustedRepositories: flags.trustedRepository ?? [] }),
    });
  } catch (err) {
    await registry?.close();
    const message = `mount ${image} on ${dir}: ${oneLine(errorMessage(err))}`;
    await tellParent({ error: message });
    throw new Error(message, { cause: err });
  }
  if (process.send) {
    await tellParent({ ready: true, pid: process.pid });
    process.disconnect();
  } else {
    process.stdout.write(`mounted ${mount.state.image} on ${mount.state.target} (state ${mount.state.stateDir}); serving until clip umount or SIGTERM\n`);
  }
  await stopped;
  try {
    await mount.unmount();
  } finally {
    await registry.close();
  }
}

/** The flags of this command again, for the background copy. */
function passOn(flags: MountFlags, stateDir: string): string[] {
  const args = ['--foreground', '--state', stateDir, '--platform', flags.platform, '--log-level', flags.logLevel];
  if (flags.root) args.push('--root', path.resolve(flags.root));
  if (flags.plainHttp) args.push('--plain-http');
  if (flags.hostsDir) args.push('--hosts-dir', hostsDirs(flags.hostsDir).join(':'));
  if (flags.backgroundFetch) args.push('--background-fetch');
  args.push('--cache-max-size', shareArg(flags.cacheMaxSize), '--cache-min-free', shareArg(flags.cacheMinFree));
  if (!flags.published) args.push('--no-published');
  for (const key of flags.trustedKey ?? []) args.push('--trusted-key', path.resolve(key));
  for (const pattern of flags.trustedRepository ?? []) args.push('--trusted-repository', pattern);
  return args;
}

/** parseDiskShare for an option, whose name an error then gives. */
function shareOption(name: string): (value: string) => DiskShare {
  return (value) => {
    try {
      return parseDiskShare(value);
    } catch (err) {
      throw new InvalidArgumentError(`${name}: ${errorMessage(err)}`, { cause: err });
    }
  };
}

function shareArg(share: DiskShare): string {
  return 'bytes' in share ? String(share.bytes) : `${share.percent}%`;
}

/** Starts the serving copy in the background and waits until it has mounted the image (or failed). */
async function mountInBackground(image: string, dir: string, flags: MountFlags): Promise<void> {
  const target = path.resolve(dir);
  const stateDir = stateDirOf(target, flags);
  if (await fsp.access(path.join(stateDir, MOUNT_STATE_FILE)).then(() => true, () => false)) {
    throw new FailedPreconditionError(`mount ${image} on ${dir}: ${stateDir} holds another mount's state (clip umount ${dir} first)`);
  }
  await fsp.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const log = await fsp.open(path.join(stateDir, 'mount.log'), 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [process.argv[1]!, 'mount', image, target, ...passOn(flags, stateDir)], {
      detached: true,
      stdio: ['ignore', log.fd, log.fd, 'ipc'],
    });
  } finally {
    await log.close();
  }
  const forward = (): boolean => child.kill('SIGTERM');
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  try {
    const outcome = await new Promise<ReadyMessage | { exited: number | null }>((resolve) => {
      child.once('message', (m) => resolve(m as ReadyMessage));
      child.once('exit', (code) => resolve({ exited: code }));
      child.once('error', (err) => resolve({ error: `mount ${image} on ${dir}: ${errorMessage(err)}` }));
    });
    if ('ready' in outcome) {
      process.stdout.write(`mounted ${image} on ${target} (state ${stateDir}, served by pid ${outcome.pid} until clip umount ${dir})\n`);
      return;
    }
    // The copy failed; make sure it left nothing behind (it normally cleans up itself).
    await new Promise<void>((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
    await unmountImage(target, { stateDir }).catch(() => undefined);
    throw new Error('error' in outcome ? outcome.error : `mount ${image} on ${dir}: the serving process exited (${outcome.exited})`);
  } finally {
    process.off('SIGINT', forward);
    process.off('SIGTERM', forward);
    if (child.connected) child.disconnect();
    child.unref();
  }
}

export function mountCommand(): Command {
  return addRegistryOptions(
    new Command('mount')
      .description('mount an image lazily on a directory without containerd (e.g. as a runc rootfs); undo with clip umount')
      .argument('<image>', 'image reference, e.g. registry.example.com/app:1.0')
      .argument('<dir>', 'an empty directory (created if missing) to mount the image on')
      .option('--state <dir>', 'state directory: layer mounts, the writable upper dir, mount.json (default: <parent of DIR>/.<name of DIR>.clip)')
      .option('--root <dir>', 'keep clip archives and fetched bytes in DIR across mounts (default: in the state directory, removed by umount)')
      .option('--foreground', 'serve the mount in this process until SIGTERM or SIGINT instead of in the background')
      .option('--background-fetch', 'fetch the rest of every layer in the background (default: only what is read)')
      .option('--cache-max-size <size>', 'fetched bytes kept at most, least recently read evicted first: a size ("10GiB") or a share of the filesystem', shareOption('--cache-max-size'), parseDiskShare(DEFAULT_CACHE_SHARE))
      .option('--cache-min-free <size>', 'evict fetched bytes while the filesystem has less free than this (size or share)', shareOption('--cache-min-free'), parseDiskShare(DEFAULT_CACHE_SHARE))
      .option('--no-published', 'do not look for archives published in the registry')
      .option('--trusted-key <file...>', 'use published archives signed by this ed25519 public key (PEM); repeatable')
      .option('--trusted-repository <pattern...>', 'use published archives of these repositories unsigned ("host/path" or "host/path/*")')
      .addOption(new Option('--log-level <level>', 'log level of the serving process').choices([...LOG_LEVELS]).default('info')),
  ).action(async (image: string, dir: string, flags: MountFlags) => {
    if (flags.foreground) await serve(image, dir, flags);
    else await mountInBackground(image, dir, flags);
  });
}

export function umountCommand(): Command {
  return new Command('umount')
    .description('unmount an image mounted with clip mount and remove its state')
    .argument('<dir>', 'the directory given to clip mount')
    .option('--state <dir>', 'state directory, if clip mount was given one and DIR is no longer mounted')
    .action(async (dir: string, flags: { state?: string }) => {
      try {
        await unmountImage(dir, { stateDir: flags.state, logger: createLogger('warn') });
      } catch (err) {
        throw new Error(`umount ${dir}: ${oneLine(errorMessage(err))}`, { cause: err });
      }
    });
}
