/**
 * Peripheral status and provenance, inactivity and retention (issue 3) on a real server with
 * real MQTT clients. Background jobs are driven with `maintenance.runOnce(now)`, so "later"
 * is a parameter, not a wait.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFleet,
  deviceLogs,
  eventually,
  ok,
  type SeedFleet,
  startTestServer,
  stateHistory,
  type TestServer,
} from '../helpers/server.js';

const DAY = 86_400_000;

interface DeviceBody {
  connectionInfo: { connected: 0 | 1 | null; time: string | null };
  lastReportedBy: { deviceId: string; time: string } | null;
  inactiveSince: string | null;
  peripherals?: { bound: string[]; recent: Array<{ deviceId: string; lastSeen: string; reports: number }> };
  gateways?: Array<{ gatewayId: string; firstSeen: string; lastSeen: string; reports: number }>;
}

describe('peripheral status and provenance', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  const device = async (id: string) =>
    ok(await server.http<DeviceBody>('GET', `/applications/${fleet.applicationId}/devices/${id}`), 200);
  const report = (
    client: { publishAsync: (t: string, m: string, o: object) => Promise<unknown> },
    id: string,
    t: number,
  ) => client.publishAsync(`losant/${id}/state`, JSON.stringify({ data: { temperature: t } }), { qos: 1 });

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server);
  });
  afterAll(() => server.stop());

  it('keeps the trail of gateways a floating peripheral was heard through, and each gateway lists its peripherals', async () => {
    const gw = await server.connect(fleet.gateway, fleet.key, fleet.secret);
    await report(gw, fleet.floating, 1);
    await report(gw, fleet.floating, 2);
    await report(gw, fleet.bound, 3);
    const other = await server.connect(fleet.otherGateway, fleet.key, fleet.secret);
    await report(other, fleet.floating, 4);

    const floating = await device(fleet.floating);
    expect(floating.lastReportedBy?.deviceId).toBe(fleet.otherGateway);
    expect(floating.gateways?.map((g) => [g.gatewayId, g.reports])).toEqual([
      [fleet.otherGateway, 1],
      [fleet.gateway, 2],
    ]);
    const [latest, earlier] = floating.gateways ?? [];
    expect(Date.parse(earlier?.firstSeen ?? '')).toBeLessThanOrEqual(Date.parse(earlier?.lastSeen ?? ''));
    expect(Date.parse(latest?.lastSeen ?? '')).toBeGreaterThanOrEqual(Date.parse(earlier?.lastSeen ?? ''));

    const gateway = await device(fleet.gateway);
    expect(gateway.peripherals?.bound).toEqual([fleet.bound]);
    expect(gateway.peripherals?.recent.map((p) => p.deviceId).sort()).toEqual([fleet.bound, fleet.floating].sort());
    const otherGateway = await device(fleet.otherGateway);
    expect(otherGateway.peripherals).toEqual({
      bound: [],
      recent: [expect.objectContaining({ deviceId: fleet.floating, reports: 1 })],
    });
    expect((await device(fleet.standalone)).gateways).toBeUndefined();
  });

  it('shows a peripheral disconnected once the gateway that last reported for it goes away', async () => {
    expect((await device(fleet.bound)).connectionInfo.connected).toBe(1);
    const gw = server.clients[0];
    await gw?.endAsync();
    await eventually(async () => (await device(fleet.bound)).connectionInfo.connected === 0);
    // The floating peripheral was last carried by the other gateway, which is still connected.
    expect((await device(fleet.floating)).connectionInfo.connected).toBe(1);
  });
});

describe('inactivity', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server, { application: { inactivityTimeoutSeconds: 60 } });
  });
  afterAll(() => server.stop());

  it('marks a silent device inactive once, logs it, and clears it on its next report', async () => {
    const gw = await server.connect(fleet.gateway, fleet.key, fleet.secret);
    await gw.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 1 } }), { qos: 1 });
    const now = Date.now();
    const early = await server.running.maintenance.runOnce(now + 30_000);
    expect(early.inactive).toEqual([]);

    const later = await server.running.maintenance.runOnce(now + 61_000);
    expect(later.inactive).toContain(fleet.bound);
    expect(later.inactive).toContain(fleet.gateway); // connected, but it reported nothing itself
    expect((await server.running.maintenance.runOnce(now + 120_000)).inactive).toEqual([]); // once only

    const peripheral = await server.http<DeviceBody>(
      'GET',
      `/applications/${fleet.applicationId}/devices/${fleet.bound}`,
    );
    expect(peripheral.body.inactiveSince).toBe(new Date(now + 61_000).toISOString());
    await eventually(async () =>
      (await deviceLogs(server, fleet.applicationId, fleet.bound)).find((e) => e.kind === 'inactive'),
    );

    await gw.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 2 } }), { qos: 1 });
    const again = await server.http<DeviceBody>('GET', `/applications/${fleet.applicationId}/devices/${fleet.bound}`);
    expect(again.body.inactiveSince).toBeNull();
  });
});

describe('retention', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(() => server.stop());

  it('removes only state older than the application keeps, and leaves other applications alone', async () => {
    const short = await createFleet(server, { application: { stateRetentionDays: 1 } });
    const forever = await createFleet(server);
    const now = Date.now();
    for (const fleet of [short, forever]) {
      const post = await server.http('POST', `/applications/${fleet.applicationId}/devices/${fleet.standalone}/state`, [
        { data: { temperature: 1 }, time: now - 3 * DAY },
        { data: { temperature: 2 }, time: now - 2 * DAY },
        { data: { temperature: 3 }, time: now - DAY / 2 },
      ]);
      expect(post.status).toBe(200);
    }

    const report = await server.running.maintenance.runOnce(now);
    expect(report.prunedStates).toBe(2);
    expect((await stateHistory(server, short.applicationId, short.standalone)).map((s) => s.data.temperature)).toEqual([
      3,
    ]);
    expect(
      (await stateHistory(server, forever.applicationId, forever.standalone)).map((s) => s.data.temperature),
    ).toEqual([1, 2, 3]);
  });

  it('removes log entries older than the log retention, newer ones stay', async () => {
    const fleet = await createFleet(server, { application: { logRetentionDays: 2 } });
    await server.connect(fleet.standalone, fleet.key, 'wrong secret').catch(() => {});
    await eventually(async () => (await deviceLogs(server, fleet.applicationId, fleet.standalone)).length === 1);
    expect((await server.running.maintenance.runOnce(Date.now() + DAY)).prunedLogs).toBe(0);
    expect(await deviceLogs(server, fleet.applicationId, fleet.standalone)).toHaveLength(1);
    await server.running.maintenance.runOnce(Date.now() + 3 * DAY);
    expect(await deviceLogs(server, fleet.applicationId, fleet.standalone)).toEqual([]);
  });
});
