/**
 * Durable snapshot metadata in SQLite (better-sqlite3). It knows records and transactions, not
 * directories or mounts.
 *
 * Every change runs inside one SQLite transaction (WAL journal, synchronous=FULL), so a kill -9 at any
 * moment leaves either the old or the new state. Ids come from AUTOINCREMENT and are never handed out
 * twice by committed transactions; the snapshotter names directories after them.
 */
import Database from 'better-sqlite3';
import { AlreadyExistsError, InternalError, NotFoundError } from '../errors';
import { LABEL_CRI_LAYER_DIGEST } from './labels';
import { Kind, Labels } from './types';
import { EpochMicros } from './wall-clock';

export interface SnapshotRecord {
  id: number;
  key: string;
  parentId: number | null;
  kind: Kind;
  created: EpochMicros;
  updated: EpochMicros;
  labels: Labels;
  /** Disk usage stored at commit time (committed snapshots only). */
  size: number;
  inodes: number;
}

interface Row {
  id: number;
  key: string;
  parent_id: number | null;
  kind: number;
  created_us: number;
  updated_us: number;
  labels: string;
  size: number;
  inodes: number;
}

/** 2: times in microseconds (created_us, updated_us) instead of milliseconds. */
const SCHEMA_VERSION = 2;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS snapshots (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  key        TEXT    NOT NULL UNIQUE,
  parent_id  INTEGER REFERENCES snapshots(id),
  kind       INTEGER NOT NULL,
  created_us INTEGER NOT NULL,
  updated_us INTEGER NOT NULL,
  labels     TEXT    NOT NULL,
  size       INTEGER NOT NULL DEFAULT 0,
  inodes     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent_id);
`;

/** Version 1 stored times in milliseconds. */
const MIGRATE_FROM_1 = `
ALTER TABLE snapshots RENAME COLUMN created_ms TO created_us;
ALTER TABLE snapshots RENAME COLUMN updated_ms TO updated_us;
UPDATE snapshots SET created_us = created_us * 1000, updated_us = updated_us * 1000;
`;

function toRecord(row: Row): SnapshotRecord {
  return {
    id: row.id,
    key: row.key,
    parentId: row.parent_id,
    kind: row.kind as Kind,
    created: row.created_us,
    updated: row.updated_us,
    labels: JSON.parse(row.labels) as Labels,
    size: row.size,
    inodes: row.inodes,
  };
}

export interface NewSnapshot {
  key: string;
  parentId: number | null;
  kind: Kind;
  labels: Labels;
  now: EpochMicros;
}

export class MetaStore {
  private readonly db: Database.Database;

  /**
   * Opens (or creates and migrates) the store. `readonly`: for another process looking while the daemon
   * runs (`clip cache prune`); the file must exist and nothing is written.
   */
  constructor(file: string, options: { readonly?: boolean } = {}) {
    if (options.readonly) {
      this.db = new Database(file, { readonly: true, fileMustExist: true });
      return;
    }
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new InternalError(`metadata ${file}: schema version ${version} is newer than this clip (${SCHEMA_VERSION})`);
    }
    this.transaction(() => {
      if (version === 1) this.db.exec(MIGRATE_FROM_1);
      this.db.exec(SCHEMA);
      this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
    });
  }

  close(): void {
    this.db.close();
  }

  /** Runs fn in one write transaction; an exception rolls everything back. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  getByKey(key: string): SnapshotRecord | undefined {
    const row = this.db.prepare('SELECT * FROM snapshots WHERE key = ?').get(key) as Row | undefined;
    return row && toRecord(row);
  }

  /** Like getByKey, but a missing key is a NotFoundError. */
  mustGet(key: string): SnapshotRecord {
    const record = this.getByKey(key);
    if (!record) throw new NotFoundError(`snapshot ${key}: not found`);
    return record;
  }

  getById(id: number): SnapshotRecord | undefined {
    const row = this.db.prepare('SELECT * FROM snapshots WHERE id = ?').get(id) as Row | undefined;
    return row && toRecord(row);
  }

  all(): SnapshotRecord[] {
    return (this.db.prepare('SELECT * FROM snapshots ORDER BY id').all() as Row[]).map(toRecord);
  }

  /** Layer digests (cri.layer-digest) some snapshot's labels name: the layers it may serve from the content cache. */
  layerDigests(): Set<string> {
    const digests = new Set<string>();
    const rows = this.db.prepare('SELECT labels FROM snapshots').all() as { labels: string }[];
    for (const { labels } of rows) {
      const digest = (JSON.parse(labels) as Labels)[LABEL_CRI_LAYER_DIGEST];
      if (digest) digests.add(digest);
    }
    return digests;
  }

  ids(): Set<number> {
    return new Set((this.db.prepare('SELECT id FROM snapshots').all() as { id: number }[]).map((r) => r.id));
  }

  /** Ids of the parent chain of a snapshot, nearest parent first. */
  parentChain(record: SnapshotRecord): number[] {
    const chain: number[] = [];
    let parentId = record.parentId;
    while (parentId !== null) {
      const parent = this.getById(parentId);
      if (!parent) throw new InternalError(`snapshot ${record.key}: parent id ${parentId} is missing`);
      chain.push(parent.id);
      parentId = parent.parentId;
    }
    return chain;
  }

  hasChildren(id: number): boolean {
    return this.db.prepare('SELECT 1 FROM snapshots WHERE parent_id = ? LIMIT 1').get(id) !== undefined;
  }

  insert(s: NewSnapshot): number {
    if (this.getByKey(s.key)) throw new AlreadyExistsError(`snapshot ${s.key}: already exists`);
    const result = this.db
      .prepare(
        'INSERT INTO snapshots (key, parent_id, kind, created_us, updated_us, labels) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(s.key, s.parentId, s.kind, s.now, s.now, JSON.stringify(s.labels));
    return Number(result.lastInsertRowid);
  }

  /** Turns a record into a committed one under a new key. */
  commit(id: number, fields: { key: string; parentId: number | null; labels: Labels; size: number; inodes: number; now: EpochMicros }): void {
    const now = fields.now;
    this.db
      .prepare(
        'UPDATE snapshots SET key = ?, parent_id = ?, kind = ?, labels = ?, size = ?, inodes = ?, created_us = ?, updated_us = ? WHERE id = ?',
      )
      .run(fields.key, fields.parentId, Kind.COMMITTED, JSON.stringify(fields.labels), fields.size, fields.inodes, now, now, id);
  }

  setLabels(id: number, labels: Labels, now: EpochMicros): void {
    this.db.prepare('UPDATE snapshots SET labels = ?, updated_us = ? WHERE id = ?').run(JSON.stringify(labels), now, id);
  }

  delete(id: number): void {
    this.db.prepare('DELETE FROM snapshots WHERE id = ?').run(id);
  }
}
