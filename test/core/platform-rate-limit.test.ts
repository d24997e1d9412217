/**
 * The platform's rate limiting over time: the periodic sweep (every minute, from `start()`) must
 * never end a window early, however long the application's window is.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Platform } from '../../src/core/platform.js';
import type { Principal } from '../../src/domain/authorization.js';
import type { AccessKey, Device } from '../../src/domain/model.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';

const T0 = 1_700_000_000_000;

describe('Platform rate limits', () => {
  let now = T0;
  let platform: Platform;

  beforeEach(async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    now = T0;
    platform = new Platform({ store: await openSqliteStore({ filename: ':memory:' }), clock: () => now });
    await platform.start();
  });
  afterEach(async () => {
    await platform.stop();
    vi.useRealTimers();
  });

  async function deviceIn(rateLimit: { messages: number; windowSeconds: number }): Promise<Principal> {
    const app = await platform.registry.createApplication({ name: 'limits', rateLimit });
    const device = { id: `${app.id.slice(0, 23)}d`, applicationId: app.id, deviceClass: 'standalone' } as Device;
    return { kind: 'device', device, key: { applicationId: app.id } as AccessKey };
  }

  /** Moves the clock and lets the platform's minute timer run for that long. */
  function advance(ms: number): void {
    for (let left = ms; left > 0; left -= 60_000) {
      const step = Math.min(60_000, left);
      now += step;
      vi.advanceTimersByTime(step);
    }
  }

  it('keeps a two-hour window closed across the hourly mark', async () => {
    const principal = await deviceIn({ messages: 1, windowSeconds: 7_200 });
    expect(platform.countMessage(principal, undefined, now)).toBeUndefined();
    expect(platform.countMessage(principal, undefined, now)).toBe('device');
    advance(61 * 60_000);
    expect(platform.countMessage(principal, undefined, now)).toBe('device');
    expect(platform.retryAfterSeconds(principal, undefined, now)).toBe(7_200 - 61 * 60);
    advance(59 * 60_000);
    expect(platform.countMessage(principal, undefined, now)).toBeUndefined();
  });

  it('still forgets windows that ended', async () => {
    const principal = await deviceIn({ messages: 1, windowSeconds: 15 });
    platform.countMessage(principal, undefined, now);
    expect(platform.limiter.size).toBe(1);
    advance(60_000);
    expect(platform.limiter.size).toBe(0);
  });
});
