/**
 * The workflow nodes beyond the first release, against a real server: Switch, Throttle, Delay,
 * workflow storage and On Change (both surviving a restart on the same data directory),
 * Device: Get, and HTTP against a real local HTTP server (JSON, timeout, oversize, non-2xx).
 * Runs are observed through the flow's debug stream and run log, as a user would.
 */
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, eventually, ok, type SeedFleet, startTestServer, type TestServer } from '../helpers/server.js';
import { openStream, type SseStream } from '../helpers/sse.js';

interface FlowRunEntry {
  pathsCompleted: number;
  pathsFailed: number;
  errors: Array<{ nodeId: string; nodeType: string; message: string }>;
}

const button = (first: string) => [{ type: 'virtualButton', key: 'go', outputIds: [[first]] }];
const debugNode = (id: string, message: string, property?: string) => ({
  id,
  type: 'DebugNode',
  config: { message, ...(property ? { property } : {}) },
  outputIds: [[]],
});

/** A local HTTP server (loopback) that records requests and answers by path. */
async function startWebServer(): Promise<{ server: Server; url: string; received: Array<Record<string, unknown>> }> {
  const received: Array<Record<string, unknown>> = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      received.push({ method: req.method, url: req.url, headers: req.headers, body: text });
      if (req.url === '/json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ ok: true, got: text ? JSON.parse(text) : null }));
      } else if (req.url === '/slow') {
        // Never answers: the node's timeout ends the request.
      } else if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        const chunk = Buffer.alloc(64 * 1024, 120);
        let sent = 0;
        const pump = () => {
          while (sent < 6 * 1024 * 1024) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => {});
        pump();
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('no such thing');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, received };
}

