/**
 * Scenario d: many idle MQTT connections, on a fresh server so that the heap grown by the load
 * scenarios does not absorb (and hide) what the connections cost.
 */
import type { MqttClient } from 'mqtt';
import { config, deadline } from './config.js';
import { startGatehouseProcess } from './gatehouse-process.js';
import { closeAll, connect } from './load.js';
import { backgroundMeter, cpuMicros, rssKb } from './proc.js';
import { type Cleanups, type Report, sleep, waitForQuiet } from './report.js';
import { createStandalone, Rest } from './rest.js';
import { fmt } from './stats.js';

interface ConnectResult {
  clients: MqttClient[];
  failures: string[];
  ms: number;
  cpuMicros: number;
  aborted: boolean;
}

/** Connects one client per device id, `batch` at a time. */
async function connectMany(
  url: string,
  pid: number,
  deviceIds: string[],
  key: string,
  secret: string,
  batch: number,
  end: number,
): Promise<ConnectResult> {
  const clients: MqttClient[] = [];
  const failures: string[] = [];
  const cpu0 = cpuMicros(pid);
  const start = performance.now();
  let aborted = false;
  for (let i = 0; i < deviceIds.length; i += batch) {
    if (Date.now() > end) {
      aborted = true;
      break;
    }
    const results = await Promise.allSettled(
      deviceIds
        .slice(i, i + batch)
        .map((clientId) =>
          connect(url, { clientId, username: key, password: secret, keepalive: 60, connectTimeout: 30_000 }),
        ),
    );
    for (const r of results) {
      if (r.status === 'fulfilled') clients.push(r.value);
      else failures.push(String((r.reason as Error).message ?? r.reason));
    }
  }
  return { clients, failures, ms: performance.now() - start, cpuMicros: cpuMicros(pid) - cpu0, aborted };
}

/** Returns the server RSS growth in MB for `config.idle` idle connections (NaN when not all connected). */
export async function idleScenario(report: Report, cleanups: Cleanups): Promise<number> {
  const server = await startGatehouseProcess();
  cleanups.add(() => server.stop());
  const pid = server.pid;
  const rest = new Rest(server.httpUrl, server.adminToken);
  const app = await rest.post<{ id: string }>('/applications', {
    name: 'idle',
    rateLimit: { messages: 0, windowSeconds: 15 },
  });
  const key = await rest.post<{ key: string; secret: string }>(`/applications/${app.id}/keys`, {
    description: 'idle',
  });
  let t = performance.now();
  const ids = await createStandalone(rest, app.id, config.idle, config.restConcurrency);
  report.note(
    `d: fresh server; ${fmt(config.idle)} standalone devices created in ${fmt((performance.now() - t) / 1000, 1)} s ` +
      `(${fmt(config.idle / ((performance.now() - t) / 1000))}/s, ${config.restConcurrency} in flight)`,
  );

  // The key's secret is verified with scrypt once, then remembered. Connections that arrive
  // before the first verification finishes each run their own scrypt: measured here on one
  // batch, then the cache is warm for the measurement proper.
  const herd = await connectMany(
    server.mqttUrl,
    pid,
    ids.slice(0, config.idleBatch),
    key.key,
    key.secret,
    config.idleBatch,
    deadline(),
  );
  await closeAll(herd.clients);
  report.note(
    `d: ${herd.clients.length} simultaneous first connections with a not yet verified key took ${fmt(herd.ms)} ms ` +
      `and ${fmt(herd.cpuMicros / 1000)} ms of server CPU (${fmt(herd.cpuMicros / Math.max(1, herd.clients.length) / 1000, 1)} ms each)`,
  );
  await sleep(2_000);
  await waitForQuiet(report, 'd', [pid]);

  const rssBeforeKb = rssKb(pid);
  const end = deadline();
  const bg = backgroundMeter([pid]);
  const r = await connectMany(server.mqttUrl, pid, ids, key.key, key.secret, config.idleBatch, end);
  report.background.push(['d', bg()]);
  cleanups.add(() => closeAll(r.clients));
  // Let the connection writes commit and the heap settle before reading memory.
  await sleep(3_000);
  const rssAfterKb = rssKb(pid);
  const connected = r.clients.length;
  const deltaKb = rssAfterKb - rssBeforeKb;
  report.rows.push({
    scenario: `d. ${fmt(config.idle)} idle connections${r.aborted ? ' (ABORTED)' : ''}`,
    messages: `${fmt(connected)} conns`,
    perSecond: `${fmt(connected / (r.ms / 1000))} conn/s`,
    p50: 'n/a',
    p99: 'n/a',
    cpuUsPerMsg: `${fmt(r.cpuMicros / Math.max(1, connected))} /conn`,
    rssMb: rssAfterKb / 1024,
  });
  report.note(
    `d: ${fmt(connected)}/${fmt(ids.length)} connected in ${fmt(r.ms / 1000, 1)} s, ${config.idleBatch} at a time; ` +
      `server RSS ${fmt(rssBeforeKb / 1024, 1)} MB before, ${fmt(rssAfterKb / 1024, 1)} MB after 3 s idle: ` +
      `+${fmt(deltaKb / 1024, 1)} MB, ${fmt(deltaKb / Math.max(1, connected), 1)} KB per connection`,
  );
  if (r.failures.length > 0) {
    report.note(`d: ${r.failures.length} connections failed, e.g. ${[...new Set(r.failures)].slice(0, 3).join(' | ')}`);
  }
  t = performance.now();
  await closeAll(r.clients);
  const stopStart = performance.now();
  const code = await server.stop();
  report.note(
    `d: ${fmt(connected)} clients disconnected in ${fmt((stopStart - t) / 1000, 1)} s; ` +
      `server stopped with SIGTERM: exit code ${code} after ${fmt(performance.now() - stopStart)} ms`,
  );
  return connected === ids.length && !r.aborted ? deltaKb / 1024 : Number.NaN;
}
