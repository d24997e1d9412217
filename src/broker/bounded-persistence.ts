/**
 * aedes' persistence with a bound on each client's queue of QoS 1 messages: those waiting for a
 * persistent session (`clean: false`) to come back, and those sent and not yet acknowledged.
 * Neither backend limits that queue (the memory one keeps it in one list per client, the Redis
 * one in one Redis list per client), so a device that subscribes and goes away (or never sends
 * PUBACK) could make the server hold every message published to its topics. Past the bound,
 * further messages for that client are dropped, as Mosquitto does with its queue limit, and the
 * owner is told once per overflow.
 *
 * One layer bounds both backends: a node alone keeps aedes' memory persistence and counts each
 * queue in memory (`QueueAccounting`); nodes sharing Redis keep aedes-persistence-redis and count
 * each queue in Redis (src/cluster/shared-sessions.ts), since a queue filled on one node is
 * emptied on whichever node the client comes back to (docs/scale-out.md).
 */
import { Readable } from 'node:stream';
import aedesPersistence from 'aedes-persistence';

// A CommonJS module whose export is the factory; its typings describe it as ESM.
const memory = aedesPersistence as unknown as () => unknown;

export interface QueueLimits {
  messages: number;
  /** Payload bytes in all. */
  bytes: number;
}

export const DEFAULT_QUEUE_LIMITS: QueueLimits = { messages: 1_000, bytes: 8 * 1024 * 1024 };

export interface QueuedPacket {
  payload?: Buffer | string | Uint8Array;
  messageId?: number;
  brokerId?: string;
  brokerCounter?: number;
}

/**
 * Told of the queue a persistent session is sent when it connects (aedes reads it right after
 * the CONNACK): whether to leave a message out (it went to the client already), and when the
 * whole queue has been read.
 */
export interface QueueReplay {
  skip(client: { id: string }, packet: QueuedPacket): boolean;
  ended(client: { id: string }): void;
  /**
   * A queued message (numbered for this connection) the broker did not send because it went out
   * live a moment before: aedes asks to clear it, but it stays queued until the live copy is
   * acknowledged (that acknowledgement clears it).
   */
  keep(client: { id: string }, packet: QueuedPacket): boolean;
}

/** What a queue bound is asked, by the node's memory (QueueAccounting) or by Redis. */
export interface QueueBounds {
  /** Which of the clients may take `packet` into their queue; each one admitted is counted. */
  admitEach(clientIds: string[], packet: QueuedPacket): boolean[] | Promise<boolean[]>;
  /** A message left the client's queue (acknowledged, or dropped by the broker). */
  release(clientId: string, packet: QueuedPacket): void | Promise<void>;
  /** The persistence dropped the client's whole queue (a clean session, its last subscription gone). */
  forget(clientId: string): void | Promise<void>;
}

type Callback = (err: Error | null, value?: unknown) => void;

/** The persistence methods wrapped here, as aedes calls them (callback or promise). */
interface WrappedMethods {
  outgoingEnqueue(sub: { clientId: string }, packet: QueuedPacket, cb?: Callback): Promise<void> | undefined;
  outgoingEnqueueCombi(
    subs: Array<{ clientId: string }>,
    packet: QueuedPacket,
    cb?: Callback,
  ): Promise<void> | undefined;
  outgoingClearMessageId(
    client: { id: string },
    packet: QueuedPacket,
    cb?: Callback,
  ): Promise<QueuedPacket | undefined> | undefined;
  cleanSubscriptions(client: { id: string }, cb?: Callback): Promise<unknown> | undefined;
  removeSubscriptions(client: { id: string }, topics: string[], cb?: Callback): Promise<unknown> | undefined;
  subscriptionsByClient(client: { id: string }, cb?: Callback): Promise<unknown[]> | undefined;
  outgoingStream(client: { id: string; clean?: boolean }): AsyncIterable<QueuedPacket>;
}

export const sizeOf = (packet: QueuedPacket): number =>
  packet.payload === undefined
    ? 0
    : typeof packet.payload === 'string'
      ? Buffer.byteLength(packet.payload)
      : packet.payload.length;

export class QueueAccounting implements QueueBounds {
  private readonly queues = new Map<string, { messages: number; bytes: number; full: boolean }>();

  constructor(
    private readonly limits: QueueLimits,
    /** Called when a client's queue first overflows (not again until it has room). */
    private readonly onOverflow: (clientId: string, limits: QueueLimits) => void,
  ) {}

