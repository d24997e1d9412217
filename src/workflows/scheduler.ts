/**
 * Where workflow runs wait and when they start. Runs execute on the event loop that also takes
 * MQTT and REST traffic, and ingest comes first. Runs start in slices of about a millisecond,
 * after pending I/O (setImmediate); the part of a run that needs no I/O (most runs: conditions,
 * math, payload edits) runs inside the slice, so the time runs take is measured, not hoped for.
 * While the rest of the loop's work (ingest, REST, streams) keeps it busy more than half the
 * time, the loop is saturated: slices are then spaced out so runs take at most `share` of the
 * wall time, leaving the CPU to ingest (and to whatever else shares the machine) instead of
 * filling every idle moment. Otherwise slices follow each other and runs use what is free.
 *
 * Each flow has a lane: a bounded queue and at most `concurrency` runs in progress (a run waiting
 * on HTTP or a Delay holds its place). Lanes take turns one run at a time, so a flood of one
 * flow's triggers cannot starve the others; a trigger that finds its lane's queue full is
 * refused (the engine counts and logs it).
 */
import { performance } from 'node:perf_hooks';

export interface SchedulerOptions {
  /** Runs of one lane in progress at once. */
  concurrency: number;
  /** Runs waiting per lane. */
  maxWaiting: number;
  /** Share of the wall time runs may take while the loop is saturated (0–1). */
  share: number;
  /** Above this share of the wall time spent on other work, the loop counts as saturated. */
  saturatedAbove: number;
  /** How long a slice runs runs (ms); a run that waits on nothing is never cut. */
  sliceMs: number;
}

export const DEFAULT_SCHEDULER_OPTIONS: SchedulerOptions = {
  concurrency: 4,
  maxWaiting: 1_000,
  share: 0.07,
  saturatedAbove: 0.5,
  sliceMs: 1,
};

/** How often (ms) the loop's load is measured to decide whether runs are spaced out. */
const LOAD_WINDOW_MS = 50;

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
  /** `maxWaiting`: this lane's own queue bound, instead of the scheduler's. */
  constructor(readonly maxWaiting?: number) {}

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
  /** The loop's load, measured over windows of LOAD_WINDOW_MS: see `measure`. */
  private loopSaturated = false;
  private windowStart = performance.now();
  private windowLoad = performance.eventLoopUtilization();
  private runsMs = 0;
  /** The last slice's length and end: the pause after it while saturated. */
  private lastSliceMs = 0;
  private lastSliceEnd = 0;
  private idleWaiters: Array<() => void> = [];

  constructor(options: Partial<SchedulerOptions> = {}) {
    this.options = { ...DEFAULT_SCHEDULER_OPTIONS, ...options };
  }

  /** Whether a lane can take one more run. */
  hasRoom(lane: Lane): boolean {
    return !lane.closed && lane.waiting.size < (lane.maxWaiting ?? this.options.maxWaiting);
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

  /** Whether runs are being spaced out because other work saturates the loop (diagnostics, tests). */
  get saturated(): boolean {
    return this.loopSaturated;
  }

  /** Runs waiting or in progress. */
  get busy(): boolean {
    return this.ready.size > 0 || this.pending.size > 0 || this.scheduled;
  }

  /** Resolves once no run waits or is in progress. */
  idle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private notifyIdle(): void {
    if (this.busy || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Puts a lane in the ready list if it has a run to start and room for it. */
  private list(lane: Lane, schedule = true): void {
    if (!lane.listed && !lane.closed && lane.waiting.size > 0 && lane.running < this.options.concurrency) {
      lane.listed = true;
      this.ready.push(lane);
    }
    if (schedule) this.schedule();
  }

  private readonly slice = (): void => {
    // `scheduled` stays set while the slice runs: a job that queues more work (matching a state
    // queues the runs it fires) must not schedule the next slice; this one's end does, spaced.
    const start = performance.now();
    do {
      const lane = this.ready.shift();
      if (!lane) break;
      lane.listed = false;
      const job = lane.closed ? undefined : lane.waiting.shift();
      if (job) this.start(lane, job);
      this.list(lane, false);
    } while (performance.now() - start < this.options.sliceMs);
    const end = performance.now();
    this.scheduled = false;
    this.lastSliceMs = end - start;
    this.lastSliceEnd = end;
    this.measure(end, end - start);
    this.schedule();
    this.notifyIdle();
  };

  /** Whether the rest of the loop's work kept it busy more than `saturatedAbove` of the last window. */
  private measure(now: number, sliceMs: number): void {
    this.runsMs += sliceMs;
    const wall = now - this.windowStart;
    if (wall < LOAD_WINDOW_MS) return;
    const active = performance.eventLoopUtilization(this.windowLoad).active;
    this.loopSaturated = (active - this.runsMs) / wall > this.options.saturatedAbove;
    this.windowStart = now;
    this.windowLoad = performance.eventLoopUtilization();
    this.runsMs = 0;
  }

  /**
   * Schedules the next slice. While the loop is saturated it comes after a pause that gives the
   * last slice its share, counted from that slice's end, whoever asks: the end of a slice, a
   * new trigger, or a run that finished waiting.
   */
  private schedule(): void {
    if (this.scheduled || this.ready.size === 0) return;
    this.scheduled = true;
    if (!this.loopSaturated) {
      setImmediate(this.slice);
      return;
    }
    const { share } = this.options;
    const pause = (this.lastSliceMs * (1 - share)) / share - (performance.now() - this.lastSliceEnd);
    setTimeout(this.slice, Math.max(1, pause));
  }

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
        this.notifyIdle();
      });
    this.pending.add(done);
  }
}
