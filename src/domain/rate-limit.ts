import type { RateLimit } from './model.js';

/**
 * Fixed-window message counter (spec: MQTT rate limit). One counter per key: a device, or
 * for gateways one per peripheral, so a busy peripheral never throttles its siblings.
 */
export class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  /** Counts one message; false when it is over the limit. */
  hit(key: string, limit: RateLimit, now: number): boolean {
    if (limit.messages <= 0) return true;
    const windowMs = limit.windowSeconds * 1000;
    const w = this.windows.get(key);
    if (!w || now - w.start >= windowMs) {
      this.windows.set(key, { start: now, count: 1 });
      return 1 <= limit.messages;
    }
    w.count++;
    return w.count <= limit.messages;
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
