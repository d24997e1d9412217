/**
 * What the session store in Redis costs a node (docs/scale-out.md, "Persistent sessions and
 * retained messages"): one `gatehouse serve` with --database-url and --redis-url, and the node's
 * CPU time per message for
 *   - QoS 1 messages on a custom topic to a persistent subscriber (queued, sent, acknowledged),
 *   - QoS 1 commands (REST) to a device subscribed with a persistent session, and with a clean one,
 *   - QoS 1 states from a device.
 * Run after `npm run build`: `node dist/bench/cluster-sessions.js`. Needs PostgreSQL
 * (BENCH_DATABASE_URL, default the local server as postgres) and Redis (BENCH_REDIS_URL). Each
 * run uses a fresh database and its own Redis prefix, and removes both.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { Redis } from 'ioredis';
import mqtt, { type MqttClient } from 'mqtt';
import pg from 'pg';
import { startGatehouseProcess } from './gatehouse-process.js';
import { cpuMicros } from './proc.js';

const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
const MESSAGES = Number(process.env.BENCH_SESSION_MESSAGES ?? 5_000);
const COMMANDS = Number(process.env.BENCH_SESSION_COMMANDS ?? 800);
const WINDOW = 100;

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const name = `gatehouse_bench_${randomBytes(5).toString('hex')}`;
  const prefix = `gatehouse-bench-${randomBytes(4).toString('hex')}:`;
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  const server = await startGatehouseProcess({
    serveArgs: ['--database-url', url.toString(), '--redis-url', REDIS_URL, '--redis-prefix', prefix],
  });
  const clients: MqttClient[] = [];
  try {
    const http = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const res = await fetch(`${server.httpUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${server.adminToken}`, 'content-type': 'application/json' },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    };
    const app = await http<{ id: string }>('POST', '/applications', {
      name: 'bench',
      rateLimit: { messages: 0, windowSeconds: 15 },
    });
    const device = async (deviceName: string) =>
      (
        await http<{ id: string }>('POST', `/applications/${app.id}/devices`, {
          name: deviceName,
          deviceClass: 'standalone',
          attributes: [{ name: 'n', dataType: 'number' }],
        })
      ).id;
    const publisherId = await device('publisher');
    const subscriberId = await device('subscriber');
    const key = await http<{ key: string; secret: string }>('POST', `/applications/${app.id}/keys`, {
      description: 'bench',
      filterType: 'all',
    });
    const connect = async (clientId: string, clean: boolean): Promise<MqttClient> => {
      const client = mqtt.connect(server.mqttUrl, {
        clientId,
        username: key.key,
        password: key.secret,
        clean,
        reconnectPeriod: 0,
      });
      clients.push(client);
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
      });
      return client;
    };
    const measure = async (label: string, count: number, run: () => Promise<void>) => {
      const before = cpuMicros(server.pid);
      const started = performance.now();
      await run();
      const seconds = (performance.now() - started) / 1000;
      const micros = (cpuMicros(server.pid) - before) / count;
      console.log(
        `${label.padEnd(44)} ${String(count).padStart(6)}  ${(count / seconds).toFixed(0).padStart(6)}/s  ${micros.toFixed(0).padStart(5)} µs CPU each  (load ${os
          .loadavg()
          .map((l) => l.toFixed(2))
          .join(' ')})`,
      );
    };
    /** Publishes `count` QoS 1 messages, at most WINDOW unacknowledged. */
    const publishAll = async (
      client: MqttClient,
      topic: (i: number) => string,
      payload: (i: number) => string,
      count: number,
    ) => {
      let next = 0;
      const lane = async () => {
        while (next < count) {
          const i = next++;
          await client.publishAsync(topic(i), payload(i), { qos: 1 });
        }
      };
      await Promise.all(Array.from({ length: WINDOW }, lane));
    };
    const received = (client: MqttClient, count: number) =>
      new Promise<void>((resolve) => {
        let n = 0;
        const onMessage = () => {
          if (++n === count) {
            client.off('message', onMessage);
            resolve();
          }
        };
        client.on('message', onMessage);
      });

    const publisher = await connect(publisherId, true);
    // Warm-up: the first messages pay for JIT and connections.
    await publishAll(
      publisher,
      () => 'warm/up',
      () => '{}',
      500,
    );

    const persistent = await connect(subscriberId, false);
    await persistent.subscribeAsync('bench/t', { qos: 1 });
    await measure('custom topic, QoS 1, persistent subscriber', MESSAGES, async () => {
      const all = received(persistent, MESSAGES);
      await publishAll(
        publisher,
        () => 'bench/t',
        (i) => JSON.stringify({ i }),
        MESSAGES,
      );
      await all;
    });

    await persistent.subscribeAsync(`losant/${subscriberId}/command`, { qos: 1 });
    const sendCommands = async (client: MqttClient) => {
      const all = received(client, COMMANDS);
      let next = 0;
      const lane = async () => {
        while (next < COMMANDS) {
          next++;
          await http('POST', `/applications/${app.id}/devices/${subscriberId}/command`, {
            name: 'go',
            payload: { n: 1 },
          });
        }
      };
      await Promise.all(Array.from({ length: 20 }, lane));
      await all;
    };
    // Commands are limited to 1,000 per 10 s per sender: each run starts in a fresh window.
    const freshWindow = () => new Promise((resolve) => setTimeout(resolve, 10_000));
    await freshWindow();
    await measure('command, QoS 1, persistent session', COMMANDS, () => sendCommands(persistent));
    await persistent.endAsync();
    const clean = await connect(subscriberId, true);
    await clean.subscribeAsync(`losant/${subscriberId}/command`, { qos: 1 });
    await freshWindow();
    await measure('command, QoS 1, clean session', COMMANDS, () => sendCommands(clean));

    await measure('state, QoS 1', MESSAGES, () =>
      publishAll(
        publisher,
        () => `losant/${publisherId}/state`,
        (i) => JSON.stringify({ data: { n: i } }),
        MESSAGES,
      ),
    );
  } finally {
    for (const client of clients) client.end(true);
    await server.stop();
    await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
