/**
 * Rebuilding minute rollups from the stored states: all of them (migration 3, for databases
 * written before rollups were kept), or the recent minutes after a crash lost the values the
 * store had accumulated in memory but not yet flushed (see `recoverRollups`).
 */
import type Database from 'better-sqlite3';
import { minuteOf, ROLLUP_MS, ROLLUP_RECENT_MS } from '../rollup-accumulator.js';

/**
 * The settings key of the flush mark: epoch ms such that every numeric value not yet in
 * `state_rollups` (held in memory) has its minute at or after `minuteOf(mark - ROLLUP_RECOVERY_MS)`.
 * Absent when nothing can be missing (a fresh database, or after a clean close).
 */
export const ROLLUPS_FLUSHED_AT = 'rollupsFlushedAt';

/** The recent window, plus one minute of slack for a clock that steps back. */
export const ROLLUP_RECOVERY_MS = ROLLUP_RECENT_MS + ROLLUP_MS;

// The same rules as the accumulator: finite numbers only (not booleans), first by time, last by
// time. device_states holds one row per device and millisecond, so there are no ties here.
const REBUILD_DEVICE = `
INSERT INTO state_rollups (device_id, attribute, bucket, count, sum, min, max, first_time, first_value,
  last_time, last_value)
SELECT DISTINCT @deviceId, attribute, bucket,
  count(*) OVER w, total(v) OVER w, min(v) OVER w, max(v) OVER w,
  first_value(time) OVER w, first_value(v) OVER w, last_value(time) OVER w, last_value(v) OVER w
FROM (
  SELECT j.key AS attribute, s.time - (((s.time % ${ROLLUP_MS}) + ${ROLLUP_MS}) % ${ROLLUP_MS}) AS bucket,
    s.time, j.value AS v
  FROM device_states AS s, json_each(s.data) AS j
  WHERE s.device_id = @deviceId AND s.time >= @from AND j.type IN ('integer', 'real')
)
WINDOW w AS (PARTITION BY attribute, bucket ORDER BY time
  ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)`;

/**
 * Every SQL statement of the rebuild, exported so tests can check their query plans. A device
 * has rollups at or after `from` only if it has a state there, and then its composite state has
 * a time at or after `from` for each such attribute (it keeps the newest time), so the composite
 * state names the devices and attributes to rebuild without reading every state.
 */
export const REBUILD_SQL = {
  devices: 'SELECT DISTINCT device_id FROM composite_state WHERE time >= @from ORDER BY device_id',
  deleteDevice: `DELETE FROM state_rollups WHERE device_id = @deviceId AND attribute IN
      (SELECT attribute FROM composite_state WHERE device_id = @deviceId AND time >= @from)
    AND bucket >= @from`,
  rebuildDevice: REBUILD_DEVICE,
} as const;

/**
 * Replaces the rollups of every minute at or after `from` (rounded down to its minute; all
 * minutes when absent) with rollups computed from `device_states`, one device (one primary-key
 * range) at a time. Call it inside a transaction. Returns the number of devices rebuilt.
 */
export function rebuildRollups(db: Database.Database, from?: number): number {
  const bound = from === undefined ? Number.MIN_SAFE_INTEGER : minuteOf(from);
  const devices = db.prepare<[{ from: number }], { device_id: string }>(REBUILD_SQL.devices);
  const deleteDevice = db.prepare<[{ deviceId: string; from: number }]>(REBUILD_SQL.deleteDevice);
  const rebuildDevice = db.prepare<[{ deviceId: string; from: number }]>(REBUILD_SQL.rebuildDevice);
  if (from === undefined) db.prepare('DELETE FROM state_rollups').run();
  let rebuilt = 0;
  for (const { device_id: deviceId } of devices.all({ from: bound })) {
    if (from !== undefined) deleteDevice.run({ deviceId, from: bound });
    rebuildDevice.run({ deviceId, from: bound });
    rebuilt++;
  }
  return rebuilt;
}

/**
 * Run on open, before any write: when the flush mark is present, the previous process may have
 * died with recent values accumulated but not flushed, so the minutes they could fall in are
 * rebuilt from the stored states. The mark is then removed: nothing is held in memory yet.
 * Returns the first minute rebuilt, or undefined when there was nothing to do.
 */
export function recoverRollups(db: Database.Database): number | undefined {
  const getMark = db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?');
  const deleteMark = db.prepare<[string]>('DELETE FROM settings WHERE key = ?');
  return db
    .transaction((): number | undefined => {
      const mark = getMark.get(ROLLUPS_FLUSHED_AT);
      if (mark === undefined) return undefined;
      const at = Number(mark.value);
      // A mark that is not a time cannot bound anything: rebuild all.
      const from = Number.isSafeInteger(at) ? minuteOf(at - ROLLUP_RECOVERY_MS) : Number.MIN_SAFE_INTEGER;
      rebuildRollups(db, Number.isSafeInteger(at) ? from : undefined);
      deleteMark.run(ROLLUPS_FLUSHED_AT);
      return from;
    })
    .immediate();
}
