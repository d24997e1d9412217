/**
 * What a component is handed to count with (docs/operations.md, "Metrics"). Components see only
 * these two shapes, never the metrics library: the hot path adds to a number or observes one,
 * allocates nothing, and the registry reads the numbers when it is scraped (src/ops/metrics.ts).
 * A component built without instruments (library use, unit tests) counts into nothing.
 */

/** A monotonic count. */
export interface Count {
  inc(by?: number): void;
}

/** A distribution (a histogram): one observation per event. */
export interface Observer {
  observe(value: number): void;
}

/** A count kept as a plain number, read at scrape time. */
export class Tally implements Count {
  value = 0;

  inc(by = 1): void {
    this.value += by;
  }
}

export const NO_COUNT: Count = { inc() {} };
export const NO_OBSERVER: Observer = { observe() {} };

/** One count per key, each counting into nothing. */
export function noCounts<K extends string>(keys: readonly K[]): Record<K, Count> {
  return Object.fromEntries(keys.map((k) => [k, NO_COUNT])) as Record<K, Count>;
}
