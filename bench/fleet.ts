/**
 * The fleet scenario: N peripherals behind G gateways (half bound to their gateway, half allowed
 * through any), each reporting once every P seconds, spread evenly over the period, for D
 * seconds, over one real MQTT.js connection per gateway at QoS 1, on a fresh server. It prints
 * PUBACK p50/p99 per minute (flat is the goal: the cost of a message must not grow with time or
 * with the fleet), server CPU per message, the server's RSS, and states stored against states
 * acknowledged. BENCH_FLEET_STORES picks the stores it runs on, one fresh server each: SQLite (the
 * default) and PostgreSQL (a database created for the run, as in s), where it also prints the CPU
 * PostgreSQL spent per message, minute by minute, and what the tables grew to.
 */
import { statSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { MqttClient } from 'mqtt';
import pg from 'pg';
import { createTestDatabase } from '../test/helpers/postgres.js';
import { TARGETS } from './config.js';
import { StateCounter } from './db.js';
import { startGatehouseProcess } from './gatehouse-process.js';
import { allocationNotes, INSPECT_ARG, Inspector } from './inspector.js';
import { closeAll, connect } from './load.js';
import { backgroundMeter, cpuMicros, statusKb, tryCpuMicros } from './proc.js';
import { type Cleanups, type Report, sleep } from './report.js';
import { createFleet, pool, Rest } from './rest.js';
import { commits, PostgresProcesses, reachable } from './scale.js';
import {
  type Histogram,
  histogramCount,
  histogramQuantile,
  histogramSince,
  parseHistogram,
  parseValue,
  readMetrics,
} from './server-histograms.js';
import { fmt, Latencies, textTable, verdict } from './stats.js';

const int = (name: string, fallback: number): number => {
  const n = Number(process.env[name]);
  return Number.isInteger(n) && n >= 0 && process.env[name] !== '' ? n : fallback;
};

export type FleetStore = 'sqlite' | 'postgres';

export const FLEET_STORE_TITLES: Record<FleetStore, string> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };

export const fleetConfig = {
  peripherals: int('BENCH_FLEET_PERIPHERALS', 100_000),
  gateways: int('BENCH_FLEET_GATEWAYS', 1_000),
  periodSeconds: int('BENCH_FLEET_PERIOD_S', 60),
  durationSeconds: int('BENCH_FLEET_DURATION_S', 180),
  /** BENCH_FLEET_STORES=sqlite,postgres: the stores the scenario runs on, in that order (default SQLite alone). */
  stores: [
    ...new Set(
      (process.env.BENCH_FLEET_STORES || 'sqlite')
        .split(',')
        .map((s) => s.trim())
        .filter((s): s is FleetStore => s === 'sqlite' || s === 'postgres'),
    ),
  ],
};

/**
 * BENCH_FLEET_ALLOCATIONS=FILE: the server runs with its inspector open and samples what it
 * allocates during the measured run, leaving out what scavenges freed: what is left lived long
 * enough to be promoted, and either lives on or waits for a full collection (the growth of the
 * old generation, hence of the RSS). The profile goes to FILE (DevTools' `.heapprofile`) and the
 * largest sites per message to the notes. The profiler costs the server CPU of its own.
 */
const allocationsFile = process.env.BENCH_FLEET_ALLOCATIONS || undefined;
const SAMPLING_BYTES = 4096;

export interface FleetMinute {
  minute: number;
  acked: number;
  p50: number;
  p99: number;
  /** PostgreSQL only (NaN otherwise): the server's and PostgreSQL's CPU in the minute ÷ the messages sent in it. */
  serverUs: number;
  pgUs: number;
}

export interface FleetOutcome {
  store: FleetStore;
  /** Why the scenario did not run on this store (PostgreSQL not reachable), else undefined. */
  skipped?: string;
  minutes: FleetMinute[];
  sent: number;
  acked: number;
  failed: number;
  stored: number;
  cpuUsPerMessage: number;
  /** PostgreSQL's backends of the run's database and its own processes, µs per message (NaN on SQLite). */
  pgUsPerMessage: number;
  rssMb: number;
  peakRssMb: number;
}

