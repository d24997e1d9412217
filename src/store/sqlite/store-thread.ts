/**
 * The SQLite store on a thread of its own. better-sqlite3 is synchronous, so with the store on
 * the event loop every page SQLite reads or writes there can stop the server: a page the kernel
 * has dropped from its cache is read back from disk, a log page that shares a disk block with
 * an older one is read before it is written, and a checkpoint syncs the file. Measured at fleet
 * scale (docs/benchmarks.md, "Where the event loop waits on the disk"), those waits, not the
 * CPU, made the longest stops of the event loop. Here the store (sqlite-store.ts, unchanged)
 * runs on a worker thread and the server talks to it through the same `Store` interface: every
 * call is a message, answered when the store's own promise settles, in the order the calls were
 * made. What the store holds in memory (rollups, reports) lives on that thread with it.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Store, WriteBatch } from '../types.js';
import type { SqliteStoreSettings } from './sqlite-store.js';

/** What the thread opens: as `openSqliteStore`, without the settings that are functions. */
export type SqliteStoreThreadOptions = ({ dataDir: string } | { filename: string }) &
  Pick<SqliteStoreSettings, 'rollupFlushMs' | 'rollupSliceMs' | 'backgroundCheckpoints' | 'shared'> &
  Pick<SqliteStoreSettings, 'onCheckpointError' | 'onRollupFlushError'>;

/** `Store.maxCommitsInFlight` of the store on its thread. */
export const THREAD_COMMITS_IN_FLIGHT = 2;

/** How long the thread may take to end once its store has closed. */
const CLOSE_GRACE_MS = 5_000;

/** An error as it crosses the thread boundary: structured cloning keeps no own properties. */
export interface ErrorData {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

export type ThreadRequest = { id: number; method: string; args: unknown[] };

export type ThreadReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: ErrorData }
  | { opened: true }
  | { opened: false; error: ErrorData }
  | { event: 'checkpointFailed' | 'rollupFlushFailed'; error: ErrorData };

export function errorData(err: unknown): ErrorData {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return {
      name: err.name,
      message: err.message,
      ...(typeof code === 'string' ? { code } : {}),
      ...(err.stack ? { stack: err.stack } : {}),
    };
  }
  return { name: 'Error', message: String(err) };
}

export function errorFrom(data: ErrorData): Error {
  const Kind = data.name === 'RangeError' ? RangeError : data.name === 'TypeError' ? TypeError : Error;
  const err = new Kind(data.message);
  if (data.name !== err.name) err.name = data.name;
  if (data.code !== undefined) Object.assign(err, { code: data.code });
  if (data.stack !== undefined) err.stack = data.stack;
  return err;
}

/**
 * The worker's script: next to this module once built. Tests run this module from its
 * TypeScript source, which a worker cannot load; they run after the build (`pretest`), so the
 * built script is used from `dist/`.
 */
function workerScript(): URL {
  const beside = new URL('./store-thread-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(beside))) return beside;
  const built = new URL('../../../dist/src/store/sqlite/store-thread-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(built))) return built;
  throw new Error('the store thread needs the build: run `npm run build` first');
}

function batchLists({ states, reports, connections, logs, commands }: WriteBatch): WriteBatch {
  return { states, reports, connections, logs, commands };
}

/** Opens the SQLite store on a worker thread; resolves once it is open (migrated, recovered). */
export async function openSqliteStoreThread(options: SqliteStoreThreadOptions): Promise<Store> {
  const { onCheckpointError, onRollupFlushError, ...settings } = options;
  const worker = new Worker(workerScript(), { workerData: settings });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  let nextId = 0;
  let failure: Error | undefined;
  const exited = new Promise<number>((resolve) => worker.once('exit', resolve));

  const failAll = (err: Error): void => {
    failure ??= err;
    for (const { reject } of pending.values()) reject(err);
    pending.clear();
  };

  const opened = new Promise<void>((resolve, reject) => {
    worker.on('message', (reply: ThreadReply) => {
      if ('opened' in reply) {
        if (reply.opened) resolve();
        else reject(errorFrom(reply.error));
        return;
      }
      if ('event' in reply) {
        const err = errorFrom(reply.error);
        const report = reply.event === 'checkpointFailed' ? onCheckpointError : onRollupFlushError;
        if (report) report(err);
        else console.error(`store thread: ${reply.event}:`, err);
        return;
      }
      const call = pending.get(reply.id);
      if (!call) return;
      pending.delete(reply.id);
      if (reply.ok) call.resolve(reply.value);
      else call.reject(errorFrom(reply.error));
    });
    worker.once('error', (err) => {
      reject(err);
      failAll(err);
    });
    void exited.then((code) => {
      const err = new Error(`the store is not open: its thread stopped (exit code ${code})`);
      reject(err);
      failAll(err);
    });
  });
  try {
    await opened;
  } catch (err) {
    await worker.terminate();
    throw err;
  }

  const call = (method: string, args: unknown[]): Promise<unknown> => {
    if (failure) return Promise.reject(failure);
    return new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, method, args } satisfies ThreadRequest);
    });
  };

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      try {
        await call('close', []);
      } finally {
        // The thread ends once the store has closed; should anything keep it, it is stopped.
        const late = setTimeout(() => void worker.terminate(), CLOSE_GRACE_MS);
        await exited;
        clearTimeout(late);
      }
    })();
    return closing;
  };

  // Every method of `Store` is a message to the thread, one function per name. `then`
  // stays undefined so that awaiting the store does not take it for a promise. A method
  // assigned on the store (tests wrap one to count or fail its calls) is used as assigned.
  const methods = new Map<string, (...args: unknown[]) => Promise<unknown>>();
  const forward = (method: string): ((...args: unknown[]) => Promise<unknown>) => {
    let f = methods.get(method);
    if (!f) {
      // The write queue hands over its open batch, which carries more than the batch (and a
      // promise, which cannot cross to the thread): only the batch's lists are sent.
      f =
        method === 'applyBatch'
          ? (batch) => call(method, [batchLists(batch as WriteBatch)])
          : (...args) => call(method, args);
      methods.set(method, f);
    }
    return f;
  };
  // Two batches at a time, as on PostgreSQL: the thread commits one while the other's log sync
  // runs (the store syncs on libuv's pool). The thread still runs one transaction at a time.
  const target = { close, maxCommitsInFlight: THREAD_COMMITS_IN_FLIGHT };
  return new Proxy(target as unknown as Store, {
    get(target, property) {
      if (Object.hasOwn(target, property)) return (target as unknown as Record<PropertyKey, unknown>)[property];
      if (typeof property !== 'string' || property === 'then') return undefined;
      return forward(property);
    },
  });
}
