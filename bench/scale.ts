/**
 * Scenario s, scale-out: scenarios b (QoS 1 saturation) and c (QoS 1 at a fixed rate) on three
 * set-ups, each fresh: one node with SQLite, one node with PostgreSQL, and two nodes sharing one
 * PostgreSQL database and Redis (under a key prefix unique to the run) with half the gateways
 * connected to each. For each window: stored states/s (counted in the database), PUBACK
 * p50/p99, the CPU each node spent per message, and the CPU PostgreSQL (the backends of the
 * run's database and the server's own processes) and Redis spent per message, read from /proc
 * before and after the window. The set-ups needing PostgreSQL or Redis are skipped, with the
 * reason printed, when they cannot be reached. See docs/benchmarks.md and docs/scale-out.md.
 */
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { ADMIN_DATABASE_URL, createTestDatabase, type TestDatabase } from '../test/helpers/postgres.js';
import { config, deadline } from './config.js';
import { StateCounter } from './db.js';
import { type GatehouseProcess, startGatehouseProcess } from './gatehouse-process.js';
import { closeAll, type LoadResult, type Publisher, qos1FixedRate, qos1Window } from './load.js';
import { backgroundMeter, cpuMicros, groupCpuMeter, tryCpuMicros } from './proc.js';
import { type Cleanups, clientMeter, type Report, sleep, waitForQuiet } from './report.js';
import { createFleet, Rest } from './rest.js';
import { connectPublishers } from './scenarios.js';
import { parseValue, readMetrics } from './server-histograms.js';
import { fmt, textTable, verdict } from './stats.js';

/** The local Redis of the multi-node tests unless GATEHOUSE_TEST_REDIS_URL names another. */
const REDIS_URL = process.env.GATEHOUSE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** A limit no peripheral of the bench reaches: each message is counted, none refused. */
const RATE_LIMIT_ON = { messages: 1_000_000, windowSeconds: 1 };

export type SetupName = 'sqlite' | 'pg' | 'pg2';

export const scaleConfig = {
  /** BENCH_SCALE=0 leaves the scenario out of the full run. */
  enabled: process.env.BENCH_SCALE !== '0',
  /** BENCH_SCALE_SETUPS=pg,pg2 runs some of the set-ups (for before/after comparisons). */
  setups: (process.env.BENCH_SCALE_SETUPS ?? 'sqlite,pg,pg2')
    .split(',')
    .map((s) => s.trim())
    .filter((s): s is SetupName => s === 'sqlite' || s === 'pg' || s === 'pg2'),
  /** BENCH_SCALE_ROUNDS: each set-up this many times, in alternating order; each row is the median round. */
  rounds: Math.max(1, Number(process.env.BENCH_SCALE_ROUNDS ?? 1) || 1),
};

const TITLES: Record<SetupName, string> = {
  sqlite: '1 node, SQLite',
  pg: '1 node, PostgreSQL',
  pg2: '2 nodes, PostgreSQL + Redis',
};

/** b and c as in a–c; r is b again with the application's rate limit on (high enough to refuse nothing). */
export type ScaleScenario = 'b' | 'c' | 'r';

export interface ScaleRow {
  setup: SetupName;
  scenario: ScaleScenario;
  nodes: number;
  acked: number;
  /** b: states counted in the database ÷ time to the last PUBACK; c: the offered rate achieved. */
  storedPerSecond: number;
  p50: number;
  p99: number;
  /** Each node's CPU ÷ the messages its own gateways sent. */
  nodeUsOwn: number[];
  /** All nodes' CPU ÷ all messages. */
  nodesUs: number;
  /** NaN when not measured (no PostgreSQL in the set-up, or not readable in /proc). */
  pgUs: number;
  redisUs: number;
  /** Redis's CPU in the window, ms: /proc counts in ticks of 10 ms, so a few ticks say little. */
  redisMs: number;
  /** The load generator (this process). */
  clientUs: number;
  /** CPUs other processes kept busy (other helpers, PostgreSQL's other clients), on average. */
  otherCpus: number;
  /** CPU of backends of other databases on the same PostgreSQL server, µs per message of ours. */
  pgOthersUs: number;
  aborted: boolean;
}

