/**
 * Reports ("last reported" and gateway sightings) are held in memory by the SQLite store and
 * written behind, in key order (src/store/sqlite/held-reports.ts): readers must see them at once,
 * the timed flush must write each once, and a crash must not lose them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Device, DeviceClass } from '../../src/domain/model.js';
import { REPORTS_HELD_SINCE } from '../../src/store/sqlite/held-reports.js';
import { migrate } from '../../src/store/sqlite/migrations.js';
import { DATABASE_FILENAME, openSqliteStore, SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { type ReportMark, writeBatch } from '../../src/store/types.js';
import { makeApp, makeDevice } from './contract.js';

const T = 1_700_000_040_000;
const HOUR = 3_600_000;
const tempDirs: string[] = [];

afterEach(() => {
  vi.useRealTimers();
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function dbFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-reports-'));
  tempDirs.push(dir);
  return join(dir, DATABASE_FILENAME);
}

const app = makeApp();

function device(deviceClass: DeviceClass, gatewayId: string | null = null): Device {
  return makeDevice(app.id, {
    name: deviceClass,
    deviceClass,
    gatewayId,
    attributes: [{ name: 't', dataType: 'number' }],
  });
}

/** A state and its report, as ingest enqueues them. */
function report(deviceId: string, reportedBy: string, time: number) {
  return writeBatch({
    states: [{ deviceId, time, data: { t: time % 97 }, reportedBy }],
    reports: [{ deviceId, reportedBy, time } satisfies ReportMark],
  });
}

interface Fleet {
  store: SqliteStore;
  /** The test's own handle on the same file, to see what is written. */
  db: Database.Database;
  /** The store's connection, when the test owns it (closing it is a crash). */
  raw: Database.Database;
  gateway: Device;
  other: Device;
  peripheral: Device;
  standalone: Device;
}

async function setup(settings: { rollupFlushMs?: number; rollupSliceMs?: number } = {}): Promise<Fleet> {
  const file = dbFile();
  const raw = new Database(file);
  raw.pragma('journal_mode = WAL');
  migrate(raw);
  const store = new SqliteStore(raw, { rollupFlushMs: HOUR, ...settings });
  await store.createApplication(app);
  const gateway = device('gateway');
  const other = device('gateway');
  const peripheral = device('floating');
  const standalone = device('standalone');
  for (const d of [gateway, other, peripheral, standalone]) await store.createDevice(d);
  return { store, db: new Database(file), raw, gateway, other, peripheral, standalone };
}

function lastReported(db: Database.Database, id: string) {
  return db
    .prepare<[string], { by: string | null; at: number | null }>(
      'SELECT last_reported_by AS by, last_reported_at AS at FROM devices WHERE id = ?',
    )
    .get(id);
}

function sightingRows(db: Database.Database) {
  return db
    .prepare<[], { peripheral_id: string; gateway_id: string; first_seen: number; last_seen: number; reports: number }>(
      'SELECT * FROM peripheral_gateways ORDER BY peripheral_id, gateway_id',
    )
    .all();
}

function heldMark(db: Database.Database): string | undefined {
  return db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?').get(REPORTS_HELD_SINCE)
    ?.value;
}

