/**
 * `npm run bench`: starts the real server as a child process, sets up a fleet over REST, drives
 * it with real MQTT clients, and prints one table plus the targets; then times the time-series
 * and last-value queries over one device-month in a temporary store (query.ts) and prints a
 * second table. See docs/benchmarks.md.
 */
import { spawnSync } from 'node:child_process';
import { type CommandOutcome, commandCount, commandScenario, commandTable } from './commands.js';
import { config, TARGETS } from './config.js';
import { type ConsoleRow, consoleAvailable, consoleScenario, consoleTable } from './console.js';
import {
  FLEET_STORE_TITLES,
  type FleetOutcome,
  fleetConfig,
  fleetScenario,
  fleetTable,
  fleetTargets,
} from './fleet.js';
import { startGatehouseProcess } from './gatehouse-process.js';
import { idleScenario } from './idle.js';
import { findMosquitto, mosquittoScenarios } from './mosquitto.js';
import { fileLimits, loadAverage, machine } from './proc.js';
import { type QueryRow, queryScenario, queryTable } from './query.js';
import { Cleanups, Report } from './report.js';
import { type ScaleOutcome, scaleCapacity, scaleConfig, scaleScenario, scaleTable, scaleTargets } from './scale.js';
import { type LoadOutcome, loadScenarios } from './scenarios.js';
import { fmt, table, verdict } from './stats.js';
import { type WorkflowRow, workflowScenario, workflowTable } from './workflows.js';

const report = new Report();
const cleanups = new Cleanups();

/**
 * Node raises its soft open-file limit to the hard limit at start-up, but cannot go further.
 * When the hard limit is too low for the idle connections, the benchmark re-runs itself under
 * `ulimit -n` (which works for root); when that is refused, the number of idle connections is
 * reduced to fit, and the report says so.
 */
function ensureFileLimit(): void {
  const need = config.idle + 1_024;
  const { soft, hard } = fileLimits();
  if (soft >= need) return;
  const CANNOT_RAISE = 97;
  if (!process.env.GATEHOUSE_BENCH_REEXEC) {
    console.log(`open-file limit ${soft} < ${need}: trying to re-run under ulimit -n ${need}`);
    const result = spawnSync(
      '/bin/sh',
      [
        '-c',
        `ulimit -n ${need} 2>/dev/null || exit ${CANNOT_RAISE}; exec "$0" "$@"`,
        process.execPath,
        ...process.execArgv,
        ...process.argv.slice(1),
      ],
      { stdio: 'inherit', env: { ...process.env, GATEHOUSE_BENCH_REEXEC: '1' } },
    );
    if (result.status !== CANNOT_RAISE) process.exit(result.status ?? 1);
  }
  const fit = Math.max(0, soft - 1_024);
  report.note(
    `open-file limit ${soft} (hard ${hard}) is below ${need} and could not be raised: idle connections reduced to ${fit}`,
  );
  config.idle = fit;
}

/** The idle-memory target is for 10,000 connections; fewer (file limit) are extrapolated. */
function idleTarget(idleMb: number | undefined): string {
  const n = TARGETS.idleConnections;
  const title = `${fmt(n)} idle connections < ${TARGETS.idleMb} MB of server RSS`;
  if (idleMb === undefined || config.idle === 0) return `  ${verdict(undefined)}  ${title}: skipped`;
  const perConnKb = (idleMb * 1024) / config.idle;
  const total = config.idle === n ? idleMb : (perConnKb * n) / 1024;
  const how = config.idle === n ? '' : `, extrapolated from ${fmt(config.idle)} connections`;
  return `  ${verdict(total < TARGETS.idleMb)}  ${title}: ${fmt(total, 1)} MB (${fmt(perConnKb, 1)} KB each${how})`;
}

/** The server's `gatehouse_` series that are not zero, histogram buckets left out; none when unreachable. */
async function scrapeMetrics(httpUrl: string): Promise<string[]> {
  try {
    const text = await (await fetch(`${httpUrl}/metrics`)).text();
    return text
      .split('\n')
      .filter((line) => line.startsWith('gatehouse_') && !line.includes('_bucket{') && !/ 0$/.test(line));
  } catch (err) {
    report.note(`GET /metrics failed: ${(err as Error).message}`);
    return [];
  }
}

/** BENCH_ONLY=fleet: each store's table, headed by its store when there are several. */
function printFleet(o: FleetOutcome, titled: boolean): void {
  if (titled) console.log(`\nfleet on ${FLEET_STORE_TITLES[o.store]}:`);
  console.log(`${titled ? '' : '\n'}${fleetTable(o)}\n`);
}