/** What the set-ups need and whether it is here: a reason to skip, or undefined. */
export async function reachable(): Promise<{ pg?: string; redis?: string }> {
  const out: { pg?: string; redis?: string } = {};
  const client = new pg.Client({ connectionString: ADMIN_DATABASE_URL, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (err) {
    out.pg = `PostgreSQL at ${redact(ADMIN_DATABASE_URL)} cannot be reached (${(err as Error).message}); set GATEHOUSE_TEST_DATABASE_URL`;
  } finally {
    await client.end().catch(() => {});
  }
  const redis = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 3_000,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    out.redis = `Redis at ${redact(REDIS_URL)} cannot be reached (${(err as Error).message}); set GATEHOUSE_TEST_REDIS_URL`;
  } finally {
    redis.disconnect();
  }
  return out;
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured URL';
  }
}

/** The processes of one PostgreSQL server: those serving one database and the server's own, and the rest. */
export class PostgresProcesses {
  private constructor(
    private readonly admin: pg.Client,
    private readonly database: string,
  ) {}

  static async open(database: string): Promise<PostgresProcesses> {
    const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
    await admin.connect();
    return new PostgresProcesses(admin, database);
  }

  /** Backends of the database, and the server's processes of no database (checkpointer, WAL writer, ...). */
  async ours(): Promise<number[]> {
    const { rows } = await this.admin.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE (datname = $1 OR datname IS NULL) AND pid <> pg_backend_pid()',
      [this.database],
    );
    return rows.map((r) => r.pid);
  }

  /** Backends of every other database: other clients of the same server. */
  async others(): Promise<number[]> {
    const { rows } = await this.admin.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE datname IS NOT NULL AND datname <> $1 AND pid <> pg_backend_pid()',
      [this.database],
    );
    return rows.map((r) => r.pid);
  }

  close(): Promise<void> {
    return this.admin.end();
  }
}

interface Setup {
  name: SetupName;
  nodes: GatehouseProcess[];
  count(): Promise<number>;
  postgres?: PostgresProcesses;
  redisPid?: number;
}

