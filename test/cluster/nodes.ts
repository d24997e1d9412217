/**
 * Real Gatehouse nodes for the multi-node tests: each is a `gatehouse serve` process of the
 * built CLI on one PostgreSQL database and one Redis, under a key prefix unique to the run, with
 * its own free ports. Their operator log (JSON lines on stderr) is kept for assertions. Also
 * what the tests need around them: free ports, a private redis-server, and `endpoint`, the REST
 * and MQTT client side of any address (a node, or the load balancer in haproxy.ts).
 */
import { type ChildProcess, type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { ADMIN_TOKEN, eventually, type TestServer } from '../helpers/server.js';

const CLI = path.resolve('dist/src/cli.js');
export const REDIS_URL = process.env.GATEHOUSE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The client side of a Gatehouse address: REST with JSON, MQTT clients, streams. */
export interface Endpoint {
  urls: { mqtt: string; http: string };
  /** JSON over HTTP, with the admin token unless another is given. */
  http<T = unknown>(method: string, url: string, body?: unknown, token?: string): Promise<{ status: number; body: T }>;
  /** An MQTT client (no reconnecting unless `options` says so); resolves on its first CONNACK. */
  connect(deviceId: string, key: string, secret: string, options?: IClientOptions): Promise<MqttClient>;
  /** What openStream (helpers/sse.ts) needs of a server. */
  asServer(): TestServer;
  /** Ends every MQTT client made by connect. */
  endClients(): void;
}

export function endpoint(urls: { mqtt: string; http: string }): Endpoint {
  const clients: MqttClient[] = [];
  return {
    urls,
    async http(method, url, body, token = ADMIN_TOKEN) {
      const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
      if (body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${urls.http}${url}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as never };
    },
    connect(deviceId, key, secret, options = {}) {
      const client = mqtt.connect(urls.mqtt, {
        clientId: deviceId,
        username: key,
        password: secret,
        reconnectPeriod: 0,
        connectTimeout: 5000,
        ...options,
      });
      clients.push(client);
      return new Promise((resolve, reject) => {
        client.once('connect', () => resolve(client));
        client.once('error', (err) => reject(err));
      });
    },
    asServer: () => ({ running: { urls } }) as unknown as TestServer,
    endClients() {
      for (const c of clients) c.end(true);
    },
  };
}

export interface Node extends Endpoint {
  name: string;
  child: ChildProcessWithoutNullStreams;
  /** JSON lines of the operator log so far. */
  log(): Array<Record<string, unknown>>;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** A free TCP port on the loopback address (free when asked; taken by whoever binds it next). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A private redis-server on `port` (no persistence), once it accepts connections. */
export async function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
  ]);
  await eventually(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.end();
          resolve(true);
        });
        socket.on('error', () => resolve(false));
      }),
    10_000,
  );
  return child;
}

export function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

export class Nodes {
  readonly prefix = `gatehouse-test-${randomBytes(4).toString('hex')}:`;
  readonly nodes: Node[] = [];
  private readonly dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-cluster-'));

  constructor(
    private readonly databaseUrl: string,
    private readonly redisUrl = REDIS_URL,
  ) {}

  async start(name: string, extraEnv: Record<string, string> = {}): Promise<Node> {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        '--database-url',
        this.databaseUrl,
        '--redis-url',
        this.redisUrl,
        '--redis-prefix',
        this.prefix,
        '--data-dir',
        this.dataDir,
        '--mqtt-port',
        '0',
        '--http-port',
        '0',
        '--mqtts-port',
        '0',
        '--log-level',
        'info',
      ],
      { env: { ...process.env, GATEHOUSE_ADMIN_TOKEN: ADMIN_TOKEN, ...extraEnv } },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const deadline = Date.now() + 20_000;
    let urls: { mqtt: string; http: string } | undefined;
    while (!urls) {
      const m = /mqtt listening on (\S+)/.exec(stdout);
      const h = /http listening on (\S+)/.exec(stdout);
      if (m?.[1] && h?.[1]) urls = { mqtt: m[1], http: h[1] };
      else if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`node ${name} did not start: ${stdout}${stderr}`);
      } else await new Promise((r) => setTimeout(r, 25));
    }
    const client = endpoint(urls);
    const node: Node = {
      ...client,
      name,
      child,
      exited,
      log: () =>
        stderr
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      async kill(signal = 'SIGTERM') {
        client.endClients();
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        await exited;
      },
    };
    this.nodes.push(node);
    return node;
  }

  /** Stops every node still running, removes the run's Redis keys and the data directory. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill('SIGTERM')));
    const redis = new Redis(this.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await redis.connect();
      const keys = await redis.keys(`${this.prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
    } finally {
      redis.disconnect();
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