/** Counts the stored states of the run, in the server's SQLite file or its PostgreSQL database. */
interface Counter {
  count(): Promise<number>;
  close(): Promise<void>;
}

/**
 * PostgreSQL's CPU for the run so far, read whenever asked: the processes of the run's database
 * and the server's own, listed anew each time. A process first seen after the start counts whole,
 * one that ended keeps what it had used when last read.
 */
class PostgresCpu {
  private readonly first = new Map<number, number>();
  private readonly last = new Map<number, number>();

  private constructor(private readonly processes: PostgresProcesses) {}

  static async start(processes: PostgresProcesses): Promise<PostgresCpu> {
    const cpu = new PostgresCpu(processes);
    for (const pid of await processes.ours()) {
      const us = tryCpuMicros(pid);
      if (us !== undefined) cpu.first.set(pid, us);
    }
    return cpu;
  }

  async read(): Promise<number> {
    for (const pid of await this.processes.ours()) {
      const us = tryCpuMicros(pid);
      if (us === undefined) continue;
      if (!this.first.has(pid)) this.first.set(pid, 0);
      this.last.set(pid, us);
    }
    let total = 0;
    for (const [pid, us] of this.last) total += us - (this.first.get(pid) ?? 0);
    return total;
  }
}

/** The tables a state writes: their size with indexes, dead row versions, HOT updates, vacuums. */
const STATE_TABLES = ['device_states', 'devices', 'composite_state', 'state_rollups', 'peripheral_gateways'];

async function noteTables(client: pg.Client, report: Report, label: string): Promise<void> {
  const { rows } = await client.query<{
    name: string;
    heap: string;
    indexes: string;
    live: string;
    dead: string;
    upd: string;
    hot: string;
    vacuums: string;
  }>(
    `WITH t AS (
       SELECT CASE WHEN c.relname LIKE 'device_states_d%' THEN 'device_states' ELSE c.relname END AS name, s.*,
         pg_relation_size(c.oid) AS heap, pg_indexes_size(c.oid) AS indexes
       FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
     )
     SELECT name, sum(heap) AS heap, sum(indexes) AS indexes, sum(n_live_tup) AS live, sum(n_dead_tup) AS dead,
       sum(n_tup_upd) AS upd, sum(n_tup_hot_upd) AS hot, sum(autovacuum_count + vacuum_count) AS vacuums
     FROM t WHERE name = ANY($1::text[]) GROUP BY name ORDER BY name`,
    [STATE_TABLES],
  );
  const { rows: settings } = await client.query<{ autovacuum: string; shared: string }>(
    `SELECT current_setting('autovacuum') AS autovacuum, current_setting('shared_buffers') AS shared`,
  );
  const mb = (n: string) => fmt(Number(n) / 2 ** 20, 1);
  const parts = rows.map((r) => {
    const upd = Number(r.upd);
    return (
      `${r.name} ${mb(r.heap)} + ${mb(r.indexes)} MB (table + indexes), ${fmt(Number(r.live))} live, ` +
      `${fmt(Number(r.dead))} dead, ${upd > 0 ? `HOT ${fmt((100 * Number(r.hot)) / upd)}% of ${fmt(upd)} updates, ` : ''}` +
      `${fmt(Number(r.vacuums))} vacuums`
    );
  });
  report.note(
    `${label}: at the end (pg_stat_user_tables; autovacuum ${settings[0]?.autovacuum}, ` +
      `shared_buffers ${settings[0]?.shared}): ${parts.join('; ')}`,
  );
}

const skippedOutcome = (store: FleetStore, reason: string): FleetOutcome => ({
  store,
  skipped: reason,
  minutes: [],
  sent: 0,
  acked: 0,
  failed: 0,
  stored: 0,
  cpuUsPerMessage: Number.NaN,
  pgUsPerMessage: Number.NaN,
  rssMb: Number.NaN,
  peakRssMb: Number.NaN,
});

