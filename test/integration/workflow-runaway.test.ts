/**
 * Runaway flows against a real server: a flow that loops forever (a cycle through a 0 s Delay)
 * is stopped at the run's node-execution limit, a flow that throws on every state is recorded
 * as failing, and neither stops ingest: a fixed batch of QoS 1 states is acknowledged in full
 * with and without them (the rates are printed as figures, not asserted). With a short run time
 * limit, a long Delay and a slow HTTP call end with the run. A flood past a flow's queue is
 * refused, summed in its run log and counted in the metrics, while another flow runs every time.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { scrape } from '../helpers/metrics.js';
import { createFleet, eventually, ok, type SeedFleet, startTestServer, type TestServer } from '../helpers/server.js';

interface FlowRunEntry {
  pathsCompleted: number;
  pathsFailed: number;
  errors: Array<{ nodeId: string; nodeType: string; message: string }>;
}

const BATCH = 500;

async function runs(server: TestServer, appId: string, flowId: string): Promise<FlowRunEntry[]> {
  return ok(await server.http<FlowRunEntry[]>('GET', `/applications/${appId}/flows/${flowId}/logs?limit=1000`), 200);
}

describe('runaway flows', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let gateway: MqttClient;
  const app = () => `/applications/${fleet.applicationId}`;

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server, { application: { rateLimit: { messages: 0, windowSeconds: 15 } } });
    gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
  });
  afterAll(() => server.stop());

  /** Publishes the batch at QoS 1 and waits for every PUBACK; answers how many were acknowledged and the rate. */
  async function ingestBatch(offset: number): Promise<{ acked: number; perSecond: number }> {
    const started = performance.now();
    const acks = await Promise.allSettled(
      Array.from({ length: BATCH }, (_, i) =>
        gateway.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: offset + i } }), {
          qos: 1,
        }),
      ),
    );
    const seconds = (performance.now() - started) / 1000;
    return { acked: acks.filter((a) => a.status === 'fulfilled').length, perSecond: Math.round(BATCH / seconds) };
  }

  it('stops a looping flow at the run limit and records a throwing flow, while ingest acknowledges a full batch', async () => {
    const baseline = await ingestBatch(0);
    expect(baseline.acked).toBe(BATCH);

    const loop = ok(
      await server.http<{ id: string }>('POST', `${app()}/flows`, {
        name: 'spin forever',
        triggers: [
          { type: 'virtualButton', key: 'go', outputIds: [['wait']] },
          { type: 'deviceId', key: fleet.bound, outputIds: [['wait']] },
        ],
        nodes: [
          { id: 'wait', type: 'DelayNode', config: { delay: '0' }, outputIds: [['spin']] },
          {
            id: 'spin',
            type: 'MutateNode',
            config: { rules: [{ type: 'set', destination: 'working.spun', valueTemplate: 'yes' }] },
            outputIds: [['wait']],
          },
        ],
      }),
    ).id;
    const thrower = ok(
      await server.http<{ id: string }>('POST', `${app()}/flows`, {
        name: 'always throws',
        triggers: [{ type: 'deviceId', key: fleet.bound, outputIds: [['bad']] }],
        nodes: [
          {
            id: 'bad',
            type: 'MutateNode',
            config: {
              rules: [
                {
                  type: 'set',
                  destination: 'x',
                  valueTemplate: '{not json {{data.temperature}}',
                  valueTemplateType: 'json',
                },
              ],
            },
            outputIds: [[]],
          },
        ],
      }),
    ).id;
    for (let i = 0; i < 4; i++) {
      ok(await server.http('POST', `${app()}/flows/${loop}/virtualButton`, { key: 'go' }), 200);
    }

    const during = await ingestBatch(BATCH);
    expect(during.acked).toBe(BATCH);
    await server.running.platform.drain();
    const stored = ok(
      await server.http<unknown[]>('GET', `${app()}/devices/${fleet.bound}/state?limit=10000&duration=3600000`),
      200,
    );
    expect(stored.length).toBeGreaterThanOrEqual(2 * BATCH);

    const loopLog = await eventually(async () => {
      const r = await runs(server, fleet.applicationId, loop);
      return r.some((run) => run.errors.length > 0) ? r : undefined;
    }, 30_000);
    const stopped = loopLog.find((run) => run.errors.length > 0);
    expect(stopped?.errors[0]?.message).toBe('the run executed more than 1000 nodes and was stopped');
    expect(['wait', 'spin']).toContain(stopped?.errors[0]?.nodeId);

    const throwLog = await eventually(async () => {
      const r = await runs(server, fleet.applicationId, thrower);
      return r.length > 0 ? r : undefined;
    }, 10_000);
    expect(throwLog[0]?.errors[0]).toMatchObject({ nodeId: 'bad', nodeType: 'MutateNode' });
    expect(throwLog[0]?.errors[0]?.message).toContain('the JSON template did not render JSON');

    // Figures for the record (machine-dependent, so not asserted).
    console.log(
      `ingest of ${BATCH} QoS 1 states: ${baseline.perSecond}/s without workflows, ${during.perSecond}/s with a looping and a throwing flow`,
    );
    // Disabling stops their triggers at once; queued runs are dropped.
    ok(await server.http('PATCH', `${app()}/flows/${loop}`, { enabled: false }), 200);
    ok(await server.http('PATCH', `${app()}/flows/${thrower}`, { enabled: false }), 200);
  });
});

