/**
 * Runaway flows against a real server: a flow that loops forever (a cycle through a 0 s Delay)
 * is stopped at the run's node-execution limit, a flow that throws on every state is recorded
 * as failing, and neither stops ingest: a fixed batch of QoS 1 states is acknowledged in full
 * with and without them (the rates are printed as figures, not asserted). With a short run time
 * limit, a long Delay and a slow HTTP call end with the run.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
