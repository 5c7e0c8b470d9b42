/**
 * What the daemon does for its service manager and its root, outside of serving containerd:
 * - lockRoot: an exclusive flock on <root>/clip.lock, taken before anything under the root is touched, so
 *   that a second `clip serve` on the same root stops at once and leaves every mount alone.
 * - fdStoreFor: where layer mounts' FUSE connections wait across restarts (fusefs/fd-store.ts): under
 *   systemd ($NOTIFY_SOCKET: a Type=notify unit) its fd store, which needs FileDescriptorStoreMax= in the
 *   unit (config/clip.service); else clip-fd-holder with its socket under the root.
 * - notifyReady: READY=1 to systemd (Type=notify) once the socket is bound.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import type { Logger } from 'winston';
import { FailedPreconditionError, errorMessage } from '../errors';
import { FdStore, HolderFdStore, SystemdFdStore } from '../fusefs/fd-store';
import { handoffAddon, nativeCode } from '../fusefs/handoff-addon';
import type { ServiceEnvironment } from './config';

export const LOCK_FILE = 'clip.lock';
const HOLDER_SOCKET = 'fd-holder.sock';
/** sun_path holds 108 bytes with the NUL. */
const MAX_SOCKET_PATH = 107;

/** Takes the root's lock for the life of the process; throws FailedPreconditionError if another holds it. */
export function lockRoot(root: string): void {
  const file = path.join(root, LOCK_FILE);
  try {
    handoffAddon().lockExclusive(file); // the fd stays open: the lock is held until the process ends
  } catch (err) {
    if (nativeCode(err) === 'EWOULDBLOCK') {
      throw new FailedPreconditionError(`another clip serve is running on ${root} (${file} is locked); leaving it and its mounts alone`);
    }
    throw new FailedPreconditionError(`cannot lock ${file}: ${errorMessage(err)}`, { cause: err });
  }
}

/** The holder's socket: under the root, or under /run/clip when that path would be too long. */
export function holderSocketPath(root: string): string {
  const inRoot = path.join(root, HOLDER_SOCKET);
  if (inRoot.length <= MAX_SOCKET_PATH) return inRoot;
  const tag = createHash('sha256').update(root).digest('hex').slice(0, 16);
  return path.join('/run/clip', `fd-holder-${tag}.sock`);
}

/** `orphanMs`: how long a holder keeps connections once no clip runs ([lazy] live_restart_timeout; 0: forever). */
export function fdStoreFor(root: string, service: ServiceEnvironment, logger: Logger, orphanMs = 0): FdStore {
  if (service.notifySocket) return new SystemdFdStore(service.notifySocket, service.passedFds);
  return new HolderFdStore(holderSocketPath(root), logger, { orphanSeconds: Math.ceil(orphanMs / 1000) });
}

/** Tells systemd the daemon is ready (no-op outside a Type=notify service). */
export function notifyReady(service: ServiceEnvironment, logger: Logger): void {
  if (!service.notifySocket) return;
  try {
    handoffAddon().notify(service.notifySocket, `READY=1\nMAINPID=${process.pid}\nSTATUS=serving containerd`);
  } catch (err) {
    logger.warn(`sd_notify READY=1: ${errorMessage(err)}`);
  }
}

/** Tells systemd the daemon is stopping. */
export function notifyStopping(service: ServiceEnvironment): void {
  if (!service.notifySocket) return;
  try {
    handoffAddon().notify(service.notifySocket, 'STOPPING=1');
  } catch {
    // nothing to do about it while stopping
  }
}
