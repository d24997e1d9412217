/**
 * The embedded storage backend: one SQLite file in WAL mode. better-sqlite3 is synchronous, so
 * every method finishes its work before its promise resolves; `applyBatch` is the group commit.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { Dashboard } from '../../dashboards/model.js';
import type { Membership, Session, StoredApiToken, StoredUser } from '../../domain/accounts.js';
import type {
  AccessKey,
  Application,
  CommandRecord,
  Device,
  DeviceLogEntry,
  DeviceStatus,
  StateRecord,
  StoredAccessKey,
} from '../../domain/model.js';
import type { Flow, FlowRun, FlowVersion, Webhook } from '../../workflows/definition.js';
import type { FlowStatsDelta } from '../../workflows/run-log.js';
import {
  isRollupValue,
  minuteOf,
  ROLLUP_MS,
  RollupAccumulator,
  RollupStage,
  recentFrom,
} from '../rollup-accumulator.js';
import {
  type AccessKeyRow,
  type ApplicationRow,
  accessKeyFromRow,
  accessKeyToRow,
  applicationFromRow,
  applicationToRow,
  type CommandRow,
  commandFromRow,
  commandToRow,
  type DeviceLogRow,
  type DeviceRow,
  type DeviceStatusRow,
  deviceFromRow,
  deviceLogFromRow,
  deviceStatusFromRow,
  deviceToRow,
  fromJson,
  storedAccessKeyFromRow,
  toJson,
} from '../rows.js';
import type {
  ApplicationLogEntry,
  ApplicationLogQuery,
  CompositeValue,
  DeviceQuery,
  GatewaySighting,
  ReportMark,
  SeriesPoint,
  SeriesQuery,
  Store,
  TimeRangeQuery,
  WriteBatch,
} from '../types.js';
import { SqliteAccounts } from './accounts.js';
import { SqliteApplicationLog } from './app-log.js';
import { Checkpointer, FALLBACK_AUTOCHECKPOINT_PAGES } from './checkpointer.js';
import { SqliteDashboards } from './dashboards.js';
import { makeDirectory } from './data-dir.js';
import { SqliteFlows } from './flows.js';
import {
  HeldReports,
  MARK_REPORTED_SQL,
  REPORTS_HELD_SINCE,
  recoverReports,
  SIGHT_SQL,
  type SightingRow,
} from './held-reports.js';
import { MIGRATIONS, migrate } from './migrations.js';
import { ROLLUPS_FLUSHED_AT, recoverRollups } from './rollup-rebuild.js';
import { SqliteSeries } from './series.js';
import { WalSync } from './wal-sync.js';

/** How the store keeps minute rollups; the defaults suit a server. */
export interface SqliteStoreSettings {
  /**
   * Recent numeric values are combined in memory and merged into `state_rollups` this often
   * (ms) while any are held, and before every time-series query, prune and close. Default 5,000.
   */
  rollupFlushMs?: number;
  /**
   * A timed flush writes in slices of about this many ms (at least 64 rows each), one
   * transaction each, the event loop free in between. Default ROLLUP_SLICE_MS; tests set 0.
   */
  rollupSliceMs?: number;
  /** The clock that decides which values are recent (default `Date.now`); tests set it. */
  now?: () => number;
  /**
   * WAL checkpoints on a worker thread (checkpointer.ts) instead of on the committing connection;
   * the server sets it. Ignored for a shared open and an in-memory database.
   */
  backgroundCheckpoints?: boolean;
  /** Called when a background checkpoint fails (the next one, or the fallback, catches up). */
  onCheckpointError?: (err: unknown) => void;
  /** Called when a timed flush fails (the values stay held and the flush is retried). */
  onRollupFlushError?: (err: unknown) => void;
  /**
   * Another process (a running server) may have the database open; this one only adds a row
   * (`gatehouse token create`). The database must exist with every migration applied: nothing
   * is created or migrated, and the crash recovery of rollups is skipped, since the flush mark
   * belongs to the server, whose rollups are held in its memory.
   */
  shared?: boolean;
}

export type SqliteStoreOptions = ({ dataDir: string } | { filename: string }) & SqliteStoreSettings;

export const DEFAULT_ROLLUP_FLUSH_MS = 5_000;

/**
 * A timed rollup flush writes in slices of about this many milliseconds, each its own
 * transaction, and lets the event loop run between them: at fleet scale a flush carries tens of
 * thousands of rows, which in one transaction held the server for 100–200 ms.
 */
export const ROLLUP_SLICE_MS = 4;

/**
 * SQLite's page cache for the server's connection, in KiB: SQLite's default, 2 MB. The hot path
 * touches pages spread over whole tables, so at fleet scale most reads miss any cache that fits
 * in memory and come from the operating system's file cache. A 64 MB cache was tried and cost
 * more than it saved: at the end of every commit SQLite walks its cache's whole hash table
 * (`pcache1TruncateUnsafe`), which took 14–17% of the server's CPU in the fleet scenario, and
 * the replay of the fleet's writes measured 165 µs of CPU per state and 160 MB of RSS with 2 MB
 * against 183 µs and 200 MB with 64 MB (docs/benchmarks.md, "The fleet scenario").
 */
export const CACHE_KIB = 2_048;

export const DATABASE_FILENAME = 'gatehouse.db';

const MIN_TIME = Number.MIN_SAFE_INTEGER;
const MAX_TIME = Number.MAX_SAFE_INTEGER;

/** Tables keyed by device that the store empties itself (they carry no foreign key). */
const PER_DEVICE_TABLES = ['device_states', 'composite_state', 'commands', 'device_logs', 'state_rollups'] as const;

const DEVICE_COLUMNS =
  'id, application_id, name, description, device_class, gateway_id, tags, attributes, creation_date, last_updated';

/** The settings row `checkWritable` writes and rolls back. */
const WRITABLE_CHECK_SETTING = 'writableCheck';

// SQLite's lower() folds ASCII only; the name filter must be case-insensitive for every script.
const UNICODE_LOWER = 'gatehouse_lower';

