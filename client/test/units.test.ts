/** Units of the SDK that need no server: backoff, pacing, the queues, input lines, an offline device. */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  backoffDelay,
  backoffOptions,
  DEFAULT_BACKOFF,
  Device,
  type DroppedState,
  FileQueue,
  Gateway,
  MemoryQueue,
  QueueLockedError,
  TokenBucket,
} from '../src/index.js';
import { parseInputLine } from '../src/relay.js';
import { collect, removeTempDirs, tempDir } from './helpers.js';

afterAll(removeTempDirs);

describe('backoff', () => {
  const options = backoffOptions({ initialDelay: 100, maxDelay: 1000, factor: 2, jitter: 0.5 });

  it('grows exponentially up to the cap', () => {
    const noJitter = { ...options, jitter: 0 };
    expect([0, 1, 2, 3, 4, 5, 10].map((a) => backoffDelay(a, noJitter))).toEqual([
      100, 200, 400, 800, 1000, 1000, 1000,
    ]);
  });

  it('takes the jitter share off each delay at random', () => {
    expect(backoffDelay(2, options, () => 0)).toBe(400);
    expect(backoffDelay(2, options, () => 0.5)).toBe(300);
    expect(backoffDelay(2, options, () => 0.999999)).toBe(200);
    for (let i = 0; i < 100; i++) {
      const d = backoffDelay(3, options);
      expect(d).toBeGreaterThanOrEqual(400);
      expect(d).toBeLessThanOrEqual(800);
    }
    expect(backoffDelay(3, { ...options, jitter: 1 }, () => 0.999999)).toBe(0);
  });

  it('has defaults and refuses nonsense', () => {
    expect(backoffOptions()).toEqual(DEFAULT_BACKOFF);
    expect(() => backoffOptions({ factor: 0.5 })).toThrow(/factor/);
    expect(() => backoffOptions({ jitter: 2 })).toThrow(/jitter/);
    expect(() => backoffOptions({ initialDelay: 10, maxDelay: 5 })).toThrow(/maxDelay/);
  });
});

describe('TokenBucket', () => {
  it('lets `rate` per second through after its burst, and says how long to wait', () => {
    let now = 0;
    const bucket = new TokenBucket(10, 2, () => now);
    expect(bucket.take()).toBe(0);
    expect(bucket.take()).toBe(0);
    expect(bucket.take()).toBe(100);
    now = 50;
    expect(bucket.take()).toBe(50);
    now = 100;
    expect(bucket.take()).toBe(0);
    now = 10_000;
    expect([bucket.take(), bucket.take(), bucket.take()]).toEqual([0, 0, 100]);
  });

  it('is unlimited at rate 0', () => {
    const bucket = new TokenBucket(0);
    for (let i = 0; i < 1000; i++) expect(bucket.take()).toBe(0);
  });
});

describe('MemoryQueue', () => {
  it('keeps order, acknowledges by seq, and drops the oldest beyond its bound, counting them', () => {
    const queue = new MemoryQueue({ maxMessages: 3 });
    queue.open();
    const push = (n: number) => queue.push({ deviceId: 'd', data: { n }, time: n });
    expect(push(1).dropped).toEqual([]);
    push(2);
    push(3);
    expect(push(4).dropped.map((e) => e.data)).toEqual([{ n: 1 }]);
    expect(push(5).dropped.map((e) => e.data)).toEqual([{ n: 2 }]);
    expect(queue.dropped).toBe(2);
    expect(queue.length).toBe(3);
    const [head] = queue.peek(1);
    queue.ack(head!.seq);
    queue.ack(head!.seq); // twice: ignored
    expect(queue.peek(10).map((e) => e.data)).toEqual([{ n: 4 }, { n: 5 }]);
  });

  it('refuses a bound that is not a positive integer', () => {
    expect(() => new MemoryQueue({ maxMessages: 0 })).toThrow(/maxMessages/);
  });
});

