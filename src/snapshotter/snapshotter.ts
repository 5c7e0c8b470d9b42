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
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fsp, renameSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'winston';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  errorMessage,
} from '../errors';
import { compileFilters } from './filters';
import { chainIdOf } from './chain-id';
import { LABEL_CRI_IMAGE_REF, LABEL_CRI_LAYER_DIGEST, LABEL_REMOTE, LABEL_TARGET_REF } from './labels';
import { validateLabels } from './label-validation';
import { Layout } from './layout';
import { MetaStore, SnapshotRecord } from './metastore';
import { computeMounts, MountOptions } from './mounts';
import { FallbackContext, describeFallback } from './fallback-reason';
import { infoField } from './info-fields';
import { LayerLocator, RemoteLayers } from './remote-layers';
import { PrepareRecord, type PrepareMetrics } from './prepare-record';
import { completeUnpackLabels } from './unpack-labels';
import { Info, Kind, Labels, Mount, Usage } from './types';
import { diskUsage } from './usage';
import { nowMicros } from './wall-clock';

export interface SnapshotterOptions {
  root: string;
  logger: Logger;
  /** Serves layers lazily when containerd's labels allow it; without it clip is a plain overlayfs snapshotter. */
  remote?: RemoteLayers;
  /** What the fallback log line may consult to say how to fix a layer that cannot be served lazily. */
  fallback?: FallbackContext;
  /** Finds the layer of an unpack Prepare that names only its chain ID (used only with `remote`). */
  locator?: LayerLocator;
  /** Counts Prepare outcomes (metrics). */
  metrics?: PrepareMetrics;
}

/** A committed remote snapshot, for `clip status`. */
export interface RemoteSnapshot {
  name: string;
  layerDigest: string;
  imageRef: string;
  /** The directory its layer is mounted on. */
  dir: string;
  mounted: boolean;
}

const NO_FALLBACK_CONTEXT: FallbackContext = { hostsDirs: [], hostsFile: async () => undefined };

/** Remote layers mounted again at the same time at start-up. */
const REMOUNT_CONCURRENCY = 8;

/** The value of LABEL_REMOTE on a committed remote snapshot (as stargz and SOCI write it). */
const REMOTE_LABEL_VALUE = 'remote snapshot';

export class Snapshotter {
  readonly layout: Layout;
  private readonly store: MetaStore;
  private readonly logger: Logger;
  private readonly mountOptions: MountOptions;
  private readonly remote: RemoteLayers | undefined;
  /** Temporary directories being built right now; Cleanup must leave them alone. */
  private readonly inFlight = new Set<string>();
  /** Ids of remote snapshots whose layer is mounted now. */
  private readonly mounted = new Set<number>();
  /** Remounts in progress by snapshot id. */
  private readonly remounts = new Map<number, Promise<boolean>>();
  /** One remote handshake at a time per remote snapshot name. */
  private readonly remoteLocks = new Map<string, Promise<unknown>>();
  private fallback: FallbackContext = NO_FALLBACK_CONTEXT;
  /** Prepare outcomes: counted, and the latest fallback of each layer kept for status. */
  readonly outcomes: PrepareRecord;
  private locator: LayerLocator | undefined;

  private constructor(layout: Layout, store: MetaStore, logger: Logger, remote: RemoteLayers | undefined, metrics?: PrepareMetrics) {
    this.layout = layout;
    this.outcomes = new PrepareRecord(metrics);
    this.store = store;
    this.logger = logger;
    this.remote = remote;
    this.mountOptions = { indexOff: existsSync('/sys/module/overlay/parameters/index') };
  }

