/**
 * Mount table helpers for FUSE mounts the daemon finds or leaves behind: which FUSE mounts exist under a
 * directory (from /proc/self/mountinfo), and removing one whose server is dead or hung.
 *
 * Nothing here touches a mount's contents: a stale mount answers ENOTCONN and a hung one never answers,
 * so only the mount table, child processes (with timeouts) and the fusectl control files are used.
 */
import { execFile } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { UnavailableError, errorMessage } from '../errors';

export interface MountInfo {
  mountId: number;
  parentId: number;
  /** st_dev of the mount as "major:minor"; for FUSE the minor names the connection in fusectl. */
  device: string;
  root: string;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
  superOptions: string;
}

const FUSECTL_DIR = '/sys/fs/fuse/connections';
const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;

/** Undoes mountinfo's octal escapes (\040 for a space, \011, \012, \134). */
function unescape(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Parses the text of /proc/<pid>/mountinfo (proc(5)). */
export function parseMountInfo(text: string): MountInfo[] {
  const mounts: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const fields = line.split(' ');
    const dash = fields.indexOf('-', 6);
    if (dash === -1 || fields.length < dash + 3) continue;
    mounts.push({
      mountId: Number(fields[0]),
      parentId: Number(fields[1]),
      device: fields[2],
      root: unescape(fields[3]),
      mountPoint: unescape(fields[4]),
      options: fields[5],
      fsType: fields[dash + 1],
      source: unescape(fields[dash + 2]),
      superOptions: fields[dash + 3] ?? '',
    });
  }
  return mounts;
}

export async function readMountInfo(): Promise<MountInfo[]> {
  return parseMountInfo(await fsp.readFile('/proc/self/mountinfo', 'utf8'));
}

export function isFuseMount(m: MountInfo): boolean {
  return m.fsType === 'fuse' || m.fsType === 'fuseblk' || m.fsType.startsWith('fuse.');
}

function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/** FUSE mounts at or below `dir`, deepest first (the order to unmount them in). */
export async function listFuseMounts(dir: string): Promise<MountInfo[]> {
  const root = path.resolve(dir);
  return (await readMountInfo())
    .filter((m) => isFuseMount(m) && isUnder(m.mountPoint, root))
    .sort((a, b) => b.mountPoint.length - a.mountPoint.length || b.mountId - a.mountId);
}

/** The topmost mount on exactly `dir`, if any. */
export async function mountAt(dir: string): Promise<MountInfo | undefined> {
  const target = path.resolve(dir);
  const mounts = (await readMountInfo()).filter((m) => m.mountPoint === target);
  return mounts[mounts.length - 1];
}

function runCommand(cmd: string, args: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      const detail = String(stderr).trim() || errorMessage(err);
      reject(new Error(`${cmd} ${args.join(' ')}: ${err.killed ? `no answer within ${timeoutMs} ms` : detail}`));
    });
  });
}

/**
 * Aborts the FUSE connection behind a mount through fusectl: every request waiting on it fails at once
 * and the server's requests are cut off. The way out of a mount whose server hangs.
 */
export async function abortFuseConnection(mount: MountInfo, timeoutMs = DEFAULT_COMMAND_TIMEOUT_MS): Promise<void> {
  const minor = mount.device.split(':')[1];
  const mounts = await readMountInfo();
  if (!mounts.some((m) => m.fsType === 'fusectl' && m.mountPoint === FUSECTL_DIR)) {
    await runCommand('mount', ['-t', 'fusectl', 'fusectl', FUSECTL_DIR], timeoutMs);
  }
  await fsp.writeFile(path.join(FUSECTL_DIR, minor, 'abort'), '1');
}

export interface ForceUnmountOptions {
  /** Per command (default 10 s). */
  timeoutMs?: number;
  /** Abort the FUSE connection first, for a mount whose server may be alive but hung. */
  abortConnection?: boolean;
}

/**
 * Detaches the FUSE mount on `dir` whatever state its server is in (dead: the mount answers ENOTCONN;
 * hung: use abortConnection), with `fusermount -uz`, or `umount -l` if that fails. Lazy, so processes
 * still inside the mount keep it until they leave. Does nothing if `dir` is not a FUSE mount point.
 */
export async function forceUnmount(dir: string, options: ForceUnmountOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  const target = path.resolve(dir);
  const mount = await mountAt(target);
  if (!mount || !isFuseMount(mount)) return;
  const failures: string[] = [];
  if (options.abortConnection) {
    await abortFuseConnection(mount, timeoutMs).catch((err: unknown) => failures.push(`abort: ${errorMessage(err)}`));
  }
  for (const [cmd, args] of [
    ['fusermount', ['-uz', target]],
    ['umount', ['-l', target]],
  ] as const) {
    try {
      await runCommand(cmd, [...args], timeoutMs);
      return;
    } catch (err) {
      failures.push(errorMessage(err));
    }
  }
  // Gone meanwhile (a dying server's auto_unmount helper, another cleanup): what was asked is done.
  const now = await mountAt(target);
  if (!now || now.device !== mount.device) return;
  throw new UnavailableError(`unmount ${target}: ${failures.join('; ')}`);
}
