/**
 * Dashboards over REST against a real server: saving, reading, changing and deleting in Losant's
 * format; validation naming the block and field; roles; tenancy; an application's deletion.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, ok, type SeedFleet, startTestServer, type TestServer } from '../helpers/server.js';

interface Block {
  id: string;
  blockType: string;
  applicationId: string;
  startX: number;
  startY: number;
  width: number;
  height: number;
  config: Record<string, unknown>;
}
interface DashboardAnswer {
  id: string;
  dashboardId: string;
  applicationId: string;
  name: string;
  description: string;
  refreshRate: number;
  defaultTheme: string;
  public: boolean;
  blocks: Block[];
  contextConfiguration: unknown[];
  creationDate: string;
  lastUpdated: string;
}
interface Page<T> {
  items: T[];
  count: number;
  totalCount: number;
  page: number;
  perPage: number;
}
interface ErrorAnswer {
  type: string;
  message: string;
}

describe('dashboards', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let base: string;
  let viewer: string;
  let editor: string;

  const token = async (applicationId: string, role: string) =>
    ok(await server.http<{ token: string }>('POST', `/applications/${applicationId}/tokens`, { name: role, role }))
      .token;

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server);
    base = `/applications/${fleet.applicationId}/dashboards`;
    viewer = await token(fleet.applicationId, 'viewer');
    editor = await token(fleet.applicationId, 'editor');
  });
  afterAll(() => server.stop());

  const graph = () => ({
    id: 'temps',
    blockType: 'graph',
    title: 'Temperatures',
    startX: 0,
    startY: 0,
    width: 4,
    height: 2,
    config: {
      duration: 86_400_000,
      resolution: 3_600_000,
      segments: [
        { deviceIds: [fleet.bound], attribute: 'temperature', aggregation: 'MEAN', graphType: 'line', yAxisId: 'c' },
        { deviceTags: [{ key: 'site', value: 'north' }], attribute: 'temperature', aggregation: 'MAX' },
      ],
      yAxes: [{ id: 'c', label: '°C', position: 'left' }],
    },
  });
  const gauge = () => ({
    blockType: 'gauge',
    startX: 0,
    startY: 2,
    width: 2,
    height: 1.5,
    config: {
      gaugeType: 'dial',
      gaugeMin: 0,
      gaugeMax: 50,
      precision: 3,
      precisionType: 'significant',
      segment: { deviceIds: ['{{ctx.deviceId}}'], attribute: 'temperature', aggregation: 'LAST' },
      conditions: [{ condition: '{{value}} > 40', color: '#e74c3c' }],
    },
  });
  const gateway = () => ({
    blockType: 'gateway',
    title: 'Gateway',
    startX: 2,
    startY: 2,
    width: 2,
    height: 1.5,
    config: { gatewayId: fleet.gateway, showPeripherals: true, attributes: ['temperature'] },
  });

  it('creates, lists, reads, changes and deletes a dashboard in Losant’s JSON', async () => {
    const created = ok(
      await server.http<DashboardAnswer>(
        'POST',
        base,
        {
          name: 'Plant floor',
          description: 'North site',
          refreshRate: 30,
          defaultTheme: 'dark',
          blocks: [graph(), gauge(), gateway()],
          contextConfiguration: [{ name: 'deviceId', type: 'deviceId', defaultValue: fleet.bound }],
        },
        editor,
      ),
    );
    expect(created).toMatchObject({
      id: created.dashboardId,
      applicationId: fleet.applicationId,
      name: 'Plant floor',
      description: 'North site',
      refreshRate: 30,
      defaultTheme: 'dark',
      public: false,
      isPasswordProtected: false,
      reportConfigs: [],
      contextConfiguration: [{ name: 'deviceId', type: 'deviceId', defaultValue: fleet.bound }],
    });
    expect(created.creationDate).toBe(created.lastUpdated);
    // Blocks come back as sent, each with an id (chosen where none was given) and the application.
    expect(created.blocks.map((b) => b.blockType)).toEqual(['graph', 'gauge', 'gateway']);
    expect(created.blocks[0]).toEqual({ ...graph(), applicationId: fleet.applicationId });
    expect(created.blocks[1]).toEqual({ ...gauge(), id: expect.any(String), applicationId: fleet.applicationId });
    expect(new Set(created.blocks.map((b) => b.id)).size).toBe(3);

    const url = `${base}/${created.id}`;
    expect(ok(await server.http<DashboardAnswer>('GET', url, undefined, viewer), 200)).toEqual(created);
    const page = ok(await server.http<Page<DashboardAnswer>>('GET', base, undefined, viewer), 200);
    expect(page).toMatchObject({ count: 1, totalCount: 1, page: 0, perPage: 100 });
    expect(page.items[0]).toEqual(created);

    // A patch replaces the fields it names, `blocks` whole; the rest stays.
    const changed = ok(
      await server.http<DashboardAnswer>('PATCH', url, { name: 'Plant floor 2', blocks: [gateway()] }, editor),
      200,
    );
    expect(changed).toMatchObject({
      id: created.id,
      name: 'Plant floor 2',
      description: 'North site',
      refreshRate: 30,
    });
    expect(changed.blocks).toHaveLength(1);
    expect(changed.blocks[0]).toMatchObject({ blockType: 'gateway', config: gateway().config });
    expect(Date.parse(changed.lastUpdated)).toBeGreaterThanOrEqual(Date.parse(created.lastUpdated));
    expect(ok(await server.http<DashboardAnswer>('GET', url, undefined, viewer), 200)).toEqual(changed);

    expect(ok(await server.http('DELETE', url, undefined, editor), 200)).toEqual({ success: true });
    expect(await server.http<ErrorAnswer>('GET', url, undefined, viewer)).toMatchObject({
      status: 404,
      body: { type: 'NotFound' },
    });
  });

  it('pages, sorts and filters the list by name as Losant’s list does', async () => {
    const app = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Listing' }));
    const list = `/applications/${app.id}/dashboards`;
    for (const name of ['Bravo', 'alpha', 'Charlie']) ok(await server.http('POST', list, { name }));
    const names = async (query: string) =>
      ok(await server.http<Page<DashboardAnswer>>('GET', `${list}${query}`), 200).items.map((d) => d.name);
    expect(await names('')).toEqual(['Bravo', 'alpha', 'Charlie']);
    expect(await names('?sortField=name')).toEqual(['alpha', 'Bravo', 'Charlie']);
    expect(await names('?sortField=name&sortDirection=desc')).toEqual(['Charlie', 'Bravo', 'alpha']);
    expect(await names('?filterField=name&filter=*a*l*')).toEqual(['alpha', 'Charlie']);
    const second = ok(await server.http<Page<DashboardAnswer>>('GET', `${list}?perPage=2&page=1`), 200);
    expect(second).toMatchObject({ count: 1, totalCount: 3, page: 1, perPage: 2 });
  });

  it('names the block and the field at fault', async () => {
    const refused = async (body: unknown, pattern: RegExp) => {
      const answer = await server.http<ErrorAnswer>('POST', base, body, editor);
      expect(answer.status).toBe(400);
      expect(answer.body.type).toBe('Validation');
      expect(answer.body.message).toMatch(pattern);
    };
    const withBlock = (block: Record<string, unknown>) => ({ name: 'bad', blocks: [gateway(), block] });

    await refused(
      withBlock({ ...gauge(), config: { ...gauge().config, segment: { deviceIds: [fleet.bound] } } }),
      /blocks\/1 \(gauge\): config\/segment\/attribute is required/,
    );
    await refused(
      withBlock({ ...graph(), startY: 5, config: { segments: [{ attribute: 'temperature', yAxisId: 'nope' }] } }),
      /blocks\/1 \(id "temps", graph\): config\/segments\/0\/yAxisId names axis "nope"/,
    );
    await refused(
      withBlock({ ...graph(), startY: 5, config: { segments: [{ attribute: 't', aggregation: 'MEDIAN' }] } }),
      /blocks\/1 \(id "temps", graph\): config\/segments\/0\/aggregation must be one of FIRST, LAST/,
    );
    await refused(withBlock({ ...gauge(), blockType: 'pie' }), /blocks\/1 \(pie\): blockType must be one of graph/);
    await refused(withBlock({ ...gauge(), startX: 3 }), /blocks\/1 \(gauge\): startX \+ width must not exceed 4/);
    await refused(withBlock({ ...gauge(), width: 0.3 }), /blocks\/1 \(gauge\): width must be a multiple of 0\.5/);
    await refused(
      withBlock({ ...gauge(), startX: 2, startY: 2.5 }),
      /blocks\/1 \(gauge\): overlaps blocks\/0 \(gateway\)/,
    );
    await refused(
      withBlock({ ...gauge(), config: { ...gauge().config, colour: 'red' } }),
      /blocks\/1 \(gauge\): config has an unknown property "colour"/,
    );
    await refused(
      withBlock({ ...gauge(), applicationId: fleet.gateway }),
      /blocks\/1 \(gauge\): applicationId must be the dashboard's application/,
    );
    await refused(
      {
        name: 'bad',
        blocks: [
          {
            id: 'send',
            blockType: 'input',
            startX: 0,
            startY: 0,
            width: 4,
            height: 1,
            config: { controls: [{ type: 'button', action: 'command', label: 'Go', deviceIds: [fleet.gateway] }] },
          },
        ],
      },
      /blocks\/0 \(id "send", input\): config\/controls\/0\/commandName is required for a command button/,
    );
    await refused(
      { name: 'bad', blocks: [gateway(), { ...gateway(), id: 'x' }, { ...gateway(), id: 'x', startY: 9 }] },
      /id is used by another block/,
    );
    // The envelope is checked by the route's schema, naming the field too.
    await refused({ name: '' }, /body\/name/);
    await refused({ name: 'bad', refreshRate: 1 }, /body\/refreshRate/);
    await refused({ name: 'bad', public: true }, /body\/public/);
    let deep: unknown = 'bottom';
    for (let i = 0; i < 80; i++) deep = { deeper: deep };
    await refused(
      { name: 'bad', contextConfiguration: [{ name: 'x', defaultValue: deep }] },
      /contextConfiguration nests/,
    );
    const many = Array.from({ length: 101 }, (_, i) => ({ ...gateway(), startX: 0, width: 1, startY: i }));
    await refused({ name: 'bad', blocks: many }, /body\/blocks/);
  });

  it('refuses a viewer’s writes (403) and hides a dashboard from another application’s members (404)', async () => {
    const created = ok(await server.http<DashboardAnswer>('POST', base, { name: 'Mine' }, editor));
    const url = `${base}/${created.id}`;
    for (const [method, target, body] of [
      ['POST', base, { name: 'Nope' }],
      ['PATCH', url, { name: 'Nope' }],
      ['DELETE', url, undefined],
    ] as const) {
      expect(await server.http<ErrorAnswer>(method, target, body, viewer)).toMatchObject({
        status: 403,
        body: { type: 'Forbidden' },
      });
    }

    const other = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Other tenant' }));
    const outsider = await token(other.id, 'owner');
    for (const [method, target, body] of [
      ['GET', base, undefined],
      ['GET', url, undefined],
      ['PATCH', url, { name: 'Nope' }],
      ['DELETE', url, undefined],
    ] as const) {
      expect(await server.http<ErrorAnswer>(method, target, body, outsider)).toMatchObject({ status: 404 });
    }
    // Its own application's path does not reach it either.
    expect(
      await server.http<ErrorAnswer>('GET', `/applications/${other.id}/dashboards/${created.id}`, undefined, outsider),
    ).toMatchObject({ status: 404, body: { type: 'NotFound' } });
    // Losant's top-level paths decide by the dashboard's application the same way.
    const byId = `/dashboards/${created.id}`;
    expect(ok(await server.http<DashboardAnswer>('GET', byId, undefined, viewer), 200).name).toBe('Mine');
    expect(await server.http('PATCH', byId, { name: 'Nope' }, viewer)).toMatchObject({ status: 403 });
    expect(await server.http('DELETE', byId, undefined, viewer)).toMatchObject({ status: 403 });
    expect(
      await server.http('POST', '/dashboards', { name: 'Nope', applicationId: fleet.applicationId }, viewer),
    ).toMatchObject({ status: 403 });
    expect(await server.http('GET', byId, undefined, outsider)).toMatchObject({ status: 404 });
    expect(await server.http('PATCH', byId, { name: 'Nope' }, outsider)).toMatchObject({ status: 404 });
    expect(
      await server.http('POST', '/dashboards', { name: 'Nope', applicationId: fleet.applicationId }, outsider),
    ).toMatchObject({ status: 404 });
    const theirs = ok(await server.http<Page<DashboardAnswer>>('GET', '/dashboards', undefined, outsider), 200);
    expect(theirs.totalCount).toBe(0);
    const filtered = `/dashboards?applicationId=${fleet.applicationId}`;
    expect(ok(await server.http<Page<DashboardAnswer>>('GET', filtered, undefined, outsider), 200).totalCount).toBe(0);
    const ours = ok(await server.http<Page<DashboardAnswer>>('GET', '/dashboards', undefined, viewer), 200);
    expect(ours.items.map((d) => d.id)).toContain(created.id);
    expect(ours.items.every((d) => d.applicationId === fleet.applicationId)).toBe(true);
    expect(ok(await server.http<DashboardAnswer>('GET', url, undefined, viewer), 200).name).toBe('Mine');
  });

  it('removes the dashboards of a deleted application', async () => {
    const app = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Short-lived' }));
    const list = `/applications/${app.id}/dashboards`;
    const created = ok(await server.http<DashboardAnswer>('POST', list, { name: 'Gone soon' }));
    ok(await server.http('DELETE', `/applications/${app.id}`), 200);
    expect(await server.http<ErrorAnswer>('GET', `${list}/${created.id}`)).toMatchObject({ status: 404 });
    expect(await server.http<ErrorAnswer>('GET', list)).toMatchObject({ status: 404 });
  });
});
