/**
 * FUSE connections handed from one clip process to the next, so that containers keep their lazily served
 * layers while clip crashes, restarts or is upgraded.
 *
 * Each layer mount's /dev/fuse fd is kept in a FdStore (systemd's fd store or clip-fd-holder) under the
 * name "fuse/<major>_<minor><mount point>" (the mount's device number, from the mount table). While no
 * clip runs, the kernel keeps the connection and queues the requests of its readers. At start-up, load()
 * takes the kept fds whose mount is still on its directory with the same device; the layer's remount then
 * claims its connection and serves it (LayerFilesystem.mount; clip_fuse.c explains the take-over). A kept
 * connection that cannot be served again (its snapshot is gone, its archive cannot be loaded) is
 * abandoned: the connection is aborted, so its readers get an error instead of waiting, and the mount is
 * detached, with a log line.
 *
 * Nothing here reads from a waiting mount: it has no server until it is claimed, so a stat of it would
 * wait too.
 */
import type { Logger } from 'winston';
import { errorMessage } from '../errors';
import { FdStore, closeFd, isStorableName } from './fd-store';
import { MountInfo, forceUnmount, isFuseMount, mountAt, readMountInfo } from './mounts';

/** A connection handed over by an earlier process, waiting for a server. */
export interface HandedConnection {
  /** Its name in the store. */
  name: string;
  /** This process's copy of the /dev/fuse fd. */
  fd: number;
  dir: string;
  /** st_dev of the mount, "major:minor". */
  device: string;
}

const NAME = /^fuse\/(\d+)_(\d+)(\/.*)$/;

export function connectionName(dir: string, device: string): string | undefined {
  const name = `fuse/${device.replace(':', '_')}${dir}`;
  return isStorableName(name) ? name : undefined;
}

export function parseConnectionName(name: string): { dir: string; device: string } | undefined {
  const m = NAME.exec(name);
  return m ? { device: `${m[1]}:${m[2]}`, dir: m[3]! } : undefined;
}

export class MountHandOff {
  private readonly waiting = new Map<string, HandedConnection>();

  constructor(
    private readonly store: FdStore,
    private readonly logger: Logger,
  ) {}

  get description(): string {
    return this.store.description;
  }

  /** Takes the connections earlier processes kept; returns how many wait for a server. */
  async load(): Promise<number> {
    const held = await this.store.inherited();
    const mounts = await readMountInfo();
    for (const { name, fd } of held) {
      const parsed = parseConnectionName(name);
      const mount = parsed && mounts.filter((m) => m.mountPoint === parsed.dir).pop();
      if (!parsed || !mount || !isFuseMount(mount) || mount.device !== parsed.device) {
        // Its mount is gone (or another took its place): the connection has nothing left to serve.
        this.logger.debug(`dropping the kept FUSE connection ${name}: no such mount any more`);
        closeFd(fd);
        await this.store.drop(name).catch((err: unknown) => this.logger.warn(`${this.description}: ${errorMessage(err)}`));
        continue;
      }
      this.waiting.set(parsed.dir, { name, fd, ...parsed });
    }
    if (this.waiting.size > 0) this.logger.info(`${this.waiting.size} layer mounts were handed over by an earlier clip (${this.description})`);
    return this.waiting.size;
  }

  /** Whether `mount` is a handed-over connection that no server has claimed yet. */
  isWaiting(mount: MountInfo): boolean {
    return this.waiting.get(mount.mountPoint)?.device === mount.device;
  }

  /** The waiting connection of the mount on `dir`, now the caller's to serve (or to abandon). */
  claim(dir: string): HandedConnection | undefined {
    const c = this.waiting.get(dir);
    this.waiting.delete(dir);
    return c;
  }

  /** Keeps the connection `fd` of the new mount on `dir`; returns its name, or undefined if it cannot be kept. */
  async keep(dir: string, fd: number): Promise<string | undefined> {
    const mount = await mountAt(dir);
    const name = mount && connectionName(dir, mount.device);
    if (!name) {
      this.logger.warn(`the mount on ${dir} cannot be handed to the next clip (its path cannot be stored); it ends with this process`);
      return undefined;
    }
    try {
      await this.store.keep(name, fd);
      return name;
    } catch (err) {
      this.logger.warn(`the mount on ${dir} ends with this process: ${this.description}: ${errorMessage(err)}`);
      return undefined;
    }
  }

  /** The connection's mount has ended: the store forgets it. */
  async release(name: string): Promise<void> {
    await this.store.drop(name).catch((err: unknown) => this.logger.warn(`${this.description}: ${errorMessage(err)}`));
  }

  /** Gives up a claimed connection: aborts it, detaches its mount, closes the fd and forgets it. */
  async abandon(c: HandedConnection, reason: string): Promise<void> {
    this.logger.warn(`layer mount ${c.dir} cannot be served again (${reason}): aborting its connection and unmounting it`);
    const mount = await mountAt(c.dir);
    if (mount && mount.device === c.device) {
      await forceUnmount(c.dir, { abortConnection: true }).catch((err: unknown) => this.logger.error(`unmount ${c.dir}: ${errorMessage(err)}`));
    }
    closeFd(c.fd);
    await this.release(c.name);
  }

  /** Abandons the waiting connection of `dir`, if there is one. */
  async abandonDir(dir: string, reason: string): Promise<void> {
    const c = this.claim(dir);
    if (c) await this.abandon(c, reason);
  }

  /** Abandons every connection at or below `root` that is still waiting (all of them without a root). */
  async abandonWaiting(reason: string, root?: string): Promise<number> {
    const dirs = [...this.waiting.keys()].filter((d) => root === undefined || d === root || d.startsWith(`${root}/`));
    for (const dir of dirs) await this.abandonDir(dir, reason);
    return dirs.length;
  }
}