export async function fleetScenario(
  report: Report,
  cleanups: Cleanups,
  store: FleetStore = 'sqlite',
): Promise<FleetOutcome> {
  const { peripherals, gateways, periodSeconds, durationSeconds } = fleetConfig;
  const perGateway = Math.max(1, Math.floor(peripherals / gateways));
  const label = store === 'sqlite' ? 'fleet' : `fleet.${store}`;
  const serveArgs = ['--log-level', 'warn'];
  let postgres: { url: string; client: pg.Client; processes: PostgresProcesses; done: () => Promise<void> } | undefined;
  if (store === 'postgres') {
    const missing = (await reachable()).pg;
    if (missing) return skippedOutcome(store, missing);
    const db = await createTestDatabase();
    serveArgs.push('--database-url', db.url);
    const client = new pg.Client({ connectionString: db.url });
    client.on('error', () => {}); // the database is dropped under it if the run fails
    const processes = await PostgresProcesses.open(db.name);
    let done: Promise<void> | undefined;
    // Once, whichever comes first: the end of the scenario or the clean-up of a failed run (after the server stopped).
    const finish = () => {
      done ??= processes
        .close()
        .catch(() => {})
        .then(() => db.drop());
      return done;
    };
    cleanups.add(finish);
    postgres = { url: db.url, client, processes, done: finish };
  }
  const server = await startGatehouseProcess({
    serveArgs,
    ...(allocationsFile ? { nodeArgs: [INSPECT_ARG] } : {}),
  });
  cleanups.add(() => server.stop());
  const inspector = allocationsFile ? await Inspector.attach(server, 'fleet', cleanups) : undefined;
  const rest = new Rest(server.httpUrl, server.adminToken);
  const setup = performance.now();
  const fleet = await createFleet(rest, gateways, perGateway, 32);
  const clients: MqttClient[] = await pool(fleet.gateways.length, 100, (g) =>
    connect(server.mqttUrl, { clientId: fleet.gateways[g]?.id as string, username: fleet.key, password: fleet.secret }),
  );
  cleanups.add(() => closeAll(clients));
  const total = fleet.gateways.length * perGateway;
  report.note(
    `${label}: ${fmt(total)} peripherals behind ${fmt(gateways)} gateways set up and connected in ` +
      `${fmt((performance.now() - setup) / 1000, 1)} s; each reports every ${periodSeconds} s for ${durationSeconds} s ` +
      `(${fmt(total / periodSeconds)} states/s)`,
  );
  let counter: Counter;
  if (postgres) {
    const client = postgres.client;
    await client.connect();
    counter = {
      count: async () =>
        Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM device_states')).rows[0]?.n ?? 0),
      close: () => client.end(),
    };
  } else {
    const file = new StateCounter(server.dbFile);
    counter = { count: async () => file.count(), close: async () => file.close() };
  }
  const storedBefore = await counter.count();
  const pgCpu = postgres ? await PostgresCpu.start(postgres.processes) : undefined;
  const pgPids = postgres ? await postgres.processes.ours() : [];
  const commits0 = postgres ? await commits(server) : undefined;
  // Read once before the load: the server's event-loop figures cover what follows (prom-client
  // resets its delay histogram at each read).
  const metrics0 = await readMetrics(server.httpUrl);
  // The generator's own stalls delay the sends and the PUBACKs it times, as the server's do.
  const generatorLoop = monitorEventLoopDelay({ resolution: 5 });
  generatorLoop.enable();
  await inspector?.startSampling(SAMPLING_BYTES, false);
  const cpu0 = cpuMicros(server.pid);
  const bg = backgroundMeter([server.pid, ...pgPids]);
  const perMinute: Latencies[] = [];
  // PostgreSQL only: the server's and PostgreSQL's CPU at each minute's end, and the messages sent in each minute.
  const minuteCpu: Array<Promise<{ server: number; pg: number }>> = [];
  const sentBy: number[] = [];
  const readCpu = async (server0: number) => ({
    server: cpuMicros(server.pid) - server0,
    pg: pgCpu ? await pgCpu.read() : Number.NaN,
  });
  const lastTime = new Float64Array(total);
  let sent = 0;
  let acked = 0;
  let failed = 0;
  const pending = new Set<Promise<void>>();
  const start = performance.now();
  const periodMs = periodSeconds * 1000;
  const durationMs = durationSeconds * 1000;
  const lastMinute = Math.max(0, Math.ceil(durationSeconds / 60) - 1);
  // Peripheral k reports at k/total of each period; a 10 ms tick sends everything now due.
  await new Promise<void>((resolve) => {
    let tick = 0;
    const step = () => {
      const elapsed = performance.now() - start;
      const end = elapsed >= durationMs;
      const due = Math.floor(((end ? durationMs : elapsed) / periodMs) * total);
      while (sent < due) {
        const k = sent % total;
        const g = Math.floor(k / perGateway);
        const peripheral = fleet.gateways[g]?.peripherals[k % perGateway] as string;
        const time = Math.max(Date.now(), (lastTime[k] ?? 0) + 1);
        lastTime[k] = time;
        const payload = `{"data":{"temperature":${(200 + (sent % 100)) / 10},"seq":${sent}},"time":${time}}`;
        const t0 = performance.now();
        // The last tick sends at exactly the duration: it belongs to the last minute, not a new one.
        const minute = Math.min(Math.floor((t0 - start) / 60_000), lastMinute);
        if (pgCpu && minute > minuteCpu.length) minuteCpu.push(readCpu(cpu0));
        sentBy[minute] = (sentBy[minute] ?? 0) + 1;
        sent++;
        const p = (clients[g] as MqttClient).publishAsync(`losant/${peripheral}/state`, payload, { qos: 1 }).then(
          () => {
            acked++;
            let l = perMinute[minute];
            if (!l) {
              l = new Latencies();
              perMinute[minute] = l;
            }
            l.add(performance.now() - t0);
          },
          () => {
            failed++;
          },
        );
        pending.add(p);
        void p.finally(() => pending.delete(p));
      }
      if (end) {
        resolve();
        return;
      }
      tick++;
      setTimeout(step, Math.max(0, start + tick * 10 - performance.now()));
    };
    step();
  });
  await Promise.race([Promise.allSettled([...pending]), sleep(30_000)]);
  const cpuUs = cpuMicros(server.pid) - cpu0;
  generatorLoop.disable();
  for (const note of spanNotes(label, metrics0, await readMetrics(server.httpUrl))) report.note(note);
  const wal = fileMb(`${server.dbFile}-wal`);
  if (store === 'sqlite' && wal !== undefined)
    report.note(`${label}: the SQLite log (WAL) file is ${fmt(wal, 1)} MB at the end`);
  report.note(
    `${label}: the load generator's event loop (one process, ${fmt(clients.length)} clients): ` +
      `delay p50 ${fmt(generatorLoop.percentile(50) / 1e6, 1)} ms, p99 ${fmt(generatorLoop.percentile(99) / 1e6, 1)} ms, ` +
      `max ${fmt(generatorLoop.max / 1e6, 1)} ms`,
  );
  const profile = await inspector?.stopSampling();
  if (profile && allocationsFile) {
    // One file per store: FILE for SQLite, FILE.postgres for PostgreSQL.
    const file = store === 'sqlite' ? allocationsFile : `${allocationsFile}.${store}`;
    writeFileSync(file, JSON.stringify(profile));
    const sampled = `allocated during the run and not freed by a scavenge (sampled, ${file})`;
    for (const note of allocationNotes(profile, label, sampled, acked, 'message')) report.note(note);
  }
  if (pgCpu) minuteCpu.push(readCpu(cpu0));
  const cpuAtMinutes = await Promise.all(minuteCpu);
  const pgUs = cpuAtMinutes.at(-1)?.pg ?? Number.NaN;
  report.background.push([label, bg()]);
  if (commits0) {
    const c = await commits(server);
    const n = Math.max(1, c.count - commits0.count);
    report.note(
      `${label}: ${fmt(c.count - commits0.count)} group commits of ${fmt((c.writes - commits0.writes) / n, 1)} writes ` +
        `on average, ${fmt(((c.seconds - commits0.seconds) * 1000) / n, 2)} ms each`,
    );
  }
  await sleep(500);
  const stored = (await counter.count()) - storedBefore;
  await counter.close();
  const rssKb = statusKb(server.pid, 'VmRSS');
  const peakRssKb = statusKb(server.pid, 'VmHWM');
  await closeAll(clients);
  inspector?.close();
  await server.stop();
  if (postgres) {
    // After the server stopped: its backends have flushed their statistics.
    await sleep(500);
    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    try {
      await noteTables(client, report, label);
    } finally {
      await client.end();
    }
    await postgres.done();
  }
  return {
    store,
    minutes: perMinute.map((l, minute) => {
      const cpu = cpuAtMinutes[minute];
      const prev = cpuAtMinutes[minute - 1] ?? { server: 0, pg: 0 };
      const n = Math.max(1, sentBy[minute] ?? 0);
      return {
        minute: minute + 1,
        acked: l?.count ?? 0,
        p50: l?.percentile(50) ?? Number.NaN,
        p99: l?.percentile(99) ?? Number.NaN,
        serverUs: cpu ? (cpu.server - prev.server) / n : Number.NaN,
        pgUs: cpu ? (cpu.pg - prev.pg) / n : Number.NaN,
      };
    }),
    sent,
    acked,
    failed,
    stored,
    cpuUsPerMessage: cpuUs / Math.max(1, acked),
    pgUsPerMessage: pgUs / Math.max(1, acked),
    rssMb: rssKb / 1024,
    peakRssMb: peakRssKb / 1024,
  };
}

