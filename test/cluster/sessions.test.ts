/**
 * Persistent sessions and retained messages across two real nodes sharing Redis and PostgreSQL
 * (docs/scale-out.md, "Persistent sessions and retained messages"), with real MQTT clients: a
 * retained message kept on one node is given to a new subscriber of the same application on the
 * other (and not to another application's), the retained budget of an application holds across
 * nodes, a persistent session left on one node is resumed on the other with what was queued for
 * it, and a session that comes back at once while a message is on its way gets its CONNACK and
 * that message (the reconnect race).
 *
 * Needs the built CLI (`npm run build`), PostgreSQL and Redis (`.ci/run` starts both).
 */
import { Redis } from 'ioredis';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import {
  collectMessages,
  createFleet,
  eventually,
  nextMessage,
  ok,
  type SeedFleet,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';
import { type Node, Nodes, REDIS_URL } from './nodes.js';

/** Race iterations: each one a disconnect, a publish and an immediate reconnect. */
const RACE_ROUNDS = Number(process.env.GATEHOUSE_TEST_RACE_ROUNDS ?? 60);

describe('persistent sessions and retained messages on nodes sharing Redis', () => {
  let database: TestDatabase;
  let nodes: Nodes;
  let a: Node;
  let b: Node;
  let fleet: SeedFleet;
  let key: { key: string; secret: string };

  const customKey = async (applicationId: string) =>
    ok(
      await a.http<{ key: string; secret: string }>('POST', `/applications/${applicationId}/keys`, {
        description: 'custom topics',
        filterType: 'all',
      }),
    );

  beforeAll(async () => {
    database = await createTestDatabase();
    nodes = new Nodes(database.url);
    a = await nodes.start('a');
    b = await nodes.start('b');
    fleet = await createFleet(a as unknown as TestServer, {
      application: { rateLimit: { messages: 0, windowSeconds: 15 } },
    });
    key = await customKey(fleet.applicationId);
  }, 60_000);

  afterAll(async () => {
    await nodes?.stop();
    await database?.drop();
  }, 30_000);

  it('gives a message retained on one node to a new subscriber of the application on the other, and to no other application', async () => {
    const publisher = await a.connect(fleet.standalone, key.key, key.secret);
    await publisher.publishAsync('site/1/mode', 'eco', { qos: 1, retain: true });
    const other = await createFleet(a as unknown as TestServer);
    const otherKey = await customKey(other.applicationId);

    const stranger = await b.connect(other.standalone, otherKey.key, otherKey.secret);
    const strangerSeen = collectMessages(stranger);
    expect(await subscribeGranted(stranger, 'site/+/mode')).toEqual([1]);
    const subscriber = await b.connect(fleet.gateway, key.key, key.secret);
    const seen = collectMessages(subscriber);
    expect(await subscribeGranted(subscriber, 'site/+/mode')).toEqual([1]);
    await eventually(() => seen.length > 0);
    expect(seen).toEqual([{ topic: 'site/1/mode', payload: 'eco' }]);

    // An empty retained message on the other node removes it for everyone.
    await subscriber.publishAsync('site/1/mode', '', { qos: 1, retain: true });
    const late = await a.connect(fleet.otherGateway, key.key, key.secret);
    const lateSeen = collectMessages(late);
    expect(await subscribeGranted(late, 'site/+/mode')).toEqual([1]);
    await new Promise((r) => setTimeout(r, 300));
    expect(lateSeen).toEqual([]);
    expect(strangerSeen).toEqual([]);
    await Promise.all([publisher.endAsync(), stranger.endAsync(), subscriber.endAsync(), late.endAsync()]);
  });

  it("holds an application's retained budget across nodes", async () => {
    const app = await createFleet(a as unknown as TestServer, {
      application: { rateLimit: { messages: 0, windowSeconds: 15 } },
    });
    const appKey = await customKey(app.applicationId);
    const onA = await a.connect(app.standalone, appKey.key, appKey.secret);
    const onB = await b.connect(app.gateway, appKey.key, appKey.secret);
    expect(await subscribeGranted(onB, `losant/${app.gateway}/error`)).toEqual([1]);
    const payload = Buffer.alloc(256 * 1024, 1);
    // 16 MiB of retained payload in all, half kept through each node, fits exactly.
    for (let i = 0; i < 32; i++) await onA.publishAsync(`kept/a${i}`, payload, { qos: 1, retain: true });
    for (let i = 0; i < 32; i++) await onB.publishAsync(`kept/b${i}`, payload, { qos: 1, retain: true });
    const notice = nextMessage(onB, `losant/${app.gateway}/error`);
    await onB.publishAsync('kept/over', payload, { qos: 1, retain: true });
    expect((await notice).payload).toMatchObject({ code: 413, topic: 'kept/over' });
    // Replacing a message kept through the other node fits; removing one there makes room here.
    const none = collectMessages(onB);
    await onB.publishAsync('kept/a0', payload, { qos: 1, retain: true });
    await onA.publishAsync('kept/b1', Buffer.alloc(0), { qos: 1, retain: true });
    await onB.publishAsync('kept/over', payload, { qos: 1, retain: true });
    await new Promise((r) => setTimeout(r, 200));
    expect(none.filter((m) => m.topic.endsWith('/error'))).toEqual([]);

    const watcher = await a.connect(app.otherGateway, appKey.key, appKey.secret);
    const seen = collectMessages(watcher);
    expect(await subscribeGranted(watcher, 'kept/+', 0)).toEqual([0]);
    await eventually(() => seen.length === 64, 15_000);
    expect(seen.some((m) => m.topic === 'kept/b1')).toBe(false);
    expect(seen.some((m) => m.topic === 'kept/over')).toBe(true);
    await Promise.all([onA.endAsync(), onB.endAsync(), watcher.endAsync()]);
  }, 60_000);

  it('resumes a persistent session on the other node with the messages queued while it was away', async () => {
    const persistent = { clean: false };
    const first = await a.connect(fleet.otherGateway, key.key, key.secret, persistent);
    expect(await subscribeGranted(first, 'jobs/+')).toEqual([1]);
    await first.endAsync();

    const publisher = await a.connect(fleet.standalone, key.key, key.secret);
    for (const n of [1, 2, 3]) await publisher.publishAsync(`jobs/${n}`, `job ${n}`, { qos: 1 });

    // The queue follows the CONNACK at once: listen before connecting.
    const seen: string[] = [];
    const { client: second, sessionPresent } = await connectWithConnack(b, fleet.otherGateway, persistent, (payload) =>
      seen.push(payload),
    );
    expect(sessionPresent).toBe(true);
    await eventually(() => seen.length === 3);
    expect(seen).toEqual(['job 1', 'job 2', 'job 3']);

    // Still subscribed on the new node, without subscribing again; a message from the first node
    // reaches it live.
    await publisher.publishAsync('jobs/4', 'job 4', { qos: 1 });
    await eventually(() => seen.length === 4);
    // Acknowledged messages are gone from the session: coming back once more brings nothing again.
    await second.endAsync();
    const again: string[] = [];
    const { client: third, sessionPresent: stillPresent } = await connectWithConnack(
      a,
      fleet.otherGateway,
      persistent,
      (payload) => again.push(payload),
    );
    expect(stillPresent).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(again).toEqual([]);
    // A clean session ends it: the next persistent connection finds none.
    await third.endAsync();
    const clean = await b.connect(fleet.otherGateway, key.key, key.secret, { clean: true });
    await clean.endAsync();
    const { client: fourth, sessionPresent: gone } = await connectWithConnack(a, fleet.otherGateway, persistent);
    expect(gone).toBe(false);
    await Promise.all([publisher.endAsync(), fourth.endAsync()]);
  });

  it("removes a dropped queue's stored copies from Redis, and keeps those other queues still hold", async () => {
    const device = async (name: string) =>
      ok(
        await a.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/devices`, {
          name,
          deviceClass: 'standalone',
        }),
      ).id;
    const [dropping, keeping] = [await device('dropping'), await device('keeping')];
    const persistent = { clean: false };
    const first = await a.connect(dropping, key.key, key.secret, persistent);
    expect(await subscribeGranted(first, 'copies/shared')).toEqual([1]);
    expect(await subscribeGranted(first, 'copies/own')).toEqual([1]);
    const second = await b.connect(keeping, key.key, key.secret, persistent);
    expect(await subscribeGranted(second, 'copies/shared')).toEqual([1]);
    await Promise.all([first.endAsync(), second.endAsync()]);

    const publisher = await a.connect(fleet.standalone, key.key, key.secret);
    for (const n of [1, 2, 3]) await publisher.publishAsync('copies/shared', `shared ${n}`, { qos: 1 });
    for (const n of [1, 2]) await publisher.publishAsync('copies/own', `own ${n}`, { qos: 1 });
    await publisher.endAsync();

    // The stored copies of these messages (a copy, and its count of the queues holding it).
    const redis = new Redis(REDIS_URL);
    const copies = async () => {
      const found: string[] = [];
      for (const k of await redis.keys(`${nodes.prefix}aedes:packet:*`)) {
        const value = await redis.getBuffer(k.replace(/:offlineCount$/, ''));
        if (value?.includes('copies/'))
          found.push(k.endsWith(':offlineCount') ? `count ${await redis.get(k)}` : 'copy');
      }
      return found.sort();
    };
    expect(await copies()).toEqual([
      'copy',
      'copy',
      'copy',
      'copy',
      'copy',
      'count 1',
      'count 1',
      'count 2',
      'count 2',
      'count 2',
    ]);

    // A clean connection drops the first queue: its own copies go, the shared ones are held once less.
    const clean = await b.connect(dropping, key.key, key.secret, { clean: true });
    await clean.endAsync();
    expect(await copies()).toEqual(['copy', 'copy', 'copy', 'count 1', 'count 1', 'count 1']);

    // The other queue is whole, and once it is acknowledged nothing is left.
    const seen: string[] = [];
    const { client: back } = await connectWithConnack(a, keeping, persistent, (payload) => seen.push(payload));
    await eventually(() => seen.length === 3);
    expect(seen).toEqual(['shared 1', 'shared 2', 'shared 3']);
    await eventually(async () => (await copies()).length === 0);
    await back.endAsync();
    redis.disconnect();
  });

  it('gives a persistent session that reconnects at once, while a message is on its way, its CONNACK and every message', async () => {
    const deviceId = fleet.gateway;
    const persistent = { clean: false };
    const setup = await a.connect(deviceId, key.key, key.secret, persistent);
    expect(await subscribeGranted(setup, 'race/t')).toEqual([1]);
    await setup.endAsync();
    const publisher = await a.connect(fleet.standalone, key.key, key.secret);

    const received = new Map<string, number>();
    let noConnack = 0;
    let current: MqttClient | undefined;
    for (let round = 0; round < RACE_ROUNDS; round++) {
      const node = round % 2 === 0 ? b : a;
      await current?.endAsync();
      // The message and the reconnect leave together: no gap.
      const published = publisher.publishAsync('race/t', `m${round}`, { qos: 1 });
      const attempt = connectWithConnack(node, deviceId, persistent, (payload) =>
        received.set(payload, (received.get(payload) ?? 0) + 1),
      );
      await published;
      try {
        current = (await attempt).client;
      } catch {
        noConnack++;
        current = undefined;
      }
      // Every message so far arrives, on this connection or (after a failed one) on the next.
      if (current) await eventually(() => received.has(`m${round}`), 5_000).catch(() => {});
    }
    await current?.endAsync();
    // A last reconnect collects anything left queued.
    const { client: last } = await connectWithConnack(a, deviceId, persistent, (payload) =>
      received.set(payload, (received.get(payload) ?? 0) + 1),
    );
    await new Promise((r) => setTimeout(r, 500));
    const lost = Array.from({ length: RACE_ROUNDS }, (_, i) => `m${i}`).filter((m) => !received.has(m));
    const twice = [...received].filter(([, n]) => n > 1).map(([m]) => m);
    expect({ noConnack, lost, twice }).toEqual({ noConnack: 0, lost: [], twice: [] });
    await Promise.all([last.endAsync(), publisher.endAsync()]);
  }, 120_000);

  /** Connects and answers the CONNACK's session flag; rejects when no CONNACK comes within 3 s. */
  function connectWithConnack(
    node: Node,
    deviceId: string,
    options: IClientOptions,
    onMessage?: (payload: string) => void,
  ): Promise<{ client: MqttClient; sessionPresent: boolean }> {
    const client = mqtt.connect(node.urls.mqtt, {
      clientId: deviceId,
      username: key.key,
      password: key.secret,
      reconnectPeriod: 0,
      connectTimeout: 3_000,
      ...options,
    });
    if (onMessage) client.on('message', (_topic, payload) => onMessage(payload.toString()));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        client.end(true);
        reject(new Error(`no CONNACK for ${deviceId} from node ${node.name} within 3 s`));
      }, 3_000);
      client.once('connect', (connack) => {
        clearTimeout(timer);
        resolve({ client, sessionPresent: connack.sessionPresent });
      });
      client.once('error', (err) => {
        clearTimeout(timer);
        client.end(true);
        reject(err);
      });
    });
  }
});