describe('the run time limit', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let silent: Server;
  let silentUrl: string;
  const app = () => `/applications/${fleet.applicationId}`;

  beforeAll(async () => {
    server = await startTestServer({ workflowLimits: { runTimeoutMs: 300 } });
    fleet = await createFleet(server);
    // Takes requests and never answers them.
    silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`;
  });
  afterAll(async () => {
    silent.closeAllConnections();
    await new Promise((resolve) => silent.close(resolve));
    await server.stop();
  });

  it('ends a long Delay and a slow HTTP call when the run runs out of time', async () => {
    const flow = ok(
      await server.http<{ id: string }>('POST', `${app()}/flows`, {
        name: 'too slow',
        triggers: [
          { type: 'virtualButton', key: 'delay', outputIds: [['wait']] },
          { type: 'virtualButton', key: 'http', outputIds: [['call']] },
        ],
        nodes: [
          { id: 'wait', type: 'DelayNode', config: { delay: '30' }, outputIds: [[]] },
          {
            id: 'call',
            type: 'HttpNode',
            config: { uriTemplate: silentUrl, timeoutTemplate: '30', responsePath: 'working.res' },
            outputIds: [[]],
          },
        ],
      }),
    ).id;
    ok(await server.http('POST', `${app()}/flows/${flow}/virtualButton`, { key: 'delay' }), 200);
    ok(await server.http('POST', `${app()}/flows/${flow}/virtualButton`, { key: 'http' }), 200);
    const log = await eventually(async () => {
      const r = await runs(server, fleet.applicationId, flow);
      return r.length >= 2 ? r : undefined;
    }, 10_000);
    expect(log.map((r) => r.pathsFailed)).toEqual([1, 1]);
    const errors = log.flatMap((r) => r.errors);
    expect(errors.map((e) => e.nodeId).sort()).toEqual(['call', 'wait']);
    for (const e of errors) expect(e.message).toContain('ran out of time');
  });
});

describe('a flooded flow', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let gateway: MqttClient;
  const app = () => `/applications/${fleet.applicationId}`;

  beforeAll(async () => {
    server = await startTestServer({ workflowLimits: { perFlowConcurrency: 1, maxQueuedPerFlow: 5 } });
    fleet = await createFleet(server, { application: { rateLimit: { messages: 0, windowSeconds: 15 } } });
    gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
  });
  afterAll(() => server.stop());

  it('refuses triggers past its queue, says how many in its run log and metrics, and other flows run every time', async () => {
    // One run at a time, each waiting 200 ms: a burst of states fills its queue.
    const slow = ok(
      await server.http<{ id: string }>('POST', `${app()}/flows`, {
        name: 'slow',
        triggers: [{ type: 'deviceId', key: fleet.bound, outputIds: [['wait']] }],
        nodes: [{ id: 'wait', type: 'DelayNode', config: { delay: '0.2' }, outputIds: [[]] }],
      }),
    ).id;
    const quick = ok(
      await server.http<{ id: string }>('POST', `${app()}/flows`, {
        name: 'quick',
        triggers: [{ type: 'deviceId', key: fleet.bound, outputIds: [['note']] }],
        nodes: [
          {
            id: 'note',
            type: 'MutateNode',
            config: { rules: [{ type: 'set', destination: 'working.t', valueTemplate: '{{data.temperature}}' }] },
            outputIds: [[]],
          },
        ],
      }),
    ).id;
    const before = await scrape(server);
    // One state after another, each acknowledged before the next: every commit triggers both.
    const burst = 40;
    for (let i = 0; i < burst; i++) {
      await gateway.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: i } }), {
        qos: 1,
      });
    }
    await server.running.workflows.engine.idle();

    const quickLog = await runs(server, fleet.applicationId, quick);
    expect(quickLog).toHaveLength(burst);
    expect(quickLog.every((r) => r.errors.length === 0)).toBe(true);

    const slowLog = await runs(server, fleet.applicationId, slow);
    const finished = slowLog.filter((r) => r.errors.length === 0);
    const summaries = slowLog.filter((r) => r.errors.length > 0);
    const refused = summaries.reduce(
      (sum, r) => sum + Number(/^(\d+) runs? (?:was|were) not started/.exec(r.errors[0]?.message ?? '')?.[1]),
      0,
    );
    expect(summaries.length).toBeGreaterThan(0);
    for (const r of summaries) expect(r.errors[0]?.message).toMatch(/the flow's queue was full \(5 waiting\)$/);
    // At most one in progress and five waiting when the burst arrived; the rest were refused.
    expect(finished.length).toBeGreaterThanOrEqual(6);
    expect(finished.length + refused).toBe(burst);

    const flows = ok(
      await server.http<{ items: Array<{ id: string; stats: { runCount: number } }> }>('GET', `${app()}/flows`),
      200,
    );
    expect(flows.items.find((f) => f.id === slow)?.stats.runCount).toBe(finished.length);

    const after = await scrape(server);
    const moved = (outcome: string) =>
      after.value('gatehouse_workflow_runs_total', { outcome }) -
      before.value('gatehouse_workflow_runs_total', { outcome });
    expect(moved('refused')).toBe(refused);
    expect(moved('succeeded')).toBe(burst + finished.length);
    expect(moved('failed')).toBe(0);
  });
});

describe('a flood of states past the engine intake', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let gateway: MqttClient;
  const logged: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) logged.push(JSON.parse(line));
        done();
      },
    });
    server = await startTestServer({ workflowLimits: { maxIntake: 3 }, logger: createLogger('info', sink) });
    fleet = await createFleet(server, { application: { rateLimit: { messages: 0, windowSeconds: 15 } } });
    gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
  });
  afterAll(() => server.stop());

  it('stores every state, matches what the intake holds, and counts and logs the rest', async () => {
    const flow = ok(
      await server.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/flows`, {
        name: 'every state',
        triggers: [{ type: 'deviceId', key: fleet.bound, outputIds: [[]] }],
        nodes: [],
      }),
    ).id;
    const before = await scrape(server);
    const burst = 60;
    // All at once: they share group commits, so more states arrive at once than the intake holds.
    await Promise.all(
      Array.from({ length: burst }, (_, i) =>
        gateway.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: i } }), { qos: 1 }),
      ),
    );
    await server.running.platform.drain();
    await server.running.workflows.engine.idle();
    const stored = ok(
      await server.http<unknown[]>(
        'GET',
        `/applications/${fleet.applicationId}/devices/${fleet.bound}/state?limit=1000&duration=3600000`,
      ),
      200,
    );
    expect(stored).toHaveLength(burst);
    const log = await runs(server, fleet.applicationId, flow);
    const after = await scrape(server);
    const unmatched =
      after.value('gatehouse_workflow_states_unmatched_total') -
      before.value('gatehouse_workflow_states_unmatched_total');
    expect(unmatched).toBeGreaterThan(0);
    expect(log.length + unmatched).toBe(burst);
    await server.running.workflows.engine.flushRuns();
    expect(logged).toContainEqual(expect.objectContaining({ event: 'statesUnmatched', count: unmatched }));
  });
});

