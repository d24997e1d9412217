/**
 * The store thread's side (store-thread.ts): opens the SQLite store and answers each call with
 * what the store's method resolved or rejected with. Calls start in the order they arrive, as
 * they would on the event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openSqliteStore, type SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import { errorData, type ThreadReply, type ThreadRequest } from './store-thread.js';

const port = parentPort;
if (!port) throw new Error('store-thread-worker runs on a worker thread');

const post = (reply: ThreadReply): void => {
  try {
    port.postMessage(reply);
  } catch (err) {
    // A value that cannot be cloned (a bug: the store returns plain data) fails its call only.
    if ('id' in reply) port.postMessage({ id: reply.id, ok: false, error: errorData(err) } satisfies ThreadReply);
    else throw err;
  }
};

let store: SqliteStore;
try {
  store = await openSqliteStore({
    ...(workerData as SqliteStoreOptions),
    onCheckpointError: (err) => post({ event: 'checkpointFailed', error: errorData(err) }),
    onRollupFlushError: (err) => post({ event: 'rollupFlushFailed', error: errorData(err) }),
  });
} catch (err) {
  post({ opened: false, error: errorData(err) });
  process.exit(1);
}

// Only the store's own methods (on its class or, for those delegated, on the instance),
// nothing inherited from Object.
const callable = (method: string): boolean =>
  !(method in Object.prototype) && typeof (store as unknown as Record<string, unknown>)[method] === 'function';

port.on('message', ({ id, method, args }: ThreadRequest) => {
  if (!callable(method)) {
    post({ id, ok: false, error: { name: 'TypeError', message: `the store has no method ${method}` } });
    return;
  }
  let result: unknown;
  try {
    result = (store as unknown as Record<string, (...a: unknown[]) => unknown>)[method]?.(...args);
  } catch (err) {
    post({ id, ok: false, error: errorData(err) });
    return;
  }
  Promise.resolve(result).then(
    (value) => {
      post({ id, ok: true, value });
      if (method === 'close') port.close();
    },
    (err: unknown) => post({ id, ok: false, error: errorData(err) }),
  );
});

post({ opened: true });