// One static statement for every combination of filters: an absent filter binds NULL (or an
// empty tag list), so no SQL is built per request.
const DEVICE_MATCH = `
  application_id = @applicationId
  AND (@filter IS NULL OR instr(${UNICODE_LOWER}(name), @filter) > 0)
  AND (@classes IS NULL OR device_class IN (SELECT value FROM json_each(@classes)))
  AND (@scopeId IS NULL OR id = @scopeId OR (@scopePeripherals = 1 AND (device_class = 'floating'
    OR (device_class = 'peripheral' AND (gateway_id IS NULL OR gateway_id = @scopeId)))))
  AND NOT EXISTS (
    SELECT 1 FROM json_each(@tags) AS wanted
    WHERE NOT EXISTS (
      SELECT 1 FROM json_each(devices.tags) AS tag
      WHERE tag.value ->> 'key' = wanted.value ->> 'key'
        AND (wanted.value ->> 'value' IS NULL OR tag.value ->> 'value' = wanted.value ->> 'value')))
  AND (@status IS NULL
    OR (@status = 'inactive' AND inactive_since IS NOT NULL)
    OR (@status IN ('connected', 'disconnected') AND (@status = 'connected') = coalesce(CASE
      WHEN device_class IN ('peripheral', 'floating') THEN
        last_reported_at IS NOT NULL
        AND last_reported_at >= @now - 1000 * (SELECT peripheral_timeout_seconds FROM applications AS a
          WHERE a.id = devices.application_id)
        AND EXISTS (SELECT 1 FROM devices AS g WHERE g.id = devices.last_reported_by AND g.connected = 1)
      ELSE connected = 1 END, 0)))`;

interface DeviceMatchParams {
  applicationId: string;
  filter: string | null;
  classes: string | null;
  tags: string;
  scopeId: string | null;
  scopePeripherals: number;
  status: string | null;
  now: number;
}

interface StateRow {
  time: number;
  data: string;
  reported_by: string;
}

interface CompositeRow {
  attribute: string;
  value: string;
  time: number;
}

interface RangeParams {
  deviceId: string;
  start: number;
  end: number;
  limit: number;
}

type Direction = TimeRangeQuery['sortDirection'];

