/**
 * "Last reported" (devices) and gateway sightings (peripheral_gateways) of committed reports,
 * held in memory and written in primary-key order by the store's timed flush, like the minute
 * rollups. At fleet scale every report landed on a page of each table chosen by a random device
 * id: about 2 of the ~4 pages a state wrote to the log, and more than half of the bytes. Held, a
 * device that reports every few seconds costs one row write per flush, and a flush writes its
 * rows in key order. A crash loses what was held; the next open rebuilds it from the stored
 * states (`recoverReports`). docs/decisions.md, "Reports are written behind".
 */
import type Database from 'better-sqlite3';
import type { ReportMark } from '../types.js';
import { REBUILD_SQL } from './rollup-rebuild.js';

/**
 * The settings key of the recovery mark: the arrival time (epoch ms) of the oldest report held in
 * memory. Present only while some may be held; absent after a clean close or a full flush.
 */
export const REPORTS_HELD_SINCE = 'reportsHeldSince';

/**
 * How far before the mark recovery reads states: a report's time is its arrival, a state's time
 * may be its device's clock, a little behind.
 */
export const REPORT_RECOVERY_SLACK_MS = 60_000;

export interface SightingRow {
  peripheralId: string;
  gatewayId: string;
  firstSeen: number;
  lastSeen: number;
  reports: number;
}

export class HeldReports {
  /** The newest report of each device (a later arrival wins a tie, as in the UPDATE it replaces). */
  private readonly latestOf = new Map<string, ReportMark>();
  /** By peripheral id, then gateway id. */
  private readonly sightings = new Map<string, Map<string, SightingRow>>();
  private sightingCount = 0;
  /** The earliest report time held: what the recovery mark says. */
  oldest = Number.POSITIVE_INFINITY;

  get size(): number {
    return this.latestOf.size + this.sightingCount;
  }

  /** Adds a committed report; `sighted`: its device exists and a gateway reported for it. */
  add(report: ReportMark, sighted: boolean): void {
    const held = this.latestOf.get(report.deviceId);
    if (held === undefined || held.time <= report.time) this.latestOf.set(report.deviceId, report);
    if (report.time < this.oldest) this.oldest = report.time;
    if (!sighted) return;
    let ofPeripheral = this.sightings.get(report.deviceId);
    if (ofPeripheral === undefined) {
      ofPeripheral = new Map();
      this.sightings.set(report.deviceId, ofPeripheral);
    }
    const sighting = ofPeripheral.get(report.reportedBy);
    if (sighting === undefined) {
      this.sightingCount++;
      ofPeripheral.set(report.reportedBy, {
        peripheralId: report.deviceId,
        gatewayId: report.reportedBy,
        firstSeen: report.time,
        lastSeen: report.time,
        reports: 1,
      });
      return;
    }
    sighting.reports++;
    if (report.time < sighting.firstSeen) sighting.firstSeen = report.time;
    if (report.time > sighting.lastSeen) sighting.lastSeen = report.time;
  }

  latest(deviceId: string): ReportMark | undefined {
    return this.latestOf.get(deviceId);
  }

  /**
   * What is held, each list in its table's primary-key order (the default sort compares UTF-16
   * code units; for device ids, ASCII, that is SQLite's BINARY order).
   */
  sorted(): { reports: ReportMark[]; sightings: SightingRow[] } {
    const reports: ReportMark[] = [];
    for (const deviceId of [...this.latestOf.keys()].sort()) reports.push(this.latestOf.get(deviceId) as ReportMark);
    const sightings: SightingRow[] = [];
    for (const peripheralId of [...this.sightings.keys()].sort()) {
      const ofPeripheral = this.sightings.get(peripheralId) as Map<string, SightingRow>;
      if (ofPeripheral.size === 1) for (const row of ofPeripheral.values()) sightings.push(row);
      else
        for (const gatewayId of [...ofPeripheral.keys()].sort())
          sightings.push(ofPeripheral.get(gatewayId) as SightingRow);
    }
    return { reports, sightings };
  }
}

/** A device whose states were stored since `from`: its reporters in time order. */
interface StoredReport {
  reported_by: string;
  time: number;
}

