/**
 * Message limits counted across nodes (src/cluster/shared-rate-limit.ts) on the real Redis,
 * under a prefix unique to the run: two limiters on one prefix stand for two nodes. Each turn's
 * hits go to Redis in one script, and that flush looks only at the windows hit since the last
 * one, however many are open.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import type { RedisLinks } from '../../src/cluster/redis.js';
import { SharedRateLimiter } from '../../src/cluster/shared-rate-limit.js';
import { eventually } from '../helpers/server.js';
import { REDIS_URL } from './nodes.js';

const prefix = `gatehouse-test-${randomBytes(4).toString('hex')}:`;
const redis = new Redis(REDIS_URL);
const links = { command: redis, prefix, nodeId: 'test' } as unknown as RedisLinks;
const limit = { messages: 5, windowSeconds: 60 };
/** The cluster's count of a key's window, as Redis has it. */
const counted = async (key: string, now: number) =>
  Number((await redis.get(`${prefix}rate:${key}:60000:${Math.floor(now / 60_000)}`)) ?? 0);

/** A Map that counts the entries it is asked to go through (by any of its iterations). */
class CountingMap<K, V> extends Map<K, V> {
  visited = 0;
  override [Symbol.iterator]() {
    this.visited += this.size;
    return super[Symbol.iterator]();
  }
  override entries() {
    this.visited += this.size;
    return super.entries();
  }
  override values() {
    this.visited += this.size;
    return super.values();
  }
  override keys() {
    this.visited += this.size;
    return super.keys();
  }
  override forEach(callback: (value: V, key: K, map: Map<K, V>) => void) {
    this.visited += this.size;
    super.forEach(callback);
  }
}

afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

describe('message limits counted in Redis', () => {
  it("holds a key to one count across two nodes, each node's hits of a turn sent together", async () => {
    const now = Date.now();
    const a = new SharedRateLimiter(links);
    const b = new SharedRateLimiter(links);
    expect([1, 2, 3].map(() => a.hit('device-1', limit, now))).toEqual([true, true, true]);
    await eventually(async () => (await counted('device-1', now)) === 3);
    // b knows the cluster's count once its own first hit is answered.
    expect(b.hit('device-1', limit, now)).toBe(true);
    await eventually(async () => (await counted('device-1', now)) === 4);
    expect(b.hit('device-1', limit, now)).toBe(true);
    expect(b.hit('device-1', limit, now)).toBe(false);
    expect(b.blockedFor('device-1', limit, now)).toBeGreaterThan(0);
  });

  it('looks only at the windows hit since the last flush, however many are open', async () => {
    const now = Date.now();
    const limiter = new SharedRateLimiter(links);
    for (let i = 0; i < 5_000; i++) limiter.hit(`idle-${i}`, limit, now);
    await eventually(async () => (await counted('idle-4999', now)) === 1);
    expect(limiter.size).toBe(5_000);
    // From here on, what the limiter goes through of its windows is counted.
    const windows = new CountingMap(
      (limiter as unknown as { windows: Map<string, unknown> }).windows as Map<string, unknown>,
    );
    (limiter as unknown as { windows: Map<string, unknown> }).windows = windows;
    for (let round = 1; round <= 20; round++) {
      expect(limiter.hit('busy', { messages: 100, windowSeconds: 60 }, now)).toBe(true);
      await eventually(async () => (await counted('busy', now)) === round);
    }
    expect(await counted('idle-0', now)).toBe(1);
    // Twenty flushes of one window each: not 20 × 5,000 windows gone through.
    expect(windows.visited).toBeLessThan(100);
  });
});
