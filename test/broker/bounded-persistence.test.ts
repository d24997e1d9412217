import { describe, expect, it } from 'vitest';
import { boundedMemoryPersistence, QueueAccounting } from '../../src/broker/bounded-persistence.js';

const packet = (n: number, bytes = 10) => ({
  cmd: 'publish',
  topic: 't',
  payload: Buffer.alloc(bytes),
  qos: 1,
  retain: false,
  dup: false,
  brokerId: 'b',
  brokerCounter: n,
  messageId: n,
});

describe('bounded QoS 1 queues', () => {
  it('admits up to the message and byte limits per client, and tells the owner once per overflow', () => {
    const overflows: string[] = [];
    const accounting = new QueueAccounting({ messages: 2, bytes: 25 }, (id) => overflows.push(id));
    expect(accounting.admit('c', packet(1))).toBe(true);
    expect(accounting.admit('c', packet(2))).toBe(true);
    expect(accounting.admit('c', packet(3))).toBe(false);
    expect(accounting.admit('c', packet(4))).toBe(false);
    expect(accounting.admit('other', packet(5, 25))).toBe(true);
    expect(accounting.admit('other', packet(6, 1))).toBe(false);
    expect(overflows).toEqual(['c', 'other']);
    accounting.release('c', packet(1));
    expect(accounting.admit('c', packet(7))).toBe(true);
    expect(accounting.admit('c', packet(8))).toBe(false);
    expect(overflows).toEqual(['c', 'other', 'c']);
  });

  it('enqueues into the real memory persistence only what fits, and frees room when a message is acknowledged', async () => {
    const accounting = new QueueAccounting({ messages: 2, bytes: 1_000 }, () => {});
    const persistence = boundedMemoryPersistence(accounting) as unknown as {
      outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: object): Promise<void>;
      outgoingUpdate(client: { id: string }, packet: object): Promise<void>;
      outgoingClearMessageId(client: { id: string }, packet: object): Promise<unknown>;
      outgoingStream(client: { id: string }): AsyncIterable<{ brokerCounter: number }>;
    };
    const queued = async (id: string) => {
      const out: number[] = [];
      for await (const p of persistence.outgoingStream({ id })) out.push(p.brokerCounter);
      return out;
    };
    for (const n of [1, 2, 3])
      await persistence.outgoingEnqueueCombi([{ clientId: 'c' }, { clientId: 'd' }], packet(n));
    expect(await queued('c')).toEqual([1, 2]);
    expect(await queued('d')).toEqual([1, 2]);
    await persistence.outgoingUpdate({ id: 'c' }, packet(1));
    await persistence.outgoingClearMessageId({ id: 'c' }, packet(1));
    expect(accounting.queued('c')).toEqual({ messages: 1, bytes: 10 });
    await persistence.outgoingEnqueueCombi([{ clientId: 'c' }], packet(4));
    expect(await queued('c')).toEqual([2, 4]);
  });
});

describe('the bounding layer around a persistence', () => {
  const numbered = (n: number, messageId: number) => ({ ...packet(n), messageId });
  const unnumbered = (n: number) => {
    const p: Record<string, unknown> = packet(n);
    delete p.messageId;
    return p;
  };
  type Wrapped = {
    outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: object): Promise<void>;
    outgoingUpdate(client: { id: string }, packet: object): Promise<void>;
    outgoingClearMessageId(client: { id: string }, packet: object): Promise<unknown>;
    outgoingStream(client: { id: string; clean?: boolean }): AsyncIterable<{ brokerCounter: number }>;
    settled(clientId: string): Promise<void>;
  };
  const read = async (persistence: Wrapped, id: string) => {
    const out: number[] = [];
    for await (const p of persistence.outgoingStream({ id, clean: false })) out.push(p.brokerCounter);
    return out;
  };

  it('ignores a clear of a message never numbered for the client (the memory backend would remove another)', async () => {
    const accounting = new QueueAccounting({ messages: 10, bytes: 1_000 }, () => {});
    const persistence = boundedMemoryPersistence(accounting) as unknown as Wrapped;
    for (const n of [1, 2]) await persistence.outgoingEnqueueCombi([{ clientId: 'c' }], unnumbered(n));
    expect(await persistence.outgoingClearMessageId({ id: 'c' }, unnumbered(3))).toBeUndefined();
    expect(await read(persistence, 'c')).toEqual([1, 2]);
    expect(accounting.queued('c').messages).toBe(2);
  });

  it('leaves out of a replayed queue what the broker says went out already, keeps what it says to keep, and tells when the queue was read', async () => {
    const skipped = new Set([2]);
    const kept = new Set([7]);
    const ended: string[] = [];
    const accounting = new QueueAccounting({ messages: 10, bytes: 1_000 }, () => {});
    const persistence = boundedMemoryPersistence(accounting, {
      skip: (_client, p) => skipped.has(p.brokerCounter ?? 0),
      ended: (client) => ended.push(client.id),
      keep: (_client, p) => kept.delete(p.messageId ?? -1),
    }) as unknown as Wrapped;
    for (const n of [1, 2, 3]) await persistence.outgoingEnqueueCombi([{ clientId: 'c' }], unnumbered(n));
    expect(await read(persistence, 'c')).toEqual([1, 3]);
    expect(ended).toEqual(['c']);
    // A queued copy the broker dropped as a duplicate stays queued; a normal clear removes it.
    await persistence.outgoingUpdate({ id: 'c' }, numbered(1, 7));
    expect(await persistence.outgoingClearMessageId({ id: 'c' }, numbered(1, 7))).toBeUndefined();
    expect(await read(persistence, 'c')).toEqual([1, 3]);
    expect(await persistence.outgoingClearMessageId({ id: 'c' }, numbered(1, 7))).toMatchObject({ brokerCounter: 1 });
    expect(await read(persistence, 'c')).toEqual([3]);
    expect(accounting.queued('c').messages).toBe(2);
  });

  it('reads a client with nothing counted as an empty queue, and one with anything counted from the backend', async () => {
    const ended: string[] = [];
    const accounting = new QueueAccounting({ messages: 10, bytes: 1_000 }, () => {});
    const persistence = boundedMemoryPersistence(accounting, {
      skip: () => false,
      ended: (client) => ended.push(client.id),
      keep: () => false,
    }) as unknown as Wrapped;
    expect(await read(persistence, 'c')).toEqual([]);
    expect(ended).toEqual(['c']);
    await persistence.outgoingEnqueueCombi([{ clientId: 'c' }], unnumbered(1));
    expect(accounting.holds('c')).toBe(true);
    expect(await read(persistence, 'c')).toEqual([1]);
    // Sent and not yet acknowledged: still read from the backend.
    await persistence.outgoingUpdate({ id: 'c' }, numbered(1, 5));
    expect(await read(persistence, 'c')).toEqual([1]);
    await persistence.outgoingClearMessageId({ id: 'c' }, numbered(1, 5));
    expect(accounting.holds('c')).toBe(false);
    expect(await read(persistence, 'c')).toEqual([]);
    expect(ended).toEqual(['c', 'c', 'c', 'c']);
  });
});
