import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WriteQueue } from '../../src/core/write-queue.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { openSqliteStoreThread, THREAD_COMMITS_IN_FLIGHT } from '../../src/store/sqlite/store-thread.js';
import { type Store, writeBatch } from '../../src/store/types.js';
import { makeApp, makeDevice, state, storeContract } from './contract.js';
import { visibilityContract } from './contract-visibility.js';

const tempDirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-store-thread-'));
  tempDirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

// The server's store: every contract the store keeps on the event loop, it keeps on its thread.
storeContract('sqlite on its own thread', () =>
  openSqliteStoreThread({ dataDir: tempDir(), backgroundCheckpoints: true }),
);
visibilityContract('sqlite on its own thread', () => openSqliteStoreThread({ dataDir: tempDir() }));

describe('the SQLite store on its own thread', () => {
  const opened: Store[] = [];
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
  });
  async function open(dataDir = tempDir()): Promise<Store> {
    const store = await openSqliteStoreThread({ dataDir, backgroundCheckpoints: true });
    opened.push(store);
    return store;
  }

  it('fails to open with the error the store gave, of the same kind', async () => {
    await expect(openSqliteStoreThread({ dataDir: tempDir(), rollupFlushMs: -1 })).rejects.toThrow(RangeError);
    await expect(openSqliteStoreThread({ dataDir: tempDir(), rollupFlushMs: -1 })).rejects.toThrow(
      'rollupFlushMs out of range: -1',
    );
  });

  it("rejects a call with the store's error, its SQLite code kept", async () => {
    const store = await open();
    const orphan = makeDevice('no-such-application');
    const err = await store.createDevice(orphan).then(
      () => undefined,
      (e: unknown) => e as Error & { code?: string },
    );
    expect(err).toBeInstanceOf(Error);
    expect(err?.message).toMatch(/FOREIGN KEY/);
    expect(err?.code).toBe('SQLITE_CONSTRAINT_FOREIGNKEY');
    // The store goes on after a failed call.
    const app = makeApp();
    await store.createApplication(app);
    expect((await store.getApplication(app.id))?.name).toBe(app.name);
  });

  it('answers only the store’s own methods', async () => {
    const store = (await open()) as unknown as Record<string, () => Promise<unknown>>;
    await expect(store.toString?.()).rejects.toThrow('the store has no method toString');
    await expect(store.noSuchMethod?.()).rejects.toThrow(TypeError);
    await expect(store.constructor?.()).rejects.toThrow('the store has no method constructor');
  });

  it('is not mistaken for a promise, and gives one function per method', async () => {
    const store = await open();
    await expect(Promise.resolve(store)).resolves.toBe(store);
    expect(store.listApplications).toBe(store.listApplications);
  });

  it('uses a method assigned on it as assigned, and its own again once put back', async () => {
    const store = await open();
    const original = store.listApplications;
    store.listApplications = () => Promise.reject(new Error('disk on fire'));
    await expect(store.listApplications()).rejects.toThrow('disk on fire');
    store.listApplications = original;
    await expect(store.listApplications()).resolves.toEqual([]);
  });

  it('sends a batch’s lists alone: whatever else the write queue keeps on it stays behind', async () => {
    const store = await open();
    const app = makeApp();
    await store.createApplication(app);
    const device = makeDevice(app.id);
    await store.createDevice(device);
    const batch = Object.assign(writeBatch({ states: [state(device.id, 1_000, { temperature: 21.5 })] }), {
      devices: new Set([device.id]),
      done: new Promise(() => {}),
      resolve: () => {},
    });
    await store.applyBatch(batch);
    expect(await store.queryStates(device.id, { limit: 10, sortDirection: 'asc' })).toEqual([
      state(device.id, 1_000, { temperature: 21.5 }),
    ]);
  });

  it('keeps calls in the order they were made', async () => {
    const store = await open();
    const app = makeApp();
    await store.createApplication(app);
    const device = makeDevice(app.id);
    await store.createDevice(device);
    // Not awaited one by one: the read must see every write made before it.
    const writes = [1, 2, 3, 4, 5].map((n) =>
      store.applyBatch(writeBatch({ states: [state(device.id, n * 1_000, { n })] })),
    );
    const read = store.getCompositeState(device.id);
    await Promise.all(writes);
    expect((await read).n).toEqual({ value: 5, time: 5_000 });
  });

  it('lets the write queue hand it two batches at a time, never more', async () => {
    const store = await open();
    expect(store.maxCommitsInFlight).toBe(THREAD_COMMITS_IN_FLIGHT);
    const app = makeApp();
    await store.createApplication(app);
    const devices = Array.from({ length: 40 }, () => makeDevice(app.id));
    for (const device of devices) await store.createDevice(device);
    let outstanding = 0;
    let most = 0;
    const apply = store.applyBatch;
    store.applyBatch = async (batch) => {
      most = Math.max(most, ++outstanding);
      try {
        await apply(batch);
      } finally {
        outstanding--;
      }
    };
    const queue = new WriteQueue(store);
    // One part per turn of the event loop, each on a device of its own: every turn could start
    // a batch, if the queue allowed it.
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      const device = devices[i % devices.length] as { id: string };
      writes.push(queue.enqueue({ states: [state(device.id, 1_000 + i, { n: i })] }));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(writes);
    expect(most).toBe(THREAD_COMMITS_IN_FLIGHT);
  });

  it('closes once, and every call after that is refused', async () => {
    const store = await openSqliteStoreThread({ dataDir: tempDir() });
    await Promise.all([store.close(), store.close()]);
    await expect(store.listApplications()).rejects.toThrow(/the store is not open: its thread stopped/);
  });

  it('leaves what it stored on disk for the next open', async () => {
    const dataDir = tempDir();
    const store = await openSqliteStoreThread({ dataDir, backgroundCheckpoints: true });
    const app = makeApp();
    await store.createApplication(app);
    const device = makeDevice(app.id);
    await store.createDevice(device);
    await store.applyBatch(writeBatch({ states: [state(device.id, 2_000, { temperature: 19 })] }));
    await store.close();
    const again = await openSqliteStore({ dataDir });
    try {
      expect(await again.getCompositeState(device.id)).toEqual({ temperature: { value: 19, time: 2_000 } });
    } finally {
      await again.close();
    }
  });

  it('leaves the event loop free while it writes', async () => {
    const store = await open();
    const app = makeApp();
    await store.createApplication(app);
    const devices = Array.from({ length: 50 }, () => makeDevice(app.id));
    for (const device of devices) await store.createDevice(device);
    // One large batch: on the event loop its transaction alone would stop every timer for its
    // whole length. On the thread, a 2 ms timer keeps firing meanwhile.
    const states = Array.from({ length: 60_000 }, (_, i) =>
      state((devices[i % devices.length] as { id: string }).id, 10_000 + i, { temperature: i % 40, humidity: i % 90 }),
    );
    let last = performance.now();
    let longest = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 2);
    const started = performance.now();
    try {
      await store.applyBatch(writeBatch({ states }));
    } finally {
      clearInterval(timer);
    }
    const took = performance.now() - started;
    expect(took).toBeGreaterThan(100);
    expect(longest).toBeLessThan(took / 2);
  });
});
