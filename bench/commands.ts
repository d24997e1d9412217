/**
 * Scenario k: REST command delivery. A gateway connected over MQTT (QoS 1 subscription to its
 * own and a bound peripheral's command topics); commands sent one after another over REST, each
 * timed from the moment the request is sent until the gateway's client receives it (the command
 * is recorded in the group commit before it is delivered). Also the REST answer's own time, and
 * afterwards the disk's floor: how long a sync of a command's worth of log takes in the data
 * directory, in the same session. Target: delivery p99 under 5 ms.
 */

import { closeSync, fdatasyncSync, openSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { startGatehouseProcess } from './gatehouse-process.js';
import { connect } from './load.js';
import { backgroundMeter } from './proc.js';
import { type Cleanups, type Report, sleep, waitForQuiet } from './report.js';
import { Rest } from './rest.js';
import { fmt, Latencies, textTable } from './stats.js';

export interface CommandOutcome {
  commands: number;
  delivered: Latencies;
  answered: Latencies;
  /** The disk's floor: 16 KB written and fdatasync'ed in the data directory, SYNC_SAMPLES times. */
  diskSync: Latencies;
}

/** Commands sent in a row; BENCH_COMMANDS=0 skips the scenario. */
export const commandCount = Math.max(0, Number(process.env.BENCH_COMMANDS ?? 500) || 0);
const WARMUP = 50;
/** Syncs timed for the disk's floor, 2 ms apart (about the pace of the commands). */
const SYNC_SAMPLES = 300;

export async function commandScenario(report: Report, cleanups: Cleanups): Promise<CommandOutcome> {
  const server = await startGatehouseProcess();
  cleanups.add(() => server.stop());
  const rest = new Rest(server.httpUrl, server.adminToken);
  const app = await rest.post<{ id: string }>('/applications', {
    name: 'Command bench',
    rateLimit: { messages: 0, windowSeconds: 15 },
  });
  const gateway = await rest.post<{ id: string }>(`/applications/${app.id}/devices`, {
    name: 'gateway',
    deviceClass: 'gateway',
  });
  const peripheral = await rest.post<{ id: string }>(`/applications/${app.id}/devices`, {
    name: 'peripheral',
    deviceClass: 'peripheral',
    gatewayId: gateway.id,
  });
  const key = await rest.post<{ key: string; secret: string }>(`/applications/${app.id}/keys`, {
    description: 'command bench',
  });
  const client = await connect(server.mqttUrl, { clientId: gateway.id, username: key.key, password: key.secret });
  cleanups.add(() => client.endAsync(true));
  const topics = [`losant/${gateway.id}/command`, `losant/${peripheral.id}/command`];
  await client.subscribeAsync(topics, { qos: 1 });

  const waiting = new Map<string, () => void>();
  client.on('message', (_topic, payload) => {
    const name = (JSON.parse(payload.toString()) as { name?: string }).name ?? '';
    waiting.get(name)?.();
  });
  const delivered = new Latencies();
  const answered = new Latencies();
  await waitForQuiet(report, 'k', [server.pid]);
  const background = backgroundMeter([server.pid]);
  for (let i = -WARMUP; i < commandCount; i++) {
    const target = i % 2 === 0 ? gateway.id : peripheral.id;
    const name = `c${i}`;
    const started = performance.now();
    const arrived = new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`command ${name} not delivered within 10 s`)), 10_000);
      waiting.set(name, () => {
        clearTimeout(timer);
        waiting.delete(name);
        resolve(performance.now());
      });
    });
    await rest.post(`/applications/${app.id}/devices/${target}/command`, { name, payload: { i } }, 200);
    const answeredAt = performance.now();
    const at = await arrived;
    if (i < 0) continue;
    delivered.add(at - started);
    answered.add(answeredAt - started);
  }
  report.background.push(['k', background()]);
  await client.endAsync();
  const diskSync = await syncFloor(server.dataDir);
  await server.stop();
  report.note(
    `k: ${fmt(commandCount)} REST commands in a row to a gateway and its bound peripheral (after ${WARMUP} unmeasured), each delivered over MQTT`,
  );
  report.note(
    `k: the disk's floor, measured after the commands: 16 KB (about the log pages of one command's commit) written ` +
      `and fdatasync'ed ${fmt(SYNC_SAMPLES)} times in the data directory, p50 ${fmt(diskSync.percentile(50), 2)} ms, ` +
      `p99 ${fmt(diskSync.percentile(99), 2)} ms, max ${fmt(diskSync.percentile(100), 2)} ms`,
  );
  return { commands: commandCount, delivered, answered, diskSync };
}

/**
 * What a command cannot beat: every command waits for one sync of the log. The file's first 64
 * writes extend it, later ones overwrite it, as the log is rewritten from its start after each
 * checkpoint. Synced on this thread, so the figure is the disk's, without a thread pool's hop.
 */
async function syncFloor(dir: string): Promise<Latencies> {
  const file = path.join(dir, 'bench-sync-floor');
  const block = Buffer.alloc(16 * 1024, 1);
  const out = new Latencies();
  const fd = openSync(file, 'w');
  try {
    for (let i = 0; i < SYNC_SAMPLES; i++) {
      writeSync(fd, block, 0, block.length, (i % 64) * block.length);
      const started = performance.now();
      fdatasyncSync(fd);
      out.add(performance.now() - started);
      await sleep(2);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  return out;
}

export function commandTable(outcome: CommandOutcome): string {
  const row = (what: string, l: Latencies) => [
    what,
    fmt(outcome.commands),
    fmt(l.percentile(50), 2),
    fmt(l.percentile(99), 2),
    fmt(l.percentile(100), 2),
  ];
  return textTable(
    ['k. REST command, one at a time', 'commands', 'p50 ms', 'p99 ms', 'max ms'],
    [row('request sent → gateway receives it', outcome.delivered), row('request sent → REST answer', outcome.answered)],
  );
}
