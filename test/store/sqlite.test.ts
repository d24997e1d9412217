import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { newId } from '../../src/domain/ids.js';
import type { Application, Device, StateRecord } from '../../src/domain/model.js';
import { MIGRATIONS, migrate } from '../../src/store/sqlite/migrations.js';
import { DATABASE_FILENAME, openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { storeContract } from './contract.js';
import { visibilityContract } from './contract-visibility.js';

const tempDirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-store-'));
  tempDirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

storeContract('sqlite', () => openSqliteStore({ dataDir: tempDir() }));
visibilityContract('sqlite', () => openSqliteStore({ dataDir: tempDir() }));

function makeApp(): Application {
  return {
    id: newId(),
    name: 'app',
    description: '',
    rateLimit: { messages: 30, windowSeconds: 15 },
    peripheralTimeoutSeconds: 900,
    inactivityTimeoutSeconds: null,
    stateRetentionDays: null,
    logRetentionDays: 30,
    creationDate: 1,
    lastUpdated: 1,
  };
}

function makeDevice(applicationId: string, name: string, creationDate: number): Device {
  return {
    id: newId(),
    applicationId,
    name,
    description: '',
    deviceClass: 'standalone',
    gatewayId: null,
    tags: [],
    attributes: [],
    creationDate,
    lastUpdated: creationDate,
  };
}

function readMigrations(file: string): Array<{ version: number; name: string; applied_at: number }> {
  const db = new Database(file, { readonly: true });
  try {
    return db
      .prepare<[], { version: number; name: string; applied_at: number }>(
        'SELECT * FROM schema_migrations ORDER BY version',
      )
      .all();
  } finally {
    db.close();
  }
}

describe('SqliteStore', () => {
  it('creates a missing data directory and its database file', async () => {
    const dataDir = join(tempDir(), 'nested', 'data');
    const store = await openSqliteStore({ dataDir });
    await store.close();
    expect(existsSync(join(dataDir, DATABASE_FILENAME))).toBe(true);
  });

  it('keeps data across re-opens and applies each migration once', async () => {
    const dataDir = tempDir();
    const file = join(dataDir, DATABASE_FILENAME);
    const app = makeApp();

    const first = await openSqliteStore({ dataDir });
    await first.createApplication(app);
    await first.setSetting('k', 'v');
    await first.close();
    const applied = readMigrations(file);
    expect(applied.map((m) => m.version)).toEqual(MIGRATIONS.map((m) => m.version));

    const second = await openSqliteStore({ dataDir });
    expect(await second.getApplication(app.id)).toEqual(app);
    expect(await second.getSetting('k')).toBe('v');
    await second.close();
    expect(readMigrations(file)).toEqual(applied);
  });

  it('runs in WAL mode', async () => {
    const dataDir = tempDir();
    const store = await openSqliteStore({ dataDir });
    const db = new Database(join(dataDir, DATABASE_FILENAME), { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      db.close();
      await store.close();
    }
  });

  it('opens an in-memory database', async () => {
    const store = await openSqliteStore({ filename: ':memory:' });
    const app = makeApp();
    await store.createApplication(app);
    expect(await store.listApplications()).toEqual([app]);
    await store.close();
    await store.close();
  });

  it('matches the name filter case-insensitively beyond ASCII', async () => {
    const store = await openSqliteStore({ filename: ':memory:' });
    const app = makeApp();
    await store.createApplication(app);
    await store.createDevice(makeDevice(app.id, 'Übergrößen', 1));
    await store.createDevice(makeDevice(app.id, 'plain', 2));
    const result = await store.listDevices(app.id, { filter: 'üBERGRÖ', page: 0, perPage: 10 });
    expect(result.items.map((d) => d.name)).toEqual(['Übergrößen']);
    await store.close();
  });

  it('applies tens of thousands of states in one batch quickly', async () => {
    const store = await openSqliteStore({ dataDir: tempDir() });
    const app = makeApp();
    await store.createApplication(app);
    const devices = Array.from({ length: 50 }, (_, i) => makeDevice(app.id, `d${i}`, i));
    for (const device of devices) await store.createDevice(device);
    const ids = devices.map((d) => d.id);
    const states: StateRecord[] = Array.from({ length: 20_000 }, (_, i) => {
      const id = ids[i % ids.length]!;
      return { deviceId: id, time: 1_000 + i, data: { temp: i, hum: 50, on: true }, reportedBy: id };
    });
    const started = performance.now();
    await store.applyBatch({ states, reports: [], connections: [], logs: [] });
    const elapsed = performance.now() - started;
    expect(await store.queryStates(ids[0]!, { limit: 1000, sortDirection: 'asc' })).toHaveLength(400);
    // Generous: it takes well under a second on a laptop; this only catches a per-row commit.
    expect(elapsed).toBeLessThan(10_000);
    await store.close();
  });
});

describe('migrate', () => {
  it('applies only pending migrations, each in its own transaction', () => {
    const db = new Database(':memory:');
    try {
      const base = [{ version: 1, name: 'one', sql: 'CREATE TABLE one (a INTEGER)' }];
      expect(migrate(db, base)).toEqual([1]);
      expect(migrate(db, base)).toEqual([]);

      const broken = [
        ...base,
        { version: 2, name: 'two', sql: 'CREATE TABLE two (a INTEGER); INSERT INTO missing VALUES (1);' },
      ];
      expect(() => migrate(db, broken)).toThrow();
      const tables = db
        .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .all()
        .map((t) => t.name);
      expect(tables).toEqual(['one', 'schema_migrations']);

      const fixed = [...base, { version: 2, name: 'two', sql: 'CREATE TABLE two (a INTEGER)' }];
      expect(migrate(db, fixed)).toEqual([2]);
      expect(db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all()).toEqual([1, 2]);
    } finally {
      db.close();
    }
  });
});
