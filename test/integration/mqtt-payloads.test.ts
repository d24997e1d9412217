/**
 * State payloads over MQTT (spec: State, MQTT): what is refused whole, what is dropped
 * attribute by attribute, the time forms, merging, and the QoS 1 guarantees (acknowledged only
 * once stored, stored in the order published).
 */
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createFleet,
  deviceLogs,
  eventuallyLog,
  FLEET_ATTRIBUTES,
  type LogEntry,
  nextMessage,
  ok,
  type SeedFleet,
  type StoredState,
  startTestServer,
  stateHistory,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';

const DAY = 86_400_000;

describe('MQTT state payloads', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  const BEFORE_TIME = Date.now() - 3600_000;

  const history = (deviceId: string) => stateHistory(server, fleet.applicationId, deviceId);
  const topicOf = (deviceId: string) => `losant/${deviceId}/state`;
  const errorTopic = (deviceId: string) => `losant/${deviceId}/error`;

  /** A new standalone device with the fleet's attributes and one state already stored. */
  async function freshDevice(name: string): Promise<string> {
    const device = ok(
      await server.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/devices`, {
        name,
        attributes: FLEET_ATTRIBUTES,
      }),
    );
    ok(
      await server.http('POST', `/applications/${fleet.applicationId}/devices/${device.id}/state`, {
        data: { temperature: 0, label: 'before' },
        time: BEFORE_TIME,
      }),
      200,
    );
    return device.id;
  }

  async function connectWithErrors(deviceId: string): Promise<MqttClient> {
    const client = await server.connect(deviceId, fleet.key, fleet.secret);
    expect(await subscribeGranted(client, errorTopic(deviceId))).toEqual([1]);
    return client;
  }

  /**
   * Publishes a payload that must be refused whole: answers `code` on the error topic, logs a
   * `rejected` entry with `reason`, stores nothing, and leaves the connection up.
   */
  async function expectRefused(
    deviceId: string,
    payload: string | Buffer,
    code: number,
    reason: RegExp,
  ): Promise<{ notice: Record<string, unknown>; entry: LogEntry }> {
    const before = await history(deviceId);
    const client = await connectWithErrors(deviceId);
    const notice = nextMessage(client, errorTopic(deviceId));
    await client.publishAsync(topicOf(deviceId), payload, { qos: 1 });
    const { payload: body } = await notice;
    expect(body).toMatchObject({ code, topic: topicOf(deviceId), message: expect.stringMatching(reason) });
    const entry = await eventuallyLog(
      server,
      fleet.applicationId,
      deviceId,
      (e) => e.kind === 'rejected' && reason.test(String(e.reason)),
    );
    expect(entry).toMatchObject({ via: 'mqtt', status: code, topic: topicOf(deviceId) });
    expect(await history(deviceId)).toEqual(before);
    expect(client.connected).toBe(true);
    // …and the connection still stores a valid state.
    await client.publishAsync(topicOf(deviceId), JSON.stringify({ data: { temperature: 21 } }), { qos: 1 });
    expect((await history(deviceId)).at(-1)?.data).toEqual({ temperature: 21 });
    await client.endAsync();
    return { notice: body as Record<string, unknown>, entry };
  }

  beforeAll(async () => {
    server = await startTestServer();
    // Hundreds of publishes below: no rate limit in this application.
    fleet = await createFleet(server, { application: { rateLimit: { messages: 0, windowSeconds: 15 } } });
  });
  afterEach(() => server.endClients());
  afterAll(() => server.stop());

  it('refuses malformed JSON', async () => {
    const device = await freshDevice('malformed');
    await expectRefused(device, '{"data": {"temperature": 1', 400, /invalid JSON/);
  });

  it('refuses a payload without a data object', async () => {
    const device = await freshDevice('no data');
    await expectRefused(device, JSON.stringify({ temperature: 1 }), 400, /"data" must be an object/);
  });

  it('refuses data that is an array, and a payload that is not an object', async () => {
    const device = await freshDevice('data array');
    await expectRefused(device, JSON.stringify({ data: [1, 2] }), 400, /"data" must be an object/);
    await expectRefused(device, '42', 400, /expected an object/);
    await expectRefused(device, '[]', 400, /empty array/);
  });

  it('stores nothing when no attribute has a usable value, and logs the refusal with the reason', async () => {
    const device = await freshDevice('wrong types');
    const { entry } = await expectRefused(
      device,
      JSON.stringify({ data: { temperature: 'hot' } }),
      400,
      /nothing to store/,
    );
    expect(entry.reason).toContain('"hot" is not a number');
    // One entry per refused message: the refusal names the drop, no separate entry repeats it.
    const logs = await deviceLogs(server, fleet.applicationId, device);
    expect(logs.filter((e) => e.kind === 'dropped')).toEqual([]);
  });

  it('stores the good attribute of a state and drops an unknown one, with a dropped log entry', async () => {
    const device = await freshDevice('unknown attribute');
    const before = await history(device);
    const client = await connectWithErrors(device);
    const notice = nextMessage(client, errorTopic(device));
    await client.publishAsync(topicOf(device), JSON.stringify({ data: { temperature: 23, humidity: 40 } }), {
      qos: 1,
    });
    const after = await history(device);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.slice(before.length)).toEqual([expect.objectContaining({ data: { temperature: 23 } })]);
    const entry = await eventuallyLog(server, fleet.applicationId, device, (e) => e.kind === 'dropped');
    expect(entry).toMatchObject({
      attribute: 'humidity',
      reason: 'unknown attribute "humidity"',
      topic: topicOf(device),
      via: 'mqtt',
    });
    expect((await notice).payload).toMatchObject({ code: 400, message: expect.stringContaining('humidity') });
    // Converted where lossless: "72" is a number, 1 a boolean, a number a string.
    await client.publishAsync(topicOf(device), JSON.stringify({ data: { temperature: '72', on: 1, label: 5 } }), {
      qos: 1,
    });
    expect((await history(device)).at(-1)?.data).toEqual({ temperature: 72, on: true, label: '5' });
  });

  it('refuses a payload over 256 KiB with 413 and keeps the connection', async () => {
    const device = await freshDevice('oversized');
    const big = JSON.stringify({ data: { label: 'x'.repeat(256 * 1024) } });
    expect(Buffer.byteLength(big)).toBeGreaterThan(256 * 1024);
    await expectRefused(device, big, 413, /exceeds 262144 bytes/);
  });

  it('processes a state array in order', async () => {
    const device = await freshDevice('array');
    const before = await history(device);
    const client = await server.connect(device, fleet.key, fleet.secret);
    const t = Date.now() - 60_000;
    await client.publishAsync(
      topicOf(device),
      JSON.stringify([
        { data: { temperature: 1 }, time: t },
        { data: { temperature: 2 }, time: t + 1000 },
        // Same time as the first: merged into it, later values win.
        { data: { temperature: 3, label: 'merged' }, time: t },
        { data: { temperature: 4 }, time: t + 2000 },
      ]),
      { qos: 1 },
    );
    const after = await history(device);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.slice(before.length)).toEqual([
      { time: new Date(t).toISOString(), data: { temperature: 3, label: 'merged' }, reportedBy: device },
      { time: new Date(t + 1000).toISOString(), data: { temperature: 2 }, reportedBy: device },
      { time: new Date(t + 2000).toISOString(), data: { temperature: 4 }, reportedBy: device },
    ]);
  });

  it('reads every time form: ms, seconds, $date, ISO and negative ms before now', async () => {
    const device = await freshDevice('time forms');
    const client = await server.connect(device, fleet.key, fleet.secret);
    const now = Date.now();
    const ms = now - 100_000;
    const seconds = Math.floor((now - 200_000) / 1000);
    const dollarDate = new Date(now - 300_000).toISOString();
    const iso = new Date(now - 400_000).toISOString();
    const publish = (label: string, time: unknown) =>
      client.publishAsync(topicOf(device), JSON.stringify({ data: { label }, time }), { qos: 1 });
    await publish('ms', ms);
    await publish('seconds', seconds);
    await publish('$date', { $date: dollarDate });
    await publish('iso', iso);
    const sentNegative = Date.now();
    await publish('negative', -500_000);
    const ackedNegative = Date.now();

    const byLabel = new Map((await history(device)).map((s) => [s.data.label, s]));
    expect(byLabel.get('ms')?.time).toBe(new Date(ms).toISOString());
    expect(byLabel.get('seconds')?.time).toBe(new Date(seconds * 1000).toISOString());
    expect(byLabel.get('$date')?.time).toBe(dollarDate);
    expect(byLabel.get('iso')?.time).toBe(iso);
    const negative = Date.parse(byLabel.get('negative')?.time ?? '');
    expect(negative).toBeGreaterThanOrEqual(sentNegative - 500_000);
    expect(negative).toBeLessThanOrEqual(ackedNegative - 500_000);

    // No time: the receive time.
    const sent = Date.now();
    await client.publishAsync(topicOf(device), JSON.stringify({ data: { label: 'none' } }), { qos: 1 });
    const received = Date.parse((await history(device)).find((s) => s.data.label === 'none')?.time ?? '');
    expect(received).toBeGreaterThanOrEqual(sent);
    expect(received).toBeLessThanOrEqual(Date.now());
  });

  it('ignores and logs states older than 30 days or more than a day ahead', async () => {
    const device = await freshDevice('old');
    const before = await history(device);
    await expectRefused(
      device,
      JSON.stringify({ data: { temperature: 5 }, time: Date.now() - 31 * DAY }),
      400,
      /nothing to store/,
    );
    const old = await eventuallyLog(
      server,
      fleet.applicationId,
      device,
      (e) => e.kind === 'rejected' && /more than 30 days old/.test(String(e.reason)),
    );
    expect(old.via).toBe('mqtt');

    // Inside an array, the old and future states are left out and the good one stored.
    const client = await server.connect(device, fleet.key, fleet.secret);
    const good = Date.now() - 5000;
    await client.publishAsync(
      topicOf(device),
      JSON.stringify([
        { data: { temperature: 6 }, time: Date.now() - 40 * DAY },
        { data: { temperature: 7 }, time: good },
        { data: { temperature: 8 }, time: Date.now() + 2 * DAY },
      ]),
      { qos: 1 },
    );
    await eventuallyLog(
      server,
      fleet.applicationId,
      device,
      (e) => e.kind === 'dropped' && /more than 1 day ahead/.test(String(e.reason)),
    );
    const after = await history(device);
    // `expectRefused` stored one valid state of its own after the refusal.
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.map((s) => s.data.temperature)).not.toContain(5);
    expect(after.map((s) => s.data.temperature)).not.toContain(6);
    expect(after.map((s) => s.data.temperature)).not.toContain(8);
    expect(after.find((s) => s.data.temperature === 7)?.time).toBe(new Date(good).toISOString());
  });

  it('merges two states of a device with the same millisecond time', async () => {
    const device = await freshDevice('merge');
    const client = await server.connect(device, fleet.key, fleet.secret);
    const t = Date.now() - 10_000;
    await client.publishAsync(topicOf(device), JSON.stringify({ data: { temperature: 1, label: 'a' }, time: t }), {
      qos: 1,
    });
    await client.publishAsync(topicOf(device), JSON.stringify({ data: { temperature: 2, on: true }, time: t }), {
      qos: 1,
    });
    const atT = (await history(device)).filter((s) => s.time === new Date(t).toISOString());
    expect(atT).toEqual([
      { time: new Date(t).toISOString(), data: { temperature: 2, label: 'a', on: true }, reportedBy: device },
    ]);
  });

  it('acknowledges a QoS 1 publish only once the state is stored', async () => {
    const device = await freshDevice('qos1');
    const client = await server.connect(device, fleet.key, fleet.secret);
    for (let i = 0; i < 20; i++) {
      await client.publishAsync(topicOf(device), JSON.stringify({ data: { temperature: 1000 + i } }), { qos: 1 });
      // Read at once, no polling: the PUBACK promised the state is there.
      const latest = ok(
        await server.http<StoredState[]>('GET', `/applications/${fleet.applicationId}/devices/${device}/state`),
        200,
      );
      expect(latest[0]?.data.temperature).toBe(1000 + i);
    }
  });

  it('stores many QoS 1 publishes of one client in the order they were sent', async () => {
    const device = await freshDevice('ordering');
    const client = await server.connect(device, fleet.key, fleet.secret);
    const N = 200;
    // No time in the payload: each state takes its receive time, kept strictly increasing per
    // device, so history order is ingest order and no two states merge.
    const acks = Array.from({ length: N }, (_, seq) =>
      client.publishAsync(topicOf(device), JSON.stringify({ data: { temperature: seq } }), { qos: 1 }),
    );
    await Promise.all(acks);
    const seqs = (await history(device)).filter((s) => s.data.label === undefined).map((s) => s.data.temperature);
    expect(seqs).toEqual(Array.from({ length: N }, (_, seq) => seq));
    // The latest value is the last one sent.
    const composite = ok(
      await server.http<Record<string, { value: unknown }>>(
        'GET',
        `/applications/${fleet.applicationId}/devices/${device}/compositeState`,
      ),
      200,
    );
    expect(composite.temperature?.value).toBe(N - 1);
    expect(client.connected).toBe(true);
  });
});
