/**
 * WAL checkpoints on a worker thread. A checkpoint copies the pages that commits appended to the
 * write-ahead log back into the database file and syncs it; SQLite runs one on the committing
 * connection whenever the log passes `wal_autocheckpoint` pages, so with the default (1,000
 * pages) a group commit every so often also paid for a checkpoint, 10–100 ms at fleet scale,
 * with the event loop stopped. Here a second connection, on its own thread, runs PASSIVE
 * checkpoints (they never block a writer, and a writer never blocks them) while the server's
 * connection keeps a much higher `wal_autocheckpoint` as a fallback should the worker fall behind
 * or stop. Durability is unchanged: a commit is durable once its log frames are synced, which
 * the committing connection still does itself (synchronous = FULL).
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** The server's connection checkpoints by itself only past this many log pages (4 KiB each). */
export const FALLBACK_AUTOCHECKPOINT_PAGES = 16_000;

/** At most one checkpoint is asked for this often while commits keep coming. */
export const CHECKPOINT_INTERVAL_MS = 200;

/**
 * Writes other than the group commit (creating devices in bulk, say) do not ask for checkpoints;
 * one is asked for this often anyway, so they are not left to the fallback. Cheap when the log
 * holds nothing new.
 */
export const CHECKPOINT_IDLE_MS = 1_000;

/** What the worker last reported (PRAGMA wal_checkpoint). */
export interface CheckpointResult {
  /** Pages in the log when the checkpoint ran. */
  log: number;
  /** Pages of the log now in the database file. */
  checkpointed: number;
}

// CommonJS, evaluated in the worker; the driver's path comes from this module's resolution.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.filename, { fileMustExist: true });
db.pragma('synchronous = FULL');
parentPort.on('message', (message) => {
  if (message === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    const [row] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ ok: true, log: row.log, checkpointed: row.checkpointed });
  } catch (err) {
    parentPort.postMessage({ ok: false, error: String(err && err.message ? err.message : err) });
  }
});
`;

type Reply = { ok: true; log: number; checkpointed: number } | { ok: false; error: string };

export class Checkpointer {
  private readonly worker: Worker;
  private inFlight = false;
  /** A commit happened since the last checkpoint was asked for. */
  private wanted = false;
  private lastAsked = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private readonly idle: NodeJS.Timeout;
  private stopped = false;
  private readonly exited: Promise<void>;
  /** Checkpoints completed and the last one's result (tests and diagnostics read them). */
  readonly stats: { checkpoints: number; failures: number; last: CheckpointResult | undefined } = {
    checkpoints: 0,
    failures: 0,
    last: undefined,
  };

  constructor(
    filename: string,
    private readonly onError: (err: unknown) => void,
  ) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    // No flags of the process: `--input-type=module` (a script given with -e) would make the
    // CommonJS source above a module, where `require` does not exist.
    this.worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { filename, driver } });
    this.worker.unref();
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('message', (reply: Reply) => {
      this.inFlight = false;
      if (this.wanted) this.schedule();
      if (reply.ok) {
        this.stats.checkpoints++;
        this.stats.last = { log: reply.log, checkpointed: reply.checkpointed };
      } else {
        this.stats.failures++;
        this.onError(new Error(`background checkpoint failed: ${reply.error}`));
      }
    });
    this.idle = setInterval(() => this.poke(), CHECKPOINT_IDLE_MS);
    this.idle.unref();
    this.worker.on('error', (err) => {
      // The fallback autocheckpoint of the server's connection takes over.
      this.stopped = true;
      this.onError(err);
    });
  }

  /**
   * Called after each commit: a checkpoint is asked for at once, or, when one runs or was asked
   * for less than CHECKPOINT_INTERVAL_MS ago, as soon as that allows.
   */
  poke(): void {
    this.wanted = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped || this.inFlight || this.timer !== undefined) return;
    const wait = this.lastAsked + CHECKPOINT_INTERVAL_MS - performance.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, wait);
      this.timer.unref();
      return;
    }
    this.wanted = false;
    this.inFlight = true;
    this.lastAsked = performance.now();
    this.worker.postMessage('checkpoint');
  }

  /** Closes the worker's connection and ends the thread (before the server's connection closes). */
  async close(): Promise<void> {
    clearInterval(this.idle);
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.stopped) {
      this.stopped = true;
      this.worker.postMessage('close');
    }
    // Unreferenced while it runs, so that it never keeps a process alive; while closing it must,
    // or a process with nothing else to do would end before the store has closed.
    this.worker.ref();
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), 10_000).unref());
    if ((await Promise.race([this.exited, timeout])) === 'timeout') await this.worker.terminate();
  }
}
