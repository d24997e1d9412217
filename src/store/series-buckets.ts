/**
 * The backend-neutral half of time-series queries: which parts of a query the minute rollups
 * answer and which the raw states do (`planAggregate`), and how the partial aggregates those
 * reads return combine into buckets (`BucketCells`). Each backend runs the reads in its own SQL.
 */
import { minuteOf, ROLLUP_MS } from './rollup-accumulator.js';
import type { Aggregation, SeriesPoint, SeriesQuery } from './types.js';

/** NONE answers at most this many raw states per device, the oldest first. */
export const RAW_POINT_LIMIT = 10_000;

/** How partial results of one bucket and attribute combine. */
export type Family = 'numeric' | 'count' | 'first' | 'last';

export const FAMILY: Record<Exclude<Aggregation, 'NONE'>, Family> = {
  MIN: 'numeric',
  MAX: 'numeric',
  MEAN: 'numeric',
  SUM: 'numeric',
  COUNT: 'count',
  FIRST: 'first',
  LAST: 'last',
};

export function mapFamilies<T>(fn: (family: Family) => T): Record<Family, T> {
  return { numeric: fn('numeric'), count: fn('count'), first: fn('first'), last: fn('last') };
}

/**
 * One partial aggregate read from the store: bucket index `b` (0 at the query's start), and
 * the fields of its family: count, sum, min, max, or the time and (decoded) value of the first
 * or last state.
 */
export interface PartialRow {
  b: number;
  n?: number;
  s?: number;
  mn?: number;
  mx?: number;
  t?: number;
  v?: unknown;
}

/** A partial aggregate of one bucket and attribute (only the fields of its family are set). */
interface Cell {
  n: number;
  s: number;
  mn: number;
  mx: number;
  t: number;
  v: unknown;
}

/** The buckets of one device's answer, filled from partial rows in any order. */
export class BucketCells {
  private readonly family: Family;
  private readonly cells = new Map<number, Map<string, Cell>>();

  constructor(private readonly aggregation: Exclude<Aggregation, 'NONE'>) {
    this.family = FAMILY[aggregation];
  }

  merge(attribute: string, row: PartialRow): void {
    let bucket = this.cells.get(row.b);
    if (bucket === undefined) {
      bucket = new Map();
      this.cells.set(row.b, bucket);
    }
    const cell = bucket.get(attribute);
    if (cell === undefined) {
      bucket.set(attribute, {
        n: row.n ?? 0,
        s: row.s ?? 0,
        mn: row.mn ?? Number.NaN,
        mx: row.mx ?? Number.NaN,
        t: row.t ?? 0,
        v: row.v,
      });
      return;
    }
    switch (this.family) {
      case 'numeric':
        cell.n += row.n ?? 0;
        cell.s += row.s ?? 0;
        cell.mn = Math.min(cell.mn, row.mn ?? Number.POSITIVE_INFINITY);
        cell.mx = Math.max(cell.mx, row.mx ?? Number.NEGATIVE_INFINITY);
        break;
      case 'count':
        cell.n += row.n ?? 0;
        break;
      case 'first':
        if ((row.t ?? 0) < cell.t) [cell.t, cell.v] = [row.t ?? 0, row.v];
        break;
      case 'last':
        if ((row.t ?? 0) >= cell.t) [cell.t, cell.v] = [row.t ?? 0, row.v];
        break;
    }
  }

  /** The buckets in time order; bucket `b` starts at `start + b * resolution`. */
  points(start: number, resolution: number): SeriesPoint[] {
    const buckets = [...this.cells.keys()].sort((a, b) => a - b);
    return buckets.map((b) => {
      const data: Record<string, unknown> = Object.create(null);
      for (const [attribute, cell] of this.cells.get(b) ?? []) data[attribute] = this.finish(cell);
      return { time: start + b * resolution, data };
    });
  }

  private finish(cell: Cell): unknown {
    switch (this.aggregation) {
      case 'MIN':
        return cell.mn;
      case 'MAX':
        return cell.mx;
      case 'SUM':
        return cell.s;
      case 'MEAN':
        return cell.s / cell.n;
      case 'COUNT':
        return cell.n;
      case 'FIRST':
      case 'LAST':
        return cell.v;
    }
  }
}

/** The reads that answer one device's aggregate query. */
export interface AggregatePlan {
  /** Whole minutes of these (numeric) attributes from the rollups; `minute`: one rollup row per bucket. */
  rollups?: { attributes: string[]; from: number; to: number; minute: boolean };
  /** Ranges of raw states (inclusive bounds); `attributes` null: every attribute. */
  raw: Array<{ from: number; to: number; attributes: string[] | null }>;
}

/**
 * Splits a query: minute rollups fit the buckets only when every bucket is a whole number of
 * minutes starting on a minute. Then whole minutes of numeric attributes come from the rollups,
 * the minute holding `end` when `end` cuts it from the raw states (at most one minute of them),
 * and other attributes (FIRST, LAST and COUNT also take strings, booleans, objects) from the raw
 * states. `kinds` tells which attributes are numbers: an attribute keeps its data type, so its
 * newest value (in the composite state) tells; attributes never reported are absent.
 */
export function planAggregate(
  q: SeriesQuery,
  kinds: Iterable<{ attribute: string; numeric: boolean }>,
  useRollups = true,
): AggregatePlan {
  const aligned = q.resolution % ROLLUP_MS === 0 && minuteOf(q.start) === q.start;
  if (!useRollups || !aligned) return { raw: [{ from: q.start, to: q.end, attributes: q.attributes }] };
  const numeric: string[] = [];
  const other: string[] = [];
  const wanted = q.attributes && new Set(q.attributes);
  for (const { attribute, numeric: isNumber } of kinds) {
    if (!wanted || wanted.has(attribute)) (isNumber ? numeric : other).push(attribute);
  }
  const plan: AggregatePlan = { raw: [] };
  const lastWholeMinute = q.end + 1 - ROLLUP_MS;
  const tail = Math.max(q.start, minuteOf(q.end + 1));
  if (numeric.length > 0 && lastWholeMinute >= q.start) {
    plan.rollups = { attributes: numeric, from: q.start, to: lastWholeMinute, minute: q.resolution === ROLLUP_MS };
  }
  if (numeric.length > 0 && tail <= q.end) plan.raw.push({ from: tail, to: q.end, attributes: numeric });
  if (FAMILY[q.aggregation as Exclude<Aggregation, 'NONE'>] !== 'numeric' && other.length > 0) {
    plan.raw.push({ from: q.start, to: q.end, attributes: other });
  }
  return plan;
}

/** Throws unless the query's resolution can number buckets; returns false when nothing can match. */
export function checkSeriesQuery(q: SeriesQuery): boolean {
  if (q.end < q.start || q.attributes?.length === 0) return false;
  if (q.aggregation !== 'NONE' && !(Number.isSafeInteger(q.resolution) && q.resolution > 0)) {
    throw new RangeError(`resolution must be a positive integer of ms, got ${q.resolution}`);
  }
  return true;
}
