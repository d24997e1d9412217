/**
 * Scenario w: QoS 1 saturation with 0, 10 and 100 enabled flows triggered by the same
 * peripherals (each flow a device tag trigger, a Conditional node and a Device: State node
 * that one state in a hundred reaches), on a fresh server: stored states/s, PUBACK p99, flow
 * runs/s and run latency from the commit of the state to the end of the run. Runs are counted
 * from the server's metrics: finished (with or without an error) and refused (a full queue).
 */
import { config, deadline } from './config.js';
import { startGatehouseProcess } from './gatehouse-process.js';
import { closeAll, qos1Window } from './load.js';
import { backgroundMeter, cpuMicros } from './proc.js';
import { type Cleanups, type Report, sleep, waitForQuiet } from './report.js';
import { createFleet, Rest } from './rest.js';
import { connectPublishers } from './scenarios.js';
import { fmt, Latencies, textTable } from './stats.js';

export interface WorkflowRow {
  flows: number;
  statesPerSecond: number;
  pubackP99: number;
  runsPerSecond: number;
  runP50: number;
  runP99: number;
  runs: number;
  /** Triggers refused because their flow's queue was full (ingest comes first). */
  refused: number;
}

/** Enabled flows in each step; BENCH_WORKFLOW_FLOWS=0,10 runs fewer steps. */
const FLOW_COUNTS = (process.env.BENCH_WORKFLOW_FLOWS ?? '0,10,100').split(',').map(Number);
/**
 * Each step runs this many times, in rounds whose order alternates (0, 10, 100, then 100, 10, 0,
 * ...): ingest slows a little as the database grows, so a step that always came first would look
 * faster than it is. Each step's row is its median round by states/s.
 */
