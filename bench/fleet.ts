/**
 * The fleet scenario: N peripherals behind G gateways (half bound to their gateway, half allowed
 * through any), each reporting once every P seconds, spread evenly over the period, for D
 * seconds, over one real MQTT.js connection per gateway at QoS 1, on a fresh server. It prints
 * PUBACK p50/p99 per minute (flat is the goal: the cost of a message must not grow with time or
 * with the fleet), server CPU per message, the server's RSS, and states stored against states
 * acknowledged.
 */
import { writeFileSync } from 'node:fs';
import type { MqttClient } from 'mqtt';
import { StateCounter } from './db.js';
import { startGatehouseProcess } from './gatehouse-process.js';
import { allocationSites, INSPECT_ARG, Inspector, inspectorUrl } from './inspector.js';
import { closeAll, connect } from './load.js';
import { backgroundMeter, cpuMicros, statusKb } from './proc.js';
import { type Cleanups, type Report, sleep } from './report.js';
import { createFleet, pool, Rest } from './rest.js';
import { fmt, Latencies, textTable } from './stats.js';

const int = (name: string, fallback: number): number => {
  const n = Number(process.env[name]);
  return Number.isInteger(n) && n >= 0 && process.env[name] !== '' ? n : fallback;
};

export const fleetConfig = {
  peripherals: int('BENCH_FLEET_PERIPHERALS', 100_000),
  gateways: int('BENCH_FLEET_GATEWAYS', 1_000),
  periodSeconds: int('BENCH_FLEET_PERIOD_S', 60),
  durationSeconds: int('BENCH_FLEET_DURATION_S', 180),
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
}

export interface FleetOutcome {
  minutes: FleetMinute[];
  sent: number;
  acked: number;
  failed: number;
  stored: number;
  cpuUsPerMessage: number;
  rssMb: number;
  peakRssMb: number;
}

export async function fleetScenario(report: Report, cleanups: Cleanups): Promise<FleetOutcome> {
  const { peripherals, gateways, periodSeconds, durationSeconds } = fleetConfig;
  const perGateway = Math.max(1, Math.floor(peripherals / gateways));
  const server = await startGatehouseProcess({
    serveArgs: ['--log-level', 'warn'],
    ...(allocationsFile ? { nodeArgs: [INSPECT_ARG] } : {}),
  });
  cleanups.add(() => server.stop());
  let inspector: Inspector | undefined;
  if (allocationsFile) {
    const url = inspectorUrl(server.output());
    if (!url) throw new Error('fleet: the server printed no inspector address');
    inspector = await Inspector.connect(url);
    // A server waits at exit until its inspector's client is gone.
    cleanups.add(async () => inspector?.close());
  }
  const rest = new Rest(server.httpUrl, server.adminToken);
  const setup = performance.now();
  const fleet = await createFleet(rest, gateways, perGateway, 32);
  const clients: MqttClient[] = await pool(fleet.gateways.length, 100, (g) =>
    connect(server.mqttUrl, { clientId: fleet.gateways[g]?.id as string, username: fleet.key, password: fleet.secret }),
  );
  cleanups.add(() => closeAll(clients));
  const total = fleet.gateways.length * perGateway;
  report.note(
    `fleet: ${fmt(total)} peripherals behind ${fmt(gateways)} gateways set up and connected in ` +
      `${fmt((performance.now() - setup) / 1000, 1)} s; each reports every ${periodSeconds} s for ${durationSeconds} s ` +
      `(${fmt(total / periodSeconds)} states/s)`,
  );
  const counter = new StateCounter(server.dbFile);
  const storedBefore = counter.count();
  await inspector?.startSampling(SAMPLING_BYTES, false);
  const cpu0 = cpuMicros(server.pid);
  const bg = backgroundMeter([server.pid]);
  const perMinute: Latencies[] = [];
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
  const profile = await inspector?.stopSampling();
  if (profile && allocationsFile) {
    writeFileSync(allocationsFile, JSON.stringify(profile));
    const sites = allocationSites(profile);
    const top = (rows: Array<[string, number]>) =>
      rows
        .slice(0, 12)
        .map(([site, bytes]) => `${fmt(bytes / Math.max(1, acked))} B ${site}`)
        .join('; ');
    const total = sites.byFunction.reduce((sum, [, bytes]) => sum + bytes, 0);
    report.note(
      `fleet: allocated during the run and not freed by a scavenge (sampled, ${allocationsFile}): ` +
        `${fmt(total / Math.max(1, acked))} B per message; by function: ${top(sites.byFunction)}`,
    );
    report.note(`fleet: the same by the innermost of our functions on the stack: ${top(sites.byOurs)}`);
  }
  report.background.push(['fleet', bg()]);
  await sleep(500);
  const stored = counter.count() - storedBefore;
  counter.close();
  const rssKb = statusKb(server.pid, 'VmRSS');
  const peakRssKb = statusKb(server.pid, 'VmHWM');
  await closeAll(clients);
  inspector?.close();
  await server.stop();
  return {
    minutes: perMinute.map((l, minute) => ({
      minute: minute + 1,
      acked: l?.count ?? 0,
      p50: l?.percentile(50) ?? Number.NaN,
      p99: l?.percentile(99) ?? Number.NaN,
    })),
    sent,
    acked,
    failed,
    stored,
    cpuUsPerMessage: cpuUs / Math.max(1, acked),
    rssMb: rssKb / 1024,
    peakRssMb: peakRssKb / 1024,
  };
}

export function fleetTable(o: FleetOutcome): string {
  const head = ['minute', 'acknowledged', 'PUBACK p50 ms', 'PUBACK p99 ms'];
  const lines = o.minutes.map((m) => [String(m.minute), fmt(m.acked), fmt(m.p50, 2), fmt(m.p99, 2)]);
  return [
    textTable(head, lines),
    '',
    `sent ${fmt(o.sent)}, acknowledged ${fmt(o.acked)}, failed ${fmt(o.failed)}, stored ${fmt(o.stored)}; ` +
      `server CPU ${fmt(o.cpuUsPerMessage, 1)} µs per message; RSS ${fmt(o.rssMb, 1)} MB at the end, ` +
      `${fmt(o.peakRssMb, 1)} MB at most`,
  ].join('\n');
}
