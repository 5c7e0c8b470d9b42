/**
 * The mounts containerd's overlayfs snapshotter returns, computed from a snapshot's kind and its parent
 * chain (nearest parent first). In lowerdir the leftmost directory is the top layer.
 *
 *   no parent, ACTIVE          bind  <fs(self)>    rw,rbind
 *   no parent, VIEW            bind  <fs(self)>    ro,rbind
 *   VIEW with one parent       bind  <fs(parent)>  ro,rbind   (overlay needs two lowers to be read-only)
 *   ACTIVE with parents        overlay [index=off] workdir=<work(self)> upperdir=<fs(self)> lowerdir=<fs(p0)>:<fs(p1)>…
 *   VIEW with two+ parents     overlay [index=off] lowerdir=<fs(p0)>:<fs(p1)>…
 */
import { InternalError } from '../errors';
import { Layout } from './layout';
import { Kind, Mount } from './types';

export interface MountOptions {
  /** Add index=off, as containerd does when the overlay module has an `index` parameter. */
  indexOff: boolean;
}

export function computeMounts(layout: Layout, id: number, kind: Kind, parentIds: readonly number[], opts: MountOptions): Mount[] {
  if (kind === Kind.COMMITTED) throw new InternalError('mounts of a committed snapshot requested');
  if (parentIds.length === 0) {
    const options = [kind === Kind.ACTIVE ? 'rw' : 'ro', 'rbind'];
    return [{ type: 'bind', source: layout.fsDir(id), options }];
  }
  if (kind === Kind.VIEW && parentIds.length === 1) {
    return [{ type: 'bind', source: layout.fsDir(parentIds[0]!), options: ['ro', 'rbind'] }];
  }
  const options: string[] = opts.indexOff ? ['index=off'] : [];
  if (kind === Kind.ACTIVE) {
    options.push(`workdir=${layout.workDir(id)}`, `upperdir=${layout.fsDir(id)}`);
  }
  options.push(`lowerdir=${parentIds.map((p) => layout.fsDir(p)).join(':')}`);
  return [{ type: 'overlay', source: 'overlay', options }];
}
