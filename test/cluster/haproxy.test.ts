/**
 * The load balancer (docs/scale-out.md, "Load balancer"): a real HAProxy on the repository's
 * deploy/haproxy.cfg in front of two real nodes sharing PostgreSQL and a Redis of their own,
 * with every client going through the balancer only: MQTT (plain, TLS, WebSocket), REST,
 * a live stream. Then a node is SIGKILLed (its clients reconnect through the balancer to the
 * other node, which HAProxy alone sends traffic to), and Redis is lost (the survivor's /ready
 * answers 503, HAProxy drains it) and comes back.
 *
 * Needs the built CLI (`npm run build`), PostgreSQL, redis-server, openssl and haproxy (`.ci/run`
 * installs and starts them). Without haproxy the test fails and says so.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import {
  createFleet,
  eventually,
  nextMessage,
  ok,
  type SeedFleet,
  type StoredState,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';
import { openStream, type SseStream } from '../helpers/sse.js';
import { makeTestCertificate } from '../helpers/tls.js';
import { type Balancer, haproxyBinary, startBalancer } from './haproxy.js';
import { endpoint, freePort, type Node, Nodes, startRedis, stopRedis } from './nodes.js';

/** Whether an MQTT connection is accepted or closed without a CONNACK. */
function mqttOutcome(url: string, clientId: string): Promise<'connected' | 'closed'> {
  const client = mqtt.connect(url, { clientId, reconnectPeriod: 0, connectTimeout: 5000 });
  client.on('error', () => {});
  return new Promise((resolve) => {
    client.once('connect', () => resolve('connected'));
    client.once('close', () => resolve('closed'));
  }).finally(() => client.end(true)) as Promise<'connected' | 'closed'>;
}

const stateTopic = (deviceId: string) => `losant/${deviceId}/state`;
const commandTopic = (deviceId: string) => `losant/${deviceId}/command`;