  /**
   * Opens (or creates) a snapshotter root: removes stale mounts and what a previous process left half
   * done, then mounts every remote layer again from the labels stored with its snapshot.
   */
  static async open(opts: SnapshotterOptions): Promise<Snapshotter> {
    const layout = new Layout(opts.root);
    await fsp.mkdir(layout.snapshotsDir, { recursive: true, mode: 0o700 });
    const snapshotter = new Snapshotter(layout, new MetaStore(layout.metadataFile), opts.logger, opts.remote, opts.metrics);
    if (opts.fallback) snapshotter.fallback = opts.fallback;
    snapshotter.locator = opts.locator;
    if (opts.remote) {
      // Mounts handed over by the earlier process are kept: their remount serves them again.
      const stale = await opts.remote.unmountAll(layout.snapshotsDir, { keepHandedOver: true });
      if (stale > 0) opts.logger.info(`unmounted ${stale} stale layer mounts left by an earlier run`);
    }
    const removed = await snapshotter.cleanup();
    if (removed > 0) opts.logger.info(`removed ${removed} orphaned snapshot directories left by an earlier run`);
    snapshotter.remounted = snapshotter.remountRemoteLayers();
    return snapshotter;
  }

  /**
   * Settles when the start-up remounts have run. They run in the background, in parallel, so that the
   * daemon serves containerd meanwhile; a request that needs a layer still being remounted waits for it.
   */
  remounted: Promise<void> = Promise.resolve();

  /** Layer digests some snapshot references (its content-cache bytes must be kept). */
  referencedLayers(): Set<string> {
    return this.store.layerDigests();
  }

  /** Closes the metadata store. Layer mounts are left to their autoUnmount (or to the next start). */
  close(): void {
    this.store.close();
  }

  /**
   * Prepare. With containerd's target label and a layer the remote source can serve, the layer is
   * mounted lazily and committed as the target, and ALREADY_EXISTS tells containerd to skip the download
   * (containerd's remote snapshotter handshake, core/snapshots/snapshotter.go; README, "Lazy pulls with
   * Kubernetes"). If that fails for any reason, this is a normal Prepare.
   */
  async prepare(key: string, parent: string, labels: Labels = {}, signal?: AbortSignal, namespace?: string): Promise<Mount[]> {
    const target = labels[LABEL_TARGET_REF];
    if (this.remote && target) {
      const name = remoteSnapshotName(target, parent);
      // Served already (the chain ID names the content, checked when it was mounted): no lookup needed.
      if (this.store.getByKey(name)?.kind === Kind.COMMITTED && this.isUsable(name)) {
        this.outcomes.remote(labels[LABEL_CRI_LAYER_DIGEST]);
        throw new AlreadyExistsError(`target snapshot ${target}: already exists`);
      }
      if (!this.remote.canServe(labels) && this.locator) {
        labels = await completeUnpackLabels(this.locator, key, target, labels, this.logger, signal, namespace);
      }
      if (this.remote.canServe(labels)) {
        const remoteLabels = labels;
        return this.serialized(name, () => this.prepareRemote(key, parent, remoteLabels, target, name, signal));
      }
    }
    this.outcomes.local();
    return this.createSnapshot(Kind.ACTIVE, key, parent, labels);
  }

  /** The committed remote snapshots and whether their layer is mounted now. */
  remoteSnapshots(): RemoteSnapshot[] {
    return this.store
      .all()
      .filter((r) => this.isRemote(r))
      .map((r) => ({
        name: r.key,
        layerDigest: r.labels[LABEL_CRI_LAYER_DIGEST] ?? '',
        imageRef: r.labels[LABEL_CRI_IMAGE_REF] ?? '',
        dir: this.layout.fsDir(r.id),
        mounted: this.mounted.has(r.id),
      }));
  }

  view(key: string, parent: string, labels: Labels = {}): Promise<Mount[]> {
    return this.createSnapshot(Kind.VIEW, key, parent, labels);
  }

