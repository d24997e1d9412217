/**
 * The fleet scenario's write pattern replayed on the SQLite store alone, without a broker or a
 * network: N peripherals behind G gateways, group commits of B states from random peripherals,
 * each state with its report, on a fresh database file. It prints the process's CPU time per
 * state (every thread: the commit, the checkpoint worker, the sync), the commit's share of it,
 * and the bytes the process wrote per state (log and checkpoints). It isolates what the store
 * costs per state at fleet scale (docs/benchmarks.md, "The fleet scenario"). Run after
 * `npm run build`: `node dist/bench/store-replay.js`; settings BENCH_REPLAY_DEVICES (100,000),
 * BENCH_REPLAY_GATEWAYS (1,000), BENCH_REPLAY_BATCH (10), BENCH_REPLAY_STATES (60,000).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newId } from '../src/domain/ids.js';
import type { Device, StateRecord } from '../src/domain/model.js';
import { DATABASE_FILENAME, openSqliteStore } from '../src/store/sqlite/sqlite-store.js';
import type { ReportMark } from '../src/store/types.js';

const setting = (name: string, fallback: number): number => {
  const n = Number(process.env[name]);
  return Number.isInteger(n) && n > 0 ? n : fallback;
};

const DEVICES = setting('BENCH_REPLAY_DEVICES', 100_000);
const GATEWAYS = setting('BENCH_REPLAY_GATEWAYS', 1_000);
const BATCH = setting('BENCH_REPLAY_BATCH', 10);
const STATES = setting('BENCH_REPLAY_STATES', 60_000);

/** Bytes this process has caused to be written to storage so far. */
function bytesWritten(): number {
  const match = /write_bytes: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'));
  return Number(match?.[1] ?? 0);
}

function device(applicationId: string, deviceClass: Device['deviceClass'], gatewayId: string | null): Device {
  return {
    id: newId(),
    applicationId,
    name: deviceClass,
    description: '',
    deviceClass,
    gatewayId,
    tags: [],
    attributes: [
      { name: 'temperature', dataType: 'number' },
      { name: 'humidity', dataType: 'number' },
    ],
    creationDate: 1,
    lastUpdated: 1,
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-replay-'));
  try {
    const store = await openSqliteStore({ filename: join(dir, DATABASE_FILENAME), backgroundCheckpoints: true });
    const applicationId = newId();
    await store.createApplication({
      id: applicationId,
      name: 'replay',
      description: '',
      rateLimit: { messages: 30, windowSeconds: 15 },
      peripheralTimeoutSeconds: 900,
      inactivityTimeoutSeconds: null,
      stateRetentionDays: null,
      logRetentionDays: 30,
      creationDate: 1,
      lastUpdated: 1,
    });
    const gateways: string[] = [];
    for (let g = 0; g < GATEWAYS; g++) {
      const gateway = device(applicationId, 'gateway', null);
      await store.createDevice(gateway);
      gateways.push(gateway.id);
    }
    // Half bound to their gateway, half allowed through any, as in the fleet scenario.
    const peripherals: Array<[id: string, gatewayId: string]> = [];
    for (let i = 0; i < DEVICES; i++) {
      const gatewayId = gateways[i % GATEWAYS] as string;
      const peripheral = device(applicationId, i % 2 === 0 ? 'peripheral' : 'floating', i % 2 === 0 ? gatewayId : null);
      await store.createDevice(peripheral);
      peripherals.push([peripheral.id, gatewayId]);
    }
    let time = Date.now();
    let commitMicros = 0;
    const cpu = process.cpuUsage();
    const written = bytesWritten();
    const started = performance.now();
    for (let sent = 0; sent < STATES; sent += BATCH) {
      const states: StateRecord[] = [];
      const reports: ReportMark[] = [];
      for (let k = 0; k < BATCH; k++) {
        const [deviceId, reportedBy] = peripherals[Math.floor(Math.random() * DEVICES)] as [string, string];
        time++;
        states.push({
          deviceId,
          time,
          data: { temperature: Math.random() * 30, humidity: Math.random() * 100 },
          reportedBy,
        });
        reports.push({ deviceId, reportedBy, time });
      }
      const before = process.cpuUsage();
      await store.applyBatch({ states, reports, connections: [], logs: [], commands: [] });
      const spent = process.cpuUsage(before);
      commitMicros += spent.user + spent.system;
    }
    const wallMs = performance.now() - started;
    const used = process.cpuUsage(cpu);
    const bytes = bytesWritten() - written;
    await store.close();
    console.log(
      `store replay: ${STATES.toLocaleString('en-US')} states over ${DEVICES.toLocaleString('en-US')} peripherals ` +
        `behind ${GATEWAYS.toLocaleString('en-US')} gateways, ${BATCH} per commit`,
    );
    console.log(`  CPU per state (all threads): ${((used.user + used.system) / STATES).toFixed(1)} µs`);
    console.log(`  of which during the commits: ${(commitMicros / STATES).toFixed(1)} µs`);
    console.log(`  wall time per state: ${((wallMs * 1000) / STATES).toFixed(1)} µs`);
    console.log(`  written per state: ${(bytes / 1024 / STATES).toFixed(2)} KB`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
