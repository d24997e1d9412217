/**
 * Connections over their lifetime (spec: MQTT, REST logs): what the device log records on
 * connect and disconnect, MQTT over WebSocket end to end, and a server stopped under a client
 * and restarted on the same data directory keeping every state it acknowledged.
 */
import { rmSync } from 'node:fs';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  closed,
  createFleet,
  deviceLogs,
  eventually,
  eventuallyLog,
  nextMessage,
  ok,
  type SeedFleet,
  startTestServer,
  stateHistory,
  type TestServer,
} from '../helpers/server.js';

type DeviceBody = { connectionInfo: { connected: number | null; time: string | null } };

describe('connection lifecycle', () => {
  let server: TestServer;
  let fleet: SeedFleet;

  const device = async (deviceId: string) =>
    ok(await server.http<DeviceBody>('GET', `/applications/${fleet.applicationId}/devices/${deviceId}`), 200);
  const command = async (deviceId: string, name: string) =>
    ok(
      await server.http<{ routedTo: string[] }>(
        'POST',
        `/applications/${fleet.applicationId}/devices/${deviceId}/command`,
        { name },
      ),
      200,
    );

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server);
  });
  afterEach(() => server.endClients());
  afterAll(() => server.stop());

  it('logs a connect and a clean disconnect with message counts and the address', async () => {
    const id = fleet.standalone;
    const logsBefore = await deviceLogs(server, fleet.applicationId, id);
    const client = await server.connect(id, fleet.key, fleet.secret);
    const connect = await eventuallyLog(server, fleet.applicationId, id, (e) => e.kind === 'connect');
    // The connect entry records the successful authentication: which access key was used.
    expect(connect).toEqual({
      kind: 'connect',
      time: expect.any(String),
      connected: 1,
      keyId: expect.stringMatching(/^[0-9a-f]{24}$/),
      ipAddress: '127.0.0.1',
    });
    expect((await device(id)).connectionInfo).toEqual({ connected: 1, time: expect.any(String) });

    await client.subscribeAsync(`losant/${id}/command`, { qos: 1 });
    for (let i = 0; i < 3; i++) {
      await client.publishAsync(`losant/${id}/state`, JSON.stringify({ data: { temperature: i } }), { qos: 1 });
    }
    for (const name of ['one', 'two']) {
      const arrived = nextMessage(client, `losant/${id}/command`);
      expect((await command(id, name)).routedTo).toEqual([id]);
      expect((await arrived).payload).toMatchObject({ name });
    }
    await client.endAsync();

    const logs = await eventually(async () => {
      const all = await deviceLogs(server, fleet.applicationId, id);
      return all[0]?.kind === 'disconnect' ? all : undefined;
    });
    // Newest first: the disconnect, then the connect; nothing else in between.
    expect(logs.slice(0, 2).map((e) => e.kind)).toEqual(['disconnect', 'connect']);
    expect(logs.slice(2)).toEqual(logsBefore);
    expect(logs[0]).toEqual({
      kind: 'disconnect',
      time: expect.any(String),
      connected: 0,
      disconnectReason: 'Client disconnected',
      messagesFromClient: 3,
      messagesToClient: 2,
      ipAddress: '127.0.0.1',
      connectedAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
    });
    expect(Date.parse(logs[0]!.connectedAt as string)).toBeLessThanOrEqual(Date.parse(logs[1]!.time));
    expect(Date.parse(logs[0]!.time)).toBeGreaterThanOrEqual(Date.parse(logs[1]!.time));
    const info = (await device(id)).connectionInfo;
    expect(info.connected).toBe(0);
    // Since the disconnect: not before the connect, not after the disconnect was logged.
    expect(Date.parse(info.time ?? '')).toBeGreaterThanOrEqual(Date.parse(logs[1]!.time));
    expect(Date.parse(info.time ?? '')).toBeLessThanOrEqual(Date.parse(logs[0]!.time));
  });

  it('logs a connection dropped without DISCONNECT as lost', async () => {
    const client = await server.connect(fleet.gateway, fleet.key, fleet.secret);
    const gone = closed(client);
    client.stream.destroy();
    await gone;
    const entry = await eventuallyLog(server, fleet.applicationId, fleet.gateway, (e) => e.kind === 'disconnect');
    expect(entry).toMatchObject({ disconnectReason: 'Connection lost', connected: 0 });
    await eventually(async () => (await device(fleet.gateway)).connectionInfo.connected === 0);
  });

  it('speaks MQTT over WebSocket at /mqtt end to end', async () => {
    expect(server.running.urls.ws).toMatch(/^ws:\/\/.+\/mqtt$/);
    const client = mqtt.connect(server.running.urls.ws, {
      clientId: fleet.gateway,
      username: fleet.key,
      password: fleet.secret,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    server.clients.push(client);
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    const connect = await eventuallyLog(
      server,
      fleet.applicationId,
      fleet.gateway,
      (e) => e.kind === 'connect' && e.ipAddress !== undefined,
    );
    expect(connect.ipAddress).toBe('127.0.0.1');
    await eventually(async () => (await device(fleet.gateway)).connectionInfo.connected === 1);

    await client.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 77 } }), {
      qos: 1,
    });
    expect((await stateHistory(server, fleet.applicationId, fleet.bound)).at(-1)).toMatchObject({
      data: { temperature: 77 },
      reportedBy: fleet.gateway,
    });

    await client.subscribeAsync(`losant/${fleet.bound}/command`, { qos: 1 });
    const arrived = nextMessage(client, `losant/${fleet.bound}/command`);
    expect((await command(fleet.bound, 'over-ws')).routedTo).toEqual([fleet.gateway]);
    expect((await arrived).payload).toMatchObject({ name: 'over-ws' });

    // The gateway disconnected before (the previous test): wait for this disconnect's entry, not
    // that one, which is all there is until the group commit of the new one is done.
    const disconnects = async () =>
      (await deviceLogs(server, fleet.applicationId, fleet.gateway)).filter((e) => e.kind === 'disconnect');
    const before = (await disconnects()).length;
    await client.endAsync();
    const entry = await eventually(async () => {
      const now = await disconnects();
      return now.length > before ? now[0] : undefined;
    });
    expect(entry).toMatchObject({
      disconnectReason: 'Client disconnected',
      messagesFromClient: 1,
      messagesToClient: 1,
    });
  });
});