function consoleTarget(rows: ConsoleRow[]): string {
  const slowest = rows.length > 0 ? Math.max(...rows.map((r) => r.p50)) : undefined;
  return (
    `  ${verdict(slowest === undefined ? undefined : slowest < TARGETS.consoleFirstLoadMs)}  console first load ` +
    `< ${fmt(TARGETS.consoleFirstLoadMs)} ms (p50 of the slowest page): ` +
    (slowest === undefined ? 'skipped (no Chromium or no built console)' : `${fmt(slowest, 1)} ms`)
  );
}

/** How busy other processes kept the machine during each scenario, and a warning when it was not quiet. */
function printBackground(cpus: number): void {
  const busy = report.background.filter(([, n]) => n >= 0.15);
  console.log(
    `- other processes kept ${report.background.map(([s, n]) => `${s}: ${fmt(n, 2)}`).join(', ')} CPUs busy ` +
      `on average during each scenario (of ${cpus})`,
  );
  if (busy.length > 0) {
    console.log(
      `- WARNING: the machine was not quiet during ${busy.map(([s]) => s).join(', ')}; ` +
        'those results understate what the server can do. Re-run on a quiet machine.',
    );
  }
  console.log('');
}

function printScale(outcome: ScaleOutcome, cpus: number): void {
  console.log(`\nscale-out (s): ${fmt(config.gateways)} gateways split evenly over the nodes, fresh set-ups`);
  console.log(scaleTable(outcome));
  console.log('capacity from the saturation rows (CPU per message → states/s per core):');
  for (const line of scaleCapacity(outcome, cpus)) console.log(line);
  console.log('');
}

function commandTarget(outcome: CommandOutcome): string {
  const p99 = outcome.delivered.percentile(99);
  return (
    `  ${verdict(p99 < TARGETS.commandP99Ms)}  REST command delivered to the gateway, p99 < ${TARGETS.commandP99Ms} ms (k): ${fmt(p99, 2)} ms` +
    ` (the disk's sync alone: p99 ${fmt(outcome.diskSync.percentile(99), 2)} ms)`
  );
}