  async mounts(key: string): Promise<Mount[]> {
    const record = this.store.mustGet(key);
    if (record.kind === Kind.COMMITTED) {
      throw new FailedPreconditionError(`snapshot ${key}: not active or view`);
    }
    await this.ensureLayersMounted(record);
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
    // A remote layer's directory is a FUSE mount: walking it would fetch nothing but cost a lookup per
    // file, and its size is not on this disk. Like stargz, its usage is 0.
    const usage = this.mounted.has(before.id) ? { size: 0, inodes: 0 } : await diskUsage(this.layout.fsDir(before.id));
    this.store.transaction(() => {
      const record = this.checkCommit(name, key, parent);
      const parentId = parent === '' ? record.parentId : this.committedParent(parent).id;
      this.store.commit(record.id, { key: name, parentId, labels, ...usage, now: nowMicros() });
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
    await this.unmountLayer(id);
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
      this.store.setLabels(record.id, updated, nowMicros());
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
    // Directories of unknown ids never hold a mount of this process: remote layers are unmounted before
    // their records are deleted, and stale mounts of an earlier process are removed at start-up.
    const known = this.store.ids();
    const orphans = (await fsp.readdir(this.layout.snapshotsDir)).filter((name) => {
      if (this.inFlight.has(name)) return false;
      const id = Layout.idOf(name);
      return id === undefined || !known.has(id);
    });
    for (const name of orphans) {
      const dir = path.join(this.layout.snapshotsDir, name);
      // Never walk into a mount (a layer whose unmount failed earlier): a recursive delete would touch
      // this process's own FUSE filesystem.
      if (this.remote) await this.remote.unmountAll(dir);
      await this.removeDirectory(dir);
    }
    return orphans.length;
  }

  private async createSnapshot(kind: Kind, key: string, parent: string, labels: Labels): Promise<Mount[]> {
    const record = await this.createRecord(kind, key, parent, labels);
    return this.mountsOf(record);
  }

  private async createRecord(kind: Kind, key: string, parent: string, labels: Labels): Promise<SnapshotRecord> {
    requireName(key, 'key');
    validateLabels(labels);
    if (this.store.getByKey(key)) throw new AlreadyExistsError(`snapshot ${key}: already exists`);
    const parentRecord = parent === '' ? undefined : this.committedParent(parent);
    if (parentRecord) await this.ensureLayersMounted(parentRecord, true);

    const tmpName = `new-${randomBytes(6).toString('hex')}`;
    const tmp = path.join(this.layout.snapshotsDir, tmpName);
    this.inFlight.add(tmpName);
    try {
      await fsp.mkdir(tmp, { mode: 0o700 });
      await fsp.mkdir(path.join(tmp, 'fs'), { mode: 0o755 });
      if (kind === Kind.ACTIVE) await fsp.mkdir(path.join(tmp, 'work'), { mode: 0o711 });
      // Like containerd's overlay, the new upper directory gets the owner of the parent's root. A remote
      // parent's root is served by this process through FUSE: it is never stat'ed from here (a blocked
      // thread-pool thread could deadlock the daemon); layer roots are root-owned anyway.
      if (parentRecord && !this.isRemote(parentRecord)) {
        const owner = await fsp.stat(this.layout.fsDir(parentRecord.id));
        await fsp.chown(path.join(tmp, 'fs'), owner.uid, owner.gid);
      }
      const record = this.store.transaction(() => {
        // Checked again: another call may have created the key or removed the parent meanwhile.
        const parentId = parent === '' ? null : this.committedParent(parent).id;
        const id = this.store.insert({ key, parentId, kind, labels, now: nowMicros() });
        // Synchronous on purpose: it must happen inside the transaction. tmp is never a mount point.
        renameSync(tmp, this.layout.snapshotDir(id));
        return this.store.mustGet(key);
      });
      return record;
    } catch (err) {
      await this.removeDirectory(tmp);
      throw err;
    } finally {
      this.inFlight.delete(tmpName);
    }
  }

  /**
   * The remote handshake: an active snapshot whose fs directory gets the layer's FUSE mount, committed
   * under the remote name with every label received plus LABEL_REMOTE. Any failure before the commit
   * unmounts and falls back to the active snapshot's normal mounts.
   */
  private async prepareRemote(key: string, parent: string, labels: Labels, target: string, name: string, signal?: AbortSignal): Promise<Mount[]> {
    const existing = this.store.getByKey(name);
    const remounting = existing && this.remounts.get(existing.id);
    if (remounting) await remounting;
    if (existing?.kind === Kind.COMMITTED && this.isUsable(name)) {
      this.outcomes.remote(labels[LABEL_CRI_LAYER_DIGEST]);
      throw new AlreadyExistsError(`target snapshot ${target}: already exists`);
    }
    if (existing) {
      // A remote snapshot whose layer cannot be mounted now: serve this Prepare normally.
      this.logger.warn(`layer ${target} is committed but not mounted; unpacking it normally`);
      this.outcomes.local();
      return this.createSnapshot(Kind.ACTIVE, key, parent, labels);
    }
    const record = await this.createRecord(Kind.ACTIVE, key, parent, labels);
    const dir = this.layout.fsDir(record.id);
    try {
      const info = await this.remote!.mount(dir, labels, { signal });
      this.mounted.add(record.id);
      const problem = info ? this.chainProblem(parent, info.diffId, target) : undefined;
      if (problem) throw new InvalidArgumentError(problem);
    } catch (err) {
      if (this.mounted.has(record.id)) await this.unmountLayer(record.id);
      const { line, reason, hint } = await describeFallback(target, labels, err, this.fallback);
      this.logger.warn(line);
      this.outcomes.fallback({ layerDigest: labels[LABEL_CRI_LAYER_DIGEST] ?? target, imageRef: labels[LABEL_CRI_IMAGE_REF] ?? '', reason, hint, at: Date.now() });
      return this.mountsOf(record);
    }
    try {
      await this.commit(name, key, { ...labels, [LABEL_REMOTE]: REMOTE_LABEL_VALUE });
    } catch (err) {
      await this.unmountLayer(record.id);
      throw err;
    }
    this.logger.info(`layer ${target} is served lazily as ${name}`);
    this.outcomes.remote(labels[LABEL_CRI_LAYER_DIGEST]);
    throw new AlreadyExistsError(`target snapshot ${target}: already exists`);
  }

  /**
   * Why a layer with `diffId` on top of `parent` cannot be the snapshot containerd named `target` (its
   * chain ID), or undefined. containerd's own unpack makes the same check; without it a layer whose content
   * differs from the image config would be served under the config's name. Skipped when the parent's
   * chain ID is unknown (a parent that is neither a chain ID nor a snapshot carrying its target label).
   */
  private chainProblem(parent: string, diffId: string, target: string): string | undefined {
    let below: string | undefined;
    if (parent !== '') {
      below = this.store.getByKey(parent)?.labels[LABEL_TARGET_REF] ?? (/^sha256:[0-9a-f]{64}$/.test(parent) ? parent : undefined);
      if (below === undefined) return undefined;
    }
    const chainId = chainIdOf(below, diffId);
    return chainId === target ? undefined : `its diff ID ${diffId} gives chain ID ${chainId}, not ${target} (the image config does not match the layer)`;
  }

  /** Runs fn after every earlier call for the same name has settled. */
  private async serialized<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.remoteLocks.get(name) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(fn);
    this.remoteLocks.set(name, next);
    try {
      return await next;
    } finally {
      if (this.remoteLocks.get(name) === next) this.remoteLocks.delete(name);
    }
  }

  private isRemote(record: SnapshotRecord): boolean {
    return record.kind === Kind.COMMITTED && record.labels[LABEL_REMOTE] !== undefined;
  }

  private isUsable(name: string): boolean {
    const record = this.store.getByKey(name);
    return record !== undefined && (!this.isRemote(record) || this.mounted.has(record.id));
  }

  /**
   * Makes sure every remote layer in a snapshot's chain is mounted (re-mounting it from its labels if an
   * earlier attempt failed); a layer that still cannot be mounted is UNAVAILABLE rather than an empty
   * directory under a container.
   */
  private async ensureLayersMounted(record: SnapshotRecord, includeSelf = false): Promise<void> {
    const ids = [...(includeSelf ? [record.id] : []), ...this.store.parentChain(record)];
    for (const id of ids) {
      const layer = this.store.getById(id);
      if (!layer || !this.isRemote(layer) || this.mounted.has(id)) continue;
      if (!(await this.remountLayer(layer))) {
        throw new UnavailableError(`layer ${layer.labels[LABEL_TARGET_REF] ?? layer.key} unavailable`);
      }
    }
  }

  /** Mounts a remote layer again; concurrent calls for one snapshot share one attempt. */
  private remountLayer(record: SnapshotRecord): Promise<boolean> {
    let attempt = this.remounts.get(record.id);
    if (!attempt) {
      attempt = this.tryRemount(record).finally(() => this.remounts.delete(record.id));
      this.remounts.set(record.id, attempt);
    }
    return attempt;
  }

  private async tryRemount(record: SnapshotRecord): Promise<boolean> {
    if (!this.remote) return false;
    const dir = this.layout.fsDir(record.id);
    try {
      // Not mkdir -p: that stats an existing directory, and a mount handed over by the earlier process
      // has no server until this remount gives it one (the stat would wait for itself).
      await fsp.mkdir(path.dirname(dir), { recursive: true, mode: 0o755 });
      await fsp.mkdir(dir, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      await this.remote.mount(dir, record.labels, { remount: true });
      this.mounted.add(record.id);
      return true;
    } catch (err) {
      this.logger.error(`cannot mount remote layer ${record.key}: ${errorMessage(err)}`);
      return false;
    }
  }

  private async remountRemoteLayers(): Promise<void> {
    const remote = this.store.all().filter((r) => this.isRemote(r));
    let ok = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < remote.length) if (await this.remountLayer(remote[next++]!)) ok++;
    };
    await Promise.all(Array.from({ length: Math.min(REMOUNT_CONCURRENCY, remote.length) }, worker));
    if (remote.length > 0) this.logger.info(`mounted ${ok} of ${remote.length} remote layers again`);
    await this.remote?.endTakeOver().catch((err: unknown) => this.logger.error(`handed-over mounts: ${errorMessage(err)}`));
  }