const fileMb = (file: string): number | undefined => {
  try {
    return statSync(file).size / 1024 / 1024;
  } catch {
    return undefined;
  }
};

const PUBACK_SPAN = 'gatehouse_mqtt_puback_seconds';
const COMMIT_SPAN = 'gatehouse_group_commit_duration_seconds';
const GC_PAUSES = 'nodejs_gc_duration_seconds';

/**
 * The server's own spans over the run, from its /metrics read before and after: the broker's (a
 * publish reaching it to its PUBACK written), the group commits', the event loop's delay and the
 * garbage collector's pauses. What the generator measures beyond the first is sockets and the
 * generator itself.
 */
function spanNotes(label: string, before: string, after: string): string[] {
  if (after === '') return [`${label}: the server's /metrics could not be read; no server-side spans`];
  const ms = (h: Histogram, q: number) => fmt(histogramQuantile(h, q) * 1000, 1);
  const since = (name: string, labels?: string) => {
    const h = parseHistogram(after, name, labels);
    return h && histogramSince(h, parseHistogram(before, name, labels));
  };
  const notes: string[] = [];
  const puback = since(PUBACK_SPAN);
  if (puback) {
    notes.push(
      `${label}: the server's span from a publish reaching the broker to its PUBACK written (${fmt(histogramCount(puback))} ` +
        `publishes, estimated within /metrics buckets): p50 ${ms(puback, 0.5)} ms, p99 ${ms(puback, 0.99)} ms, ` +
        `p99.9 ${ms(puback, 0.999)} ms`,
    );
  }
  const commit = since(COMMIT_SPAN);
  if (commit) {
    const n = histogramCount(commit);
    notes.push(
      `${label}: ${fmt(n)} group commits, mean ${fmt((commit.sum * 1000) / Math.max(1, n), 2)} ms, ` +
        `p99 ${ms(commit, 0.99)} ms, p99.9 ${ms(commit, 0.999)} ms (estimated within /metrics buckets)`,
    );
  }
  const pauses = ['minor', 'major', 'incremental']
    .map((kind) => {
      const gc = since(GC_PAUSES, `kind="${kind}"`);
      if (!gc) return undefined;
      const longest = gc.bounds.find((_, i) => gc.cumulative[i] === histogramCount(gc));
      const bound = longest === undefined ? `over ${fmt((gc.bounds.at(-1) ?? 0) * 1000)}` : `≤ ${fmt(longest * 1000)}`;
      return `${kind} ${fmt(histogramCount(gc))} (${fmt(gc.sum * 1000)} ms in all, longest ${bound} ms)`;
    })
    .filter((p) => p !== undefined);
  const loopP99 = parseValue(after, 'nodejs_eventloop_lag_p99_seconds') * 1000;
  const loopMax = parseValue(after, 'nodejs_eventloop_lag_max_seconds') * 1000;
  notes.push(
    `${label}: the server's event loop: delay p99 ${fmt(loopP99, 1)} ms, max ${fmt(loopMax, 1)} ms; ` +
      `garbage collections: ${pauses.join(', ')}`,
  );
  return notes;
}

