/**
 * Where FUSE connections wait while clip restarts: a FdStore keeps a named copy of a /dev/fuse fd beyond
 * the life of the process that gave it, and hands copies to the next process.
 *
 * - SystemdFdStore: the service's file-descriptor store (sd_pid_notify_with_fds(3) with FDSTORE=1 and
 *   FDNAME; the unit needs FileDescriptorStoreMax=). systemd passes the stored fds to the next start as
 *   $LISTEN_FDS / $LISTEN_FDNAMES and drops a stored fd by itself when it reports POLLERR or POLLHUP (the
 *   connection ended).
 * - HolderFdStore: clip-fd-holder (native/clip_fd_holder.c), started by clip when none answers on its
 *   socket. The holder outlives clip (its own session, not clip's child once clip is gone) and exits by
 *   itself after holding nothing for a minute. Once the last clip that talked to it has been gone for
 *   `orphanSeconds` ([lazy] live_restart_timeout), it closes what it keeps: those connections are aborted.
 */
import { spawn } from 'node:child_process';
import { closeSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import { UnavailableError, errorMessage } from '../errors';
import { FD_HOLDER_PROGRAM, HeldFd, handoffAddon, nativeCode } from './handoff-addon';

export type { HeldFd } from './handoff-addon';

export interface FdStore {
  /** What it is, for log lines. */
  readonly description: string;
  /** The fds kept by earlier processes (copies owned by the caller, close-on-exec). Once per process. */
  inherited(): Promise<HeldFd[]>;
  /** Keeps a copy of fd under name (replacing an older one of that name). */
  keep(name: string, fd: number): Promise<void>;
  /** Forgets name and closes the stored copy. */
  drop(name: string): Promise<void>;
}

/** systemd's rule for an FDNAME: printable ASCII without ':', at most 255 characters. */
export function isStorableName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && /^[\x20-\x7e]+$/.test(name) && !name.includes(':');
}

export class SystemdFdStore implements FdStore {
  readonly description = "systemd's file descriptor store";
  private handed: HeldFd[];

  /** `passed`: the fds systemd passed to this process ($LISTEN_FDS from fd 3, named by $LISTEN_FDNAMES). */
  constructor(
    private readonly notifySocket: string,
    passed: HeldFd[],
  ) {
    this.handed = passed;
  }

  async inherited(): Promise<HeldFd[]> {
    const out = this.handed;
    this.handed = [];
    const usable: HeldFd[] = [];
    for (const held of out) {
      try {
        handoffAddon().closeOnExec(held.fd); // mount helpers and other children must not inherit it
        usable.push(held);
      } catch {
        // not an open fd: nothing to take over
      }
    }
    return usable;
  }

  async keep(name: string, fd: number): Promise<void> {
    handoffAddon().notify(this.notifySocket, `FDSTORE=1\nFDNAME=${name}`, fd);
  }

  async drop(name: string): Promise<void> {
    handoffAddon().notify(this.notifySocket, `FDSTOREREMOVE=1\nFDNAME=${name}`);
  }
}

const NO_HOLDER = new Set(['ENOENT', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE']);
const HOLDER_START_MS = 3000;
/** A holder keeping nothing, with nobody connected, exits after this long. */
const HOLDER_IDLE_SECONDS = 60;

export class HolderFdStore implements FdStore {
  readonly description: string;
  private starting?: Promise<void>;
  private listed = false;

  constructor(
    private readonly socket: string,
    private readonly logger: Logger,
    /**
     * program: the holder to start; orphanSeconds: how long the holder it starts keeps connections once
     * the last clip that talked to it exited (0: forever).
     */
    private readonly holder: { program?: string; orphanSeconds?: number } = {},
  ) {
    this.description = `clip-fd-holder on ${socket}`;
  }

  async inherited(): Promise<HeldFd[]> {
    if (this.listed) return [];
    this.listed = true;
    try {
      return handoffAddon().holderList(this.socket);
    } catch (err) {
      if (!NO_HOLDER.has(nativeCode(err) ?? '')) throw new UnavailableError(errorMessage(err), { cause: err });
    }
    // No holder yet: start one now, so that the first mount does not wait for it (keep() reports a failure).
    this.startHolder().catch(() => undefined);
    return [];
  }

  async keep(name: string, fd: number): Promise<void> {
    try {
      handoffAddon().holderPut(this.socket, name, fd);
      return;
    } catch (err) {
      if (!NO_HOLDER.has(nativeCode(err) ?? '')) throw new UnavailableError(errorMessage(err), { cause: err });
    }
    await this.startHolder();
    handoffAddon().holderPut(this.socket, name, fd);
  }

  async drop(name: string): Promise<void> {
    try {
      handoffAddon().holderDrop(this.socket, name);
    } catch (err) {
      if (!NO_HOLDER.has(nativeCode(err) ?? '')) throw new UnavailableError(errorMessage(err), { cause: err });
    }
  }

  /** Starts the holder (in its own session, so that it outlives this process) and waits for its socket. */
  private startHolder(): Promise<void> {
    this.starting ??= this.spawnHolder().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async spawnHolder(): Promise<void> {
    await fsp.mkdir(path.dirname(this.socket), { recursive: true, mode: 0o700 });
    const args = [this.socket, String(HOLDER_IDLE_SECONDS), String(this.holder.orphanSeconds ?? 0)];
    const child = spawn(this.holder.program ?? FD_HOLDER_PROGRAM, args, { detached: true, stdio: 'ignore' });
    const failed = new Promise<never>((_, reject) => child.once('error', reject));
    failed.catch(() => undefined);
    child.unref();
    await fsp.writeFile(`${this.socket}.pid`, `${child.pid ?? ''}\n`).catch(() => undefined);
    const deadline = Date.now() + HOLDER_START_MS;
    for (;;) {
      try {
        // a fresh holder holds nothing; if another one won the race, its fds are not ours to keep open
        for (const held of handoffAddon().holderList(this.socket)) closeFd(held.fd);
        this.logger.info(`started clip-fd-holder (pid ${child.pid}) on ${this.socket}`);
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new UnavailableError(`clip-fd-holder did not answer on ${this.socket}: ${errorMessage(err)}`, { cause: err });
      }
      await Promise.race([new Promise((r) => setTimeout(r, 10)), failed]);
    }
  }
}

/** Closes an fd number this process owns (one received from a store). */
export function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