/**
 * Run on open, before any write: when the mark is present, the previous process may have died
 * with reports held, so they are rebuilt from the states stored since the mark (less the slack).
 * A state's `reported_by` is the device that sent it (a REST post by a token or user is recorded
 * as `token:ID`/`user:ID`, and made no report). "Last reported" moves forward only; a sighting
 * counts the states after its stored `last_seen`, so what the last flush wrote is not counted
 * twice. States whose time is far from their arrival (a device clock off by more than the slack,
 * or backfilled history) are not seen here: their report is lost with the crash. Returns the
 * devices looked at, or undefined when there was no mark.
 */
export function recoverReports(db: Database.Database): number | undefined {
  const getMark = db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?');
  const deleteMark = db.prepare<[string]>('DELETE FROM settings WHERE key = ?');
  // The devices with a state stored since `from`, found as the rollup rebuild finds them.
  const devices = db.prepare<[{ from: number }], { device_id: string }>(REBUILD_SQL.devices);
  const stored = db.prepare<[{ deviceId: string; from: number }], StoredReport>(
    `SELECT reported_by, time FROM device_states
     WHERE device_id = @deviceId AND time >= @from AND instr(reported_by, ':') = 0 ORDER BY time`,
  );
  const markReported = db.prepare<[ReportMark]>(MARK_REPORTED_SQL);
  const lastSeen = db.prepare<[string, string], { last_seen: number }>(
    'SELECT last_seen FROM peripheral_gateways WHERE peripheral_id = ? AND gateway_id = ?',
  );
  const sight = db.prepare<[SightingRow]>(SIGHT_SQL);
  return db
    .transaction((): number | undefined => {
      const mark = getMark.get(REPORTS_HELD_SINCE);
      if (mark === undefined) return undefined;
      const at = Number(mark.value);
      const from = Number.isSafeInteger(at) ? at - REPORT_RECOVERY_SLACK_MS : Number.MIN_SAFE_INTEGER;
      let looked = 0;
      for (const { device_id: deviceId } of devices.all({ from })) {
        looked++;
        const rows = stored.all({ deviceId, from });
        const last = rows[rows.length - 1];
        if (last === undefined) continue;
        markReported.run({ deviceId, reportedBy: last.reported_by, time: last.time });
        const byGateway = new Map<string, StoredReport[]>();
        for (const row of rows) {
          if (row.reported_by === deviceId) continue;
          const list = byGateway.get(row.reported_by) ?? [];
          list.push(row);
          byGateway.set(row.reported_by, list);
        }
        for (const [gatewayId, list] of byGateway) {
          const after = lastSeen.get(deviceId, gatewayId)?.last_seen ?? Number.NEGATIVE_INFINITY;
          const unseen = list.filter((row) => row.time > after);
          const first = unseen[0];
          const newest = unseen[unseen.length - 1];
          if (first === undefined || newest === undefined) continue;
          sight.run({
            peripheralId: deviceId,
            gatewayId,
            firstSeen: first.time,
            lastSeen: newest.time,
            reports: unseen.length,
          });
        }
      }
      deleteMark.run(REPORTS_HELD_SINCE);
      return looked;
    })
    .immediate();
}

/** A report processed late must not move "last reported" backwards, but any report is activity. */
export const MARK_REPORTED_SQL = `UPDATE devices SET
   last_reported_by = CASE WHEN last_reported_at IS NULL OR last_reported_at <= @time
     THEN @reportedBy ELSE last_reported_by END,
   last_reported_at = CASE WHEN last_reported_at IS NULL OR last_reported_at <= @time
     THEN @time ELSE last_reported_at END,
   inactive_since = NULL
 WHERE id = @deviceId`;

/** Adds held sightings to a peripheral's row; a peripheral deleted meanwhile gets none. */
export const SIGHT_SQL = `INSERT INTO peripheral_gateways (peripheral_id, gateway_id, first_seen, last_seen, reports)
 SELECT @peripheralId, @gatewayId, @firstSeen, @lastSeen, @reports
 WHERE EXISTS (SELECT 1 FROM devices WHERE id = @peripheralId)
 ON CONFLICT (peripheral_id, gateway_id) DO UPDATE SET reports = reports + excluded.reports,
   first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)`;
