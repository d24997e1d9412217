/**
 * Scenario k: REST command delivery. A gateway connected over MQTT (QoS 1 subscription to its
 * own and a bound peripheral's command topics); commands sent one after another over REST, each
 * timed from the moment the request is sent until the gateway's client receives it (the command
 * is recorded in the group commit before it is delivered). Also the REST answer's own time.
 * Target: delivery p99 under 5 ms.
 */

import { startGatehouseProcess } from './gatehouse-process.js';
import { connect } from './load.js';
import type { Cleanups, Report } from './report.js';
import { Rest } from './rest.js';
import { fmt, Latencies, textTable } from './stats.js';

export interface CommandOutcome {
  commands: number;
  delivered: Latencies;
  answered: Latencies;
}

/** Commands sent in a row; BENCH_COMMANDS=0 skips the scenario. */
export const commandCount = Math.max(0, Number(process.env.BENCH_COMMANDS ?? 500) || 0);
const WARMUP = 50;

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
  await client.endAsync();
  await server.stop();
  report.note(
    `k: ${fmt(commandCount)} REST commands in a row to a gateway and its bound peripheral (after ${WARMUP} unmeasured), each delivered over MQTT`,
  );
  return { commands: commandCount, delivered, answered };
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