/** Starts a set-up's nodes (one after another, as nodes sharing Redis do) and its state counter. */
async function startSetup(
  name: SetupName,
  cleanups: Cleanups,
  report: Report,
): Promise<{ setup: Setup; stop: () => Promise<void> }> {
  const stops: Array<() => Promise<unknown>> = [];
  const stop = async () => {
    while (stops.length > 0)
      await stops
        .pop()?.()
        .catch((err: unknown) => report.note(`s: ${(err as Error).message}`));
  };
  cleanups.add(stop);
  try {
    if (name === 'sqlite') {
      const node = await startGatehouseProcess();
      stops.push(() => node.stop());
      const counter = new StateCounter(node.dbFile);
      stops.push(async () => counter.close());
      return { setup: { name, nodes: [node], count: async () => counter.count() }, stop };
    }
    const db: TestDatabase = await createTestDatabase();
    stops.push(() => db.drop());
    // Runs after the nodes stopped (stops run last first), when their backends' counters are flushed.
    stops.push(() => noteUpdates(db.url, name, report));
    const args = ['--database-url', db.url];
    let redisPid: number | undefined;
    if (name === 'pg2') {
      const prefix = `gatehouse-bench-${randomBytes(4).toString('hex')}:`;
      args.push('--redis-url', REDIS_URL, '--redis-prefix', prefix);
      const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
      redis.on('error', () => {});
      stops.push(async () => {
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length > 0) await redis.del(...keys);
        redis.disconnect();
      });
      // Redis says which process it is; /proc has it only when Redis runs on this machine.
      const info = await redis.info('server');
      const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1]);
      if (Number.isInteger(pid) && tryCpuMicros(pid) !== undefined) redisPid = pid;
      else
        report.note(
          's: Redis does not run on this machine (or its /proc entry is unreadable): its CPU is not measured',
        );
    }
    const nodes: GatehouseProcess[] = [];
    for (let i = 0; i < (name === 'pg2' ? 2 : 1); i++) {
      const node = await startGatehouseProcess({ serveArgs: args });
      stops.push(() => node.stop());
      nodes.push(node);
    }
    const counter = new pg.Client({ connectionString: db.url });
    await counter.connect();
    stops.push(() => counter.end());
    const postgres = await PostgresProcesses.open(db.name);
    stops.push(() => postgres.close());
    const count = async () =>
      Number((await counter.query<{ n: string }>('SELECT count(*) AS n FROM device_states')).rows[0]?.n ?? 0);
    return { setup: { name, nodes, count, postgres, ...(redisPid !== undefined ? { redisPid } : {}) }, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** The tables a state updates in place: how many updates each got, and how many of them were HOT. */
const UPDATED_TABLES = ['devices', 'composite_state', 'state_rollups', 'peripheral_gateways'];

/**
 * Notes each updated table's row updates and how many were heap-only (HOT: no new index entries),
 * over the whole set-up (warm-up and every window), from pg_stat_user_tables.
 */
async function noteUpdates(url: string, name: SetupName, report: Report): Promise<void> {
  await sleep(500); // the nodes' backends flush their counters as they exit
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ relname: string; upd: string; hot: string }>(
      `SELECT relname, n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables
       WHERE relname = ANY($1::text[]) ORDER BY relname`,
      [UPDATED_TABLES],
    );
    const parts = rows.map((r) => {
      const upd = Number(r.upd);
      const hot = Number(r.hot);
      return `${r.relname} ${fmt(hot)} of ${fmt(upd)}${upd > 0 ? ` (${fmt((100 * hot) / upd)}%)` : ''}`;
    });
    report.note(`s.${name}: HOT updates over the set-up (pg_stat_user_tables): ${parts.join(', ')}`);
  } finally {
    await client.end();
  }
}

export interface Commits {
  count: number;
  writes: number;
  seconds: number;
}

/** A node's group commits so far, from its metrics (docs/operations.md); zeros when unreachable. */
export async function commits(node: Pick<GatehouseProcess, 'httpUrl'>): Promise<Commits> {
  const text = await readMetrics(node.httpUrl);
  const value = (name: string) => {
    const v = parseValue(text, `gatehouse_${name}`);
    return Number.isNaN(v) ? 0 : v;
  };
  return {
    count: value('group_commit_batch_size_count'),
    writes: value('group_commit_batch_size_sum'),
    seconds: value('group_commit_duration_seconds_sum'),
  };
}

