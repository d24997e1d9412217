/**
 * The session store of nodes sharing Redis (src/cluster/shared-sessions.ts) on the real Redis,
 * under a prefix unique to the run: two stores on one prefix stand for two nodes. The queue and
 * retained bounds hold across them, and a queue is read only once the acknowledgements under way
 * are written (the reconnect race, docs/scale-out.md).
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { boundedPersistence, type QueuedPacket } from '../../src/broker/bounded-persistence.js';
import { type SharedSessionStore, sharedSessionStore } from '../../src/cluster/shared-sessions.js';
import { REDIS_URL } from './nodes.js';

const prefix = `gatehouse-test-${randomBytes(4).toString('hex')}:`;
const stores: SharedSessionStore[] = [];
const open = () => {
  const store = sharedSessionStore({ url: REDIS_URL, prefix });
  stores.push(store);
  return store;
};
const packet = (n: number, bytes = 10): QueuedPacket & Record<string, unknown> => ({
  cmd: 'publish',
  topic: 't',
  payload: Buffer.alloc(bytes),
  qos: 1,
  retain: false,
  dup: false,
  brokerId: 'b',
  brokerCounter: n,
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  const redis = new Redis(REDIS_URL);
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

describe('the session store in Redis', () => {
  it("counts a client's queue across nodes, tells of an overflow once, and forgets a dropped queue", async () => {
    const overflows: string[] = [];
    const limits = { messages: 2, bytes: 25 };
    const onA = open().queues(limits, (id) => overflows.push(`a:${id}`));
    const onB = open().queues(limits, (id) => overflows.push(`b:${id}`));
    expect(await onA.admitEach(['c', 'd'], packet(1))).toEqual([true, true]);
    expect(await onB.admitEach(['c'], packet(2))).toEqual([true]);
    expect(await onB.admitEach(['c', 'd'], packet(3))).toEqual([false, true]);
    expect(await onA.admitEach(['c'], packet(4))).toEqual([false]);
    expect(await onA.admitEach(['d'], packet(5, 10))).toEqual([false]);
    expect(overflows).toEqual(['b:c', 'a:d']);
    await onA.release('c', packet(1));
    expect(await onB.admitEach(['c'], packet(6))).toEqual([true]);
    expect(await onB.admitEach(['c'], packet(7))).toEqual([false]);
    expect(overflows).toEqual(['b:c', 'a:d', 'b:c']);
    await onB.forget('c');
    expect(await onA.admitEach(['c', 'c'], packet(8))).toEqual([true, true]);
  });

  it("holds an application's retained budget across nodes", async () => {
    const limits = { messages: 2, bytes: 100 };
    const onA = open().retained(limits);
    const onB = open().retained(limits);
    expect(await onA.admit('app', '$app/app/t1', 50)).toBeNull();
    expect(await onB.admit('app', '$app/app/t2', 40)).toBeNull();
    expect(await onB.admit('app', '$app/app/t3', 10)).toMatch(/would exceed 2 messages or 100 bytes/);
    expect(await onA.admit('app', '$app/app/t1', 61)).toMatch(/would exceed/);
    expect(await onA.admit('app', '$app/app/t1', 60)).toBeNull();
    expect(await onB.admit('other', '$app/other/t1', 100)).toBeNull();
    expect(await onA.usage('app')).toEqual({ messages: 2, bytes: 100 });
    expect(await onB.admit('app', '$app/app/t2', 0)).toBeNull();
    expect(await onA.admit('app', '$app/app/t3', 40)).toBeNull();
    expect((await onB.release('app')).sort()).toEqual(['$app/app/t1', '$app/app/t3']);
    expect(await onA.usage('app')).toEqual({ messages: 0, bytes: 0 });
    expect(await onA.usage('other')).toEqual({ messages: 1, bytes: 100 });
  });

  it('reads a queue only once the acknowledgements under way for that client are written', async () => {
    const store = open();
    const persistence = boundedPersistence(
      store.persistence,
      store.queues({ messages: 10, bytes: 1_000 }, () => {}),
      {
        dropsQueueWithSubscriptions: true,
        replay: { skip: () => false, ended: () => {}, keep: () => false },
      },
    ) as unknown as {
      outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: object): Promise<void>;
      outgoingUpdate(client: { id: string }, packet: object): Promise<void>;
      outgoingClearMessageId(client: { id: string }, packet: object): Promise<unknown>;
      outgoingStream(client: { id: string; clean: boolean }): AsyncIterable<{ brokerCounter: number }>;
    };
    const read = async () => {
      const out: number[] = [];
      for await (const p of persistence.outgoingStream({ id: 'r', clean: false })) out.push(p.brokerCounter);
      return out;
    };
    for (let round = 0; round < 20; round++) {
      const n = 100 + round;
      await persistence.outgoingEnqueueCombi([{ clientId: 'r' }], packet(n));
      await persistence.outgoingUpdate({ id: 'r' }, { ...packet(n), messageId: n });
      // Acknowledged, and the session comes back at once: the message is not sent again.
      const clearing = persistence.outgoingClearMessageId({ id: 'r' }, { ...packet(n), messageId: n });
      expect(await read()).toEqual([]);
      await clearing;
    }
  });

  it("gives each will of a dead node's clients to exactly one of two nodes taking them at once", async () => {
    // What aedes' setup needs of a broker: its id (the wills are stored under it) and its emitter.
    const broker = (id: string) => ({
      id,
      subscribe: (_topic: string, _listener: unknown, done: () => void) => done(),
      publish: (_packet: unknown, done: () => void) => done(),
    });
    type Wills = { setup(b: unknown): Promise<void>; putWill(c: { id: string }, p: object): Promise<void> };
    const dead = open().persistence as Wills;
    const alive = open().persistence as Wills;
    await dead.setup(broker('deadnode'));
    await alive.setup(broker('livenode'));
    const will = (n: number) => ({ topic: `status/${n}`, payload: Buffer.from(`gone ${n}`), qos: 1, retain: false });
    const ids = Array.from({ length: 2_500 }, (_, n) => (n === 7 ? 'odd:id/ä %' : `device-${n}`));
    await Promise.all(ids.map((id, n) => dead.putWill({ id }, { ...will(n), keyId: 'k1' })));
    await alive.putWill({ id: 'device-0' }, will(-1));

    const take = async (store: SharedSessionStore) => {
      const taken: Array<{ clientId: string; topic: string; payload: string; keyId?: string }> = [];
      for await (const w of store.takeWills('deadnode')) {
        taken.push({ clientId: w.clientId, topic: w.topic, payload: w.payload.toString(), keyId: w.keyId });
      }
      return taken;
    };
    const [one, two] = await Promise.all([take(open()), take(open())]);
    const all = [...one, ...two];
    expect(all.length).toBe(ids.length);
    expect(new Set(all.map((w) => w.clientId))).toEqual(new Set(ids));
    expect(all.find((w) => w.clientId === 'odd:id/ä %')).toEqual({
      clientId: 'odd:id/ä %',
      topic: 'status/7',
      payload: 'gone 7',
      keyId: 'k1',
    });
    // Taken means gone from Redis; the wills of a live node stay.
    expect(await take(open())).toEqual([]);
    const redis = new Redis(REDIS_URL);
    expect(await redis.keys(`${prefix}aedes:will:deadnode:*`)).toEqual([]);
    expect(await redis.lrange(`${prefix}aedes:will`, 0, -1)).toEqual(['will:livenode:device-0']);
    redis.disconnect();
  });

  it("drops a queue's copies only it held, and an acknowledgement after the drop does not count again", async () => {
    // What aedes' setup needs of a broker: its id and an emitter carrying the subscription notices.
    const listeners = new Map<string, (packet: unknown, done: () => void) => void>();
    const broker = {
      id: 'b',
      subscribe: (topic: string, listener: (packet: unknown, done: () => void) => void, done: () => void) => {
        listeners.set(topic, listener);
        done();
      },
      publish: (packet: { topic: string }, done: () => void) => {
        listeners.get('$SYS/sub/+')?.(packet, () => {});
        done();
      },
    };
    const persistence = open().persistence as {
      setup(b: unknown): Promise<void>;
      addSubscriptions(c: { id: string }, subs: object[]): Promise<void>;
      cleanSubscriptions(c: { id: string }): Promise<void>;
      outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: object): Promise<void>;
      outgoingUpdate(c: { id: string }, packet: object): Promise<void>;
      outgoingClearMessageId(c: { id: string }, packet: object): Promise<unknown>;
      outgoingStream(c: { id: string }): AsyncIterable<{ brokerCounter: number }>;
    };
    await persistence.setup(broker);
    for (const id of ['drops', 'keeps']) await persistence.addSubscriptions({ id }, [{ topic: 'q/+', qos: 1 }]);
    await persistence.outgoingEnqueueCombi([{ clientId: 'drops' }, { clientId: 'keeps' }], packet(901));
    await persistence.outgoingEnqueueCombi([{ clientId: 'drops' }], packet(902));
    // 901 is sent to the client that then drops its queue, and acknowledged only after the drop.
    await persistence.outgoingUpdate({ id: 'drops' }, { ...packet(901), messageId: 1 });

    const redis = new Redis(REDIS_URL);
    const copies = async () =>
      (await redis.keys(`${prefix}aedes:packet:b:90*`)).map((k) => k.slice(`${prefix}aedes:`.length)).sort();
    expect(await copies()).toEqual([
      'packet:b:901',
      'packet:b:901:offlineCount',
      'packet:b:902',
      'packet:b:902:offlineCount',
    ]);
    await persistence.cleanSubscriptions({ id: 'drops' });
    expect(await copies()).toEqual(['packet:b:901', 'packet:b:901:offlineCount']);
    expect(await redis.get(`${prefix}aedes:packet:b:901:offlineCount`)).toBe('1');
    expect(await persistence.outgoingClearMessageId({ id: 'drops' }, { messageId: 1 })).toBeUndefined();
    expect(await redis.get(`${prefix}aedes:packet:b:901:offlineCount`)).toBe('1');
    const queued: number[] = [];
    for await (const p of persistence.outgoingStream({ id: 'keeps' })) queued.push(Number(p.brokerCounter));
    expect(queued).toEqual([901]);
    redis.disconnect();
  });
});
