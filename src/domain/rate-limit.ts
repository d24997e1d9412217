import type { RateLimit } from './model.js';

/** What the platform counts messages with: one process's counters, or the cluster's (src/cluster/). */
export interface MessageLimiter {
  hit(key: string, limit: RateLimit, now: number): boolean;
  blockedFor(key: string, limit: RateLimit, now: number): number;
  retryAfterSeconds(key: string, now: number): number;
  sweep(now: number): void;
  forget(key: string): void;
  readonly size: number;
}

/**
 * Fixed-window message counter (spec: MQTT rate limit). One counter per key: a device, or
 * for gateways one per peripheral, so a busy peripheral never throttles its siblings.
 */
export class RateLimiter implements MessageLimiter {
  /** Each window remembers its own length, so a sweep never ends one early. */
  private readonly windows = new Map<string, { start: number; length: number; count: number }>();

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
      this.windows.set(key, { start: now, length: windowMs, count: 1 });
      return 1 <= limit.messages;
    }
    // The application's limit may have changed since the window opened: its current length holds.
    w.length = windowMs;
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
    const end = w ? w.start + w.length : now;
    return w && w.count >= limit.messages && end > now ? end - now : 0;
  }

  /**
   * Whole seconds until the window of `key` ends and its count starts afresh (the `Retry-After`
   * of a refusal); 0 when the key has no open window.
   */
  retryAfterSeconds(key: string, now: number): number {
    const w = this.windows.get(key);
    if (!w) return 0;
    return Math.max(0, Math.ceil((w.start + w.length - now) / 1000));
  }

  /** Drops counters whose own window ended, so memory follows the active devices only. */
  sweep(now: number): void {
    for (const [key, w] of this.windows) if (now - w.start >= w.length) this.windows.delete(key);
  }

  forget(key: string): void {
    this.windows.delete(key);
  }

  get size(): number {
    return this.windows.size;
  }
}