async function main(): Promise<void> {
  ensureFileLimit();
  const m = machine();
  const limits = fileLimits();
  const started = performance.now();
  console.log('Gatehouse benchmark');
  console.log(`machine: ${m.cpus} CPUs, ${m.model}, ${m.memoryGb} GB RAM, Linux ${m.kernel}; node ${m.node}`);
  console.log(
    `open-file limit ${limits.soft} (hard ${limits.hard}); state payloads ${config.explicitTime ? 'with' : 'without'} "time"; ` +
      `load average ${loadAverage()}`,
  );

  // BENCH_ONLY=w: the workflow scenario alone (while working on workflows).
  if (process.env.BENCH_ONLY === 'w') {
    const rows = await workflowScenario(report, cleanups);
    console.log(`\n${workflowTable(rows)}\n`);
    for (const note of report.notes) console.log(`- ${note}`);
    return;
  }

  // BENCH_ONLY=scale: the scale-out scenario alone.
  if (process.env.BENCH_ONLY === 'scale') {
    const outcome = await scaleScenario(report, cleanups);
    printScale(outcome, m.cpus);
    for (const note of report.notes) console.log(`- ${note}`);
    printBackground(m.cpus);
    console.log('targets:');
    for (const line of scaleTargets(outcome)) console.log(line);
    return;
  }

  // BENCH_ONLY=fleet: the fleet scenario alone.
  if (process.env.BENCH_ONLY === 'fleet') {
    const outcomes: FleetOutcome[] = [];
    for (const store of fleetConfig.stores) outcomes.push(await fleetScenario(report, cleanups, store));
    for (const outcome of outcomes) printFleet(outcome, outcomes.length > 1);
    for (const note of report.notes) console.log(`- ${note}`);
    if (fleetConfig.stores.includes('postgres')) printBackground(m.cpus);
    for (const outcome of outcomes) for (const line of fleetTargets(outcome, undefined)) console.log(line);
    return;
  }

  // BENCH_ONLY=k: REST command delivery alone.
  if (process.env.BENCH_ONLY === 'k') {
    const outcome = await commandScenario(report, cleanups);
    console.log(`\n${commandTable(outcome)}\n`);
    for (const note of report.notes) console.log(`- ${note}`);
    printBackground(m.cpus);
    console.log(commandTarget(outcome));
    return;
  }

  // BENCH_ONLY=d: the idle connections alone, on a fresh server (as in a full run).
  if (process.env.BENCH_ONLY === 'd') {
    const idleMb = config.idle > 0 ? await idleScenario(report, cleanups) : undefined;
    console.log(`\n${table(report.rows)}\n`);
    for (const note of report.notes) console.log(`- ${note}`);
    printBackground(m.cpus);
    console.log(idleTarget(idleMb));
    return;
  }

  // BENCH_ONLY=g: the console's first load alone.
  if (process.env.BENCH_ONLY === 'g') {
    const rows = await consoleScenario(report, cleanups);
    console.log(`\n${consoleTable(rows)}\n`);
    for (const note of report.notes) console.log(`- ${note}`);
    console.log(consoleTarget(rows));
    return;
  }

  // a–c on one server.
  const server = await startGatehouseProcess();
  cleanups.add(() => server.stop());
  console.log(`server pid ${server.pid}: ${server.mqttUrl}, ${server.httpUrl}, data in ${server.dataDir}`);
  let load: LoadOutcome;
  try {
    load = await loadScenarios(server, report, cleanups);
  } catch (err) {
    if (!interrupted) console.error(`server output:\n${server.output()}`);
    throw err;
  }
  // What the server's own metrics say after a–c (docs/operations.md): printed with the tables.
  const metrics = await scrapeMetrics(server.httpUrl);
  const stopStart = performance.now();
  const code = await server.stop();
  report.note(`server stopped with SIGTERM: exit code ${code} after ${fmt(performance.now() - stopStart)} ms`);

  // d on a fresh server.
  const idleMb = config.idle > 0 ? await idleScenario(report, cleanups) : undefined;

  // e against a private Mosquitto.
  let relayed: number | undefined;
  let mosquittoCpuUs = Number.NaN;
  const executable = findMosquitto();
  if (executable) {
    ({ relayed, cpuUs: mosquittoCpuUs } = await mosquittoScenarios(executable, load.fleet, report, cleanups));
  } else {
    report.rows.push({
      scenario: 'e. Mosquitto QoS 1 relay (SKIPPED: mosquitto not found)',
      messages: '-',
      perSecond: '-',
      p50: '-',
      p99: '-',
      cpuUsPerMsg: '-',
      rssMb: '-',
    });
  }

  // k on a fresh server: REST commands one at a time, to delivery over MQTT.
  const commands: CommandOutcome | undefined = commandCount > 0 ? await commandScenario(report, cleanups) : undefined;

  // w on a fresh server: ingest with 0, 10 and 100 flows.
  const workflowRows: WorkflowRow[] = config.workflowStates > 0 ? await workflowScenario(report, cleanups) : [];

  // The fleet scenario on a fresh server per store (BENCH_FLEET_PERIPHERALS=0 skips it).
  const fleets: FleetOutcome[] = [];
  if (fleetConfig.peripherals > 0) {
    for (const store of fleetConfig.stores) fleets.push(await fleetScenario(report, cleanups, store));
  }

  // s: b and c on one SQLite node, one PostgreSQL node, two nodes with PostgreSQL and Redis.
  const scale: ScaleOutcome | undefined = scaleConfig.enabled ? await scaleScenario(report, cleanups) : undefined;

  // g in Chromium, on a fresh server: the console's first load.
  const consoleRows: ConsoleRow[] = consoleAvailable() ? await consoleScenario(report, cleanups) : [];

  // f in this process, on a temporary store: ingest of one device-month, then the queries.
  let queryRows: QueryRow[] = [];
  if (config.queryDays > 0) queryRows = await queryScenario(report);

  console.log('');
  console.log(table(report.rows));
  console.log('');
  if (queryRows.length > 0) {
    console.log(queryTable(queryRows));
    console.log('');
  }
  if (commands) {
    console.log(commandTable(commands));
    console.log('');
  }
  if (workflowRows.length > 0) {
    console.log(workflowTable(workflowRows));
    console.log('');
  }
  for (const fleet of fleets) {
    console.log(
      `fleet${fleet.store === 'sqlite' ? '' : ` on ${FLEET_STORE_TITLES[fleet.store]}`}: ` +
        `${fmt(fleetConfig.peripherals)} peripherals, ${fmt(fleetConfig.gateways)} gateways, every ` +
        `${fleetConfig.periodSeconds} s for ${fleetConfig.durationSeconds} s`,
    );
    console.log(fleetTable(fleet));
    console.log('');
  }
  if (scale) printScale(scale, m.cpus);
  if (consoleRows.length > 0) {
    console.log(consoleTable(consoleRows));
    console.log('');
  }
  if (metrics.length > 0) {
    console.log('server metrics after a–c (GET /metrics, non-zero series, buckets left out):');
    for (const line of metrics) console.log(`  ${line}`);
    console.log('');
  }
  for (const note of report.notes) console.log(`- ${note}`);
  printBackground(m.cpus);
  const ratio = relayed === undefined ? undefined : load.qos1PerSecond / relayed;
  console.log('targets:');
  console.log(
    `  ${verdict(load.fixedP99 < TARGETS.fixedP99Ms)}  p99 ack < ${TARGETS.fixedP99Ms} ms at ${fmt(config.fixedRate)} states/s ` +
      `(QoS 1): ${fmt(load.fixedP99, 2)} ms`,
  );
  console.log(idleTarget(idleMb));
  console.log(
    `  ${verdict(ratio === undefined ? undefined : ratio >= TARGETS.mosquittoRatio)}  QoS 1 stored/s ÷ Mosquitto ` +
      `QoS 1 relayed/s >= ${TARGETS.mosquittoRatio}: ` +
      (ratio === undefined
        ? 'skipped (mosquitto not found)'
        : `${fmt(load.qos1PerSecond)} ÷ ${fmt(relayed ?? Number.NaN)} = ${fmt(ratio, 2)}`),
  );
  if (ratio !== undefined) {
    // Both runs share the machine with the load generator, which caps the Mosquitto run long
    // before Mosquitto is busy: the CPU each server spends per message is the fairer comparison.
    console.log(
      `  (server CPU per QoS 1 message: Gatehouse ${fmt(load.qos1CpuUs, 1)} µs stored, Mosquitto ` +
        `${fmt(mosquittoCpuUs, 1)} µs relayed; at equal CPU the ratio would be ${fmt(mosquittoCpuUs / load.qos1CpuUs, 2)})`,
    );
  }
  const fromRollups = queryRows.filter((r) => r.from === 'rollups');
  const slowest = fromRollups.length > 0 ? Math.max(...fromRollups.map((r) => r.p50)) : undefined;
  console.log(
    `  ${verdict(slowest === undefined ? undefined : slowest < TARGETS.monthQueryMs)}  time-series query over ` +
      `${config.queryDays} days of 1 Hz data, resolution >= 1 min, < ${fmt(TARGETS.monthQueryMs)} ms (p50): ` +
      (slowest === undefined ? 'skipped' : `${fmt(slowest, 1)} ms for the slowest`),
  );
  const none = workflowRows.find((r) => r.flows === 0);
  const ten = workflowRows.find((r) => r.flows === 10);
  const kept = none && ten ? ten.statesPerSecond / none.statesPerSecond : undefined;
  console.log(
    `  ${verdict(kept === undefined ? undefined : kept >= TARGETS.workflowIngestRatio)}  stored states/s with 10 flows ` +
      `>= ${TARGETS.workflowIngestRatio} × with none (QoS 1): ` +
      (kept === undefined
        ? 'skipped'
        : `${fmt(ten?.statesPerSecond ?? 0)} ÷ ${fmt(none?.statesPerSecond ?? 0)} = ${fmt(kept, 2)}`),
  );
  if (commands) console.log(commandTarget(commands));
  console.log(consoleTarget(consoleRows));
  const onePg = scale?.rows.find((r) => r.setup === 'pg' && r.scenario === 'b');
  for (const fleet of fleets) {
    for (const line of fleetTargets(fleet, fleet.store === 'sqlite' ? load.qos1CpuUs : onePg?.nodesUs))
      console.log(line);
  }
  if (scale) for (const line of scaleTargets(scale)) console.log(line);
  console.log(`\ntotal time ${fmt((performance.now() - started) / 1000, 1)} s`);
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`${signal}: stopping`);
    void cleanups.run().finally(() => process.exit(130));
  });
}

try {
  await main();
  await cleanups.run();
  process.exit(0);
} catch (err) {
  // After a signal the clean-up is already under way and ends the process; what failed then is expected.
  if (!interrupted) {
    console.error(`bench failed: ${(err as Error).stack ?? err}`);
    await cleanups.run();
    process.exit(1);
  }
}
