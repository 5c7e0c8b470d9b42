import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { MetaStore } from '../../../src/snapshotter/metastore';
import { Kind } from '../../../src/snapshotter/types';
import { tempDir } from '../../helpers/processes';

describe('MetaStore times', () => {
  it('stores microseconds as given', async () => {
    const dir = await tempDir('unit');
    try {
      const store = new MetaStore(path.join(dir, 'meta.db'));
      const id = store.transaction(() => store.insert({ key: 'a', parentId: null, kind: Kind.ACTIVE, labels: {}, now: 1_733_390_000_123_456 }));
      store.transaction(() => store.setLabels(id, { x: '1' }, 1_733_390_000_123_789));
      const record = store.mustGet('a');
      assert.equal(record.created, 1_733_390_000_123_456);
      assert.equal(record.updated, 1_733_390_000_123_789);
      store.close();
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('migrates a version 1 store (milliseconds) to microseconds', async () => {
    const dir = await tempDir('unit');
    try {
      const file = path.join(dir, 'meta.db');
      const old = new Database(file);
      old.exec(`CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, parent_id INTEGER REFERENCES snapshots(id),
        kind INTEGER NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, labels TEXT NOT NULL,
        size INTEGER NOT NULL DEFAULT 0, inodes INTEGER NOT NULL DEFAULT 0);
        INSERT INTO snapshots (key, parent_id, kind, created_ms, updated_ms, labels) VALUES ('c', NULL, 3, 1733390000123, 1733390000456, '{"l":"v"}');`);
      old.pragma('user_version = 1');
      old.close();
      const store = new MetaStore(file);
      const record = store.mustGet('c');
      assert.equal(record.created, 1_733_390_000_123_000);
      assert.equal(record.updated, 1_733_390_000_456_000);
      assert.deepEqual(record.labels, { l: 'v' });
      store.close();
      const reopened = new MetaStore(file);
      assert.equal(reopened.mustGet('c').created, 1_733_390_000_123_000, 'migrated once');
      reopened.close();
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
});
