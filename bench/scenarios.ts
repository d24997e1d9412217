/** Scenarios a–c: the gateway fleet publishing peripheral state to the real server. */
import { config, deadline } from './config.js';
import { StateCounter } from './db.js';
import type { GatehouseProcess } from './gatehouse-process.js';
import { closeAll, connect, Publisher, qos0Saturation, qos1FixedRate, qos1Window } from './load.js';
import { backgroundMeter, cpuMicros, rssKb } from './proc.js';
import { type Cleanups, clientMeter, type Report, sleep, waitForQuiet } from './report.js';
import { createFleet, type Fleet, Rest } from './rest.js';
import { fmt } from './stats.js';

/** One client per gateway, publishing round-robin for the gateway's peripherals. */
export async function connectPublishers(
  url: string,
  fleet: Fleet,
  asGateways: boolean,
  cleanups: Cleanups,
): Promise<Publisher[]> {
  const publishers = await Promise.all(
    fleet.gateways.map(async (g, i) => {
      const client = await connect(
        url,
        asGateways ? { clientId: g.id, username: fleet.key, password: fleet.secret } : { clientId: `bench-pub-${i}` },
      );
      return new Publisher(
        client,
        g.peripherals.map((p) => `losant/${p}/state`),
        config.explicitTime,
      );
    }),
  );
  cleanups.add(() => closeAll(publishers.map((p) => p.client)));
  return publishers;
}

export interface LoadOutcome {
  fleet: Fleet;
  qos1PerSecond: number;
  /** Server CPU per acknowledged QoS 1 state in b. */
  qos1CpuUs: number;
  fixedP99: number;
}

export async function loadScenarios(
  server: GatehouseProcess,
  report: Report,
  cleanups: Cleanups,
): Promise<LoadOutcome> {
  const pid = server.pid;
  const rest = new Rest(server.httpUrl, server.adminToken);
  const rssAtStart = rssKb(pid);
  const t = performance.now();
  const fleet = await createFleet(rest, config.gateways, config.perGateway, config.restConcurrency);
  const setupDevices = config.gateways * (1 + config.perGateway);
  const setupMs = performance.now() - t;
  report.note(
    `setup: ${setupDevices} devices + 1 key over REST in ${fmt(setupMs / 1000, 1)} s ` +
      `(${fmt(setupDevices / (setupMs / 1000))} creates/s, ${config.restConcurrency} in flight); ` +
      `server RSS ${fmt(rssAtStart / 1024, 1)} MB at start, ${fmt(rssKb(pid) / 1024, 1)} MB after setup`,
  );
  const counter = new StateCounter(server.dbFile);
  cleanups.add(async () => counter.close());
  const publishers = await connectPublishers(server.mqttUrl, fleet, true, cleanups);

  // Warm-up (not measured): lets the JIT compile the hot path before anything is timed.
  {
    const r = await qos1Window(publishers, config.warmup, config.window, deadline());
    report.note(`warm-up: ${fmt(r.done)} QoS 1 publishes in ${fmt(r.elapsedMs)} ms, not measured`);
    await sleep(500);
  }

  // a. QoS 0 saturation: written as fast as the sockets drain, then counted in the database.
  {
    await waitForQuiet(report, 'a', [pid]);
    const before = counter.count();
    const cpu0 = cpuMicros(pid);
    const client = clientMeter();
    const start = performance.now();
    const end = deadline();
    const bg = backgroundMeter([pid]);
    const r = await qos0Saturation(publishers, config.qos0Total, end);
    const writtenMs = performance.now() - start;
    const { count, lastGrowth } = await counter.waitFor(before + r.done, end);
    report.background.push(['a', bg()]);
    const stored = count - before;
    const elapsed = lastGrowth - start;
    report.loadRow(
      'a. QoS 0 saturation',
      { ...r, done: stored },
      pid,
      cpu0,
      stored / (elapsed / 1000),
      false,
      stored < r.done ? ' (INCOMPLETE)' : '',
    );
    report.note(
      `a: ${fmt(r.done)} written in ${fmt(writtenMs)} ms (${fmt(r.done / (writtenMs / 1000))}/s offered), ` +
        `${fmt(stored)} stored after ${fmt(elapsed)} ms; load generator ${fmt(client() / Math.max(1, r.done), 1)} µs/msg`,
    );
    if (stored < r.done) {
      report.note(
        `a: ${fmt(r.done - stored)} of ${fmt(r.done)} states sent are not in device_states` +
          (config.explicitTime ? '' : ' (same-millisecond receive times of one device merge)'),
      );
    }
  }
  await sleep(1_000);

  // b. QoS 1 saturation: a window of publishes in flight per client; a PUBACK means stored.
  let qos1PerSecond: number;
  let qos1CpuUs: number;
  {
    await waitForQuiet(report, 'b', [pid]);
    const before = counter.count();
    const cpu0 = cpuMicros(pid);
    const client = clientMeter();
    const bg = backgroundMeter([pid]);
    const r = await qos1Window(publishers, config.qos1Total, config.window, deadline());
    report.background.push(['b', bg()]);
    const storedAtLastAck = counter.count() - before;
    qos1PerSecond = r.done / (r.elapsedMs / 1000);
    qos1CpuUs = report.loadRow('b. QoS 1 saturation', r, pid, cpu0, qos1PerSecond, true);
    report.note(
      `b: ${fmt(r.done)} acknowledged in ${fmt(r.elapsedMs)} ms with ${config.window} in flight per client ` +
        `(${config.window * publishers.length} in all); rows in the database at the last PUBACK: ${fmt(storedAtLastAck)}` +
        `${r.failed ? `; ${r.failed} publishes failed` : ''}; load generator ${fmt(client() / Math.max(1, r.done), 1)} µs/msg`,
    );
    if (storedAtLastAck < r.done) {
      report.note(`b: DURABILITY: ${fmt(r.done - storedAtLastAck)} states were acknowledged but are not stored`);
    }
  }
  await sleep(1_000);

  // c. QoS 1 at a fixed rate: the latency target.
  let fixedP99: number;
  {
    await waitForQuiet(report, 'c', [pid]);
    const before = counter.count();
    const cpu0 = cpuMicros(pid);
    const client = clientMeter();
    const bg = backgroundMeter([pid]);
    const r = await qos1FixedRate(publishers, config.fixedRate, config.fixedMs, deadline());
    report.background.push(['c', bg()]);
    const stored = counter.count() - before;
    fixedP99 = r.latencies.percentile(99);
    report.loadRow(`c. QoS 1 at ${fmt(config.fixedRate)}/s`, r, pid, cpu0, r.done / (config.fixedMs / 1000), true);
    report.note(
      `c: ${fmt(r.done)} acknowledged over ${fmt(config.fixedMs / 1000)} s; ack p99.9 ` +
        `${fmt(r.latencies.percentile(99.9), 1)} ms, max ${fmt(r.latencies.percentile(100), 1)} ms; ` +
        `pacer late by up to ${fmt(r.maxLagMs, 1)} ms; rows stored ${fmt(stored)}${r.failed ? `; ${r.failed} failed` : ''}; ` +
        `load generator ${fmt(client() / Math.max(1, r.done), 1)} µs/msg`,
    );
  }
  await closeAll(publishers.map((p) => p.client));
  return { fleet, qos1PerSecond, qos1CpuUs, fixedP99 };
}