/** One measured window: the load, then what every process of the set-up spent on it. */
async function measure(
  setup: Setup,
  scenario: ScaleScenario,
  publishersPerNode: Publisher[][],
  report: Report,
  round: string,
): Promise<ScaleRow> {
  const label = `s.${setup.name}.${scenario}${round}`;
  const nodePids = setup.nodes.map((n) => n.pid);
  const pgPids = setup.postgres ? await setup.postgres.ours() : [];
  const redisPids = setup.redisPid === undefined ? [] : [setup.redisPid];
  await waitForQuiet(report, label, [...nodePids, ...pgPids, ...redisPids]);
  const all = publishersPerNode.flat();
  const before = await setup.count();
  const commits0 = await Promise.all(setup.nodes.map(commits));
  const node0 = nodePids.map((pid) => cpuMicros(pid));
  const pgMeter = setup.postgres ? await groupCpuMeter(() => (setup.postgres as PostgresProcesses).ours()) : undefined;
  const othersMeter = setup.postgres
    ? await groupCpuMeter(() => (setup.postgres as PostgresProcesses).others())
    : undefined;
  const redis0 = setup.redisPid === undefined ? undefined : tryCpuMicros(setup.redisPid);
  const client = clientMeter();
  const bg = backgroundMeter([...nodePids, ...pgPids, ...redisPids]);
  let r: LoadResult;
  let storedPerSecond: number;
  if (scenario !== 'c') {
    r = await qos1Window(all, config.qos1Total, config.window, deadline());
  } else {
    r = await qos1FixedRate(all, config.fixedRate, config.fixedMs, deadline());
  }
  const nodeUs = nodePids.map((pid, i) => cpuMicros(pid) - (node0[i] ?? 0));
  const pgUs = pgMeter ? await pgMeter() : Number.NaN;
  const othersUs = othersMeter ? await othersMeter() : Number.NaN;
  const redisUs =
    setup.redisPid === undefined || redis0 === undefined
      ? Number.NaN
      : (tryCpuMicros(setup.redisPid) ?? Number.NaN) - redis0;
  const clientUs = client();
  const otherCpus = bg();
  report.background.push([label, otherCpus]);
  const stored = (await setup.count()) - before;
  const groupCommits = (await Promise.all(setup.nodes.map(commits))).map((c, i) => {
    const c0 = commits0[i] as Commits;
    const n = Math.max(1, c.count - c0.count);
    return `${fmt(c.count - c0.count)} of ${fmt((c.writes - c0.writes) / n)} writes, ${fmt(((c.seconds - c0.seconds) * 1000) / n, 1)} ms`;
  });
  if (scenario !== 'c') {
    storedPerSecond = stored / (r.elapsedMs / 1000);
    if (stored < r.done) {
      report.note(`${label}: DURABILITY: ${fmt(r.done - stored)} states were acknowledged but are not stored`);
    }
  } else {
    storedPerSecond = r.done / (config.fixedMs / 1000);
  }
  const done = Math.max(1, r.done);
  // Publishers are given equal shares, so a node handles its share of the gateways' messages.
  const nodeUsOwn = nodeUs.map((us, i) => us / Math.max(1, (done * (publishersPerNode[i]?.length ?? 0)) / all.length));
  report.note(
    `${label}: ${fmt(r.done)} acknowledged in ${fmt(r.elapsedMs)} ms, ${fmt(stored)} rows stored` +
      `${r.failed ? `, ${r.failed} failed` : ''}; node CPU ${nodeUs.map((us) => `${fmt(us / 1000)} ms`).join(' + ')}` +
      (Number.isNaN(pgUs) ? '' : `, PostgreSQL ${fmt(pgUs / 1000)} ms`) +
      (Number.isNaN(redisUs) ? '' : `, Redis ${fmt(redisUs / 1000)} ms`) +
      (Number.isNaN(othersUs) ? '' : `; PostgreSQL's other clients' backends ${fmt(othersUs / 1000)} ms`) +
      `; group commits (count, mean size and time) ${groupCommits.join(' / ')}` +
      `; load generator ${fmt(clientUs / done, 1)} µs/msg`,
  );
  return {
    setup: setup.name,
    scenario,
    nodes: nodePids.length,
    acked: r.done,
    storedPerSecond,
    p50: r.latencies.percentile(50),
    p99: r.latencies.percentile(99),
    nodeUsOwn,
    nodesUs: nodeUs.reduce((a, b) => a + b, 0) / done,
    pgUs: pgUs / done,
    redisUs: redisUs / done,
    redisMs: redisUs / 1000,
    clientUs: clientUs / done,
    otherCpus,
    pgOthersUs: othersUs / done,
    aborted: r.aborted,
  };
}

