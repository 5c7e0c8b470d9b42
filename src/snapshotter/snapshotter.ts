/**
 * The snapshotter: containerd's overlayfs semantics over a durable metastore and one directory per
 * snapshot. See types.ts for the model and layout.ts for the directory layout.
 *
 * Consistency rules (what makes a kill -9 at any moment safe):
 * - A new snapshot's directories are built in snapshots/new-* and renamed to snapshots/<id> inside the
 *   metadata transaction that creates its record; if the transaction fails the directory is removed,
 *   and if the process dies first, the directory is an orphan that start-up and Cleanup remove.
 * - A removed snapshot's record is deleted first; its directory is then removed, or left as an orphan.
 * - All filesystem work is asynchronous: the daemon may one day serve some of these directories itself
 *   (FUSE), and a synchronous call on its own mount would deadlock it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp, renameSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  errorMessage,
} from '../errors';
import { compileFilters } from './filters';
import { validateLabels } from './label-validation';
import { Layout } from './layout';
import { MetaStore, SnapshotRecord } from './metastore';
import { computeMounts, MountOptions } from './mounts';
import { Info, Kind, Labels, Mount, Usage } from './types';
import { diskUsage } from './usage';

export interface SnapshotterOptions {
  root: string;
  logger: Logger;
}

export class Snapshotter {
  readonly layout: Layout;
  private readonly store: MetaStore;
  private readonly logger: Logger;
  private readonly mountOptions: MountOptions;
  /** Temporary directories being built right now; Cleanup must leave them alone. */
  private readonly inFlight = new Set<string>();

  private constructor(layout: Layout, store: MetaStore, logger: Logger) {
    this.layout = layout;
    this.store = store;
    this.logger = logger;
    this.mountOptions = { indexOff: existsSync('/sys/module/overlay/parameters/index') };
  }

  /** Opens (or creates) a snapshotter root and removes what a previous process left half done. */
  static async open(opts: SnapshotterOptions): Promise<Snapshotter> {
    const layout = new Layout(opts.root);
    await fsp.mkdir(layout.snapshotsDir, { recursive: true, mode: 0o700 });
    const snapshotter = new Snapshotter(layout, new MetaStore(layout.metadataFile), opts.logger);
    const removed = await snapshotter.cleanup();
    if (removed > 0) opts.logger.info(`removed ${removed} orphaned snapshot directories left by an earlier run`);
    return snapshotter;
  }

  close(): void {
    this.store.close();
  }

  prepare(key: string, parent: string, labels: Labels = {}): Promise<Mount[]> {
    return this.createSnapshot(Kind.ACTIVE, key, parent, labels);
  }

  view(key: string, parent: string, labels: Labels = {}): Promise<Mount[]> {
    return this.createSnapshot(Kind.VIEW, key, parent, labels);
  }

  async mounts(key: string): Promise<Mount[]> {
    const record = this.store.mustGet(key);
    if (record.kind === Kind.COMMITTED) {
      throw new FailedPreconditionError(`snapshot ${key}: not active or view`);
    }
    return this.mountsOf(record);
  }

  /**
   * Commits the active snapshot `key` as `name`. Labels are replaced by `labels`. `parent` is only set by
   * containerd 2.2's rebase commit of a snapshot prepared without a parent.
   */
  async commit(name: string, key: string, labels: Labels = {}, parent = ''): Promise<void> {
    requireName(name, 'name');
    validateLabels(labels);
    const before = this.checkCommit(name, key, parent);
    const usage = await diskUsage(this.layout.fsDir(before.id));
    this.store.transaction(() => {
      const record = this.checkCommit(name, key, parent);
      const parentId = parent === '' ? record.parentId : this.committedParent(parent).id;
      this.store.commit(record.id, { key: name, parentId, labels, ...usage, now: new Date() });
    });
  }

  async remove(key: string): Promise<void> {
    const id = this.store.transaction(() => {
      const record = this.store.mustGet(key);
      if (this.store.hasChildren(record.id)) {
        throw new FailedPreconditionError(`cannot remove snapshot with child: ${key}`);
      }
      this.store.delete(record.id);
      return record.id;
    });
    await this.removeDirectory(this.layout.snapshotDir(id));
  }

  async stat(key: string): Promise<Info> {
    return this.infoOf(this.store.mustGet(key));
  }

  /**
   * Updates labels, the only mutable field. Paths: none or "labels" replace all labels; "labels.<k>" sets
   * label k, or deletes it when info.labels has no (or an empty) value for k.
   */
  async update(name: string, labels: Labels, fieldpaths: readonly string[]): Promise<Info> {
    return this.store.transaction(() => {
      const record = this.store.mustGet(name);
      let updated: Labels = { ...record.labels };
      if (fieldpaths.length === 0) updated = { ...labels };
      for (const p of fieldpaths) {
        if (p === 'labels') {
          updated = { ...labels };
        } else if (p.startsWith('labels.') && p.length > 'labels.'.length) {
          const k = p.slice('labels.'.length);
          if (labels[k]) updated[k] = labels[k]!;
          else delete updated[k];
        } else {
          throw new InvalidArgumentError(`cannot update ${JSON.stringify(p)} field on snapshot ${name}`);
        }
      }
      validateLabels(updated);
      this.store.setLabels(record.id, updated, new Date());
      return this.infoOf(this.store.mustGet(name));
    });
  }

  /** Usage of the snapshot itself, parents excluded: live for active snapshots, stored at commit otherwise. */
  async usage(key: string): Promise<Usage> {
    const record = this.store.mustGet(key);
    if (record.kind === Kind.ACTIVE) return diskUsage(this.layout.fsDir(record.id));
    return { size: record.size, inodes: record.inodes };
  }

  /** Every snapshot matching any of the filters (all of them when there are none). */
  async list(filters: readonly string[]): Promise<Info[]> {
    const match = compileFilters(filters);
    return this.store
      .all()
      .map((record) => this.infoOf(record))
      .filter((info) => match((fieldpath) => infoField(info, fieldpath)));
  }

  /** Removes directories under snapshots/ that belong to no snapshot. Returns how many were removed. */
  async cleanup(): Promise<number> {
    const known = this.store.ids();
    const orphans = (await fsp.readdir(this.layout.snapshotsDir)).filter((name) => {
      if (this.inFlight.has(name)) return false;
      const id = Layout.idOf(name);
      return id === undefined || !known.has(id);
    });
    for (const name of orphans) await this.removeDirectory(path.join(this.layout.snapshotsDir, name));
    return orphans.length;
  }

  private async createSnapshot(kind: Kind, key: string, parent: string, labels: Labels): Promise<Mount[]> {
    requireName(key, 'key');
    validateLabels(labels);
    if (this.store.getByKey(key)) throw new AlreadyExistsError(`snapshot ${key}: already exists`);
    const parentRecord = parent === '' ? undefined : this.committedParent(parent);

    const tmpName = `new-${randomBytes(6).toString('hex')}`;
    const tmp = path.join(this.layout.snapshotsDir, tmpName);
    this.inFlight.add(tmpName);
    try {
      await fsp.mkdir(tmp, { mode: 0o700 });
      await fsp.mkdir(path.join(tmp, 'fs'), { mode: 0o755 });
      if (kind === Kind.ACTIVE) await fsp.mkdir(path.join(tmp, 'work'), { mode: 0o711 });
      if (parentRecord) {
        const owner = await fsp.stat(this.layout.fsDir(parentRecord.id));
        await fsp.chown(path.join(tmp, 'fs'), owner.uid, owner.gid);
      }
      const record = this.store.transaction(() => {
        // Checked again: another call may have created the key or removed the parent meanwhile.
        const parentId = parent === '' ? null : this.committedParent(parent).id;
        const id = this.store.insert({ key, parentId, kind, labels, now: new Date() });
        // Synchronous on purpose: it must happen inside the transaction. tmp is never a mount point.
        renameSync(tmp, this.layout.snapshotDir(id));
        return this.store.mustGet(key);
      });
      return this.mountsOf(record);
    } catch (err) {
      await this.removeDirectory(tmp);
      throw err;
    } finally {
      this.inFlight.delete(tmpName);
    }
  }

  private checkCommit(name: string, key: string, parent: string): SnapshotRecord {
    const record = this.store.mustGet(key);
    if (record.kind !== Kind.ACTIVE) {
      throw new FailedPreconditionError(`snapshot ${key} is not active: failed precondition`);
    }
    if (this.store.getByKey(name)) throw new AlreadyExistsError(`snapshot ${name}: already exists`);
    if (parent !== '') {
      const target = this.committedParent(parent);
      if (record.parentId !== null && record.parentId !== target.id) {
        throw new InvalidArgumentError(`snapshot ${key} already has a different parent than ${parent}`);
      }
    }
    return record;
  }

  private committedParent(parent: string): SnapshotRecord {
    const record = this.store.getByKey(parent);
    if (!record) throw new NotFoundError(`parent snapshot ${parent}: not found`);
    if (record.kind !== Kind.COMMITTED) {
      throw new InvalidArgumentError(`parent ${parent} is not committed snapshot`);
    }
    return record;
  }

  private mountsOf(record: SnapshotRecord): Mount[] {
    return computeMounts(this.layout, record.id, record.kind, this.store.parentChain(record), this.mountOptions);
  }

  private infoOf(record: SnapshotRecord): Info {
    const parent = record.parentId === null ? '' : this.store.getById(record.parentId)?.key ?? '';
    return {
      name: record.key,
      parent,
      kind: record.kind,
      created: record.created,
      updated: record.updated,
      labels: record.labels,
    };
  }

  private async removeDirectory(dir: string): Promise<void> {
    try {
      await fsp.rm(dir, { recursive: true, force: true });
    } catch (err) {
      // Left for the next Cleanup; the metadata is already consistent without it.
      this.logger.warn(`could not remove ${dir}: ${errorMessage(err)}`);
    }
  }
}

function requireName(value: string, what: string): void {
  if (value === '') throw new InvalidArgumentError(`snapshot ${what} must not be empty`);
}

/** Field lookup for List filters: name, parent, kind and labels.<key>, as containerd's adaptor. */
function infoField(info: Info, fieldpath: string[]): string | undefined {
  const [first, ...rest] = fieldpath;
  switch (first) {
    case 'name':
      return info.name;
    case 'parent':
      return info.parent;
    case 'kind':
      return Kind[info.kind].toLowerCase();
    case 'labels':
      return rest.length === 0 ? undefined : info.labels[rest.join('.')];
    default:
      return undefined;
  }
}
