/**
 * Time-series and last-value queries over PostgreSQL: the reads that series-buckets.ts plans
 * and combines. As in SQLite, every query is a range on a primary key: `state_rollups (device_id,
 * attribute, bucket)` for numeric aggregates over whole minutes, `device_states (device_id,
 * time)` (only the partitions of the range are read) for the rest, `composite_state` (one row per
 * device) for last values.
 */
import type pg from 'pg';
import {
  BucketCells,
  checkSeriesQuery,
  FAMILY,
  type Family,
  type PartialRow,
  planAggregate,
  RAW_POINT_LIMIT,
} from '../series-buckets.js';
import type { Aggregation, CompositeValue, SeriesPoint, SeriesQuery } from '../types.js';
import { fromJsonb } from './nul.js';

// Raw states, one row per state and attribute. Parameters: $1 device, $2 origin, $3 resolution,
// $4 and $5 the time range, $6 the attributes (null: all). Integer division: bucket indexes.
const RAW_FROM = `FROM device_states AS s, jsonb_each(s.data) AS j
  WHERE s.device_id = $1 AND s.time BETWEEN $4 AND $5 AND ($6::text[] IS NULL OR j.key = ANY($6::text[]))`;
const RAW_BUCKET = '(s.time - $2::bigint) / $3::bigint';

const RAW_SQL: Record<Family, string> = {
  numeric: `SELECT ${RAW_BUCKET} AS b, j.key AS a, count(*) AS n, sum(j.value::float8) AS s,
      min(j.value::float8) AS mn, max(j.value::float8) AS mx
    ${RAW_FROM} AND jsonb_typeof(j.value) = 'number' GROUP BY 1, 2`,
  count: `SELECT ${RAW_BUCKET} AS b, j.key AS a, count(*) AS n ${RAW_FROM} GROUP BY 1, 2`,
  first: `SELECT DISTINCT ON (1, 2) ${RAW_BUCKET} AS b, j.key AS a, s.time AS t, j.value AS v ${RAW_FROM}
    ORDER BY 1, 2, s.time ASC`,
  last: `SELECT DISTINCT ON (1, 2) ${RAW_BUCKET} AS b, j.key AS a, s.time AS t, j.value AS v ${RAW_FROM}
    ORDER BY 1, 2, s.time DESC`,
};

// Rollups of one attribute ($6): whole minutes.
const ROLLUP_FROM = 'FROM state_rollups WHERE device_id = $1 AND attribute = $6 AND bucket BETWEEN $4 AND $5';
const ROLLUP_BUCKET = '(bucket - $2::bigint) / $3::bigint';

const ROLLUP_SQL: Record<Family, string> = {
  numeric: `SELECT ${ROLLUP_BUCKET} AS b, sum(count)::bigint AS n, sum(sum) AS s, min(min) AS mn, max(max) AS mx
    ${ROLLUP_FROM} GROUP BY 1`,
  count: `SELECT ${ROLLUP_BUCKET} AS b, sum(count)::bigint AS n ${ROLLUP_FROM} GROUP BY 1`,
  first: `SELECT DISTINCT ON (1) ${ROLLUP_BUCKET} AS b, first_time AS t, first_value AS v ${ROLLUP_FROM}
    ORDER BY 1, first_time ASC`,
  last: `SELECT DISTINCT ON (1) ${ROLLUP_BUCKET} AS b, last_time AS t, last_value AS v ${ROLLUP_FROM}
    ORDER BY 1, last_time DESC`,
};

// Buckets of exactly one minute: one rollup row per bucket, no grouping.
const MINUTE_SQL: Record<Family, string> = {
  numeric: `SELECT ${ROLLUP_BUCKET} AS b, count AS n, sum AS s, min AS mn, max AS mx ${ROLLUP_FROM}`,
  count: `SELECT ${ROLLUP_BUCKET} AS b, count AS n ${ROLLUP_FROM}`,
  first: `SELECT ${ROLLUP_BUCKET} AS b, first_time AS t, first_value AS v ${ROLLUP_FROM}`,
  last: `SELECT ${ROLLUP_BUCKET} AS b, last_time AS t, last_value AS v ${ROLLUP_FROM}`,
};

const STATES_SQL = `SELECT time, data FROM device_states WHERE device_id = $1 AND time BETWEEN $2 AND $3
  AND ($4::text[] IS NULL OR data ?| $4::text[]) ORDER BY time LIMIT $5`;