function prepareStatements(db: Database.Database) {
  const byDirection = <R>(sql: (dir: 'ASC' | 'DESC') => string) => ({
    asc: db.prepare<[RangeParams], R>(sql('ASC')),
    desc: db.prepare<[RangeParams], R>(sql('DESC')),
  });
  return {
    getSetting: db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?'),
    syncNormal: db.prepare('PRAGMA synchronous = NORMAL'),
    syncFull: db.prepare('PRAGMA synchronous = FULL'),
    setSetting: db.prepare<[string, string]>(
      'INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    ),
    deleteSetting: db.prepare<[string]>('DELETE FROM settings WHERE key = ?'),

    insertApplication: db.prepare<[ApplicationRow]>(
      `INSERT INTO applications (id, name, description, rate_limit_messages, rate_limit_window_seconds,
         peripheral_timeout_seconds, inactivity_timeout_seconds, state_retention_days, log_retention_days,
         creation_date, last_updated)
       VALUES (@id, @name, @description, @rate_limit_messages, @rate_limit_window_seconds,
         @peripheral_timeout_seconds, @inactivity_timeout_seconds, @state_retention_days, @log_retention_days,
         @creation_date, @last_updated)`,
    ),
    getApplication: db.prepare<[string], ApplicationRow>('SELECT * FROM applications WHERE id = ?'),
    listApplications: db.prepare<[], ApplicationRow>('SELECT * FROM applications ORDER BY creation_date, id'),
    updateApplication: db.prepare<[ApplicationRow]>(
      `UPDATE applications SET name = @name, description = @description,
         rate_limit_messages = @rate_limit_messages, rate_limit_window_seconds = @rate_limit_window_seconds,
         peripheral_timeout_seconds = @peripheral_timeout_seconds,
         inactivity_timeout_seconds = @inactivity_timeout_seconds, state_retention_days = @state_retention_days,
         log_retention_days = @log_retention_days, last_updated = @last_updated
       WHERE id = @id`,
    ),
    deleteApplication: db.prepare<[string]>('DELETE FROM applications WHERE id = ?'),
    deleteApplicationDeviceData: PER_DEVICE_TABLES.map((table) =>
      db.prepare<[string]>(`DELETE FROM ${table} WHERE device_id IN (SELECT id FROM devices WHERE application_id = ?)`),
    ),

    insertDevice: db.prepare<[DeviceRow]>(
      `INSERT INTO devices (${DEVICE_COLUMNS})
       VALUES (@id, @application_id, @name, @description, @device_class, @gateway_id, @tags, @attributes,
         @creation_date, @last_updated)`,
    ),
    getDevice: db.prepare<[string], DeviceRow>(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE id = ?`),
    deviceExists: db.prepare<[string], { found: number }>('SELECT 1 AS found FROM devices WHERE id = ?'),
    listDevices: db.prepare<[DeviceMatchParams & { limit: number; offset: number }], DeviceRow>(
      `SELECT ${DEVICE_COLUMNS} FROM devices WHERE ${DEVICE_MATCH}
       ORDER BY creation_date, id LIMIT @limit OFFSET @offset`,
    ),
    countDevices: db.prepare<[DeviceMatchParams], { count: number }>(
      `SELECT count(*) AS count FROM devices WHERE ${DEVICE_MATCH}`,
    ),
    listBoundPeripherals: db.prepare<[string], { id: string }>(
      'SELECT id FROM devices WHERE gateway_id = ? ORDER BY id',
    ),
    // The application and creation date of a device never change.
    updateDevice: db.prepare<[DeviceRow]>(
      `UPDATE devices SET name = @name, description = @description, device_class = @device_class,
         gateway_id = @gateway_id, tags = @tags, attributes = @attributes, last_updated = @last_updated
       WHERE id = @id`,
    ),
    deleteDevice: db.prepare<[string]>('DELETE FROM devices WHERE id = ?'),
    deleteDeviceData: PER_DEVICE_TABLES.map((table) =>
      db.prepare<[string]>(`DELETE FROM ${table} WHERE device_id = ?`),
    ),
    getStatuses: db.prepare<[string], DeviceStatusRow>(
      `SELECT id, connected, connection_time, last_reported_by, last_reported_at, inactive_since FROM devices
       WHERE id IN (SELECT value FROM json_each(?))`,
    ),
    resetConnections: db.prepare<[number]>('UPDATE devices SET connected = 0, connection_time = ? WHERE connected = 1'),
    setConnection: db.prepare<[{ deviceId: string; connected: number; time: number }]>(
      'UPDATE devices SET connected = @connected, connection_time = @time WHERE id = @deviceId',
    ),
    // Written by the timed flush, in key order (held-reports.ts).
    markReported: db.prepare<[ReportMark]>(MARK_REPORTED_SQL),
    clearInactive: db.prepare<[string]>(
      'UPDATE devices SET inactive_since = NULL WHERE id = ? AND inactive_since IS NOT NULL',
    ),
    markInactive: db.prepare<[{ deviceId: string; since: number }]>(
      'UPDATE devices SET inactive_since = @since WHERE id = @deviceId AND inactive_since IS NULL',
    ),
    // Activity is the latest of the last report and the last connection change (a device that
    // stays connected but reports nothing goes inactive too); never-seen devices count from
    // their creation.
    inactivityCandidates: db.prepare<[{ applicationId: string; before: number }], { id: string }>(
      `SELECT id FROM devices WHERE application_id = @applicationId AND inactive_since IS NULL
         AND max(coalesce(last_reported_at, 0), coalesce(connection_time, 0), creation_date) < @before
       ORDER BY id`,
    ),
    sightPeripheral: db.prepare<[SightingRow]>(SIGHT_SQL),
    listSightings: db.prepare<[string], { gateway_id: string; first_seen: number; last_seen: number; reports: number }>(
      `SELECT gateway_id, first_seen, last_seen, reports FROM peripheral_gateways
       WHERE peripheral_id = ? ORDER BY last_seen DESC, gateway_id`,
    ),
    listSeenBy: db.prepare<
      [{ gatewayId: string; since: number }],
      { peripheral_id: string; last_seen: number; reports: number }
    >(
      `SELECT peripheral_id, last_seen, reports FROM peripheral_gateways
       WHERE gateway_id = @gatewayId AND last_seen >= @since ORDER BY last_seen DESC, peripheral_id`,
    ),
    deleteSightings: db.prepare<[string, string]>(
      'DELETE FROM peripheral_gateways WHERE peripheral_id = ? OR gateway_id = ?',
    ),
    applicationDeviceIds: db.prepare<[string], { id: string }>('SELECT id FROM devices WHERE application_id = ?'),
    // Deletes in bounded chunks so retention never holds the write lock for long.
    pruneStates: db.prepare<[{ deviceId: string; before: number; limit: number }]>(
      `DELETE FROM device_states WHERE device_id = @deviceId AND time IN
         (SELECT time FROM device_states WHERE device_id = @deviceId AND time < @before ORDER BY time LIMIT @limit)`,
    ),
    pruneRollups: db.prepare<[{ deviceId: string; before: number }]>(
      'DELETE FROM state_rollups WHERE device_id = @deviceId AND bucket + 60000 <= @before',
    ),
    pruneLogs: db.prepare<[{ applicationId: string; before: number; limit: number }]>(
      `DELETE FROM device_logs WHERE id IN
         (SELECT id FROM device_logs WHERE application_id = @applicationId AND time < @before ORDER BY time LIMIT @limit)`,
    ),

    insertKey: db.prepare<[AccessKeyRow]>(
      `INSERT INTO access_keys (id, application_id, key, secret_hash, description, status, filter_type,
         device_ids, device_tags, pub_topics, sub_topics, creation_date, last_updated)
       VALUES (@id, @application_id, @key, @secret_hash, @description, @status, @filter_type,
         @device_ids, @device_tags, @pub_topics, @sub_topics, @creation_date, @last_updated)`,
    ),
    getKey: db.prepare<[string], AccessKeyRow>('SELECT * FROM access_keys WHERE id = ?'),
    getKeyByKey: db.prepare<[string], AccessKeyRow>('SELECT * FROM access_keys WHERE key = ?'),
    listKeys: db.prepare<[string], AccessKeyRow>(
      'SELECT * FROM access_keys WHERE application_id = ? ORDER BY creation_date, id',
    ),
    // The key string, its secret and its application are fixed at creation.
    updateKey: db.prepare<[Omit<AccessKeyRow, 'secret_hash'>]>(
      `UPDATE access_keys SET description = @description, status = @status, filter_type = @filter_type,
         device_ids = @device_ids, device_tags = @device_tags, pub_topics = @pub_topics,
         sub_topics = @sub_topics, last_updated = @last_updated
       WHERE id = @id`,
    ),
    deleteKey: db.prepare<[string]>('DELETE FROM access_keys WHERE id = ?'),

    insertState: db.prepare<[{ deviceId: string; time: number; data: string; reportedBy: string }]>(
      `INSERT INTO device_states (device_id, time, data, reported_by) VALUES (@deviceId, @time, @data, @reportedBy)
       ON CONFLICT (device_id, time) DO UPDATE
         SET data = json_patch(data, excluded.data), reported_by = excluded.reported_by`,
    ),
    // >= so that, at equal times, the later arrival wins as it does in the state merge.
    upsertComposite: db.prepare<[{ deviceId: string; attribute: string; value: string; time: number }]>(
      `INSERT INTO composite_state (device_id, attribute, value, time) VALUES (@deviceId, @attribute, @value, @time)
       ON CONFLICT (device_id, attribute) DO UPDATE SET value = excluded.value, time = excluded.time
         WHERE excluded.time >= composite_state.time`,
    ),
    queryStates: byDirection<StateRow>(
      (dir) => `SELECT time, data, reported_by FROM device_states
        WHERE device_id = @deviceId AND time BETWEEN @start AND @end ORDER BY time ${dir} LIMIT @limit`,
    ),
    getComposite: db.prepare<[string], CompositeRow>(
      'SELECT attribute, value, time FROM composite_state WHERE device_id = ? ORDER BY attribute',
    ),

    insertCommand: db.prepare<[CommandRow]>(
      `INSERT INTO commands (id, application_id, device_id, name, payload, time, routed_to, sent_by)
       VALUES (@id, @application_id, @device_id, @name, @payload, @time, @routed_to, @sent_by)`,
    ),
    // rowid breaks ties between commands of the same millisecond in insertion order.
    queryCommands: byDirection<CommandRow>(
      (dir) => `SELECT id, application_id, device_id, name, payload, time, routed_to, sent_by FROM commands
        WHERE device_id = @deviceId AND time BETWEEN @start AND @end ORDER BY time ${dir}, rowid ${dir} LIMIT @limit`,
    ),

    insertLog: db.prepare<[Omit<DeviceLogRow, 'id'>]>(
      `INSERT INTO device_logs (device_id, application_id, time, kind, details)
       VALUES (@device_id, @application_id, @time, @kind, @details)`,
    ),
    listLogs: db.prepare<[{ deviceId: string; before: number; limit: number }], DeviceLogRow>(
      `SELECT * FROM device_logs WHERE device_id = @deviceId AND time < @before ORDER BY id DESC LIMIT @limit`,
    ),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

export class SqliteStore implements Store {
  /** One group commit at a time: it runs in this process, one write transaction after another. */
  readonly maxCommitsInFlight = 1;
  private readonly s: Statements;
  private readonly applyBatchTx: (batch: WriteBatch) => void;
  private readonly deleteApplicationTx: (id: string) => void;
  private readonly deleteDeviceTx: (id: string) => void;
  private readonly series: SqliteSeries;
  private readonly appLog: SqliteApplicationLog;
  private readonly accounts: SqliteAccounts;
  private readonly flows: SqliteFlows;
  private readonly dashboards: SqliteDashboards;

  // Minute rollups of recent minutes are combined here and merged into state_rollups by
  // `flushRollups`: on a timer while any are held, before every reader, and on close. A crash
  // loses them; the next open rebuilds those minutes from device_states (rollup-rebuild.ts).
  // Reports ("last reported", sightings) are held and flushed the same way (held-reports.ts).
  /** Rollups of committed states, not yet in state_rollups. */
  private rollups = new RollupAccumulator();
  /**
   * A timed flush under way: what `rollups` and `reports` held when it started, in primary-key
   * order, written slice by slice from `next` (rollup rows, then reports, then sightings); `at`
   * becomes the flush mark once the last slice commits. Its rows are older than everything held
   * now, so they are always written first.
   */
  private draining: Draining | undefined;
  private cancelSlice: (() => void) | undefined;
  private readonly writeSliceTx: (draining: Draining) => number;
  /** Recent values of the batch being written; they join `rollups` only once it commits. */
  private readonly batchRollups = new RollupStage();
  /** "Last reported" and sightings of committed reports, not yet written (held-reports.ts). */
  private reports = new HeldReports();
  /** Reports of the batch being written (with whether they make a sighting); held once it commits. */
  private batchReports: Array<{ report: ReportMark; sighted: boolean }> = [];
  /** Whether the reports recovery mark is in the database (REPORTS_HELD_SINCE). */
  private reportsMarked = false;
  /** The batch being written set the reports mark. */
  private batchReportsMarked = false;
  /** The flush mark the batch being written has set, applied once it commits. */
  private batchMarkedAt: number | undefined;
  /** When this store last wrote the flush mark (-Infinity: the mark is absent). */
  private rollupsMarkedAt = Number.NEGATIVE_INFINITY;
  private rollupTimer: NodeJS.Timeout | undefined;
  private readonly flushRollupsTx: (mark: number | null) => void;
  private readonly rollupFlushMs: number;
  private readonly rollupSliceMs: number;
  private readonly checkpointer: Checkpointer | undefined;
  private readonly walSync: WalSync | undefined;
  private readonly now: () => number;
  private readonly onRollupFlushError: (err: unknown) => void;

  /**
   * Takes a migrated database; use `openSqliteStore`. First rebuilds the rollups a previous
   * process may have held in memory when it died.
   */
  constructor(
    private readonly db: Database.Database,
    settings: Omit<SqliteStoreSettings, 'shared' | 'backgroundCheckpoints' | 'onCheckpointError'> & {
      recover?: boolean;
      checkpointer?: Checkpointer;
    } = {},
  ) {
    const flushMs = settings.rollupFlushMs ?? DEFAULT_ROLLUP_FLUSH_MS;
    if (!(flushMs > 0 && flushMs <= 2 ** 31 - 1)) throw new RangeError(`rollupFlushMs out of range: ${flushMs}`);
    this.rollupFlushMs = flushMs;
    this.rollupSliceMs = settings.rollupSliceMs ?? ROLLUP_SLICE_MS;
    this.checkpointer = settings.checkpointer;
    const wal = !db.memory && db.pragma('journal_mode', { simple: true }) === 'wal';
    this.walSync = wal ? new WalSync(`${db.name}-wal`) : undefined;
    this.now = settings.now ?? Date.now;
    this.onRollupFlushError = settings.onRollupFlushError ?? ((err) => console.error('rollup flush failed:', err));
    db.function(UNICODE_LOWER, { deterministic: true }, (text: unknown) =>
      typeof text === 'string' ? text.toLowerCase() : text,
    );
    this.s = prepareStatements(db);
    this.series = new SqliteSeries(db);
    this.appLog = new SqliteApplicationLog(db);
    this.accounts = new SqliteAccounts(db);
    this.flows = new SqliteFlows(db);
    this.dashboards = new SqliteDashboards(db);
    if (settings.recover !== false) {
      recoverRollups(db);
      recoverReports(db);
    }
    // One additive upsert per held row; the mark moves to the flush time (null: removed, on close).
    this.flushRollupsTx = db.transaction((mark: number | null) => {
      const draining = this.draining;
      if (draining) {
        const total = drainingTotal(draining);
        for (let i = draining.next; i < total; i++) this.writeHeld(draining, i);
      }
      this.series.upsertRollups(this.rollups.values());
      const { reports, sightings } = this.reports.sorted();
      for (const report of reports) this.s.markReported.run(report);
      for (const sighting of sightings) this.s.sightPeripheral.run(sighting);
      this.s.deleteSetting.run(REPORTS_HELD_SINCE);
      if (mark === null) this.s.deleteSetting.run(ROLLUPS_FLUSHED_AT);
      else this.s.setSetting.run(ROLLUPS_FLUSHED_AT, String(mark));
    }).immediate;
    // One slice of a timed flush: rows from `next` until the time budget is spent; the last
    // slice also moves the marks. Returns where the next slice starts.
    this.writeSliceTx = db.transaction((draining: Draining) => {
      const end = performance.now() + this.rollupSliceMs;
      const total = drainingTotal(draining);
      let i = draining.next;
      while (i < total) {
        this.writeHeld(draining, i);
        i++;
        if ((i & 63) === 0 && performance.now() >= end) break;
      }
      if (i === total) {
        this.s.setSetting.run(ROLLUPS_FLUSHED_AT, String(draining.at));
        // Reports committed during the flush are held under the old mark until now.
        if (this.reports.size > 0) this.s.setSetting.run(REPORTS_HELD_SINCE, String(this.reports.oldest));
        else this.s.deleteSetting.run(REPORTS_HELD_SINCE);
      }
      return i;
    }).immediate;
    // IMMEDIATE takes the write lock up front: a deferred transaction that upgrades from read to
    // write can fail with SQLITE_BUSY without waiting for busy_timeout.
    this.applyBatchTx = db.transaction((batch: WriteBatch) => this.writeBatch(batch)).immediate;
    this.deleteApplicationTx = db.transaction((id: string) => {
      for (const statement of this.s.deleteApplicationDeviceData) statement.run(id);
      this.s.deleteApplication.run(id);
    }).immediate;
    this.deleteDeviceTx = db.transaction((id: string) => {
      for (const statement of this.s.deleteDeviceData) statement.run(id);
      this.s.deleteSightings.run(id, id);
      this.s.deleteDevice.run(id);
    }).immediate;
  }

  async close(): Promise<void> {
    this.cancelRollupFlush();
    if (!this.db.open) return;
    try {
      this.flushHeldRollups(true);
    } finally {
      // The worker's connection first: the last connection to close removes the log.
      await this.checkpointer?.close();
      await this.walSync?.close();
      this.db.close();
    }
  }

  /**
   * Takes the write lock as a group commit does (BEGIN IMMEDIATE, waiting at most busy_timeout
   * for another writer), writes one settings row and rolls it back: a closed connection, a
   * read-only database or a lock held elsewhere fails here. Nothing reaches the disk, so the
   * check costs no fsync and holds the lock for microseconds. Whether the disk takes a commit
   * is what the group commit's own outcome says (WriteQueue.lastCommitFailed).
   */
  async checkWritable(): Promise<void> {
    if (this.db.inTransaction) throw new Error('a transaction is open on the connection');
    this.db.exec('BEGIN IMMEDIATE');
    try {
      this.s.setSetting.run(WRITABLE_CHECK_SETTING, String(this.now()));
    } finally {
      this.db.exec('ROLLBACK');
    }
  }

  /**
   * Writes the rollups and reports held in memory (into `state_rollups`, `devices` and
   * `peripheral_gateways`), in one transaction that also moves the flush marks. On failure they
   * stay held. Readers call it first, so they see exact data.
   */
  flushRollups(): void {
    this.flushHeldRollups(false);
  }

  /** The background checkpointer's counters, when there is one (tests read them). */
  get checkpoints(): Checkpointer['stats'] | undefined {
    return this.checkpointer?.stats;
  }

  /** Rollup rows held in memory: those of a timed flush not yet written, and the accumulator's. */
  private heldRollups(): number {
    const d = this.draining;
    return this.rollups.size + (d ? Math.max(0, d.rows.length - d.next) : 0);
  }

  /** Rows of every kind held in memory (rollups, reports, sightings). */
  private held(): number {
    const d = this.draining;
    return this.rollups.size + this.reports.size + (d ? drainingTotal(d) - d.next : 0);
  }

  /** Writes the `i`th row of a timed flush: rollup rows first, then reports, then sightings. */
  private writeHeld(draining: Draining, i: number): void {
    const { rows, reports, sightings } = draining;
    if (i < rows.length) this.series.addRollup(draining.held.row(rows[i] as number));
    else if (i < rows.length + reports.length) this.s.markReported.run(reports[i - rows.length] as ReportMark);
    else this.s.sightPeripheral.run(sightings[i - rows.length - reports.length] as SightingRow);
  }

  private flushHeldRollups(closing: boolean): void {
    this.cancelRollupFlush();
    // On close the mark is removed even when nothing is held: a clean stop leaves nothing to rebuild.
    if (this.held() === 0 && !this.reportsMarked && !(closing && this.rollupsMarkedAt > Number.NEGATIVE_INFINITY)) {
      return;
    }
    const at = this.now();
    // Whatever a timed flush has not written yet goes first, in this one transaction.
    try {
      this.flushRollupsTx(closing ? null : at);
    } catch (err) {
      // Everything stays held; a timed flush under way goes on later.
      if (this.draining !== undefined && !closing) this.retrySlice();
      throw err;
    }
    if (!closing) this.checkpointer?.poke();
    this.draining = undefined;
    this.rollups.clear();
    this.reports = new HeldReports();
    this.reportsMarked = false;
    this.rollupsMarkedAt = closing ? Number.NEGATIVE_INFINITY : at;
  }

  private scheduleRollupFlush(): void {
    if (this.rollupTimer !== undefined || this.draining !== undefined) return;
    if (this.rollups.size === 0 && this.reports.size === 0) return;
    this.rollupTimer = setTimeout(() => {
      this.rollupTimer = undefined;
      if (this.db.open) this.startTimedFlush();
    }, this.rollupFlushMs);
    this.rollupTimer.unref();
  }

  /**
   * A timed flush: takes what is held, sorts it by primary key and writes it in slices of about
   * ROLLUP_SLICE_MS, one transaction each, with the event loop free in between. Values committed
   * meanwhile gather in a fresh accumulator. A reader, a delete or close that needs everything
   * written calls `flushRollups`, which writes the rest of the slices and the fresh accumulator in
   * one transaction. A crash between slices is covered by the old mark, which stays until the
   * last slice commits (recovery replaces the minutes it names, so rows already written are not
   * counted twice).
   */
  private startTimedFlush(): void {
    if (this.draining !== undefined || (this.rollups.size === 0 && this.reports.size === 0)) return;
    const held = this.rollups;
    const heldReports = this.reports;
    this.rollups = new RollupAccumulator();
    this.reports = new HeldReports();
    const { reports, sightings } = heldReports.sorted();
    this.draining = { held, heldReports, rows: held.sortedIndexes(), reports, sightings, next: 0, at: this.now() };
    this.writeSlice();
  }

  private writeSlice(): void {
    this.cancelSlice = undefined;
    const draining = this.draining;
    if (draining === undefined || !this.db.open) return;
    try {
      draining.next = this.unsynced(() => this.writeSliceTx(draining));
      this.checkpointer?.poke();
    } catch (err) {
      // The slice rolled back; its rows stay held and are tried again later.
      this.onRollupFlushError(err);
      this.retrySlice();
      return;
    }
    if (draining.next < drainingTotal(draining)) {
      const next = setImmediate(() => this.writeSlice());
      next.unref();
      this.cancelSlice = () => clearImmediate(next);
      return;
    }
    this.draining = undefined;
    this.rollupsMarkedAt = draining.at;
    this.reportsMarked = this.reports.size > 0;
    this.scheduleRollupFlush();
  }

  private retrySlice(): void {
    this.cancelSlice?.();
    const retry = setTimeout(() => this.writeSlice(), this.rollupFlushMs);
    retry.unref();
    this.cancelSlice = () => clearTimeout(retry);
  }

  private cancelRollupFlush(): void {
    this.cancelSlice?.();
    this.cancelSlice = undefined;
    if (this.rollupTimer === undefined) return;
    clearTimeout(this.rollupTimer);
    this.rollupTimer = undefined;
  }

  async getSetting(key: string): Promise<string | undefined> {
    return this.s.getSetting.get(key)?.value;
  }

  async setSetting(key: string, value: string): Promise<void> {
    this.s.setSetting.run(key, value);
  }

  // Accounts: src/store/sqlite/accounts.ts.
  createUser = (user: StoredUser) => this.accounts.createUser(user);
  getUser = (id: string) => this.accounts.getUser(id);
  getUserByEmail = (email: string) => this.accounts.getUserByEmail(email);
  listUsers = () => this.accounts.listUsers();
  updateUser = (user: StoredUser) => this.accounts.updateUser(user);
  deleteUser = (id: string) => this.accounts.deleteUser(id);
  putMembership = (membership: Membership) => this.accounts.putMembership(membership);
  deleteMembership = (applicationId: string, userId: string) => this.accounts.deleteMembership(applicationId, userId);
  listMembers = (applicationId: string) => this.accounts.listMembers(applicationId);
  listMemberships = (userId: string) => this.accounts.listMemberships(userId);
  createApiToken = (token: StoredApiToken) => this.accounts.createApiToken(token);
  getApiToken = (id: string) => this.accounts.getApiToken(id);
  listApiTokens = (applicationId?: string | null) => this.accounts.listApiTokens(applicationId);
  deleteApiToken = (id: string) => this.accounts.deleteApiToken(id);
  createSession = (session: Session) => this.accounts.createSession(session);
  getSession = (id: string) => this.accounts.getSession(id);
  deleteSession = (id: string) => this.accounts.deleteSession(id);
  deleteSessionsOf = (userId: string) => this.accounts.deleteSessionsOf(userId);
  deleteExpiredSessions = (now: number) => this.accounts.deleteExpiredSessions(now);

  // Workflows: src/store/sqlite/flows.ts.
  createFlow = (flow: Flow) => this.flows.createFlow(flow);
  getFlow = (id: string) => this.flows.getFlow(id);
  listFlows = (applicationId?: string) => this.flows.listFlows(applicationId);
  updateFlow = (flow: Flow) => this.flows.updateFlow(flow);
  deleteFlow = (id: string) => this.flows.deleteFlow(id);
  createFlowVersion = (version: FlowVersion) => this.flows.createFlowVersion(version);
  getFlowVersion = (id: string) => this.flows.getFlowVersion(id);
  listFlowVersions = (flowId: string) => this.flows.listFlowVersions(flowId);
  recordFlowRuns = (runs: FlowRun[], stats: FlowStatsDelta[], keepPerFlow: number) =>
    this.flows.recordFlowRuns(runs, stats, keepPerFlow);
  listFlowRuns = (flowId: string, query: { limit: number; start?: number; end?: number }) =>
    this.flows.listFlowRuns(flowId, query);
  getFlowValue = (flowId: string, key: string) => this.flows.getFlowValue(flowId, key);
  setFlowValue = (flowId: string, key: string, value: unknown) => this.flows.setFlowValue(flowId, key, value);
  createWebhook = (webhook: Webhook) => this.flows.createWebhook(webhook);
  getWebhook = (id: string) => this.flows.getWebhook(id);
  getWebhookByTokenHash = (tokenHash: string) => this.flows.getWebhookByTokenHash(tokenHash);
  listWebhooks = (applicationId: string) => this.flows.listWebhooks(applicationId);
  updateWebhook = (webhook: Webhook) => this.flows.updateWebhook(webhook);
  deleteWebhook = (id: string) => this.flows.deleteWebhook(id);

  // Dashboards: src/store/sqlite/dashboards.ts.
  createDashboard = (dashboard: Dashboard) => this.dashboards.createDashboard(dashboard);
  getDashboard = (id: string) => this.dashboards.getDashboard(id);
  listDashboards = (applicationId: string) => this.dashboards.listDashboards(applicationId);
  updateDashboard = (dashboard: Dashboard) => this.dashboards.updateDashboard(dashboard);
  deleteDashboard = (id: string) => this.dashboards.deleteDashboard(id);

  async createApplication(app: Application): Promise<void> {
    this.s.insertApplication.run(applicationToRow(app));
  }

  async getApplication(id: string): Promise<Application | undefined> {
    const row = this.s.getApplication.get(id);
    return row && applicationFromRow(row);
  }

  async listApplications(): Promise<Application[]> {
    return this.s.listApplications.all().map(applicationFromRow);
  }

  async updateApplication(app: Application): Promise<void> {
    this.s.updateApplication.run(applicationToRow(app));
  }

  async deleteApplication(id: string): Promise<void> {
    // Held rollups of its devices must not come back after the delete.
    this.flushRollups();
    this.deleteApplicationTx(id);
  }

  async createDevice(device: Device): Promise<void> {
    this.s.insertDevice.run(deviceToRow(device));
  }

  async getDevice(id: string): Promise<Device | undefined> {
    const row = this.s.getDevice.get(id);
    return row && deviceFromRow(row);
  }

  async listDevices(applicationId: string, query: DeviceQuery): Promise<{ items: Device[]; totalCount: number }> {
    // The status filter reads "last reported": held reports first.
    if (query.status) this.flushRollups();
    // An empty class list is taken as "no class filter", as an absent query parameter would be.
    const params: DeviceMatchParams = {
      applicationId,
      filter: query.filter ? query.filter.toLowerCase() : null,
      classes: query.deviceClass?.length ? toJson(query.deviceClass) : null,
      tags: toJson(query.tags ?? []),
      scopeId: query.scope?.deviceId ?? null,
      scopePeripherals: query.scope?.withPeripherals ? 1 : 0,
      status: query.status?.is ?? null,
      now: query.status?.now ?? 0,
    };
    const items = this.s.listDevices
      .all({ ...params, limit: query.perPage, offset: query.page * query.perPage })
      .map(deviceFromRow);
    const totalCount = this.s.countDevices.get(params)?.count ?? 0;
    return { items, totalCount };
  }

  async listBoundPeripherals(gatewayId: string): Promise<string[]> {
    return this.s.listBoundPeripherals.all(gatewayId).map((row) => row.id);
  }

  async updateDevice(device: Device): Promise<void> {
    this.s.updateDevice.run(deviceToRow(device));
  }

  async deleteDevice(id: string): Promise<void> {
    this.flushRollups();
    this.deleteDeviceTx(id);
  }

  async getDeviceStatuses(ids: string[]): Promise<Map<string, DeviceStatus>> {
    const statuses = new Map<string, DeviceStatus>();
    if (ids.length === 0) return statuses;
    for (const row of this.s.getStatuses.all(toJson(ids)))
      statuses.set(row.id, deviceStatusFromRow(this.withHeld(row)));
    return statuses;
  }

  /** A status row as it will be once the held reports are written (not written here: commands read it). */
  private withHeld(row: DeviceStatusRow): DeviceStatusRow {
    const fresh = this.reports.latest(row.id);
    const draining = this.draining?.heldReports.latest(row.id);
    const held = draining === undefined || (fresh !== undefined && fresh.time >= draining.time) ? fresh : draining;
    if (held === undefined || (row.last_reported_at !== null && row.last_reported_at > held.time)) return row;
    return { ...row, last_reported_by: held.reportedBy, last_reported_at: held.time, inactive_since: null };
  }

  async resetConnections(time: number): Promise<void> {
    this.s.resetConnections.run(time);
  }

  async createKey(key: StoredAccessKey): Promise<void> {
    this.s.insertKey.run({ ...accessKeyToRow(key), secret_hash: key.secretHash });
  }

  async getKey(id: string): Promise<StoredAccessKey | undefined> {
    const row = this.s.getKey.get(id);
    return row && storedAccessKeyFromRow(row);
  }

  async getKeyByKey(key: string): Promise<StoredAccessKey | undefined> {
    const row = this.s.getKeyByKey.get(key);
    return row && storedAccessKeyFromRow(row);
  }

  async listKeys(applicationId: string): Promise<AccessKey[]> {
    return this.s.listKeys.all(applicationId).map(accessKeyFromRow);
  }

  async updateKey(key: AccessKey): Promise<void> {
    this.s.updateKey.run(accessKeyToRow(key));
  }

  async deleteKey(id: string): Promise<void> {
    this.s.deleteKey.run(id);
  }

  async applyBatch(batch: WriteBatch): Promise<void> {
    try {
      this.unsynced(() => this.applyBatchTx(batch));
    } catch (err) {
      // Rolled back: nothing of it may reach the rollups or the held reports.
      this.batchRollups.clear();
      this.batchMarkedAt = undefined;
      this.batchReports = [];
      this.batchReportsMarked = false;
      throw err;
    }
    this.checkpointer?.poke();
    this.batchRollups.drainInto(this.rollups);
    if (this.batchMarkedAt !== undefined) this.rollupsMarkedAt = this.batchMarkedAt;
    this.batchMarkedAt = undefined;
    for (const { report, sighted } of this.batchReports) this.reports.add(report, sighted);
    this.batchReports = [];
    if (this.batchReportsMarked) this.reportsMarked = true;
    this.batchReportsMarked = false;
    this.scheduleRollupFlush();
    // Durable only now (wal-sync.ts). Should the sync fail, the batch is committed but not
    // acknowledged: a client sends it again, and a state of the same device and time merges.
    // A batch of commands alone (a REST command, with no ingest joining it) syncs on the event
    // loop when no sync is under way: its commands wait for the sync in any case, and the trip
    // through libuv's pool added up to 3.7 ms at p99 on a busy machine. Batches carrying states
    // keep syncing off the loop, so ingest goes on parsing meanwhile.
    await this.walSync?.sync(commandsAlone(batch));
  }

  /**
   * Runs a transaction whose commit does not sync the log (the group commit syncs it afterwards,
   * off the event loop; a rollup slice needs no sync, recovery covers it). Every other write
   * keeps `synchronous = FULL`.
   */
  private unsynced<T>(write: () => T): T {
    if (this.walSync === undefined) return write();
    this.s.syncNormal.run();
    try {
      return write();
    } finally {
      this.s.syncFull.run();
    }
  }

  /** The connection's `PRAGMA synchronous` (2 is FULL); tests read it. */
  synchronousSetting(): number {
    return this.db.pragma('synchronous', { simple: true }) as number;
  }

  /** Syncs of the log done off the event loop, when the database is a file (tests read it). */
  get logSyncs(): number | undefined {
    return this.walSync?.syncs;
  }

  async queryStates(deviceId: string, query: TimeRangeQuery): Promise<StateRecord[]> {
    return this.s.queryStates[direction(query.sortDirection)]
      .all(rangeParams(deviceId, query))
      .map((row) => ({ deviceId, time: row.time, data: fromJson(row.data), reportedBy: row.reported_by }));
  }

  async getCompositeState(deviceId: string): Promise<Record<string, CompositeValue>> {
    // No prototype: an attribute named __proto__ is a key like any other.
    const composite: Record<string, CompositeValue> = Object.create(null);
    for (const row of this.s.getComposite.all(deviceId)) {
      composite[row.attribute] = { value: fromJson(row.value), time: row.time };
    }
    return composite;
  }

  async queryCommands(deviceId: string, query: TimeRangeQuery): Promise<CommandRecord[]> {
    return this.s.queryCommands[direction(query.sortDirection)].all(rangeParams(deviceId, query)).map(commandFromRow);
  }

  async listLogs(deviceId: string, query: { limit: number; before?: number }): Promise<DeviceLogEntry[]> {
    return this.s.listLogs
      .all({ deviceId, before: query.before ?? MAX_TIME, limit: query.limit })
      .map(deviceLogFromRow);
  }

  async querySeries(query: SeriesQuery): Promise<Map<string, SeriesPoint[]>> {
    this.flushRollups();
    return this.series.query(query);
  }

  lastValues(deviceIds: string[], attributes: string[] | null): Promise<Map<string, Record<string, CompositeValue>>> {
    return Promise.resolve(this.series.lastValues(deviceIds, attributes));
  }

  listApplicationLog(query: ApplicationLogQuery): Promise<ApplicationLogEntry[]> {
    return Promise.resolve(this.appLog.list(query));
  }

  async listGatewaySightings(peripheralId: string): Promise<GatewaySighting[]> {
    this.flushRollups();
    return this.s.listSightings.all(peripheralId).map((r) => ({
      gatewayId: r.gateway_id,
      firstSeen: r.first_seen,
      lastSeen: r.last_seen,
      reports: r.reports,
    }));
  }

  async listPeripheralsSeenBy(
    gatewayId: string,
    since: number,
  ): Promise<Array<{ peripheralId: string; lastSeen: number; reports: number }>> {
    this.flushRollups();
    return this.s.listSeenBy
      .all({ gatewayId, since })
      .map((r) => ({ peripheralId: r.peripheral_id, lastSeen: r.last_seen, reports: r.reports }));
  }

  async listInactivityCandidates(applicationId: string, activeBefore: number): Promise<string[]> {
    this.flushRollups();
    return this.s.inactivityCandidates.all({ applicationId, before: activeBefore }).map((r) => r.id);
  }

  async markInactive(deviceIds: string[], since: number): Promise<void> {
    this.db.transaction(() => {
      for (const deviceId of deviceIds) this.s.markInactive.run({ deviceId, since });
    })();
  }

  async pruneStates(applicationId: string, before: number, limit: number): Promise<number> {
    this.flushRollups();
    return this.db.transaction(() => {
      let deleted = 0;
      for (const { id } of this.s.applicationDeviceIds.all(applicationId)) {
        if (deleted >= limit) break;
        deleted += this.s.pruneStates.run({ deviceId: id, before, limit: limit - deleted }).changes;
        this.s.pruneRollups.run({ deviceId: id, before });
      }
      return deleted;
    })();
  }

  async pruneLogs(applicationId: string, before: number, limit: number): Promise<number> {
    return this.s.pruneLogs.run({ applicationId, before, limit }).changes;
  }

  /** Whether a minute is held in memory (by the accumulator or a timed flush under way). */
  private holds(deviceId: string, attribute: string, bucket: number): boolean {
    if (this.rollups.size > 0 && this.rollups.has(deviceId, attribute, bucket)) return true;
    return this.draining?.held.has(deviceId, attribute, bucket) ?? false;
  }

  /** Runs inside the batch transaction: anything thrown here rolls the whole batch back. */
  private writeBatch(batch: WriteBatch): void {
    // A device deleted while its messages waited in the batch: its data is dropped, not orphaned.
    const known = new Map<string, boolean>();
    const exists = (id: string): boolean => {
      let found = known.get(id);
      if (found === undefined) {
        found = this.s.deviceExists.get(id) !== undefined;
        known.set(id, found);
      }
      return found;
    };
    // Minute rollups of numeric attributes (rollup-accumulator.ts). A recent minute goes to
    // `batchRollups` (then to the accumulator); an older one (backfill) is combined per batch and
    // upserted below, durable at once. Two states of one millisecond merge in device_states, but
    // the rollup counts both (docs/decisions.md, State).
    const now = this.now();
    const recent = recentFrom(now);
    const backfill = new RollupAccumulator();
    this.batchRollups.clear();
    this.batchMarkedAt = undefined;
    // The flush mark bounds what a crash can lose. With nothing held it may move to now (at most
    // once a minute), so that recovery after a quiet spell reads only the last few minutes.
    if (this.heldRollups() === 0 && now - this.rollupsMarkedAt >= ROLLUP_MS) {
      this.s.setSetting.run(ROLLUPS_FLUSHED_AT, String(now));
      this.batchMarkedAt = now;
    }
    for (const state of batch.states) {
      if (!exists(state.deviceId)) continue;
      // json_patch (RFC 7396) drops a key whose new value is null; ingest never stores nulls.
      this.s.insertState.run({
        deviceId: state.deviceId,
        time: state.time,
        data: toJson(state.data),
        reportedBy: state.reportedBy,
      });
      const bucket = minuteOf(state.time);
      for (const [attribute, value] of Object.entries(state.data)) {
        if (value === undefined) continue;
        this.s.upsertComposite.run({ deviceId: state.deviceId, attribute, value: toJson(value), time: state.time });
        if (!isRollupValue(value)) continue;
        // A minute already held stays held, so that its values merge in arrival order.
        if (bucket >= recent || this.holds(state.deviceId, attribute, bucket)) {
          this.batchRollups.push(state.deviceId, attribute, state.time, value);
        } else {
          backfill.add(state.deviceId, attribute, state.time, value);
        }
      }
    }
    this.series.upsertRollups(backfill.values());
    // Held, and written by the timed flush in key order (held-reports.ts). The first report held
    // since the last flush sets the recovery mark, durable with this batch.
    this.batchReports = [];
    this.batchReportsMarked = false;
    let oldest = Number.POSITIVE_INFINITY;
    for (const report of batch.reports) {
      const sighted = report.reportedBy !== report.deviceId && exists(report.deviceId);
      this.batchReports.push({ report, sighted });
      if (report.time < oldest) oldest = report.time;
    }
    if (this.batchReports.length > 0 && !this.reportsMarked) {
      this.s.setSetting.run(REPORTS_HELD_SINCE, String(oldest));
      this.batchReportsMarked = true;
    }
    for (const change of batch.connections) {
      this.s.setConnection.run({ deviceId: change.deviceId, connected: change.connected ? 1 : 0, time: change.time });
      this.s.clearInactive.run(change.deviceId);
    }
    for (const command of batch.commands) {
      if (exists(command.deviceId)) this.s.insertCommand.run(commandToRow(command));
    }
    for (const log of batch.logs) {
      if (!exists(log.deviceId)) continue;
      this.s.insertLog.run({
        device_id: log.deviceId,
        application_id: log.applicationId,
        time: log.time,
        kind: log.kind,
        details: toJson(log.details),
      });
    }
  }
}

/** A timed flush under way (see `SqliteStore.draining`). */
interface Draining {
  held: RollupAccumulator;
  heldReports: HeldReports;
  /** The held rollup rows, by their index in `held`, in primary-key order. */
  rows: Int32Array;
  reports: ReportMark[];
  sightings: SightingRow[];
  next: number;
  at: number;
}

function drainingTotal(d: Draining): number {
  return d.rows.length + d.reports.length + d.sightings.length;
}

function direction(sort: Direction): 'asc' | 'desc' {
  return sort === 'desc' ? 'desc' : 'asc';
}

function rangeParams(deviceId: string, query: TimeRangeQuery): RangeParams {
  return { deviceId, start: query.start ?? MIN_TIME, end: query.end ?? MAX_TIME, limit: query.limit };
}

export async function openSqliteStore(options: SqliteStoreOptions): Promise<SqliteStore> {
  let filename: string;
  if ('dataDir' in options) {
    if (!options.shared) makeDirectory(options.dataDir);
    filename = join(options.dataDir, DATABASE_FILENAME);
  } else {
    filename = options.filename;
  }
  if (options.shared && !existsSync(filename)) throw new Error(`no database at ${filename}`);
  const db = new Database(filename, { fileMustExist: options.shared === true });
  try {
    db.pragma('busy_timeout = 5000');
    db.pragma('journal_mode = WAL');
    // FULL: an acknowledged QoS 1 message must survive power loss; throughput comes from
    // group commits, not from relaxing the sync.
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma(`cache_size = -${CACHE_KIB}`);
    if (options.shared) requireMigrated(db);
    else migrate(db);
    const { rollupFlushMs, rollupSliceMs, now, onRollupFlushError } = options;
    let checkpointer: Checkpointer | undefined;
    if (options.backgroundCheckpoints && !options.shared && !db.memory) {
      db.pragma(`wal_autocheckpoint = ${FALLBACK_AUTOCHECKPOINT_PAGES}`);
      checkpointer = new Checkpointer(
        filename,
        options.onCheckpointError ?? ((err) => console.error('background checkpoint failed:', err)),
      );
    }
    return new SqliteStore(db, {
      rollupFlushMs,
      rollupSliceMs,
      now,
      onRollupFlushError,
      recover: !options.shared,
      checkpointer,
    });
  } catch (err) {
    db.close();
    throw err;
  }
}

/** Throws unless every migration this version knows has been applied (by a server). */
function requireMigrated(db: Database.Database): void {
  const hasTable = db
    .prepare<[], { found: number }>(
      "SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
    )
    .get();
  const applied = new Set(
    hasTable
      ? db
          .prepare<[], { version: number }>('SELECT version FROM schema_migrations')
          .all()
          .map((row) => row.version)
      : [],
  );
  if (MIGRATIONS.some((m) => !applied.has(m.version))) {
    throw new Error('the database schema is older than this version: start `gatehouse serve` once to migrate it');
  }
}

/** A batch that carries commands and nothing else. */
function commandsAlone(batch: WriteBatch): boolean {
  return (
    batch.commands.length > 0 &&
    batch.states.length === 0 &&
    batch.reports.length === 0 &&
    batch.connections.length === 0 &&
    batch.logs.length === 0
  );
}
