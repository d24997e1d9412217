/**
 * Store-and-forward across failures: the server stopped and started again on the same data
 * directory and port while the gateway keeps sending; a PUBACK lost on the way; the gateway
 * process replaced by a new one on the same disk queue.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Command, Gateway, type Peripheral, type Rejection, type SendResult } from '../src/index.js';
import {
  ADMIN_TOKEN,
  collect,
  createFleet,
  eventually,
  FAST_BACKOFF,
  type Fleet,
  freePort,
  GatehouseUnderTest,
  Rest,
  removeTempDirs,
  tempDir,
} from './helpers.js';

afterAll(removeTempDirs);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('store-and-forward across a server restart', () => {
  let server: GatehouseUnderTest;
  let fleet: Fleet;

  beforeAll(async () => {
    server = await GatehouseUnderTest.start();
    fleet = await createFleet(server);
  });
  afterAll(() => server.dispose());

  it('delivers every state sent while the server was down exactly once, in order', async () => {
    const gateway = new Gateway({
      id: fleet.gateway,
      key: fleet.key,
      secret: fleet.secret,
      url: server.mqttUrl,
      queue: { dir: tempDir('queue') },
      maxRate: 0,
      backoff: FAST_BACKOFF,
    });
    const reporters: Array<Gateway | Peripheral> = [
      gateway,
      gateway.addPeripheral(fleet.bound),
      gateway.addPeripheral(fleet.floating),
    ];
    const offline = collect<unknown>((l) => gateway.on('offline', l));
    const reconnected = collect<void>((l) => gateway.on('reconnected', l));
    await gateway.connect();

    // One sender keeps going through the whole outage: seq 0, 1, 2, ... for each device.
    const results: Array<Promise<SendResult>> = [];
    let sent = 0;
    let stop = false;
    const sender = (async () => {
      while (!stop) {
        const seq = sent++;
        for (const reporter of reporters) results.push(reporter.sendState({ seq }));
        await sleep(2);
      }
    })();

    await eventually(() => sent >= 20);
    await server.stop();
    await eventually(() => offline.length === 1);
    const atOutage = sent;
    await eventually(() => sent >= atOutage + 30);
    expect(gateway.connected).toBe(false);
    expect(gateway.queued).toBeGreaterThan(0);

    await server.restart();
    await eventually(() => reconnected.length === 1, 10_000);
    const atReconnect = sent;
    await eventually(() => sent >= atReconnect + 20);
    stop = true;
    await sender;
    await gateway.flush();

    const outcomes = await Promise.all(results);
    expect(outcomes).not.toContain('dropped');
    expect(outcomes).toContain('queued');
    expect(gateway.dropped).toBe(0);
    const expected = Array.from({ length: sent }, (_, i) => i);
    for (const id of [fleet.gateway, fleet.bound, fleet.floating]) {
      const history = await server.history(fleet.applicationId, id);
      expect(history.map((s) => s.data.seq)).toEqual(expected);
    }

    // Subscribed again after the reconnect: each peripheral's commands, and the error topic.
    const commands = collect<Command>((l) => (reporters[2] as Peripheral).on('command', l));
    expect((await server.command(fleet.applicationId, fleet.floating, 'locate')).routedTo).toEqual([fleet.gateway]);
    await eventually(() => commands.length === 1);
    const rejections = collect<Rejection>((l) => gateway.on('rejected', l));
    await gateway.sendState({ humidity: 1 });
    await eventually(() => rejections.some((r) => r.code === 400 && r.deviceId === fleet.gateway));
    await gateway.disconnect();
  });
});

/** The server CLI (`npm test` builds it first; built here only when missing). */
const ROOT = path.resolve(import.meta.dirname, '..', '..');
const SERVER_CLI = path.join(ROOT, 'dist', 'src', 'cli.js');

