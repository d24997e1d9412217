import { describe, expect, it } from 'vitest';
import { EventBus } from '../../src/core/events.js';
import type { DeviceLogEntry } from '../../src/domain/model.js';

const entry: DeviceLogEntry = { deviceId: 'd', applicationId: 'a', time: 1, kind: 'connect', details: {} };

describe('EventBus', () => {
  it('reports a throwing listener and still runs the others', () => {
    const errors: unknown[] = [];
    const bus = new EventBus((err) => errors.push(err));
    const seen: string[] = [];
    bus.on('deviceLog', () => {
      throw new Error('boom');
    });
    bus.on('deviceLog', (e) => {
      seen.push(e.deviceId);
    });
    expect(() => bus.emit('deviceLog', entry)).not.toThrow();
    expect(seen).toEqual(['d']);
    expect(errors).toHaveLength(1);
  });

  it('reports an async listener that rejects, without an unhandled rejection, and does not wait for it', async () => {
    const errors: Array<{ err: unknown; event: string }> = [];
    const bus = new EventBus((err, event) => errors.push({ err, event }));
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    let finished = false;
    bus.on('deviceLog', async () => {
      await new Promise((r) => setTimeout(r, 20));
      finished = true;
      throw new Error('late failure');
    });
    bus.emit('deviceLog', entry);
    expect(finished).toBe(false); // emit returned before the listener settled
    await new Promise((r) => setTimeout(r, 60));
    process.off('unhandledRejection', onUnhandled);
    expect(finished).toBe(true);
    expect(errors.map((e) => [(e.err as Error).message, e.event])).toEqual([['late failure', 'deviceLog']]);
    expect(unhandled).toEqual([]);
  });

  it('removes every listener of an owner, and only those', () => {
    const bus = new EventBus();
    const owner = {};
    const seen: string[] = [];
    bus.on('deviceLog', () => void seen.push('owned 1'), owner);
    bus.on('state', () => void seen.push('owned 2'), owner);
    bus.on('deviceLog', () => void seen.push('other'));
    bus.removeOwner(owner);
    bus.emit('deviceLog', entry);
    expect(seen).toEqual(['other']);
    expect(bus.hasListeners('state')).toBe(false);
  });

  it('unsubscribes one listener with the function on() returns', () => {
    const bus = new EventBus();
    const seen: number[] = [];
    const off = bus.on('deviceLog', () => void seen.push(1));
    off();
    bus.emit('deviceLog', entry);
    expect(seen).toEqual([]);
  });
});