describe('the timed write of the run log', () => {
  let server: TestServer;
  let fleet: SeedFleet;

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server);
  });
  afterAll(() => server.stop());

  it("writes in parts of 200 runs, each a job of the scheduler, with the flow's stats in the first", async () => {
    const app = `/applications/${fleet.applicationId}`;
    const flow = ok(
      await server.http<{ id: string }>('POST', `${app}/flows`, {
        name: 'pressed',
        triggers: [{ type: 'virtualButton', key: 'go', outputIds: [[]] }],
      }),
    );
    const { engine } = server.running.workflows;
    await engine.flushRuns();
    for (let i = 0; i < 450; i++) expect(engine.pressButton(flow.id, 'go', {})).toBe(1);
    await engine.idle();

    const { store } = server.running.platform;
    const writes: Array<{ runs: number; stats: unknown[] }> = [];
    const record = store.recordFlowRuns.bind(store);
    store.recordFlowRuns = (runs, stats, keep) => {
      writes.push({ runs: runs.length, stats });
      return record(runs, stats, keep);
    };
    try {
      const timedWrite = engine.flushRunsInParts();
      await timedWrite;
      // Taken, not yet written: the parts wait for the scheduler's slices.
      expect(writes).toEqual([]);
      await engine.idle();
    } finally {
      store.recordFlowRuns = record;
    }
    expect(writes).toEqual([
      { runs: 200, stats: [{ flowId: flow.id, runs: 450, errors: 0 }] },
      { runs: 200, stats: [] },
      { runs: 50, stats: [] },
    ]);
    expect(ok(await server.http<unknown[]>('GET', `${app}/flows/${flow.id}/logs?limit=1000`), 200)).toHaveLength(450);
    expect(ok(await server.http<{ stats: { runCount: number } }>('GET', `${app}/flows/${flow.id}`), 200).stats).toEqual(
      expect.objectContaining({ runCount: 450 }),
    );
  });
});
