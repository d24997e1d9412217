/**
 * aedes' in-memory persistence with a bound on each client's queue of QoS 1 messages: those
 * waiting for a persistent session (`clean: false`) to come back, and those sent and not yet
 * acknowledged. The memory backend keeps both in one list per client and never limits it, so a
 * device that subscribes and goes away (or never sends PUBACK) could make the server hold
 * every message published to its topics. Past the bound, further messages for that client are
 * dropped, as Mosquitto does with its queue limit, and the owner is told once per overflow.
 */
import aedesPersistence from 'aedes-persistence';

// A CommonJS module whose export is the factory; its typings describe it as ESM.
const memory = aedesPersistence as unknown as () => unknown;

export interface QueueLimits {
  messages: number;
  /** Payload bytes in all. */
  bytes: number;
}

export const DEFAULT_QUEUE_LIMITS: QueueLimits = { messages: 1_000, bytes: 8 * 1024 * 1024 };

interface QueuedPacket {
  payload?: Buffer | string;
  messageId?: number;
}

type Callback = (err: Error | null, value?: unknown) => void;

/** The persistence methods wrapped here, as aedes calls them (callback or promise). */
interface OutgoingMethods {
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
}

const sizeOf = (packet: QueuedPacket): number =>
  packet.payload === undefined
    ? 0
    : typeof packet.payload === 'string'
      ? Buffer.byteLength(packet.payload)
      : packet.payload.length;

export class QueueAccounting {
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

  release(clientId: string, packet: QueuedPacket): void {
    const queue = this.queues.get(clientId);
    if (!queue) return;
    queue.messages--;
    queue.bytes -= sizeOf(packet);
    queue.full = false;
    if (queue.messages <= 0) this.queues.delete(clientId);
  }

  queued(clientId: string): { messages: number; bytes: number } {
    const queue = this.queues.get(clientId);
    return { messages: queue?.messages ?? 0, bytes: queue?.bytes ?? 0 };
  }
}

/** A memory persistence for aedes whose per-client queues are bounded by `accounting`. */
export function boundedMemoryPersistence(accounting: QueueAccounting): BoundedPersistence {
  const persistence = memory() as unknown as OutgoingMethods;
  const enqueue = persistence.outgoingEnqueue.bind(persistence);
  const enqueueCombi = persistence.outgoingEnqueueCombi.bind(persistence);
  const clear = persistence.outgoingClearMessageId.bind(persistence);

  persistence.outgoingEnqueue = (sub, packet, cb) => {
    if (accounting.admit(sub.clientId, packet)) return enqueue(sub, packet, cb);
    if (cb) {
      process.nextTick(cb, null, packet);
      return undefined;
    }
    return Promise.resolve();
  };
  persistence.outgoingEnqueueCombi = (subs, packet, cb) =>
    enqueueCombi(
      subs.filter((sub) => accounting.admit(sub.clientId, packet)),
      packet,
      cb,
    );
  persistence.outgoingClearMessageId = (client, packet, cb) => {
    const removed = (found: QueuedPacket | undefined) => {
      if (found) accounting.release(client.id, found);
      return found;
    };
    if (cb) {
      const promise = clear(client, packet) as Promise<QueuedPacket | undefined>;
      promise.then(
        (found) => cb(null, removed(found)),
        (err: Error) => cb(err),
      );
      return undefined;
    }
    return (clear(client, packet) as Promise<QueuedPacket | undefined>).then(removed);
  };
  return persistence as unknown as BoundedPersistence;
}

/** What the broker itself calls on the persistence, besides handing it to aedes. */
export interface BoundedPersistence {
  removeSubscriptions(client: { id: string }, topics: string[]): Promise<void>;
  storeRetained(packet: object): Promise<void>;
}
