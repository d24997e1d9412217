/**
 * What one MQTT client can make the server hold (docs/decisions.md, "MQTT"): packets are
 * measured at their fixed header, a client that stops reading is disconnected before its
 * backlog passes the outbound bound, custom-topic payloads and retained messages are bounded,
 * and a U+0000 in a topic ends the connection [MQTT-1.5.3-2]. Each case also shows that the
 * server goes on serving everyone else.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_QUEUE_LIMITS } from '../../src/broker/bounded-persistence.js';
import { MAX_PACKET_BYTES, PRE_AUTH_BYTES } from '../../src/broker/connection-guard.js';
import { DEFAULT_MAX_OUTBOUND_BYTES } from '../../src/broker/mqtt-broker.js';
import { connectPacket, rawConnect, rawDevice } from '../helpers/raw-mqtt.js';
import {
  closed,
  collectMessages,
  eventually,
  eventuallyLog,
  FLEET_ATTRIBUTES,
  nextMessage,
  ok,
  startTestServer,
  stateHistory,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';

/** MQTT's variable-length "remaining length" [MQTT-2.2.3]. */
function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return Buffer.from(bytes);
}

describe('MQTT limits', () => {
  let server: TestServer;
  let app: string;
  let key: { key: string; secret: string };
  const devices: Record<string, string> = {};

  const connect = (deviceId: string, options = {}) => server.connect(deviceId, key.key, key.secret, options);
  const credentials = (deviceId: string) => ({ clientId: deviceId, username: key.key, password: key.secret });
  const raw = (deviceId: string, extra: Record<string, unknown> = {}) =>
    rawDevice(server.running.urls.mqtt, credentials(deviceId), extra);
  const logsOf = (deviceId: string, match: Parameters<typeof eventuallyLog>[3]) =>
    eventuallyLog(server, app, deviceId, match);

  async function device(name: string, deviceClass = 'standalone'): Promise<string> {
    const body = { name, deviceClass, attributes: FLEET_ATTRIBUTES };
    devices[name] = ok(await server.http<{ id: string }>('POST', `/applications/${app}/devices`, body)).id;
    return devices[name];
  }

  beforeAll(async () => {
    server = await startTestServer();
    app = ok(
      await server.http<{ id: string }>('POST', '/applications', {
        name: 'limits',
        rateLimit: { messages: 0, windowSeconds: 15 },
      }),
    ).id;
    key = ok(
      await server.http<{ key: string; secret: string }>('POST', `/applications/${app}/keys`, { filterType: 'all' }),
    );
    for (const name of ['slow', 'publisher', 'reader', 'big', 'nul', 'nulSub', 'retainer', 'watcher'])
      await device(name);
    await device('gateway', 'gateway');
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('closes a connection whose CONNECT declares more than the pre-authentication budget, before reading it', async () => {
    const client = await rawConnect(server.running.urls.mqtt);
    // A CONNECT declaring 256 MiB: only the fixed header and a few bytes of body are sent.
    client.socket.write(Buffer.concat([Buffer.from([0x10]), remainingLength(256 * 1024 * 1024 - 1)]));
    client.socket.write(Buffer.alloc(1024));
    await eventually(() => client.isClosed(), 5000);
    // A CONNECT just inside the budget (a will of ~60 KiB) is read and answered.
    const ok60 = await raw(devices.big as string, {
      will: { topic: 'wills/big', payload: Buffer.alloc(PRE_AUTH_BYTES - 4096), qos: 0, retain: false },
    });
    ok60.end();
  });

  it('refuses a CONNECT over the pre-authentication budget, will included', async () => {
    const client = await rawConnect(server.running.urls.mqtt);
    client.send(
      connectPacket(credentials(devices.big as string), {
        will: { topic: 'wills/big', payload: Buffer.alloc(PRE_AUTH_BYTES + 1), qos: 0, retain: false },
      }),
    );
    await client.closed;
    expect(client.received.filter((p) => p.cmd === 'connack')).toEqual([]);
  });

  it('disconnects an authenticated client that declares a packet over the limit, with the reason in its log', async () => {
    const client = await raw(devices.big as string);
    client.socket.write(Buffer.concat([Buffer.from([0x30]), remainingLength(MAX_PACKET_BYTES + 1)]));
    client.socket.write(Buffer.alloc(4096));
    await client.closed;
    const entry = await logsOf(
      devices.big as string,
      (e) => e.kind === 'disconnect' && /Packet too large/.test(String(e.disconnectReason)),
    );
    expect(entry.disconnectReason).toContain(String(MAX_PACKET_BYTES));
  });

  it('disconnects a subscriber that stops reading, and goes on delivering to the others', async () => {
    const slow = await raw(devices.slow as string);
    slow.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'feed/load', qos: 0 }] });
    expect((await slow.next('suback')) as unknown as { granted: number[] }).toMatchObject({ granted: [0] });
    slow.stopReading();

    const reader = await connect(devices.reader as string);
    const seen = collectMessages(reader);
    expect(await subscribeGranted(reader, 'feed/load', 0)).toEqual([0]);
    const publisher = await connect(devices.publisher as string);
    const chunk = Buffer.alloc(64 * 1024, 7);
    // Well past what the kernel's buffers and the outbound bound hold together.
    const count = Math.ceil((3 * DEFAULT_MAX_OUTBOUND_BYTES + 16 * 1024 * 1024) / chunk.length);
    for (let i = 0; i < count; i++) await publisher.publishAsync('feed/load', chunk, { qos: 1 });

    const entry = await logsOf(
      devices.slow as string,
      (e) => e.kind === 'disconnect' && /Slow consumer/.test(String(e.disconnectReason)),
    );
    expect(entry.disconnectReason).toContain(`at most ${DEFAULT_MAX_OUTBOUND_BYTES}`);
    await eventually(() => seen.length === count, 15_000);
    // The server goes on: the publisher still gets its acknowledgements, a new client connects.
    await publisher.publishAsync('feed/load', 'after', { qos: 1 });
    const again = await connect(devices.slow as string);
    await again.endAsync();
  }, 60_000);

  it('disconnects a gateway that never reads its commands, and records the next ones without a route', async () => {
    const gateway = devices.gateway as string;
    const client = await raw(gateway);
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `losant/${gateway}/command`, qos: 0 }] });
    await client.next('suback');
    client.stopReading();
    const payload = { blob: 'x'.repeat(128 * 1024) };
    const send = () =>
      server.http<{ routedTo: string[] }>('POST', `/applications/${app}/devices/${gateway}/command`, {
        name: 'update',
        payload,
      });
    await eventually(async () => {
      const answer = ok(await send(), 200);
      return answer.routedTo.length === 0;
    }, 30_000);
    const entry = await logsOf(gateway, (e) => e.kind === 'disconnect');
    expect(entry.disconnectReason).toMatch(/^Slow consumer/);
  }, 60_000);

  it('refuses a custom-topic publish over 256 KiB without forwarding it', async () => {
    const watcher = await connect(devices.watcher as string);
    const seen = collectMessages(watcher);
    expect(await subscribeGranted(watcher, 'big/+', 0)).toEqual([0]);
    const publisher = await connect(devices.publisher as string);
    expect(await subscribeGranted(publisher, `losant/${devices.publisher}/error`)).toEqual([1]);
    const notice = nextMessage(publisher, `losant/${devices.publisher}/error`);
    await publisher.publishAsync('big/one', Buffer.alloc(256 * 1024 + 1), { qos: 1 });
    expect((await notice).payload).toMatchObject({ code: 413, topic: 'big/one' });
    await publisher.publishAsync('big/two', 'small', { qos: 1 });
    await eventually(() => seen.length > 0);
    expect(seen.map((m) => m.topic)).toEqual(['big/two']);
    await Promise.all([watcher.endAsync(), publisher.endAsync()]);
  });

  it('bounds the retained messages of an application, and frees room when one is removed', async () => {
    const retainer = await connect(devices.retainer as string);
    expect(await subscribeGranted(retainer, `losant/${devices.retainer}/error`)).toEqual([1]);
    const payload = Buffer.alloc(256 * 1024, 1);
    // 16 MiB of retained payload fits exactly; the next message does not.
    for (let i = 0; i < 64; i++) await retainer.publishAsync(`kept/${i}`, payload, { qos: 1, retain: true });
    const usage = () => server.running.broker.retainedUsage(app);
    expect(await usage()).toEqual({ messages: 64, bytes: 64 * payload.length });
    const notice = nextMessage(retainer, `losant/${devices.retainer}/error`);
    await retainer.publishAsync('kept/64', payload, { qos: 1, retain: true });
    expect((await notice).payload).toMatchObject({ code: 413, topic: 'kept/64' });
    expect((await usage()).messages).toBe(64);

    // A new subscriber gets the retained messages that were kept, and not the refused one.
    const watcher = await connect(devices.watcher as string);
    const seen = collectMessages(watcher);
    expect(await subscribeGranted(watcher, 'kept/+', 0)).toEqual([0]);
    await eventually(() => seen.length === 64, 10_000);
    expect(seen.some((m) => m.topic === 'kept/64')).toBe(false);
    // 16 MiB of retained messages is more than the outbound bound: a replay is paced by the reader.
    expect(watcher.connected).toBe(true);

    await retainer.publishAsync('kept/0', Buffer.alloc(0), { qos: 1, retain: true });
    await retainer.publishAsync('kept/64', payload, { qos: 1, retain: true });
    expect(await usage()).toEqual({ messages: 64, bytes: 64 * payload.length });
    await Promise.all([watcher.endAsync(), retainer.endAsync()]);
  }, 30_000);

  it('bounds the queue of a persistent session that is away, and says so in its log', async () => {
    const id = await device('persistent');
    const away = await connect(id, { clean: false });
    expect(await subscribeGranted(away, 'queue/+', 1)).toEqual([1]);
    await away.endAsync();
    const publisher = await connect(devices.publisher as string);
    const sent = DEFAULT_QUEUE_LIMITS.messages + 50;
    await Promise.all(Array.from({ length: sent }, (_, i) => publisher.publishAsync('queue/n', String(i), { qos: 1 })));
    const entry = await logsOf(
      id,
      (e) => e.kind === 'dropped' && /queue of undelivered QoS 1 messages is full/.test(String(e.reason)),
    );
    expect(entry.reason).toContain(`${DEFAULT_QUEUE_LIMITS.messages} messages`);

    const back = await connect(id, { clean: false });
    const seen = collectMessages(back);
    await eventually(() => seen.length === DEFAULT_QUEUE_LIMITS.messages, 10_000);
    // The oldest were kept; what came after the queue was full was dropped.
    expect(seen.map((m) => Number(m.payload))).toEqual(
      Array.from({ length: DEFAULT_QUEUE_LIMITS.messages }, (_, i) => i),
    );
    // Acknowledged messages free the queue: new ones flow again.
    await publisher.publishAsync('queue/n', 'fresh', { qos: 1 });
    await eventually(() => seen.some((m) => m.payload === 'fresh'));
    await Promise.all([back.endAsync(), publisher.endAsync()]);
  }, 30_000);

  it('closes a connection that publishes to a topic holding U+0000 [MQTT-1.5.3-2], and stores nothing', async () => {
    const id = devices.nul as string;
    const client = await raw(id);
    client.send({
      cmd: 'publish',
      topic: `losant/${id}/state\u0000`,
      payload: JSON.stringify({ data: { temperature: 1 } }),
      qos: 1,
      messageId: 1,
    });
    await client.closed;
    expect(client.received.filter((p) => p.cmd === 'puback')).toEqual([]);
    const entry = await logsOf(id, (e) => e.kind === 'disconnect');
    expect(entry.disconnectReason).toContain('U+0000');
    expect(await stateHistory(server, app, id)).toEqual([]);
  });

  it('closes a connection that publishes to an empty topic [MQTT-4.7.3-1]', async () => {
    const client = await raw(devices.nul as string);
    client.send({ cmd: 'publish', topic: '', payload: 'x', qos: 1, messageId: 1 });
    await client.closed;
    expect(client.received.filter((p) => p.cmd === 'puback')).toEqual([]);
  });

  it('closes a connection that subscribes to a filter holding U+0000', async () => {
    const client = await raw(devices.nulSub as string);
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/\u0000', qos: 0 }] });
    await client.closed;
    expect(client.received.filter((p) => p.cmd === 'suback')).toEqual([]);
  });

  it('keeps serving after all of the above', async () => {
    const client: MqttClient = await connect(devices.publisher as string);
    await client.publishAsync(`losant/${devices.publisher}/state`, JSON.stringify({ data: { temperature: 3 } }), {
      qos: 1,
    });
    expect((await stateHistory(server, app, devices.publisher as string)).map((s) => s.data)).toEqual([
      { temperature: 3 },
    ]);
    await client.endAsync();
    await closed(client);
  });
});
