/**
 * Command routing (spec: Commands): a bound peripheral's commands reach only its gateway; a
 * floating peripheral's reach the gateway that last reported for it when that one is connected
 * and subscribed, otherwise every connected gateway subscribed for it; a standalone device gets
 * its own. The history records where each command went.
 *
 * Non-delivery is shown without waiting on a clock: after the command under test, a sentinel
 * command is sent to the same client's own command topic. One connection delivers in order, so
 * once the sentinel arrives anything sent before it would have arrived too.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  collectMessages,
  createFleet,
  nextMessage,
  ok,
  type SeedFleet,
  startTestServer,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';

describe('command routing', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  /** A third gateway, and a device of the `floating` class. */
  let thirdGateway: string;
  let floatingClass: string;

  const commandTopic = (deviceId: string) => `losant/${deviceId}/command`;
  const send = async (deviceId: string, name: string) =>
    ok(
      await server.http<{ success: true; commandId: string; routedTo: string[] }>(
        'POST',
        `/applications/${fleet.applicationId}/devices/${deviceId}/command`,
        { name, payload: { n: name } },
      ),
      200,
    );
  const commandHistory = async (deviceId: string) =>
    ok(
      await server.http<Array<{ id: string; name: string; routedTo: string[]; sentBy: string }>>(
        'GET',
        `/applications/${fleet.applicationId}/devices/${deviceId}/command?limit=100`,
      ),
      200,
    );

  interface Listener {
    client: MqttClient;
    deviceId: string;
    seen: Array<{ topic: string; payload: unknown }>;
  }

  /** A connected gateway subscribed to its own command topic (for sentinels) and to `alsoFor`. */
  async function gateway(deviceId: string, alsoFor: string[] = []): Promise<Listener> {
    const client = await server.connect(deviceId, fleet.key, fleet.secret);
    const seen = collectMessages(client);
    expect(await subscribeGranted(client, commandTopic(deviceId))).toEqual([1]);
    for (const target of alsoFor) expect(await subscribeGranted(client, commandTopic(target))).toEqual([1]);
    return { client, seen, deviceId };
  }

  /** Resolves once `g` received a sentinel sent after everything before; returns the names it got for `target`. */
  async function receivedFor(g: Listener, target: string): Promise<string[]> {
    const sentinel = `sentinel-${Math.random().toString(16).slice(2)}`;
    const self = g.deviceId;
    const arrived = nextMessage(g.client, commandTopic(self));
    expect((await send(self, sentinel)).routedTo).toEqual([self]);
    expect((await arrived).payload).toMatchObject({ name: sentinel });
    return g.seen.filter((m) => m.topic === commandTopic(target)).map((m) => (m.payload as { name: string }).name);
  }

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server, { application: { rateLimit: { messages: 0, windowSeconds: 15 } } });
    const make = async (body: Record<string, unknown>) =>
      ok(await server.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/devices`, body)).id;
    thirdGateway = await make({ name: 'third gateway', deviceClass: 'gateway' });
    floatingClass = await make({
      name: 'floating class',
      deviceClass: 'floating',
      attributes: [{ name: 'temperature', dataType: 'number' }],
    });
  });
  afterEach(() => server.endClients());
  afterAll(() => server.stop());

  it("sends a bound peripheral's command only to its gateway", async () => {
    const gw = await gateway(fleet.gateway, [fleet.bound]);
    const otherGw = await gateway(fleet.otherGateway);
    // The other gateway cannot even subscribe.
    expect(await subscribeGranted(otherGw.client, commandTopic(fleet.bound))).toEqual([128]);

    const arrived = nextMessage(gw.client, commandTopic(fleet.bound));
    const sent = await send(fleet.bound, 'bound-1');
    expect(sent.routedTo).toEqual([fleet.gateway]);
    expect((await arrived).payload).toEqual({
      name: 'bound-1',
      payload: { n: 'bound-1' },
      time: { $date: expect.any(String) },
    });
    expect(await receivedFor(otherGw, fleet.bound)).toEqual([]);
    expect(await receivedFor(gw, fleet.bound)).toEqual(['bound-1']);
    expect((await commandHistory(fleet.bound))[0]).toMatchObject({
      id: sent.commandId,
      name: 'bound-1',
      routedTo: [fleet.gateway],
      sentBy: expect.stringMatching(/^token:[0-9a-f]{24}$/),
    });
  });

  it('records an empty route when no gateway is there to carry a command', async () => {
    // Nobody connected.
    expect((await send(fleet.bound, 'bound-offline')).routedTo).toEqual([]);
    // Connected but not subscribed.
    const gw = await gateway(fleet.gateway);
    expect((await send(fleet.bound, 'bound-unsubscribed')).routedTo).toEqual([]);
    expect(await receivedFor(gw, fleet.bound)).toEqual([]);
    const history = await commandHistory(fleet.bound);
    expect(history.slice(0, 2)).toEqual([
      expect.objectContaining({ name: 'bound-unsubscribed', routedTo: [] }),
      expect.objectContaining({ name: 'bound-offline', routedTo: [] }),
    ]);
  });

  it('sends a floating peripheral’s command to the gateway that last reported for it', async () => {
    for (const target of [fleet.floating, floatingClass]) {
      const gw = await gateway(fleet.gateway, [target]);
      const otherGw = await gateway(fleet.otherGateway, [target]);
      await otherGw.client.publishAsync(`losant/${target}/state`, JSON.stringify({ data: { temperature: 1 } }), {
        qos: 1,
      });

      const sent = await send(target, `last-reporter-${target}`);
      expect(sent.routedTo).toEqual([fleet.otherGateway]);
      expect(await receivedFor(otherGw, target)).toEqual([`last-reporter-${target}`]);
      expect(await receivedFor(gw, target)).toEqual([]);

      // Now the first gateway reports: the route follows it.
      await gw.client.publishAsync(`losant/${target}/state`, JSON.stringify({ data: { temperature: 2 } }), {
        qos: 1,
      });
      expect((await send(target, `follows-${target}`)).routedTo).toEqual([fleet.gateway]);
      expect(await receivedFor(gw, target)).toEqual([`follows-${target}`]);
      expect(await receivedFor(otherGw, target)).toEqual([`last-reporter-${target}`]);
      await server.endClients();
    }
  });

  it('sends it to every subscribed gateway when the last reporter is not subscribed or not connected', async () => {
    const target = fleet.floating;
    const reporter = await gateway(fleet.gateway);
    await reporter.client.publishAsync(`losant/${target}/state`, JSON.stringify({ data: { temperature: 3 } }), {
      qos: 1,
    });
    const g2 = await gateway(fleet.otherGateway, [target]);
    const g3 = await gateway(thirdGateway, [target]);

    // The last reporter is connected but not subscribed.
    const first = await send(target, 'fanout-1');
    expect([...first.routedTo].sort()).toEqual([fleet.otherGateway, thirdGateway].sort());
    expect(await receivedFor(g2, target)).toEqual(['fanout-1']);
    expect(await receivedFor(g3, target)).toEqual(['fanout-1']);
    expect(await receivedFor(reporter, target)).toEqual([]);

    // The last reporter is gone.
    await reporter.client.endAsync();
    const second = await send(target, 'fanout-2');
    expect([...second.routedTo].sort()).toEqual([fleet.otherGateway, thirdGateway].sort());
    expect(await receivedFor(g2, target)).toEqual(['fanout-1', 'fanout-2']);
    expect(await receivedFor(g3, target)).toEqual(['fanout-1', 'fanout-2']);

    // An unsubscribed gateway drops out of the route.
    await g3.client.unsubscribeAsync(commandTopic(target));
    expect((await send(target, 'fanout-3')).routedTo).toEqual([fleet.otherGateway]);
    expect(await receivedFor(g3, target)).toEqual(['fanout-1', 'fanout-2']);

    const history = await commandHistory(target);
    expect(history.slice(0, 3).map((c) => [c.name, [...c.routedTo].sort()])).toEqual([
      ['fanout-3', [fleet.otherGateway]],
      ['fanout-2', [fleet.otherGateway, thirdGateway].sort()],
      ['fanout-1', [fleet.otherGateway, thirdGateway].sort()],
    ]);
  });

  it('delivers a standalone device its own command', async () => {
    const client = await server.connect(fleet.standalone, fleet.key, fleet.secret);
    expect(await subscribeGranted(client, commandTopic(fleet.standalone))).toEqual([1]);
    // Gateways may not take a standalone device's commands.
    const gw = await gateway(fleet.gateway);
    expect(await subscribeGranted(gw.client, commandTopic(fleet.standalone))).toEqual([128]);

    const arrived = nextMessage(client, commandTopic(fleet.standalone));
    const sent = await send(fleet.standalone, 'blink');
    expect(sent.routedTo).toEqual([fleet.standalone]);
    expect((await arrived).payload).toMatchObject({ name: 'blink', payload: { n: 'blink' } });
    expect(await receivedFor(gw, fleet.standalone)).toEqual([]);
    expect((await commandHistory(fleet.standalone))[0]).toMatchObject({ name: 'blink', routedTo: [fleet.standalone] });

    await client.endAsync();
    expect((await send(fleet.standalone, 'blink-offline')).routedTo).toEqual([]);
    expect((await commandHistory(fleet.standalone))[0]).toMatchObject({ name: 'blink-offline', routedTo: [] });
  });

  it('validates a command', async () => {
    const res = await server.http('POST', `/applications/${fleet.applicationId}/devices/${fleet.standalone}/command`, {
      payload: 1,
    });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ type: 'Validation', message: expect.any(String) });
  });
});
