/**
 * Starts a real Gatehouse (SQLite in a temp dir, MQTT and HTTP on port 0) for integration tests.
 * With `store: 'postgres'` (or GATEHOUSE_TEST_STORE=postgres) the store is a fresh PostgreSQL
 * database instead (helpers/postgres.ts), dropped when the server stops.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import type { SecretCheckLimits } from '../../src/core/secrets.js';
import type { Logger } from '../../src/logger.js';
import { type RunningGatehouse, startGatehouse } from '../../src/server.js';
import type { EngineLimits } from '../../src/workflows/engine.js';
import type { TimerSource } from '../../src/workflows/timers.js';
import { createTestDatabase, type TestDatabase } from './postgres.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

/**
 * PostgreSQL databases of servers started with keepData, by data directory: a server started
 * again on that directory finds its database. Dropped when the test file is done.
 */
const keptDatabases = new Map<string, TestDatabase>();
afterAll(async () => {
  for (const database of keptDatabases.values()) await database.drop();
  keptDatabases.clear();
});

export interface TestServer {
  running: RunningGatehouse;
  dataDir: string;
  /** JSON over real HTTP; `token` defaults to the admin token, `null` sends none. */
  http<T = unknown>(
    method: string,
    url: string,
    body?: unknown,
    token?: string | null,
    headers?: Record<string, string>,
  ): Promise<{ status: number; body: T }>;
  /** A real MQTT client, connected (or rejected: the promise rejects with the CONNACK error). */
  connect(deviceId: string, key: string, secret: string, options?: IClientOptions): Promise<MqttClient>;
  clients: MqttClient[];
  /** Ends every client connected so far (a clean DISCONNECT where still connected). */
  endClients(): Promise<void>;
  stop(): Promise<void>;
}

export async function startTestServer(
  options: {
    dataDir?: string;
    keepData?: boolean;
    logger?: Logger;
    secretCheckLimits?: Partial<SecretCheckLimits>;
    clock?: () => number;
    workflowTimers?: TimerSource;
    /** Protects GET /metrics with this bearer token. */
    metricsToken?: string;
    workflowLimits?: Partial<EngineLimits>;
    /**
     * Whether workflows' HTTP nodes may call private addresses; tests allow it by default, since
     * their HTTP targets listen on loopback.
     */
    workflowHttpPrivate?: 'allow' | 'deny';
    /** Default: GATEHOUSE_TEST_STORE, else sqlite. */
    store?: 'sqlite' | 'postgres';
    /** Load balancers' addresses, comma-separated (`--trusted-proxies`). */
    trustedProxies?: string;
  } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'gatehouse-test-'));
  const database =
    (options.store ?? process.env.GATEHOUSE_TEST_STORE) === 'postgres'
      ? (keptDatabases.get(dataDir) ?? (await createTestDatabase()))
      : undefined;
  if (database && options.keepData) keptDatabases.set(dataDir, database);
  const config = resolveConfig(
    // Only errors reach the test output; a test that reads the log passes its own logger.
    {
      dataDir,
      ...(database ? { databaseUrl: database.url } : {}),
      mqttPort: '0',
      httpPort: '0',
      host: '127.0.0.1',
      logLevel: 'error',
      ...(options.metricsToken ? { metricsToken: options.metricsToken } : {}),
      workflowHttpPrivate: options.workflowHttpPrivate ?? 'allow',
      ...(options.trustedProxies ? { trustedProxies: options.trustedProxies } : {}),
    },
    { GATEHOUSE_ADMIN_TOKEN: ADMIN_TOKEN },
  );
  let running: RunningGatehouse;
  try {
    running = await startGatehouse(config, {
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.secretCheckLimits ? { secretCheckLimits: options.secretCheckLimits } : {}),
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.workflowTimers ? { workflowTimers: options.workflowTimers } : {}),
      ...(options.workflowLimits ? { workflowLimits: options.workflowLimits } : {}),
    });
  } catch (err) {
    if (database && !options.keepData) await database.drop();
    throw err;
  }
  const clients: MqttClient[] = [];
  const server: TestServer = {
    running,
    dataDir,
    clients,
    async http(method, url, body, token = ADMIN_TOKEN, headers = {}) {
      const init: RequestInit = { method, headers: { ...headers } };
      const h = init.headers as Record<string, string>;
      if (token) h.authorization = `Bearer ${token}`;
      if (body !== undefined) {
        h['content-type'] ??= 'application/json';
        init.body = typeof body === 'string' || Buffer.isBuffer(body) ? (body as string) : JSON.stringify(body);
      }
      const res = await fetch(`${running.urls.http}${url}`, init);
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as never };
    },
    connect(deviceId, key, secret, opts = {}) {
      const client = mqtt.connect(running.urls.mqtt, {
        clientId: deviceId,
        username: key,
        password: secret,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        ...opts,
      });
      clients.push(client);
      return new Promise((resolve, reject) => {
        client.once('connect', () => resolve(client));
        client.once('error', (err) => reject(err));
      });
    },
    async endClients() {
      await Promise.all(clients.splice(0).map((c) => c.endAsync().catch(() => {})));
    },
    async stop() {
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => {})));
      await running.stop();
      if (!options.keepData) rmSync(dataDir, { recursive: true, force: true });
      if (database && !options.keepData) {
        keptDatabases.delete(dataDir);
        await database.drop();
      }
    },
  };
  return server;
}

