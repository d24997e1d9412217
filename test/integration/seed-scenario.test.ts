/**
 * The gateway-and-peripherals scenario of docs/protocol.md, end to end on a real server:
 * a gateway reports for itself and for a bound and a floating peripheral over MQTT, and
 * receives a peripheral's command sent over REST.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFleet,
  eventually,
  nextMessage,
  type SeedFleet,
  startTestServer,
  type TestServer,
} from '../helpers/server.js';

describe('seed scenario: a gateway acting for its peripherals', () => {
  let server: TestServer;
  let fleet: SeedFleet;

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server);
  });
  afterAll(() => server.stop());

  const latest = async (deviceId: string) =>
    (
      await server.http<Array<{ data: Record<string, unknown>; reportedBy: string }>>(
        'GET',
        `/applications/${fleet.applicationId}/devices/${deviceId}/state`,
      )
    ).body;

  it('stores state the gateway reports for itself and for both peripherals, with reportedBy', async () => {
    const gw = await server.connect(fleet.gateway, fleet.key, fleet.secret);
    await gw.publishAsync(`losant/${fleet.gateway}/state`, JSON.stringify({ data: { temperature: 20 } }), { qos: 1 });
    await gw.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 72 } }), { qos: 1 });
    await gw.publishAsync(
      `losant/${fleet.floating}/state`,
      JSON.stringify({ data: { temperature: 5, label: 'truck' } }),
      { qos: 1 },
    );

    // QoS 1 was acknowledged only after the commit, so the states are readable now.
    expect(await latest(fleet.gateway)).toEqual([
      expect.objectContaining({ data: { temperature: 20 }, reportedBy: fleet.gateway }),
    ]);
    expect(await latest(fleet.bound)).toEqual([
      expect.objectContaining({ data: { temperature: 72 }, reportedBy: fleet.gateway }),
    ]);
    expect(await latest(fleet.floating)).toEqual([
      expect.objectContaining({ data: { temperature: 5, label: 'truck' }, reportedBy: fleet.gateway }),
    ]);

    const composite = await server.http<Record<string, { value: unknown }>>(
      'GET',
      `/applications/${fleet.applicationId}/devices/${fleet.bound}/compositeState`,
    );
    expect(composite.body.temperature?.value).toBe(72);
  });

  it('shows the gateway connected and each peripheral connected through it', async () => {
    const devices = await server.http<{
      items: Array<{
        id: string;
        connectionInfo: { connected: number | null };
        lastReportedBy: { deviceId: string } | null;
      }>;
    }>('GET', `/applications/${fleet.applicationId}/devices`);
    const byId = new Map(devices.body.items.map((d) => [d.id, d]));
    expect(byId.get(fleet.gateway)?.connectionInfo.connected).toBe(1);
    expect(byId.get(fleet.bound)?.connectionInfo.connected).toBe(1);
    expect(byId.get(fleet.bound)?.lastReportedBy?.deviceId).toBe(fleet.gateway);
    expect(byId.get(fleet.floating)?.connectionInfo.connected).toBe(1);
    expect(byId.get(fleet.standalone)?.connectionInfo.connected).toBe(null);
  });

  it("delivers a peripheral's command sent over REST to the gateway subscribed for it", async () => {
    const gw = server.clients[0]!;
    await gw.subscribeAsync(`losant/${fleet.bound}/command`, { qos: 1 });
    const received = nextMessage(gw, `losant/${fleet.bound}/command`);
    const sent = await server.http<{ routedTo: string[] }>(
      'POST',
      `/applications/${fleet.applicationId}/devices/${fleet.bound}/command`,
      {
        name: 'setInterval',
        payload: { seconds: 10 },
      },
    );
    expect(sent.status).toBe(200);
    expect(sent.body.routedTo).toEqual([fleet.gateway]);
    const message = await received;
    expect(message.payload).toMatchObject({
      name: 'setInterval',
      payload: { seconds: 10 },
      time: { $date: expect.any(String) },
    });

    const history = await server.http<Array<{ name: string; routedTo: string[] }>>(
      'GET',
      `/applications/${fleet.applicationId}/devices/${fleet.bound}/command?limit=10`,
    );
    expect(history.body).toEqual([expect.objectContaining({ name: 'setInterval', routedTo: [fleet.gateway] })]);
  });

  it("accepts a peripheral's state posted over REST with the gateway's own device token", async () => {
    const auth = await server.http<{ token: string }>(
      'POST',
      '/auth/device',
      { deviceId: fleet.gateway, key: fleet.key, secret: fleet.secret },
      null,
    );
    expect(auth.status).toBe(200);
    const posted = await server.http(
      'POST',
      `/applications/${fleet.applicationId}/devices/${fleet.floating}/state`,
      { data: { temperature: 6 } },
      auth.body.token,
    );
    expect(posted).toEqual({ status: 200, body: { success: true, stored: 1 } });
    await eventually(async () => (await latest(fleet.floating))[0]?.data.temperature === 6);
  });
});
