/**
 * Losant's own REST client (npm `losant-rest`) keeping dashboards as a Losant user's script would,
 * with a dashboard in Losant's JSON (a graph, a gauge and Gatehouse's gateway block): through its
 * top-level `dashboards`/`dashboard` resources and its `applicationDashboards`/`applicationDashboard`
 * ones, which reach the same dashboards.
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, ok, type SeedFleet, startTestServer, type TestServer } from '../helpers/server.js';

interface DashboardBody {
  name: string;
  applicationId?: string;
  description?: string;
  refreshRate?: number;
  defaultTheme?: 'light' | 'dark';
  blocks?: Array<Record<string, unknown>>;
}
interface DashboardAnswer extends DashboardBody {
  id: string;
  dashboardId: string;
  applicationId: string;
  blocks: Array<Record<string, unknown> & { id: string; applicationId: string }>;
  creationDate: string;
  lastUpdated: string;
}
interface DashboardPage {
  items: DashboardAnswer[];
  count: number;
  totalCount: number;
}
type DashboardPath = { dashboardId: string };
type AppDashboardPath = DashboardPath & { applicationId: string };
/** What the client rejects with: the error body's fields and the HTTP status. */
interface LosantError extends Error {
  statusCode: number;
  type: string;
}
/** The part of the `losant-rest` client this test calls (the package ships no types). */
interface LosantClient {
  dashboards: {
    post(params: { dashboard: DashboardBody }): Promise<DashboardAnswer>;
    get(params: { applicationId?: string; sortField?: string; filter?: string }): Promise<DashboardPage>;
  };
  dashboard: {
    get(params: DashboardPath): Promise<DashboardAnswer>;
    patch(params: DashboardPath & { dashboard: Partial<DashboardBody> }): Promise<DashboardAnswer>;
    delete(params: DashboardPath): Promise<{ success: boolean }>;
  };
  applicationDashboards: {
    post(params: { applicationId: string; dashboard: DashboardBody }): Promise<DashboardAnswer>;
    get(params: { applicationId: string; perPage?: number }): Promise<DashboardPage>;
  };
  applicationDashboard: {
    get(params: AppDashboardPath): Promise<DashboardAnswer>;
    patch(params: AppDashboardPath & { dashboard: Partial<DashboardBody> }): Promise<DashboardAnswer>;
    delete(params: AppDashboardPath): Promise<{ success: boolean }>;
  };
}

const require = createRequire(import.meta.url);
const losant = require('losant-rest') as { createClient(options: { url: string; accessToken?: string }): LosantClient };

