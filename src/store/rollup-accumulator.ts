/**
 * Minute rollups combined in memory: one partial aggregate per (device, numeric attribute,
 * minute). Pure logic, no SQL, shared by both backends. The SQLite store uses it twice: per
 * write batch, to combine the values of one minute before one synchronous upsert (backfill), and
 * as the long-lived accumulator of recent minutes that is merged into `state_rollups` every few
 * seconds (docs/decisions.md, State). The PostgreSQL store uses it per write batch only.
 *
 * The tie rules are those of the rollup upserts (sqlite/series.ts, postgres/batch.ts) and the
 * rebuild (sqlite/rollup-rebuild.ts):
 * `first` is the value at the smallest time, the earlier arrival on equal times; `last` is the
 * value at the largest time, the later arrival on equal times. Values must be added in arrival
 * order.
 */

/** The width of a rollup bucket. */
export const ROLLUP_MS = 60_000;

/**
 * A value whose minute starts at or after `minuteOf(now - ROLLUP_RECENT_MS)` (or lies in the
 * future) is "recent": it goes to the accumulator. Older values (backfill) are upserted at once.
 */
export const ROLLUP_RECENT_MS = 120_000;

/** The start of the minute that holds `time` (also before 1970). */
export const minuteOf = (time: number): number => time - (((time % ROLLUP_MS) + ROLLUP_MS) % ROLLUP_MS);

/** The first bucket that counts as recent at `now`. */
export const recentFrom = (now: number): number => minuteOf(now - ROLLUP_RECENT_MS);

/** The partial aggregate of one device, attribute and minute. */
export interface RollupRow {
  deviceId: string;
  attribute: string;
  bucket: number;
  count: number;
  sum: number;
  min: number;
  max: number;
  firstTime: number;
  firstValue: number;
  lastTime: number;
  lastValue: number;
}

/** A rollup-worthy value: a finite JSON number (booleans and numeric strings are not). */
export const isRollupValue = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);

type ByBucket = Map<number, RollupRow>;
type ByAttribute = Map<string, ByBucket>;

export class RollupAccumulator {
  // Nested maps (device, attribute, minute) rather than one map on a joined string key: the
  // ingest path adds one value per numeric attribute per state, and building and hashing a
  // string key costs several times the lookups.
  private readonly devices = new Map<string, ByAttribute>();
  private count = 0;

  /** How many (device, attribute, minute) rows are held. */
  get size(): number {
    return this.count;
  }

  has(deviceId: string, attribute: string, bucket: number): boolean {
    return this.devices.get(deviceId)?.get(attribute)?.has(bucket) ?? false;
  }

  private bucketsOf(deviceId: string, attribute: string): ByBucket {
    let attributes = this.devices.get(deviceId);
    if (attributes === undefined) {
      attributes = new Map();
      this.devices.set(deviceId, attributes);
    }
    let buckets = attributes.get(attribute);
    if (buckets === undefined) {
      buckets = new Map();
      attributes.set(attribute, buckets);
    }
    return buckets;
  }

  /** Adds one value at `time` (it must be a finite number; see `isRollupValue`). */
  add(deviceId: string, attribute: string, time: number, value: number): void {
    const bucket = minuteOf(time);
    const buckets = this.bucketsOf(deviceId, attribute);
    const r = buckets.get(bucket);
    if (r === undefined) {
      buckets.set(bucket, {
        deviceId,
        attribute,
        bucket,
        count: 1,
        sum: value,
        min: value,
        max: value,
        firstTime: time,
        firstValue: value,
        lastTime: time,
        lastValue: value,
      });
      this.count++;
      return;
    }
    r.count += 1;
    r.sum += value;
    if (value < r.min) r.min = value;
    if (value > r.max) r.max = value;
    if (time < r.firstTime) {
      r.firstTime = time;
      r.firstValue = value;
    }
    if (time >= r.lastTime) {
      r.lastTime = time;
      r.lastValue = value;
    }
  }

  /** Adds every finite number of `data` (a state's attributes) at `time`. */
  addState(deviceId: string, time: number, data: Record<string, unknown>): void {
    for (const attribute in data) {
      const value = data[attribute];
      if (isRollupValue(value)) this.add(deviceId, attribute, time, value);
    }
  }

  /** The rows, grouped by device and attribute; they stay held until `clear`. */
  *values(): IterableIterator<RollupRow> {
    for (const attributes of this.devices.values()) {
      for (const buckets of attributes.values()) yield* buckets.values();
    }
  }

  /**
   * The rows in primary-key order (device, attribute, minute; strings compared by UTF-16 code
   * unit, which is SQLite's byte order for the ASCII ids and names ingest accepts). Written in
   * this order, consecutive upserts land on the same or neighbouring B-tree pages; the order
   * changes nothing else (each row is an additive upsert of its own key).
   */
  sortedRows(): RollupRow[] {
    const rows: RollupRow[] = [];
    for (const deviceId of [...this.devices.keys()].sort()) {
      const attributes = this.devices.get(deviceId) as ByAttribute;
      for (const attribute of [...attributes.keys()].sort()) {
        const buckets = attributes.get(attribute) as ByBucket;
        const start = rows.length;
        for (const row of buckets.values()) rows.push(row);
        if (buckets.size > 1) {
          const own = rows.splice(start).sort((a, b) => a.bucket - b.bucket);
          for (const row of own) rows.push(row);
        }
      }
    }
    return rows;
  }

  clear(): void {
    this.devices.clear();
    this.count = 0;
  }
}

/**
 * Values waiting for their write batch to commit, before they may join an accumulator (a batch
 * that rolls back must leave nothing behind). Parallel arrays reused from batch to batch: the
 * ingest path allocates nothing here.
 */
export class RollupStage {
  private readonly deviceIds: string[] = [];
  private readonly attributes: string[] = [];
  private readonly times: number[] = [];
  private readonly values: number[] = [];
  private length = 0;

  get size(): number {
    return this.length;
  }

  push(deviceId: string, attribute: string, time: number, value: number): void {
    const i = this.length++;
    this.deviceIds[i] = deviceId;
    this.attributes[i] = attribute;
    this.times[i] = time;
    this.values[i] = value;
  }

  /** Adds the staged values to `acc` in the order they were staged, and empties the stage. */
  drainInto(acc: RollupAccumulator): void {
    for (let i = 0; i < this.length; i++) {
      acc.add(
        this.deviceIds[i] as string,
        this.attributes[i] as string,
        this.times[i] as number,
        this.values[i] as number,
      );
    }
    this.clear();
  }

  clear(): void {
    // The strings are dropped so they are not kept alive; the arrays keep their capacity.
    this.deviceIds.fill('', 0, this.length);
    this.attributes.fill('', 0, this.length);
    this.length = 0;
  }
}
