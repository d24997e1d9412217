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

const NONE = -1;

/** A device's rows are found by walking its chain while it has at most this many; beyond, by attribute. */
const CHAIN_ROWS = 16;

// The numbers of row r sit at r * STRIDE + one of these.
const BUCKET = 0;
const COUNT = 1;
const SUM = 2;
const MIN = 3;
const MAX = 4;
const FIRST_TIME = 5;
const FIRST_VALUE = 6;
const LAST_TIME = 7;
const LAST_VALUE = 8;
const STRIDE = 9;

const grown = <T extends Int32Array | Float64Array>(array: T, length: number): T => {
  if (array.length >= length) return array;
  const bigger = new (array.constructor as new (n: number) => T)(Math.max(length, array.length * 2));
  bigger.set(array);
  return bigger;
};

export class RollupAccumulator {
  // Rows live in flat arrays, not an object per row: at fleet scale (a device reporting once a
  // minute) the accumulator held a map per device and attribute and an object per row, ~1,300
  // bytes per state that outlived a scavenge and grew the old generation until a full collection
  // (docs/benchmarks.md). Here a device costs one map entry, and its rows are linked in a chain
  // (usually one row per numeric attribute), walked on each add; a device with more than
  // CHAIN_ROWS rows also gets a map from attribute to the chain of that attribute's minutes, so a
  // state with thousands of attributes costs no more per value than one with two.
  private readonly slotOf = new Map<string, number>();
  private slotHead = new Int32Array(64);
  private slotRows = new Int32Array(64);
  private readonly wide = new Map<number, Map<string, number>>();
  private slots = 0;
  private deviceOf: string[] = [];
  private attributeOf: string[] = [];
  private nextOfDevice = new Int32Array(64);
  private nextOfAttribute = new Int32Array(64);
  private numbers = new Float64Array(64 * STRIDE);
  private rows = 0;

  /** How many (device, attribute, minute) rows are held. */
  get size(): number {
    return this.rows;
  }

  has(deviceId: string, attribute: string, bucket: number): boolean {
    const slot = this.slotOf.get(deviceId);
    return slot !== undefined && this.find(slot, attribute, bucket) !== NONE;
  }

  private find(slot: number, attribute: string, bucket: number): number {
    const numbers = this.numbers;
    if ((this.slotRows[slot] as number) > CHAIN_ROWS) {
      const byAttribute = this.wide.get(slot) as Map<string, number>;
      for (let r = byAttribute.get(attribute) ?? NONE; r !== NONE; r = this.nextOfAttribute[r] as number) {
        if (numbers[r * STRIDE + BUCKET] === bucket) return r;
      }
      return NONE;
    }
    for (let r = this.slotHead[slot] as number; r !== NONE; r = this.nextOfDevice[r] as number) {
      if (this.attributeOf[r] === attribute && numbers[r * STRIDE + BUCKET] === bucket) return r;
    }
    return NONE;
  }

  private slotFor(deviceId: string): number {
    let slot = this.slotOf.get(deviceId);
    if (slot === undefined) {
      slot = this.slots++;
      this.slotHead = grown(this.slotHead, this.slots);
      this.slotRows = grown(this.slotRows, this.slots);
      this.slotHead[slot] = NONE;
      this.slotRows[slot] = 0;
      this.slotOf.set(deviceId, slot);
    }
    return slot;
  }

  private newRow(slot: number, deviceId: string, attribute: string, bucket: number, time: number, value: number): void {
    const r = this.rows++;
    this.nextOfDevice = grown(this.nextOfDevice, this.rows);
    this.nextOfAttribute = grown(this.nextOfAttribute, this.rows);
    this.numbers = grown(this.numbers, this.rows * STRIDE);
    this.deviceOf[r] = deviceId;
    this.attributeOf[r] = attribute;
    this.nextOfDevice[r] = this.slotHead[slot] as number;
    this.slotHead[slot] = r;
    const o = r * STRIDE;
    const n = this.numbers;
    n[o + BUCKET] = bucket;
    n[o + COUNT] = 1;
    n[o + SUM] = value;
    n[o + MIN] = value;
    n[o + MAX] = value;
    n[o + FIRST_TIME] = time;
    n[o + FIRST_VALUE] = value;
    n[o + LAST_TIME] = time;
    n[o + LAST_VALUE] = value;
    const rows = (this.slotRows[slot] as number) + 1;
    this.slotRows[slot] = rows;
    if (rows <= CHAIN_ROWS) return;
    let byAttribute = this.wide.get(slot);
    if (byAttribute === undefined) {
      // The device just passed CHAIN_ROWS: its earlier rows join the attribute chains too.
      byAttribute = new Map();
      this.wide.set(slot, byAttribute);
      for (let q = this.nextOfDevice[r] as number; q !== NONE; q = this.nextOfDevice[q] as number) {
        this.linkAttribute(byAttribute, q);
      }
    }
    this.linkAttribute(byAttribute, r);
  }

