/**
 * What the broker refuses (spec: Devices, Access keys, MQTT): publishes a client may not make
 * are dropped and logged while the connection stays up; connections a key does not allow are
 * refused with CONNACK 4 or 5; subscriptions outside a client's rights get SUBACK 0x80.
 * Every refusal is checked for its answer, its device log entries, and that nothing already
 * stored changed.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  closed,
  createFleet,
  deviceLogs,
  eventually,
  eventuallyLog,
  FLEET_ATTRIBUTES,
  type LogEntry,
  nextMessage,
  ok,
  refusedConnect,
  type SeedFleet,
  startTestServer,
  stateHistory,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';

describe('MQTT refusals', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  /** A second application with a gateway, a peripheral and its own key. */
  let other: { applicationId: string; peripheral: string; key: string; secret: string };
  const HOUR_AGO = Date.now() - 3600_000;

  const state = (data: Record<string, unknown>, time?: number) =>
    JSON.stringify(time === undefined ? { data } : { data, time });
  const connect = (deviceId: string) => server.connect(deviceId, fleet.key, fleet.secret);
  const history = (deviceId: string, applicationId = fleet.applicationId) =>
    stateHistory(server, applicationId, deviceId);
  const errorTopic = (deviceId: string) => `losant/${deviceId}/error`;

  /** A client of `deviceId` subscribed to its own error topic. */
  async function withErrors(deviceId: string): Promise<MqttClient> {
    const client = await connect(deviceId);
    expect(await subscribeGranted(client, errorTopic(deviceId))).toEqual([1]);
    return client;
  }

  beforeAll(async () => {
    server = await startTestServer();
    // Refused publishes count against the sender's rate limit; keep it out of the way here.
    fleet = await createFleet(server, { application: { rateLimit: { messages: 10_000, windowSeconds: 60 } } });
    const app2 = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Other application' }));
    const gw2 = ok(
      await server.http<{ id: string }>('POST', `/applications/${app2.id}/devices`, {
        name: 'gw2',
        deviceClass: 'gateway',
      }),
    );
    const p2 = ok(
      await server.http<{ id: string }>('POST', `/applications/${app2.id}/devices`, {
        name: 'p2',
        deviceClass: 'peripheral',
        attributes: FLEET_ATTRIBUTES,
      }),
    );
    const key2 = ok(await server.http<{ key: string; secret: string }>('POST', `/applications/${app2.id}/keys`, {}));
    other = { applicationId: app2.id, peripheral: p2.id, key: key2.key, secret: key2.secret };
    expect(gw2.id).toMatch(/^[0-9a-f]{24}$/);

    // Something already stored on every device, which no refusal may touch.
    for (const id of [fleet.gateway, fleet.otherGateway, fleet.standalone, fleet.bound, fleet.floating]) {
      ok(
        await server.http('POST', `/applications/${fleet.applicationId}/devices/${id}/state`, {
          data: { temperature: 1, label: 'before' },
          time: HOUR_AGO,
        }),
        200,
      );
    }
    ok(
      await server.http('POST', `/applications/${other.applicationId}/devices/${other.peripheral}/state`, {
        data: { temperature: 2 },
        time: HOUR_AGO,
      }),
      200,
    );
  });
  afterEach(() => server.endClients());
  afterAll(() => server.stop());

  const rejectedOn = (topic: string) => (e: LogEntry) => e.kind === 'rejected' && e.topic === topic;

  it('drops another gateway’s publish for a bound peripheral, logs it on both, and keeps the connection', async () => {
    const before = await history(fleet.bound);
    const client = await withErrors(fleet.otherGateway);
    const topic = `losant/${fleet.bound}/state`;
    const notice = nextMessage(client, errorTopic(fleet.otherGateway));

    await client.publishAsync(topic, state({ temperature: 99 }), { qos: 1 });
    expect((await notice).payload).toEqual({
      code: 403,
      message: expect.stringContaining(`bound to gateway ${fleet.gateway}`),
      topic,
      time: { $date: expect.any(String) },
    });

    const onPublisher = await eventuallyLog(server, fleet.applicationId, fleet.otherGateway, rejectedOn(topic));
    expect(onPublisher).toMatchObject({ via: 'mqtt', status: 403, deviceId: fleet.bound });
    expect(onPublisher.reason).toContain(topic);
    const onPeripheral = await eventuallyLog(server, fleet.applicationId, fleet.bound, rejectedOn(topic));
    expect(onPeripheral).toMatchObject({ via: 'mqtt', status: 403, reportedBy: fleet.otherGateway });

    expect(await history(fleet.bound)).toEqual(before);
    expect(client.connected).toBe(true);

    // The same connection still reports what it may: its own state and a floating peripheral's.
    await client.publishAsync(`losant/${fleet.otherGateway}/state`, state({ temperature: 7 }), { qos: 1 });
    await client.publishAsync(`losant/${fleet.floating}/state`, state({ temperature: 8 }), { qos: 1 });
    expect((await history(fleet.otherGateway)).at(-1)).toMatchObject({
      data: { temperature: 7 },
      reportedBy: fleet.otherGateway,
    });
    expect((await history(fleet.floating)).at(-1)).toMatchObject({
      data: { temperature: 8 },
      reportedBy: fleet.otherGateway,
    });
    expect(await history(fleet.bound)).toEqual(before);
  });

  it('drops a standalone device’s publish for a peripheral', async () => {
    const before = await history(fleet.floating);
    const client = await withErrors(fleet.standalone);
    const topic = `losant/${fleet.floating}/state`;
    const notice = nextMessage(client, errorTopic(fleet.standalone));
    await client.publishAsync(topic, state({ temperature: 50 }), { qos: 1 });

    expect((await notice).payload).toMatchObject({ code: 403, topic, message: expect.stringContaining('itself') });
    expect(await eventuallyLog(server, fleet.applicationId, fleet.standalone, rejectedOn(topic))).toMatchObject({
      status: 403,
      deviceId: fleet.floating,
    });
    expect(await eventuallyLog(server, fleet.applicationId, fleet.floating, rejectedOn(topic))).toMatchObject({
      status: 403,
      reportedBy: fleet.standalone,
    });
    expect(await history(fleet.floating)).toEqual(before);
    expect(client.connected).toBe(true);
  });

  it('drops a gateway’s publish for a standalone device', async () => {
    const before = await history(fleet.standalone);
    const client = await withErrors(fleet.gateway);
    const topic = `losant/${fleet.standalone}/state`;
    const notice = nextMessage(client, errorTopic(fleet.gateway));
    await client.publishAsync(topic, state({ temperature: 51 }), { qos: 1 });

    expect((await notice).payload).toMatchObject({
      code: 403,
      topic,
      message: expect.stringContaining('may act only for peripherals'),
    });
    expect(await eventuallyLog(server, fleet.applicationId, fleet.gateway, rejectedOn(topic))).toMatchObject({
      status: 403,
      deviceId: fleet.standalone,
    });
    expect(await eventuallyLog(server, fleet.applicationId, fleet.standalone, rejectedOn(topic))).toMatchObject({
      status: 403,
      reportedBy: fleet.gateway,
    });
    expect(await history(fleet.standalone)).toEqual(before);
    expect(client.connected).toBe(true);
  });

  it('drops a gateway’s publish for a device of another application without revealing it', async () => {
    const before = await history(other.peripheral, other.applicationId);
    const logsBefore = await deviceLogs(server, other.applicationId, other.peripheral);
    const client = await withErrors(fleet.gateway);
    const topic = `losant/${other.peripheral}/state`;
    const notice = nextMessage(client, errorTopic(fleet.gateway));
    await client.publishAsync(topic, state({ temperature: 52 }), { qos: 1 });

    expect((await notice).payload).toMatchObject({ code: 404, topic });
    const entry = await eventuallyLog(server, fleet.applicationId, fleet.gateway, rejectedOn(topic));
    expect(entry).toMatchObject({ status: 404 });
    // The other application's device gets no entry: that would leak across applications.
    expect(await deviceLogs(server, other.applicationId, other.peripheral)).toEqual(logsBefore);
    expect(await history(other.peripheral, other.applicationId)).toEqual(before);
    expect(client.connected).toBe(true);
  });

  it('refuses a peripheral connecting by itself with CONNACK 5', async () => {
    for (const peripheral of [fleet.bound, fleet.floating]) {
      const before = await history(peripheral);
      const err = await refusedConnect(server, peripheral, fleet.key, fleet.secret);
      expect(err.code).toBe(5);
      const entry = await eventuallyLog(server, fleet.applicationId, peripheral, (e) => e.kind === 'authFailed');
      expect(entry.reason).toContain('peripherals connect only through a gateway');
      expect(await history(peripheral)).toEqual(before);
    }
  });

  it('refuses a wrong secret with CONNACK 4 and logs authFailed on the device', async () => {
    const err = await refusedConnect(server, fleet.standalone, fleet.key, 'not-the-secret');
    expect(err.code).toBe(4);
    const entry = await eventuallyLog(server, fleet.applicationId, fleet.standalone, (e) => e.kind === 'authFailed');
    expect(entry).toMatchObject({ reason: 'wrong access secret', ipAddress: expect.any(String) });
  });

  it('refuses an unknown key with CONNACK 4', async () => {
    const err = await refusedConnect(server, fleet.standalone, 'no-such-key', fleet.secret);
    expect(err.code).toBe(4);
  });

  it('refuses an inactive key with CONNACK 5 and disconnects a client whose key becomes inactive', async () => {
    const created = ok(
      await server.http<{ id: string; key: string; secret: string }>(
        'POST',
        `/applications/${fleet.applicationId}/keys`,
        { description: 'to deactivate' },
      ),
    );
    const client = await server.connect(fleet.standalone, created.key, created.secret);
    const gone = closed(client);
    ok(
      await server.http('PATCH', `/applications/${fleet.applicationId}/keys/${created.id}`, { status: 'inactive' }),
      200,
    );
    await gone;
    const entry = await eventuallyLog(
      server,
      fleet.applicationId,
      fleet.standalone,
      (e) => e.kind === 'disconnect' && String(e.disconnectReason).includes('inactive'),
    );
    expect(entry.disconnectReason).toMatch(/^Not authorized: /);

    const err = await refusedConnect(server, fleet.standalone, created.key, created.secret);
    expect(err.code).toBe(5);
  });

  it('refuses a key whose deviceIds do not cover the device with CONNACK 5', async () => {
    const restricted = ok(
      await server.http<{ key: string; secret: string }>('POST', `/applications/${fleet.applicationId}/keys`, {
        deviceIds: [fleet.gateway],
      }),
    );
    expect((await refusedConnect(server, fleet.standalone, restricted.key, restricted.secret)).code).toBe(5);
    // The device it names connects with it, and acts for its peripheral without the key listing it.
    const gw = await server.connect(fleet.gateway, restricted.key, restricted.secret);
    expect(gw.connected).toBe(true);
    await gw.publishAsync(`losant/${fleet.bound}/state`, state({ label: 'restricted key' }), { qos: 1 });
    expect((await history(fleet.bound)).at(-1)).toMatchObject({
      data: { label: 'restricted key' },
      reportedBy: fleet.gateway,
    });
  });

  it('answers SUBACK 0x80 to a subscription to another gateway’s bound peripheral, keeping the connection', async () => {
    const client = await connect(fleet.otherGateway);
    const topic = `losant/${fleet.bound}/command`;
    expect(await subscribeGranted(client, topic)).toEqual([128]);
    const entry = await eventuallyLog(server, fleet.applicationId, fleet.otherGateway, rejectedOn(topic));
    expect(entry).toMatchObject({ status: 403, reason: expect.stringContaining('subscribe refused') });
    expect(client.connected).toBe(true);
    // Only the refused filter of a mixed SUBSCRIBE fails.
    expect(await subscribeGranted(client, [`losant/${fleet.otherGateway}/command`, topic])).toEqual([1, 128]);
    expect(client.connected).toBe(true);
  });

  it('refuses wildcard subscriptions that reach platform topics', async () => {
    const client = await connect(fleet.gateway);
    for (const filter of ['losant/+/command', '#', 'losant/#', '+/+/command']) {
      expect(await subscribeGranted(client, filter)).toEqual([128]);
      expect(client.connected).toBe(true);
    }
    // …and another device's error topic.
    expect(await subscribeGranted(client, errorTopic(fleet.standalone))).toEqual([128]);
    expect(client.connected).toBe(true);
  });

  it('tells the publisher on losant/OWN_ID/error why a publish was refused', async () => {
    const client = await withErrors(fleet.standalone);
    const topic = `losant/${fleet.gateway}/state`;
    const notice = nextMessage(client, errorTopic(fleet.standalone));
    await client.publishAsync(topic, state({ temperature: 3 }), { qos: 0 });
    const { payload } = await notice;
    expect(payload).toEqual({ code: 403, message: expect.any(String), topic, time: { $date: expect.any(String) } });
    const { time } = payload as { time: { $date: string } };
    expect(new Date(time.$date).toISOString()).toBe(time.$date);
  });

  it('drops publishes to command and error topics', async () => {
    const before = await history(fleet.bound);
    const client = await withErrors(fleet.gateway);
    for (const topic of [`losant/${fleet.bound}/command`, `losant/${fleet.standalone}/error`]) {
      const notice = nextMessage(client, errorTopic(fleet.gateway));
      await client.publishAsync(topic, JSON.stringify({ name: 'x' }), { qos: 1 });
      expect((await notice).payload).toMatchObject({ code: 403, topic });
      await eventuallyLog(server, fleet.applicationId, fleet.gateway, rejectedOn(topic));
    }
    await eventuallyLog(server, fleet.applicationId, fleet.bound, rejectedOn(`losant/${fleet.bound}/command`));
    expect(await history(fleet.bound)).toEqual(before);
    expect(client.connected).toBe(true);
  });

  it('drops a publish to losant/ID without /state and suggests the state topic', async () => {
    const before = await history(fleet.standalone);
    const client = await withErrors(fleet.standalone);
    const topic = `losant/${fleet.standalone}`;
    const notice = nextMessage(client, errorTopic(fleet.standalone));
    await client.publishAsync(topic, state({ temperature: 4 }), { qos: 1 });

    expect((await notice).payload).toMatchObject({
      code: 400,
      topic,
      message: expect.stringContaining(`losant/${fleet.standalone}/state`),
    });
    const entry = await eventuallyLog(server, fleet.applicationId, fleet.standalone, rejectedOn(topic));
    expect(entry).toMatchObject({ status: 400, suggestion: `losant/${fleet.standalone}/state` });
    expect(await history(fleet.standalone)).toEqual(before);
    expect(client.connected).toBe(true);

    // A gateway that forgets /state for a peripheral (the seed document's own example) is told too.
    const gw = await withErrors(fleet.gateway);
    const gwNotice = nextMessage(gw, errorTopic(fleet.gateway));
    await gw.publishAsync(`losant/${fleet.bound}`, state({ temperature: 5 }), { qos: 1 });
    expect((await gwNotice).payload).toMatchObject({ code: 400, topic: `losant/${fleet.bound}` });
    const onBound = await eventuallyLog(server, fleet.applicationId, fleet.bound, rejectedOn(`losant/${fleet.bound}`));
    expect(onBound).toMatchObject({ suggestion: `losant/${fleet.bound}/state` });
    expect(gw.connected).toBe(true);
  });

  it('lets a second connection with the same client id take over', async () => {
    const connects = async () =>
      (await deviceLogs(server, fleet.applicationId, fleet.gateway)).filter((e) => e.kind === 'connect').length;
    const connectsBefore = await connects();
    const first = await connect(fleet.gateway);
    const firstClosed = closed(first);
    const second = await connect(fleet.gateway);
    await firstClosed;
    expect(second.connected).toBe(true);

    const entry = await eventuallyLog(
      server,
      fleet.applicationId,
      fleet.gateway,
      (e) => e.kind === 'disconnect' && e.disconnectReason === 'Duplicate client id',
    );
    expect(entry.connected).toBe(0);
    await eventually(async () => (await connects()) === connectsBefore + 2);
    const device = ok(
      await server.http<{ connectionInfo: { connected: number | null } }>(
        'GET',
        `/applications/${fleet.applicationId}/devices/${fleet.gateway}`,
      ),
      200,
    );
    expect(device.connectionInfo.connected).toBe(1);

    // The new connection works.
    await second.publishAsync(`losant/${fleet.gateway}/state`, state({ temperature: 44 }), { qos: 1 });
    expect((await history(fleet.gateway)).at(-1)?.data).toEqual({ temperature: 44 });
  });
});
