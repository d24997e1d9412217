/**
 * Workflows against a real server with real MQTT clients: a peripheral's state, carried by its
 * gateway over MQTT or REST, triggers a flow that commands the peripheral's fan through that
 * gateway and records a summary on another device; validation names the node and field;
 * disabling, versions, virtual buttons, chains of workflow-written state and the run log.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFleet,
  deviceToken,
  eventually,
  nextMessage,
  ok,
  type SeedFleet,
  startTestServer,
  type TestServer,
} from '../helpers/server.js';
import { openStream } from '../helpers/sse.js';

interface FlowRunEntry {
  triggerType: string;
  triggerId: string;
  pathsCompleted: number;
  pathsFailed: number;
  errors: Array<{ nodeId: string; message: string }>;
  flowVersion: string;
}

describe('workflows', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let summary: string;
  /** The webhook the worked example posts to: a local HTTP server (loopback) recording each POST. */
  let hook: Server;
  let hookUrl: string;
  const posted: Array<{ method: string; url: string; body: unknown }> = [];
  const app = () => `/applications/${fleet.applicationId}`;

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server, { application: { rateLimit: { messages: 0, windowSeconds: 15 } } });
    summary = ok(
      await server.http<{ id: string }>('POST', `${app()}/devices`, {
        name: 'summary',
        attributes: [
          { name: 'lastHot', dataType: 'string' },
          { name: 'hotTemperature', dataType: 'number' },
        ],
      }),
    ).id;
    hook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        posted.push({
          method: req.method ?? '',
          url: req.url ?? '',
          body: JSON.parse(Buffer.concat(chunks).toString()),
        });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"received":true}');
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hooks/hot`;
  });
  afterAll(async () => {
    await new Promise((resolve) => hook.close(resolve));
    await server.stop();
  });

  /**
   * The worked example: hot bound peripheral → fan on through its gateway, summary recorded, and
   * a webhook told (HTTP POST with the peripheral and its temperature).
   */
  const fanFlow = () => ({
    name: 'Fan on when hot',
    triggers: [
      {
        type: 'deviceId',
        key: fleet.bound,
        config: { attributeWhitelist: ['temperature'] },
        outputIds: [['hot']],
      },
    ],
    nodes: [
      {
        id: 'hot',
        type: 'ConditionalNode',
        config: { expression: '{{data.temperature}} > 30' },
        outputIds: [[], ['fan', 'record', 'webhook']],
      },
      {
        id: 'fan',
        type: 'DeviceSendCommandNode',
        config: {
          deviceIdsPath: 'triggerId',
          nameTemplate: 'fan',
          payloadTemplate: '{"on": true, "because": {{data.temperature}}}',
        },
        outputIds: [['debug']],
      },
      {
        id: 'record',
        type: 'DeviceChangeStateNode',
        config: {
          deviceId: summary,
          attrDataMethod: 'individualFields',
          attrInfos: [
            { key: 'lastHot', valueTemplate: '{{deviceName}} via {{relayType}} {{relayId}}' },
            { key: 'hotTemperature', valueTemplate: '{{data.temperature}}' },
          ],
          resultPath: 'working.recorded',
        },
        outputIds: [[]],
      },
      {
        id: 'webhook',
        type: 'HttpNode',
        config: {
          method: 'POST',
          uriTemplate: hookUrl,
          bodyType: 'jsonTemplate',
          bodyTemplate:
            '{"peripheral": "{{triggerId}}", "name": "{{deviceName}}", "temperature": {{data.temperature}}, "via": "{{relayId}}"}',
          timeoutTemplate: '5',
          responsePath: 'working.webhook',
        },
        outputIds: [[]],
      },
      {
        id: 'debug',
        type: 'DebugNode',
        config: { message: 'fan on for {{triggerId}}', property: 'data' },
        outputIds: [[]],
      },
    ],
  });

  async function runs(flowId: string, count: number): Promise<FlowRunEntry[]> {
    return eventually(async () => {
      const r = ok(await server.http<FlowRunEntry[]>('GET', `${app()}/flows/${flowId}/logs?limit=100`), 200);
      return r.length >= count ? r : undefined;
    }, 5000);
  }

  it('refuses a definition with its problems named by node and field', async () => {
    const bad = await server.http<{ type: string; message: string }>('POST', `${app()}/flows`, {
      name: 'bad',
      triggers: [
        { type: 'deviceId', key: fleet.bound, outputIds: [['c', 'ghost']] },
        { type: 'smokeSignal', outputIds: [[]] },
      ],
      nodes: [
        { id: 'c', type: 'ConditionalNode', config: { expression: '{{data.t}} > (' }, outputIds: [[]] },
        { id: 'x', type: 'TeleportNode', config: {}, outputIds: [[]] },
        { id: 'm', type: 'DebugNode', config: { level: 'loud' }, outputIds: [['m']] },
      ],
    });
    expect(bad.status).toBe(400);
    expect(bad.body.type).toBe('Validation');
    for (const fragment of [
      'nodes/0 (id "c", ConditionalNode): config/expression',
      'outputIds must hold 2 outputs (false, then true), not 1',
      'node type "TeleportNode" is not supported',
      'config/level must be one of verbose, info, warn, error',
      'outputIds/0/1 names node "ghost", which does not exist',
      'trigger type "smokeSignal" is not supported',
      'a cycle without a DelayNode could run forever: m → m',
    ]) {
      expect(bad.body.message).toContain(fragment);
    }
  });

  it('runs the worked example when the gateway reports over MQTT: the fan command goes through the gateway, the summary is recorded by the flow', async () => {
    const flow = ok(await server.http<{ id: string; enabled: boolean }>('POST', `${app()}/flows`, fanFlow()));
    expect(flow.enabled).toBe(true);
    const debug = await openStream(server, `${app()}/flows/${flow.id}/debugStream`);
    const gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
    await gateway.subscribeAsync(`losant/${fleet.bound}/command`, { qos: 1 });
    const command = nextMessage(gateway, `losant/${fleet.bound}/command`, 5000);
    await gateway.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 25 } }), {
      qos: 1,
    });
    await gateway.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 31.5 } }), {
      qos: 1,
    });
    expect((await command).payload).toMatchObject({ name: 'fan', payload: { on: true, because: 31.5 } });
    const webhookPost = await eventually(() =>
      posted.find((p) => (p.body as { temperature: number }).temperature === 31.5),
    );
    expect(webhookPost).toEqual({
      method: 'POST',
      url: '/hooks/hot',
      body: { peripheral: fleet.bound, name: 'bound', temperature: 31.5, via: fleet.gateway },
    });
    expect(posted.some((p) => (p.body as { temperature: number }).temperature === 25)).toBe(false);

    const history = ok(
      await server.http<Array<{ name: string; routedTo: string[]; sentBy: string }>>(
        'GET',
        `${app()}/devices/${fleet.bound}/command?limit=5`,
      ),
      200,
    );
    expect(history[0]).toMatchObject({ name: 'fan', routedTo: [fleet.gateway], sentBy: `flow:${flow.id}` });
    const recorded = await eventually(async () => {
      const states = ok(
        await server.http<Array<{ data: Record<string, unknown>; reportedBy: string }>>(
          'GET',
          `${app()}/devices/${summary}/state`,
        ),
        200,
      );
      return states[0];
    });
    expect(recorded).toMatchObject({
      data: { lastHot: `bound via device ${fleet.gateway}`, hotTemperature: 31.5 },
      reportedBy: `flow:${flow.id}`,
    });
    const log = await runs(flow.id, 2);
    expect(log.map((r) => [r.triggerId, r.pathsFailed, r.errors])).toEqual([
      [fleet.bound, 0, []],
      [fleet.bound, 0, []],
    ]);
    expect(log[0]?.pathsCompleted).toBe(3); // debug after the command, the state, the webhook
    expect(log[1]?.pathsCompleted).toBe(1); // 25: the false branch, which is empty
    const events = await debug.waitFor(1);
    expect(events[0]).toMatchObject({
      event: 'debug',
      json: { message: `fan on for ${fleet.bound}`, value: { temperature: 31.5 } },
    });
    debug.close();
    const stats = ok(
      await server.http<{ stats: { runCount: number; errorCount: number } }>('GET', `${app()}/flows/${flow.id}`),
      200,
    );
    expect(stats.stats).toEqual({ runCount: 2, errorCount: 0 });
    await server.endClients();
    ok(await server.http('DELETE', `${app()}/flows/${flow.id}`), 200);
  });

  it('runs the same flow when the gateway reports over REST with its own token, and stops when disabled', async () => {
    const flow = ok(await server.http<{ id: string }>('POST', `${app()}/flows`, fanFlow()));
    const token = await deviceToken(server, fleet.gateway, fleet);
    ok(await server.http('POST', `${app()}/devices/${fleet.bound}/state`, { data: { temperature: 40 } }, token), 200);
    const [run] = await runs(flow.id, 1);
    expect(run).toMatchObject({ triggerType: 'deviceId', triggerId: fleet.bound, pathsFailed: 0 });
    expect(posted.find((p) => (p.body as { temperature: number }).temperature === 40)).toEqual({
      method: 'POST',
      url: '/hooks/hot',
      body: { peripheral: fleet.bound, name: 'bound', temperature: 40, via: fleet.gateway },
    });
    const history = ok(
      await server.http<Array<{ name: string; routedTo: string[] }>>(
        'GET',
        `${app()}/devices/${fleet.bound}/command?limit=1`,
      ),
      200,
    );
    expect(history[0]?.name).toBe('fan');

    ok(await server.http('PATCH', `${app()}/flows/${flow.id}`, { enabled: false }), 200);
    ok(await server.http('POST', `${app()}/devices/${fleet.bound}/state`, { data: { temperature: 41 } }, token), 200);
    await server.running.platform.drain();
    await server.running.workflows.engine.flushRuns();
    expect(ok(await server.http<FlowRunEntry[]>('GET', `${app()}/flows/${flow.id}/logs`), 200)).toHaveLength(1);
    ok(await server.http('DELETE', `${app()}/flows/${flow.id}`), 200);
  });

  it('runs a pinned version instead of the live definition, and presses virtual buttons', async () => {
    const definition = (label: string) => ({
      triggers: [{ type: 'virtualButton', key: 'go', outputIds: [['set']] }],
      nodes: [
        {
          id: 'set',
          type: 'DeviceChangeStateNode',
          config: { deviceId: summary, attrInfos: [{ key: 'lastHot', valueTemplate: `${label} {{data.who}}` }] },
          outputIds: [[]],
        },
      ],
    });
    const flow = ok(
      await server.http<{ id: string }>('POST', `${app()}/flows`, { name: 'buttons', ...definition('v1') }),
    );
    const version = ok(
      await server.http<{ id: string; version: string }>('POST', `${app()}/flows/${flow.id}/versions`, {
        version: 'v1',
      }),
    );
    ok(
      await server.http('PATCH', `${app()}/flows/${flow.id}`, {
        ...definition('develop'),
        defaultVersionId: version.id,
      }),
      200,
    );
    ok(
      await server.http('POST', `${app()}/flows/${flow.id}/virtualButton`, { key: 'go', payload: { who: 'ana' } }),
      200,
    );
    const [run] = await runs(flow.id, 1);
    expect(run).toMatchObject({ flowVersion: 'v1', triggerType: 'virtualButton', pathsCompleted: 1 });
    const latest = ok(
      await server.http<Array<{ data: { lastHot?: string } }>>('GET', `${app()}/devices/${summary}/state`),
      200,
    );
    expect(latest[0]?.data.lastHot).toBe('v1 ana');
    const missing = await server.http('POST', `${app()}/flows/${flow.id}/virtualButton`, { key: 'nope' });
    expect(missing.status).toBe(404);
    expect((await server.http('POST', `${app()}/flows/${flow.id}/versions`, { version: 'v1' })).status).toBe(409);
  });

  it('imports a flow exported from Losant as it is (export-only fields ignored) and runs it', async () => {
    const sensor = ok(
      await server.http<{ id: string }>('POST', `${app()}/devices`, {
        name: 'exported sensor',
        attributes: [{ name: 'temperature', dataType: 'number' }],
      }),
    ).id;
    const exported = readFileSync(new URL('./fixtures/losant-export.json', import.meta.url), 'utf8')
      .replaceAll('__DEVICE_ID__', sensor)
      .replaceAll('__SUMMARY_ID__', summary);
    const body = JSON.parse(exported) as { nodes: Array<{ meta: unknown }>; triggers: Array<{ meta: unknown }> };
    const flow = ok(
      await server.http<{ id: string; flowClass: string; stats: unknown; nodes: Array<{ meta: unknown }> }>(
        'POST',
        `${app()}/flows`,
        body,
      ),
    );
    expect(flow.id).not.toBe('65f1c0a2b3d4e5f601234567');
    expect(flow.flowClass).toBe('cloud');
    expect(flow.stats).toEqual({ runCount: 0, errorCount: 0 });
    expect(flow.nodes.map((n) => n.meta)).toEqual(body.nodes.map((n) => n.meta));
    const debug = await openStream(server, `${app()}/flows/${flow.id}/debugStream`);

    ok(await server.http('POST', `${app()}/devices/${sensor}/state`, { data: { temperature: 35 } }), 200);
    const recorded = await eventually(async () => {
      const states = ok(
        await server.http<Array<{ data: Record<string, unknown>; reportedBy: string }>>(
          'GET',
          `${app()}/devices/${summary}/state`,
        ),
        200,
      );
      return states.find((st) => st.data.lastHot === 'north 95F');
    });
    expect(recorded).toMatchObject({ data: { hotTemperature: 35 }, reportedBy: `flow:${flow.id}` });
    ok(
      await server.http('POST', `${app()}/flows/${flow.id}/virtualButton`, {
        key: 'bands-button',
        payload: { temperature: 20 },
      }),
      200,
    );
    const events = await debug.waitFor(2);
    debug.close();
    expect(events.map((e) => (e.json as { message: string }).message).sort()).toEqual(['fine at 68F', 'recorded 95F']);
    const log = await runs(flow.id, 2);
    expect(log.flatMap((r) => r.errors)).toEqual([]);
    // An export of another flow class is still refused, naming the field.
    const edge = await server.http<{ message: string }>('POST', `${app()}/flows`, { ...body, flowClass: 'edge' });
    expect(edge.status).toBe(400);
    expect(edge.body.message).toContain('flowClass');
    ok(await server.http('DELETE', `${app()}/flows/${flow.id}`), 200);
  });

  it('stops a chain of workflow-written states that trigger themselves, and records why', async () => {
    const flow = ok(
      await server.http<{ id: string }>('POST', `${app()}/flows`, {
        name: 'echo',
        triggers: [{ type: 'deviceId', key: fleet.standalone, outputIds: [['again']] }],
        nodes: [
          {
            id: 'again',
            type: 'DeviceChangeStateNode',
            config: {
              deviceId: fleet.standalone,
              timeSourceType: 'now',
              attrInfos: [{ key: 'temperature', valueTemplate: '{{data.temperature}}' }],
            },
            outputIds: [[]],
          },
        ],
      }),
    );
    ok(await server.http('POST', `${app()}/devices/${fleet.standalone}/state`, { data: { temperature: 1 } }), 200);
    const log = await runs(flow.id, 10);
    expect(log.some((r) => r.errors.some((e) => e.message.includes('deeper than 8')))).toBe(true);
    await server.running.platform.drain();
    const states = ok(
      await server.http<unknown[]>('GET', `${app()}/devices/${fleet.standalone}/state?limit=100&duration=600000`),
      200,
    );
    // The first state, and one per level of the chain: bounded.
    expect(states.length).toBeLessThanOrEqual(10);
    ok(await server.http('DELETE', `${app()}/flows/${flow.id}`), 200);
  });

  it('ends a debug stream at once when the token it was opened with is revoked', async () => {
    const flow = ok(
      await server.http<{ id: string }>('POST', `${app()}/flows`, {
        name: 'watched',
        triggers: [{ type: 'virtualButton', key: 'go', outputIds: [[]] }],
      }),
    );
    const made = ok(
      await server.http<{ id: string; token: string }>('POST', `${app()}/tokens`, { name: 'watcher', role: 'viewer' }),
    );
    const stream = await openStream(server, `${app()}/flows/${flow.id}/debugStream`, { token: made.token });
    expect(stream.status).toBe(200);
    ok(await server.http('DELETE', `${app()}/tokens/${made.id}`), 200);
    const events = await stream.waitForEnd();
    expect(events.at(-1)).toMatchObject({ event: 'closed', json: { message: expect.stringContaining('revoked') } });
    ok(await server.http('DELETE', `${app()}/flows/${flow.id}`), 200);
  });

  it('lets viewers read flows and their logs, and only editors change them', async () => {
    const viewer = ok(
      await server.http<{ token: string }>('POST', `${app()}/tokens`, { name: 'v', role: 'viewer' }),
    ).token;
    expect((await server.http('GET', `${app()}/flows`, undefined, viewer)).status).toBe(200);
    expect((await server.http('POST', `${app()}/flows`, { name: 'x' }, viewer)).status).toBe(403);
    const other = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'elsewhere' }));
    expect((await server.http('GET', `/applications/${other.id}/flows`, undefined, viewer)).status).toBe(404);
  });
});
