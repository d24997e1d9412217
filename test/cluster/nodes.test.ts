/**
 * Three real nodes (`gatehouse serve` processes) on one fresh PostgreSQL database and one Redis
 * (docs/scale-out.md, "Nodes sharing Redis"), with real MQTT clients: commands reach a gateway
 * held by another node, a live stream on one node sees state ingested on another, the same
 * client id on another node takes over, and when a node is killed its clients move, nothing it
 * acknowledged is lost and its singleton work moves to a survivor.
 *
 * Needs the built CLI (`npm run build`), PostgreSQL and Redis (`.ci/run` starts both).
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import {
  closed,
  collectMessages,
  createFleet,
  eventually,
  nextMessage,
  ok,
  type SeedFleet,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';
import { openStream, type SseStream } from '../helpers/sse.js';
import { type Node, Nodes } from './nodes.js';

const commandTopic = (deviceId: string) => `losant/${deviceId}/command`;
const stateTopic = (deviceId: string) => `losant/${deviceId}/state`;

describe('nodes sharing Redis and PostgreSQL', () => {
  let database: TestDatabase;
  let nodes: Nodes;
  let a: Node;
  let b: Node;
  let c: Node;
  let fleet: SeedFleet;

  const connection = async (node: Node, deviceId: string) =>
    ok(
      await node.http<{ connectionInfo: { connected: 0 | 1 | null } }>(
        'GET',
        `/applications/${fleet.applicationId}/devices/${deviceId}`,
      ),
      200,
    ).connectionInfo.connected;
  const command = async (node: Node, deviceId: string, name: string) =>
    ok(
      await node.http<{ routedTo: string[] }>(
        'POST',
        `/applications/${fleet.applicationId}/devices/${deviceId}/command`,
        { name, payload: { n: name } },
      ),
      200,
    );

  beforeAll(async () => {
    database = await createTestDatabase();
    nodes = new Nodes(database.url);
    // A first, alone, so it takes the singleton lease; then the others.
    a = await nodes.start('a');
    await eventually(() => a.log().some((l) => l.event === 'leaseAcquired'), 10_000);
    [b, c] = await Promise.all([nodes.start('b'), nodes.start('c')]);
    fleet = await createFleet(a as unknown as TestServer, {
      application: { rateLimit: { messages: 0, windowSeconds: 15 } },
    });
  }, 60_000);

  afterAll(async () => {
    await nodes?.stop();
    await database?.drop();
  }, 30_000);

  it('routes a command sent on one node to the gateway held by another, and says where it went', async () => {
    const gw = await a.connect(fleet.gateway, fleet.key, fleet.secret);
    expect(await subscribeGranted(gw, [commandTopic(fleet.gateway), commandTopic(fleet.bound)])).toEqual([1, 1]);

    const forPeripheral = nextMessage(gw, commandTopic(fleet.bound));
    expect((await command(b, fleet.bound, 'via-b')).routedTo).toEqual([fleet.gateway]);
    expect((await forPeripheral).payload).toMatchObject({ name: 'via-b', payload: { n: 'via-b' } });

    const forGateway = nextMessage(gw, commandTopic(fleet.gateway));
    expect((await command(c, fleet.gateway, 'via-c')).routedTo).toEqual([fleet.gateway]);
    expect((await forGateway).payload).toMatchObject({ name: 'via-c' });

    // Nobody holds the standalone device: no route, on any node.
    expect((await command(b, fleet.standalone, 'nobody')).routedTo).toEqual([]);
    // The history, read on a third node, holds the route.
    const history = ok(
      await c.http<Array<{ name: string; routedTo: string[] }>>(
        'GET',
        `/applications/${fleet.applicationId}/devices/${fleet.bound}/command?limit=10`,
      ),
      200,
    );
    expect(history[0]).toMatchObject({ name: 'via-b', routedTo: [fleet.gateway] });
    // Another node sees the gateway connected.
    expect(await connection(c, fleet.gateway)).toBe(1);
    await gw.endAsync();
    await eventually(async () => (await connection(b, fleet.gateway)) === 0);
  });

  it('shows state ingested on one node in a live stream on another', async () => {
    const stream = await openStream(c.asServer(), `/applications/${fleet.applicationId}/events?types=state`);
    expect(stream.status).toBe(200);
    const device = await a.connect(fleet.standalone, fleet.key, fleet.secret);
    // The stream's node tells the others it watches the application: give that a moment.
    await new Promise((r) => setTimeout(r, 300));
    await device.publishAsync(stateTopic(fleet.standalone), JSON.stringify({ data: { temperature: 21 } }), {
      qos: 1,
    });
    const events = await stream.waitFor((es) => es.some((e) => e.event === 'state'));
    const state = events.find((e) => e.event === 'state');
    expect(state?.json).toMatchObject({ deviceId: fleet.standalone, data: { temperature: 21 } });
    stream.close();

    // Reconnecting to yet another node with Last-Event-ID replays what came after it.
    await device.publishAsync(stateTopic(fleet.standalone), JSON.stringify({ data: { temperature: 22 } }), {
      qos: 1,
    });
    const replay = await openStream(b.asServer(), `/applications/${fleet.applicationId}/events?types=state`, {
      lastEventId: state?.id as string,
    });
    const replayed = await replay.waitFor((es) => es.some((e) => e.event === 'state'));
    expect(replayed.filter((e) => e.event === 'state').map((e) => (e.json as { data: unknown }).data)).toEqual([
      { temperature: 22 },
    ]);
    replay.close();
    await device.endAsync();
  });

  it('lets the same client id on another node take over: the old connection closes, the device stays online', async () => {
    const first = await a.connect(fleet.standalone, fleet.key, fleet.secret);
    await eventually(async () => (await connection(c, fleet.standalone)) === 1);
    const firstClosed = closed(first);
    const second = await b.connect(fleet.standalone, fleet.key, fleet.secret);
    await firstClosed;
    expect(second.connected).toBe(true);
    // The old node's disconnect did not mark the device offline.
    await new Promise((r) => setTimeout(r, 300));
    expect(await connection(c, fleet.standalone)).toBe(1);
    const logs = ok(
      await c.http<Array<{ kind: string; disconnectReason?: string }>>(
        'GET',
        `/applications/${fleet.applicationId}/devices/${fleet.standalone}/logs?limit=5`,
      ),
      200,
    );
    expect(logs.find((l) => l.kind === 'disconnect')?.disconnectReason).toBe('Duplicate client id');
    // A command sent on the old node reaches the new connection.
    expect(await subscribeGranted(second, commandTopic(fleet.standalone))).toEqual([1]);
    const arrived = nextMessage(second, commandTopic(fleet.standalone));
    expect((await command(a, fleet.standalone, 'to-new')).routedTo).toEqual([fleet.standalone]);
    expect((await arrived).payload).toMatchObject({ name: 'to-new' });
    await second.endAsync();
  });

  it('keeps exactly one of two connections made at once on two nodes: the newest', async () => {
    for (let round = 0; round < 10; round++) {
      const clients = await Promise.all([
        a.connect(fleet.otherGateway, fleet.key, fleet.secret),
        b.connect(fleet.otherGateway, fleet.key, fleet.secret),
      ]);
      await eventually(() => clients.filter((cl) => cl.connected).length === 1, 3000);
      await new Promise((r) => setTimeout(r, 100));
      expect(clients.filter((cl) => cl.connected)).toHaveLength(1);
      expect(await connection(c, fleet.otherGateway)).toBe(1);
      await Promise.all(clients.map((cl) => cl.endAsync(true)));
    }
  });

  it('applies a definition changed on one node on the others: a key deleted on one closes its clients on another', async () => {
    const key = ok(
      await b.http<{ id: string; key: string; secret: string }>('POST', `/applications/${fleet.applicationId}/keys`, {
        description: 'short-lived',
      }),
    );
    const client = await a.connect(fleet.otherGateway, key.key, key.secret);
    const gone = closed(client);
    ok(await c.http('DELETE', `/applications/${fleet.applicationId}/keys/${key.id}`), 200);
    await gone;
    // The node holding the client logs why it closed it.
    await eventually(async () =>
      ok(
        await b.http<Array<{ kind: string; disconnectReason?: string }>>(
          'GET',
          `/applications/${fleet.applicationId}/devices/${fleet.otherGateway}/logs?limit=5`,
        ),
        200,
      ).find((l) => l.kind === 'disconnect' && l.disconnectReason === 'Access key deleted'),
    );
    await eventually(async () => (await connection(b, fleet.otherGateway)) === 0);
  });

  it('refuses an API token revoked on one node on every other node', async () => {
    const made = ok(
      await a.http<{ id: string; token: string }>('POST', `/applications/${fleet.applicationId}/tokens`, {
        name: 'reader',
        role: 'viewer',
      }),
    );
    const read = (node: Node) =>
      node.http('GET', `/applications/${fleet.applicationId}/devices/${fleet.gateway}`, undefined, made.token);
    expect((await read(c)).status).toBe(200);
    ok(await b.http('DELETE', `/applications/${fleet.applicationId}/tokens/${made.id}`), 200);
    await eventually(async () => (await read(c)).status === 401);
    expect((await read(a)).status).toBe(401);
  });

  it("counts a device's messages across nodes: its limit holds when it moves to another node", async () => {
    const limited = await createFleet(b as unknown as TestServer, {
      application: { rateLimit: { messages: 10, windowSeconds: 3600 } },
    });
    const publish = (client: MqttClient, i: number) =>
      client.publishAsync(stateTopic(limited.standalone), JSON.stringify({ data: { temperature: i } }), { qos: 1 });
    const first = await a.connect(limited.standalone, limited.key, limited.secret);
    for (let i = 0; i < 6; i++) await publish(first, i);
    await first.endAsync();
    const second = await c.connect(limited.standalone, limited.key, limited.secret);
    const cut = closed(second);
    for (let i = 6; i < 10; i++) await publish(second, i);
    // The eleventh message of the window, on the second node, is over the limit.
    second.on('error', () => {});
    void publish(second, 10).catch(() => {});
    await cut;
    await eventually(async () =>
      ok(
        await b.http<Array<{ kind: string; disconnectReason?: string }>>(
          'GET',
          `/applications/${limited.applicationId}/devices/${limited.standalone}/logs?limit=5`,
        ),
        200,
      ).find((l) => l.kind === 'disconnect' && l.disconnectReason === 'Rate limit exceeded'),
    );
    const stored = ok(
      await b.http<unknown[]>(
        'GET',
        `/applications/${limited.applicationId}/devices/${limited.standalone}/state?limit=100&start=0`,
      ),
      200,
    );
    expect(stored).toHaveLength(10);
  });

  it('carries custom topics between nodes, within the application only', async () => {
    const key = ok(
      await a.http<{ key: string; secret: string }>('POST', `/applications/${fleet.applicationId}/keys`, {
        description: 'custom topics',
        filterType: 'all',
      }),
    );
    const subscriber = await a.connect(fleet.otherGateway, key.key, key.secret);
    expect(await subscribeGranted(subscriber, 'plant/+/temperature')).toEqual([1]);
    const other = await createFleet(a as unknown as TestServer);
    const otherKey = ok(
      await a.http<{ key: string; secret: string }>('POST', `/applications/${other.applicationId}/keys`, {
        description: 'custom topics',
        filterType: 'all',
      }),
    );
    // Another application's device on another node publishes the same topic: not delivered.
    const stranger = await c.connect(other.standalone, otherKey.key, otherKey.secret);
    await stranger.publishAsync('plant/1/temperature', 'stranger', { qos: 1 });
    const publisher = await b.connect(fleet.standalone, key.key, key.secret);
    const seen = collectMessages(subscriber);
    await publisher.publishAsync('plant/7/temperature', '21.5', { qos: 1 });
    await eventually(() => seen.length > 0);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual([{ topic: 'plant/7/temperature', payload: 21.5 }]);
    await Promise.all([subscriber.endAsync(), stranger.endAsync(), publisher.endAsync()]);
  });

  it('loads a workflow made on one node on every node, and fires its timer on the lease holder only', async () => {
    const flow = ok(
      await c.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/flows`, {
        name: 'tick',
        triggers: [{ type: 'timer', config: { seconds: 1 }, outputIds: [['debug']] }],
        nodes: [{ id: 'debug', type: 'DebugNode', config: {}, outputIds: [[]] }],
      }),
    );
    // Each node's debug stream shows the runs on that node.
    const streams = await Promise.all(
      [a, b, c].map((n) =>
        openStream(n.asServer(), `/applications/${fleet.applicationId}/flows/${flow.id}/debugStream`),
      ),
    );
    const [onA, onB, onC] = streams;
    await onA?.waitFor((es) => es.filter((e) => e.event === 'debug').length >= 3, 10_000);
    expect(onB?.events.filter((e) => e.event === 'debug')).toEqual([]);
    expect(onC?.events.filter((e) => e.event === 'debug')).toEqual([]);
    for (const stream of streams) stream.close();
    ok(await b.http('DELETE', `/applications/${fleet.applicationId}/flows/${flow.id}`), 200);
  });

  it("fires a workflow's inactivity trigger on the lease holder for a device reporting to another node", async () => {
    const flow = ok(
      await b.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/flows`, {
        name: 'silent',
        triggers: [
          { type: 'deviceIdInactivity', key: fleet.standalone, config: { seconds: 2 }, outputIds: [['debug']] },
        ],
        nodes: [{ id: 'debug', type: 'DebugNode', config: {}, outputIds: [[]] }],
      }),
    );
    const streams = await Promise.all(
      [a, b, c].map((n) =>
        openStream(n.asServer(), `/applications/${fleet.applicationId}/flows/${flow.id}/debugStream`),
      ),
    );
    const [onA, onB, onC] = streams as [SseStream, SseStream, SseStream];
    const debug = (stream: SseStream) => stream.events.filter((e) => e.event === 'debug');
    const device = await b.connect(fleet.standalone, fleet.key, fleet.secret);
    // Reporting on B every half second: A, which fires inactivity triggers, hears of it.
    for (let i = 0; i < 7; i++) {
      await device.publishAsync(stateTopic(fleet.standalone), JSON.stringify({ data: { temperature: i } }), {
        qos: 1,
      });
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(debug(onA)).toEqual([]);
    // Silent for two seconds: the trigger fires once, on A.
    await onA.waitFor((es) => es.some((e) => e.event === 'debug'), 8_000);
    expect(debug(onA)).toHaveLength(1);
    expect([...debug(onB), ...debug(onC)]).toEqual([]);
    for (const stream of streams) stream.close();
    await device.endAsync();
    ok(await b.http('DELETE', `/applications/${fleet.applicationId}/flows/${flow.id}`), 200);
  }, 30_000);

  it('answers a command whose owner node does not answer in time with an empty route', async () => {
    const gw = await a.connect(fleet.gateway, fleet.key, fleet.secret);
    expect(await subscribeGranted(gw, commandTopic(fleet.gateway))).toEqual([1]);
    gw.on('error', () => {});
    // A stops answering (paused, not dead: its heartbeat is still recent).
    a.child.kill('SIGSTOP');
    try {
      const startedAt = Date.now();
      expect((await command(b, fleet.gateway, 'paused')).routedTo).toEqual([]);
      const took = Date.now() - startedAt;
      expect(took).toBeGreaterThanOrEqual(900);
      expect(took).toBeLessThan(3_000);
    } finally {
      a.child.kill('SIGCONT');
    }
    // Awake again, A answers.
    expect((await command(b, fleet.gateway, 'awake')).routedTo).toEqual([fleet.gateway]);
    await gw.endAsync();
  });

  it('survives a node killed: its clients reconnect elsewhere, what it acknowledged is stored, its singleton work moves', async () => {
    let gw: MqttClient = await a.connect(fleet.gateway, fleet.key, fleet.secret);
    // A device that will not come back: the sweep after the dead node marks it offline.
    const lost = await a.connect(fleet.standalone, fleet.key, fleet.secret);
    lost.on('error', () => {});
    const acknowledged: number[] = [];
    for (let i = 0; i < 50; i++) {
      await gw.publishAsync(stateTopic(fleet.gateway), JSON.stringify({ data: { temperature: i } }), { qos: 1 });
      acknowledged.push(i);
    }
    gw.on('error', () => {});
    await a.kill('SIGKILL');
    gw = await b.connect(fleet.gateway, fleet.key, fleet.secret);
    await gw.publishAsync(stateTopic(fleet.gateway), JSON.stringify({ data: { temperature: 100 } }), { qos: 1 });

    const stored = ok(
      await c.http<Array<{ data: { temperature: number } }>>(
        'GET',
        `/applications/${fleet.applicationId}/devices/${fleet.gateway}/state?limit=1000&sortDirection=asc&start=0`,
      ),
      200,
    ).map((s) => s.data.temperature);
    for (const t of [...acknowledged, 100]) expect(stored).toContain(t);
    expect(await connection(c, fleet.gateway)).toBe(1);

    // A survivor takes the singleton lease once A's expires, and sweeps after A.
    await eventually(() => [b, c].some((n) => n.log().some((l) => l.event === 'leaseAcquired')), 15_000);
    await eventually(async () => (await connection(c, fleet.standalone)) === 0, 15_000);
    expect(await connection(b, fleet.gateway)).toBe(1);
    await gw.endAsync();
  }, 40_000);
});
