/**
 * The gatehouse-gateway command, run as a child process: states in on stdin, commands out on
 * stdout, rejections and events on stderr; and a relay killed with a non-empty disk queue,
 * whose successor drains it.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFleet,
  eventually,
  type Fleet,
  freePort,
  GatehouseUnderTest,
  removeTempDirs,
  tempDir,
} from './helpers.js';

afterAll(removeTempDirs);

const CLIENT = path.resolve(import.meta.dirname, '..');
/** What npm links as the `gatehouse-gateway` command; it runs the compiled relay in dist/. */
const BIN = path.join(CLIENT, 'bin', 'gatehouse-gateway.js');
const BUILT = path.join(CLIENT, 'dist', 'bin', 'gatehouse-gateway.js');

/** Builds the package when its output is missing or older than its sources (`npm test` has just built it). */
function ensureBuilt(): void {
  const newest = (dir: string): number =>
    Math.max(
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(path.join(dir, e.name)) : statSync(path.join(dir, e.name)).mtimeMs,
      ),
    );
  if (existsSync(BUILT) && statSync(BUILT).mtimeMs >= newest(path.join(CLIENT, 'src'))) return;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', path.join(CLIENT, 'tsconfig.build.json')], { stdio: 'inherit' });
}

type Line = Record<string, unknown>;

class Relay {
  readonly stdout: Line[] = [];
  readonly stderr: Line[] = [];
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;

  constructor(args: string[], env: Record<string, string>) {
    this.child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const read = (stream: NodeJS.ReadableStream, into: Line[]) =>
      createInterface({ input: stream }).on('line', (text) => {
        try {
          into.push(JSON.parse(text) as Line);
        } catch {
          into.push({ text });
        }
      });
    read(this.child.stdout!, this.stdout);
    read(this.child.stderr!, this.stderr);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }

  write(line: unknown): void {
    this.child.stdin!.write(`${typeof line === 'string' ? line : JSON.stringify(line)}\n`);
  }

  endInput(): void {
    this.child.stdin!.end();
  }

  event(name: string, match: (line: Line) => boolean = () => true): Promise<Line> {
    return eventually(() => this.stderr.find((l) => l.event === name && match(l)), 10_000);
  }