describe('stop and restart on the same data directory', () => {
  let first: TestServer;
  let second: TestServer | undefined;
  let fleet: SeedFleet;

  beforeAll(async () => {
    first = await startTestServer({ keepData: true });
    fleet = await createFleet(first, { application: { rateLimit: { messages: 0, windowSeconds: 15 } } });
  });
  afterAll(async () => {
    await first.stop();
    await second?.stop();
    rmSync(first.dataDir, { recursive: true, force: true });
  });

  it('keeps every acknowledged QoS 1 state and shows the device disconnected', async () => {
    const client = await first.connect(fleet.gateway, fleet.key, fleet.secret);
    await eventually(
      async () =>
        ok(await first.http<DeviceBody>('GET', `/applications/${fleet.applicationId}/devices/${fleet.gateway}`), 200)
          .connectionInfo.connected === 1,
    );
    const base = Date.now() - 100_000;
    const acked: number[] = [];
    // Publishes keep going while the server stops; only the acknowledged ones are promised.
    const N = 400;
    for (let seq = 0; seq < N; seq++) {
      const target = seq % 2 === 0 ? fleet.gateway : fleet.bound;
      client
        .publishAsync(`losant/${target}/state`, JSON.stringify({ data: { temperature: seq }, time: base + seq }), {
          qos: 1,
        })
        .then(
          () => acked.push(seq),
          () => {},
        );
    }
    await eventually(() => acked.length >= 50);
    const gone = closed(client);
    await first.running.stop();
    await gone;
    const ackedAtStop = [...acked];
    expect(ackedAtStop.length).toBeGreaterThanOrEqual(50);

    second = await startTestServer({ dataDir: first.dataDir, keepData: true });
    const stored = new Set<number>();
    for (const id of [fleet.gateway, fleet.bound]) {
      for (const s of await stateHistory(second, fleet.applicationId, id)) stored.add(s.data.temperature as number);
    }
    const missing = acked.filter((seq) => !stored.has(seq));
    expect(missing).toEqual([]);
    // Stored states carry what was sent, at the time it named.
    const gatewayStates = await stateHistory(second, fleet.applicationId, fleet.gateway);
    for (const s of gatewayStates) {
      const seq = s.data.temperature as number;
      expect(seq % 2).toBe(0);
      expect(s).toEqual({
        time: new Date(base + seq).toISOString(),
        data: { temperature: seq },
        reportedBy: fleet.gateway,
      });
    }

    const devices = ok(
      await second.http<{ items: Array<{ id: string } & DeviceBody> }>(
        'GET',
        `/applications/${fleet.applicationId}/devices`,
      ),
      200,
    );
    const byId = new Map(devices.items.map((d) => [d.id, d]));
    expect(byId.get(fleet.gateway)?.connectionInfo.connected).toBe(0);
    // The peripheral it reported for is not shown connected through a gateway that is gone.
    expect(byId.get(fleet.bound)?.connectionInfo.connected).toBe(0);
    const logs = await deviceLogs(second, fleet.applicationId, fleet.gateway);
    expect(logs[0]).toMatchObject({ kind: 'disconnect', connected: 0, disconnectReason: 'Server shutting down' });

    // The restarted server accepts the same credentials. The peripheral is not cached yet, so the
    // first of these publishes waits on the store; the rest must still be stored in sending order.
    const again = await second.connect(fleet.gateway, fleet.key, fleet.secret);
    const server2 = second;
    const boundBefore = await stateHistory(server2, fleet.applicationId, fleet.bound);
    await Promise.all(
      Array.from({ length: 100 }, (_, seq) =>
        again.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 1000 + seq } }), {
          qos: 1,
        }),
      ),
    );
    const seqs = (await stateHistory(server2, fleet.applicationId, fleet.bound))
      .slice(boundBefore.length)
      .map((s) => s.data.temperature as number);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBeGreaterThan(seqs[i - 1] as number);
    expect(seqs.at(-1)).toBe(1099);

    await again.publishAsync(`losant/${fleet.gateway}/state`, JSON.stringify({ data: { temperature: -5 } }), {
      qos: 1,
    });
    expect((await stateHistory(second, fleet.applicationId, fleet.gateway)).at(-1)?.data).toEqual({ temperature: -5 });
  });
});
