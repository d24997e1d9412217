import { afterAll, describe, expect, it } from 'vitest';
import { WriteQueue } from '../../src/core/write-queue.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-store.js';
import type { Store, WriteBatch } from '../../src/store/types.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { makeApp, makeDevice, state } from '../store/contract.js';

const T = 1_700_000_200_000;
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** A store whose commits end when the test says, one by one; it records the batches it got. */
function manualStore(maxCommitsInFlight?: number) {
  const calls: Array<{ devices: string[]; finish: (err?: Error) => void }> = [];
  const store = {
    ...(maxCommitsInFlight === undefined ? {} : { maxCommitsInFlight }),
    applyBatch: (batch: WriteBatch) =>
      new Promise<void>((resolve, reject) => {
        calls.push({
          devices: [...new Set(batch.states.map((s) => s.deviceId))],
          finish: (err) => (err ? reject(err) : resolve()),
        });
      }),
  } as unknown as Store;
  return { store, calls };
}

/** Enqueues one state of `device` and records, in `order`, when its promise settles. */
function write(queue: WriteQueue, device: string, label: string, order: string[]): Promise<void> {
  return queue.enqueue({ states: [state(device, T, { v: label })] }).then(
    () => void order.push(label),
    () => void order.push(`${label} failed`),
  );
}

describe('WriteQueue with two commits in flight', () => {
  it('starts a second batch while one commits, when they share no device', async () => {
    const { store, calls } = manualStore(2);
    const queue = new WriteQueue(store);
    const order: string[] = [];
    const a = write(queue, 'A', 'a', order);
    await turn();
    const b = write(queue, 'B', 'b', order);
    await turn();
    expect(calls.map((c) => c.devices)).toEqual([['A'], ['B']]);
    // A third batch waits for a free slot.
    const c = write(queue, 'C', 'c', order);
    await turn();
    expect(calls).toHaveLength(2);
    calls[0]?.finish();
    await a;
    await turn();
    expect(calls.map((call) => call.devices)).toEqual([['A'], ['B'], ['C']]);
    calls[1]?.finish();
    calls[2]?.finish();
    await Promise.all([b, c]);
    expect(order).toEqual(['a', 'b', 'c']);
  });

  it('holds a write for a device of the batch in flight until that batch is done, with what arrives after it', async () => {
    const { store, calls } = manualStore(2);
    const queue = new WriteQueue(store);
    const order: string[] = [];
    const a1 = write(queue, 'A', 'a1', order);
    await turn();
    // A again, and B behind it in the same open batch: neither goes while A's first batch commits.
    const a2 = write(queue, 'A', 'a2', order);
    const b = write(queue, 'B', 'b', order);
    await turn();
    await turn();
    expect(calls.map((c) => c.devices)).toEqual([['A']]);
    calls[0]?.finish();
    await a1;
    await turn();
    expect(calls.map((c) => c.devices)).toEqual([['A'], ['A', 'B']]);
    calls[1]?.finish();
    await Promise.all([a2, b]);
    expect(order).toEqual(['a1', 'a2', 'b']);
  });

  it('resolves batches in the order they were opened, also when a later one commits first', async () => {
    const { store, calls } = manualStore(2);
    const committed: string[][] = [];
    const queue = new WriteQueue(store, {
      onCommitted: (batch) => committed.push(batch.states.map((s) => s.deviceId)),
    });
    const order: string[] = [];
    const a = write(queue, 'A', 'a', order);
    await turn();
    const b = write(queue, 'B', 'b', order);
    await turn();
    calls[1]?.finish();
    await turn();
    await turn();
    expect(order).toEqual([]);
    expect(committed).toEqual([]);
    // B's devices are free at once: a batch for B may commit while B's writers wait for A.
    const b2 = write(queue, 'B', 'b2', order);
    await turn();
    expect(calls.map((c) => c.devices)).toEqual([['A'], ['B'], ['B']]);
    calls[2]?.finish();
    calls[0]?.finish();
    await Promise.all([a, b, b2]);
    expect(order).toEqual(['a', 'b', 'b2']);
    expect(committed).toEqual([['A'], ['B'], ['B']]);
  });

  it('fails one batch without holding up or failing the next, which still resolves after it', async () => {
    const { store, calls } = manualStore(2);
    const errors: unknown[] = [];
    const queue = new WriteQueue(store, { onError: (err) => errors.push(err) });
    const order: string[] = [];
    const a = write(queue, 'A', 'a', order);
    await turn();
    const b = write(queue, 'B', 'b', order);
    await turn();
    calls[1]?.finish();
    await turn();
    expect(order).toEqual([]);
    calls[0]?.finish(new Error('disk full'));
    await Promise.all([a, b]);
    expect(order).toEqual(['a failed', 'b']);
    expect(errors).toEqual([new Error('disk full')]);
    expect(queue.lastCommitFailed).toBe(false);
  });

  it('keeps one commit in flight for a store that does not say more (SQLite)', async () => {
    const { store, calls } = manualStore();
    const queue = new WriteQueue(store);
    const order: string[] = [];
    const a = write(queue, 'A', 'a', order);
    await turn();
    const b = write(queue, 'B', 'b', order);
    await turn();
    await turn();
    expect(calls).toHaveLength(1);
    calls[0]?.finish();
    await a;
    await turn();
    expect(calls).toHaveLength(2);
    calls[1]?.finish();
    await b;
    expect(order).toEqual(['a', 'b']);
  });

  it('drains batches waiting for a slot or a device', async () => {
    const { store, calls } = manualStore(2);
    const queue = new WriteQueue(store);
    const order: string[] = [];
    void write(queue, 'A', 'a1', order);
    await turn();
    void write(queue, 'A', 'a2', order);
    let drained = false;
    const draining = queue.drain().then(() => {
      drained = true;
    });
    for (let i = 0; i < 4; i++) {
      await turn();
      for (const call of calls) call.finish();
    }
    await draining;
    expect(drained).toBe(true);
    expect(order).toEqual(['a1', 'a2']);
  });
});

