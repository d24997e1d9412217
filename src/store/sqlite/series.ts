/**
 * Time-series and last-value queries over SQLite (issue 3), and the minute rollups they read.
 *
 * Every query is a range on a primary key: `state_rollups (device_id, attribute, bucket)` for
 * numeric aggregates when the buckets are whole minutes starting on a minute, otherwise
 * `device_states (device_id, time)`; `composite_state (device_id, attribute)` for last values.
 * Nothing scans a table. See docs/data-queries.md.
 */
import type Database from 'better-sqlite3';
import type { RollupRow } from '../rollup-accumulator.js';
import { fromJson } from '../rows.js';
import {
  BucketCells,
  checkSeriesQuery,
  FAMILY,
  type Family,
  mapFamilies,
  planAggregate,
  RAW_POINT_LIMIT,
} from '../series-buckets.js';
import type { Aggregation, CompositeValue, SeriesPoint, SeriesQuery } from '../types.js';

export { minuteOf, ROLLUP_MS } from '../rollup-accumulator.js';

export { RAW_POINT_LIMIT } from '../series-buckets.js';

// ---------------------------------------------------------------------------------------------
// Writing: an additive upsert of partial aggregates combined in memory (rollup-accumulator.ts),
// either for the backfill of one write batch or for the recent minutes the store accumulates.

type RollupParams = [string, string, number, number, number, number, number, number, number, number, number];

// In DO UPDATE, every unqualified column is the row before the update. First keeps the earlier
// arrival on equal times (strict <), last takes the later one (>=), as the state merge does.
const UPSERT_ROLLUP = `
INSERT INTO state_rollups (device_id, attribute, bucket, count, sum, min, max, first_time, first_value, last_time, last_value)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (device_id, attribute, bucket) DO UPDATE SET
  count = state_rollups.count + excluded.count,
  sum = state_rollups.sum + excluded.sum,
  min = min(state_rollups.min, excluded.min),
  max = max(state_rollups.max, excluded.max),
  first_time = min(state_rollups.first_time, excluded.first_time),
  first_value = CASE WHEN excluded.first_time < state_rollups.first_time
    THEN excluded.first_value ELSE state_rollups.first_value END,
  last_time = max(state_rollups.last_time, excluded.last_time),
  last_value = CASE WHEN excluded.last_time >= state_rollups.last_time
    THEN excluded.last_value ELSE state_rollups.last_value END`;

// ---------------------------------------------------------------------------------------------
// Reading.

/** One row of an aggregate query; `a` is absent from the per-attribute rollup queries. */
interface AggRow {
  b: number;
  a?: string;
  n?: number;
  s?: number;
  mn?: number;
  mx?: number;
  t?: number;
  type?: string;
  v?: unknown;
}

interface RangeParams {
  deviceId: string;
  /** Bucket 0 starts here; integer arithmetic, so bound as BigInt. */
  origin: bigint;
  res: bigint;
  from: number;
  to: number;
}

type RawParams = RangeParams & { attrs: string | null };
type RollupQueryParams = RangeParams & { attribute: string };

// Raw states, one row per state and attribute: json_each gives each value with its JSON type,
// so booleans (type 'true'/'false') are told apart from numbers.
const RAW_FROM = `FROM device_states AS s, json_each(s.data) AS j
  WHERE s.device_id = @deviceId AND s.time BETWEEN @from AND @to
    AND (@attrs IS NULL OR j.key IN (SELECT value FROM json_each(@attrs)))`;
const RAW_BUCKET = '(s.time - @origin) / @res';
const NUMERIC_TYPES = "('integer', 'real')";

// With exactly one min() or max() in a query, SQLite takes the bare columns from that row: the
// value of the first (last) state of the bucket.
const RAW_SQL: Record<Family, string> = {
  numeric: `SELECT ${RAW_BUCKET} AS b, j.key AS a, count(*) AS n, total(j.value) AS s, min(j.value) AS mn,
      max(j.value) AS mx ${RAW_FROM} AND j.type IN ${NUMERIC_TYPES} GROUP BY b, a`,
  count: `SELECT ${RAW_BUCKET} AS b, j.key AS a, count(*) AS n ${RAW_FROM} GROUP BY b, a`,
  first: `SELECT ${RAW_BUCKET} AS b, j.key AS a, min(s.time) AS t, j.type AS type, j.value AS v ${RAW_FROM}
    GROUP BY b, a`,
  last: `SELECT ${RAW_BUCKET} AS b, j.key AS a, max(s.time) AS t, j.type AS type, j.value AS v ${RAW_FROM}
    GROUP BY b, a`,
};