/** `gatehouse serve` as a child process on fixed ports, so it can be killed with SIGKILL. */
async function spawnServer(dataDir: string, ports: { mqtt: number; http: number }): Promise<ChildProcess> {
  if (!existsSync(SERVER_CLI)) {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.json')], { stdio: 'inherit' });
  }
  const child = spawn(process.execPath, [SERVER_CLI, 'serve', '--data-dir', dataDir, '--host', '127.0.0.1'], {
    env: {
      PATH: process.env.PATH ?? '',
      GATEHOUSE_MQTT_PORT: String(ports.mqtt),
      GATEHOUSE_HTTP_PORT: String(ports.http),
      GATEHOUSE_ADMIN_TOKEN: ADMIN_TOKEN,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  const listening = new Set<string>();
  createInterface({ input: child.stdout! }).on('line', (line) => {
    output.push(line);
    const kind = /^(mqtt|http) listening on/.exec(line)?.[1];
    if (kind) listening.add(kind);
  });
  await eventually(() => {
    if (child.exitCode !== null) throw new Error(`gatehouse exited with ${child.exitCode}: ${output.join('\n')}`);
    return listening.size === 2;
  }, 15_000);
  return child;
}

function kill(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  return exited;
}

describe('store-and-forward across a server killed with SIGKILL', () => {
  it('delivers every state exactly once, in order, after the server is started again', async () => {
    const dataDir = tempDir('killed-server');
    const ports = { mqtt: await freePort(), http: await freePort() };
    let server = await spawnServer(dataDir, ports);
    try {
      const rest = new Rest(ports.http);
      const fleet = await createFleet(rest);
      const gateway = new Gateway({
        id: fleet.gateway,
        key: fleet.key,
        secret: fleet.secret,
        url: `mqtt://127.0.0.1:${ports.mqtt}`,
        queue: { dir: tempDir('queue') },
        maxRate: 0,
        backoff: FAST_BACKOFF,
      });
      const bound = gateway.addPeripheral(fleet.bound);
      const offline = collect<unknown>((l) => gateway.on('offline', l));
      const reconnected = collect<void>((l) => gateway.on('reconnected', l));
      await gateway.connect();

      const results: Array<Promise<SendResult>> = [];
      let sent = 0;
      let stop = false;
      const sender = (async () => {
        while (!stop) {
          const seq = sent++;
          results.push(gateway.sendState({ seq }), bound.sendState({ seq }));
          await sleep(2);
        }
      })();

      await eventually(() => sent >= 30);
      await kill(server, 'SIGKILL'); // no clean shutdown: whatever was in flight is cut off
      await eventually(() => offline.length === 1);
      const atKill = sent;
      await eventually(() => sent >= atKill + 30);
      server = await spawnServer(dataDir, ports);
      await eventually(() => reconnected.length === 1, 10_000);
      const atReconnect = sent;
      await eventually(() => sent >= atReconnect + 10);
      stop = true;
      await sender;
      await gateway.flush();

      expect(await Promise.all(results)).not.toContain('dropped');
      const expected = Array.from({ length: sent }, (_, i) => i);
      for (const id of [fleet.gateway, fleet.bound]) {
        expect((await rest.history(fleet.applicationId, id)).map((s) => s.data.seq)).toEqual(expected);
      }
      await gateway.disconnect();
    } finally {
      await kill(server, 'SIGTERM');
    }
  }, 40_000);
});

/**
 * A TCP relay between the SDK and the server that can swallow what the server sends (so a
 * PUBACK is lost) and cut every connection.
 */
class LossyRelay {
  swallowDownstream = false;
  connections = 0;
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;

  constructor(private readonly target: number) {
    this.server = net.createServer((client) => {
      this.connections++;
      const upstream = net.connect(this.target, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      client.on('data', (d) => upstream.write(d));
      upstream.on('data', (d) => {
        if (!this.swallowDownstream) client.write(d);
      });
      const close = () => {
        client.destroy();
        upstream.destroy();
        this.sockets.delete(client);
        this.sockets.delete(upstream);
      };
      client.on('close', close).on('error', close);
      upstream.on('close', close).on('error', close);
    });
  }

  async listen(): Promise<number> {
    const port = await freePort();
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    return port;
  }

  cut(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

describe('a lost acknowledgement', () => {
  it('sends the state again with its original time, and the server stores it once', async () => {
    const server = await GatehouseUnderTest.start();
    const relay = new LossyRelay(server.ports.mqtt);
    try {
      const fleet = await createFleet(server);
      const port = await relay.listen();
      const gateway = new Gateway({
        id: fleet.gateway,
        key: fleet.key,
        secret: fleet.secret,
        url: `mqtt://127.0.0.1:${port}`,
        queue: { type: 'memory' },
        backoff: FAST_BACKOFF,
      });
      const bound = gateway.addPeripheral(fleet.bound);
      const reconnected = collect<void>((l) => gateway.on('reconnected', l));
      await gateway.connect();

      relay.swallowDownstream = true;
      const result = bound.sendState({ temperature: 30 });
      // Stored by the server, but the PUBACK never reaches the gateway.
      await eventually(async () => (await server.history(fleet.applicationId, fleet.bound)).length === 1);
      expect(gateway.queued).toBe(1);
      relay.swallowDownstream = false;
      relay.cut();
      expect(await result).toBe('queued');

      await eventually(() => reconnected.length === 1);
      await gateway.flush();
      expect(relay.connections).toBe(2);
      const history = await server.history(fleet.applicationId, fleet.bound);
      expect(history.map((s) => s.data)).toEqual([{ temperature: 30 }]);
      await gateway.disconnect();
    } finally {
      await relay.close();
      await server.dispose();
    }
  });
});

describe('a gateway process restarted with a non-empty disk queue', () => {
  let server: GatehouseUnderTest;
  let fleet: Fleet;

  beforeAll(async () => {
    server = await GatehouseUnderTest.start();
    fleet = await createFleet(server);
  });
  afterAll(() => server.dispose());

  it('drains what the previous instance queued, in order, before what the new one sends', async () => {
    const dir = tempDir('queue');
    const options = { id: fleet.gateway, key: fleet.key, secret: fleet.secret, backoff: FAST_BACKOFF, maxRate: 0 };

    // The first instance never reaches a server: nothing listens on its port.
    const first = new Gateway({ ...options, url: `mqtt://127.0.0.1:${await freePort()}`, queue: { dir } });
    const attempts = collect<unknown>((l) => first.on('reconnecting', l));
    void first.connect().catch(() => {});
    const bound = first.addPeripheral(fleet.bound);
    const queued = await Promise.all([
      first.sendState({ seq: 0 }),
      bound.sendState({ seq: 0 }),
      bound.sendState({ seq: 1 }),
      first.sendState({ seq: 1 }),
      bound.sendState({ seq: 2 }),
    ]);
    expect(queued).toEqual(['queued', 'queued', 'queued', 'queued', 'queued']);
    await eventually(() => attempts.length >= 2);
    expect(first.queued).toBe(5);
    await first.disconnect();

    // A new instance (as after a process restart) on the same directory.
    const second = new Gateway({ ...options, url: server.mqttUrl, queue: { dir } });
    const secondBound = second.addPeripheral(fleet.bound);
    await second.connect();
    expect(await secondBound.sendState({ seq: 3 })).toBe('sent');
    await second.flush();
    expect((await server.history(fleet.applicationId, fleet.bound)).map((s) => s.data.seq)).toEqual([0, 1, 2, 3]);
    expect((await server.history(fleet.applicationId, fleet.gateway)).map((s) => s.data.seq)).toEqual([0, 1]);
    await second.disconnect();
  });
});
