/**
 * Hostile state and commands from authenticated devices (docs/decisions.md, "State" and
 * "Device logs"): times no Date can hold, deeply nested times, non-finite numbers, payloads
 * with tens of thousands of unknown attributes, and command floods. Each is answered, logged in
 * bounded form, stores nothing it should not, and leaves the server serving.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LOG_BUDGET } from '../../src/core/log-budget.js';
import {
  createFleet,
  deviceLogs,
  eventually,
  eventuallyLog,
  type LogEntry,
  ok,
  type SeedFleet,
  startTestServer,
  stateHistory,
  type TestServer,
} from '../helpers/server.js';

describe('ingest hardening', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let client: MqttClient;

  const stateTopic = (id: string) => `losant/${id}/state`;
  const postState = (id: string, body: string) =>
    server.http<{ type?: string; message?: string; stored?: number }>(
      'POST',
      `/applications/${fleet.applicationId}/devices/${id}/state`,
      body,
    );

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server, { application: { rateLimit: { messages: 0, windowSeconds: 15 } } });
    client = await server.connect(fleet.standalone, fleet.key, fleet.secret);
  });

  afterAll(async () => {
    await server?.stop();
  });

  const outOfRange: Array<[string, string]> = [
    ['1e300', '1e300'],
    ['-1e300', '-1e300'],
    ['{"$date": "9000000000000000"}', '{"$date": "9000000000000000"}'],
  ];

  it.each(outOfRange)(
    'acknowledges and ignores a state with time %s over MQTT, and keeps serving',
    async (_n, time) => {
      await client.publishAsync(stateTopic(fleet.standalone), `{"data":{"temperature":1},"time":${time}}`, { qos: 1 });
      const entry = await eventuallyLog(
        server,
        fleet.applicationId,
        fleet.standalone,
        (e) => e.kind === 'rejected' && /outside the range of dates/.test(String(e.reason)),
      );
      expect(entry.status).toBe(400);
      await client.publishAsync(stateTopic(fleet.standalone), '{"data":{"temperature":2}}', { qos: 1 });
      expect((await stateHistory(server, fleet.applicationId, fleet.standalone)).at(-1)?.data).toEqual({
        temperature: 2,
      });
    },
  );

  it.each(outOfRange)('answers 400 to a state with time %s over REST', async (_n, time) => {
    const answer = await postState(fleet.standalone, `{"data":{"temperature":1},"time":${time}}`);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ type: 'Validation', message: expect.stringContaining('outside the range') });
  });

  it('reads a time nested 16,000 levels deep in $date as unreadable, without recursion, on both protocols', async () => {
    const deep = `${'{"$date":'.repeat(16_000)}1717230615000${'}'.repeat(16_000)}`;
    const payload = `{"data":{"temperature":3},"time":${deep}}`;
    await client.publishAsync(stateTopic(fleet.standalone), payload, { qos: 1 });
    const answer = await postState(fleet.standalone, payload);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ stored: 1 });
    const history = await stateHistory(server, fleet.applicationId, fleet.standalone);
    expect(history.filter((s) => s.data.temperature === 3)).toHaveLength(2);
  });

  it('ignores a UTF-8 byte order mark before a JSON payload, as RFC 8259 allows, on both protocols', async () => {
    const bom = '\uFEFF';
    expect((await postState(fleet.standalone, `${bom}{"data":{"temperature":11}}`)).status).toBe(200);
    await client.publishAsync(stateTopic(fleet.standalone), `${bom}{"data":{"temperature":12}}`, { qos: 1 });
    const values = (await stateHistory(server, fleet.applicationId, fleet.standalone)).map((s) => s.data.temperature);
    expect(values).toEqual(expect.arrayContaining([11, 12]));
  });

  it('refuses 1e999 (Infinity after JSON parsing) for string and number attributes, storing nothing', async () => {
    const before = await stateHistory(server, fleet.applicationId, fleet.floating);
    const answer = await postState(fleet.floating, '{"data":{"label":1e999,"temperature":-1e999}}');
    expect(answer.status).toBe(400);
    expect(answer.body?.message).toContain('is not a finite number');
    expect(await stateHistory(server, fleet.applicationId, fleet.floating)).toEqual(before);
  });

  it('writes one bounded log entry for a payload with 23,500 unknown attributes', async () => {
    const device = fleet.bound;
    const gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
    const data: Record<string, number> = { temperature: 20 };
    for (let i = 0; i < 23_500; i++) data[`u${i}`] = 1;
    const payload = JSON.stringify({ data });
    expect(payload.length).toBeLessThan(256 * 1024);
    const logged = async () =>
      (await deviceLogs(server, fleet.applicationId, device)).filter((e) => e.kind === 'dropped');
    const before = (await logged()).length;
    for (let i = 0; i < 5; i++) await gateway.publishAsync(stateTopic(device), payload, { qos: 1 });
    const entries = await eventually(async () => {
      const all = await logged();
      return all.length - before === 5 ? all : undefined;
    });
    const entry = entries[0] as LogEntry;
    expect(entry).toMatchObject({ count: 23_500, reason: expect.stringMatching(/^23500 values left out: /) });
    expect(entry.issues).toHaveLength(10);
    expect(JSON.stringify(entry).length).toBeLessThan(2_000);
    await gateway.endAsync();
  });

  it('caps the log entries a device can cause in a minute', async () => {
    const flood = DEFAULT_LOG_BUDGET.entries + 50;
    for (let i = 0; i < flood; i++) client.publish(stateTopic(fleet.standalone), 'not json', { qos: 0 });
    await client.publishAsync(stateTopic(fleet.standalone), '{"data":{"temperature":4}}', { qos: 1 });
    await server.running.platform.drain();
    const logs = await deviceLogs(server, fleet.applicationId, fleet.standalone);
    const recent = logs.filter((e) => Date.parse(e.time) > Date.now() - 60_000);
    expect(recent.length).toBeLessThanOrEqual(DEFAULT_LOG_BUDGET.entries);
    expect(recent.filter((e) => e.kind === 'rejected' && /invalid JSON/.test(String(e.reason))).length).toBeGreaterThan(
      0,
    );
  });

  it('rate-limits commands sent with a device token by the sender’s own limit, answering 429', async () => {
    const app = ok(
      await server.http<{ id: string }>('POST', '/applications', {
        name: 'commands',
        rateLimit: { messages: 3, windowSeconds: 60 },
      }),
    ).id;
    const sender = ok(await server.http<{ id: string }>('POST', `/applications/${app}/devices`, { name: 'sender' })).id;
    const target = ok(await server.http<{ id: string }>('POST', `/applications/${app}/devices`, { name: 'target' })).id;
    const key = ok(await server.http<{ key: string; secret: string }>('POST', `/applications/${app}/keys`, {}));
    const { token } = ok(
      await server.http<{ token: string }>('POST', '/auth/device', {
        deviceId: sender,
        key: key.key,
        secret: key.secret,
      }),
      200,
    );
    const send = () =>
      server.http<{ type?: string }>('POST', `/applications/${app}/devices/${target}/command`, { name: 'go' }, token);
    for (let i = 0; i < 3; i++) expect((await send()).status).toBe(200);
    const refused = await fetch(`${server.running.urls.http}/applications/${app}/devices/${target}/command`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'go' }),
    });
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ type: 'RateLimited' });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    // An API token is counted apart, per application.
    expect((await server.http('POST', `/applications/${app}/devices/${target}/command`, { name: 'go' })).status).toBe(
      200,
    );
  });
});