const ROLLUP_FROM = `FROM state_rollups
  WHERE device_id = @deviceId AND attribute = @attribute AND bucket BETWEEN @from AND @to`;
const ROLLUP_BUCKET = '(bucket - @origin) / @res';

// COUNT from rollups counts the numeric values; see `SqliteSeries.aggregate` for other types.
const ROLLUP_SQL: Record<Family, string> = {
  numeric: `SELECT ${ROLLUP_BUCKET} AS b, sum(count) AS n, total(sum) AS s, min(min) AS mn, max(max) AS mx
    ${ROLLUP_FROM} GROUP BY b`,
  count: `SELECT ${ROLLUP_BUCKET} AS b, sum(count) AS n ${ROLLUP_FROM} GROUP BY b`,
  first: `SELECT ${ROLLUP_BUCKET} AS b, min(first_time) AS t, first_value AS v ${ROLLUP_FROM} GROUP BY b`,
  last: `SELECT ${ROLLUP_BUCKET} AS b, max(last_time) AS t, last_value AS v ${ROLLUP_FROM} GROUP BY b`,
};

// Buckets of exactly one minute: one rollup row per bucket, so no GROUP BY (its sort costs as
// much as reading the rows).
const MINUTE_SQL: Record<Family, string> = {
  numeric: `SELECT ${ROLLUP_BUCKET} AS b, count AS n, sum AS s, min AS mn, max AS mx ${ROLLUP_FROM}`,
  count: `SELECT ${ROLLUP_BUCKET} AS b, count AS n ${ROLLUP_FROM}`,
  first: `SELECT ${ROLLUP_BUCKET} AS b, first_time AS t, first_value AS v ${ROLLUP_FROM}`,
  last: `SELECT ${ROLLUP_BUCKET} AS b, last_time AS t, last_value AS v ${ROLLUP_FROM}`,
};

/** Every statement of this module, exported so tests can check their query plans. */
export const SERIES_SQL = {
  upsertRollup: UPSERT_ROLLUP,
  raw: RAW_SQL,
  rollup: ROLLUP_SQL,
  minute: MINUTE_SQL,
  states: `SELECT time, data FROM device_states WHERE device_id = @deviceId AND time BETWEEN @from AND @to
      AND (@attrs IS NULL OR EXISTS
        (SELECT 1 FROM json_each(data) WHERE key IN (SELECT value FROM json_each(@attrs))))
    ORDER BY time LIMIT @limit`,
  attributeKinds: `SELECT attribute, json_type(value) IN ${NUMERIC_TYPES} AS numeric FROM composite_state
    WHERE device_id = ?`,
  lastValues: `SELECT device_id, attribute, value, time FROM composite_state
    WHERE device_id IN (SELECT value FROM json_each(@ids))
      AND (@attrs IS NULL OR attribute IN (SELECT value FROM json_each(@attrs)))
    ORDER BY device_id, attribute`,
} as const;

/** A value as json_each reports it, back to its JSON form. */
function decode(type: string | undefined, value: unknown): unknown {
  switch (type) {
    case 'true':
      return true;
    case 'false':
      return false;
    case 'null':
      return null;
    case 'object':
    case 'array':
      return JSON.parse(value as string);
    default:
      return value;
  }
}

export interface SeriesOptions {
  /** false answers every query from the raw states (for the benchmark's comparison). */
  rollups?: boolean;
}

export class SqliteSeries {
  private readonly upsertRollup: Database.Statement<RollupParams>;
  private readonly raw: Record<Family, Database.Statement<[RawParams], AggRow>>;
  private readonly rollup: Record<Family, Database.Statement<[RollupQueryParams], AggRow>>;
  private readonly minute: Record<Family, Database.Statement<[RollupQueryParams], AggRow>>;
  private readonly states: Database.Statement<
    [{ deviceId: string; from: number; to: number; attrs: string | null; limit: number }],
    { time: number; data: string }
  >;
  private readonly attributeKinds: Database.Statement<[string], { attribute: string; numeric: number }>;
  private readonly last: Database.Statement<
    [{ ids: string; attrs: string | null }],
    { device_id: string; attribute: string; value: string; time: number }
  >;
  private readonly useRollups: boolean;

