import type { RateLimit } from './model.js';

/**
 * Fixed-window message counter (spec: MQTT rate limit). One counter per key: a device, or
 * for gateways one per peripheral, so a busy peripheral never throttles its siblings.
 */
export class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  /**
   * `maxKeys` bounds memory when the keys come from clients (remote addresses): a new key
   * beyond it evicts the key seen first.
   */
  constructor(private readonly maxKeys = Number.POSITIVE_INFINITY) {}

  /** Counts one message; false when it is over the limit. */
  hit(key: string, limit: RateLimit, now: number): boolean {
    if (limit.messages <= 0) return true;
    const windowMs = limit.windowSeconds * 1000;
    const w = this.windows.get(key);
    if (!w || now - w.start >= windowMs) {
      if (!w && this.windows.size >= this.maxKeys) {
        const oldest = this.windows.keys().next();
        if (!oldest.done) this.windows.delete(oldest.value);
      }
      this.windows.set(key, { start: now, count: 1 });
      return 1 <= limit.messages;
    }
    w.count++;
    return w.count <= limit.messages;
  }

  /**
   * Without counting: 0 while `key` is under its limit, otherwise the ms until its window ends
   * (when the next `hit` is allowed again).
   */
  blockedFor(key: string, limit: RateLimit, now: number): number {
    if (limit.messages <= 0) return 0;
    const w = this.windows.get(key);
    const end = w ? w.start + limit.windowSeconds * 1000 : now;
    return w && w.count >= limit.messages && end > now ? end - now : 0;
  }

  /** Drops counters whose window ended, so memory follows the active devices only. */
  sweep(now: number, maxWindowMs: number): void {
    for (const [key, w] of this.windows) if (now - w.start >= maxWindowMs) this.windows.delete(key);
  }

  forget(key: string): void {
    this.windows.delete(key);
  }

  get size(): number {
    return this.windows.size;
  }
}
