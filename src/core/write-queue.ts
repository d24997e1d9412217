/**
 * Group commit. Writes enqueued while a batch is open join it; the batch is committed in one
 * transaction on the next turn of the event loop (or as soon as a commit ends), and every writer
 * waits on the same promise. Under load a commit carries hundreds of states, so durability costs
 * one fsync per batch, not one per message.
 *
 * A store may take more than one commit at a time (`Store.maxCommitsInFlight`: SQLite 1,
 * PostgreSQL 2). The open batch then starts while others are in flight, on three rules: it
 * touches no device an in-flight batch touches (else it waits for that one to end, and keeps
 * gathering writes meanwhile), so one device's writes are applied in arrival order; batches
 * resolve in the order they were opened (a batch committed early waits for the ones before it
 * to resolve or fail), so acknowledgements follow arrival order; and each resolves only once
 * durable, as with one in flight.
 */
import { type Count, NO_COUNT, NO_OBSERVER, type Observer } from '../ops/instruments.js';
import { type Store, type WriteBatch, writeBatch } from '../store/types.js';

interface OpenBatch extends WriteBatch {
  size: number;
  /** Every device the batch writes for (states, reports, connection changes, logs, commands). */
  devices: Set<string>;
  committed: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A batch handed to the store: settled once it and every batch before it are resolved or failed. */
interface InFlight {
  batch: OpenBatch;
  /** Whether the store is done with it (its devices are free for the next batch). */
  applied: boolean;
  settled: Promise<void>;
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
  return { ...writeBatch(), size: 0, devices: new Set(), committed, resolve, reject };
}

/** Appends a writer's rows to the open batch and notes the devices they write for. */
function join<T extends { deviceId: string }>(into: T[], rows: T[] | undefined, devices: Set<string>): void {
  if (!rows) return;
  for (const row of rows) {
    into.push(row);
    devices.add(row.deviceId);
  }
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
  /** Batches handed to the store and not yet settled, oldest first. */
  private readonly inFlight: InFlight[] = [];
  /** The last batch handed to the store: the next one resolves after it. */
  private tail: Promise<void> = Promise.resolve();
  private scheduled = false;
  private failed = false;
  private readonly maxInFlight: number;
  private readonly instruments: WriteQueueInstruments;
  /** Commits so far and the states they carried: the benchmark reads them. */
  readonly stats = { commits: 0, states: 0, maxBatch: 0 };

  constructor(
    private readonly store: Store,
    private readonly options: WriteQueueOptions = {},
  ) {
    this.instruments = options.instruments ?? NO_WRITE_QUEUE_INSTRUMENTS;
    this.maxInFlight = Math.max(1, Math.floor(store.maxCommitsInFlight ?? 1));
  }

  /** True when the last commit failed; false again once one succeeds (readiness, docs/operations.md). */
  get lastCommitFailed(): boolean {
    return this.failed;
  }

  /** Adds writes to the open batch; resolves once they are durable. */
  enqueue(part: Partial<WriteBatch>): Promise<void> {
    const batch = this.current ?? this.open();
    join(batch.states, part.states, batch.devices);
    join(batch.reports, part.reports, batch.devices);
    join(batch.connections, part.connections, batch.devices);
    join(batch.logs, part.logs, batch.devices);
    join(batch.commands, part.commands, batch.devices);
    batch.size++;
    return batch.committed;
  }

  /** Resolves when everything enqueued so far is committed (or failed). */
  async drain(): Promise<void> {
    while (this.current || this.inFlight.length > 0) {
      if (!this.startNext()) await this.tail;
    }
  }

  private open(): OpenBatch {
    this.current = openBatch();
    this.schedule();
    return this.current;
  }

  private schedule(): void {
    if (this.scheduled || !this.canStart()) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.startNext();
    });
  }

  /** Whether the open batch may go to the store now: a free slot, and no device of it in the store. */
  private canStart(): boolean {
    const batch = this.current;
    if (!batch) return false;
    let committing = 0;
    for (const other of this.inFlight) {
      // A batch the store is done with (waiting for its turn to resolve) holds neither.
      if (other.applied) continue;
      if (++committing >= this.maxInFlight) return false;
      for (const device of batch.devices) if (other.batch.devices.has(device)) return false;
    }
    return true;
  }

  /** Hands the open batch to the store when it may go; returns whether it did. */
  private startNext(): boolean {
    if (!this.canStart()) return false;
    const batch = this.current as OpenBatch;
    this.current = null;
    const started = performance.now();
    const applied = this.store.applyBatch(batch).then(
      () => ({ ok: true as const, seconds: (performance.now() - started) / 1000 }),
      (err: unknown) => ({ ok: false as const, err }),
    );
    const entry: InFlight = { batch, applied: false, settled: this.settle(batch, applied, this.tail) };
    void applied.then(() => {
      entry.applied = true;
      this.schedule();
    });
    entry.settled = entry.settled.then(() => {
      this.inFlight.splice(this.inFlight.indexOf(entry), 1);
      this.schedule();
    });
    this.tail = entry.settled;
    this.inFlight.push(entry);
    return true;
  }

  /** Resolves or rejects the batch's writers once the store is done with it and every batch before it settled. */
  private async settle(
    batch: OpenBatch,
    applied: Promise<{ ok: true; seconds: number } | { ok: false; err: unknown }>,
    before: Promise<void>,
  ): Promise<void> {
    const outcome = await applied;
    await before;
    try {
      if (outcome.ok) this.succeeded(batch, outcome.seconds);
      else this.failedBatch(batch, outcome.err);
    } catch (err) {
      // A listener that throws (onCommitted) must not hold up the batches after this one.
      this.options.onError?.(err);
    }
  }

  private succeeded(batch: OpenBatch, seconds: number): void {
    this.failed = false;
    this.record(batch, seconds);
    this.stats.commits++;
    this.stats.states += batch.states.length;
    this.stats.maxBatch = Math.max(this.stats.maxBatch, batch.size);
    batch.resolve();
    this.options.onCommitted?.(batch);
  }

  private failedBatch(batch: OpenBatch, err: unknown): void {
    this.failed = true;
    this.instruments.commitFailures.inc();
    batch.reject(err);
    this.options.onError?.(err);
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