  private linkAttribute(byAttribute: Map<string, number>, r: number): void {
    const attribute = this.attributeOf[r] as string;
    this.nextOfAttribute[r] = byAttribute.get(attribute) ?? NONE;
    byAttribute.set(attribute, r);
  }

  /** Adds one value at `time` (it must be a finite number; see `isRollupValue`). */
  add(deviceId: string, attribute: string, time: number, value: number): void {
    const bucket = minuteOf(time);
    const slot = this.slotFor(deviceId);
    const r = this.find(slot, attribute, bucket);
    if (r === NONE) {
      this.newRow(slot, deviceId, attribute, bucket, time, value);
      return;
    }
    const o = r * STRIDE;
    const n = this.numbers;
    n[o + COUNT] = (n[o + COUNT] as number) + 1;
    n[o + SUM] = (n[o + SUM] as number) + value;
    if (value < (n[o + MIN] as number)) n[o + MIN] = value;
    if (value > (n[o + MAX] as number)) n[o + MAX] = value;
    if (time < (n[o + FIRST_TIME] as number)) {
      n[o + FIRST_TIME] = time;
      n[o + FIRST_VALUE] = value;
    }
    if (time >= (n[o + LAST_TIME] as number)) {
      n[o + LAST_TIME] = time;
      n[o + LAST_VALUE] = value;
    }
  }

  /** Adds every finite number of `data` (a state's attributes) at `time`. */
  addState(deviceId: string, time: number, data: Record<string, unknown>): void {
    for (const attribute in data) {
      const value = data[attribute];
      if (isRollupValue(value)) this.add(deviceId, attribute, time, value);
    }
  }

  /** Row `r` (0 ≤ r < size) as an object of its own; the accumulator keeps no reference to it. */
  row(r: number): RollupRow {
    const o = r * STRIDE;
    const n = this.numbers;
    return {
      deviceId: this.deviceOf[r] as string,
      attribute: this.attributeOf[r] as string,
      bucket: n[o + BUCKET] as number,
      count: n[o + COUNT] as number,
      sum: n[o + SUM] as number,
      min: n[o + MIN] as number,
      max: n[o + MAX] as number,
      firstTime: n[o + FIRST_TIME] as number,
      firstValue: n[o + FIRST_VALUE] as number,
      lastTime: n[o + LAST_TIME] as number,
      lastValue: n[o + LAST_VALUE] as number,
    };
  }

  /** The rows in the order they were first added; they stay held until `clear`. */
  *values(): IterableIterator<RollupRow> {
    for (let r = 0; r < this.rows; r++) yield this.row(r);
  }

  /**
   * The rows' numbers (for `row`) in primary-key order (device, attribute, minute; strings
   * compared by UTF-16 code unit, which is SQLite's byte order for the ASCII ids and names ingest
   * accepts). Written in this order, consecutive upserts land on the same or neighbouring B-tree
   * pages; the order changes nothing else (each row is an additive upsert of its own key).
   */
  sortedIndexes(): Int32Array {
    const order = new Int32Array(this.rows);
    const attributeOf = this.attributeOf;
    const numbers = this.numbers;
    const byKey = (a: number, b: number): number => {
      const x = attributeOf[a] as string;
      const y = attributeOf[b] as string;
      if (x !== y) return x < y ? -1 : 1;
      return (numbers[a * STRIDE + BUCKET] as number) - (numbers[b * STRIDE + BUCKET] as number);
    };
    let n = 0;
    for (const deviceId of [...this.slotOf.keys()].sort()) {
      const slot = this.slotOf.get(deviceId) as number;
      const start = n;
      for (let r = this.slotHead[slot] as number; r !== NONE; r = this.nextOfDevice[r] as number) order[n++] = r;
      if (n - start > 1) order.subarray(start, n).sort(byKey);
    }
    return order;
  }

  /** The rows in primary-key order (see `sortedIndexes`). */
  sortedRows(): RollupRow[] {
    return Array.from(this.sortedIndexes(), (r) => this.row(r));
  }

  clear(): void {
    this.slotOf.clear();
    this.wide.clear();
    // The strings are dropped so they are not kept alive; the arrays keep their capacity.
    this.deviceOf.fill('', 0, this.rows);
    this.attributeOf.fill('', 0, this.rows);
    this.slots = 0;
    this.rows = 0;
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
