/**
 * The broker's message emitter when nodes share Redis: messages on custom topics (scoped to
 * their application, `$app/...`, broker/custom-topics.ts) travel through Redis with
 * mqemitter-redis, so a subscriber on one node receives what a device publishes on another, and
 * so do the session store's subscription notices; everything else stays on this node's
 * in-memory emitter. State and command topics never reach
 * the emitter through Redis (state is ingested and sunk, commands are sent to each client
 * directly), and aedes' own `$SYS` announcements stay local: among them the "new client"
 * notice that would otherwise close a duplicate client id on other nodes without the
 * generation rule of src/cluster/ownership.ts.
 *
 * mqemitter-redis uses a message's topic as its Redis channel and has no prefix option: the
 * topics sent through it get the deployment's prefix in front, taken off again on delivery.
 */
import mqemitter from 'mqemitter';
import mqemitterRedis from 'mqemitter-redis';

type Message = Record<string, unknown> & { topic: string };
type Listener = (message: Message, done: () => void) => void;

/** What aedes calls on its `mq`. */
export interface BrokerEmitter {
  on(topic: string, listener: Listener, callback?: () => void): unknown;
  removeListener(topic: string, listener: Listener, callback?: () => void): unknown;
  emit(message: Message, callback?: (error?: Error) => void): void;
  close(callback: () => void): void;
  /** Resolves once the emitter can subscribe (its Redis links are ready). */
  ready?(): Promise<void>;
}

/**
 * Custom topics, and the subscription notices of aedes-persistence-redis (`$SYS/sub/add`,
 * `$SYS/sub/rm`): each node keeps a copy of the persistent sessions' subscriptions in memory to
 * find whose queue a message goes to, kept current by these notices (src/cluster/shared-sessions.ts).
 */
const SHARED = ['$app/', '$SYS/sub/'];

export function customTopicEmitter(options: { url: string; prefix: string; concurrency: number }): BrokerEmitter {
  const { prefix, concurrency } = options;
  const local = mqemitter({ concurrency });
  const shared = mqemitterRedis({ connectionString: options.url, concurrency, maxRetriesPerRequest: 1 });
  // Errors of the Redis links are the cluster's to report (membership, /ready): not thrown here.
  (shared as unknown as { state: NodeJS.EventEmitter }).state.on('error', () => {});
  const wrapped = new Map<Listener, Map<string, Listener>>();
  const isShared = (topic: string) => SHARED.some((start) => topic.startsWith(start));
  return {
    on(topic, listener, callback) {
      if (!isShared(topic)) return local.on(topic, listener, callback);
      const unprefixed: Listener = (message, done) =>
        listener({ ...message, topic: message.topic.slice(prefix.length) }, done);
      const byTopic = wrapped.get(listener) ?? new Map<string, Listener>();
      byTopic.set(topic, unprefixed);
      wrapped.set(listener, byTopic);
      return shared.on(prefix + topic, unprefixed, callback);
    },
    removeListener(topic, listener, callback) {
      if (!isShared(topic)) return local.removeListener(topic, listener, callback);
      const byTopic = wrapped.get(listener);
      const unprefixed = byTopic?.get(topic);
      if (!unprefixed) {
        callback?.();
        return undefined;
      }
      byTopic?.delete(topic);
      if (byTopic?.size === 0) wrapped.delete(listener);
      return shared.removeListener(prefix + topic, unprefixed, callback);
    },
    emit(message, callback) {
      if (!isShared(message.topic)) {
        local.emit(message, callback);
        return;
      }
      shared.emit({ ...message, topic: prefix + message.topic }, callback);
    },
    close(callback) {
      local.close(() => shared.close(callback));
    },
    // A (P)SUBSCRIBE that ioredis 5 is given while its connection is between connected and
    // ready is lost without an error (seen with mqemitter-redis 7.2.1 and ioredis 5.11): the
    // broker subscribes when it starts (the session store's notices), so it waits for this.
    async ready() {
      const links = shared as unknown as { subConn: RedisLink; pubConn: RedisLink };
      await Promise.all([whenReady(links.subConn), whenReady(links.pubConn)]);
    },
  };
}

interface RedisLink {
  status: string;
  once(event: 'ready', listener: () => void): unknown;
}

function whenReady(link: RedisLink): Promise<void> {
  if (link.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the message emitter could not reach Redis within 10 s')), 10_000);
    link.once('ready', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