  async kill(signal: NodeJS.Signals): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

describe('gatehouse-gateway', () => {
  let server: GatehouseUnderTest;
  let fleet: Fleet;
  const relays: Relay[] = [];
  const env = () => ({
    GATEHOUSE_URL: server.mqttUrl,
    GATEHOUSE_GATEWAY_ID: fleet.gateway,
    GATEHOUSE_KEY: fleet.key,
    GATEHOUSE_SECRET: fleet.secret,
    GATEHOUSE_QUEUE_DIR: tempDir('relay-queue'),
  });
  const relay = (args: string[], environment: Record<string, string>) => {
    const r = new Relay(args, environment);
    relays.push(r);
    return r;
  };

  beforeAll(async () => {
    ensureBuilt();
    server = await GatehouseUnderTest.start();
    fleet = await createFleet(server);
  });
  afterAll(async () => {
    await Promise.all(relays.map((r) => r.kill('SIGKILL')));
    await server.dispose();
  });

  it('reports stdin lines for the right devices, prints commands on stdout and rejections on stderr', async () => {
    const r = relay(['--peripheral', fleet.bound, '--rate', '0'], env());
    await r.event('connected');

    r.write({ data: { temperature: 41 } }); // the gateway itself
    r.write({ deviceId: fleet.bound, data: { temperature: 22 } });
    r.write({ deviceId: fleet.floating, data: { label: 'pallet 7' }, time: Date.now() - 5000 }); // added on first use
    r.write('this is not json');
    r.write({ deviceId: fleet.standalone, data: { temperature: 1 } }); // not a peripheral: refused

    await eventually(async () => (await server.history(fleet.applicationId, fleet.floating)).length === 1);
    expect((await server.history(fleet.applicationId, fleet.gateway)).map((s) => s.data)).toEqual([
      { temperature: 41 },
    ]);
    expect(await server.history(fleet.applicationId, fleet.bound)).toEqual([
      expect.objectContaining({ data: { temperature: 22 }, reportedBy: fleet.gateway }),
    ]);
    expect((await server.history(fleet.applicationId, fleet.floating))[0]?.data).toEqual({ label: 'pallet 7' });

    expect(await r.event('invalid')).toMatchObject({ line: 4, message: 'not JSON' });
    expect(await r.event('rejected', (l) => l.topic === `losant/${fleet.standalone}/state`)).toMatchObject({
      code: 403,
      deviceId: fleet.standalone,
      message: expect.any(String),
      time: expect.any(String),
    });

    await server.command(fleet.applicationId, fleet.bound, 'blink', { times: 2 });
    await server.command(fleet.applicationId, fleet.floating, 'locate');
    await server.command(fleet.applicationId, fleet.gateway, 'reboot');
    await eventually(() => r.stdout.length === 3);
    expect(r.stdout).toEqual(
      expect.arrayContaining([
        { deviceId: fleet.bound, name: 'blink', payload: { times: 2 }, time: expect.any(String) },
        { deviceId: fleet.floating, name: 'locate', payload: null, time: expect.any(String) },
        { deviceId: fleet.gateway, name: 'reboot', payload: null, time: expect.any(String) },
      ]),
    );
    expect(Number.isNaN(Date.parse(r.stdout[0]?.time as string))).toBe(false);

    expect(await r.kill('SIGTERM')).toBe(0);
  });

  it('leaves states in its disk queue when killed offline; the next relay on that queue delivers them', async () => {
    const environment = env();
    const deadPort = await freePort(); // nothing listens here: the first relay stays offline
    const first = relay(['--verbose'], { ...environment, GATEHOUSE_URL: `mqtt://127.0.0.1:${deadPort}` });
    for (let seq = 0; seq < 4; seq++) first.write({ deviceId: fleet.bound, data: { seq: 100 + seq } });
    first.write({ data: { seq: 100 } });
    await eventually(() => first.stderr.filter((l) => l.event === 'state' && l.result === 'queued').length === 5);
    await first.event('reconnecting');
    await first.kill('SIGKILL');

    const before = (await server.history(fleet.applicationId, fleet.bound)).length;
    const second = relay(['--exit-on-eof'], environment);
    second.endInput();
    expect(await second.exited).toBe(0);
    const after = (await server.history(fleet.applicationId, fleet.bound)).slice(before);
    expect(after.map((s) => s.data.seq)).toEqual([100, 101, 102, 103]);
    expect((await server.history(fleet.applicationId, fleet.gateway)).at(-1)?.data).toEqual({ seq: 100 });
  });

  it('reads a file given with --input, and with --exit-on-eof exits once everything is stored', async () => {
    const dir = tempDir('relay-input');
    const input = path.join(dir, 'readings.jsonl');
    const time = Date.now() - 10_000;
    writeFileSync(
      input,
      [0, 1, 2]
        .map((i) => JSON.stringify({ deviceId: fleet.floating, data: { seq: 200 + i }, time: time + i }))
        .join('\n'),
    );
    const r = relay(['--input', input, '--exit-on-eof', '--memory-queue'], env());
    expect(await r.exited).toBe(0);
    const history = await server.history(fleet.applicationId, fleet.floating);
    expect(history.filter((s) => Number(s.data.seq) >= 200).map((s) => s.data.seq)).toEqual([200, 201, 202]);
  });

  it('exits with a usage message when credentials are missing, and with code 2 when they are refused', async () => {
    const missing = relay([], { GATEHOUSE_URL: server.mqttUrl });
    expect(await missing.exited).toBe(64);
    const refused = relay([], { ...env(), GATEHOUSE_SECRET: 'wrong' });
    expect(await refused.exited).toBe(2);
    expect(refused.stderr).toContainEqual(expect.objectContaining({ event: 'fatal', code: 4 }));
  });
});
