/**
 * Applications never see each other's MQTT traffic, and rights taken away reach everything a
 * connection still holds (docs/decisions.md, "Custom topics" and "Revocation"): custom topics
 * and their retained messages are per application; a key narrowed while a device is subscribed
 * stops its deliveries, queued ones included; a Last Will is authorized with the rights the
 * device has when the will is published, and a revoked connection's will is dropped.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  collectMessages,
  eventually,
  eventuallyLog,
  FLEET_ATTRIBUTES,
  ok,
  startTestServer,
  stateHistory,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';

interface App {
  id: string;
  key: { id: string; key: string; secret: string };
  device(name: string, body?: Record<string, unknown>): Promise<string>;
}

describe('MQTT tenancy and revocation', () => {
  let server: TestServer;
  let a: App;
  let b: App;

  async function application(name: string): Promise<App> {
    const id = ok(
      await server.http<{ id: string }>('POST', '/applications', {
        name,
        rateLimit: { messages: 0, windowSeconds: 15 },
      }),
    ).id;
    const key = ok(
      await server.http<App['key']>('POST', `/applications/${id}/keys`, { filterType: 'all', description: name }),
    );
    return {
      id,
      key,
      async device(deviceName, body = {}) {
        return ok(
          await server.http<{ id: string }>('POST', `/applications/${id}/devices`, {
            name: deviceName,
            attributes: FLEET_ATTRIBUTES,
            ...body,
          }),
        ).id;
      },
    };
  }

  const connect = (app: App, deviceId: string, options = {}) =>
    server.connect(deviceId, app.key.key, app.key.secret, { reconnectPeriod: 0, ...options });

  /** A sentinel on the subscriber's own topic: once it arrives, anything published before it would have too. */
  async function flush(publisher: MqttClient, subscriber: ReturnType<typeof collectMessages>, topic: string) {
    await publisher.publishAsync(topic, 'sentinel', { qos: 1 });
    await eventually(() => subscriber.some((m) => m.topic === topic));
  }

  beforeAll(async () => {
    server = await startTestServer();
    a = await application('A');
    b = await application('B');
  });

  afterAll(async () => {
    await server?.stop();
  });

  it("keeps one application's custom topics, live and retained, away from another's devices", async () => {
    const [pubA, subA, pubB, subB] = await Promise.all([
      a.device('pubA'),
      a.device('subA'),
      b.device('pubB'),
      b.device('subB'),
    ]);
    const publisherA = await connect(a, pubA);
    await publisherA.publishAsync('plant/valve', 'retained in A', { qos: 1, retain: true });

    const listenerA = await connect(a, subA);
    const seenA = collectMessages(listenerA);
    const listenerB = await connect(b, subB);
    const seenB = collectMessages(listenerB);
    expect(await subscribeGranted(listenerA, 'plant/+', 1)).toEqual([1]);
    expect(await subscribeGranted(listenerB, 'plant/+', 1)).toEqual([1]);
    expect(await subscribeGranted(listenerB, 'b-own/sentinel', 1)).toEqual([1]);

    await publisherA.publishAsync('plant/valve', 'live in A', { qos: 1 });
    await eventually(() => seenA.length === 2);
    expect(seenA).toEqual([
      { topic: 'plant/valve', payload: 'retained in A' },
      { topic: 'plant/valve', payload: 'live in A' },
    ]);

    // B publishes on the same topic name: its own devices get it, A's do not.
    const publisherB = await connect(b, pubB);
    await publisherB.publishAsync('plant/valve', 'live in B', { qos: 1 });
    await flush(publisherB, seenB, 'b-own/sentinel');
    expect(seenB.filter((m) => m.topic === 'plant/valve')).toEqual([{ topic: 'plant/valve', payload: 'live in B' }]);
    await flush(publisherA, seenA, 'plant/sentinel');
    expect(seenA.map((m) => m.payload)).not.toContain('live in B');
    await Promise.all([publisherA, listenerA, listenerB, publisherB].map((c) => c.endAsync()));
  });

  it('stops live and queued deliveries when the key is narrowed', async () => {
    const app = await application('narrowed');
    const [publisherId, awayId, liveId] = await Promise.all([
      app.device('publisher'),
      app.device('away'),
      app.device('live'),
    ]);
    // The listeners use a key of their own, which is narrowed; the publisher's stays as it is.
    const narrowed = ok(await server.http<App['key']>('POST', `/applications/${app.id}/keys`, { filterType: 'all' }));
    const listen = (deviceId: string) =>
      server.connect(deviceId, narrowed.key, narrowed.secret, { clean: false, reconnectPeriod: 0 });
    const publisher = await connect(app, publisherId);

    // A persistent session subscribes and goes away; a QoS 1 message is queued for it.
    const away = await listen(awayId);
    expect(await subscribeGranted(away, 'alerts/#', 1)).toEqual([1]);
    await away.endAsync();
    await publisher.publishAsync('alerts/fire', 'queued', { qos: 1 });

    // Another device of the key is connected and subscribed, and receives (the control).
    const live = await listen(liveId);
    const seenLive = collectMessages(live);
    expect(await subscribeGranted(live, ['alerts/#', `losant/${liveId}/error`], 1)).toEqual([1, 1]);
    await publisher.publishAsync('alerts/smoke', 'before narrowing', { qos: 1 });
    await eventually(() => seenLive.length === 1);

    ok(await server.http('PATCH', `/applications/${app.id}/keys/${narrowed.id}`, { filterType: 'none' }), 200);
    await publisher.publishAsync('alerts/flood', 'after narrowing', { qos: 1 });
    // A refused publish answers on the error topic: a sentinel behind anything delivered before it.
    await live.publishAsync('alerts/probe', 'x', { qos: 1 });
    await eventually(() => seenLive.some((m) => m.topic === `losant/${liveId}/error`));
    expect(seenLive.filter((m) => m.topic.startsWith('alerts/'))).toEqual([
      { topic: 'alerts/smoke', payload: 'before narrowing' },
    ]);

    const back = await listen(awayId);
    const seenBack = collectMessages(back);
    expect(await subscribeGranted(back, `losant/${awayId}/error`, 1)).toEqual([1]);
    await back.publishAsync('alerts/probe', 'x', { qos: 1 });
    await eventually(() => seenBack.some((m) => m.topic === `losant/${awayId}/error`));
    expect(seenBack.filter((m) => m.topic.startsWith('alerts/'))).toEqual([]);
    await Promise.all([publisher.endAsync(), live.endAsync(), back.endAsync()]);
  });

  it('unsubscribes a custom topic, live and from a persistent session', async () => {
    const app = await application('unsubscribe');
    const [publisherId, listenerId] = await Promise.all([app.device('publisher'), app.device('listener')]);
    const publisher = await connect(app, publisherId);
    const listener = await connect(app, listenerId, { clean: false });
    const seen = collectMessages(listener);
    expect(await subscribeGranted(listener, ['news/+', 'own/sentinel'], 1)).toEqual([1, 1]);
    await publisher.publishAsync('news/a', 'one', { qos: 1 });
    await eventually(() => seen.length === 1);
    await listener.unsubscribeAsync('news/+');
    await publisher.publishAsync('news/a', 'two', { qos: 1 });
    await flush(publisher, seen, 'own/sentinel');
    expect(seen.map((m) => m.payload)).toEqual(['one', 'sentinel']);

    // Away, then back: the unsubscribed topic was removed from the stored session too.
    await listener.endAsync();
    await publisher.publishAsync('news/a', 'three', { qos: 1 });
    await publisher.publishAsync('own/sentinel', 'queued sentinel', { qos: 1 });
    const back = await connect(app, listenerId, { clean: false });
    const after = collectMessages(back);
    await eventually(() => after.some((m) => m.payload === 'queued sentinel'));
    expect(after.map((m) => m.payload)).toEqual(['queued sentinel']);
    await Promise.all([publisher.endAsync(), back.endAsync()]);
  });

  it('ends a persistent session when its client comes back clean: nothing queued is sent, then or later [MQTT-3.1.2-6]', async () => {
    const app = await application('clean-return');
    const [publisherId, listenerId] = await Promise.all([app.device('publisher'), app.device('listener')]);
    const publisher = await connect(app, publisherId);
    const away = await connect(app, listenerId, { clean: false });
    expect(await subscribeGranted(away, ['queued/+', 'own/sentinel'], 1)).toEqual([1, 1]);
    await away.endAsync();
    await publisher.publishAsync('queued/a', 'while away', { qos: 1 });

    // Back with a clean session: the stored one ends, its queue with it.
    const clean = await connect(app, listenerId, { clean: true });
    const seenClean = collectMessages(clean);
    expect(await subscribeGranted(clean, 'own/sentinel', 1)).toEqual([1]);
    await flush(publisher, seenClean, 'own/sentinel');
    expect(seenClean.map((m) => m.payload)).toEqual(['sentinel']);
    await clean.endAsync();

    // Persistent again: a new session, without the old subscriptions or queue.
    await publisher.publishAsync('queued/a', 'after the clean session', { qos: 1 });
    const fresh = await connect(app, listenerId, { clean: false });
    const seenFresh = collectMessages(fresh);
    expect(await subscribeGranted(fresh, 'own/sentinel', 1)).toEqual([1]);
    await flush(publisher, seenFresh, 'own/sentinel');
    expect(seenFresh.map((m) => m.payload)).toEqual(['sentinel']);
    await Promise.all([publisher.endAsync(), fresh.endAsync()]);
  });

  describe('Last Will', () => {
    /** A gateway connected with a will reporting state for its bound peripheral. */
    async function gatewayWithWill(app: App) {
      const gateway = await app.device('gateway', { deviceClass: 'gateway' });
      const peripheral = await app.device('bound', { deviceClass: 'peripheral', gatewayId: gateway });
      const client = await connect(app, gateway, {
        will: {
          topic: `losant/${peripheral}/state`,
          payload: Buffer.from(JSON.stringify({ data: { label: 'gateway gone' } })),
          qos: 1,
          retain: false,
        },
      });
      return { gateway, peripheral, client };
    }

    /** Waits until the gateway's disconnection is logged and every write after it is committed. */
    async function settled(app: App, gateway: string) {
      await eventuallyLog(server, app.id, gateway, (e) => e.kind === 'disconnect').catch(() => undefined);
      await server.running.platform.drain();
    }

    it('stores the will of a gateway that still has the right to report for the peripheral', async () => {
      const app = await application('will allowed');
      const { gateway, peripheral, client } = await gatewayWithWill(app);
      client.stream.destroy(); // gone without DISCONNECT: the will is published [MQTT-3.1.2-8]
      await eventually(async () => (await stateHistory(server, app.id, peripheral)).length === 1);
      expect((await stateHistory(server, app.id, peripheral))[0]).toMatchObject({
        data: { label: 'gateway gone' },
        reportedBy: gateway,
      });
    });

    const revocations: Array<[string, (app: App, ids: { gateway: string; peripheral: string }) => Promise<unknown>]> = [
      ['the key is deleted', (app) => server.http('DELETE', `/applications/${app.id}/keys/${app.key.id}`)],
      [
        'the key is deactivated',
        (app) => server.http('PATCH', `/applications/${app.id}/keys/${app.key.id}`, { status: 'inactive' }),
      ],
      [
        'the key is narrowed to other devices',
        async (app, { peripheral }) =>
          server.http('PATCH', `/applications/${app.id}/keys/${app.key.id}`, { deviceIds: [peripheral] }),
      ],
      [
        'the gateway is deleted',
        (app, { gateway }) => server.http('DELETE', `/applications/${app.id}/devices/${gateway}`),
      ],
    ];

    it.each(revocations)('drops the will when %s', async (_name, revoke) => {
      const app = await application('will revoked');
      const { gateway, peripheral, client } = await gatewayWithWill(app);
      const gone = new Promise<void>((resolve) => client.once('close', () => resolve()));
      expect((await revoke(app, { gateway, peripheral })) as { status: number }).toMatchObject({ status: 200 });
      await gone; // the server closed the connection without a DISCONNECT from the client
      await settled(app, gateway);
      expect(await stateHistory(server, app.id, peripheral)).toEqual([]);
    });

    it('authorizes a will with the rights of the moment: a peripheral moved to another gateway is refused', async () => {
      const app = await application('will rebound');
      const { gateway, peripheral, client } = await gatewayWithWill(app);
      const other = await app.device('other gateway', { deviceClass: 'gateway' });
      ok(await server.http('PATCH', `/applications/${app.id}/devices/${peripheral}`, { gatewayId: other }), 200);
      client.stream.destroy();
      await eventuallyLog(
        server,
        app.id,
        gateway,
        (e) => e.kind === 'rejected' && /bound to gateway/.test(String(e.reason)),
      );
      await settled(app, gateway);
      expect(await stateHistory(server, app.id, peripheral)).toEqual([]);
    });
  });
});
