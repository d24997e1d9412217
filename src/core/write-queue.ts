/**
 * Group commit. Writes enqueued while a batch is open join it; the batch is committed in one
 * transaction on the next turn of the event loop (or as soon as the previous commit ends), and
 * every writer waits on the same promise. Under load a commit carries hundreds of states, so
 * durability costs one fsync per batch, not one per message.
 */
import { type Count, NO_COUNT, NO_OBSERVER, type Observer } from '../ops/instruments.js';
import { type Store, type WriteBatch, writeBatch } from '../store/types.js';

interface OpenBatch extends WriteBatch {
  size: number;
  committed: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function openBatch(): OpenBatch {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const committed = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A batch nobody awaits (QoS 0) must not become an unhandled rejection; failures are reported via onError.
  committed.catch(() => {});
  return { ...writeBatch(), size: 0, committed, resolve, reject };
}

/** What the group commit reports (docs/operations.md, "Metrics"). */
export interface WriteQueueInstruments {
  /** Writers (enqueue calls) joined in each committed batch. */
  batchSize: Observer;
  /** Seconds each successful commit took. */
  commitSeconds: Observer;
  commitFailures: Count;
  statesStored: Count;
  /** Accepted messages a device sent for another device (a gateway for its peripheral). */
  peripheralMessages: Count;
}

export const NO_WRITE_QUEUE_INSTRUMENTS: WriteQueueInstruments = {
  batchSize: NO_OBSERVER,
  commitSeconds: NO_OBSERVER,
  commitFailures: NO_COUNT,
  statesStored: NO_COUNT,
  peripheralMessages: NO_COUNT,
};

export interface WriteQueueOptions {
  /** Called after each successful commit, in commit order. */
  onCommitted?: (batch: WriteBatch) => void;
  onError?: (err: unknown) => void;
  instruments?: WriteQueueInstruments;
}

export class WriteQueue {
  private current: OpenBatch | null = null;
  private running: Promise<void> | null = null;
  private scheduled = false;
  private failed = false;
  private readonly instruments: WriteQueueInstruments;
  /** Commits so far and the states they carried: the benchmark reads them. */
  readonly stats = { commits: 0, states: 0, maxBatch: 0 };

  constructor(
    private readonly store: Store,
    private readonly options: WriteQueueOptions = {},
  ) {
    this.instruments = options.instruments ?? NO_WRITE_QUEUE_INSTRUMENTS;
  }

  /** True when the last commit failed; false again once one succeeds (readiness, docs/operations.md). */
  get lastCommitFailed(): boolean {
    return this.failed;
  }

  /** Adds writes to the open batch; resolves once they are durable. */
  enqueue(part: Partial<WriteBatch>): Promise<void> {
    const batch = this.current ?? this.open();
    if (part.states) for (const s of part.states) batch.states.push(s);
    if (part.reports) for (const r of part.reports) batch.reports.push(r);
    if (part.connections) for (const c of part.connections) batch.connections.push(c);
    if (part.logs) for (const l of part.logs) batch.logs.push(l);
    if (part.commands) for (const c of part.commands) batch.commands.push(c);
    batch.size++;
    return batch.committed;
  }

  /** Resolves when everything enqueued so far is committed (or failed). */
  async drain(): Promise<void> {
    while (this.current || this.running) {
      if (this.running) await this.running;
      else await this.flush();
    }
  }

  private open(): OpenBatch {
    this.current = openBatch();
    this.schedule();
    return this.current;
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.running) return this.running;
    const batch = this.current;
    if (!batch) return;
    this.current = null;
    this.running = this.commit(batch);
    try {
      await this.running;
    } finally {
      this.running = null;
      if (this.current) this.schedule();
    }
  }

  private async commit(batch: OpenBatch): Promise<void> {
    const started = performance.now();
    try {
      await this.store.applyBatch(batch);
      this.failed = false;
      this.record(batch, (performance.now() - started) / 1000);
      this.stats.commits++;
      this.stats.states += batch.states.length;
      this.stats.maxBatch = Math.max(this.stats.maxBatch, batch.size);
      batch.resolve();
      this.options.onCommitted?.(batch);
    } catch (err) {
      this.failed = true;
      this.instruments.commitFailures.inc();
      batch.reject(err);
      this.options.onError?.(err);
    }
  }

  private record(batch: OpenBatch, seconds: number): void {
    const { instruments } = this;
    instruments.commitSeconds.observe(seconds);
    instruments.batchSize.observe(batch.size);
    instruments.statesStored.inc(batch.states.length);
    let forOthers = 0;
    for (const report of batch.reports) if (report.deviceId !== report.reportedBy) forOthers++;
    if (forOthers > 0) instruments.peripheralMessages.inc(forOthers);
  }
}