describe('SqliteStore: reports written behind', () => {
  it('holds reports after the commit, shows them to readers at once, and writes them on the flush', async () => {
    const { store, db, gateway, other, peripheral, standalone } = await setup();
    await store.applyBatch(report(standalone.id, standalone.id, T));
    await store.applyBatch(report(peripheral.id, gateway.id, T + 10));
    await store.applyBatch(report(peripheral.id, other.id, T + 20));
    await store.applyBatch(report(peripheral.id, gateway.id, T + 30));

    // The states are stored; the reports are not written yet, and the mark says since when.
    expect(lastReported(db, standalone.id)).toEqual({ by: null, at: null });
    expect(sightingRows(db)).toEqual([]);
    expect(heldMark(db)).toBe(String(T));

    // Statuses (command routing, device views) overlay what is held, without writing it.
    const statuses = await store.getDeviceStatuses([standalone.id, peripheral.id]);
    expect(statuses.get(standalone.id)).toMatchObject({ lastReportedBy: standalone.id, lastReportedAt: T });
    expect(statuses.get(peripheral.id)).toMatchObject({ lastReportedBy: gateway.id, lastReportedAt: T + 30 });
    expect(sightingRows(db)).toEqual([]);

    // The sightings reader flushes first: one row per pair, counting every report.
    expect(await store.listGatewaySightings(peripheral.id)).toEqual([
      { gatewayId: gateway.id, firstSeen: T + 10, lastSeen: T + 30, reports: 2 },
      { gatewayId: other.id, firstSeen: T + 20, lastSeen: T + 20, reports: 1 },
    ]);
    expect(lastReported(db, peripheral.id)).toEqual({ by: gateway.id, at: T + 30 });
    expect(lastReported(db, standalone.id)).toEqual({ by: standalone.id, at: T });
    expect(heldMark(db)).toBeUndefined();

    // Later reports add to the written rows; one arriving late does not move "last reported" back.
    await store.applyBatch(report(peripheral.id, gateway.id, T + 40));
    await store.applyBatch(report(peripheral.id, other.id, T + 5));
    expect((await store.getDeviceStatuses([peripheral.id])).get(peripheral.id)).toMatchObject({
      lastReportedBy: gateway.id,
      lastReportedAt: T + 40,
    });
    await store.close();
    expect(lastReported(db, peripheral.id)).toEqual({ by: gateway.id, at: T + 40 });
    expect(sightingRows(db).map((r) => [r.gateway_id, r.first_seen, r.last_seen, r.reports])).toEqual(
      [
        [gateway.id, T + 10, T + 40, 3],
        [other.id, T + 5, T + 20, 2],
      ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
    );
    expect(heldMark(db)).toBeUndefined();
    db.close();
  });

  it('writes held reports in slices on the timer; reports arriving meanwhile wait for the next', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'clearImmediate'] });
    const { store, db, gateway, raw } = await setup({ rollupFlushMs: 20, rollupSliceMs: 0 });
    const peripherals = Array.from({ length: 100 }, () => device('floating'));
    for (const p of peripherals) await store.createDevice(p);
    // 100 reports, 100 sightings, and 100 rollup rows: slices of 64 rows.
    await store.applyBatch(
      writeBatch({
        states: peripherals.map((p, i) => ({ deviceId: p.id, time: T + i, data: { t: i }, reportedBy: gateway.id })),
        reports: peripherals.map((p, i) => ({ deviceId: p.id, reportedBy: gateway.id, time: T + i })),
      }),
    );
    expect(heldMark(db)).toBe(String(T));
    vi.advanceTimersByTime(20); // the timer: the first slices
    expect(sightingRows(db).length).toBeLessThan(100);
    const late = peripherals[0] as Device;
    await store.applyBatch(report(late.id, gateway.id, T + 1_000));
    let slices = 0;
    while (heldMark(db) === String(T)) {
      vi.advanceTimersToNextTimer();
      slices++;
    }
    expect(slices).toBeGreaterThan(0);
    const written = sightingRows(db);
    expect(written).toHaveLength(100);
    expect(written.map((r) => r.peripheral_id)).toEqual(peripherals.map((p) => p.id).sort());
    expect(written.every((r) => r.reports === 1)).toBe(true);
    // The late report is held under a mark of its own.
    expect(heldMark(db)).toBe(String(T + 1_000));
    expect((await store.getDeviceStatuses([late.id])).get(late.id)?.lastReportedAt).toBe(T + 1_000);
    vi.advanceTimersByTime(20);
    expect(sightingRows(db).find((r) => r.peripheral_id === late.id)?.reports).toBe(2);
    expect(heldMark(db)).toBeUndefined();
    raw.close();
    db.close();
  });

  it('rebuilds what a crash lost from the stored states, without counting twice what was written', async () => {
    const { store, db, raw, gateway, other, peripheral, standalone } = await setup();
    const file = db.name;
    await store.applyBatch(report(peripheral.id, gateway.id, T));
    await store.applyBatch(report(peripheral.id, gateway.id, T + 10));
    store.flushRollups(); // written: 2 reports through the gateway
    await store.applyBatch(report(peripheral.id, gateway.id, T + 20));
    await store.applyBatch(report(peripheral.id, other.id, T + 30));
    await store.applyBatch(report(standalone.id, standalone.id, T + 40));
    expect(sightingRows(db).map((r) => r.reports)).toEqual([2]);
    raw.close(); // the crash: three reports held

    const reopened = await openSqliteStore({ filename: file, rollupFlushMs: HOUR });
    expect(heldMark(db)).toBeUndefined();
    expect(lastReported(db, peripheral.id)).toEqual({ by: other.id, at: T + 30 });
    expect(lastReported(db, standalone.id)).toEqual({ by: standalone.id, at: T + 40 });
    expect(await reopened.listGatewaySightings(peripheral.id)).toEqual([
      { gatewayId: other.id, firstSeen: T + 30, lastSeen: T + 30, reports: 1 },
      { gatewayId: gateway.id, firstSeen: T, lastSeen: T + 20, reports: 3 },
    ]);
    await reopened.close();
    db.close();
  });

  it('drops the held sightings of a deleted device, peripheral or gateway', async () => {
    const { store, db, gateway, other, peripheral } = await setup();
    const second = device('floating');
    await store.createDevice(second);
    await store.applyBatch(report(peripheral.id, gateway.id, T));
    await store.applyBatch(report(second.id, other.id, T + 1));
    await store.deleteDevice(peripheral.id);
    await store.deleteDevice(other.id);
    await store.close();
    expect(sightingRows(db)).toEqual([]);
    db.close();
  });

  it('holds nothing of a batch that rolled back', async () => {
    const { store, db, gateway, peripheral } = await setup();
    db.exec(`CREATE TRIGGER refuse BEFORE INSERT ON device_states BEGIN SELECT RAISE(ABORT, 'refused'); END`);
    await expect(store.applyBatch(report(peripheral.id, gateway.id, T))).rejects.toThrow(/refused/);
    expect((await store.getDeviceStatuses([peripheral.id])).get(peripheral.id)?.lastReportedAt).toBeNull();
    db.exec('DROP TRIGGER refuse');
    await store.close();
    expect(sightingRows(db)).toEqual([]);
    expect(heldMark(db)).toBeUndefined();
    db.close();
  });
});
