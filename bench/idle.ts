/**
 * Scenario d: many idle MQTT connections, on a fresh server so that the heap grown by the load
 * scenarios does not absorb (and hide) what the connections cost.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { config, deadline } from './config.js';
import { startGatehouseProcess } from './gatehouse-process.js';
import { allocationNotes, INSPECT_ARG, Inspector, type MemoryUsage } from './inspector.js';
import { closeAll, connect } from './load.js';
import { backgroundMeter, cpuMicros, type RssByMapping, rssByMapping, rssKb } from './proc.js';
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

/**
 * BENCH_IDLE_INSPECT=1: the server runs with its inspector open, and d also reads
 * `process.memoryUsage()` inside it after a forced full collection, before and after the
 * connections. BENCH_IDLE_SNAPSHOTS=DIR (implies it) writes a heap snapshot at both points,
 * `DIR/idle-0.heapsnapshot` and `DIR/idle-N.heapsnapshot` (bench/heap-diff.ts compares them);
 * a snapshot costs the server memory of its own, so the RSS growth of such a run is not d's.
 */
const snapshotDir = process.env.BENCH_IDLE_SNAPSHOTS || undefined;
/**
 * BENCH_IDLE_ALLOCATIONS=FILE (implies BENCH_IDLE_INSPECT): samples what the server allocates
 * while the clients connect and for the 3 s after, leaving out what scavenges freed (what is
 * left either lives on or waits for a full collection), writes the profile to FILE (DevTools'
 * `.heapprofile`) and notes the largest allocation sites per connection.
 */
const allocationsFile = process.env.BENCH_IDLE_ALLOCATIONS || undefined;
const inspect = process.env.BENCH_IDLE_INSPECT === '1' || snapshotDir !== undefined || allocationsFile !== undefined;
/** One sample per this many bytes allocated, on average. */
const SAMPLING_BYTES = 4096;

const MB = 1024 * 1024;

/** One line of memoryUsage() fields and their growth per connection. */
function usageNote(before: MemoryUsage, after: MemoryUsage, connections: number): string {
  const fields = ['rss', 'heapTotal', 'heapUsed', 'external', 'arrayBuffers'] as const;
  return fields
    .map((f) => {
      const delta = after[f] - before[f];
      return `${f} ${fmt(before[f] / MB, 1)} → ${fmt(after[f] / MB, 1)} MB (${fmt(delta / Math.max(1, connections))} B/conn)`;
    })
    .join(', ');
}

/** The growth of each kind of resident mapping, per connection. */
function mappingNote(before: RssByMapping, after: RssByMapping, connections: number): string {
  const kinds = ['mallocMain', 'mallocThreads', 'otherAnonymous', 'files'] as const;
  return kinds.map((k) => `${k} ${fmt(((after[k] - before[k]) * 1024) / Math.max(1, connections))} B/conn`).join(', ');
}

/** Returns the server RSS growth in MB for `config.idle` idle connections (NaN when not all connected). */
export async function idleScenario(report: Report, cleanups: Cleanups): Promise<number> {
  const server = await startGatehouseProcess(inspect ? { nodeArgs: [INSPECT_ARG] } : {});
  cleanups.add(() => server.stop());
  const pid = server.pid;
  const inspector = inspect ? await Inspector.attach(server, 'd', cleanups) : undefined;
  if (inspect && snapshotDir) mkdirSync(snapshotDir, { recursive: true });
  /** After a forced collection: memoryUsage() inside the server, and a heap snapshot if asked. */
  const probe = async (connections: number): Promise<{ usage: MemoryUsage; mappings: RssByMapping } | undefined> => {
    if (!inspector) return undefined;
    await inspector.collectGarbage();
    const usage = await inspector.memoryUsage();
    const mappings = rssByMapping(pid);
    if (snapshotDir) await inspector.heapSnapshot(path.join(snapshotDir, `idle-${connections}.heapsnapshot`));
    return { usage, mappings };
  };
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

  const usageBefore = await probe(0);
  const rssBeforeKb = rssKb(pid);
  const mappingsBefore = rssByMapping(pid);
  if (allocationsFile) await inspector?.startSampling(SAMPLING_BYTES, false);
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
  const mappingsAfter = rssByMapping(pid);
  const profile = allocationsFile ? await inspector?.stopSampling() : undefined;
  const usageAfter = await probe(connected);
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
  report.note(`d: the RSS growth by kind of mapping: ${mappingNote(mappingsBefore, mappingsAfter, connected)}`);
  if (usageBefore && usageAfter) {
    report.note(
      `d: after a forced full collection, memoryUsage() with 0 and ${fmt(connected)} connections: ` +
        usageNote(usageBefore.usage, usageAfter.usage, connected) +
        `; by kind of mapping: ${mappingNote(usageBefore.mappings, usageAfter.mappings, connected)}` +
        (snapshotDir ? `; heap snapshots in ${snapshotDir} (the first one inflated the RSS before)` : ''),
    );
  }
  if (profile && allocationsFile) {
    writeFileSync(allocationsFile, JSON.stringify(profile));
    const sampled = `allocated while connecting and idle, not freed by a scavenge (sampled, ${allocationsFile})`;
    for (const note of allocationNotes(profile, 'd', sampled, connected, 'connection')) report.note(note);
  }
  if (r.failures.length > 0) {
    report.note(`d: ${r.failures.length} connections failed, e.g. ${[...new Set(r.failures)].slice(0, 3).join(' | ')}`);
  }
  t = performance.now();
  await closeAll(r.clients);
  // A server waits at exit until its inspector's client is gone.
  inspector?.close();
  const stopStart = performance.now();
  const code = await server.stop();
  report.note(
    `d: ${fmt(connected)} clients disconnected in ${fmt((stopStart - t) / 1000, 1)} s; ` +
      `server stopped with SIGTERM: exit code ${code} after ${fmt(performance.now() - stopStart)} ms`,
  );
  return connected === ids.length && !r.aborted ? deltaKb / 1024 : Number.NaN;
}