describe('HAProxy (deploy/haproxy.cfg) in front of two nodes', () => {
  let database: TestDatabase;
  let redis: ChildProcess;
  let redisPort: number;
  let nodes: Nodes;
  let a: Node;
  let b: Node;
  let lb: Balancer;
  let dir: string;
  let cert: string;
  let fleet: SeedFleet;
  let gateway: MqttClient;
  /** The stream of the SSE test, kept open to see it outlive the balancer's HTTP timeouts. */
  let stream: SseStream;
  let streamOpenedAt: number;

  /** The node whose operator log has the most recent connect of `clientId` (undefined: none yet). */
  const holder = (clientId: string, among: Node[] = [a, b]): Node | undefined => {
    let found: { node: Node; time: number } | undefined;
    for (const node of among) {
      for (const line of node.log()) {
        if (line.event !== 'connect' || line.clientId !== clientId) continue;
        const time = Number(line.time);
        if (!found || time >= found.time) found = { node, time };
      }
    }
    return found?.node;
  };
  const connects = (node: Node, clientId: string) =>
    node.log().filter((l) => l.event === 'connect' && l.clientId === clientId).length;
  const latestState = async (deviceId: string) =>
    ok(
      await lb.http<StoredState[]>('GET', `/applications/${fleet.applicationId}/devices/${deviceId}/state?limit=1`),
      200,
    )[0]?.data;
  const commandsTaken = async (node: Node) => {
    const res = await fetch(`${node.urls.http}/metrics`);
    const line = (await res.text())
      .split('\n')
      .find(
        (l) => l.startsWith('gatehouse_messages_in_total{') && /protocol="rest"/.test(l) && /kind="command"/.test(l),
      );
    return line ? Number(line.split(' ').pop()) : 0;
  };
  const allServers = (servers: Record<string, { status: string }>, node: 'node1' | 'node2') => [
    servers[`mqtt_nodes/${node}`]?.status,
    servers[`http_nodes/${node}`]?.status,
  ];

  beforeAll(async () => {
    // Before anything else, so a machine without haproxy fails here with the reason.
    haproxyBinary();
    database = await createTestDatabase();
    redisPort = await freePort();
    redis = await startRedis(redisPort);
    nodes = new Nodes(database.url, `redis://127.0.0.1:${redisPort}`);
    // The balancer connects from 127.0.0.1; the test's clients bind other loopback addresses
    // where they need to tell themselves apart from it.
    const trusted = { GATEHOUSE_TRUSTED_PROXIES: '127.0.0.1' };
    a = await nodes.start('a', trusted);
    await eventually(() => a.log().some((l) => l.event === 'leaseAcquired'), 10_000);
    b = await nodes.start('b', trusted);
    dir = await mkdtemp(path.join(tmpdir(), 'gatehouse-haproxy-'));
    const made = makeTestCertificate(dir);
    cert = readFileSync(made.cert, 'utf8');
    const pem = path.join(dir, 'balancer.pem');
    writeFileSync(pem, cert + readFileSync(made.key, 'utf8'));
    lb = await startBalancer([a, b], { tlsPem: pem });
    // Both nodes answered their first checks.
    await eventually(
      async () =>
        Object.values(await lb.servers()).filter((s) => s.status === 'UP' && s.checkStatus === 'L7OK').length === 4,
      20_000,
    );
    fleet = await createFleet(lb as unknown as TestServer);
  }, 90_000);

  afterAll(async () => {
    lb?.endClients();
    await lb?.stop();
    await nodes?.stop().catch(() => {});
    if (redis) await stopRedis(redis);
    await database?.drop();
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 30_000);

  it("checks each node's GET /ready over HTTP, for the MQTT and the HTTP backend", async () => {
    const servers = await lb.servers();
    expect(Object.keys(servers).sort()).toEqual([
      'http_nodes/node1',
      'http_nodes/node2',
      'mqtt_nodes/node1',
      'mqtt_nodes/node2',
    ]);
    for (const server of Object.values(servers)) {
      expect(server).toMatchObject({ status: 'UP', checkStatus: 'L7OK', checkCode: '200' });
    }
  });

  it('spreads MQTT connections by count; a gateway reports for itself and its peripheral, gets PUBACKs, and REST reads it back', async () => {
    gateway = await lb.connect(fleet.gateway, fleet.key, fleet.secret, { reconnectPeriod: 300 });
    gateway.on('error', () => {});
    const first = await eventually(() => holder(fleet.gateway), 5000);
    const standalone = await lb.connect(fleet.standalone, fleet.key, fleet.secret);
    const second = await eventually(() => holder(fleet.standalone), 5000);
    // leastconn: the second connection goes to the node that holds none.
    expect(second).not.toBe(first);

    // publishAsync resolves on the PUBACK, sent once the state is committed.
    await gateway.publishAsync(stateTopic(fleet.gateway), JSON.stringify({ data: { temperature: 1 } }), { qos: 1 });
    await gateway.publishAsync(stateTopic(fleet.bound), JSON.stringify({ data: { temperature: 2, label: 'p' } }), {
      qos: 1,
    });
    await standalone.publishAsync(stateTopic(fleet.standalone), JSON.stringify({ data: { on: true } }), { qos: 1 });
    expect(await latestState(fleet.gateway)).toEqual({ temperature: 1 });
    expect(await latestState(fleet.bound)).toEqual({ temperature: 2, label: 'p' });
    expect(await latestState(fleet.standalone)).toEqual({ on: true });
    const bound = ok(
      await lb.http<{ lastReportedBy: { deviceId: string } }>(
        'GET',
        `/applications/${fleet.applicationId}/devices/${fleet.bound}`,
      ),
      200,
    );
    expect(bound.lastReportedBy.deviceId).toBe(fleet.gateway);
    await standalone.endAsync();
  });

  it("tells the nodes each client's address: PROXY protocol for MQTT, X-Forwarded-For for HTTP", async () => {
    const port = Number(new URL(lb.urls.mqtt).port);
    const client = new MqttClient(() => net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.5' }), {
      clientId: fleet.standalone,
      username: fleet.key,
      password: fleet.secret,
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
    });
    const line = await eventually(
      () =>
        [a, b]
          .flatMap((node) => node.log())
          .find((l) => l.event === 'connect' && l.clientId === fleet.standalone && l.ipAddress === '127.0.0.5'),
      5000,
    );
    expect(line).toBeDefined();
    await client.endAsync();
    // Over HTTP: wrong secrets of a fresh key from 127.0.0.6, claiming to be someone else in
    // X-Forwarded-For, until a node throttles the key; its log names the real address.
    const key = ok(
      await lb.http<{ key: string }>('POST', `/applications/${fleet.applicationId}/keys`, {
        deviceIds: [fleet.standalone],
      }),
    );
    const wrongSecret = (i: number) =>
      new Promise<number>((resolve, reject) => {
        const req = http.request(
          new URL('/auth/device', lb.urls.http),
          {
            method: 'POST',
            localAddress: '127.0.0.6',
            headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.1' },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ deviceId: fleet.standalone, key: key.key, secret: `wrong-secret-${i}` }));
      });
    let status = 0;
    for (let i = 0; i < 40 && status !== 429; i++) status = await wrongSecret(i);
    expect(status).toBe(429);
    const throttled = await eventually(
      () => [a, b].flatMap((node) => node.log()).find((l) => l.event === 'credentialsThrottled'),
      5000,
    );
    expect(throttled.ipAddress).toBe('127.0.0.6');
  });

  it('delivers REST commands sent through the balancer to the gateway, whichever node takes the request', async () => {
    expect(await subscribeGranted(gateway, [commandTopic(fleet.gateway), commandTopic(fleet.bound)])).toEqual([1, 1]);
    const before = await Promise.all([commandsTaken(a), commandsTaken(b)]);
    for (let i = 0; i < 6; i++) {
      const target = i % 2 === 0 ? fleet.gateway : fleet.bound;
      const arrived = nextMessage(gateway, commandTopic(target), 5000);
      const sent = ok(
        await lb.http<{ routedTo: string[] }>(
          'POST',
          `/applications/${fleet.applicationId}/devices/${target}/command`,
          {
            name: `c${i}`,
            payload: { i },
          },
        ),
        200,
      );
      expect(sent.routedTo).toEqual([fleet.gateway]);
      expect((await arrived).payload).toMatchObject({ name: `c${i}`, payload: { i } });
    }
    // The requests were spread: each node took some, so some went to the node not holding the gateway.
    const after = await Promise.all([commandsTaken(a), commandsTaken(b)]);
    expect(after[0] - (before[0] ?? 0)).toBeGreaterThan(0);
    expect(after[1] - (before[1] ?? 0)).toBeGreaterThan(0);
    expect(after[0] - (before[0] ?? 0) + after[1] - (before[1] ?? 0)).toBe(6);
  });

  it('keeps a live stream open through the balancer and sends it what a device reports', async () => {
    stream = await openStream(lb.asServer(), `/applications/${fleet.applicationId}/events?types=state`);
    streamOpenedAt = Date.now();
    expect(stream.status).toBe(200);
    expect(stream.contentType).toMatch(/^text\/event-stream/);
    // The stream's node tells the other it watches the application; until then a state
    // committed there is not streamed, so report until one arrives.
    let n = 0;
    await eventually(async () => {
      n += 1;
      await gateway.publishAsync(stateTopic(fleet.gateway), JSON.stringify({ data: { temperature: 100 + n } }), {
        qos: 1,
      });
      return stream.waitFor((es) => es.some((e) => e.event === 'state'), 500).catch(() => undefined);
    }, 15_000);
    const event = stream.events.find((e) => e.event === 'state');
    expect(event?.json).toMatchObject({ deviceId: fleet.gateway, data: { temperature: expect.any(Number) } });
  });

  it('carries MQTT over TLS (ended at the balancer), HTTPS and MQTT over WebSocket', async () => {
    const tls = endpoint({ mqtt: lb.urls.mqtts as string, http: lb.urls.http });
    const overTls = await tls.connect(fleet.otherGateway, fleet.key, fleet.secret, { ca: cert });
    await overTls.publishAsync(stateTopic(fleet.otherGateway), JSON.stringify({ data: { temperature: 7 } }), {
      qos: 1,
    });
    expect(await latestState(fleet.otherGateway)).toEqual({ temperature: 7 });
    await overTls.endAsync();

    const ready = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      https
        .get(`${lb.urls.https}/ready`, { ca: cert }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .on('error', reject);
    });
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.body)).toEqual({ status: 'ready' });

    const ws = endpoint({ mqtt: lb.urls.ws, http: lb.urls.http });
    const overWs = await ws.connect(fleet.standalone, fleet.key, fleet.secret);
    await overWs.publishAsync(stateTopic(fleet.standalone), JSON.stringify({ data: { label: 'ws' } }), { qos: 1 });
    expect(await latestState(fleet.standalone)).toEqual({ label: 'ws' });
    await overWs.endAsync();
  });

  it("keeps that stream open past the balancer's 60 s HTTP timeouts: the nodes' heartbeats are traffic", async () => {
    // Waits (polling) until the stream has been open for longer than timeout client and server.
    await eventually(() => Date.now() - streamOpenedAt > 65_000, 70_000);
    expect(stream.ended).toBe(false);
    expect(stream.comments.filter((c) => c === 'heartbeat').length).toBeGreaterThanOrEqual(4);
    const seen = stream.events.length;
    await gateway.publishAsync(stateTopic(fleet.gateway), JSON.stringify({ data: { temperature: 65 } }), { qos: 1 });
    const events = await stream.waitFor(
      (es) => es.slice(seen).some((e) => (e.json as { data?: unknown }).data !== undefined),
      10_000,
    );
    expect(events.slice(seen).map((e) => (e.json as { data?: unknown }).data)).toContainEqual({ temperature: 65 });
    stream.close();
  }, 90_000);

  it("moves a killed node's clients to the other node through the balancer, and marks the node down", async () => {
    const killed = holder(fleet.gateway) as Node;
    const survivor = killed === a ? b : a;
    const [killedName, survivorName] = killed === a ? (['node1', 'node2'] as const) : (['node2', 'node1'] as const);
    const connectsBefore = connects(survivor, fleet.gateway);
    const reconnected = new Promise<void>((resolve) => gateway.once('connect', () => resolve()));

    await killed.kill('SIGKILL');
    // Before any check noticed: a connection HAProxy tries on the dead node is sent to the other.
    for (let i = 0; i < 6; i++) expect((await lb.http('GET', '/health')).status).toBe(200);

    await reconnected;
    await eventually(() => connects(survivor, fleet.gateway) > connectsBefore, 10_000);
    await gateway.publishAsync(stateTopic(fleet.gateway), JSON.stringify({ data: { temperature: 55 } }), { qos: 1 });
    expect(await latestState(fleet.gateway)).toEqual({ temperature: 55 });

    // mqtt.js subscribed again on reconnecting: a command through the balancer still arrives.
    await eventually(async () => {
      const arrived = nextMessage(gateway, commandTopic(fleet.bound), 1000);
      const sent = ok(
        await lb.http<{ routedTo: string[] }>(
          'POST',
          `/applications/${fleet.applicationId}/devices/${fleet.bound}/command`,
          { name: 'after-kill' },
        ),
        200,
      );
      return sent.routedTo.length === 1 && (await arrived.then(() => true).catch(() => false));
    }, 10_000);

    // HAProxy's checks find the dead node and take it out of both backends.
    const servers = await eventually(async () => {
      const s = await lb.servers();
      return allServers(s, killedName).every((status) => status === 'DOWN') ? s : undefined;
    }, 15_000);
    expect(allServers(servers, survivorName)).toEqual(['UP', 'UP']);
    expect(servers[`mqtt_nodes/${killedName}`]?.checkStatus).toMatch(/^L4/);
    for (let i = 0; i < 6; i++) expect((await lb.http('GET', '/ready')).status).toBe(200);
  }, 60_000);

  it('drains a node whose /ready answers 503 (Redis lost), keeps its connected clients, and takes it back', async () => {
    const survivor = a.child.exitCode === null && a.child.signalCode === null ? a : b;
    const name = survivor === a ? 'node1' : 'node2';
    await stopRedis(redis);
    const servers = await eventually(async () => {
      const s = await lb.servers();
      return allServers(s, name).every((status) => status === 'DOWN') ? s : undefined;
    }, 20_000);
    // The node answered, with 503 clusterUnavailable: a layer 7 failure, not a refused connection.
    expect(servers[`http_nodes/${name}`]).toMatchObject({ checkStatus: 'L7STS', checkCode: '503' });
    expect(servers[`mqtt_nodes/${name}`]).toMatchObject({ checkStatus: 'L7STS', checkCode: '503' });

    // No node to send new work to: HAProxy answers HTTP itself (in the API's error shape), and
    // closes new MQTT connections.
    expect(await lb.http('GET', '/health')).toEqual({
      status: 503,
      body: { type: 'Unavailable', message: 'no Gatehouse node is ready to take this request' },
    });
    expect(await mqttOutcome(lb.urls.mqtt, fleet.standalone)).toBe('closed');
    // A client connected before keeps its connection and its states are committed (PUBACK).
    expect(gateway.connected).toBe(true);
    await gateway.publishAsync(stateTopic(fleet.gateway), JSON.stringify({ data: { temperature: 66 } }), { qos: 1 });

    redis = await startRedis(redisPort);
    await eventually(async () => allServers(await lb.servers(), name).every((status) => status === 'UP'), 30_000);
    expect(await latestState(fleet.gateway)).toEqual({ temperature: 66 });
    const client = await lb.connect(fleet.standalone, fleet.key, fleet.secret);
    expect(client.connected).toBe(true);
    await client.endAsync();
  }, 70_000);
});