const ROUNDS = Math.max(1, Number(process.env.BENCH_WORKFLOW_ROUNDS ?? 3) || 1);

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
  const rounds = new Map<number, WorkflowRow[]>();
  const flowIds: string[] = [];
  /** Whether each flow is enabled now (a new flow is). */
  const isEnabled: boolean[] = [];
  const steps = Array.from({ length: ROUNDS }, (_, r) =>
    r % 2 === 0 ? FLOW_COUNTS : [...FLOW_COUNTS].reverse(),
  ).flat();
  for (const [index, count] of steps.entries()) {
    const round = Math.floor(index / FLOW_COUNTS.length) + 1;
    while (flowIds.length < count) {
      const flow = await rest.post<{ id: string }>(`${app}/flows`, flowBody(flowIds.length, summary.id));
      flowIds.push(flow.id);
      isEnabled.push(true);
    }
    // Exactly the first `count` flows enabled.
    for (const [i, id] of flowIds.entries()) {
      if (isEnabled[i] === i < count) continue;
      await rest.patch(`${app}/flows/${id}`, { enabled: i < count });
      isEnabled[i] = i < count;
    }
    await sleep(500);
    await waitForQuiet(report, `w${count}.${round}`, [server.pid]);
    const before = await runCounts(server.httpUrl);
    const cpu0 = cpuMicros(server.pid);
    const bg = backgroundMeter([server.pid]);
    const start = performance.now();
    const r = await qos1Window(publishers, total, config.window, deadline());
    const acked = await runCounts(server.httpUrl);
    const statesPerSecond = r.done / (r.elapsedMs / 1000);
    // Every trigger of these states, run or refused: the last run ends the measurement of runs/s.
    const expected = r.done * count;
    let now = before;
    let lastRunAt = performance.now();
    const end = deadline();
    // Until every trigger ran or was refused, or nothing moved for 2 s (states the engine's intake
    // refused never become runs).
    let lastMoveAt = performance.now();
    while (
      count > 0 &&
      now.finished + now.refused - before.finished - before.refused < expected &&
      performance.now() - lastMoveAt < 2_000 &&
      Date.now() < end
    ) {
      await sleep(100);
      const next = await runCounts(server.httpUrl);
      if (next.finished > now.finished) lastRunAt = performance.now();
      if (next.finished + next.refused > now.finished + now.refused) lastMoveAt = performance.now();
      now = next;
    }
    const runs = now.finished - before.finished;
    const refused = now.refused - before.refused;
    const runsElapsed = (lastRunAt - start) / 1000;
    report.background.push([`w${count}.${round}`, bg()]);
    const latencies = new Latencies();
    for (const id of flowIds.slice(0, 10)) {
      const log = await rest.get<Array<{ latency: number }>>(`${app}/flows/${id}/logs?limit=1000`);
      for (const entry of log) latencies.add(entry.latency);
    }
    const row: WorkflowRow = {
      flows: count,
      statesPerSecond,
      pubackP99: r.latencies.percentile(99),
      runsPerSecond: count > 0 ? runs / runsElapsed : 0,
      runP50: latencies.percentile(50),
      runP99: latencies.percentile(99),
      runs,
      refused,
    };
    rounds.set(count, [...(rounds.get(count) ?? []), row]);
    report.note(
      `w${count} round ${round}: ${fmt(r.done)} states acknowledged in ${fmt(r.elapsedMs)} ms with ${count} flows; ` +
        `${fmt(runs)} of ${fmt(expected)} runs finished after ${fmt(runsElapsed, 1)} s, ${fmt(refused)} refused, ` +
        `${fmt(now.unmatched - before.unmatched)} states unmatched; ` +
        `server CPU ${fmt((cpuMicros(server.pid) - cpu0) / Math.max(1, r.done), 1)} µs per state; ` +
        `while acknowledging, ${fmt(acked.commits - before.commits)} group commits of ` +
        `${fmt(r.done / Math.max(1, acked.commits - before.commits), 1)} states on average, ` +
        `${fmt(((acked.commitSeconds - before.commitSeconds) * 1e6) / Math.max(1, r.done), 1)} µs of commit per state`,
    );
  }
  await closeAll(publishers.map((p) => p.client));
  await server.stop();
  // Each step's median round, and the ratio to no flows round by round.
  const none = rounds.get(0) ?? [];
  for (const count of FLOW_COUNTS) {
    if (count === 0 || none.length === 0) continue;
    const ratios = (rounds.get(count) ?? []).map(
      (row, i) => row.statesPerSecond / (none[i]?.statesPerSecond ?? Number.NaN),
    );
    report.note(`w${count}: states/s ÷ with no flows, round by round: ${ratios.map((r) => fmt(r, 2)).join(', ')}`);
  }
  return FLOW_COUNTS.map((count) => {
    const sorted = [...(rounds.get(count) ?? [])].sort((a, b) => a.statesPerSecond - b.statesPerSecond);
    return sorted[Math.floor(sorted.length / 2)] as WorkflowRow;
  });
}

/** Runs finished and triggers refused so far, from the server's Prometheus metrics. */
async function runCounts(httpUrl: string): Promise<{
  finished: number;
  refused: number;
  unmatched: number;
  /** Group commits so far and the time they took: runs change how states are batched. */
  commits: number;
  commitSeconds: number;
}> {
  const text = await (await fetch(`${httpUrl}/metrics`, { signal: AbortSignal.timeout(30_000) })).text();
  const count = (outcome: string) =>
    Number(new RegExp(`^gatehouse_workflow_runs_total\\{outcome="${outcome}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    finished: count('succeeded') + count('failed'),
    refused: count('refused'),
    unmatched: metric('gatehouse_workflow_states_unmatched_total'),
    commits: metric('gatehouse_group_commit_batch_size_count'),
    commitSeconds: metric('gatehouse_group_commit_duration_seconds_sum'),
  };
}

export function workflowTable(rows: WorkflowRow[]): string {
  const head = ['flows', 'states/s', 'PUBACK p99 ms', 'runs/s', 'run p50 ms', 'run p99 ms', 'runs', 'refused'];
  const lines = rows.map((r) => [
    String(r.flows),
    fmt(r.statesPerSecond),
    fmt(r.pubackP99, 2),
    r.flows === 0 ? '-' : fmt(r.runsPerSecond),
    r.flows === 0 ? '-' : fmt(r.runP50, 1),
    r.flows === 0 ? '-' : fmt(r.runP99, 1),
    r.flows === 0 ? '-' : fmt(r.runs),
    r.flows === 0 ? '-' : fmt(r.refused),
  ]);
  return textTable(head, lines);
}