describe('FileQueue', () => {
  const state = (n: number) => ({ deviceId: n % 2 ? 'a' : 'b', data: { n }, time: 1_700_000_000_000 + n });

  it('survives reopening: unacknowledged entries come back in order with their seqs and times', () => {
    const dir = tempDir('fq');
    const queue = new FileQueue({ dir });
    queue.open();
    for (let n = 0; n < 5; n++) queue.push(state(n));
    const [first, second] = queue.peek(2);
    queue.ack(first!.seq);
    queue.ack(second!.seq);
    queue.close();

    const again = new FileQueue({ dir });
    again.open();
    expect(again.peek(10)).toEqual([
      { seq: 3, ...state(2) },
      { seq: 4, ...state(3) },
      { seq: 5, ...state(4) },
    ]);
    // New entries continue the sequence.
    expect(again.push(state(5)).entry.seq).toBe(6);
    again.close();
  });

  it('compacts the journal once most of it is consumed, without losing what is left', () => {
    const dir = tempDir('fq');
    const queue = new FileQueue({ dir, compactAfter: 10 });
    queue.open();
    for (let n = 0; n < 30; n++) queue.push(state(n));
    for (const entry of queue.peek(25)) queue.ack(entry.seq);
    const lines = readFileSync(path.join(dir, 'journal.jsonl'), 'utf8').trim().split('\n');
    expect(lines.length).toBeLessThan(30);
    queue.close();
    const again = new FileQueue({ dir });
    again.open();
    expect(again.peek(100).map((e) => e.data.n)).toEqual([25, 26, 27, 28, 29]);
    again.close();
  });

  it('cuts off a line torn by a crash and skips a damaged one', () => {
    const dir = tempDir('fq');
    const queue = new FileQueue({ dir });
    queue.open();
    queue.push(state(0));
    queue.push(state(1));
    queue.close();
    const journal = path.join(dir, 'journal.jsonl');
    writeFileSync(journal, `${readFileSync(journal, 'utf8')}not json\n{"seq":3,"deviceId":"a","da`);
    const again = new FileQueue({ dir });
    again.open();
    expect(again.peek(10).map((e) => e.data.n)).toEqual([0, 1]);
    expect(again.skippedLines).toBe(1);
    expect(again.push(state(2)).entry.seq).toBe(3);
    again.close();
    expect(readFileSync(journal, 'utf8').endsWith('"time":1700000000002}\n')).toBe(true);
  });

  it('applies its bound, also to what an earlier run left with a larger one', () => {
    const dir = tempDir('fq');
    const big = new FileQueue({ dir, maxMessages: 100 });
    big.open();
    for (let n = 0; n < 10; n++) big.push(state(n));
    big.close();
    const small = new FileQueue({ dir, maxMessages: 4 });
    small.open();
    expect(small.dropped).toBe(6);
    expect(small.peek(10).map((e) => e.data.n)).toEqual([6, 7, 8, 9]);
    expect(small.push(state(10)).dropped.map((e) => e.data.n)).toEqual([6]);
    small.close();
    const again = new FileQueue({ dir, maxMessages: 4 });
    again.open();
    expect(again.peek(10).map((e) => e.data.n)).toEqual([7, 8, 9, 10]);
    again.close();
  });

  it('is used by one process at a time', () => {
    const dir = tempDir('fq');
    const queue = new FileQueue({ dir });
    queue.open();
    expect(() => new FileQueue({ dir }).open()).toThrow(QueueLockedError);
    queue.close();
    expect(existsSync(path.join(dir, 'lock'))).toBe(false);
    // A lock left by a process that is gone is taken over.
    appendFileSync(path.join(dir, 'lock'), '999999999');
    const next = new FileQueue({ dir });
    next.open();
    next.close();
  });
});

describe('parseInputLine (gatehouse-gateway input)', () => {
  it('reads deviceId, data and time', () => {
    expect(parseInputLine('{"deviceId":"p1","data":{"t":1},"time":1700000000000}')).toEqual({
      deviceId: 'p1',
      data: { t: 1 },
      time: 1_700_000_000_000,
    });
    expect(parseInputLine('{"data":{"t":1},"time":"2024-01-02T03:04:05Z"}')).toEqual({
      data: { t: 1 },
      time: Date.parse('2024-01-02T03:04:05Z'),
    });
  });

  it('says what is wrong', () => {
    expect(parseInputLine('nope')).toEqual({ error: 'not JSON' });
    expect(parseInputLine('[1]')).toEqual({ error: 'not a JSON object' });
    expect(parseInputLine('{"deviceId":"p"}')).toEqual({ error: 'data must be an object' });
    expect(parseInputLine('{"deviceId":5,"data":{}}')).toEqual({ error: 'deviceId must be a non-empty string' });
    expect(parseInputLine('{"data":{},"time":"soon"}')).toMatchObject({ error: expect.stringMatching(/time/) });
  });
});

describe('an offline device', () => {
  it('queues, stamps strictly increasing times per device, and drops the oldest beyond the bound', async () => {
    const gateway = new Gateway({
      id: 'gw',
      key: 'k',
      secret: 's',
      queue: { type: 'memory', maxMessages: 3 },
    });
    const peripheral = gateway.addPeripheral('p1');
    const drops = collect<DroppedState>((l) => gateway.on('dropped', l));
    const peripheralDrops = collect<DroppedState>((l) => peripheral.on('dropped', l));
    const results = [];
    for (let n = 0; n < 5; n++) results.push(await peripheral.sendState({ n }));
    expect(results).toEqual(['queued', 'queued', 'queued', 'queued', 'queued']);
    expect(gateway.queued).toBe(3);
    expect(gateway.dropped).toBe(2);
    expect(drops.map((d) => [d.deviceId, d.data, d.total])).toEqual([
      ['p1', { n: 0 }, 1],
      ['p1', { n: 1 }, 2],
    ]);
    expect(peripheralDrops).toEqual(drops);
    await gateway.disconnect();
  });

  it('gives states sent in the same millisecond distinct, increasing times', async () => {
    const queue = new MemoryQueue();
    const device = new Device({ id: 'd', key: 'k', secret: 's', queue });
    for (let n = 0; n < 50; n++) void device.sendState({ n });
    const times = queue.peek(50).map((e) => e.time);
    expect(new Set(times).size).toBe(50);
    expect([...times].sort((a, b) => a - b)).toEqual(times);
    await device.disconnect();
  });

  it('refuses what it cannot send', async () => {
    const device = new Device({ id: 'd', key: 'k', secret: 's', queue: { type: 'memory' } });
    await expect(device.sendState([] as unknown as Record<string, unknown>)).rejects.toThrow(/object/);
    await expect(device.sendState({ t: 1 }, Number.NaN)).rejects.toThrow(/time/);
    expect(() => new Gateway({ id: 'g', key: 'k', secret: 's' }).addPeripheral('a/b')).toThrow(/device id/);
    await device.disconnect();
    await expect(device.sendState({ t: 1 })).rejects.toThrow(/disconnected/);
  });
});
