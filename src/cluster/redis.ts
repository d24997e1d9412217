/**
 * The Redis connections of a node (docs/scale-out.md, "Nodes sharing Redis"): one for commands
 * and scripts, one subscribed to the channels. Every key and channel starts with the
 * deployment's prefix, so several deployments (and test runs) can share one Redis: pub/sub
 * ignores the database number, so the prefix is what keeps their channels apart.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from '../logger.js';

export interface RedisLinks {
  /** Commands, scripts and PUBLISH. */
  command: Redis;
  /** SUBSCRIBE only. */
  subscriber: Redis;
  prefix: string;
  nodeId: string;
  close(): Promise<void>;
}

/** A node id: random per start, so a restarted node never inherits what its previous life held. */
export function newNodeId(): string {
  return randomBytes(6).toString('hex');
}

/**
 * Connects both links; rejects when Redis cannot be reached at start (the caller turns that
 * into a one-line refusal). Once started, ioredis reconnects by itself; commands issued while
 * Redis is away fail after one retry instead of waiting forever, so a request that needs Redis
 * answers with an error and ingest does not pile up behind it.
 */
export async function connectRedis(url: string, prefix: string, logger: Logger): Promise<RedisLinks> {
  const options = {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    enableAutoPipelining: true,
    connectTimeout: 5_000,
    retryStrategy: (times: number) => Math.min(100 * times, 1_000),
  };
  const command = new Redis(url, options);
  const subscriber = new Redis(url, { ...options, enableAutoPipelining: false });
  let reported = false;
  // Until both links are up, a failure is the caller's to report (one line, and the start stops).
  let started = false;
  for (const [name, link] of [
    ['command', command],
    ['subscriber', subscriber],
  ] as const) {
    // ioredis emits 'error' on every failed reconnect: log the first of a run only.
    link.on('error', (err: Error) => {
      if (reported || !started) return;
      reported = true;
      logger.error({ event: 'redisError', link: name, err }, 'Redis connection failed');
    });
    link.on('ready', () => {
      if (reported) logger.info({ event: 'redisReady', link: name }, 'Redis connection is back');
      reported = false;
    });
  }
  try {
    await Promise.all([command.connect(), subscriber.connect()]);
    started = true;
  } catch (err) {
    command.disconnect();
    subscriber.disconnect();
    throw err;
  }
  return {
    command,
    subscriber,
    prefix,
    nodeId: newNodeId(),
    async close() {
      await Promise.allSettled([command.quit(), subscriber.quit()]);
      command.disconnect();
      subscriber.disconnect();
    },
  };
}
