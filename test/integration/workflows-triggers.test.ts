/**
 * Workflow triggers against a real server with real MQTT clients: connect and disconnect (a
 * gateway's own, and its peripherals' derived ones), inactivity on a clock the test moves,
 * timers driven by hand (and one on real time), webhooks over REST and their public URL, and
 * mqttTopic over an application's custom topics.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WEBHOOK_CALL_LIMIT } from '../../src/api/routes/webhooks.js';
import type { DebugEntry } from '../../src/workflows/engine.js';
import { ManualTimers } from '../../src/workflows/timers.js';
import { createFleet, eventually, ok, type SeedFleet, startTestServer, type TestServer } from '../helpers/server.js';

interface RunPayload {
  time: string;
  triggerType: string;
  triggerId: string;
  relayId?: string;
  relayType?: string;
  deviceName?: string;
  data: Record<string, unknown>;
}

describe('workflow triggers', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let offset = 0;
  const timers = new ManualTimers();
  const app = () => `/applications/${fleet.applicationId}`;

  beforeAll(async () => {
    server = await startTestServer({ clock: () => Date.now() + offset, workflowTimers: timers });
    fleet = await createFleet(server, { application: { rateLimit: { messages: 10_000, windowSeconds: 10 } } });
    for (const id of [fleet.bound, fleet.floating]) {
      ok(await server.http('PATCH', `${app()}/devices/${id}`, { tags: [{ key: 'kind', value: 'sensor' }] }), 200);
    }
  });
  afterAll(() => server.stop());

  /** A flow whose triggers all lead to a Debug node; `seen` collects each run's payload. */
  async function debugFlow(triggers: Array<Record<string, unknown>>, name = 'triggers') {
    const flow = ok(
      await server.http<{ id: string }>('POST', `${app()}/flows`, {
        name,
        triggers: triggers.map((t) => ({ config: {}, ...t, outputIds: [['debug']] })),
        nodes: [{ id: 'debug', type: 'DebugNode', config: {}, outputIds: [[]] }],
      }),
    );
    const seen: RunPayload[] = [];
    const stop = server.running.workflows.engine.subscribeDebug(flow.id, (entry: DebugEntry) => {
      if (entry.kind === 'debug') seen.push(JSON.parse(JSON.stringify(entry.value)) as RunPayload);
    });
    return {
      id: flow.id,
      seen,
      of: (type: string) => seen.filter((p) => p.triggerType === type),
      async remove() {
        stop();
        ok(await server.http('DELETE', `${app()}/flows/${flow.id}`), 200);
      },
    };
  }

  /** Every commit announced and every run it started finished. */
  async function settle(): Promise<void> {
    await server.running.platform.drain();
    await server.running.workflows.engine.idle();
  }

  async function refused(trigger: Record<string, unknown>): Promise<string> {
    const r = await server.http<{ type: string; message: string }>('POST', `${app()}/flows`, {
      name: 'bad',
      triggers: [{ config: {}, outputIds: [[]], ...trigger }],
    });
    expect(r.status).toBe(400);
    expect(r.body.type).toBe('Validation');
    return r.body.message;
  }

  describe('connect and disconnect', () => {
    it("fires on a device's own connect and disconnect, with its address and message counts", async () => {
      const flow = await debugFlow([
        { type: 'deviceIdConnect', key: fleet.standalone },
        { type: 'deviceIdDisconnect', key: fleet.standalone },
      ]);
      const client = await server.connect(fleet.standalone, fleet.key, fleet.secret);
      const [connect] = await eventually(() => flow.of('deviceIdConnect').length === 1 && flow.of('deviceIdConnect'));
      expect(connect).toMatchObject({
        triggerId: fleet.standalone,
        deviceName: 'standalone',
        data: { connected: true, ipAddress: expect.any(String) },
      });
      await client.publishAsync(`losant/${fleet.standalone}/state`, JSON.stringify({ data: { temperature: 3 } }), {
        qos: 1,
      });
      await client.endAsync();
      const [gone] = await eventually(
        () => flow.of('deviceIdDisconnect').length === 1 && flow.of('deviceIdDisconnect'),
      );
      expect(gone).toMatchObject({
        triggerId: fleet.standalone,
        data: { connected: false, reason: 'Client disconnected', messagesFromClient: 1, messagesToClient: 0 },
      });
      await settle();
      expect(flow.seen).toHaveLength(2);
      await flow.remove();
    });

    it('disconnects a connection replaced by one with the same client id before the new one connects', async () => {
      const flow = await debugFlow([
        { type: 'deviceIdConnect', key: fleet.otherGateway },
        { type: 'deviceIdDisconnect', key: fleet.otherGateway },
      ]);
      const first = await server.connect(fleet.otherGateway, fleet.key, fleet.secret);
      const closed = new Promise<void>((resolve) => first.once('close', () => resolve()));
      const second = await server.connect(fleet.otherGateway, fleet.key, fleet.secret);
      await closed;
      await eventually(() => flow.of('deviceIdConnect').length >= 2);
      await second.endAsync();
      await eventually(() => flow.of('deviceIdDisconnect').length >= 2);
      await settle();
      expect(flow.seen.map((p) => [p.triggerType, p.data.reason])).toEqual([
        ['deviceIdConnect', undefined],
        ['deviceIdDisconnect', 'Duplicate client id'],
        ['deviceIdConnect', undefined],
        ['deviceIdDisconnect', 'Client disconnected'],
      ]);
      await flow.remove();
    });

    it("follows peripherals' derived status: a first report through a connected gateway connects; the gateway's disconnect disconnects each once", async () => {
      const flow = await debugFlow([
        { type: 'deviceTagConnect', key: 'kind/sensor' },
        { type: 'deviceTagDisconnect', key: 'kind/' },
        { type: 'deviceIdDisconnect', key: fleet.gateway },
      ]);
      const gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
      for (const id of [fleet.bound, fleet.floating, fleet.bound, fleet.floating]) {
        await gateway.publishAsync(`losant/${id}/state`, JSON.stringify({ data: { temperature: 20 } }), { qos: 1 });
      }
      await settle();
      const connects = flow.of('deviceTagConnect');
      // The gateway itself has no such tag; each peripheral connects once, however often it reports.
      expect(connects.map((p) => p.triggerId).sort()).toEqual([fleet.bound, fleet.floating].sort());
      for (const p of connects) expect(p.data).toEqual({ connected: true, gatewayId: fleet.gateway });
      expect(connects[0]?.relayId).toBe(fleet.gateway);

      await gateway.endAsync();
      await eventually(() => flow.of('deviceTagDisconnect').length >= 2 && flow.of('deviceIdDisconnect').length >= 1);
      await settle();
      const disconnects = flow.of('deviceTagDisconnect');
      expect(disconnects.map((p) => p.triggerId).sort()).toEqual([fleet.bound, fleet.floating].sort());
      for (const p of disconnects) {
        expect(p.data).toEqual({ connected: false, reason: 'gateway disconnected', gatewayId: fleet.gateway });
      }
      expect(flow.of('deviceIdDisconnect')).toHaveLength(1);

      // Reconnected, the gateway's next report for a peripheral connects it again.
      const again = await server.connect(fleet.gateway, fleet.key, fleet.secret);
      await again.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 21 } }), {
        qos: 1,
      });
      await settle();
      expect(flow.of('deviceTagConnect').map((p) => p.triggerId)).toEqual([
        ...connects.map((p) => p.triggerId),
        fleet.bound,
      ]);
      await again.endAsync();
      await eventually(() => flow.of('deviceTagDisconnect').length >= 3 && flow.of('deviceIdDisconnect').length >= 2);
      await settle();
      expect(flow.of('deviceTagDisconnect')).toHaveLength(3);
      await flow.remove();
    });

    it('disconnects a peripheral once when its peripheral timeout passes without a report, and not again with its gateway', async () => {
      const flow = await debugFlow([
        { type: 'deviceIdConnect', key: fleet.floating },
        { type: 'deviceIdDisconnect', key: fleet.floating },
        { type: 'deviceIdDisconnect', key: fleet.gateway },
      ]);
      const { peripheralTimeoutSeconds } = ok(
        await server.http<{ peripheralTimeoutSeconds: number }>('GET', app()),
        200,
      );
      const gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
      const report = async () => {
        await gateway.publishAsync(`losant/${fleet.floating}/state`, JSON.stringify({ data: { temperature: 5 } }), {
          qos: 1,
        });
        await settle();
      };
      await report();
      expect(flow.of('deviceIdConnect')).toHaveLength(1);
      offset += peripheralTimeoutSeconds * 1000 - 1000;
      server.running.platform.expirePeripherals();
      await settle();
      expect(flow.of('deviceIdDisconnect')).toHaveLength(0);
      offset += 2000;
      server.running.platform.expirePeripherals();
      server.running.platform.expirePeripherals();
      await settle();
      const timedOut = flow.of('deviceIdDisconnect');
      expect(timedOut.map((p) => [p.triggerId, p.data])).toEqual([
        [fleet.floating, { connected: false, reason: 'peripheral timeout', gatewayId: fleet.gateway }],
      ]);
      // Its next report connects it again; silent past the timeout, the next one disconnects it first.
      await report();
      offset += peripheralTimeoutSeconds * 1000 + 1000;
      await report();
      expect(flow.seen.map((p) => [p.triggerType, p.data.reason])).toEqual([
        ['deviceIdConnect', undefined],
        ['deviceIdDisconnect', 'peripheral timeout'],
        ['deviceIdConnect', undefined],
        ['deviceIdDisconnect', 'peripheral timeout'],
        ['deviceIdConnect', undefined],
      ]);
      offset += peripheralTimeoutSeconds * 1000 + 1000;
      server.running.platform.expirePeripherals();
      await gateway.endAsync();
      await eventually(() => flow.seen.some((p) => p.triggerId === fleet.gateway));
      await settle();
      expect(flow.seen.filter((p) => p.triggerType === 'deviceIdDisconnect').map((p) => p.triggerId)).toEqual([
        fleet.floating,
        fleet.floating,
        fleet.floating,
        fleet.gateway,
      ]);
      await flow.remove();
    });

    it("times out the peripheral whose last report is oldest, whichever of a gateway's peripherals reported first", async () => {
      const flow = await debugFlow([
        { type: 'deviceIdDisconnect', key: fleet.floating },
        { type: 'deviceIdDisconnect', key: fleet.bound },
      ]);
      const { peripheralTimeoutSeconds } = ok(
        await server.http<{ peripheralTimeoutSeconds: number }>('GET', app()),
        200,
      );
      const gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
      const report = async (peripheral: string) => {
        await gateway.publishAsync(`losant/${peripheral}/state`, JSON.stringify({ data: { temperature: 7 } }), {
          qos: 1,
        });
        await settle();
      };
      await report(fleet.floating);
      offset += 10_000;
      await report(fleet.bound);
      offset += 10_000;
      await report(fleet.floating); // now the newer of the two
      // The bound one is 5 s past the timeout, the floating one 5 s short of it.
      offset += peripheralTimeoutSeconds * 1000 - 5_000;
      server.running.platform.expirePeripherals();
      await settle();
      expect(flow.seen.map((p) => [p.triggerId, p.data.reason])).toEqual([[fleet.bound, 'peripheral timeout']]);
      offset += 10_000;
      server.running.platform.expirePeripherals();
      await settle();
      expect(flow.seen.map((p) => [p.triggerId, p.data.reason])).toEqual([
        [fleet.bound, 'peripheral timeout'],
        [fleet.floating, 'peripheral timeout'],
      ]);
      await gateway.endAsync();
      await flow.remove();
    });

    it('refuses a connect trigger without a device id or a tag', async () => {
      expect(await refused({ type: 'deviceIdConnect', key: 'gateway' })).toContain('key must be a device id');
      expect(await refused({ type: 'deviceTagDisconnect', key: 'notag' })).toContain('key must be "tagKey/tagValue"');
    });
  });

  describe('inactivity', () => {
    it('fires once per device after config.seconds without a report, and again only after it reported since', async () => {
      const flow = await debugFlow([
        { type: 'deviceIdInactivity', key: fleet.standalone, config: { seconds: 60 } },
        { type: 'deviceTagInactivity', key: 'kind/sensor', config: { seconds: 120 } },
      ]);
      const { engine } = server.running.workflows;
      const { platform } = server.running;
      const report = async (id: string) => {
        ok(await server.http('POST', `${app()}/devices/${id}/state`, { data: { temperature: 1 } }), 200);
        await platform.drain();
        await engine.idle();
      };
      await report(fleet.standalone);
      await report(fleet.bound);
      offset += 30_000;
      engine.checkInactivity();
      await settle();
      expect(flow.seen).toHaveLength(0);

      offset += 31_000; // 61 s
      engine.checkInactivity();
      engine.checkInactivity();
      await settle();
      expect(flow.seen).toHaveLength(1);
      expect(flow.seen[0]).toMatchObject({
        triggerType: 'deviceIdInactivity',
        triggerId: fleet.standalone,
        relayType: 'timer',
        data: { inactivitySeconds: 60 },
      });

      offset += 60_000; // 121 s: the tagged peripheral too, once
      engine.checkInactivity();
      engine.checkInactivity();
      await settle();
      expect(flow.of('deviceTagInactivity').map((p) => [p.triggerId, p.data.inactivitySeconds])).toEqual([
        [fleet.bound, 120],
      ]);
      expect(flow.of('deviceIdInactivity')).toHaveLength(1);

      await report(fleet.standalone);
      offset += 61_000;
      engine.checkInactivity();
      await settle();
      expect(flow.of('deviceIdInactivity')).toHaveLength(2);
      expect(flow.of('deviceTagInactivity')).toHaveLength(1);
      await flow.remove();
    });

    it('refuses an inactivity trigger without seconds', async () => {
      expect(await refused({ type: 'deviceIdInactivity', key: fleet.standalone })).toContain('config/seconds');
      expect(await refused({ type: 'deviceTagInactivity', key: 'a/b', config: { seconds: 0 } })).toContain(
        'config/seconds',
      );
    });
  });

  describe('timer', () => {
    it('runs on an interval and on a cron schedule in a time zone, and stops when the flow is disabled', async () => {
      const flow = await debugFlow([
        { type: 'timer', key: 'every-5', config: { seconds: 5 } },
        { type: 'timer', config: { cron: '0 9 * * 1-5', tz: 'Europe/Berlin' } },
        { type: 'timer', config: { cron: '*/10 * * * * *' } },
      ]);
      const mine = () => timers.running.slice(-3);
      expect(mine().map((t) => [t.kind, t.schedule, t.timezone])).toEqual([
        ['every', 5000, undefined],
        ['cron', '0 9 * * 1-5', 'Europe/Berlin'],
        ['cron', '*/10 * * * * *', 'UTC'],
      ]);
      expect(timers.fire(5000)).toBe(1);
      expect(timers.fire('0 9 * * 1-5')).toBe(1);
      await settle();
      expect(flow.seen.map((p) => [p.triggerType, p.triggerId, p.data])).toEqual([
        ['timer', 'every-5', {}],
        ['timer', `${flow.id}-timer-1`, {}],
      ]);
      ok(await server.http('PATCH', `${app()}/flows/${flow.id}`, { enabled: false }), 200);
      expect(timers.running.filter((t) => t.schedule === 5000)).toHaveLength(0);
      expect(timers.fire()).toBe(0);
      await settle();
      expect(flow.seen).toHaveLength(2);
      await flow.remove();
    });

    it('refuses a bad cron, a bad time zone, an interval under a second, or neither, naming the field', async () => {
      expect(await refused({ type: 'timer', config: { cron: 'every tuesday' } })).toContain('config/cron');
      expect(await refused({ type: 'timer', config: { cron: '61 * * * *' } })).toContain('config/cron');
      expect(await refused({ type: 'timer', config: { cron: '* * * *' } })).toContain('config/cron must have 5 fields');
      expect(await refused({ type: 'timer', config: { cron: '0 9 * * *', tz: 'Mars/Olympus' } })).toContain(
        'config/tz',
      );
      expect(await refused({ type: 'timer', config: { seconds: 0.5 } })).toContain('config/seconds');
      expect(await refused({ type: 'timer', config: {} })).toContain('config needs config.seconds');
    });

    it('fires on real time with a one-second interval', async () => {
      const real = await startTestServer();
      try {
        const fleetReal = await createFleet(real);
        const flow = ok(
          await real.http<{ id: string }>('POST', `/applications/${fleetReal.applicationId}/flows`, {
            name: 'tick',
            triggers: [{ type: 'timer', config: { seconds: 1 }, outputIds: [['debug']] }],
            nodes: [{ id: 'debug', type: 'DebugNode', config: {}, outputIds: [[]] }],
          }),
        );
        let ticks = 0;
        real.running.workflows.engine.subscribeDebug(flow.id, () => ticks++);
        await eventually(() => ticks >= 2, 15_000);
      } finally {
        await real.stop();
      }
    });
  });

  describe('webhooks', () => {
    it('are made, listed, renamed and deleted over REST; the token is answered once and only its hash is stored', async () => {
      const made = ok(
        await server.http<{ id: string; name: string; token: string; url: string }>('POST', `${app()}/webhooks`, {
          name: 'door',
        }),
      );
      expect(made.url).toBe(`/webhooks/${made.token}`);
      const stored = await server.running.platform.store.getWebhook(made.id);
      expect(stored?.tokenHash).toBe(createHash('sha256').update(made.token).digest('hex'));
      const list = ok(await server.http<{ items: Array<Record<string, unknown>> }>('GET', `${app()}/webhooks`), 200);
      expect(list.items.find((w) => w.id === made.id)).toEqual({
        id: made.id,
        applicationId: fleet.applicationId,
        name: 'door',
        creationDate: expect.any(String),
        lastUpdated: expect.any(String),
      });
      const renamed = ok(
        await server.http<{ name: string }>('PATCH', `${app()}/webhooks/${made.id}`, { name: 'gate' }),
        200,
      );
      expect(renamed.name).toBe('gate');
      expect(
        ok(await server.http<{ token?: string }>('GET', `${app()}/webhooks/${made.id}`), 200).token,
      ).toBeUndefined();

      const viewer = ok(
        await server.http<{ token: string }>('POST', `${app()}/tokens`, { name: 'v', role: 'viewer' }),
      ).token;
      expect((await server.http('GET', `${app()}/webhooks/${made.id}`, undefined, viewer)).status).toBe(200);
      expect((await server.http('POST', `${app()}/webhooks`, { name: 'x' }, viewer)).status).toBe(403);
      expect((await server.http('DELETE', `${app()}/webhooks/${made.id}`, undefined, viewer)).status).toBe(403);

      ok(await server.http('DELETE', `${app()}/webhooks/${made.id}`), 200);
      expect((await server.http('GET', `${app()}/webhooks/${made.id}`)).status).toBe(404);
      const gone = await server.http<{ type: string }>('POST', made.url, { a: 1 }, null);
      expect(gone).toEqual({ status: 404, body: { type: 'NotFound', message: expect.any(String) } });
    });

    it('fire the webhook triggers naming them, with method, path, headers, query and body, and answer at once', async () => {
      const hook = ok(await server.http<{ id: string; url: string }>('POST', `${app()}/webhooks`, { name: 'in' }));
      const flow = await debugFlow([{ type: 'webhook', key: hook.id }]);
      const answer = await server.http('POST', `${hook.url}/a/b?x=1&y=2`, { reading: 5 }, null, {
        cookie: 'secret=1',
        authorization: 'Bearer nope',
        'x-source': 'test',
      });
      expect(answer).toEqual({ status: 200, body: { success: true } });
      const [json] = await eventually(() => flow.seen.length >= 1 && flow.seen);
      expect(json).toMatchObject({
        triggerType: 'webhook',
        triggerId: hook.id,
        data: { method: 'post', path: '/a/b', query: { x: '1', y: '2' }, body: { reading: 5 } },
      });
      const headers = json?.data.headers as Record<string, string>;
      expect(headers['x-source']).toBe('test');
      expect(headers['content-type']).toBe('application/json');
      expect(headers.cookie).toBeUndefined();
      expect(headers.authorization).toBeUndefined();

      const form = await fetch(`${server.running.urls.http}${hook.url}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'a=1&b=2&b=3',
      });
      expect(form.status).toBe(200);
      const text = await fetch(`${server.running.urls.http}${hook.url}/t`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: 'hello',
      });
      expect(text.status).toBe(200);
      const get = await fetch(`${server.running.urls.http}${hook.url}`);
      expect(get.status).toBe(200);
      await eventually(() => flow.seen.length >= 4);
      expect(flow.seen.slice(1).map((p) => [p.data.method, p.data.path, p.data.body])).toEqual([
        ['put', '/', { a: '1', b: ['2', '3'] }],
        ['post', '/t', 'hello'],
        ['get', '/', null],
      ]);

      const large = await fetch(`${server.running.urls.http}${hook.url}`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: 'x'.repeat(256 * 1024 + 1),
      });
      expect(large.status).toBe(413);
      const unknown = await server.http<{ type: string; message: string }>('POST', '/webhooks/not-a-token', {}, null);
      expect(unknown.status).toBe(404);
      expect(unknown.body).toEqual({ type: 'NotFound', message: expect.any(String) });
      await flow.remove();
    });

    it('answers a flood of calls to one webhook with 429 and Retry-After, and other webhooks go on', async () => {
      const flooded = ok(
        await server.http<{ id: string; url: string }>('POST', `${app()}/webhooks`, { name: 'flood' }),
      );
      const calm = ok(await server.http<{ id: string; url: string }>('POST', `${app()}/webhooks`, { name: 'calm' }));
      const statuses: number[] = [];
      let retryAfter: string | null = null;
      for (let i = 0; i < WEBHOOK_CALL_LIMIT.messages + 5; i++) {
        const res = await fetch(`${server.running.urls.http}${flooded.url}`, { method: 'POST' });
        statuses.push(res.status);
        if (res.status === 429) retryAfter = res.headers.get('retry-after');
        await res.arrayBuffer();
      }
      expect(statuses.filter((s) => s === 200)).toHaveLength(WEBHOOK_CALL_LIMIT.messages);
      expect(statuses.slice(WEBHOOK_CALL_LIMIT.messages)).toEqual([429, 429, 429, 429, 429]);
      expect(Number(retryAfter)).toBeGreaterThan(0);
      expect((await fetch(`${server.running.urls.http}${calm.url}`, { method: 'POST' })).status).toBe(200);
    });

    it('refuses a webhook trigger whose key is not a webhook id', async () => {
      expect(await refused({ type: 'webhook', key: 'door' })).toContain('key must be a webhook id');
    });
  });

  describe('device state', () => {
    it("gives runs the state's attributes as plain keys, __proto__ and constructor among them", async () => {
      const device = ok(
        await server.http<{ id: string }>('POST', `${app()}/devices`, {
          name: 'odd names',
          attributes: ['__proto__', 'constructor', 'temperature'].map((name) => ({ name, dataType: 'number' })),
        }),
      );
      const flow = await debugFlow([
        { type: 'deviceId', key: device.id },
        { type: 'deviceId', key: device.id },
      ]);
      const body = '{"data":{"__proto__":1,"constructor":2,"temperature":3}}';
      ok(await server.http('POST', `${app()}/devices/${device.id}/state`, body), 200);
      await settle();
      const runs = flow.of('deviceId');
      expect(runs).toHaveLength(2);
      for (const run of runs) {
        expect(Object.keys(run.data)).toEqual(['__proto__', 'constructor', 'temperature']);
        expect(JSON.stringify(run.data)).toBe('{"__proto__":1,"constructor":2,"temperature":3}');
        expect(run.relayType).toBe('apiToken');
      }
      expect(({} as Record<string, unknown>).temperature).toBeUndefined();
      await flow.remove();
    });
  });

  describe('mqttTopic', () => {
    it("fires on the application's own custom topics matching the filter, with topic and message", async () => {
      const flow = await debugFlow([{ type: 'mqttTopic', config: { topic: 'sensors/+/temp' } }]);
      // Another application's device on the same topic never reaches this flow.
      const other = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'other' }));
      const otherDevice = ok(
        await server.http<{ id: string }>('POST', `/applications/${other.id}/devices`, { name: 'o' }),
      ).id;
      const otherKey = ok(
        await server.http<{ key: string; secret: string }>('POST', `/applications/${other.id}/keys`, {
          filterType: 'all',
        }),
      );
      const stranger = await server.connect(otherDevice, otherKey.key, otherKey.secret);
      await stranger.publishAsync('sensors/x/temp', 'not yours', { qos: 1 });

      const topics = ok(
        await server.http<{ key: string; secret: string }>('POST', `${app()}/keys`, { filterType: 'all' }),
      );
      const client = await server.connect(fleet.standalone, topics.key, topics.secret);
      await client.publishAsync('sensors/a/humidity', 'no match', { qos: 1 });
      await client.publishAsync('sensors/a/temp', '21.5', { qos: 1 });
      await eventually(() => flow.seen.length >= 1);
      expect(flow.seen).toHaveLength(1);
      expect(flow.seen[0]).toMatchObject({
        triggerType: 'mqttTopic',
        triggerId: 'sensors/a/temp',
        relayId: fleet.standalone,
        relayType: 'device',
        data: { topic: 'sensors/a/temp', message: '21.5' },
      });
      await stranger.endAsync();
      await client.endAsync();
      await flow.remove();
    });

    it('refuses platform topics, $ topics and malformed filters', async () => {
      expect(await refused({ type: 'mqttTopic', config: { topic: `losant/${fleet.standalone}/state` } })).toContain(
        'config/topic',
      );
      expect(await refused({ type: 'mqttTopic', config: { topic: '#' } })).toContain('config/topic');
      expect(await refused({ type: 'mqttTopic', config: { topic: '$SYS/x' } })).toContain('config/topic');
      expect(await refused({ type: 'mqttTopic', config: { topic: 'a/#/b' } })).toContain('config/topic');
      expect(await refused({ type: 'mqttTopic', config: {} })).toContain('config/topic');
    });
  });
});
