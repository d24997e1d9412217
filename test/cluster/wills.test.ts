/**
 * Last Wills of the clients of a node that dies (docs/scale-out.md, "Failure modes"): two real
 * nodes sharing Redis and PostgreSQL; clients with wills connect to one, which is SIGKILLed. The
 * other (holding the lease) publishes their wills once, through the same authorization a will
 * gets on one node: a will on a custom topic reaches a subscriber of the application, one on a
 * state topic is ingested as a state, one on a reserved topic is refused.
 *
 * Needs the built CLI (`npm run build`), PostgreSQL and Redis (`.ci/run` starts both).
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import {
  createFleet,
  deviceLogs,
  eventually,
  ok,
  type SeedFleet,
  stateHistory,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';
import { type Node, Nodes } from './nodes.js';

describe('wills of a node that dies', () => {
  let database: TestDatabase;
  let nodes: Nodes;
  let survivor: Node;
  let doomed: Node;
  let fleet: SeedFleet;
  let key: { key: string; secret: string };

  beforeAll(async () => {
    database = await createTestDatabase();
    nodes = new Nodes(database.url);
    // The first node up takes the lease, so the sweep after the other runs on it.
    survivor = await nodes.start('survivor');
    doomed = await nodes.start('doomed');
    fleet = await createFleet(survivor as unknown as TestServer);
    key = ok(
      await survivor.http<{ key: string; secret: string }>('POST', `/applications/${fleet.applicationId}/keys`, {
        description: 'custom topics',
        filterType: 'all',
      }),
    );
  }, 60_000);

  afterAll(async () => {
    await nodes?.stop();
    await database?.drop();
  }, 30_000);

  it('are published once by the lease holder, authorized as on one node', async () => {
    const watcher = ok(
      await survivor.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/devices`, {
        name: 'watcher',
        deviceClass: 'standalone',
      }),
    ).id;
    const subscriber = await survivor.connect(watcher, key.key, key.secret);
    const wills: Array<{ topic: string; payload: string; at: number }> = [];
    subscriber.on('message', (topic, payload) => wills.push({ topic, payload: payload.toString(), at: Date.now() }));
    expect(await subscribeGranted(subscriber, 'status/+')).toEqual([1]);

    const withWill = (deviceId: string, topic: string, payload: string) =>
      doomed.connect(deviceId, key.key, key.secret, {
        will: { topic, payload: Buffer.from(payload), qos: 1, retain: false },
      });
    const clients: MqttClient[] = [
      await withWill(fleet.standalone, 'status/standalone', 'standalone gone'),
      await withWill(fleet.gateway, `losant/${fleet.bound}/state`, JSON.stringify({ data: { label: 'gateway gone' } })),
      await withWill(fleet.otherGateway, `losant/${fleet.otherGateway}/command`, '{}'),
    ];
    for (const c of clients) c.on('error', () => {});
    // A will is stored once the CONNACK is out; a message through the doomed node shows it is.
    await clients[0]?.publishAsync('status/ping', 'ping', { qos: 1 });
    await eventually(() => wills.some((w) => w.payload === 'ping'));

    // Killed with its clients still connected (Node.kill would end them first).
    const killedAt = Date.now();
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    await eventually(() => wills.some((w) => w.topic === 'status/standalone'), 20_000);
    const will = wills.find((w) => w.topic === 'status/standalone');
    expect(will?.payload).toBe('standalone gone');
    console.log(`will received ${(will?.at ?? 0) - killedAt} ms after SIGKILL`);

    // The gateway's will reported for its bound peripheral, as a state.
    await eventually(
      async () =>
        (await stateHistory(survivor as unknown as TestServer, fleet.applicationId, fleet.bound)).length === 1,
      5_000,
    );
    expect((await stateHistory(survivor as unknown as TestServer, fleet.applicationId, fleet.bound))[0]).toMatchObject({
      data: { label: 'gateway gone' },
      reportedBy: fleet.gateway,
    });
    // A will on a command topic is refused, as a publish there would be.
    const refused = await eventually(
      async () =>
        (await deviceLogs(survivor as unknown as TestServer, fleet.applicationId, fleet.otherGateway)).find(
          (e) => e.kind === 'rejected',
        ),
      5_000,
    );
    expect(String(refused.reason)).toMatch(/may not publish/);

    const swept = survivor.log().filter((l) => l.event === 'nodeLost');
    expect(swept).toHaveLength(1);
    expect(swept[0]).toMatchObject({ willsPublished: 3 });
    // Later sweeps publish nothing again.
    await new Promise((r) => setTimeout(r, 4_500));
    expect(wills.filter((w) => w.topic === 'status/standalone')).toHaveLength(1);
    expect(await stateHistory(survivor as unknown as TestServer, fleet.applicationId, fleet.bound)).toHaveLength(1);
    await subscriber.endAsync();
  }, 60_000);
});
