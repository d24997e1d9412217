/**
 * The broker's session state when nodes share Redis (docs/scale-out.md, "Persistent sessions and
 * retained messages"): aedes-persistence-redis keeps the subscriptions and QoS 1 queues of
 * persistent sessions, retained messages and wills in Redis, under the deployment's prefix, so a
 * client coming back to another node finds its session there, and a subscriber on any node gets
 * an application's retained messages. The bounds the broker keeps on one node (a client's queue,
 * an application's retained messages) are counted in Redis too, one script per decision, so
 * they hold across nodes.
 */
import { createRequire } from 'node:module';
import { Redis } from 'ioredis';
import { type QueueBounds, type QueuedPacket, type QueueLimits, sizeOf } from '../broker/bounded-persistence.js';
import { type RetainedBounds, type RetainedLimits, retainedRefusal } from '../broker/custom-topics.js';

// A CommonJS module without typings whose export is the factory.
const redisPersistence = createRequire(import.meta.url)('aedes-persistence-redis') as (options: {
  conn: Redis;
}) => unknown;

/** Admits a message into each queue of KEYS with room; 1 admitted, 0 refused, 2 refused and newly full. */
const ADMIT = `
local out = {}
for i, key in ipairs(KEYS) do
  local m = tonumber(redis.call('HGET', key, 'm') or '0')
  local b = tonumber(redis.call('HGET', key, 'b') or '0')
  if m + 1 > tonumber(ARGV[1]) or b + tonumber(ARGV[3]) > tonumber(ARGV[2]) then
    if redis.call('HSETNX', key, 'full', '1') == 1 then out[i] = 2 else out[i] = 0 end
  else
    redis.call('HINCRBY', key, 'm', 1)
    redis.call('HINCRBY', key, 'b', ARGV[3])
    out[i] = 1
  end
end
return out`;

const RELEASE = `
local m = redis.call('HINCRBY', KEYS[1], 'm', -1)
redis.call('HINCRBY', KEYS[1], 'b', -tonumber(ARGV[1]))
redis.call('HDEL', KEYS[1], 'full')
if m <= 0 then redis.call('DEL', KEYS[1]) end
return m`;

/**
 * KEYS[1]: the application's retained topics (topic -> bytes); KEYS[2]: every application's
 * total bytes. ARGV: topic, bytes, max messages, max bytes, application. 1 taken, 0 refused.
 */
const RETAIN = `
local prev = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
local bytes = tonumber(ARGV[2])
if bytes == 0 then
  if prev >= 0 then
    redis.call('HDEL', KEYS[1], ARGV[1])
    if redis.call('HINCRBY', KEYS[2], ARGV[5], -prev) <= 0 then redis.call('HDEL', KEYS[2], ARGV[5]) end
  end
  return 1
end
local count = redis.call('HLEN', KEYS[1])
if prev < 0 then count = count + 1 end
local total = tonumber(redis.call('HGET', KEYS[2], ARGV[5]) or '0') - math.max(prev, 0) + bytes
if count > tonumber(ARGV[3]) or total > tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], bytes)
redis.call('HSET', KEYS[2], ARGV[5], total)
return 1`;

/**
 * Takes the wills of a dead node out of the persistence's list of wills (KEYS[1]): the entries
 * starting with ARGV[1], at most ARGV[2] of them. One script, so two nodes sweeping at once take
 * disjoint sets. The list is rebuilt without them (one pass over it).
 */
const TAKE_WILLS = `
local taken, kept = {}, {}
local limit = tonumber(ARGV[2])
for _, key in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  if #taken < limit and string.sub(key, 1, #ARGV[1]) == ARGV[1] then taken[#taken + 1] = key
  else kept[#kept + 1] = key end
end
if #taken > 0 then
  redis.call('DEL', KEYS[1])
  for i = 1, #kept, 1000 do redis.call('RPUSH', KEYS[1], unpack(kept, i, math.min(i + 999, #kept))) end
end
return taken`;

/** Wills taken from the list per script run. */
const WILLS_PER_TAKE = 1_000;

/**
 * Drops a client's queue (KEYS[1], the persistence's list of the copies queued for it) with the
 * copies only it still refers to: each copy of a message queued for several clients counts them
 * (`<copy>:offlineCount`), and goes when the last lets it go. ARGV[1]: the key prefix, since the
 * list holds key names without it. Answers how many copies were deleted.
 */
