/**
 * Where workflow runs wait and when they start. Runs execute on the event loop that also takes
 * MQTT and REST traffic, so ingest comes first: while sockets keep the loop busy, runs get a
 * bounded share of its time (`share`), and all of it when nothing else is waiting. Runs start in
 * slices after pending I/O (setImmediate), and the part of a run that needs no I/O (most runs:
 * conditions, math, payload edits) runs inside the slice, so the share is measured, not hoped for.
 *
 * Each flow has a lane: a bounded queue and at most `concurrency` runs in progress (a run waiting
 * on HTTP or a Delay holds its place). Lanes take turns one run at a time, so a flood of one
 * flow's triggers cannot starve the others; a trigger that finds its lane's queue full is
 * refused (the engine counts and logs it).
 */

export interface SchedulerOptions {
  /** Runs of one lane in progress at once. */
  concurrency: number;
  /** Runs waiting per lane. */
  maxWaiting: number;
  /** Share of the event loop's time runs may take while other work is waiting (0–1). */
  share: number;
  /** A slice never ends before this long (ms), so runs progress under any load. */
  minSliceMs: number;
  /** A slice never lasts longer than this (ms), so a waiting socket is served soon. */
  maxSliceMs: number;
}

export const DEFAULT_SCHEDULER_OPTIONS: SchedulerOptions = {
  concurrency: 4,
  maxWaiting: 1_000,
  share: 0.1,
  minSliceMs: 0.1,
  maxSliceMs: 2,
};

/**
 * A job runs one workflow run: it answers nothing when the run finished without waiting, or a
 * promise of its end.
 */
export type Job = () => Promise<void> | undefined;

/** A first-in first-out queue without the cost of `Array.shift` on long queues. */
class Fifo<T> {
  private items: Array<T | undefined> = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    // Drop the consumed front once it is most of the array.
    if (this.head > 1_024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  clear(): void {
    this.items = [];
    this.head = 0;
  }
}

/** One flow's queue and runs in progress. */
export class Lane {
  running = 0;
  readonly waiting = new Fifo<Job>();
  /** In the scheduler's ready list. */
  listed = false;
  closed = false;
}

export class RunScheduler {
  private readonly options: SchedulerOptions;
  /** Lanes with a waiting run and a free place, in turn. */
  private readonly ready = new Fifo<Lane>();
  /** Runs waiting on I/O (HTTP, Delay, storage). */
  private readonly pending = new Set<Promise<void>>();
  private scheduled = false;
  private lastSliceEnd = Number.NEGATIVE_INFINITY;

  constructor(options: Partial<SchedulerOptions> = {}) {
    this.options = { ...DEFAULT_SCHEDULER_OPTIONS, ...options };
  }

  /** Whether a lane can take one more run. */
  hasRoom(lane: Lane): boolean {
    return !lane.closed && lane.waiting.size < this.options.maxWaiting;
  }

  /** Queues a run; the caller checked `hasRoom`. */
  submit(lane: Lane, job: Job): void {
    if (lane.closed) return;
    lane.waiting.push(job);
    this.list(lane);
  }

  /** The lane's flow stopped: its waiting runs are dropped; runs in progress finish. */
  close(lane: Lane): void {
    lane.closed = true;
    lane.waiting.clear();
  }

  /** Runs waiting or in progress. */
  get busy(): boolean {
    return this.ready.size > 0 || this.pending.size > 0 || this.scheduled;
  }

  /** Resolves once no run waits or is in progress. */
  async idle(): Promise<void> {
    while (this.busy) {
      if (this.pending.size > 0) await Promise.allSettled([...this.pending]);
      else await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private list(lane: Lane): void {
    if (!lane.listed && !lane.closed && lane.waiting.size > 0 && lane.running < this.options.concurrency) {
      lane.listed = true;
      this.ready.push(lane);
    }
    if (!this.scheduled && this.ready.size > 0) {
      this.scheduled = true;
      setImmediate(this.slice);
    }
  }

  private readonly slice = (): void => {
    this.scheduled = false;
    const { share, minSliceMs, maxSliceMs } = this.options;
    const start = performance.now();
    // What the loop did since the last slice is what runs must leave room for.
    const others = start - this.lastSliceEnd;
    const budget = Math.min(maxSliceMs, Math.max(minSliceMs, (others * share) / (1 - share)));
    do {
      const lane = this.ready.shift();
      if (!lane) break;
      lane.listed = false;
      const job = lane.closed ? undefined : lane.waiting.shift();
      if (job) this.start(lane, job);
      this.list(lane);
    } while (performance.now() - start < budget);
    this.lastSliceEnd = performance.now();
    if (!this.scheduled && this.ready.size > 0) {
      this.scheduled = true;
      setImmediate(this.slice);
    }
  };

  private start(lane: Lane, job: Job): void {
    lane.running++;
    let waiting: Promise<void> | undefined;
    try {
      waiting = job();
    } catch {
      // A job records its own failures; nothing may escape into the scheduler.
    }
    if (!waiting) {
      lane.running--;
      return;
    }
    const done: Promise<void> = waiting
      .catch(() => {})
      .finally(() => {
        lane.running--;
        this.pending.delete(done);
        this.list(lane);
      });
    this.pending.add(done);
  }
}
