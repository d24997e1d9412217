import { describe, expect, it } from 'vitest';
import { DEFAULT_RATE_LIMIT, type RateLimit } from '../../src/domain/model.js';
import { RateLimiter } from '../../src/domain/rate-limit.js';

const LIMIT: RateLimit = { messages: 3, windowSeconds: 10 };
const T0 = 1_700_000_000_000;

function hits(limiter: RateLimiter, key: string, n: number, limit: RateLimit, now: number): boolean[] {
  return Array.from({ length: n }, () => limiter.hit(key, limit, now));
}

describe('RateLimiter', () => {
  it('allows up to the limit within a window, then refuses', () => {
    const limiter = new RateLimiter();
    expect(hits(limiter, 'dev', 5, LIMIT, T0)).toEqual([true, true, true, false, false]);
  });

  it('spreads the count over the whole window', () => {
    const limiter = new RateLimiter();
    expect(limiter.hit('dev', LIMIT, T0)).toBe(true);
    expect(limiter.hit('dev', LIMIT, T0 + 3_000)).toBe(true);
    expect(limiter.hit('dev', LIMIT, T0 + 6_000)).toBe(true);
    expect(limiter.hit('dev', LIMIT, T0 + 9_999)).toBe(false);
  });

  it('applies the default of 30 messages per 15 s', () => {
    const limiter = new RateLimiter();
    const results = hits(limiter, 'dev', 31, DEFAULT_RATE_LIMIT, T0);
    expect(results.slice(0, 30).every(Boolean)).toBe(true);
    expect(results[30]).toBe(false);
    expect(limiter.hit('dev', DEFAULT_RATE_LIMIT, T0 + 15_000)).toBe(true);
  });

  it('counts each key separately, so one peripheral never throttles its siblings', () => {
    const limiter = new RateLimiter();
    expect(hits(limiter, 'gw:periA', 4, LIMIT, T0)).toEqual([true, true, true, false]);
    expect(hits(limiter, 'gw:periB', 3, LIMIT, T0)).toEqual([true, true, true]);
    expect(hits(limiter, 'gw', 3, LIMIT, T0)).toEqual([true, true, true]);
    expect(limiter.size).toBe(3);
  });

  it('starts a new window once the window has passed', () => {
    const limiter = new RateLimiter();
    hits(limiter, 'dev', 4, LIMIT, T0);
    expect(limiter.hit('dev', LIMIT, T0 + 9_999)).toBe(false);
    expect(hits(limiter, 'dev', 4, LIMIT, T0 + 10_000)).toEqual([true, true, true, false]);
    expect(limiter.hit('dev', LIMIT, T0 + 19_999)).toBe(false);
    expect(limiter.hit('dev', LIMIT, T0 + 20_000)).toBe(true);
  });

  it('starts the new window at the first message after the old one, not on a fixed grid', () => {
    const limiter = new RateLimiter();
    hits(limiter, 'dev', 3, LIMIT, T0);
    expect(hits(limiter, 'dev', 3, LIMIT, T0 + 25_000)).toEqual([true, true, true]);
    expect(limiter.hit('dev', LIMIT, T0 + 34_999)).toBe(false);
    expect(limiter.hit('dev', LIMIT, T0 + 35_000)).toBe(true);
  });

  it('messages: 0 disables the limit and keeps no counter', () => {
    const limiter = new RateLimiter();
    const off: RateLimit = { messages: 0, windowSeconds: 15 };
    expect(hits(limiter, 'dev', 1000, off, T0).every(Boolean)).toBe(true);
    expect(limiter.size).toBe(0);
  });

  it('a limit of 1 allows exactly one message per window', () => {
    const limiter = new RateLimiter();
    const one: RateLimit = { messages: 1, windowSeconds: 1 };
    expect(hits(limiter, 'dev', 2, one, T0)).toEqual([true, false]);
    expect(limiter.hit('dev', one, T0 + 1_000)).toBe(true);
  });

  it('a lowered limit applies to the current window', () => {
    const limiter = new RateLimiter();
    hits(limiter, 'dev', 2, LIMIT, T0);
    expect(limiter.hit('dev', { messages: 2, windowSeconds: 10 }, T0 + 1)).toBe(false);
  });

  it('sweep drops counters whose window ended and keeps the others', () => {
    const limiter = new RateLimiter();
    limiter.hit('old', LIMIT, T0);
    limiter.hit('recent', LIMIT, T0 + 5_000);
    expect(limiter.size).toBe(2);

    limiter.sweep(T0 + 9_999);
    expect(limiter.size).toBe(2);

    limiter.sweep(T0 + 10_000);
    expect(limiter.size).toBe(1);

    // The recent counter survived with its count.
    limiter.hit('recent', LIMIT, T0 + 10_000);
    limiter.hit('recent', LIMIT, T0 + 10_000);
    expect(limiter.hit('recent', LIMIT, T0 + 10_000)).toBe(false);

    limiter.sweep(T0 + 15_000);
    expect(limiter.size).toBe(0);
  });

  it('a swept key starts afresh', () => {
    const limiter = new RateLimiter();
    hits(limiter, 'dev', 4, LIMIT, T0);
    limiter.sweep(T0 + 10_000);
    expect(limiter.size).toBe(0);
    expect(hits(limiter, 'dev', 3, LIMIT, T0 + 10_000)).toEqual([true, true, true]);
  });

  it("sweep honours each window's own length: a two-hour window outlives an hourly sweep", () => {
    const limiter = new RateLimiter();
    const twoHours: RateLimit = { messages: 2, windowSeconds: 7_200 };
    const tenSeconds: RateLimit = { messages: 2, windowSeconds: 10 };
    hits(limiter, 'slow', 3, twoHours, T0);
    hits(limiter, 'fast', 1, tenSeconds, T0);
    // The platform sweeps every minute; an hour and more later the long window is still open.
    for (let t = T0 + 60_000; t <= T0 + 7_199_000; t += 60_000) limiter.sweep(t);
    expect(limiter.size).toBe(1);
    expect(limiter.hit('slow', twoHours, T0 + 7_199_999)).toBe(false);
    limiter.sweep(T0 + 7_200_000);
    expect(limiter.size).toBe(0);
    expect(limiter.hit('slow', twoHours, T0 + 7_200_000)).toBe(true);
  });

  it('sweep follows a window whose limit changed since it opened', () => {
    const limiter = new RateLimiter();
    hits(limiter, 'dev', 1, { messages: 5, windowSeconds: 10 }, T0);
    hits(limiter, 'dev', 1, { messages: 5, windowSeconds: 100 }, T0 + 1_000);
    limiter.sweep(T0 + 50_000);
    expect(limiter.size).toBe(1);
    limiter.sweep(T0 + 100_000);
    expect(limiter.size).toBe(0);
  });

  it('tells how many whole seconds remain until a window starts afresh', () => {
    const limiter = new RateLimiter();
    expect(limiter.retryAfterSeconds('dev', T0)).toBe(0);
    hits(limiter, 'dev', 4, LIMIT, T0);
    expect(limiter.retryAfterSeconds('dev', T0)).toBe(10);
    expect(limiter.retryAfterSeconds('dev', T0 + 1)).toBe(10);
    expect(limiter.retryAfterSeconds('dev', T0 + 1_000)).toBe(9);
    expect(limiter.retryAfterSeconds('dev', T0 + 9_001)).toBe(1);
    expect(limiter.retryAfterSeconds('dev', T0 + 10_000)).toBe(0);
    expect(limiter.retryAfterSeconds('other', T0)).toBe(0);
  });

  it('forget drops one counter', () => {
    const limiter = new RateLimiter();
    hits(limiter, 'a', 4, LIMIT, T0);
    hits(limiter, 'b', 4, LIMIT, T0);
    limiter.forget('a');
    expect(limiter.size).toBe(1);
    expect(limiter.hit('a', LIMIT, T0)).toBe(true);
    expect(limiter.hit('b', LIMIT, T0)).toBe(false);
  });

  it('tells how long a key over its limit stays blocked, without counting', () => {
    const limiter = new RateLimiter();
    expect(limiter.blockedFor('dev', LIMIT, T0)).toBe(0);
    hits(limiter, 'dev', 2, LIMIT, T0);
    expect(limiter.blockedFor('dev', LIMIT, T0 + 1_000)).toBe(0);
    limiter.hit('dev', LIMIT, T0 + 1_000);
    expect(limiter.blockedFor('dev', LIMIT, T0 + 4_000)).toBe(6_000);
    expect(limiter.blockedFor('dev', LIMIT, T0 + 4_000)).toBe(6_000);
    expect(limiter.blockedFor('dev', LIMIT, T0 + 10_000)).toBe(0);
    expect(limiter.blockedFor('dev', { messages: 0, windowSeconds: 10 }, T0 + 4_000)).toBe(0);
  });

  it('keeps at most maxKeys counters, dropping the one seen first', () => {
    const limiter = new RateLimiter(2);
    limiter.hit('a', LIMIT, T0);
    limiter.hit('b', LIMIT, T0);
    limiter.hit('a', LIMIT, T0);
    limiter.hit('c', LIMIT, T0);
    expect(limiter.size).toBe(2);
    // 'a' was dropped: it starts again from one.
    expect(hits(limiter, 'a', 3, LIMIT, T0)).toEqual([true, true, true]);
  });
});
