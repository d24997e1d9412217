import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { newId } from '../../src/domain/ids.js';
import type { Application, CommandRecord, Device, StateRecord } from '../../src/domain/model.js';
import { MIGRATIONS, migrate } from '../../src/store/sqlite/migrations.js';
import { REBUILD_SQL, ROLLUPS_FLUSHED_AT, rebuildRollups } from '../../src/store/sqlite/rollup-rebuild.js';
import { RAW_POINT_LIMIT, SERIES_SQL, SqliteSeries } from '../../src/store/sqlite/series.js';
import {
  DATABASE_FILENAME,
  openSqliteStore,
  SqliteStore,
  type SqliteStoreSettings,
} from '../../src/store/sqlite/sqlite-store.js';
import { type SeriesQuery, writeBatch } from '../../src/store/types.js';
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

  it('checkWritable writes nothing: the settings and the database file stay as they were', async () => {
    const dataDir = tempDir();
    const store = await openSqliteStore({ dataDir });
    await store.setSetting('k', 'v');
    const reader = new Database(join(dataDir, DATABASE_FILENAME), { readonly: true });
    try {
      const settings = () => reader.prepare('SELECT key, value FROM settings ORDER BY key').all();
      const before = settings();
      const version = reader.pragma('data_version', { simple: true });
      await store.checkWritable();
      expect(settings()).toEqual(before);
      // data_version changes when another connection commits: the check committed nothing.
      expect(reader.pragma('data_version', { simple: true })).toBe(version);
    } finally {
      reader.close();
      await store.close();
    }
  });

  it('checkWritable rejects on a read-only database, and while another connection holds the write lock', async () => {
    const file = join(tempDir(), DATABASE_FILENAME);
    await (await openSqliteStore({ filename: file })).close();

    const readOnly = new SqliteStore(new Database(file, { readonly: true }), { recover: false });
    await expect(readOnly.checkWritable()).rejects.toMatchObject({ code: 'SQLITE_READONLY' });
    expect(await readOnly.getSetting('k')).toBeUndefined(); // the connection is still usable
    await readOnly.close();

    // A connection that does not wait for the lock (busy_timeout 0) meets another writer's lock.
    const db = new Database(file);
    db.pragma('busy_timeout = 0');
    const store = new SqliteStore(db, { recover: false });
    const other = new Database(file);
    try {
      other.exec('BEGIN IMMEDIATE');
      await expect(store.checkWritable()).rejects.toMatchObject({ code: 'SQLITE_BUSY' });
      other.exec('ROLLBACK');
      await store.checkWritable();
      await store.setSetting('k', 'v'); // no transaction was left open
      expect(await store.getSetting('k')).toBe('v');
    } finally {
      other.close();
      await store.close();
    }
  });

  it('checkpoints on a worker thread after commits, and leaves no log behind on close', async () => {
    const dir = tempDir();
    const store = await openSqliteStore({ dataDir: dir, backgroundCheckpoints: true });
    const app = makeApp();
    await store.createApplication(app);
    const device = makeDevice(app.id, 'd', 1);
    await store.createDevice(device);
    expect(store.checkpoints?.failures).toBe(0);
    const state = (time: number) => ({ deviceId: device.id, time, data: { t: time }, reportedBy: device.id });
    await store.applyBatch(writeBatch({ states: [state(1), state(2)] }));
    await expect.poll(() => store.checkpoints?.checkpoints, { timeout: 5_000, interval: 20 }).toBeGreaterThan(0);
    const last = store.checkpoints?.last;
    expect(last?.log).toBeGreaterThan(0);
    expect(last?.checkpointed).toBe(last?.log);
    await store.close();
    expect(existsSync(join(dir, `${DATABASE_FILENAME}-wal`))).toBe(false);
    const reopened = await openSqliteStore({ dataDir: dir });
    expect((await reopened.queryStates(device.id, { limit: 10, sortDirection: 'asc' })).map((s) => s.time)).toEqual([
      1, 2,
    ]);
    await reopened.close();
  });

  it('syncs the log after a group commit, off the event loop, and keeps every other write synced in COMMIT', async () => {
    const dir = tempDir();
    const store = await openSqliteStore({ dataDir: dir });
    const app = makeApp();
    await store.createApplication(app);
    const device = makeDevice(app.id, 'd', 1);
    await store.createDevice(device);
    expect(store.logSyncs).toBe(0);
    const state = (time: number) => ({ deviceId: device.id, time, data: { t: time }, reportedBy: device.id });
    // Both resolve only after a sync that started after their commit.
    await Promise.all([
      store.applyBatch(writeBatch({ states: [state(1)] })),
      store.applyBatch(writeBatch({ states: [state(2)] })),
    ]);
    expect(store.logSyncs).toBeGreaterThanOrEqual(1);
    const db = new Database(join(dir, DATABASE_FILENAME));
    expect(db.prepare('SELECT count(*) AS n FROM device_states').get()).toEqual({ n: 2 });
    db.close();
    expect(store.synchronousSetting()).toBe(2); // FULL again after the batch
    await store.close();
  });

  it('syncs a batch of commands alone on the calling thread, unless a sync is under way', async () => {
    const store = await openSqliteStore({ dataDir: tempDir() });
    const app = makeApp();
    await store.createApplication(app);
    const device = makeDevice(app.id, 'd', 1);
    await store.createDevice(device);
    const command = (name: string): CommandRecord => ({
      id: newId(),
      applicationId: app.id,
      deviceId: device.id,
      name,
      payload: null,
      time: 1,
      routedTo: [],
      sentBy: 'api',
    });
    const state = { deviceId: device.id, time: 1, data: { t: 1 }, reportedBy: device.id };
    // Synced before applyBatch returns its promise: nothing went to libuv's pool.
    const alone = store.applyBatch(writeBatch({ commands: [command('a')] }));
    expect(store.logSyncs).toBe(1);
    await alone;
    // A state's sync is under way on the pool and may have started before the command's commit:
    // the command waits for the next sync instead.
    const withState = store.applyBatch(writeBatch({ states: [state] }));
    const behind = store.applyBatch(writeBatch({ commands: [command('b')] }));
    expect(store.logSyncs).toBe(1);
    await Promise.all([withState, behind]);
    expect(store.logSyncs).toBe(3);
    // A command that shares its batch with a state syncs on the pool.
    const mixed = store.applyBatch(writeBatch({ states: [{ ...state, time: 2 }], commands: [command('c')] }));
    expect(store.logSyncs).toBe(3);
    await mixed;
    expect(store.logSyncs).toBe(4);
    expect((await store.queryCommands(device.id, { limit: 10, sortDirection: 'asc' })).map((c) => c.name)).toEqual([
      'a',
      'b',
      'c',
    ]);
    expect(store.synchronousSetting()).toBe(2);
    await store.close();
  });

  it('closes with its checkpoint worker in a process with nothing else to do', () => {
    // A script that opens the store and closes it: the close must finish (and remove the log)
    // even though the worker thread is unreferenced while it runs. Run on the build, in a
    // process of its own, since the test runner keeps its own event loop busy.
    const dir = tempDir();
    const built = new URL('../../dist/src/store/sqlite/sqlite-store.js', import.meta.url).href;
    const script = `
      const { openSqliteStore } = await import(${JSON.stringify(built)});
      const store = await openSqliteStore({ dataDir: ${JSON.stringify(dir)}, backgroundCheckpoints: true });
      await store.close();
      console.log('closed');
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(child.stderr).toBe('');
    expect(child.stdout.trim()).toBe('closed');
    expect(child.status).toBe(0);
    expect(existsSync(join(dir, `${DATABASE_FILENAME}-wal`))).toBe(false);
  });

  it('checkpoints in the background after other writes too (creating devices)', async () => {
    const store = await openSqliteStore({ dataDir: tempDir(), backgroundCheckpoints: true });
    const app = makeApp();
    await store.createApplication(app);
    for (let i = 0; i < 20; i++) await store.createDevice(makeDevice(app.id, `d${i}`, i));
    await expect
      .poll(() => store.checkpoints?.last?.checkpointed ?? 0, { timeout: 5_000, interval: 50 })
      .toBeGreaterThan(0);
    await store.close();
  });

  it('keeps checkpointing on the committing connection without the option', async () => {
    const store = await openSqliteStore({ dataDir: tempDir() });
    expect(store.checkpoints).toBeUndefined();
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
    await store.applyBatch(writeBatch({ states }));
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

describe('SqliteStore series', () => {
  const M = 1_700_000_040_000; // on a minute
  const batchOf = (states: StateRecord[]) => writeBatch({ states });

  async function openWithDevice() {
    const dataDir = tempDir();
    const store = await openSqliteStore({ dataDir });
    const app = makeApp();
    await store.createApplication(app);
    const device = makeDevice(app.id, 'd', 1);
    await store.createDevice(device);
    const db = new Database(join(dataDir, DATABASE_FILENAME));
    const at = (time: number, data: Record<string, unknown>): StateRecord => ({
      deviceId: device.id,
      time,
      data,
      reportedBy: device.id,
    });
    return { store, db, id: device.id, at };
  }

  const rollupRows = (db: Database.Database) =>
    db
      .prepare(
        'SELECT attribute, bucket, count, sum, min, max, first_time, first_value, last_time, last_value FROM state_rollups ORDER BY attribute, bucket',
      )
      .all();

  it('keeps one rollup per numeric attribute and minute, across batches and out of order', async () => {
    const { store, db, at } = await openWithDevice();
    await store.applyBatch(
      batchOf([
        at(M + 30_000, { temp: 5, on: true, label: 'x' }),
        at(M + 10_000, { temp: 7 }),
        at(M + 60_000, { temp: 1 }),
      ]),
    );
    await store.applyBatch(
      batchOf([
        at(M + 50_000, { temp: 3 }),
        at(M + 5_000, { temp: 9 }),
        // Same millisecond as an earlier state: merged in device_states, counted twice here.
        at(M + 50_000, { temp: 4 }),
      ]),
    );
    expect(rollupRows(db)).toEqual([
      {
        attribute: 'temp',
        bucket: M,
        count: 5,
        sum: 28,
        min: 3,
        max: 9,
        first_time: M + 5_000,
        first_value: 9,
        last_time: M + 50_000,
        last_value: 4,
      },
      {
        attribute: 'temp',
        bucket: M + 60_000,
        count: 1,
        sum: 1,
        min: 1,
        max: 1,
        first_time: M + 60_000,
        first_value: 1,
        last_time: M + 60_000,
        last_value: 1,
      },
    ]);
    db.close();
    await store.close();
  });

  it('answers minute-aligned queries from the rollups and others from the raw states', async () => {
    const { store, db, id, at } = await openWithDevice();
    await store.applyBatch(batchOf([at(M + 1_000, { temp: 1 }), at(M + 2_000, { temp: 2 })]));
    db.prepare('UPDATE state_rollups SET max = 99').run();
    const max = async (start: number, resolution: number) =>
      (
        await store.querySeries({
          deviceIds: [id],
          attributes: null,
          start,
          end: M + 59_999,
          resolution,
          aggregation: 'MAX',
        })
      ).get(id)?.[0]?.data.temp;
    expect(await max(M, 60_000)).toBe(99);
    expect(await max(M, 120_000)).toBe(99);
    expect(await max(M + 1, 60_000)).toBe(2);
    expect(await max(M, 30_000)).toBe(2);
    // The same query with rollups turned off (the benchmark's comparison).
    const raw = new SqliteSeries(db, { rollups: false });
    expect(
      raw.query({
        deviceIds: [id],
        attributes: null,
        start: M,
        end: M + 59_999,
        resolution: 60_000,
        aggregation: 'MAX',
      }),
    ).toEqual(new Map([[id, [{ time: M, data: { temp: 2 } }]]]));
    db.close();
    await store.close();
  });

  it('rebuilds the same rollups from the stored states in migration 3', async () => {
    const { store, db, at } = await openWithDevice();
    const states: StateRecord[] = [];
    for (let i = 0; i < 500; i++) {
      states.push(at(M - 200_000 + 997 * i, { temp: (i * 13) % 17, level: i / 4, on: i % 2 === 0, s: `${i}` }));
    }
    await store.applyBatch(batchOf(states.filter((_, i) => i % 3 !== 0)));
    await store.applyBatch(batchOf(states.filter((_, i) => i % 3 === 0).reverse()));
    const incremental = rollupRows(db);
    expect(incremental.length).toBeGreaterThan(10);
    db.prepare('DELETE FROM schema_migrations WHERE version = 3').run();
    db.prepare('UPDATE state_rollups SET count = 0').run();
    expect(migrate(db)).toEqual([3]);
    expect(rollupRows(db)).toEqual(incremental);
    db.close();
    await store.close();
  });

  it('returns at most 10,000 raw states per device for NONE', async () => {
    const { store, db, id, at } = await openWithDevice();
    await store.applyBatch(batchOf(Array.from({ length: 10_005 }, (_, i) => at(M + i, { n: i }))));
    const points = (
      await store.querySeries({
        deviceIds: [id],
        attributes: null,
        start: M,
        end: M + 20_000,
        resolution: 1,
        aggregation: 'NONE',
      })
    ).get(id);
    expect(points).toHaveLength(RAW_POINT_LIMIT);
    expect(points?.[RAW_POINT_LIMIT - 1]).toEqual({ time: M + 9_999, data: { n: 9_999 } });
    db.close();
    await store.close();
  });

  it('reads every series statement through a primary key range, never a table scan', () => {
    const db = new Database(':memory:');
    migrate(db);
    const params = {
      deviceId: 'd',
      attribute: 'a',
      origin: 0n,
      res: 1n,
      from: 0,
      to: 1,
      attrs: '["a"]',
      ids: '["d"]',
      limit: 1,
    };
    const statements = [
      ...Object.values(SERIES_SQL.raw),
      ...Object.values(SERIES_SQL.rollup),
      ...Object.values(SERIES_SQL.minute),
      SERIES_SQL.states,
      SERIES_SQL.lastValues,
    ];
    for (const sql of statements) {
      const plan = db
        .prepare<[typeof params], { detail: string }>(`EXPLAIN QUERY PLAN ${sql}`)
        .all(params)
        .map((r) => r.detail);
      expect(plan[0], sql).toMatch(/^SEARCH \w+ USING PRIMARY KEY \(device_id=\?/);
      expect(
        plan.filter((d) => d.startsWith('SCAN') && !d.includes('VIRTUAL TABLE')),
        sql,
      ).toEqual([]);
    }
    const kinds = db.prepare(`EXPLAIN QUERY PLAN ${SERIES_SQL.attributeKinds}`).all('d') as Array<{ detail: string }>;
    expect(kinds.map((r) => r.detail)).toEqual(['SEARCH composite_state USING PRIMARY KEY (device_id=?)']);
    db.close();
  });
});

describe('SqliteStore rollups of recent minutes (held in memory)', () => {
  const M = 1_700_000_040_000; // on a minute
  const MIN = 60_000;
  const batchOf = (states: StateRecord[]) => writeBatch({ states });
  const HOUR = 3_600_000;

  /** A store on a file whose clock the test moves; `now` starts 10 minutes after M. */
  async function setup(settings: SqliteStoreSettings = {}) {
    const file = join(tempDir(), DATABASE_FILENAME);
    const clock = { now: M + 10 * MIN };
    const open = (more: SqliteStoreSettings = {}) =>
      openSqliteStore({ filename: file, now: () => clock.now, rollupFlushMs: HOUR, ...settings, ...more });
    const store = await open();
    const app = makeApp();
    await store.createApplication(app);
    const devices = [makeDevice(app.id, 'a', 1), makeDevice(app.id, 'b', 2)];
    for (const device of devices) await store.createDevice(device);
    // A second connection, as another process would see the file.
    const db = new Database(file);
    const at = (time: number, data: Record<string, unknown>, device = devices[0]!): StateRecord => ({
      deviceId: device.id,
      time,
      data,
      reportedBy: device.id,
    });
    return { file, clock, open, store, db, app, devices, at };
  }

  const rollupRows = (db: Database.Database) =>
    db
      .prepare(
        `SELECT device_id, attribute, bucket, count, sum, min, max, first_time, first_value, last_time, last_value
         FROM state_rollups ORDER BY device_id, attribute, bucket`,
      )
      .all() as Array<{ device_id: string; bucket: number; count: number } & Record<string, unknown>>;

  /** The rows a full rebuild from device_states gives (migration 3), without keeping them. */
  function fullRebuild(db: Database.Database) {
    db.exec('BEGIN IMMEDIATE');
    try {
      rebuildRollups(db);
      return rollupRows(db);
    } finally {
      db.exec('ROLLBACK');
    }
  }

  const mark = (db: Database.Database) =>
    (db.prepare('SELECT value FROM settings WHERE key = ?').get(ROLLUPS_FLUSHED_AT) as { value: string } | undefined)
      ?.value;

  const buckets = (db: Database.Database) => rollupRows(db).map((r) => r.bucket);

  it('holds recent minutes (and future ones) in memory and writes older ones at once', async () => {
    const { store, db, at, clock } = await setup();
    // now = M + 10 min: minutes from M + 8 min are recent.
    await store.applyBatch(
      batchOf([at(M + 1_000, { t: 1 }), at(M + 8 * MIN + 1, { t: 2 }), at(M + 11 * MIN, { t: 3, on: true })]),
    );
    expect(buckets(db)).toEqual([M]);
    // The first batch with nothing held sets the flush mark.
    expect(mark(db)).toBe(String(clock.now));
    clock.now += 5_000;
    store.flushRollups();
    expect(buckets(db)).toEqual([M, M + 8 * MIN, M + 11 * MIN]);
    expect(mark(db)).toBe(String(clock.now));
    db.close();
    await store.close();
  });

  it('keeps a held minute in memory after it stops being recent, so ties still follow arrival order', async () => {
    const { store, db, at, clock } = await setup();
    const t = M + 8 * MIN + 1;
    await store.applyBatch(batchOf([at(t, { t: 1 })]));
    clock.now += 30 * MIN; // M + 8 min is backfill now, but its minute is still held
    await store.applyBatch(batchOf([at(t, { t: 2 }), at(t + 1_000, { t: 3 })]));
    expect(buckets(db)).toEqual([]);
    store.flushRollups();
    expect(rollupRows(db)).toEqual([
      expect.objectContaining({ count: 3, sum: 6, first_time: t, first_value: 1, last_time: t + 1_000, last_value: 3 }),
    ]);
    // Once flushed, a later state of that minute is upserted at once (it arrived last).
    await store.applyBatch(batchOf([at(t, { t: 4 })]));
    expect(rollupRows(db)).toEqual([expect.objectContaining({ count: 4, sum: 10, first_value: 1, last_value: 3 })]);
    await store.applyBatch(batchOf([at(t + 1_000, { t: 5 })]));
    expect(rollupRows(db)).toEqual([expect.objectContaining({ count: 5, first_value: 1, last_value: 5 })]);
    db.close();
    await store.close();
  });

  it('gives the same rollups as a full rebuild through both paths, batches and flushes interleaved', async () => {
    const { store, db, at, clock, devices } = await setup();
    // 20 minutes of irregular states of two devices (unique times, so no merges), integers
    // and halves (exact sums in any order), written shuffled while the clock moves on.
    const states: StateRecord[] = [];
    for (let i = 0; i < 800; i++) {
      const data: Record<string, unknown> = { temp: ((i * 37) % 101) - 50, level: (i % 7) * 0.5 };
      if (i % 5 === 0) data.label = `l${i % 3}`;
      if (i % 4 === 0) data.on = i % 8 === 0;
      if (i % 9 === 0) delete data.temp;
      states.push(at(M + 1_700 * i, data, devices[i % 2]));
    }
    let seed = 3;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    const shuffled = [...states].sort(() => random() - 0.5);
    let sawHeld = false;
    let sawBackfill = false;
    for (let i = 0; i < shuffled.length; ) {
      const size = 1 + Math.floor(random() * 60);
      await store.applyBatch(batchOf(shuffled.slice(i, i + size)));
      i += size;
      const written = rollupRows(db).reduce((n, r) => n + r.count, 0);
      if (written > 0) sawBackfill = true;
      clock.now += 10_000;
      if (random() < 0.2) {
        store.flushRollups();
        if (rollupRows(db).reduce((n, r) => n + r.count, 0) > written) sawHeld = true;
      }
    }
    store.flushRollups();
    expect([sawHeld, sawBackfill]).toEqual([true, true]);
    const rows = rollupRows(db);
    expect(rows.length).toBeGreaterThan(40);
    expect(rows).toEqual(fullRebuild(db));
    db.close();
    await store.close();
  });

  it('answers a time-series query right after ingest, flushing what is held first', async () => {
    const { store, db, at, devices } = await setup();
    const id = devices[0]!.id;
    await store.applyBatch(batchOf([at(M + 9 * MIN + 1, { t: 4 }), at(M + 9 * MIN + 2, { t: 8 })]));
    expect(rollupRows(db)).toEqual([]);
    const query: SeriesQuery = {
      deviceIds: [id],
      attributes: null,
      start: M + 9 * MIN,
      end: M + 10 * MIN - 1,
      resolution: MIN,
      aggregation: 'MEAN',
    };
    expect((await store.querySeries(query)).get(id)).toEqual([{ time: M + 9 * MIN, data: { t: 6 } }]);
    expect(rollupRows(db)).toEqual([expect.objectContaining({ bucket: M + 9 * MIN, count: 2 })]);
    db.close();
    await store.close();
  });

  it('flushes on a timer while rollups are held', async () => {
    const { store, db, at } = await setup({ rollupFlushMs: 20 });
    await store.applyBatch(batchOf([at(M + 9 * MIN, { t: 1 })]));
    expect(rollupRows(db)).toEqual([]);
    await expect.poll(() => rollupRows(db).length, { timeout: 2_000, interval: 10 }).toBe(1);
    db.close();
    await store.close();
  });

  it('adds nothing of a batch that rolls back', async () => {
    const { store, db, at, devices } = await setup();
    // A fractional time fails the STRICT table after the first state was written.
    await expect(
      store.applyBatch(batchOf([at(M + 9 * MIN, { t: 1 }), at(M + 9 * MIN + 0.5, { t: 2 })])),
    ).rejects.toThrow();
    await store.applyBatch(batchOf([at(M + 9 * MIN + 1, { t: 5 })]));
    const result = await store.querySeries({
      deviceIds: [devices[0]!.id],
      attributes: null,
      start: M + 9 * MIN,
      end: M + 10 * MIN - 1,
      resolution: MIN,
      aggregation: 'SUM',
    });
    expect(result.get(devices[0]!.id)).toEqual([{ time: M + 9 * MIN, data: { t: 5 } }]);
    db.close();
    await store.close();
  });

  it('rebuilds the recent minutes after a crash, from the flush mark on, and nothing older', async () => {
    const file = join(tempDir(), DATABASE_FILENAME);
    const clock = { now: M + 30 * MIN };
    // The store runs on a handle the test owns, so that closing it is a crash: no final flush.
    const raw = new Database(file);
    raw.pragma('journal_mode = WAL');
    migrate(raw);
    const crashing = new SqliteStore(raw, { now: () => clock.now, rollupFlushMs: HOUR });
    const app = makeApp();
    await crashing.createApplication(app);
    const device = makeDevice(app.id, 'd', 1);
    await crashing.createDevice(device);
    const at = (time: number, data: Record<string, unknown>): StateRecord => ({
      deviceId: device.id,
      time,
      data,
      reportedBy: device.id,
    });
    const states = Array.from({ length: 30 * 40 }, (_, i) => at(M + 1_500 * i, { t: i % 17, h: (i % 5) / 2 }));
    // Old minutes (backfill, written at once), then recent ones: flushed, then held at the crash.
    await crashing.applyBatch(batchOf(states.filter((s) => s.time < M + 20 * MIN)));
    await crashing.applyBatch(batchOf(states.filter((s) => s.time >= M + 28 * MIN && s.time < M + 29 * MIN)));
    crashing.flushRollups(); // mark = M + 30 min: rebuild from M + 27 min
    clock.now += 30_000;
    await crashing.applyBatch(batchOf(states.filter((s) => s.time >= M + 29 * MIN)));
    // Backfill after the flush, older than the rebuilt window: written at once, kept as is.
    await crashing.applyBatch(batchOf(states.filter((s) => s.time >= M + 20 * MIN && s.time < M + 28 * MIN)));
    const other = new Database(file);
    const expected = fullRebuild(other);
    // Tampered rows show what recovery rewrites: one in an old minute (kept), one in a
    // flushed recent minute (rebuilt).
    other.prepare('UPDATE state_rollups SET count = 999 WHERE bucket IN (?, ?)').run(M, M + 28 * MIN);
    expect(buckets(other)).not.toContain(M + 29 * MIN);
    raw.close(); // the crash

    const reopened = await openSqliteStore({ filename: file, now: () => clock.now, rollupFlushMs: HOUR });
    expect(await reopened.getSetting(ROLLUPS_FLUSHED_AT)).toBeUndefined();
    const rows = rollupRows(other);
    expect(rows.filter((r) => r.bucket === M).map((r) => r.count)).toEqual([999, 999]);
    expect(rows.filter((r) => r.bucket !== M)).toEqual(expected.filter((r) => r.bucket !== M));
    const count = await reopened.querySeries({
      deviceIds: [device.id],
      attributes: ['t'],
      start: M + 20 * MIN,
      end: M + 30 * MIN - 1,
      resolution: 10 * MIN,
      aggregation: 'COUNT',
    });
    expect(count.get(device.id)).toEqual([{ time: M + 20 * MIN, data: { t: 400 } }]);
    other.close();
    await reopened.close();
  });

  /** 150 numeric attributes: one state of it holds 150 rollup rows. */
  const wide = Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`a${i}`, i]));
  const keys = (rows: ReturnType<typeof rollupRows>) => rows.map((r) => `${r.device_id} ${r.attribute} ${r.bucket}`);

  it('writes a timed flush in key order and in slices; the mark moves after the last; readers see all', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate'] });
    try {
      const { store, db, at, devices, clock } = await setup({ rollupFlushMs: 20, rollupSliceMs: 0 });
      const [a, b] = devices as [Device, Device];
      await store.applyBatch(batchOf([at(M + 9 * MIN, wide, b), at(M + 9 * MIN, wide, a)]));
      const before = mark(db);
      expect(before).toBeDefined();
      clock.now += 1_000;
      vi.advanceTimersByTime(20); // the timer: the first slice (64 rows with no time budget)
      const first = rollupRows(db);
      expect(first).toHaveLength(64);
      expect(mark(db)).toBe(before);
      vi.advanceTimersToNextTimer(); // the second slice
      expect(rollupRows(db)).toHaveLength(128);
      // Committed while the flush is under way: held apart, written after the flush's own rows.
      await store.applyBatch(batchOf([at(M + 9 * MIN + 1, { a0: 10 }, a)]));
      const result = await store.querySeries({
        deviceIds: [a.id],
        attributes: ['a0'],
        start: M + 9 * MIN,
        end: M + 10 * MIN - 1,
        resolution: MIN,
        aggregation: 'SUM',
      });
      expect(result.get(a.id)).toEqual([{ time: M + 9 * MIN, data: { a0: 10 } }]);
      const all = rollupRows(db);
      expect(all).toHaveLength(300);
      expect(keys(all).slice(0, 64)).toEqual(keys(first));
      expect(all.reduce((n, r) => n + r.count, 0)).toBe(301);
      expect(mark(db)).toBe(String(clock.now));
      vi.runAllTimers(); // the rest of the timed flush was written by the reader: nothing twice
      expect(rollupRows(db)).toEqual(all);
      expect(all).toEqual(fullRebuild(db));
      db.close();
      await store.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it("goes on with a timed flush after a reader's flush failed in the middle of it", async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate'] });
    try {
      const file = join(tempDir(), DATABASE_FILENAME);
      const clock = { now: M + 10 * MIN };
      const raw = new Database(file);
      raw.pragma('journal_mode = WAL');
      raw.pragma('busy_timeout = 0');
      migrate(raw);
      const errors: unknown[] = [];
      const store = new SqliteStore(raw, {
        now: () => clock.now,
        rollupFlushMs: 20,
        rollupSliceMs: 0,
        onRollupFlushError: (err) => errors.push(err),
      });
      const app = makeApp();
      await store.createApplication(app);
      const device = makeDevice(app.id, 'd', 1);
      await store.createDevice(device);
      const state = { deviceId: device.id, time: M + 9 * MIN, data: wide, reportedBy: device.id };
      await store.applyBatch(batchOf([state]));
      vi.advanceTimersByTime(20); // the first slice
      const other = new Database(file);
      expect(rollupRows(other)).toHaveLength(64);
      other.exec('BEGIN IMMEDIATE'); // another writer holds the lock
      expect(() => store.flushRollups()).toThrow(/locked|busy/i);
      other.exec('ROLLBACK');
      vi.advanceTimersByTime(20); // the flush goes on by itself
      vi.runAllTimers();
      expect(rollupRows(other)).toHaveLength(150);
      expect(rollupRows(other).every((r) => r.count === 1)).toBe(true);
      expect(mark(other)).toBe(String(clock.now));
      expect(errors).toEqual([]);
      other.close();
      await store.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('counts nothing twice after a crash in the middle of a timed flush', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate'] });
    try {
      const file = join(tempDir(), DATABASE_FILENAME);
      const clock = { now: M + 10 * MIN };
      const raw = new Database(file);
      raw.pragma('journal_mode = WAL');
      migrate(raw);
      const crashing = new SqliteStore(raw, { now: () => clock.now, rollupFlushMs: 20, rollupSliceMs: 0 });
      const app = makeApp();
      await crashing.createApplication(app);
      const device = makeDevice(app.id, 'd', 1);
      await crashing.createDevice(device);
      const state = (time: number, data: Record<string, unknown>): StateRecord => ({
        deviceId: device.id,
        time,
        data,
        reportedBy: device.id,
      });
      await crashing.applyBatch(batchOf([state(M + 8 * MIN, wide), state(M + 9 * MIN, wide)]));
      vi.advanceTimersByTime(20);
      vi.advanceTimersToNextTimer();
      const other = new Database(file);
      expect(rollupRows(other)).toHaveLength(128);
      const expected = fullRebuild(other);
      expect(expected).toHaveLength(300);
      raw.close(); // the crash, 128 of 300 rows written

      const reopened = await openSqliteStore({ filename: file, now: () => clock.now, rollupFlushMs: HOUR });
      expect(rollupRows(other)).toEqual(expected);
      other.close();
      await reopened.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('leaves no rollups of a device or application deleted while their minutes were held', async () => {
    const { store, db, at, devices } = await setup();
    const other = makeApp();
    await store.createApplication(other);
    const elsewhere = makeDevice(other.id, 'e', 3);
    await store.createDevice(elsewhere);
    const recent = (device: Device) => at(M + 9 * MIN, { t: 1 }, device);
    await store.applyBatch(batchOf([recent(devices[0]!), recent(devices[1]!)]));
    await store.deleteDevice(devices[0]!.id);
    await store.applyBatch(batchOf([recent(elsewhere)]));
    await store.deleteApplication(other.id);
    store.flushRollups();
    // (Through the Store these rows would not show: the composite state that names a device's
    // numeric attributes is gone. They would only be left behind.)
    expect(rollupRows(db).map((r) => r.device_id)).toEqual([devices[1]!.id]);
    db.close();
    await store.close();
  });

  it('removes the mark on a clean close, so the next open rebuilds nothing', async () => {
    const { store, db, at, open } = await setup();
    await store.applyBatch(batchOf([at(M + 9 * MIN, { t: 1 })]));
    expect(mark(db)).toBeDefined();
    await store.close();
    expect(mark(db)).toBeUndefined();
    expect(rollupRows(db)).toEqual([expect.objectContaining({ bucket: M + 9 * MIN, count: 1 })]);
    db.prepare('UPDATE state_rollups SET count = 999').run();
    const again = await open();
    expect(rollupRows(db)).toEqual([expect.objectContaining({ count: 999 })]);
    db.close();
    await again.close();
  });

  it('opens shared beside a running store: adds a row, leaves its rollups and flush mark alone', async () => {
    const { file, store, db, at } = await setup();
    await store.applyBatch(batchOf([at(M + 9 * MIN, { t: 1 })]));
    store.flushRollups();
    const markBefore = mark(db);
    expect(markBefore).toBeDefined();
    // A changed row shows whether anything was rebuilt.
    db.prepare('UPDATE state_rollups SET count = 999').run();
    const tool = await openSqliteStore({ filename: file, shared: true });
    await tool.createApiToken({
      id: newId(),
      name: 'ops',
      secretHash: 'scrypt$x',
      creationDate: M,
      applicationId: null,
      role: null,
      expiresAt: null,
    });
    await tool.close();
    expect(mark(db)).toBe(markBefore);
    expect(rollupRows(db)).toEqual([expect.objectContaining({ count: 999 })]);
    expect((await store.listApiTokens()).map((t) => t.name)).toEqual(['ops']);
    db.close();
    await store.close();
  });

  it('refuses a shared open of a missing database or one with migrations pending, creating nothing', async () => {
    const dir = tempDir();
    await expect(openSqliteStore({ dataDir: join(dir, 'none'), shared: true })).rejects.toThrow(/no database at/);
    expect(existsSync(join(dir, 'none'))).toBe(false);
    const file = join(dir, DATABASE_FILENAME);
    const old = new Database(file);
    migrate(old, MIGRATIONS.slice(0, 1));
    old.close();
    await expect(openSqliteStore({ filename: file, shared: true })).rejects.toThrow(/start `gatehouse serve` once/);
  });

  it('rebuilds through primary-key ranges', () => {
    const db = new Database(':memory:');
    migrate(db);
    const plan = (sql: string) =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all({ deviceId: 'd', from: 0 }) as Array<{ detail: string }>).map(
        (r) => r.detail,
      );
    expect(plan(REBUILD_SQL.deleteDevice)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^SEARCH state_rollups USING PRIMARY KEY \(device_id=\? AND attribute=\? AND bucket>\?\)/,
        ),
        expect.stringMatching(/^SEARCH composite_state USING PRIMARY KEY \(device_id=\?\)/),
      ]),
    );
    const rebuild = plan(REBUILD_SQL.rebuildDevice);
    expect(rebuild).toEqual(
      expect.arrayContaining([expect.stringMatching(/^SEARCH s USING PRIMARY KEY \(device_id=\? AND time>\?\)/)]),
    );
    expect(rebuild.filter((d) => d.startsWith('SCAN') && !/VIRTUAL TABLE|SUBQUERY/i.test(d))).toEqual([]);
    db.close();
  });
});