export interface SeedFleet {
  applicationId: string;
  gateway: string;
  otherGateway: string;
  standalone: string;
  /** Peripheral bound to `gateway`. */
  bound: string;
  /** Peripheral any gateway may report for. */
  floating: string;
  key: string;
  secret: string;
}

const ATTRIBUTES = [
  { name: 'temperature', dataType: 'number' },
  { name: 'label', dataType: 'string' },
  { name: 'on', dataType: 'boolean' },
];

/** The body of an answer with the expected status; throws with the answer otherwise. */
export function ok<T>(r: { status: number; body: T }, status = 201): T {
  if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${JSON.stringify(r.body)}`);
  return r.body;
}

/**
 * The seed scenario's application: two gateways, a standalone device, a bound and a floating
 * peripheral, one key. `application` is merged into the application's create body (e.g. a rateLimit).
 */
export async function createFleet(
  server: TestServer,
  options: { application?: Record<string, unknown> } = {},
): Promise<SeedFleet> {
  const app = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Seed', ...options.application }));
  const dev = async (body: Record<string, unknown>) =>
    ok(
      await server.http<{ id: string }>('POST', `/applications/${app.id}/devices`, { attributes: ATTRIBUTES, ...body }),
    ).id;
  const gateway = await dev({ name: 'gateway', deviceClass: 'gateway' });
  const otherGateway = await dev({ name: 'other gateway', deviceClass: 'edgeCompute' });
  const standalone = await dev({ name: 'standalone', deviceClass: 'standalone' });
  const bound = await dev({ name: 'bound', deviceClass: 'peripheral', gatewayId: gateway });
  const floating = await dev({ name: 'floating', deviceClass: 'peripheral' });
  const key = ok(
    await server.http<{ key: string; secret: string }>('POST', `/applications/${app.id}/keys`, { description: 'all' }),
  );
  return {
    applicationId: app.id,
    gateway,
    otherGateway,
    standalone,
    bound,
    floating,
    key: key.key,
    secret: key.secret,
  };
}

/** Resolves with the next message on `topic` (or rejects after `ms`). */
export function nextMessage(
  client: MqttClient,
  topic: string,
  ms = 3000,
): Promise<{ topic: string; payload: unknown }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`no message on ${topic} within ${ms} ms`));
    }, ms);
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve({ topic: t, payload: JSON.parse(payload.toString()) });
    };
    client.on('message', onMessage);
  });
}

/** Waits until `check` returns a truthy value (polling), for effects that land asynchronously. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 3000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const FLEET_ATTRIBUTES = ATTRIBUTES;

/** A device token from `POST /auth/device` for a device and an access key (throws unless 200). */
export async function deviceToken(
  server: TestServer,
  deviceId: string,
  credentials: { key: string; secret: string },
): Promise<string> {
  const { key, secret } = credentials;
  return ok(await server.http<{ token: string }>('POST', '/auth/device', { deviceId, key, secret }, null), 200).token;
}

/** A device log entry as `GET .../logs` answers it: `{kind, time, ...details}`. */
export interface LogEntry {
  kind: 'connect' | 'disconnect' | 'authFailed' | 'rejected' | 'dropped' | 'inactive' | 'suppressed';
  time: string;
  [detail: string]: unknown;
}

/** A device's log, newest first. */
export async function deviceLogs(server: TestServer, applicationId: string, deviceId: string): Promise<LogEntry[]> {
  return ok(
    await server.http<LogEntry[]>('GET', `/applications/${applicationId}/devices/${deviceId}/logs?limit=1000`),
    200,
  );
}

/** Waits for a log entry of the device matching `match` (a partial entry, compared with toMatchObject rules). */
export async function eventuallyLog(
  server: TestServer,
  applicationId: string,
  deviceId: string,
  match: (entry: LogEntry) => boolean,
): Promise<LogEntry> {
  return eventually(async () => (await deviceLogs(server, applicationId, deviceId)).find(match));
}

export interface StoredState {
  time: string;
  data: Record<string, unknown>;
  reportedBy: string;
}

/** A device's whole state history, oldest first. */
export async function stateHistory(
  server: TestServer,
  applicationId: string,
  deviceId: string,
): Promise<StoredState[]> {
  return ok(
    await server.http<StoredState[]>(
      'GET',
      `/applications/${applicationId}/devices/${deviceId}/state?limit=10000&sortDirection=asc&start=0`,
    ),
    200,
  );
}

/** The granted QoS codes of a SUBACK; a refused subscription shows as 128 (0x80). */
export async function subscribeGranted(
  client: MqttClient,
  topic: string | string[],
  qos: 0 | 1 = 1,
): Promise<number[]> {
  try {
    return (await client.subscribeAsync(topic, { qos })).map((g) => g.qos);
  } catch (err) {
    // MQTT.js 5 rejects when any code is 0x80; the SUBACK rides on the error (docs/aedes.md).
    const granted = (err as { packet?: { granted?: Array<number | { qos: number }> } }).packet?.granted;
    if (!granted) throw err;
    return granted.map((g) => (typeof g === 'number' ? g : g.qos));
  }
}

/** Collects every message a client receives, parsed as JSON where possible. */
export function collectMessages(client: MqttClient): Array<{ topic: string; payload: unknown }> {
  const seen: Array<{ topic: string; payload: unknown }> = [];
  client.on('message', (topic, payload) => {
    let value: unknown;
    try {
      value = JSON.parse(payload.toString());
    } catch {
      value = payload.toString();
    }
    seen.push({ topic, payload: value });
  });
  return seen;
}

/** Resolves once the client has closed (or at once when it already has). */
export function closed(client: MqttClient): Promise<void> {
  if (!client.connected) return Promise.resolve();
  return new Promise((resolve) => client.once('close', () => resolve()));
}

/** The MQTT.js error of a refused CONNECT (its `code` is the CONNACK return code). */
export async function refusedConnect(
  server: TestServer,
  deviceId: string,
  key: string,
  secret: string,
): Promise<{ code?: number; message: string }> {
  try {
    const client = await server.connect(deviceId, key, secret);
    await client.endAsync(true);
  } catch (err) {
    return err as { code?: number; message: string };
  }
  throw new Error(`connection of ${deviceId} was accepted`);
}