  private async unmountLayer(id: number): Promise<void> {
    if (!this.mounted.delete(id) || !this.remote) return;
    await this.remote.unmount(this.layout.fsDir(id));
  }

  private checkCommit(name: string, key: string, parent: string): SnapshotRecord {
    const record = this.store.mustGet(key);
    if (record.kind !== Kind.ACTIVE) {
      throw new FailedPreconditionError(`snapshot ${key} is not active: failed precondition`);
    }
    if (this.store.getByKey(name)) throw new AlreadyExistsError(`snapshot ${name}: already exists`);
    if (parent !== '') {
      // containerd 2.2's rebase: the new parent must exist and be committed (FAILED_PRECONDITION, as in
      // its storage layer), and may only be given to a snapshot prepared without one.
      const target = this.store.getByKey(parent);
      if (!target) throw new NotFoundError(`parent snapshot ${parent}: not found`);
      if (target.kind !== Kind.COMMITTED) throw new FailedPreconditionError(`parent ${parent} is not committed`);
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

/**
 * The name of the committed remote snapshot for a target chainID on a given backend parent. containerd
 * finds it again by label and parent (see prepare()); naming it per (target, parent) keeps two
 * namespaces that reached the same chainID over differently named parents from colliding.
 */
export function remoteSnapshotName(target: string, parent: string): string {
  const parentTag = createHash('sha256').update(parent).digest('hex').slice(0, 16);
  return `clip/remote/${target}/${parentTag}`;
}

function requireName(value: string, what: string): void {
  if (value === '') throw new InvalidArgumentError(`snapshot ${what} must not be empty`);
}
