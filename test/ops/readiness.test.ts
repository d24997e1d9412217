/**
 * Readiness with real parts: an SQLite store, the group commit over it, and TCP listeners on
 * real sockets. The server wires the same object to GET /ready (test/integration/readiness.test.ts).
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WriteQueue } from '../../src/core/write-queue.js';
import { silentLogger } from '../../src/logger.js';
import { Readiness } from '../../src/ops/readiness.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/types.js';

const listening = async (): Promise<net.Server> => {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
};
const close = (server: net.Server) => new Promise<void>((resolve) => server.close(() => resolve()));

describe('Readiness', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  async function parts(): Promise<{ store: Store; writes: WriteQueue; readiness: Readiness }> {
    const store = await openSqliteStore({ filename: ':memory:' });
    cleanups.push(() => store.close());
    const writes = new WriteQueue(store);
    return { store, writes, readiness: new Readiness({ store, writes, logger: silentLogger }) };
  }

  it('is not ready while starting, ready once running, and not ready again once stopping', async () => {
    const { readiness } = await parts();
    expect(await readiness.check()).toEqual([{ code: 'starting', message: 'the server is starting' }]);
    readiness.markRunning();
    expect(await readiness.check()).toEqual([]);
    readiness.markStopping();
    readiness.markRunning(); // a stopping server does not come back
    expect(await readiness.check()).toEqual([{ code: 'shuttingDown', message: 'the server is shutting down' }]);
  });

  it('names each listener that is not accepting connections', async () => {
    const { readiness } = await parts();
    const http = await listening();
    const mqtt = await listening();
    cleanups.push(async () => {
      if (http.listening) await close(http);
    });
    readiness.watchListener('http', http);
    readiness.watchListener('mqtt', mqtt);
    readiness.markRunning();
    expect(await readiness.check()).toEqual([]);
    await close(mqtt);
    expect(await readiness.check()).toEqual([
      { code: 'listenerDown', message: 'the mqtt listener is not accepting connections' },
    ]);
  });

  it('says when the store cannot take a write, and when the last group commit failed', async () => {
    const { store, writes, readiness } = await parts();
    readiness.markRunning();
    await store.close();
    expect((await readiness.check()).map((r) => r.code)).toEqual(['databaseNotWritable']);
    await expect(writes.enqueue({ logs: [] })).rejects.toThrow();
    expect(writes.lastCommitFailed).toBe(true);
    expect((await readiness.check()).map((r) => r.code)).toEqual(['databaseNotWritable', 'lastCommitFailed']);
  });
});