export function fleetTable(o: FleetOutcome): string {
  if (o.skipped) return `SKIPPED: ${o.skipped}`;
  const pg = o.store === 'postgres';
  const head = ['minute', 'acknowledged', 'PUBACK p50 ms', 'PUBACK p99 ms'];
  if (pg) head.push('server CPU µs/msg', 'PostgreSQL µs/msg');
  const lines = o.minutes.map((m) => {
    const line = [String(m.minute), fmt(m.acked), fmt(m.p50, 2), fmt(m.p99, 2)];
    if (pg) line.push(fmt(m.serverUs, 1), fmt(m.pgUs, 1));
    return line;
  });
  return [
    textTable(head, lines),
    '',
    `sent ${fmt(o.sent)}, acknowledged ${fmt(o.acked)}, failed ${fmt(o.failed)}, stored ${fmt(o.stored)}; ` +
      `server CPU ${fmt(o.cpuUsPerMessage, 1)} µs per message` +
      (pg ? `, PostgreSQL ${fmt(o.pgUsPerMessage, 1)} µs per message` : '') +
      `; RSS ${fmt(o.rssMb, 1)} MB at the end, ${fmt(o.peakRssMb, 1)} MB at most`,
  ].join('\n');
}

/**
 * The fleet scenario's verdicts. A run in which some states were never acknowledged passes none
 * of the latency targets: its percentiles describe only the states that got through.
 */
