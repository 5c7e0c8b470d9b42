/**
 * Where a snapshot's directories live under the snapshotter root:
 *
 *   <root>/metadata.db             the metastore
 *   <root>/snapshots/<id>/fs       the snapshot's upper directory (or a lazily loaded layer's mount point)
 *   <root>/snapshots/<id>/work     overlayfs work directory (active snapshots)
 *   <root>/snapshots/new-*         a snapshot being created; renamed to <id> inside the metadata transaction
 *   <root>/snapshots/rm-*          a snapshot being removed
 *
 * Anything in snapshots/ whose name is not the id of a known snapshot is an orphan that Cleanup removes.
 */
import path from 'node:path';

export class Layout {
  readonly snapshotsDir: string;
  readonly metadataFile: string;

  constructor(readonly root: string) {
    this.snapshotsDir = path.join(root, 'snapshots');
    this.metadataFile = path.join(root, 'metadata.db');
  }

  snapshotDir(id: number): string {
    return path.join(this.snapshotsDir, String(id));
  }

  fsDir(id: number): string {
    return path.join(this.snapshotDir(id), 'fs');
  }

  workDir(id: number): string {
    return path.join(this.snapshotDir(id), 'work');
  }

  /** The snapshot id a directory name under snapshots/ stands for, or undefined for temporary names. */
  static idOf(dirName: string): number | undefined {
    return /^[1-9][0-9]*$/.test(dirName) ? Number(dirName) : undefined;
  }
}
