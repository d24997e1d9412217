/**
 * Losant's own REST client (npm `losant-rest`) against a real Gatehouse: a gateway's whole REST
 * round with a device token. The client adds `_actions=false&_links=true&_embedded=true` to every
 * request, which the API ignores like any unknown query key.
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, ok, type SeedFleet, startTestServer, type TestServer } from '../helpers/server.js';

/** The part of the `losant-rest` client this test calls (the package ships no types). */
interface LosantClient {
  auth: {
    authenticateDevice(params: { credentials: { deviceId: string; key: string; secret: string } }): Promise<{
      applicationId: string;
      deviceId: string;
      deviceClass: string;
      token: string;
    }>;
  };
  device: {
    get(params: DevicePath): Promise<{ id: string; deviceClass: string }>;
    sendState(params: DevicePath & { deviceState: unknown }): Promise<{ success: boolean }>;
    getState(
      params: DevicePath & { limit?: number; sortDirection?: 'asc' | 'desc' },
    ): Promise<Array<{ time: string; data: Record<string, unknown>; reportedBy: string }>>;
    getCompositeState(params: DevicePath): Promise<Record<string, { value: unknown; time: string }>>;
    sendCommand(
      params: DevicePath & { deviceCommand: { name: string; payload?: unknown } },
    ): Promise<{ success: boolean }>;
    getCommand(params: DevicePath & { limit?: number }): Promise<Array<{ name: string; payload: unknown }>>;
    getLogEntries(params: DevicePath & { limit?: number }): Promise<Array<{ kind: string; attribute?: string }>>;
  };
  devices: {
    get(params: { applicationId: string; perPage?: number }): Promise<{
      items: Array<{ id: string }>;
      count: number;
      totalCount: number;
      page: number;
      perPage: number;
    }>;
  };
}
interface DevicePath {
  applicationId: string;
  deviceId: string;
}
/** What the client rejects with: the error body's fields and the HTTP status. */
interface LosantError extends Error {
  statusCode: number;
  type: string;
}

const require = createRequire(import.meta.url);
const losant = require('losant-rest') as { createClient(options: { url: string; accessToken?: string }): LosantClient };

describe('losant-rest against Gatehouse', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let gateway: LosantClient;

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server, { application: { rateLimit: { messages: 1000, windowSeconds: 60 } } });
    const anonymous = losant.createClient({ url: server.running.urls.http });
    const auth = await anonymous.auth.authenticateDevice({
      credentials: { deviceId: fleet.gateway, key: fleet.key, secret: fleet.secret },
    });
    expect(auth).toMatchObject({ applicationId: fleet.applicationId, deviceId: fleet.gateway, deviceClass: 'gateway' });
    gateway = losant.createClient({ url: server.running.urls.http, accessToken: auth.token });
  });
  afterAll(() => server.stop());

  const path = (deviceId: string): DevicePath => ({ applicationId: fleet.applicationId, deviceId });

  it("runs a gateway's REST round: state for itself and a peripheral, reads, device list, command", async () => {
    const now = Date.now();
    expect(await gateway.device.sendState({ ...path(fleet.gateway), deviceState: { data: { label: 'up' } } })).toEqual(
      expect.objectContaining({ success: true }),
    );
    expect(
      await gateway.device.sendState({
        ...path(fleet.bound),
        deviceState: [
          { data: { temperature: 21.5, humidity: 40 }, time: now - 2000 },
          { data: { temperature: 22, on: true }, time: now - 1000 },
        ],
      }),
    ).toEqual(expect.objectContaining({ success: true }));

    // Its own history, and that of the peripheral it reported for.
    expect(await gateway.device.getState({ ...path(fleet.gateway), limit: 10 })).toEqual([
      expect.objectContaining({ data: { label: 'up' }, reportedBy: fleet.gateway }),
    ]);
    const history = await gateway.device.getState({ ...path(fleet.bound), limit: 10, sortDirection: 'asc' });
    expect(history.map((s) => [s.data, s.reportedBy])).toEqual([
      [{ temperature: 21.5 }, fleet.gateway],
      [{ temperature: 22, on: true }, fleet.gateway],
    ]);
    expect(await gateway.device.getCompositeState(path(fleet.bound))).toEqual({
      temperature: { value: 22, time: new Date(now - 1000).toISOString() },
      on: { value: true, time: new Date(now - 1000).toISOString() },
    });
    expect(await gateway.device.get(path(fleet.bound))).toMatchObject({ id: fleet.bound, deviceClass: 'peripheral' });
    // The unknown attribute it sent was dropped, and the peripheral's log says so.
    expect(await gateway.device.getLogEntries({ ...path(fleet.bound), limit: 5 })).toEqual([
      expect.objectContaining({ kind: 'dropped', attribute: 'humidity', reportedBy: fleet.gateway }),
    ]);

    // The device list: itself and the peripherals it may act for.
    const devices = await gateway.devices.get({ applicationId: fleet.applicationId });
    expect(devices.items.map((d) => d.id)).toEqual([fleet.gateway, fleet.bound, fleet.floating]);
    expect(devices).toMatchObject({ count: 3, totalCount: 3, page: 0, perPage: 100 });

    // A command to its peripheral, then the peripheral's command history.
    expect(
      await gateway.device.sendCommand({
        ...path(fleet.bound),
        deviceCommand: { name: 'blink', payload: { times: 2 } },
      }),
    ).toEqual(expect.objectContaining({ success: true }));
    expect(await gateway.device.getCommand({ ...path(fleet.bound), limit: 5 })).toEqual([
      expect.objectContaining({ name: 'blink', payload: { times: 2 } }),
    ]);

    // Everything it sent is in Gatehouse, as an API token sees it.
    const stored = ok(
      await server.http<unknown[]>('GET', `/applications/${fleet.applicationId}/devices/${fleet.bound}/state?limit=10`),
      200,
    );
    expect(stored).toHaveLength(2);
  });

  it('gets refusals in the error shape the client reads', async () => {
    const refused = (await gateway.device.getState(path(fleet.standalone)).catch((e) => e)) as LosantError;
    expect(refused).toBeInstanceOf(Error);
    expect(refused).toMatchObject({ statusCode: 403, type: 'Forbidden' });
    expect(refused.message).toContain(fleet.standalone);

    const unknown = (await gateway.device.getState(path('0'.repeat(24))).catch((e) => e)) as LosantError;
    expect(unknown).toMatchObject({ statusCode: 404, type: 'NotFound' });

    const anonymous = losant.createClient({ url: server.running.urls.http });
    const wrong = (await anonymous.auth
      .authenticateDevice({ credentials: { deviceId: fleet.gateway, key: fleet.key, secret: 'wrong' } })
      .catch((e) => e)) as LosantError;
    expect(wrong).toMatchObject({ statusCode: 401, type: 'Unauthorized' });
  });
});