describe('workflow nodes', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-nodes-'));
  let server: TestServer;
  let fleet: SeedFleet;
  let web: Awaited<ReturnType<typeof startWebServer>>;
  const app = () => `/applications/${fleet.applicationId}`;

  beforeAll(async () => {
    server = await startTestServer({ dataDir, keepData: true });
    fleet = await createFleet(server, { application: { rateLimit: { messages: 0, windowSeconds: 15 } } });
    web = await startWebServer();
  });
  afterAll(async () => {
    web.server.closeAllConnections();
    await new Promise((resolve) => web.server.close(resolve));
    await server.stop();
  });

  async function createFlow(body: Record<string, unknown>): Promise<string> {
    return ok(await server.http<{ id: string }>('POST', `${app()}/flows`, body)).id;
  }
  async function press(flowId: string, payload: unknown): Promise<void> {
    ok(await server.http('POST', `${app()}/flows/${flowId}/virtualButton`, { key: 'go', payload }), 200);
  }
  async function runs(flowId: string, count: number): Promise<FlowRunEntry[]> {
    return eventually(async () => {
      const r = ok(await server.http<FlowRunEntry[]>('GET', `${app()}/flows/${flowId}/logs?limit=100`), 200);
      return r.length >= count ? r : undefined;
    }, 10_000);
  }
  /** Presses, then waits for the next debug event of the flow; answers its message and value. */
  async function pressAndSee(
    stream: SseStream,
    flowId: string,
    payload: unknown,
  ): Promise<{ message: string; value: unknown }> {
    const before = stream.events.length;
    await press(flowId, payload);
    const events = await stream.waitFor(before + 1, 10_000);
    return events[before]?.json as { message: string; value: unknown };
  }

  it('refuses bad configs of the new nodes, naming node and field', async () => {
    const first = await server.http<{ message: string }>('POST', `${app()}/flows`, {
      name: 'bad',
      triggers: button('s'),
      nodes: [
        { id: 's', type: 'SwitchNode', config: { cases: [] }, outputIds: [[]] },
        {
          id: 's2',
          type: 'SwitchNode',
          config: { switchTemplate: '{{data.x}}', cases: [{ caseTemplate: 'a' }, { caseTemplate: 'b' }] },
          outputIds: [[], []],
        },
        { id: 't', type: 'ThrottleNode', config: { ratePerMinute: 1000 }, outputIds: [[], []] },
        { id: 'd', type: 'DelayNode', config: { delay: '61' }, outputIds: [[]] },
        { id: 'sv', type: 'StoreValueNode', config: { keyName: 'k' }, outputIds: [[]] },
        { id: 'gv', type: 'GetValueNode', config: { getAll: true, keyName: 'k', valuePath: 'x' }, outputIds: [[]] },
      ],
    });
    expect(first.status).toBe(400);
    for (const fragment of [
      'nodes/0 (id "s", SwitchNode): config/switchTemplate is required',
      'nodes/1 (id "s2", SwitchNode): outputIds must hold 3 outputs, not 2',
      'nodes/2 (id "t", ThrottleNode): config/ratePerMinute is required (a number above 0, at most 600)',
      'nodes/3 (id "d", DelayNode): config/delay must be 0 to 60 seconds',
      'nodes/4 (id "sv", StoreValueNode): config/valueType is required',
      'nodes/5 (id "gv", GetValueNode): config/getAll is not supported',
    ]) {
      expect(first.body.message).toContain(fragment);
    }
    const second = await server.http<{ message: string }>('POST', `${app()}/flows`, {
      name: 'bad',
      triggers: button('c'),
      nodes: [
        {
          id: 'c',
          type: 'BranchOnChangeNode',
          config: { valuePath: 'data.v', changeType: 'value' },
          outputIds: [[], []],
        },
        {
          id: 'g',
          type: 'GetDeviceNode',
          config: { findMethod: 'query', idTemplate: 'x', resultPath: 'y' },
          outputIds: [[]],
        },
        { id: 'h', type: 'HttpNode', config: { uriTemplate: 'http://x', timeoutTemplate: '45' }, outputIds: [[]] },
        {
          id: 'h2',
          type: 'HttpNode',
          config: { uriTemplate: 'http://x', method: 'POST', bodyType: 'multipart' },
          outputIds: [[]],
        },
        { id: 'h3', type: 'HttpNode', config: { method: 'GET' }, outputIds: [[]] },
      ],
    });
    expect(second.status).toBe(400);
    for (const fragment of [
      'nodes/0 (id "c", BranchOnChangeNode): config/changeThreshold is required for changeType value',
      'nodes/1 (id "g", GetDeviceNode): config/findMethod "query" is not supported',
      'nodes/2 (id "h", HttpNode): config/timeoutTemplate must be more than 0 and at most 30 seconds',
      'nodes/3 (id "h2", HttpNode): config/bodyType "multipart" is not supported',
      'nodes/4 (id "h3", HttpNode): config/uriTemplate is required',
    ]) {
      expect(second.body.message).toContain(fragment);
    }
  });

  it('switches on a template: each case its output, anything else the default', async () => {
    const flowId = await createFlow({
      name: 'switch',
      triggers: button('sw'),
      nodes: [
        {
          id: 'sw',
          type: 'SwitchNode',
          config: {
            switchTemplate: '{{lower data.level}}',
            cases: [
              { caseTemplate: 'low', caseLabel: 'Low' },
              { caseTemplate: '{{data.alarm}}', caseLabel: 'Alarm' },
            ],
          },
          outputIds: [['other'], ['low'], ['alarm']],
        },
        debugNode('other', 'default {{data.level}}'),
        debugNode('low', 'low {{data.level}}'),
        debugNode('alarm', 'alarm {{data.level}}'),
      ],
    });
    const stream = await openStream(server, `${app()}/flows/${flowId}/debugStream`);
    const seen = [];
    for (const data of [{ level: 'LOW' }, { level: 'red', alarm: 'red' }, { level: 'mid' }]) {
      seen.push((await pressAndSee(stream, flowId, data)).message);
    }
    stream.close();
    expect(seen).toEqual(['low LOW', 'alarm red', 'default mid']);
  });

  it('throttles per flow and per rendered throttle id', async () => {
    const flowId = await createFlow({
      name: 'throttle',
      triggers: button('t'),
      nodes: [
        {
          id: 't',
          type: 'ThrottleNode',
          config: { ratePerMinute: 1, throttleIdTemplate: '{{data.who}}', timeSincePath: 'working.since' },
          outputIds: [['held'], ['passed']],
        },
        debugNode('held', 'held {{data.who}}', 'working'),
        debugNode('passed', 'passed {{data.who}}'),
      ],
    });
    const stream = await openStream(server, `${app()}/flows/${flowId}/debugStream`);
    const seen = [];
    for (const who of ['ana', 'ana', 'bo', 'ana']) seen.push(await pressAndSee(stream, flowId, { who }));
    stream.close();
    expect(seen.map((s) => s.message)).toEqual(['passed ana', 'held ana', 'passed bo', 'held ana']);
    // Another flow with the same throttle keeps its own.
    const twin = await createFlow({
      name: 'throttle twin',
      triggers: button('t'),
      nodes: [
        {
          id: 't',
          type: 'ThrottleNode',
          config: { ratePerMinute: 1, throttleIdTemplate: '{{data.who}}' },
          outputIds: [['held'], ['passed']],
        },
        debugNode('held', 'held {{data.who}}'),
        debugNode('passed', 'passed {{data.who}}'),
      ],
    });
    const twinStream = await openStream(server, `${app()}/flows/${twin}/debugStream`);
    expect((await pressAndSee(twinStream, twin, { who: 'ana' })).message).toBe('passed ana');
    twinStream.close();
    expect(seen[1]?.value).toMatchObject({ since: expect.any(Number) });
  });

  it('delays by a template, and refuses a rendered delay over 60 s as a run error', async () => {
    const flowId = await createFlow({
      name: 'delay',
      triggers: button('d'),
      nodes: [
        { id: 'd', type: 'DelayNode', config: { delay: '{{data.s}}' }, outputIds: [['after']] },
        debugNode('after', 'after {{data.s}}'),
      ],
    });
    const stream = await openStream(server, `${app()}/flows/${flowId}/debugStream`);
    expect((await pressAndSee(stream, flowId, { s: 0.05 })).message).toBe('after 0.05');
    await press(flowId, { s: 61 });
    const errors = await stream.waitFor((events) => events.some((e) => e.event === 'error'), 10_000);
    stream.close();
    expect(errors.find((e) => e.event === 'error')?.json).toMatchObject({
      nodeId: 'd',
      message: expect.stringContaining('is not 0 to 60 seconds'),
    });
  });

  it('gets a device by id with its tags, attributes, connection info and state', async () => {
    ok(
      await server.http('PATCH', `${app()}/devices/${fleet.bound}`, {
        tags: [
          { key: 'room', value: 'lab' },
          { key: 'room', value: 'annex' },
        ],
      }),
      200,
    );
    ok(await server.http('POST', `${app()}/devices/${fleet.bound}/state`, { data: { temperature: 22.5 } }), 200);
    await server.running.platform.drain();
    const flowId = await createFlow({
      name: 'get device',
      triggers: button('g'),
      nodes: [
        {
          id: 'g',
          type: 'GetDeviceNode',
          config: {
            idTemplate: '{{data.id}}',
            resultPath: 'working.device',
            includeState: true,
            attributes: ['temperature'],
            tagsAsObject: true,
          },
          outputIds: [['show']],
        },
        debugNode('show', 'device', 'working.device'),
      ],
    });
    const stream = await openStream(server, `${app()}/flows/${flowId}/debugStream`);
    const found = (await pressAndSee(stream, flowId, { id: fleet.bound })).value as Record<string, unknown>;
    expect(found).toMatchObject({
      id: fleet.bound,
      name: 'bound',
      deviceClass: 'peripheral',
      gatewayId: fleet.gateway,
      tags: { room: ['lab', 'annex'] },
      connectionInfo: { connected: null },
      compositeState: { temperature: { value: 22.5 } },
    });
    expect((found.attributes as Array<{ name: string }>).map((a) => a.name)).toContain('temperature');
    expect((await pressAndSee(stream, flowId, { id: 'nope' })).value).toBeNull();
    // A connected gateway: connected, with its connection time.
    const gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
    const gw = (await pressAndSee(stream, flowId, { id: fleet.gateway })).value as Record<string, unknown>;
    expect(gw).toMatchObject({ id: fleet.gateway, deviceClass: 'gateway', connectionInfo: { connected: 1 } });
    expect(typeof (gw.connectionInfo as { time: unknown }).time).toBe('string');
    await gateway.endAsync();
    stream.close();
  });

  it('calls HTTP: JSON parsed into the payload, non-2xx as a response, timeout and oversize as run errors naming the node', async () => {
    const flowId = await createFlow({
      name: 'http',
      triggers: button('web'),
      nodes: [
        {
          id: 'web',
          type: 'HttpNode',
          config: {
            method: 'POST',
            uriTemplate: `${web.url}{{data.path}}`,
            bodyType: 'jsonTemplate',
            bodyTemplate: '{"who": "{{data.who}}", "n": {{data.n}}}',
            headerInfo: [{ key: 'x-flow', valueTemplate: '{{flowName}}' }],
            timeoutTemplate: '1',
            responsePath: 'working.res',
          },
          outputIds: [['show']],
        },
        debugNode('show', 'status {{working.res.statusCode}}', 'working.res'),
      ],
    });
    const stream = await openStream(server, `${app()}/flows/${flowId}/debugStream`);
    const good = await pressAndSee(stream, flowId, { path: '/json', who: 'ana', n: 3 });
    expect(good.message).toBe('status 200');
    expect(good.value).toMatchObject({ statusCode: 200, body: { ok: true, got: { who: 'ana', n: 3 } } });
    expect(web.received.at(-1)).toMatchObject({ method: 'POST', url: '/json', headers: { 'x-flow': 'http' } });

    const missing = await pressAndSee(stream, flowId, { path: '/missing', who: 'x', n: 1 });
    expect(missing.value).toMatchObject({ statusCode: 404, body: 'no such thing' });

    await press(flowId, { path: '/slow', who: 'x', n: 1 });
    await press(flowId, { path: '/big', who: 'x', n: 1 });
    const log = await eventually(async () => {
      const r = await runs(flowId, 4);
      return r.filter((run) => run.errors.length > 0).length >= 2 ? r : undefined;
    }, 15_000);
    stream.close();
    const messages = log.flatMap((r) => r.errors.map((e) => `${e.nodeId} ${e.nodeType} ${e.message}`));
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^web HttpNode HttpNode web: POST .*\/slow failed: no response within 1 s$/),
        expect.stringMatching(
          /^web HttpNode HttpNode web: POST .*\/big failed: the response is larger than 5242880 bytes$/,
        ),
      ]),
    );
  });

  it('writes a transport failure to errorPath when errorBehavior is payloadPath', async () => {
    const flowId = await createFlow({
      name: 'http soft',
      triggers: button('web'),
      nodes: [
        {
          id: 'web',
          type: 'HttpNode',
          config: {
            uriTemplate: `${web.url}/slow`,
            timeoutTemplate: '0.2',
            errorBehavior: 'payloadPath',
            errorPath: 'working.err',
          },
          outputIds: [['show']],
        },
        debugNode('show', 'failed softly', 'working.err'),
      ],
    });
    const stream = await openStream(server, `${app()}/flows/${flowId}/debugStream`);
    const seen = await pressAndSee(stream, flowId, {});
    stream.close();
    expect(seen.value).toEqual({ type: 'Timeout', message: 'no response within 0.2 s' });
  });

  it('keeps workflow storage and On Change values per flow across a restart on the same data directory', async () => {
    const counterFlow = await createFlow({
      name: 'counter',
      triggers: button('get'),
      nodes: [
        {
          id: 'get',
          type: 'GetValueNode',
          config: {
            keyName: 'count-{{data.who}}',
            valuePath: 'working.before',
            defaultValue: '0',
            defaultValueType: 'json',
          },
          outputIds: [['inc']],
        },
        {
          id: 'inc',
          type: 'StoreValueNode',
          config: { keyName: 'count-{{data.who}}', valueType: 'incr', value: '1', resultPath: 'working.after' },
          outputIds: [['show']],
        },
        debugNode('show', '{{working.before}} → {{working.after}}'),
      ],
    });
    const changeFlow = await createFlow({
      name: 'on change',
      triggers: button('change'),
      nodes: [
        {
          id: 'change',
          type: 'BranchOnChangeNode',
          config: { valuePath: 'data.v', onChangeIdTemplate: '{{data.who}}', prevValuePath: 'working.prev' },
          outputIds: [['same'], ['changed']],
        },
        debugNode('same', 'same {{working.prev}} {{data.v}}'),
        debugNode('changed', 'changed {{working.prev}} {{data.v}}'),
      ],
    });
    const bigFlow = await createFlow({
      name: 'too big',
      triggers: button('big'),
      nodes: [
        {
          id: 'big',
          type: 'StoreValueNode',
          config: { keyName: 'big', valueType: 'path', valuePath: 'data.blob' },
          outputIds: [[]],
        },
      ],
    });
    // A second flow with the same key sees nothing of the first one's value.
    const otherFlow = await createFlow({
      name: 'other counter',
      triggers: button('get'),
      nodes: [
        {
          id: 'get',
          type: 'GetValueNode',
          config: { keyName: 'count-ana', valuePath: 'working.v' },
          outputIds: [['show']],
        },
        debugNode('show', 'other {{defaultTo working.v "none"}}'),
      ],
    });

    let counter = await openStream(server, `${app()}/flows/${counterFlow}/debugStream`);
    let change = await openStream(server, `${app()}/flows/${changeFlow}/debugStream`);
    const other = await openStream(server, `${app()}/flows/${otherFlow}/debugStream`);
    const counts = [];
    for (const who of ['ana', 'ana', 'bo']) counts.push((await pressAndSee(counter, counterFlow, { who })).message);
    expect(counts).toEqual(['0 → 1', '1 → 2', '0 → 1']);
    expect((await pressAndSee(other, otherFlow, {})).message).toBe('other none');
    other.close();
    const changes = [];
    for (const v of [1, 1, 2]) changes.push((await pressAndSee(change, changeFlow, { who: 'ana', v })).message);
    changes.push((await pressAndSee(change, changeFlow, { who: 'bo', v: 2 })).message);
    expect(changes).toEqual(['same  1', 'same 1 1', 'changed 1 2', 'same  2']);

    await press(bigFlow, { blob: 'x'.repeat(17 * 1024) });
    const [bigRun] = await runs(bigFlow, 1);
    expect(bigRun?.errors[0]).toMatchObject({ nodeId: 'big', nodeType: 'StoreValueNode' });
    expect(bigRun?.errors[0]?.message).toContain('at most 16384');

    counter.close();
    change.close();
    await server.stop();
    server = await startTestServer({ dataDir, keepData: true });
    counter = await openStream(server, `${app()}/flows/${counterFlow}/debugStream`);
    change = await openStream(server, `${app()}/flows/${changeFlow}/debugStream`);
    expect((await pressAndSee(counter, counterFlow, { who: 'ana' })).message).toBe('2 → 3');
    expect((await pressAndSee(change, changeFlow, { who: 'ana', v: 2 })).message).toBe('same 2 2');
    expect((await pressAndSee(change, changeFlow, { who: 'ana', v: 3 })).message).toBe('changed 2 3');
    counter.close();
    change.close();
  });
});