const KINDS_SQL = `SELECT e.key AS attribute, jsonb_typeof(e.value -> 'v') = 'number' AS numeric
  FROM composite_state, jsonb_each(state) AS e WHERE device_id = $1`;

const LAST_VALUES_SQL = `SELECT c.device_id, e.key AS attribute, e.value -> 'v' AS value,
    (e.value ->> 't')::bigint AS time
  FROM composite_state AS c, jsonb_each(c.state) AS e
  WHERE c.device_id = ANY($1::text[]) AND ($2::text[] IS NULL OR e.key = ANY($2::text[]))
  ORDER BY c.device_id, e.key COLLATE "C"`;

/** A row of an aggregate query: jsonb comes as text (the pool's type parsers), `a` only from raw reads. */
type Row = Omit<PartialRow, 'v'> & { a?: string; v?: unknown };

export class PostgresSeries {
  constructor(private readonly pool: pg.Pool) {}

  async query(q: SeriesQuery): Promise<Map<string, SeriesPoint[]>> {
    const out = new Map<string, SeriesPoint[]>();
    if (!checkSeriesQuery(q)) return out;
    for (const deviceId of new Set(q.deviceIds)) {
      const points = q.aggregation === 'NONE' ? await this.rawStates(deviceId, q) : await this.aggregate(deviceId, q);
      if (points.length > 0) out.set(deviceId, points);
    }
    return out;
  }

  async lastValues(
    deviceIds: string[],
    attributes: string[] | null,
  ): Promise<Map<string, Record<string, CompositeValue>>> {
    const out = new Map<string, Record<string, CompositeValue>>();
    if (deviceIds.length === 0 || attributes?.length === 0) return out;
    const { rows } = await this.pool.query<{ device_id: string; attribute: string; value: string; time: number }>(
      LAST_VALUES_SQL,
      [deviceIds, attributes],
    );
    for (const row of rows) {
      let values = out.get(row.device_id);
      if (values === undefined) {
        // No prototype: an attribute named __proto__ is a key like any other.
        values = Object.create(null) as Record<string, CompositeValue>;
        out.set(row.device_id, values);
      }
      values[row.attribute] = { value: fromJsonb(row.value), time: row.time };
    }
    return out;
  }

  /** NONE: the states in range, oldest first, with only the wanted attributes. */
  private async rawStates(deviceId: string, q: SeriesQuery): Promise<SeriesPoint[]> {
    const wanted = q.attributes && new Set(q.attributes);
    const { rows } = await this.pool.query<{ time: number; data: string }>(STATES_SQL, [
      deviceId,
      q.start,
      q.end,
      q.attributes,
      RAW_POINT_LIMIT,
    ]);
    return rows.map((row) => {
      const data = fromJsonb<Record<string, unknown>>(row.data);
      if (wanted) for (const key of Object.keys(data)) if (!wanted.has(key)) delete data[key];
      return { time: row.time, data };
    });
  }

  private async aggregate(deviceId: string, q: SeriesQuery): Promise<SeriesPoint[]> {
    const aggregation = q.aggregation as Exclude<Aggregation, 'NONE'>;
    const family = FAMILY[aggregation];
    const cells = new BucketCells(aggregation);
    const { rows: kinds } = await this.pool.query<{ attribute: string; numeric: boolean }>(KINDS_SQL, [deviceId]);
    const plan = planAggregate(q, kinds);
    // Rollup values are float8 (numbers); raw values are jsonb text.
    if (plan.rollups) {
      const { attributes, from, to, minute } = plan.rollups;
      const sql = (minute ? MINUTE_SQL : ROLLUP_SQL)[family];
      for (const attribute of attributes) {
        const { rows } = await this.pool.query<Row>(sql, [deviceId, q.start, q.resolution, from, to, attribute]);
        for (const row of rows) cells.merge(attribute, row);
      }
    }
    for (const { from, to, attributes } of plan.raw) {
      const { rows } = await this.pool.query<Row>(RAW_SQL[family], [
        deviceId,
        q.start,
        q.resolution,
        from,
        to,
        attributes,
      ]);
      for (const row of rows) {
        cells.merge(row.a as string, row.v === undefined ? row : { ...row, v: fromJsonb(row.v as string) });
      }
    }
    return cells.points(q.start, q.resolution);
  }
}