  constructor(db: Database.Database, options: SeriesOptions = {}) {
    this.useRollups = options.rollups ?? true;
    this.upsertRollup = db.prepare<RollupParams>(SERIES_SQL.upsertRollup);
    this.raw = mapFamilies((f) => db.prepare<[RawParams], AggRow>(SERIES_SQL.raw[f]));
    this.rollup = mapFamilies((f) => db.prepare<[RollupQueryParams], AggRow>(SERIES_SQL.rollup[f]));
    this.minute = mapFamilies((f) => db.prepare<[RollupQueryParams], AggRow>(SERIES_SQL.minute[f]));
    this.states = db.prepare(SERIES_SQL.states);
    this.attributeKinds = db.prepare(SERIES_SQL.attributeKinds);
    this.last = db.prepare(SERIES_SQL.lastValues);
  }

  /**
   * Adds partial aggregates to `state_rollups` (count and sum add up, first and last are picked
   * by time). Call it inside a transaction: one statement per row.
   */
  upsertRollups(rows: Iterable<RollupRow>): void {
    for (const r of rows) this.addRollup(r);
  }

  /** `upsertRollups` for one row. */
  addRollup(r: RollupRow): void {
    this.upsertRollup.run(
      r.deviceId,
      r.attribute,
      r.bucket,
      r.count,
      r.sum,
      r.min,
      r.max,
      r.firstTime,
      r.firstValue,
      r.lastTime,
      r.lastValue,
    );
  }

  query(q: SeriesQuery): Map<string, SeriesPoint[]> {
    const out = new Map<string, SeriesPoint[]>();
    if (!checkSeriesQuery(q)) return out;
    for (const deviceId of new Set(q.deviceIds)) {
      const points = q.aggregation === 'NONE' ? this.rawStates(deviceId, q) : this.aggregate(deviceId, q);
      if (points.length > 0) out.set(deviceId, points);
    }
    return out;
  }

  lastValues(deviceIds: string[], attributes: string[] | null): Map<string, Record<string, CompositeValue>> {
    const out = new Map<string, Record<string, CompositeValue>>();
    if (deviceIds.length === 0 || attributes?.length === 0) return out;
    const rows = this.last.all({ ids: JSON.stringify(deviceIds), attrs: attributes && JSON.stringify(attributes) });
    for (const row of rows) {
      let values = out.get(row.device_id);
      if (values === undefined) {
        // No prototype: an attribute named __proto__ is a key like any other.
        values = Object.create(null) as Record<string, CompositeValue>;
        out.set(row.device_id, values);
      }
      values[row.attribute] = { value: fromJson(row.value), time: row.time };
    }
    return out;
  }

  /** NONE: the states in range, oldest first, with only the wanted attributes. */
  private rawStates(deviceId: string, q: SeriesQuery): SeriesPoint[] {
    const wanted = q.attributes && new Set(q.attributes);
    const rows = this.states.all({
      deviceId,
      from: q.start,
      to: q.end,
      attrs: q.attributes && JSON.stringify(q.attributes),
      limit: RAW_POINT_LIMIT,
    });
    return rows.map((row) => {
      const data = fromJson<Record<string, unknown>>(row.data);
      if (wanted) for (const key of Object.keys(data)) if (!wanted.has(key)) delete data[key];
      return { time: row.time, data };
    });
  }

  private aggregate(deviceId: string, q: SeriesQuery): SeriesPoint[] {
    const aggregation = q.aggregation as Exclude<Aggregation, 'NONE'>;
    const family = FAMILY[aggregation];
    const cells = new BucketCells(aggregation);
    const range = { deviceId, origin: BigInt(q.start), res: BigInt(q.resolution) };
    const kinds = () =>
      this.attributeKinds.all(deviceId).map((row) => ({ attribute: row.attribute, numeric: row.numeric === 1 }));
    const plan = planAggregate(q, this.useRollups ? kinds() : [], this.useRollups);
    if (plan.rollups) {
      const { attributes, from, to, minute } = plan.rollups;
      const rollups = (minute ? this.minute : this.rollup)[family];
      for (const attribute of attributes) {
        for (const row of rollups.iterate({ ...range, attribute, from, to })) cells.merge(attribute, row);
      }
    }
    for (const { from, to, attributes } of plan.raw) {
      const attrs = attributes && JSON.stringify(attributes);
      for (const row of this.raw[family].iterate({ ...range, from, to, attrs })) {
        cells.merge(row.a as string, row.type === undefined ? row : { ...row, v: decode(row.type, row.v) });
      }
    }
    return cells.points(q.start, q.resolution);
  }
}
