/**
 * The stream hub's bounds with a fake response whose send buffer the test controls: a live
 * client that stops reading is dropped; a replay waits for the client instead.
 */
import { EventEmitter } from 'node:events';
import type { FastifyReply } from 'fastify';
import { describe, expect, it } from 'vitest';
import { StreamHub, type StreamSpec } from '../../src/api/streams.js';
import { EventBus } from '../../src/core/events.js';
import { parseSse } from '../helpers/sse.js';

const APP = 'a'.repeat(24);
const DEV = 'd'.repeat(24);

/** A response that keeps what is written "unsent" until `flush()`. */
class FakeResponse extends EventEmitter {
  written = '';
  writableLength = 0;
  writableEnded = false;
  destroyed = false;
  writeHead() {
    return this;
  }
  write(chunk: string) {
    this.written += chunk;
    this.writableLength += chunk.length;
    return this.writableLength < 16_384;
  }
  end(chunk?: string) {
    if (chunk) this.write(chunk);
    this.writableEnded = true;
    this.flush();
    this.emit('close');
  }
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close');
  }
  flush() {
    this.writableLength = 0;
    this.emit('drain');
  }
  get events() {
    return parseSse(this.written).events;
  }
}

function open(hub: StreamHub, spec: Partial<StreamSpec> = {}) {
  const raw = new FakeResponse();
  const reply = { hijack() {}, raw } as unknown as FastifyReply;
  hub.open(reply, {
    applicationId: APP,
    payload: 'device',
    accepts: () => true,
    stillAllowed: () => null,
    lastEventId: undefined,
    ...spec,
  });
  return raw;
}

const emitState = (bus: EventBus, n: number, size = 10) =>
  bus.emit('state', {
    applicationId: APP,
    deviceId: DEV,
    time: n,
    data: { n, pad: 'x'.repeat(size) },
    reportedBy: DEV,
  });

describe('StreamHub', () => {
  it('drops a live stream whose client stops reading, and only that one', () => {
    const bus = new EventBus();
    const hub = new StreamHub(bus, { maxBufferedBytes: 10_000 });
    const slow = open(hub);
    const fast = open(hub);
    for (let n = 0; n < 50; n++) {
      emitState(bus, n, 500);
      fast.flush();
    }
    expect(slow.destroyed).toBe(true);
    expect(hub.dropped).toBe(1);
    expect(hub.size).toBe(1);
    expect(fast.events).toHaveLength(50);
    void hub.closeAll();
  });

  it('replays at the pace of the client, then goes live without losing or repeating events', async () => {
    const bus = new EventBus();
    const hub = new StreamHub(bus, { maxBufferedBytes: 10_000 });
    const first = open(hub);
    for (let n = 0; n < 300; n++) emitState(bus, n, 500); // 150 KB, far over the live bound
    first.destroy();
    const ids = parseSse(first.written).events.map((e) => Number(e.id));
    // Reconnect after the first event: the replay stops at the high-water mark and resumes on drain.
    const again = open(hub, { lastEventId: String(ids[0]) });
    expect(again.events.length).toBeLessThan(299);
    expect(again.destroyed).toBe(false);
    emitState(bus, 300, 500); // arrives during the replay
    for (let i = 0; i < 100 && again.events.length < 300; i++) {
      again.flush();
      await new Promise((r) => setImmediate(r));
    }
    expect(again.destroyed).toBe(false);
    const got = again.events.map((e) => (JSON.parse(e.data) as { data: { n: number } }).data.n);
    expect(got).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    again.flush();
    emitState(bus, 301);
    expect(again.events.at(-1)?.data).toContain('"n":301');
    await hub.closeAll();
    expect(again.events.at(-1)?.event).toBe('shutdown');
  });

  it('ends a stream its client may no longer read, and opens none after shutdown', async () => {
    const bus = new EventBus();
    const hub = new StreamHub(bus);
    let allowed = true;
    const raw = open(hub, { stillAllowed: () => (allowed ? null : 'access key is inactive') });
    emitState(bus, 1);
    allowed = false;
    emitState(bus, 2);
    expect(raw.events.map((e) => e.event)).toEqual(['state', 'closed']);
    expect(raw.writableEnded).toBe(true);
    expect(hub.size).toBe(0);

    await hub.closeAll();
    const late = open(hub);
    expect(late.events.map((e) => e.event)).toEqual(['shutdown']);
    expect(late.writableEnded).toBe(true);
  });
});
