/**
 * A node whose Redis goes away (docs/scale-out.md, "Failure modes"): it reports not ready with
 * a reason, refuses new MQTT connections it cannot claim, and recovers when Redis returns. The
 * Redis here is a private redis-server on a free port, killed and restarted by the test, so the
 * shared one stays up. Also the one-line refusals of --redis-url at start.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import {
  closed,
  collectMessages,
  createFleet,
  eventually,
  ok,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';
import { freePort, type Node, Nodes, startRedis, stopRedis } from './nodes.js';

const CLI = path.resolve('dist/src/cli.js');

/** Runs the CLI to its end; answers its exit code and stderr. */
function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args]);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

describe('a node losing Redis', () => {
  let database: TestDatabase;
  let nodes: Nodes;
  let redis: ChildProcess;
  let port: number;
  let node: Node;

  beforeAll(async () => {
    database = await createTestDatabase();
    port = await freePort();
    redis = await startRedis(port);
    nodes = new Nodes(database.url, `redis://127.0.0.1:${port}`);
    node = await nodes.start('alone');
  }, 30_000);

  afterAll(async () => {
    await nodes?.stop().catch(() => {});
    if (redis) await stopRedis(redis);
    await database?.drop();
  }, 30_000);

  it('is not ready while Redis cannot be reached, refuses new MQTT connections, and recovers', async () => {
    const fleet = await createFleet(node as unknown as TestServer);
    expect((await node.http('GET', '/ready')).status).toBe(200);
    // Connected across the outage: still released (marked offline) when it leaves afterwards.
    const across = await node.connect(fleet.gateway, fleet.key, fleet.secret);
    across.on('error', () => {});

    await stopRedis(redis);
    const unready = await eventually(async () => {
      const r = await node.http<{ reasons: Array<{ code: string; message: string }> }>('GET', '/ready');
      return r.status === 503 ? r.body : undefined;
    }, 10_000);
    expect(unready.reasons).toEqual([
      {
        code: 'clusterUnavailable',
        message: expect.stringMatching(/^Redis cannot be reached/),
      },
    ]);
    // Without Redis the node cannot tell who holds a device: CONNACK 3 (server unavailable).
    await expect(node.connect(fleet.standalone, fleet.key, fleet.secret)).rejects.toMatchObject({ code: 3 });
    expect((await node.http('GET', '/health')).status).toBe(200);

    redis = await startRedis(port);
    await eventually(async () => (await node.http('GET', '/ready')).status === 200, 15_000);
    const client = await node.connect(fleet.standalone, fleet.key, fleet.secret);
    expect(client.connected).toBe(true);
    await client.endAsync();
    expect(across.connected).toBe(true);
    await across.endAsync();
    const status = async (deviceId: string) =>
      (
        await node.http<{ connectionInfo: { connected: number | null } }>(
          'GET',
          `/applications/${fleet.applicationId}/devices/${deviceId}`,
        )
      ).body.connectionInfo.connected;
    await eventually(async () => (await status(fleet.gateway)) === 0 && (await status(fleet.standalone)) === 0);
  }, 40_000);

  it('acknowledges a QoS 1 message for persistent subscribers only once it is queued: not while Redis is away', async () => {
    const fleet = await createFleet(node as unknown as TestServer, {
      application: { rateLimit: { messages: 0, windowSeconds: 15 } },
    });
    const key = ok(
      await node.http<{ key: string; secret: string }>('POST', `/applications/${fleet.applicationId}/keys`, {
        description: 'custom topics',
        filterType: 'all',
      }),
    );
    const persistent = { clean: false };
    const subscriber = await node.connect(fleet.gateway, key.key, key.secret, persistent);
    expect(await subscribeGranted(subscriber, 'jobs/+')).toEqual([1]);
    await subscriber.endAsync();
    const publisher = await node.connect(fleet.standalone, key.key, key.secret);
    publisher.on('error', () => {});
    const pubacks: number[] = [];
    publisher.on('packetreceive', (packet) => {
      if (packet.cmd === 'puback') pubacks.push(packet.messageId as number);
    });
    await publisher.publishAsync('jobs/1', 'before', { qos: 1 });
    expect(pubacks).toHaveLength(1);

    await stopRedis(redis);
    const gone = closed(publisher);
    // Unacknowledged promises stay pending while MQTT.js waits to send the message again.
    void publisher.publishAsync('jobs/2', 'during', { qos: 1 }).catch(() => {});
    await gone;
    expect(pubacks).toHaveLength(1);

    redis = await startRedis(port);
    await eventually(async () => (await node.http('GET', '/ready')).status === 200, 15_000);
    // The client sends it again (Redis came back empty: the session is made again first).
    const again = await node.connect(fleet.gateway, key.key, key.secret, persistent);
    expect(await subscribeGranted(again, 'jobs/+')).toEqual([1]);
    await again.endAsync();
    const resend = await node.connect(fleet.standalone, key.key, key.secret);
    await resend.publishAsync('jobs/2', 'during', { qos: 1 });
    await resend.endAsync();
    const back = await node.connect(fleet.gateway, key.key, key.secret, persistent);
    const seen = collectMessages(back);
    await eventually(() => seen.length > 0);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen).toEqual([{ topic: 'jobs/2', payload: 'during' }]);
    await back.endAsync();
  }, 40_000);

  it('refuses to start on an unreachable Redis, or without a shared database, in one line', async () => {
    const unreachable = await run([
      'serve',
      '--database-url',
      database.url,
      '--redis-url',
      'redis://127.0.0.1:1',
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
    ]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr.trimEnd().split('\n').at(-1)).toMatch(
      /^gatehouse: cannot connect to Redis redis:\/\/127\.0\.0\.1:1.*\(set --redis-url or GATEHOUSE_REDIS_URL\)$/,
    );
    const alone = await run(['serve', '--redis-url', `redis://127.0.0.1:${port}`]);
    expect(alone.code).toBe(1);
    expect(alone.stderr.trimEnd()).toBe(
      'gatehouse: nodes sharing Redis must share a PostgreSQL database too (set --database-url or GATEHOUSE_DATABASE_URL with --redis-url or GATEHOUSE_REDIS_URL)',
    );
    const bad = await run(['serve', '--database-url', database.url, '--redis-url', 'http://x']);
    expect(bad.stderr.trimEnd()).toBe(
      'gatehouse: invalid Redis URL: expected redis://... (set --redis-url or GATEHOUSE_REDIS_URL)',
    );
  }, 30_000);
});
