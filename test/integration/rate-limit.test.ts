/**
 * Rate limits (spec: MQTT, rate limit) with an application limit of 5 messages per 60 s:
 * counted per peripheral for gateways, so a busy peripheral never throttles its siblings, and
 * a device over its own limit is disconnected.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  closed,
  collectMessages,
  createFleet,
  deviceLogs,
  eventually,
  eventuallyLog,
  type LogEntry,
  ok,
  type SeedFleet,
  startTestServer,
  stateHistory,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';

const LIMIT = 5;

describe('rate limits', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  const HOUR_AGO = Date.now() - 3600_000;

  const history = (deviceId: string) => stateHistory(server, fleet.applicationId, deviceId);
  const topicOf = (deviceId: string) => `losant/${deviceId}/state`;
  /** One state with its own time, so no two of them merge. */
  const state = (i: number) => JSON.stringify({ data: { temperature: i }, time: Date.now() - 60_000 + i * 10 });

  async function connectWithErrors(deviceId: string): Promise<{ client: MqttClient; errors: () => unknown[] }> {
    const client = await server.connect(deviceId, fleet.key, fleet.secret);
    const seen = collectMessages(client);
    expect(await subscribeGranted(client, `losant/${deviceId}/error`)).toEqual([1]);
    return { client, errors: () => seen.filter((m) => m.topic === `losant/${deviceId}/error`).map((m) => m.payload) };
  }

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server, { application: { rateLimit: { messages: LIMIT, windowSeconds: 60 } } });
    for (const id of [fleet.bound, fleet.floating, fleet.standalone, fleet.otherGateway]) {
      // API tokens are not limited.
      ok(
        await server.http('POST', `/applications/${fleet.applicationId}/devices/${id}/state`, {
          data: { temperature: -1, label: 'before' },
          time: HOUR_AGO,
        }),
        200,
      );
    }
  });
  afterEach(() => server.endClients());
  afterAll(() => server.stop());

  it('drops a busy peripheral’s extra messages while its sibling and the gateway carry on', async () => {
    const boundBefore = await history(fleet.bound);
    const floatingBefore = await history(fleet.floating);
    const { client, errors } = await connectWithErrors(fleet.gateway);

    for (let i = 0; i < LIMIT + 3; i++) await client.publishAsync(topicOf(fleet.bound), state(i), { qos: 1 });
    for (let i = 0; i < LIMIT; i++) await client.publishAsync(topicOf(fleet.floating), state(100 + i), { qos: 1 });
    await client.publishAsync(topicOf(fleet.gateway), state(200), { qos: 1 });

    const bound = await history(fleet.bound);
    expect(bound.slice(0, boundBefore.length)).toEqual(boundBefore);
    expect(bound.slice(boundBefore.length).map((s) => s.data.temperature)).toEqual([0, 1, 2, 3, 4]);
    const floating = await history(fleet.floating);
    expect(floating.slice(0, floatingBefore.length)).toEqual(floatingBefore);
    expect(floating.slice(floatingBefore.length).map((s) => s.data.temperature)).toEqual([100, 101, 102, 103, 104]);
    expect((await history(fleet.gateway)).at(-1)?.data).toEqual({ temperature: 200 });
    expect(client.connected).toBe(true);

    const reason = `Rate limit exceeded for peripheral ${fleet.bound}`;
    const isLimit = (e: LogEntry) => e.kind === 'rejected' && e.reason === reason;
    await eventually(
      async () => (await deviceLogs(server, fleet.applicationId, fleet.bound)).filter(isLimit).length === 3,
    );
    await eventually(
      async () => (await deviceLogs(server, fleet.applicationId, fleet.gateway)).filter(isLimit).length === 3,
    );
    expect((await deviceLogs(server, fleet.applicationId, fleet.bound)).find(isLimit)).toMatchObject({
      status: 429,
      via: 'mqtt',
      reportedBy: fleet.gateway,
    });
    await eventually(() => errors().length === 3);
    expect(errors()).toEqual(
      Array.from({ length: 3 }, () =>
        expect.objectContaining({ code: 429, message: reason, topic: topicOf(fleet.bound) }),
      ),
    );
    // Nothing in the gateway's own log says it was disconnected.
    expect((await deviceLogs(server, fleet.applicationId, fleet.gateway)).some((e) => e.kind === 'disconnect')).toBe(
      false,
    );
  });

  it('disconnects a standalone device over its own limit', async () => {
    const before = await history(fleet.standalone);
    const client = await server.connect(fleet.standalone, fleet.key, fleet.secret);
    const gone = closed(client);
    for (let i = 0; i < LIMIT; i++) await client.publishAsync(topicOf(fleet.standalone), state(i), { qos: 1 });
    client.publish(topicOf(fleet.standalone), state(LIMIT), { qos: 0 });
    await gone;

    const entry = await eventuallyLog(server, fleet.applicationId, fleet.standalone, (e) => e.kind === 'disconnect');
    expect(entry).toMatchObject({ disconnectReason: 'Rate limit exceeded', messagesFromClient: LIMIT + 1 });
    const rejected = await eventuallyLog(server, fleet.applicationId, fleet.standalone, (e) => e.kind === 'rejected');
    expect(rejected).toMatchObject({ status: 429, reason: 'Rate limit exceeded' });
    const after = await history(fleet.standalone);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after.slice(before.length).map((s) => s.data.temperature)).toEqual([0, 1, 2, 3, 4]);
  });

  it('answers 429 RateLimited to REST state from a device over its limit', async () => {
    const id = ok(
      await server.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/devices`, {
        name: 'rest limited',
        attributes: [{ name: 'temperature', dataType: 'number' }],
      }),
    ).id;
    const auth = ok(
      await server.http<{ token: string }>(
        'POST',
        '/auth/device',
        { deviceId: id, key: fleet.key, secret: fleet.secret },
        null,
      ),
      200,
    );
    const post = (body: string, token?: string) =>
      server.http('POST', `/applications/${fleet.applicationId}/devices/${id}/state`, body, token);
    for (let i = 0; i < LIMIT; i++) ok(await post(state(i), auth.token), 200);
    const before = await history(id);
    expect(await post(state(LIMIT), auth.token)).toEqual({
      status: 429,
      body: { type: 'RateLimited', message: 'Rate limit exceeded' },
    });
    expect(await history(id)).toEqual(before);
    // API tokens are not limited.
    ok(await post(state(LIMIT + 1)), 200);
    expect((await history(id)).map((s) => s.data.temperature)).toEqual([0, 1, 2, 3, 4, LIMIT + 1]);
  });

  it('counts refused publishes against the sender and disconnects it past its limit', async () => {
    const before = await history(fleet.bound);
    const { client } = await connectWithErrors(fleet.otherGateway);
    // The other gateway may not act for the bound peripheral: every one of these is refused.
    for (let i = 0; i < LIMIT; i++) await client.publishAsync(topicOf(fleet.bound), state(50 + i), { qos: 1 });
    expect(client.connected).toBe(true);
    client.publish(topicOf(fleet.bound), state(55), { qos: 0 });
    await eventually(() => !client.connected);

    const entry = await eventuallyLog(server, fleet.applicationId, fleet.otherGateway, (e) => e.kind === 'disconnect');
    expect(entry.disconnectReason).toBe('Rate limit exceeded');
    expect(await history(fleet.bound)).toEqual(before);
  });
});