describe('WriteQueue on PostgreSQL', () => {
  const db = createTestDatabase();
  afterAll(async () => (await db).drop());

  it('commits two batches at once, applies each device in arrival order and resolves in arrival order', async () => {
    const store = await openPostgresStore({ url: (await db).url });
    try {
      expect(store.maxCommitsInFlight).toBe(2);
      const app = makeApp();
      await store.createApplication(app);
      const devices = Array.from({ length: 6 }, () => makeDevice(app.id));
      for (const d of devices) await store.createDevice(d);
      // Count the batches in the store at once, and check none shares a device with another.
      let inStore = 0;
      let most = 0;
      const committing = new Set<string>();
      const spy = Object.create(store) as Store;
      spy.applyBatch = async (batch: WriteBatch) => {
        const ids = new Set(batch.states.map((s) => s.deviceId));
        for (const id of ids) {
          expect(committing.has(id)).toBe(false);
          committing.add(id);
        }
        most = Math.max(most, ++inStore);
        try {
          await store.applyBatch(batch);
        } finally {
          inStore--;
          for (const id of ids) committing.delete(id);
        }
      };
      const queue = new WriteQueue(spy);
      const resolved: number[] = [];
      const pending: Array<Promise<void>> = [];
      // 60 writes over 20 turns of the event loop, each device written again and again, every
      // device's states in one millisecond: they merge, so the stored state shows the order.
      let n = 0;
      for (let round = 0; round < 20; round++) {
        for (let k = 0; k < 3; k++) {
          const i = n++;
          const device = devices[(round * 3 + k) % devices.length]!;
          pending.push(
            queue
              .enqueue({ states: [state(device.id, T, { last: i, [`w${i}`]: true })] })
              .then(() => void resolved.push(i)),
          );
        }
        await turn();
      }
      await Promise.all(pending);
      expect(resolved).toEqual(Array.from({ length: n }, (_, i) => i));
      expect(most).toBe(2);
      for (const [d, device] of devices.entries()) {
        const written = Array.from({ length: n }, (_, i) => i).filter((i) => i % devices.length === d);
        const [stored] = await store.queryStates(device.id, { limit: 10, sortDirection: 'asc' });
        expect(stored?.data).toEqual({
          last: written.at(-1),
          ...Object.fromEntries(written.map((i) => [`w${i}`, true])),
        });
        expect((await store.getCompositeState(device.id)).last).toEqual({ value: written.at(-1), time: T });
      }
    } finally {
      await store.close();
    }
  });

  it('rejects the writers of a failing batch only; the next batch commits and resolves after it', async () => {
    const store = await openPostgresStore({ url: (await db).url });
    try {
      const app = makeApp();
      await store.createApplication(app);
      const [one, two] = [makeDevice(app.id), makeDevice(app.id)];
      for (const d of [one, two]) await store.createDevice(d);
      const errors: unknown[] = [];
      const queue = new WriteQueue(store, { onError: (err) => errors.push(err) });
      const order: string[] = [];
      // JSON cannot hold a BigInt: the first batch fails in the store, before anything is written.
      const failing = queue.enqueue({ states: [state(one.id, T + 1, { n: 1n })] }).then(
        () => void order.push('one'),
        () => void order.push('one failed'),
      );
      await turn();
      const fine = queue.enqueue({ states: [state(two.id, T + 1, { n: 2 })] }).then(
        () => void order.push('two'),
        () => void order.push('two failed'),
      );
      await Promise.all([failing, fine]);
      expect(order).toEqual(['one failed', 'two']);
      expect(errors).toHaveLength(1);
      expect(await store.queryStates(one.id, { limit: 10, sortDirection: 'asc' })).toEqual([]);
      expect(await store.queryStates(two.id, { limit: 10, sortDirection: 'asc' })).toEqual([
        state(two.id, T + 1, { n: 2 }),
      ]);
    } finally {
      await store.close();
    }
  });
});