async function runSetup(name: SetupName, report: Report, cleanups: Cleanups, round: string): Promise<ScaleRow[]> {
  const { setup, stop } = await startSetup(name, cleanups, report);
  try {
    const first = setup.nodes[0] as GatehouseProcess;
    const rest = new Rest(first.httpUrl, first.adminToken);
    const fleet = await createFleet(rest, config.gateways, config.perGateway, config.restConcurrency);
    // The gateways split evenly over the nodes, as a load balancer would spread them.
    const per = Math.ceil(fleet.gateways.length / setup.nodes.length);
    const publishersPerNode: Publisher[][] = [];
    for (const [i, node] of setup.nodes.entries()) {
      const gateways = fleet.gateways.slice(i * per, (i + 1) * per);
      publishersPerNode.push(await connectPublishers(node.mqttUrl, { ...fleet, gateways }, true, cleanups));
    }
    // Each node gets the warm-up one node gets: its JIT has to compile the hot path just the same.
    const warm = await qos1Window(
      publishersPerNode.flat(),
      config.warmup * setup.nodes.length,
      config.window,
      deadline(),
    );
    report.note(
      `s.${name}${round}: warm-up ${fmt(warm.done)} QoS 1 publishes in ${fmt(warm.elapsedMs)} ms, not measured`,
    );
    await sleep(500);
    const rows = [await measure(setup, 'b', publishersPerNode, report, round)];
    await sleep(1_000);
    rows.push(await measure(setup, 'c', publishersPerNode, report, round));
    if (name !== 'sqlite') {
      // Every message counted against its peripheral's limit: in Redis with two nodes, in memory with one.
      await rest.patch(`/applications/${fleet.applicationId}`, { rateLimit: RATE_LIMIT_ON });
      await sleep(1_500);
      rows.push(await measure(setup, 'r', publishersPerNode, report, round));
    }
    await closeAll(publishersPerNode.flat().map((p) => p.client));
    return rows;
  } catch (err) {
    for (const node of setup.nodes) {
      console.error(`node ${node.pid}, last lines:\n${node.output().split('\n').slice(-20).join('\n')}`);
    }
    throw err;
  } finally {
    await stop();
  }
}

export interface ScaleOutcome {
  rows: ScaleRow[];
  skipped: Array<[SetupName, string]>;
  /** Per round: one PostgreSQL node's stored/s ÷ the SQLite node's, two nodes' CPU per message ÷ one's (b). */
  ratios: { stored: number[]; cpu: number[] };
}

export async function scaleScenario(report: Report, cleanups: Cleanups): Promise<ScaleOutcome> {
  const wanted = scaleConfig.setups;
  const missing = wanted.some((s) => s !== 'sqlite') ? await reachable() : {};
  const skipped: Array<[SetupName, string]> = [];
  const runnable: SetupName[] = [];
  for (const name of wanted) {
    const reason = name === 'sqlite' ? undefined : (missing.pg ?? (name === 'pg2' ? missing.redis : undefined));
    if (reason) skipped.push([name, reason]);
    else runnable.push(name);
  }
  // Rounds alternate their order (sqlite, pg, pg2, then pg2, pg, sqlite, ...), as in w.
  const rounds: ScaleRow[][] = [];
  for (let round = 0; round < scaleConfig.rounds; round++) {
    const order = round % 2 === 0 ? runnable : [...runnable].reverse();
    const rows: ScaleRow[] = [];
    for (const name of order) {
      rows.push(...(await runSetup(name, report, cleanups, scaleConfig.rounds > 1 ? `.${round + 1}` : '')));
      await sleep(1_000);
    }
    rounds.push(rows);
  }
  // The targets' ratios are taken within a round (the same minutes of the machine's load).
  const ratio = (rows: ScaleRow[], a: SetupName, b: SetupName, pick: (r: ScaleRow) => number) => {
    const x = rows.find((r) => r.setup === a && r.scenario === 'b');
    const y = rows.find((r) => r.setup === b && r.scenario === 'b');
    return x && y ? pick(x) / pick(y) : Number.NaN;
  };
  const ratios = {
    stored: rounds.map((rows) => ratio(rows, 'pg', 'sqlite', (r) => r.storedPerSecond)).filter(Number.isFinite),
    cpu: rounds.map((rows) => ratio(rows, 'pg2', 'pg', (r) => r.nodesUs)).filter(Number.isFinite),
  };
  if (rounds.length > 1) {
    report.note(
      `s: one PostgreSQL node's stored/s ÷ the SQLite node's, round by round: ${ratios.stored.map((x) => fmt(x, 2)).join(', ')}`,
    );
    report.note(
      `s: two nodes' CPU per message ÷ one PostgreSQL node's, round by round: ${ratios.cpu.map((x) => fmt(x, 2)).join(', ')}`,
    );
  }
  // Each row is the median round: by stored/s for saturation, by PUBACK p99 for the fixed rate.
  const rows: ScaleRow[] = [];
  for (const name of runnable) {
    for (const scenario of ['b', 'c', 'r'] as const) {
      const found = rounds.flat().filter((r) => r.setup === name && r.scenario === scenario);
      if (found.length === 0) continue;
      const key = (r: ScaleRow) => (scenario === 'c' ? r.p99 : r.storedPerSecond);
      const sorted = found.sort((a, b) => key(a) - key(b));
      rows.push(sorted[Math.floor(sorted.length / 2)] as ScaleRow);
    }
  }
  return { rows, skipped, ratios };
}