const DROP_QUEUE = `
local deleted = 0
for _, key in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local copy = ARGV[1] .. key
  if string.sub(key, 1, 7) == 'packet:' then
    if redis.call('DECR', copy .. ':offlineCount') <= 0 then
      deleted = deleted + redis.call('DEL', copy)
      redis.call('DEL', copy .. ':offlineCount')
    end
  else
    deleted = deleted + redis.call('DEL', copy)
  end
end
redis.call('DEL', KEYS[1])
return deleted`;

/** Message ids remembered per node for the acknowledgement check (as many as the persistence's own cache). */
const SENT_IDS = 100_000;

const FORGET_APP = `
local topics = redis.call('HKEYS', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return topics`;

/** A Last Will as a client's CONNECT left it, with the access key it connected with (put by the broker). */
export interface StoredWill {
  clientId: string;
  topic: string;
  payload: Buffer;
  qos: 0 | 1 | 2;
  retain: boolean;
  keyId?: string;
}

export interface SharedSessionStore {
  /** The aedes persistence (not yet bounded: the broker wraps it). */
  persistence: unknown;
  /**
   * Takes the stored wills of the clients of broker `brokerId` (a node found dead), each one
   * once across every node: whoever takes a will publishes it, nobody else sees it again.
   */
  takeWills(brokerId: string): AsyncGenerator<StoredWill>;
  queues(limits: QueueLimits, onOverflow: (clientId: string, limits: QueueLimits) => void): QueueBounds;
  retained(limits: RetainedLimits): RetainedBounds;
  close(): Promise<void>;
}

/**
 * Opens the session store on its own Redis connection: aedes-persistence-redis names its keys
 * itself, so the connection puts the deployment's prefix (and `aedes:`) in front of every key.
 */
export function sharedSessionStore(options: { url: string; prefix: string }): SharedSessionStore {
  const { prefix } = options;
  const conn = new Redis(options.url, {
    keyPrefix: `${prefix}aedes:`,
    maxRetriesPerRequest: 1,
    enableAutoPipelining: true,
    retryStrategy: (times: number) => Math.min(100 * times, 1_000),
  });
  // Failures surface as failed persistence calls; the cluster reports Redis itself (/ready).
  conn.on('error', () => {});
  // The counters use the plain keys of the deployment, on the same connection: its keyPrefix
  // applies to them as well, so they sit beside the persistence's keys.
  const queueKey = (clientId: string) => `queue:${clientId}`;
  const retainedKey = (applicationId: string) => `retained-budget:${applicationId}`;
  const RETAINED_BYTES = 'retained-bytes';
  const persistence = redisPersistence({ conn }) as {
    streamWill(brokers: unknown): AsyncIterable<unknown>;
    delWill(client: { id: string; brokerId: string }): Promise<StoredWill | null>;
  };
  // aedes publishes, every four heartbeats, the stored wills of brokers it has not heard from
  // lately. Heartbeats stay on each node (src/cluster/custom-topic-emitter.ts), so every node
  // would take the others for dead and publish the wills of their connected clients. A will is
  // published by the node where its connection ends; those of a node that dies are taken by the
  // sweep after it (takeWills, src/cluster/node-sweep.ts), which knows which nodes are dead.
  persistence.streamWill = async function* () {};
  // The package's export is a callback layer over the persistence itself, which calls its own
  // methods (a clean session's cleanSubscriptions calls its removeSubscriptions): wrapped there.
  const inner = (persistence as unknown as { asyncPersistence: QueueMethods }).asyncPersistence;
  dropQueuesWithCopies(conn, `${prefix}aedes:`, inner);
  return {
    persistence,
    async *takeWills(brokerId) {
      // The persistence's keys: `will:<broker>:<client id, URI-encoded>`, listed in `will`.
      const start = `will:${brokerId}:`;
      for (;;) {
        const taken = (await conn.eval(TAKE_WILLS, 1, 'will', start, WILLS_PER_TAKE)) as string[];
        for (const key of taken) {
          let id: string;
          try {
            id = decodeURIComponent(key.slice(start.length));
          } catch {
            continue;
          }
          // Out of the list: no other node takes it. The persistence reads and deletes the will.
          const will = await persistence.delWill({ id, brokerId });
          if (will) yield { ...will, clientId: id };
        }
        if (taken.length < WILLS_PER_TAKE) return;
      }
    },
    queues(limits, onOverflow) {
      return {
        async admitEach(clientIds: string[], packet: QueuedPacket): Promise<boolean[]> {
          const answers = (await conn.eval(
            ADMIT,
            clientIds.length,
            ...clientIds.map(queueKey),
            limits.messages,
            limits.bytes,
            sizeOf(packet),
          )) as number[];
          return clientIds.map((clientId, i) => {
            if (answers[i] === 2) onOverflow(clientId, limits);
            return answers[i] === 1;
          });
        },
        async release(clientId: string, packet: QueuedPacket): Promise<void> {
          await conn.eval(RELEASE, 1, queueKey(clientId), sizeOf(packet));
        },
        async forget(clientId: string): Promise<void> {
          await conn.del(queueKey(clientId));
        },
      };
    },
    retained(limits) {
      return {
        async admit(applicationId: string, topic: string, bytes: number): Promise<string | null> {
          const taken = await conn.eval(
            RETAIN,
            2,
            retainedKey(applicationId),
            RETAINED_BYTES,
            topic,
            bytes,
            limits.messages,
            limits.bytes,
            applicationId,
          );
          return Number(taken) === 1 ? null : retainedRefusal(limits);
        },
        async release(applicationId: string): Promise<string[]> {
          return (await conn.eval(
            FORGET_APP,
            2,
            retainedKey(applicationId),
            RETAINED_BYTES,
            applicationId,
          )) as string[];
        },
        async usage(applicationId: string): Promise<{ messages: number; bytes: number }> {
          const [messages, bytes] = await Promise.all([
            conn.hlen(retainedKey(applicationId)),
            conn.hget(RETAINED_BYTES, applicationId),
          ]);
          return { messages, bytes: Number(bytes ?? 0) };
        },
      };
    },
    async close() {
      await conn.quit().catch(() => {});
      conn.disconnect();
    },
  };
}

