/**
 * Helpers for the SDK's tests: a real Gatehouse (from this repository's src/, not a dependency of
 * the package) that can be stopped and started again on the same data directory and ports, a
 * fleet of a gateway and peripherals, and polling.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { resolveConfig } from '../../src/config.js';
import { type RunningGatehouse, startGatehouse } from '../../src/server.js';
import { ADMIN_TOKEN, eventually } from '../../test/helpers/server.js';

export { ADMIN_TOKEN, eventually };

/** Reconnect quickly in tests. */
export const FAST_BACKOFF = { initialDelay: 20, maxDelay: 250 };

const tempDirs: string[] = [];

/** A new temporary directory, removed by `removeTempDirs()`. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `gatehouse-client-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** A port that was free a moment ago on 127.0.0.1 (never 1883, where a system broker may listen). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const p = (server.address() as net.AddressInfo).port;
        server.close(() => resolve(p));
      });
    });
    if (port !== 1883) return port;
  }
}

/** The REST API of a Gatehouse on a loopback port, with the admin token. */
export class Rest {
  constructor(readonly httpPort: number) {}

  /** JSON over real HTTP with the admin token; throws unless the status is `expect`. */
  async api<T>(method: string, url: string, body?: unknown, expect?: number): Promise<T> {
    const res = await fetch(`http://127.0.0.1:${this.httpPort}${url}`, {
      method,
      headers: {
        authorization: `Bearer ${ADMIN_TOKEN}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    const wanted = expect ?? (method === 'POST' && !url.endsWith('/command') && !url.endsWith('/state') ? 201 : 200);
    if (res.status !== wanted) throw new Error(`${method} ${url}: expected ${wanted}, got ${res.status}: ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** A device's whole state history, oldest first. */
  history(
    applicationId: string,
    deviceId: string,
  ): Promise<Array<{ time: string; data: Record<string, unknown>; reportedBy: string }>> {
    return this.api(
      'GET',
      `/applications/${applicationId}/devices/${deviceId}/state?limit=10000&sortDirection=asc&start=0`,
    );
  }

  /** Sends a command over REST; answers where it was routed. */
  command(applicationId: string, deviceId: string, name: string, payload?: unknown): Promise<{ routedTo: string[] }> {
    return this.api('POST', `/applications/${applicationId}/devices/${deviceId}/command`, {
      name,
      ...(payload === undefined ? {} : { payload }),
    });
  }
}

/** A Gatehouse in this process on fixed loopback ports that can be stopped and started again on the same data directory. */
export class GatehouseUnderTest extends Rest {
  running: RunningGatehouse | undefined;
  readonly dataDir: string;

  private constructor(
    readonly ports: { mqtt: number; http: number; mqtts?: number },
    private readonly tls?: { cert: string; key: string },
  ) {
    super(ports.http);
    this.dataDir = tempDir('server');
  }

  static async start(options: { tls?: { cert: string; key: string } } = {}): Promise<GatehouseUnderTest> {
    const ports = {
      mqtt: await freePort(),
      http: await freePort(),
      ...(options.tls ? { mqtts: await freePort() } : {}),
    };
    const server = new GatehouseUnderTest(ports, options.tls);
    await server.restart();
    return server;
  }

  get mqttUrl(): string {
    return `mqtt://127.0.0.1:${this.ports.mqtt}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.ports.http}/mqtt`;
  }

  get mqttsUrl(): string {
    return `mqtts://127.0.0.1:${this.ports.mqtts}`;
  }

  /** MQTT over WebSocket over TLS: the HTTP port speaks TLS too when the server has a certificate. */
  get wssUrl(): string {
    return `wss://127.0.0.1:${this.ports.http}/mqtt`;
  }

  /** Starts the server (again) on the same data directory and ports. */
  async restart(): Promise<void> {
    if (this.running) throw new Error('already running');
    const config = resolveConfig(
      {
        dataDir: this.dataDir,
        host: '127.0.0.1',
        mqttPort: String(this.ports.mqtt),
        httpPort: String(this.ports.http),
        // Only errors reach the test output (connections are logged at info).
        logLevel: 'error',
        ...(this.tls && this.ports.mqtts
          ? { mqttsPort: String(this.ports.mqtts), tlsCert: this.tls.cert, tlsKey: this.tls.key }
          : {}),
      },
      { GATEHOUSE_ADMIN_TOKEN: ADMIN_TOKEN },
    );
    this.running = await startGatehouse(config);
  }

  /** Stops the server: clients are disconnected, acknowledged state is on disk. */
  async stop(): Promise<void> {
    const running = this.running;
    this.running = undefined;
    await running?.stop();
  }

  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

export interface Fleet {
  applicationId: string;
  gateway: string;
  otherGateway: string;
  standalone: string;
  /** Bound to `gateway`. */
  bound: string;
  /** Any gateway may report for it. */
  floating: string;
  key: string;
  secret: string;
}

/** An application (rate limit off unless given) with two gateways, a standalone device and two peripherals. */
export async function createFleet(
  server: Rest,
  rateLimit: { messages: number; windowSeconds: number } = { messages: 0, windowSeconds: 15 },
): Promise<Fleet> {
  const app = await server.api<{ id: string }>('POST', '/applications', { name: 'client tests', rateLimit });
  const attributes = [
    { name: 'temperature', dataType: 'number' },
    { name: 'seq', dataType: 'number' },
    { name: 'label', dataType: 'string' },
  ];
  const device = async (body: Record<string, unknown>) =>
    (await server.api<{ id: string }>('POST', `/applications/${app.id}/devices`, { attributes, ...body })).id;
  const gateway = await device({ name: 'gateway', deviceClass: 'gateway' });
  const otherGateway = await device({ name: 'other gateway', deviceClass: 'gateway' });
  const standalone = await device({ name: 'standalone', deviceClass: 'standalone' });
  const bound = await device({ name: 'bound', deviceClass: 'peripheral', gatewayId: gateway });
  const floating = await device({ name: 'floating', deviceClass: 'floating' });
  const key = await server.api<{ key: string; secret: string }>('POST', `/applications/${app.id}/keys`, {
    description: 'client tests',
  });
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

/** Collects a typed emitter's events of one kind. */
export function collect<T>(on: (listener: (value: T) => void) => unknown): T[] {
  const seen: T[] = [];
  on((value) => seen.push(value));
  return seen;
}
