/** A private Mosquitto on a free loopback port, as the comparison peer for the QoS 1 relay load. */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { config, deadline } from './config.js';
import { terminate } from './gatehouse-process.js';
import { closeAll, connect, type LoadResult, qos1FixedRate, qos1Window } from './load.js';
import { backgroundMeter, cpuMicros } from './proc.js';
import { type Cleanups, clientMeter, ms2, type Report, sleep, waitForQuiet } from './report.js';
import type { Fleet } from './rest.js';
import { connectPublishers } from './scenarios.js';
import { fmt } from './stats.js';

export interface MosquittoProcess {
  pid: number;
  port: number;
  url: string;
  version: string;
  stop(): Promise<void>;
}

/**
 * The mosquitto executable: BENCH_MOSQUITTO (a path, or `none` to skip), else the first on PATH
 * or in /usr/sbin, /usr/local/sbin (not always on a user's PATH).
 */
export function findMosquitto(): string | undefined {
  const chosen = process.env.BENCH_MOSQUITTO;
  if (chosen === 'none') return undefined;
  if (chosen) return chosen;
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const file = path.join(dir, 'mosquitto');
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A port that was free a moment ago on 127.0.0.1 (never 1883). */
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

export async function startMosquitto(executable: string): Promise<MosquittoProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-bench-mosquitto-'));
  const port = await freePort();
  const conf = path.join(dir, 'mosquitto.conf');
  // max_queued_messages 0: Mosquitto 2.0.11 drops QoS 1 messages under load with its default of 1000.
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'max_queued_messages 0',
      'persistence false',
      // Gatehouse sets TCP_NODELAY on its sockets; the comparison peer gets the same.
      'set_tcp_nodelay true',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(executable, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const onExit = () => {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  const stop = async () => {
    await terminate(child, exited, 10_000);
    process.off('exit', onExit);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 10_000;
    while (!(await canConnect(port))) {
      if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode}: ${output.join('')}`);
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${output.join('')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const version = await new Promise<string>((resolve) => {
      const v = spawn(executable, ['-h'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let text = '';
      v.stdout.on('data', (d: Buffer) => {
        text += d.toString();
      });
      v.on('close', () => resolve(/mosquitto version (\S+)/.exec(text)?.[1] ?? 'unknown'));
      v.on('error', () => resolve('unknown'));
    });
    return { pid: child.pid!, port, url: `mqtt://127.0.0.1:${port}`, version, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Scenario e: the QoS 1 saturation load of b (same publishers, window and topics) relayed by
 * Mosquitto to one subscriber on `#` (QoS 1), then the fixed rate of c as a latency baseline.
 * Returns the relayed messages/s of the saturation run (NaN when not all arrived) and
 * Mosquitto's CPU per relayed message.
 */
export async function mosquittoScenarios(
  executable: string,
  fleet: Fleet,
  report: Report,
  cleanups: Cleanups,
): Promise<{ relayed: number; cpuUs: number }> {
  const mosquitto = await startMosquitto(executable);
  cleanups.add(() => mosquitto.stop());
  const name = `Mosquitto ${mosquitto.version}`;
  const publishers = await connectPublishers(mosquitto.url, fleet, false, cleanups);
  const subscriber: MqttClient = await connect(mosquitto.url, { clientId: 'bench-sub' });
  cleanups.add(() => subscriber.endAsync(true));
  await subscriber.subscribeAsync('#', { qos: 1 });
  let received = 0;
  let lastReceived = 0;
  let waiting: { target: number; resolve: () => void } | undefined;
  subscriber.on('message', () => {
    received++;
    lastReceived = performance.now();
    if (waiting && received >= waiting.target) waiting.resolve();
  });
  /** Resolves once `target` messages have arrived in all, or at `end`. */
  const arrived = (target: number, end: number) =>
    Promise.race([
      new Promise<void>((resolve) => {
        waiting = { target, resolve };
        if (received >= target) resolve();
      }),
      sleep(Math.max(0, end - Date.now())),
    ]);
  const pid = mosquitto.pid;

  let relayed: number;
  let cpuUs: number;
  {
    const total = config.qos1Total;
    await waitForQuiet(report, 'e', [pid]);
    const cpu0 = cpuMicros(pid);
    const client = clientMeter();
    const start = performance.now();
    const end = deadline();
    const bg = backgroundMeter([pid]);
    const r = await qos1Window(publishers, total, config.window, end);
    await arrived(total, end);
    report.background.push(['e', bg()]);
    const got = received;
    relayed = got / ((lastReceived - start) / 1000);
    const result: LoadResult = { ...r, done: got, aborted: r.aborted || got < total };
    cpuUs = report.loadRow(`e. ${name} QoS 1 relay`, result, pid, cpu0, relayed, true);
    report.note(
      `e: ${fmt(r.done)} acknowledged to the publishers (${fmt(r.done / (r.elapsedMs / 1000))}/s), ${fmt(got)} ` +
        `delivered to the subscriber on # (QoS 1); load generator ${fmt(client() / Math.max(1, got), 1)} µs/msg ` +
        '(publishers and subscriber)',
    );
    if (got < total) relayed = Number.NaN;
  }
  await sleep(1_000);

  {
    await waitForQuiet(report, 'e2', [pid]);
    const before = received;
    const cpu0 = cpuMicros(pid);
    const end = deadline();
    const bg = backgroundMeter([pid]);
    const r = await qos1FixedRate(publishers, config.fixedRate, config.fixedMs, end);
    await arrived(before + r.done, end);
    report.background.push(['e2', bg()]);
    report.loadRow(
      `e2. ${name} QoS 1 at ${fmt(config.fixedRate)}/s`,
      r,
      pid,
      cpu0,
      r.done / (config.fixedMs / 1000),
      true,
    );
    report.note(
      `e2: the load of c relayed by Mosquitto (a latency baseline for the load generator and loopback): ` +
        `${fmt(received - before)} delivered; ack p99.9 ${fmt(ms2(r.latencies.percentile(99.9)), 1)} ms, ` +
        `max ${fmt(r.latencies.percentile(100), 1)} ms`,
    );
  }
  await closeAll([...publishers.map((p) => p.client), subscriber]);
  await mosquitto.stop();
  return { relayed, cpuUs };
}