  admit(clientId: string, packet: QueuedPacket): boolean {
    let queue = this.queues.get(clientId);
    if (!queue) {
      queue = { messages: 0, bytes: 0, full: false };
      this.queues.set(clientId, queue);
    }
    const bytes = sizeOf(packet);
    if (queue.messages + 1 > this.limits.messages || queue.bytes + bytes > this.limits.bytes) {
      if (!queue.full) {
        queue.full = true;
        this.onOverflow(clientId, this.limits);
      }
      return false;
    }
    queue.messages++;
    queue.bytes += bytes;
    return true;
  }

  admitEach(clientIds: string[], packet: QueuedPacket): boolean[] {
    return clientIds.map((id) => this.admit(id, packet));
  }

  release(clientId: string, packet: QueuedPacket): void {
    const queue = this.queues.get(clientId);
    if (!queue) return;
    queue.messages--;
    queue.bytes -= sizeOf(packet);
    queue.full = false;
    if (queue.messages <= 0) this.queues.delete(clientId);
  }

  forget(clientId: string): void {
    this.queues.delete(clientId);
  }

  /** Whether anything of the client's is counted (queued, or sent and not yet acknowledged). */
  holds(clientId: string): boolean {
    return this.queues.has(clientId);
  }

  queued(clientId: string): { messages: number; bytes: number } {
    const queue = this.queues.get(clientId);
    return { messages: queue?.messages ?? 0, bytes: queue?.bytes ?? 0 };
  }
}

/** Calls back `cb` with the outcome when given one (aedes' callback style), else returns the promise. */
function settle<T>(promise: Promise<T>, cb: Callback | undefined): Promise<T> | undefined {
  if (!cb) return promise;
  promise.then(
    (value) => cb(null, value),
    (err: Error) => cb(err),
  );
  return undefined;
}

/**
 * Wraps a persistence for aedes (aedes-persistence or aedes-persistence-redis, both with the
 * callback-or-promise interface of aedes-persistence 11) so that each client's queue is bounded
 * by `bounds`. The instance is changed in place and returned, so everything else it does
 * (its `ready` event, its broker setter) stays as it was.
 */
