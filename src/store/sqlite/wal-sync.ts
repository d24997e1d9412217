/**
 * The group commit's sync, off the event loop. With `synchronous = FULL` SQLite syncs the
 * write-ahead log inside COMMIT, and better-sqlite3 being synchronous, the event loop stood still
 * for every sync: 1–5 ms per commit on this project's test machines, tens of milliseconds when
 * the disk is busy. The store commits a batch with `synchronous = NORMAL` (the log is written
 * but not synced) and then syncs the log file itself with an asynchronous `fdatasync` on libuv's
 * thread pool; the batch's promise, which the PUBACK or HTTP 200 waits for, resolves only after
 * that sync. Every commit written before a sync starts is on disk once it ends, so an
 * acknowledged state is exactly as durable as before.
 *
 * A caller may ask for the sync on its own thread instead (`sync(true)`): the store does for a
 * batch of commands alone, which nothing else waits on. The trip through the pool costs two
 * thread wake-ups (the pool's thread, then the event loop's), and on a busy two-CPU machine
 * that trip alone measured p99 3.3–3.7 ms with the log on tmpfs, where the sync itself is free
 * (docs/benchmarks.md, "k. REST command delivery").
 */
import { closeSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';

export class WalSync {
  private fd: number | undefined;
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;
  /** Syncs done (tests read it). */
  syncs = 0;

  constructor(private readonly path: string) {}

  /**
   * Resolves once everything written to the log before this call is on disk. With `here`, and
   * no sync under way, the sync runs on the calling thread (the event loop stops for it) and
   * has ended when this returns.
   */
  sync(here = false): Promise<void> {
    // A sync under way may have started before the caller's write: wait for the next one,
    // which every caller arriving meanwhile shares.
    if (this.queued) return this.queued;
    if (!this.running) return here ? this.syncHere() : this.start();
    const start = () => this.start();
    this.queued = this.running.then(start, start);
    return this.queued;
  }

  private syncHere(): Promise<void> {
    try {
      this.fd ??= openSync(this.path, 'r');
      fdatasyncSync(this.fd);
    } catch (err) {
      return Promise.reject(err);
    }
    this.syncs++;
    return Promise.resolve();
  }

  private start(): Promise<void> {
    this.queued = undefined;
    const run = new Promise<void>((resolve, reject) => {
      this.fd ??= openSync(this.path, 'r');
      fdatasync(this.fd, (err) => {
        if (err) reject(err);
        else {
          this.syncs++;
          resolve();
        }
      });
    });
    this.running = run;
    const done = () => {
      if (this.running === run) this.running = undefined;
    };
    run.then(done, done);
    return run;
  }

  /** Waits for a sync under way, then closes the file. */
  async close(): Promise<void> {
    await (this.queued ?? this.running)?.catch(() => {});
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