const us = (n: number) => fmt(n, 1);

const SCENARIOS: Record<ScaleScenario, string> = {
  b: 'b. QoS 1 saturation',
  c: `c. QoS 1 at ${fmt(config.fixedRate)}/s`,
  r: 'b, rate limit on',
};

export function scaleTable(o: ScaleOutcome): string {
  const head = [
    'set-up',
    'scenario',
    'acked',
    'stored/s',
    'PUBACK p50 ms',
    'PUBACK p99 ms',
    'node CPU µs/msg (each, own msgs)',
    'nodes µs/msg',
    'PostgreSQL µs/msg',
    'Redis µs/msg',
    'total µs/msg',
  ];
  const lines = o.rows.map((r) => [
    TITLES[r.setup],
    `${SCENARIOS[r.scenario]}${r.aborted ? ' (ABORTED)' : ''}`,
    fmt(r.acked),
    fmt(r.storedPerSecond),
    fmt(r.p50, 2),
    fmt(r.p99, 2),
    r.nodeUsOwn.map(us).join(' / '),
    us(r.nodesUs),
    us(r.pgUs),
    us(r.redisUs),
    us(total(r)),
  ]);
  for (const [name, reason] of o.skipped) {
    lines.push([`${TITLES[name]} (SKIPPED: ${reason})`, '-', '-', '-', '-', '-', '-', '-', '-', '-', '-']);
  }
  return textTable(head, lines);
}

/** Everything the set-up's servers spent per message: nodes, PostgreSQL and Redis where measured. */
function total(r: ScaleRow): number {
  return r.nodesUs + (Number.isNaN(r.pgUs) ? 0 : r.pgUs) + (Number.isNaN(r.redisUs) ? 0 : r.redisUs);
}

const find = (o: ScaleOutcome, setup: SetupName, scenario: ScaleScenario) =>
  o.rows.find((r) => r.setup === setup && r.scenario === scenario);

/**
 * The capacity each part has per core, from the saturation rows: a node handles 10^6 ÷ its
 * CPU per message states/s per core it gets, PostgreSQL likewise per core it gets, Redis (one
 * thread) on one core. On this machine every process shares the same cores, so the table's
 * throughput is that of the whole machine, not of a node.
 */