export function boundedPersistence(
  backend: unknown,
  bounds: QueueBounds,
  options: {
    /** The backend drops a client's queue with its last subscription (aedes-persistence-redis does). */
    dropsQueueWithSubscriptions?: boolean;
    replay?: QueueReplay;
    /**
     * Whether the client's queue is known to be empty now (nothing queued, nothing sent and not
     * yet acknowledged): its read after the CONNACK is then an empty stream, nothing more.
     */
    isEmpty?: (clientId: string) => boolean;
  } = {},
): BoundedPersistence {
  const persistence = backend as WrappedMethods;
  const enqueueCombi = persistence.outgoingEnqueueCombi.bind(persistence);
  const clear = persistence.outgoingClearMessageId.bind(persistence);
  const cleanSubscriptions = persistence.cleanSubscriptions.bind(persistence);
  const removeSubscriptions = persistence.removeSubscriptions.bind(persistence);
  const subscriptionsByClient = persistence.subscriptionsByClient.bind(persistence);
  const outgoingStream = persistence.outgoingStream.bind(persistence);

  const enqueueAdmitted = async (subs: Array<{ clientId: string }>, packet: QueuedPacket): Promise<void> => {
    if (subs.length === 0) return;
    const admitted = await bounds.admitEach(
      subs.map((sub) => sub.clientId),
      packet,
    );
    const kept = subs.filter((_, i) => admitted[i]);
    if (kept.length === 0) return;
    try {
      await (enqueueCombi(kept, packet) as Promise<void>);
    } catch (err) {
      for (const sub of kept) await bounds.release(sub.clientId, packet);
      throw err;
    }
  };
  persistence.outgoingEnqueue = (sub, packet, cb) => settle(enqueueAdmitted([sub], packet), cb);
  persistence.outgoingEnqueueCombi = (subs, packet, cb) => settle(enqueueAdmitted(subs, packet), cb);
  persistence.outgoingClearMessageId = (client, packet, cb) =>
    settle(
      // A packet never numbered for the client was never sent to it: nothing to clear. aedes asks
      // this for a message it did not forward live; the memory backend would otherwise remove
      // whichever queued message is not numbered yet, the Redis one does nothing.
      (packet.messageId === undefined || options.replay?.keep(client, packet)
        ? Promise.resolve(undefined)
        : (clear(client, packet) as Promise<QueuedPacket | undefined>)
      ).then(async (found) => {
        if (found) await bounds.release(client.id, found);
        return found;
      }),
      cb,
    );
  persistence.cleanSubscriptions = (client, cb) =>
    settle(
      (cleanSubscriptions(client) as Promise<unknown>).then(async (value) => {
        // A clean session starts with an empty queue: what the counters held is gone, or is
        // cleared one by one as the queue is emptied (QueueAccounting.release ignores the rest).
        if (options.dropsQueueWithSubscriptions) await bounds.forget(client.id);
        return value;
      }),
      cb,
    );
  persistence.removeSubscriptions = (client, topics, cb) =>
    settle(
      (removeSubscriptions(client, topics) as Promise<unknown>).then(async (value) => {
        if (options.dropsQueueWithSubscriptions) {
          const left = (await subscriptionsByClient(client)) as unknown[];
          if (left.length === 0) await bounds.forget(client.id);
        }
        return value;
      }),
      cb,
    );
  // Acknowledgements still being written, per client: a session resumed at once must not read
  // its queue before they are, or it is sent again what it acknowledged (the reconnect race).
  const clearing = new Map<string, Set<Promise<unknown>>>();
  const track = <T>(clientId: string, promise: Promise<T>): Promise<T> => {
    let set = clearing.get(clientId);
    if (!set) {
      set = new Set();
      clearing.set(clientId, set);
    }
    const entry = promise.catch(() => {});
    set.add(entry);
    void entry.then(() => {
      set.delete(entry);
      if (set.size === 0 && clearing.get(clientId) === set) clearing.delete(clientId);
    });
    return promise;
  };
  const settled = async (clientId: string): Promise<void> => {
    const set = clearing.get(clientId);
    if (set) await Promise.all(set);
  };
  const cleared = persistence.outgoingClearMessageId;
  persistence.outgoingClearMessageId = (client, packet, cb) => {
    if (cb) return cleared(client, packet, cb);
    return track(client.id, cleared(client, packet) as Promise<QueuedPacket | undefined>);
  };
  const replay = options.replay;
  persistence.outgoingStream = (client) => {
    // A clean session's queue went with its subscriptions (cleanSubscriptions, before the
    // CONNACK): nothing to read, and no Redis round trip after the CONNACK that could fail it.
    if (client.clean === true && options.dropsQueueWithSubscriptions) return emptyStream();
    // Most connections have nothing queued: aedes reads the queue of every one of them, and the
    // generator below over the backend's stream cost about 1 KB of garbage per connection.
    // Nothing queued also means no acknowledgement being written (it is counted until written).
    if (options.isEmpty?.(client.id)) {
      replay?.ended(client);
      return emptyStream();
    }
    async function* unsent(): AsyncGenerator<QueuedPacket> {
      try {
        await settled(client.id);
        for await (const packet of outgoingStream(client)) {
          if (!replay?.skip(client, packet)) yield packet;
        }
      } finally {
        replay?.ended(client);
      }
    }
    return Readable.from(unsent());
  };
  return Object.assign(persistence, { settled }) as unknown as BoundedPersistence;
}

/** A memory persistence for aedes whose per-client queues are bounded and counted by `accounting`. */
export function boundedMemoryPersistence(accounting: QueueAccounting, replay?: QueueReplay): BoundedPersistence {
  // The memory backend's queue holds exactly what the accounting counts (admitted, not yet cleared).
  const isEmpty = (clientId: string) => !accounting.holds(clientId);
  return boundedPersistence(memory(), accounting, replay ? { replay, isEmpty } : { isEmpty });
}

/** Ends as soon as it is read: a queue with nothing in it. */
function endAtOnce(this: Readable): void {
  this.push(null);
}

function emptyStream(): Readable {
  return new Readable({ objectMode: true, read: endAtOnce });
}

/** What the broker itself calls on the persistence, besides handing it to aedes. */
export interface BoundedPersistence {
  removeSubscriptions(client: { id: string }, topics: string[]): Promise<void>;
  storeRetained(packet: object): Promise<void>;
  /** Resolves once the acknowledgements of the client's messages received so far are written. */
  settled(clientId: string): Promise<void>;
}