export function fleetTargets(o: FleetOutcome, smallFleetCpuUs: number | undefined): string[] {
  const name = o.store === 'sqlite' ? 'fleet' : `fleet on ${FLEET_STORE_TITLES[o.store]}`;
  if (o.skipped) return [`  ${verdict(undefined)}  ${name}: skipped (${o.skipped})`];
  const small = o.store === 'sqlite' ? "the small fleet's (b)" : "the small fleet's on one PostgreSQL node (s, b)";
  const first = o.minutes[0]?.p99 ?? Number.NaN;
  const last = o.minutes.at(-1)?.p99 ?? Number.NaN;
  const worst = Math.max(...o.minutes.map((m) => m.p99));
  const complete = o.minutes.length > 0 && o.acked > 0 && o.acked === o.sent;
  const lost = complete ? '' : ` (${fmt(o.acked)} of ${fmt(o.sent)} states acknowledged)`;
  const lines = [
    `  ${verdict(complete && worst < TARGETS.fleetP99Ms)}  ${name}: PUBACK p99 < ${TARGETS.fleetP99Ms} ms every minute: ` +
      `${fmt(worst, 2)} ms at worst${lost}`,
    `  ${verdict(complete && last <= first * (1 + TARGETS.fleetP99Drift))}  ${name}: last minute's p99 within ` +
      `${TARGETS.fleetP99Drift * 100}% of the first's: ${fmt(first, 2)} → ${fmt(last, 2)} ms`,
    `  ${verdict(o.peakRssMb < TARGETS.fleetRssMb)}  ${name}: server RSS < ${TARGETS.fleetRssMb} MB: ${fmt(o.peakRssMb, 1)} MB at most`,
    `  ${verdict(o.acked > 0 && o.stored === o.acked)}  ${name}: every acknowledged state stored: ` +
      `${fmt(o.stored)} stored, ${fmt(o.acked)} acknowledged`,
  ];
  lines.push(
    `  ${verdict(smallFleetCpuUs === undefined ? undefined : o.cpuUsPerMessage <= TARGETS.fleetCpuRatio * smallFleetCpuUs)}  ` +
      `${name}: CPU per message <= ${TARGETS.fleetCpuRatio}× ${small}: ${fmt(o.cpuUsPerMessage, 1)} µs` +
      (smallFleetCpuUs === undefined
        ? ` (${o.store === 'sqlite' ? 'b' : 's'} not run)`
        : ` vs ${fmt(smallFleetCpuUs, 1)} µs`),
  );
  return lines;
}