/** The persistence methods around a client's queue, as aedes-persistence-redis 12 has them. */
interface QueueMethods {
  removeSubscriptions(client: { id: string }, topics: string[]): Promise<unknown>;
  outgoingUpdate(client: { id: string }, packet: QueuedPacket & { cmd?: string }): Promise<void>;
  outgoingClearMessageId(client: { id: string }, packet: QueuedPacket): Promise<QueuedPacket | undefined>;
}

/**
 * aedes-persistence-redis drops a client's queue with its last subscription (a clean
 * connection, an UNSUBSCRIBE of its last topic) by deleting the list, and leaves the copies it
 * pointed to (and their counts) in Redis for ever. Here the drop releases them first
 * (DROP_QUEUE): a copy no other client's queue counts is deleted, one still queued for others
 * loses one count. An acknowledgement that comes after the drop (a PUBACK under way, from this or
 * the previous connection) must then not count again: the persistence decrements a copy's count
 * on every acknowledgement, so an acknowledgement goes on only when it takes its copy out of the
 * client's queue itself.
 */
function dropQueuesWithCopies(conn: Redis, keyPrefix: string, persistence: QueueMethods): void {
  const listKey = (clientId: string) => `outgoing:${encodeURIComponent(clientId)}`;
  const removeSubscriptions = persistence.removeSubscriptions.bind(persistence);
  persistence.removeSubscriptions = async (client, topics) => {
    const left = await conn.hkeys(`client:${encodeURIComponent(client.id)}`);
    if (left.every((topic) => topics.includes(topic))) await conn.eval(DROP_QUEUE, 1, listKey(client.id), keyPrefix);
    return removeSubscriptions(client, topics);
  };
  // Which copy each message id sent to a client is (the persistence keeps this to itself).
  const sent = new Map<string, string>();
  const update = persistence.outgoingUpdate.bind(persistence);
  persistence.outgoingUpdate = async (client, packet) => {
    await update(client, packet);
    if (packet.cmd === 'pubrel' || packet.messageId === undefined || packet.brokerId === undefined) return;
    const id = `${client.id} ${packet.messageId}`;
    sent.delete(id);
    sent.set(id, `packet:${packet.brokerId}:${packet.brokerCounter}`);
    if (sent.size > SENT_IDS) sent.delete(sent.keys().next().value as string);
  };
  const clear = persistence.outgoingClearMessageId.bind(persistence);
  persistence.outgoingClearMessageId = async (client, packet) => {
    const id = `${client.id} ${packet.messageId}`;
    const copy = sent.get(id);
    sent.delete(id);
    // Not in the queue any more: dropped with it (and released then), or acknowledged already.
    if (copy !== undefined && Number(await conn.lrem(listKey(client.id), 0, copy)) === 0) return undefined;
    return clear(client, packet);
  };
}