describe('losant-rest keeps dashboards', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let client: LosantClient;

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server);
    const editor = ok(
      await server.http<{ token: string }>('POST', `/applications/${fleet.applicationId}/tokens`, {
        name: 'script',
        role: 'editor',
      }),
    ).token;
    client = losant.createClient({ url: server.running.urls.http, accessToken: editor });
  });
  afterAll(() => server.stop());

  /** A dashboard as Losant's documentation writes one: the graph and gauge use its field names. */
  const losantDashboard = (): DashboardBody => ({
    name: 'Gateway north',
    description: 'The north gateway and what it hears',
    refreshRate: 60,
    defaultTheme: 'light',
    blocks: [
      {
        id: 'temperature',
        blockType: 'graph',
        title: 'Temperature',
        startX: 0,
        startY: 0,
        width: 4,
        height: 2,
        config: {
          duration: 86_400_000,
          resolution: 3_600_000,
          segments: [
            {
              deviceIds: [fleet.bound, fleet.floating],
              attribute: 'temperature',
              aggregation: 'MEAN',
              graphType: 'line',
              yAxisId: 'main',
              label: 'Peripherals',
              color: '#2e86de',
            },
          ],
          yAxes: [{ id: 'main', label: '°C', position: 'left', min: 0 }],
          decorators: [{ type: 'line', yAxisId: 'main', y1: 40, label: 'Too hot', lineStyle: 'dashed' }],
        },
      },
      {
        id: 'now',
        blockType: 'gauge',
        title: 'Now',
        startX: 0,
        startY: 2,
        width: 2,
        height: 1.5,
        config: {
          realTime: false,
          duration: 3_600_000,
          gaugeType: 'thermometer',
          gaugeMin: 0,
          gaugeMax: 60,
          precision: 4,
          precisionType: 'significant',
          segment: { deviceIds: [fleet.bound], attribute: 'temperature', aggregation: 'LAST' },
        },
      },
      {
        id: 'gw',
        blockType: 'gateway',
        title: 'Gateway',
        startX: 2,
        startY: 2,
        width: 2,
        height: 1.5,
        config: { gatewayId: fleet.gateway, showPeripherals: true, attributes: ['temperature', 'on'] },
      },
    ],
  });

  it('dashboards.post, dashboards.get, dashboard.get, dashboard.patch, dashboard.delete', async () => {
    const applicationId = fleet.applicationId;
    const created = await client.dashboards.post({ dashboard: { ...losantDashboard(), applicationId } });
    expect(created).toMatchObject({ ...losantDashboard(), id: created.dashboardId, applicationId });
    expect(created.blocks.map((b) => [b.id, b.applicationId])).toEqual([
      ['temperature', applicationId],
      ['now', applicationId],
      ['gw', applicationId],
    ]);

    const listed = await client.dashboards.get({ applicationId, sortField: 'name', filter: 'Gateway*' });
    expect(listed).toMatchObject({ count: 1, totalCount: 1 });
    expect(listed.items[0]).toEqual(created);

    expect(await client.dashboard.get({ dashboardId: created.id })).toEqual(created);

    const patched = await client.dashboard.patch({
      dashboardId: created.id,
      dashboard: { name: 'Gateway north (night)', defaultTheme: 'dark' },
    });
    expect(patched).toMatchObject({ id: created.id, name: 'Gateway north (night)', defaultTheme: 'dark' });
    expect(patched.blocks).toEqual(created.blocks);

    // A mistake comes back as Losant's client reports any error: the type and the field at fault.
    const bad =
      losantDashboard()
        .blocks?.slice(1, 2)
        .map((b) => ({ ...b, config: { gaugeType: 'dial' } })) ?? [];
    await expect(client.dashboard.patch({ dashboardId: created.id, dashboard: { blocks: bad } })).rejects.toMatchObject(
      {
        statusCode: 400,
        type: 'Validation',
        message: expect.stringMatching(/blocks\/0 \(id "now", gauge\): config\/segment is required/),
      } satisfies Partial<LosantError>,
    );

    expect(await client.dashboard.delete({ dashboardId: created.id })).toMatchObject({ success: true });
    await expect(client.dashboard.get({ dashboardId: created.id })).rejects.toMatchObject({
      statusCode: 404,
      type: 'NotFound',
    } satisfies Partial<LosantError>);
  });

  it('applicationDashboards and applicationDashboard reach the same dashboards under the application', async () => {
    const applicationId = fleet.applicationId;
    const created = await client.applicationDashboards.post({ applicationId, dashboard: losantDashboard() });
    expect(created).toMatchObject({ ...losantDashboard(), applicationId });
    const page = await client.applicationDashboards.get({ applicationId, perPage: 10 });
    expect(page.items.map((d) => d.id)).toContain(created.id);
    const path = { applicationId, dashboardId: created.id };
    expect(await client.applicationDashboard.get(path)).toEqual(created);
    expect(await client.dashboard.get({ dashboardId: created.id })).toEqual(created);
    const patched = await client.applicationDashboard.patch({ ...path, dashboard: { refreshRate: 120 } });
    expect(patched.refreshRate).toBe(120);
    expect(await client.applicationDashboard.delete(path)).toMatchObject({ success: true });
    await expect(client.applicationDashboard.get(path)).rejects.toMatchObject({ statusCode: 404 });
  });
});
