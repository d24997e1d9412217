import { describe, expect, it } from 'vitest';
import { EventHistory } from '../../src/core/event-history.js';
import { EventBus } from '../../src/core/events.js';

const APP = 'a'.repeat(24);
const OTHER = 'b'.repeat(24);
const DEV = 'd'.repeat(24);

function state(applicationId: string, n: number, data: Record<string, unknown> = { n }) {
  return { applicationId, deviceId: DEV, time: 1_700_000_000_000 + n, data, reportedBy: DEV };
}

describe('EventHistory', () => {
  it('records watched applications only, with increasing ids and REST-shaped payloads', () => {
    const bus = new EventBus();
    const history = new EventHistory(bus, { clock: () => 5 });
    expect(history.lastId).toBe(5000);
    bus.emit('state', state(APP, 0)); // nobody watches yet
    expect(history.lastId).toBe(5000);

    history.watch(APP);
    bus.emit('state', state(APP, 1));
    bus.emit('state', state(OTHER, 2));
    bus.emit('command', {
      id: 'c'.repeat(24),
      applicationId: APP,
      deviceId: DEV,
      name: 'go',
      payload: null,
      time: 1_700_000_000_000,
      routedTo: [],
      sentBy: 'api',
    });
    bus.emit('deviceLog', {
      applicationId: APP,
      deviceId: DEV,
      time: 1_700_000_000_000,
      kind: 'rejected',
      details: { reason: 'no', deviceId: OTHER },
    });
    const { events, evictedUpTo } = history.after(APP, 0);
    expect(evictedUpTo).toBe(5000);
    expect(events.map((e) => [e.id, e.type])).toEqual([
      [5001, 'state'],
      [5002, 'command'],
      [5003, 'rejected'],
    ]);
    expect(JSON.parse(events[0]!.deviceJson!)).toEqual({
      time: '2023-11-14T22:13:20.001Z',
      data: { n: 1 },
      reportedBy: DEV,
    });
    expect(JSON.parse(events[0]!.json)).toEqual({ deviceId: DEV, ...JSON.parse(events[0]!.deviceJson!) });
    expect(JSON.parse(events[1]!.deviceJson!)).toMatchObject({ id: 'c'.repeat(24), name: 'go', routedTo: [] });
    expect(events[2]!.deviceJson).toBeUndefined();
    expect(JSON.parse(events[2]!.json)).toEqual({
      deviceId: DEV,
      time: '2023-11-14T22:13:20.000Z',
      reason: 'no',
      targetDeviceId: OTHER,
    });
    expect(history.after(APP, 5002).events.map((e) => e.id)).toEqual([5003]);
    expect(history.after(APP, 5003).events).toEqual([]);
  });

  it('evicts the oldest events past its bounds and says up to where', () => {
    const bus = new EventBus();
    const history = new EventHistory(bus, { clock: () => 0, maxEvents: 3, maxBytes: 10_000 });
    history.watch(APP);
    for (let n = 1; n <= 5; n++) bus.emit('state', state(APP, n));
    const { events, evictedUpTo } = history.after(APP, 0);
    expect(events.map((e) => e.id)).toEqual([3, 4, 5]);
    expect(evictedUpTo).toBe(2);

    // The byte bound: one large event pushes out the others, but the newest is always kept.
    bus.emit('state', state(APP, 6, { blob: 'x'.repeat(20_000) }));
    expect(history.after(APP, 0).events.map((e) => e.id)).toEqual([6]);
    expect(history.after(APP, 0).evictedUpTo).toBe(5);
  });

  it('keeps an application for a while after its last watcher left, then forgets it', async () => {
    const bus = new EventBus();
    const history = new EventHistory(bus, { clock: () => 0, keepMs: 20 });
    const release = history.watch(APP);
    bus.emit('state', state(APP, 1));
    release();
    release(); // twice is harmless
    bus.emit('state', state(APP, 2));
    expect(history.after(APP, 0).events.map((e) => e.id)).toEqual([1, 2]);
    // Polls: the drop timer fires once the keep time has passed.
    for (let i = 0; i < 200 && history.after(APP, 0).events.length > 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    expect(history.after(APP, 0)).toEqual({ events: [], evictedUpTo: 2 });
    bus.emit('state', state(APP, 3));
    expect(history.lastId).toBe(2);

    // Watching again starts a new ring: everything before it counts as not kept.
    history.watch(APP);
    expect(history.after(APP, 1).evictedUpTo).toBe(2);
    history.close();
  });
});
