/**
 * Scenario w: QoS 1 saturation with 0, 10 and 100 enabled flows triggered by the same
 * peripherals (each flow a device tag trigger, a Conditional node and a Device: State node
 * that one state in a hundred reaches), on a fresh server: stored states/s, PUBACK p99, flow
 * runs/s and run latency from the commit of the state to the end of the run.
 */
import { config, deadline } from './config.js';
import { startGatehouseProcess } from './gatehouse-process.js';
import { closeAll, qos1Window } from './load.js';
import { backgroundMeter, cpuMicros } from './proc.js';
import { type Cleanups, type Report, sleep, waitForQuiet } from './report.js';
import { createFleet, Rest } from './rest.js';
import { connectPublishers } from './scenarios.js';
import { fmt, Latencies } from './stats.js';

export interface WorkflowRow {
  flows: number;
  statesPerSecond: number;
  pubackP99: number;
  runsPerSecond: number;
  runP50: number;
  runP99: number;
  runs: number;
}

const FLOW_COUNTS = [0, 10, 100];

function flowBody(i: number, summaryId: string) {
  return {
    name: `bench flow ${i}`,
    triggers: [{ type: 'deviceTag', key: 'fleet/bench', outputIds: [['every-hundredth']] }],
    nodes: [
      {
        id: 'every-hundredth',
        type: 'ConditionalNode',
        config: { expression: '{{data.seq}} % 100 === 0' },
        outputIds: [[], ['record']],
      },
      {
        id: 'record',
        type: 'DeviceChangeStateNode',
        config: {
          deviceId: summaryId,
          timeSourceType: 'now',
          attrInfos: [{ key: 'seq', valueTemplate: '{{data.seq}}' }],
        },
        outputIds: [[]],
      },
    ],
  };
}

export async function workflowScenario(report: Report, cleanups: Cleanups): Promise<WorkflowRow[]> {
  const server = await startGatehouseProcess();
  cleanups.add(() => server.stop());
  const rest = new Rest(server.httpUrl, server.adminToken);
  const fleet = await createFleet(rest, config.gateways, config.perGateway, config.restConcurrency);
  const app = `/applications/${fleet.applicationId}`;
  const summary = await rest.post<{ id: string }>(`${app}/devices`, {
    name: 'summary',
    attributes: [{ name: 'seq', dataType: 'number' }],
  });
  const publishers = await connectPublishers(server.mqttUrl, fleet, true, cleanups);
  await qos1Window(publishers, config.warmup, config.window, deadline());
  const total = config.workflowStates;
  const rows: WorkflowRow[] = [];
  const flowIds: string[] = [];
  for (const count of FLOW_COUNTS) {
    while (flowIds.length < count) {
      const flow = await rest.post<{ id: string }>(`${app}/flows`, flowBody(flowIds.length, summary.id));
      flowIds.push(flow.id);
    }
    await sleep(500);
    await waitForQuiet(report, `w${count}`, [server.pid]);
    const runsBefore = await runCount(rest, app, flowIds);
    const cpu0 = cpuMicros(server.pid);
    const bg = backgroundMeter([server.pid]);
    const start = performance.now();
    const r = await qos1Window(publishers, total, config.window, deadline());
    const statesPerSecond = r.done / (r.elapsedMs / 1000);
    // Every run of these states, finished: the last one ends the measurement of runs/s.
    const expected = runsBefore + r.done * count;
    let runs = runsBefore;
    const end = deadline();
    while (count > 0 && runs < expected && Date.now() < end) {
      await sleep(200);
      runs = await runCount(rest, app, flowIds);
    }
    const runsElapsed = (performance.now() - start) / 1000;
    report.background.push([`w${count}`, bg()]);
    const latencies = new Latencies();
    for (const id of flowIds.slice(0, 10)) {
      const log = await rest.get<Array<{ latency: number }>>(`${app}/flows/${id}/logs?limit=1000`);
      for (const entry of log) latencies.add(entry.latency);
    }
    rows.push({
      flows: count,
      statesPerSecond,
      pubackP99: r.latencies.percentile(99),
      runsPerSecond: count > 0 ? (runs - runsBefore) / runsElapsed : 0,
      runP50: latencies.percentile(50),
      runP99: latencies.percentile(99),
      runs: runs - runsBefore,
    });
    report.note(
      `w${count}: ${fmt(r.done)} states acknowledged in ${fmt(r.elapsedMs)} ms with ${count} flows; ` +
        `${fmt(runs - runsBefore)} of ${fmt(r.done * count)} runs finished after ${fmt(runsElapsed, 1)} s; ` +
        `server CPU ${fmt((cpuMicros(server.pid) - cpu0) / Math.max(1, r.done), 1)} µs per state`,
    );
  }
  await closeAll(publishers.map((p) => p.client));
  await server.stop();
  return rows;
}

async function runCount(rest: Rest, app: string, flowIds: string[]): Promise<number> {
  if (flowIds.length === 0) return 0;
  const page = await rest.get<{ items: Array<{ id: string; stats: { runCount: number } }> }>(
    `${app}/flows?perPage=1000`,
  );
  return page.items.reduce((sum, f) => sum + f.stats.runCount, 0);
}

export function workflowTable(rows: WorkflowRow[]): string {
  const head = ['flows', 'states/s', 'PUBACK p99 ms', 'runs/s', 'run p50 ms', 'run p99 ms', 'runs'];
  const lines = rows.map((r) => [
    String(r.flows),
    fmt(r.statesPerSecond),
    fmt(r.pubackP99, 2),
    r.flows === 0 ? '-' : fmt(r.runsPerSecond),
    r.flows === 0 ? '-' : fmt(r.runP50, 1),
    r.flows === 0 ? '-' : fmt(r.runP99, 1),
    r.flows === 0 ? '-' : fmt(r.runs),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const row = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i] ?? 0)).join(' | ')} |`;
  return [row(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(row)].join('\n');
}