export function scaleCapacity(o: ScaleOutcome, cpus: number): string[] {
  const lines: string[] = [];
  for (const r of o.rows.filter((row) => row.scenario !== 'c')) {
    const node = 1e6 / r.nodesUs;
    const parts = [`a node ${fmt(node)} states/s per core (${us(r.nodesUs)} µs per message it handles)`];
    if (!Number.isNaN(r.pgUs)) parts.push(`PostgreSQL ${fmt(1e6 / r.pgUs)} per core`);
    if (!Number.isNaN(r.redisUs)) {
      parts.push(
        r.redisMs >= 100
          ? `Redis ${fmt(1e6 / r.redisUs)} on its one thread`
          : `Redis ${fmt(r.redisMs)} ms in the window, too little to measure a ceiling`,
      );
    }
    const all = total(r) + r.clientUs;
    parts.push(
      `all of it with the load generator (${us(all)} µs/msg) on ${cpus} cores: ${fmt((cpus * 1e6) / all)} states/s`,
    );
    lines.push(`  ${TITLES[r.setup]}${r.scenario === 'r' ? ', rate limit on' : ''}: ${parts.join('; ')}`);
  }
  const two = find(o, 'pg2', 'b');
  // Redis's ceiling where it does work per message: with the rate limit on.
  const limited = find(o, 'pg2', 'r') ?? two;
  if (two && limited && !Number.isNaN(two.pgUs)) {
    const node = 1e6 / two.nodesUs;
    const pgCap = 1e6 / two.pgUs;
    const redisCap =
      Number.isNaN(limited.redisUs) || limited.redisMs < 100 ? Number.POSITIVE_INFINITY : 1e6 / limited.redisUs;
    const ceiling = Math.min(pgCap, redisCap);
    lines.push(
      `  model (each node on its own core): throughput(N) ≈ min(N × ${fmt(node)}, P × ${fmt(pgCap)}` +
        `${Number.isFinite(redisCap) ? `, ${fmt(redisCap)}` : ''}) states/s, P = PostgreSQL's cores; ` +
        `with P = 1 it stops growing at N ≈ ${fmt(ceiling / node, 1)} (${pgCap <= redisCap ? 'PostgreSQL' : 'Redis'} first)`,
    );
  }
  return lines;
}

export function scaleTargets(o: ScaleOutcome): string[] {
  const sqlite = find(o, 'sqlite', 'b');
  const one = find(o, 'pg', 'b');
  const two = find(o, 'pg2', 'b');
  // With several rounds, the median of the ratios round by round (not the ratio of median rows).
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const stored = sqlite && one ? median(o.ratios.stored) : undefined;
  const cpu = one && two ? median(o.ratios.cpu) : undefined;
  const many = o.ratios.cpu.length > 1 || o.ratios.stored.length > 1;
  const totals = one && two ? total(two) / total(one) : undefined;
  return [
    `  ${verdict(stored === undefined ? undefined : stored >= 0.6)}  s: one PostgreSQL node's stored states/s >= 0.6 × ` +
      `the SQLite node's (QoS 1 saturation): ` +
      (stored === undefined || !one || !sqlite
        ? 'skipped'
        : many
          ? `${fmt(stored, 2)}, the median round (${o.ratios.stored.map((x) => fmt(x, 2)).join(', ')})`
          : `${fmt(one.storedPerSecond)} ÷ ${fmt(sqlite.storedPerSecond)} = ${fmt(stored, 2)}`),
    `  ${verdict(cpu === undefined ? undefined : cpu <= 1.25)}  s: two nodes' CPU per message (both nodes) within 25% ` +
      `of one PostgreSQL node's (QoS 1 saturation): ` +
      (cpu === undefined || !one || !two
        ? 'skipped'
        : many
          ? `${fmt(cpu, 2)}, the median round (${o.ratios.cpu.map((x) => fmt(x, 2)).join(', ')})`
          : `${us(two.nodesUs)} ÷ ${us(one.nodesUs)} µs = ${fmt(cpu, 2)}`),
    `  (total CPU per message, nodes + PostgreSQL + Redis: two nodes ` +
      (totals === undefined || !one || !two
        ? 'not measured)'
        : `${us(total(two))} µs vs one PostgreSQL node ${us(total(one))} µs = ${fmt(totals, 2)}×)`),
  ];
}
