/**
 * Per-device message limits counted across nodes: a device that reconnects to another node, or
 * a gateway whose peripherals' messages arrive on several, is held to one count. Windows are
 * fixed and aligned on multiples of their length (so every node agrees on which window a hit
 * belongs to), counted in Redis by one script per event-loop turn for all keys hit in that turn.
 *
 * The decision itself stays synchronous, as on one node: it uses the cluster's total as of the
 * last turn plus this node's hits not yet counted there. Hits on other nodes during the same
 * turn are therefore seen one turn late: the limit may be passed by what other nodes accept in
 * about a millisecond. When Redis cannot be reached, each node counts alone.
 */
import type { RateLimit } from '../domain/model.js';
import type { MessageLimiter } from '../domain/rate-limit.js';
import type { RedisLinks } from './redis.js';

// KEYS: the window counters; ARGV: the hits to add to each, then each window's ms.
const COUNT = `
local totals = {}
local n = #KEYS
for i = 1, n do
  totals[i] = redis.call('INCRBY', KEYS[i], ARGV[i])
  redis.call('PEXPIRE', KEYS[i], ARGV[n + i])
end
return totals`;

interface Window {
  key: string;
  index: number;
  length: number;
  /** The cluster's count as of the last answer from Redis (this node's counted hits included). */
  known: number;
  /** Hits sent to Redis, not answered yet. */
  sending: number;
  /** Hits not sent yet. */
  pending: number;
}

export class SharedRateLimiter implements MessageLimiter {
  private readonly windows = new Map<string, Window>();
  /** Windows with hits not sent yet: all a flush looks at, however many windows are open. */
  private readonly unsent = new Set<Window>();
  private flushScheduled = false;

  private readonly namespace: string;
  private readonly maxKeys: number;

  /**
   * `namespace` keeps the counters of one use apart from another's in Redis; `maxKeys` bounds
   * memory when the keys come from clients (remote addresses): a new key beyond it evicts the key
   * seen first (its hits not yet sent are still sent).
   */
  constructor(
    private readonly links: RedisLinks,
    options: { namespace?: string; maxKeys?: number } = {},
  ) {
    this.namespace = options.namespace ?? '';
    this.maxKeys = options.maxKeys ?? Number.POSITIVE_INFINITY;
  }

  hit(key: string, limit: RateLimit, now: number): boolean {
    if (limit.messages <= 0) return true;
    const w = this.window(key, limit, now);
    w.pending++;
    this.unsent.add(w);
    this.scheduleFlush();
    return w.known + w.sending + w.pending <= limit.messages;
  }

  blockedFor(key: string, limit: RateLimit, now: number): number {
    if (limit.messages <= 0) return 0;
    const w = this.windows.get(key);
    if (!w || w.index !== Math.floor(now / w.length)) return 0;
    return w.known + w.sending + w.pending >= limit.messages ? (w.index + 1) * w.length - now : 0;
  }

  retryAfterSeconds(key: string, now: number): number {
    const w = this.windows.get(key);
    if (!w) return 0;
    return Math.max(0, Math.ceil(((w.index + 1) * w.length - now) / 1000));
  }

  sweep(now: number): void {
    for (const [key, w] of this.windows) {
      if (Math.floor(now / w.length) > w.index && w.sending === 0 && w.pending === 0) this.windows.delete(key);
    }
  }

  forget(key: string): void {
    this.windows.delete(key);
  }

  get size(): number {
    return this.windows.size;
  }

  private window(key: string, limit: RateLimit, now: number): Window {
    const length = limit.windowSeconds * 1000;
    const index = Math.floor(now / length);
    let w = this.windows.get(key);
    if (!w || w.index !== index || w.length !== length) {
      if (!w && this.windows.size >= this.maxKeys) {
        const oldest = this.windows.keys().next();
        if (!oldest.done) this.windows.delete(oldest.value);
      }
      w = { key, index, length, known: 0, sending: 0, pending: 0 };
      this.windows.set(key, w);
    }
    return w;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /**
   * Sends this turn's hits, all keys in one script, and takes the totals back. Only the windows
   * hit since the last flush are looked at (also one replaced by a newer window meanwhile: its
   * hits still count in its own).
   */
  private flush(): void {
    const batch: Array<{ w: Window; hits: number }> = [];
    for (const w of this.unsent) {
      if (w.pending === 0) continue;
      batch.push({ w, hits: w.pending });
      w.sending += w.pending;
      w.pending = 0;
    }
    this.unsent.clear();
    if (batch.length === 0) return;
    const keys = batch.map(({ w }) => `${this.links.prefix}rate:${this.namespace}${w.key}:${w.length}:${w.index}`);
    const args = [...batch.map(({ hits }) => String(hits)), ...batch.map(({ w }) => String(w.length * 2))];
    this.links.command.eval(COUNT, keys.length, ...keys, ...args).then(
      (totals) => {
        batch.forEach(({ w, hits }, i) => {
          w.sending -= hits;
          w.known = Math.max(w.known + hits, Number((totals as unknown[])[i]));
        });
      },
      () => {
        // Redis is away: these hits count here only.
        for (const { w, hits } of batch) {
          w.sending -= hits;
          w.known += hits;
        }
      },
    );
  }
}
