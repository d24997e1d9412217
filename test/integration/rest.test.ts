/**
 * The REST contract (spec: REST) over real HTTP: state posted with device tokens under the same
 * rule as MQTT, the error shape of every refusal, CRUD with its validation, listing and history
 * queries, commands to many devices and device authentication.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  createFleet,
  deviceLogs,
  eventually,
  eventuallyLog,
  FLEET_ATTRIBUTES,
  type LogEntry,
  nextMessage,
  ok,
  type SeedFleet,
  type StoredState,
  startTestServer,
  stateHistory,
  type TestServer,
} from '../helpers/server.js';

const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Every REST error is exactly `{type, message}` with a non-empty message. */
function expectError(res: { status: number; body: unknown }, status: number, type: string): string {
  expect(res.status).toBe(status);
  expect(res.body).toEqual({ type, message: expect.any(String) });
  const { message } = res.body as { message: string };
  expect(message.length).toBeGreaterThan(0);
  return message;
}

describe('REST API', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let other: { applicationId: string; gateway: string; peripheral: string };
  const tokens: Record<'gateway' | 'otherGateway' | 'standalone', string> = {
    gateway: '',
    otherGateway: '',
    standalone: '',
  };
  const HOUR_AGO = Date.now() - 3600_000;

  const appUrl = (applicationId = fleet.applicationId) => `/applications/${applicationId}`;
  const stateUrl = (deviceId: string, applicationId = fleet.applicationId) =>
    `${appUrl(applicationId)}/devices/${deviceId}/state`;
  const history = (deviceId: string, applicationId = fleet.applicationId) =>
    stateHistory(server, applicationId, deviceId);

  async function deviceToken(deviceId: string, key = fleet.key, secret = fleet.secret): Promise<string> {
    return ok(await server.http<{ token: string }>('POST', '/auth/device', { deviceId, key, secret }, null), 200).token;
  }

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server, { application: { rateLimit: { messages: 10_000, windowSeconds: 60 } } });
    const app2 = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Other' }));
    const gw2 = ok(
      await server.http<{ id: string }>('POST', `${appUrl(app2.id)}/devices`, { name: 'gw2', deviceClass: 'gateway' }),
    );
    const p2 = ok(
      await server.http<{ id: string }>('POST', `${appUrl(app2.id)}/devices`, {
        name: 'p2',
        deviceClass: 'floating',
        attributes: FLEET_ATTRIBUTES,
      }),
    );
    other = { applicationId: app2.id, gateway: gw2.id, peripheral: p2.id };
    tokens.gateway = await deviceToken(fleet.gateway);
    tokens.otherGateway = await deviceToken(fleet.otherGateway);
    tokens.standalone = await deviceToken(fleet.standalone);
    for (const id of [fleet.gateway, fleet.standalone, fleet.bound, fleet.floating]) {
      ok(await server.http('POST', stateUrl(id), { data: { temperature: 1, label: 'before' }, time: HOUR_AGO }), 200);
    }
    ok(
      await server.http('POST', stateUrl(other.peripheral, other.applicationId), {
        data: { temperature: 2 },
        time: HOUR_AGO,
      }),
      200,
    );
  });
  afterEach(() => server.endClients());
  afterAll(() => server.stop());

  describe('state with device tokens', () => {
    it("accepts a gateway's token for its bound peripheral and for a floating peripheral", async () => {
      for (const peripheral of [fleet.bound, fleet.floating]) {
        const res = await server.http('POST', stateUrl(peripheral), { data: { temperature: 30 } }, tokens.gateway);
        expect(res).toEqual({ status: 200, body: { success: true, stored: 1 } });
        expect((await history(peripheral)).at(-1)).toMatchObject({
          data: { temperature: 30 },
          reportedBy: fleet.gateway,
        });
      }
      // An array of states in one request.
      const t = Date.now() - 5000;
      const res = await server.http(
        'POST',
        stateUrl(fleet.floating),
        [
          { data: { temperature: 31 }, time: t },
          { data: { temperature: 32 }, time: t + 1 },
        ],
        tokens.gateway,
      );
      expect(res).toEqual({ status: 200, body: { success: true, stored: 2 } });
    });

    it.each([
      ['another gateway for a bound peripheral', 'otherGateway', 'bound', 'otherGateway'],
      ['a standalone device for a peripheral', 'standalone', 'floating', 'standalone'],
      ['a gateway for a standalone device', 'gateway', 'standalone', 'gateway'],
    ] as const)('answers 403 to %s, logs it, and stores nothing', async (_name, who, target, actor) => {
      const targetId = fleet[target];
      const actorId = fleet[actor];
      const before = await history(targetId);
      const res = await server.http('POST', stateUrl(targetId), { data: { temperature: 66 } }, tokens[who]);
      const message = expectError(res, 403, 'Forbidden');
      expect(message).toContain(targetId);
      const isRest = (e: LogEntry) => e.kind === 'rejected' && e.via === 'rest' && e.status === 403;
      expect(await eventuallyLog(server, fleet.applicationId, actorId, isRest)).toMatchObject({ deviceId: targetId });
      expect(await eventuallyLog(server, fleet.applicationId, targetId, isRest)).toMatchObject({
        reportedBy: actorId,
      });
      expect(await history(targetId)).toEqual(before);
    });

    it('answers 404 for a device of another application', async () => {
      const before = await history(other.peripheral, other.applicationId);
      const logsBefore = await deviceLogs(server, other.applicationId, other.peripheral);
      // A gateway token, in the other application's path and in its own.
      expectError(
        await server.http(
          'POST',
          stateUrl(other.peripheral, other.applicationId),
          { data: { temperature: 9 } },
          tokens.gateway,
        ),
        404,
        'NotFound',
      );
      expectError(
        await server.http('POST', stateUrl(other.peripheral), { data: { temperature: 9 } }, tokens.gateway),
        404,
        'NotFound',
      );
      // The admin token, with the device under the wrong application.
      expectError(await server.http('POST', stateUrl(other.peripheral), { data: { temperature: 9 } }), 404, 'NotFound');
      expectError(await server.http('GET', stateUrl(other.peripheral)), 404, 'NotFound');
      expect(await history(other.peripheral, other.applicationId)).toEqual(before);
      expect(await deviceLogs(server, other.applicationId, other.peripheral)).toEqual(logsBefore);
    });

    it('answers 401 without a token, with a bad token, and with a token whose key was deactivated', async () => {
      const before = await history(fleet.standalone);
      const body = { data: { temperature: 10 } };
      expectError(await server.http('POST', stateUrl(fleet.standalone), body, null), 401, 'Unauthorized');
      expectError(await server.http('POST', stateUrl(fleet.standalone), body, 'not-a-token'), 401, 'Unauthorized');
      expectError(
        await server.http('POST', stateUrl(fleet.standalone), body, null, { authorization: 'Basic abc' }),
        401,
        'Unauthorized',
      );
      // A device token with its signature altered.
      const forged = `${tokens.standalone.slice(0, -4)}${tokens.standalone.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
      expectError(await server.http('POST', stateUrl(fleet.standalone), body, forged), 401, 'Unauthorized');

      const key = ok(
        await server.http<{ id: string; key: string; secret: string }>('POST', `${appUrl()}/keys`, {
          description: 'temporary',
        }),
      );
      const token = await deviceToken(fleet.standalone, key.key, key.secret);
      ok(await server.http('POST', stateUrl(fleet.standalone), { data: { label: 'with key' } }, token), 200);
      const stored = await history(fleet.standalone);
      ok(await server.http('PATCH', `${appUrl()}/keys/${key.id}`, { status: 'inactive' }), 200);
      expect(expectError(await server.http('POST', stateUrl(fleet.standalone), body, token), 401, 'Unauthorized')).toBe(
        `access key ${key.key} is inactive`,
      );
      expectError(await server.http('GET', stateUrl(fleet.standalone), undefined, token), 401, 'Unauthorized');
      expect(await history(fleet.standalone)).toEqual(stored);
      expect(stored.slice(0, before.length)).toEqual(before);
    });

    it('answers 400 Validation to malformed JSON and logs it on the device', async () => {
      const before = await history(fleet.standalone);
      const message = expectError(
        await server.http('POST', stateUrl(fleet.standalone), '{"data": {', tokens.standalone),
        400,
        'Validation',
      );
      expect(message).toMatch(/invalid JSON/);
      const entry = await eventuallyLog(
        server,
        fleet.applicationId,
        fleet.standalone,
        (e) => e.kind === 'rejected' && e.via === 'rest' && /invalid JSON/.test(String(e.reason)),
      );
      expect(entry.status).toBe(400);
      // With the admin token too.
      expectError(await server.http('POST', stateUrl(fleet.standalone), 'nope'), 400, 'Validation');
      expectError(await server.http('POST', stateUrl(fleet.standalone), { temperature: 1 }), 400, 'Validation');
      expect(await history(fleet.standalone)).toEqual(before);
    });

    it('answers 400 when no attribute has a usable value', async () => {
      const before = await history(fleet.standalone);
      const message = expectError(
        await server.http('POST', stateUrl(fleet.standalone), { data: { temperature: 'hot' } }, tokens.standalone),
        400,
        'Validation',
      );
      expect(message).toContain('not a number');
      expect(await history(fleet.standalone)).toEqual(before);
    });

    it('answers 200 with `dropped` for an unknown attribute next to a good one', async () => {
      const res = await server.http(
        'POST',
        stateUrl(fleet.standalone),
        { data: { temperature: 12, humidity: 3 } },
        tokens.standalone,
      );
      expect(res).toEqual({
        status: 200,
        body: {
          success: true,
          stored: 1,
          dropped: [{ index: 0, attribute: 'humidity', reason: 'unknown attribute "humidity"' }],
        },
      });
      expect((await history(fleet.standalone)).at(-1)?.data).toEqual({ temperature: 12 });
      await eventuallyLog(
        server,
        fleet.applicationId,
        fleet.standalone,
        (e) => e.kind === 'dropped' && e.via === 'rest' && e.attribute === 'humidity',
      );
    });

    it('answers 413 PayloadTooLarge to a body over 256 KiB', async () => {
      const before = await history(fleet.standalone);
      const big = JSON.stringify({ data: { label: 'x'.repeat(300 * 1024) } });
      const message = expectError(
        await server.http('POST', stateUrl(fleet.standalone), big, tokens.standalone),
        413,
        'PayloadTooLarge',
      );
      expect(message).toContain('262144');
      await eventuallyLog(
        server,
        fleet.applicationId,
        fleet.standalone,
        (e) => e.kind === 'rejected' && e.via === 'rest' && e.status === 413,
      );
      expect(await history(fleet.standalone)).toEqual(before);
      // Any other route too.
      expectError(
        await server.http('POST', '/applications', { name: 'big', description: 'x'.repeat(300 * 1024) }),
        413,
        'PayloadTooLarge',
      );
    });

    it('lets a device token read what it may act for and nothing else', async () => {
      ok(await server.http('GET', stateUrl(fleet.standalone), undefined, tokens.standalone), 200);
      ok(await server.http('GET', `${appUrl()}/devices/${fleet.standalone}/logs`, undefined, tokens.standalone), 200);
      expectError(await server.http('GET', stateUrl(fleet.gateway), undefined, tokens.standalone), 403, 'Forbidden');
      expectError(await server.http('GET', stateUrl(fleet.floating), undefined, tokens.standalone), 403, 'Forbidden');
      // A gateway reads the peripherals it may act for, not those bound to another gateway.
      for (const peripheral of [fleet.bound, fleet.floating]) {
        ok(await server.http('GET', stateUrl(peripheral), undefined, tokens.gateway), 200);
        ok(await server.http('GET', `${appUrl()}/devices/${peripheral}`, undefined, tokens.gateway), 200);
      }
      expect(
        expectError(await server.http('GET', stateUrl(fleet.bound), undefined, tokens.otherGateway), 403, 'Forbidden'),
      ).toContain(fleet.bound);
      expectError(await server.http('GET', stateUrl(fleet.standalone), undefined, tokens.gateway), 403, 'Forbidden');
      // The device list holds the device and the peripherals it may act for.
      const list = async (token: string) =>
        ok(
          await server.http<{ items: Array<{ id: string }> }>('GET', `${appUrl()}/devices`, undefined, token),
          200,
        ).items.map((d) => d.id);
      expect(await list(tokens.standalone)).toEqual([fleet.standalone]);
      expect(await list(tokens.gateway)).toEqual([fleet.gateway, fleet.bound, fleet.floating]);
      expect(await list(tokens.otherGateway)).toEqual([fleet.otherGateway, fleet.floating]);
      expectError(
        await server.http('GET', `${appUrl(other.applicationId)}/devices`, undefined, tokens.gateway),
        404,
        'NotFound',
      );
      expectError(await server.http('POST', '/applications', { name: 'x' }, tokens.gateway), 403, 'Forbidden');
      expectError(await server.http('GET', '/applications', undefined, tokens.gateway), 403, 'Forbidden');
    });
  });

  describe('applications, devices and keys', () => {
    it('creates, reads, updates and deletes an application', async () => {
      const created = await server.http<Record<string, unknown>>('POST', '/applications', {
        name: 'CRUD',
        description: 'd',
      });
      expect(created.status).toBe(201);
      expect(created.body).toEqual({
        id: expect.stringMatching(/^[0-9a-f]{24}$/),
        name: 'CRUD',
        description: 'd',
        rateLimit: { messages: 30, windowSeconds: 15 },
        peripheralTimeoutSeconds: 900,
        inactivityTimeoutSeconds: null,
        stateRetentionDays: null,
        logRetentionDays: 30,
        creationDate: expect.stringMatching(ISO_RE),
        lastUpdated: expect.stringMatching(ISO_RE),
      });
      const id = created.body.id as string;
      const list = ok(
        await server.http<{ items: Array<{ id: string }>; count: number; totalCount: number }>('GET', '/applications'),
        200,
      );
      expect(list.items.map((a) => a.id)).toContain(id);
      expect(list).toMatchObject({ count: list.items.length, totalCount: list.items.length, page: 0, perPage: 100 });
      expect(ok(await server.http('GET', appUrl(id)), 200)).toEqual(created.body);
      const patched = ok(
        await server.http<Record<string, unknown>>('PATCH', appUrl(id), {
          name: 'Renamed',
          rateLimit: { messages: 5, windowSeconds: 60 },
        }),
        200,
      );
      expect(patched).toMatchObject({
        name: 'Renamed',
        description: 'd',
        rateLimit: { messages: 5, windowSeconds: 60 },
      });
      expect(ok(await server.http('DELETE', appUrl(id)), 200)).toEqual({ success: true });
      expectError(await server.http('GET', appUrl(id)), 404, 'NotFound');
      expectError(await server.http('DELETE', appUrl(id)), 404, 'NotFound');

      // Validation.
      expectError(await server.http('POST', '/applications', {}), 400, 'Validation');
      expectError(await server.http('POST', '/applications', { name: '' }), 400, 'Validation');
      expect(
        expectError(await server.http('POST', '/applications', { name: 'x', color: 'red' }), 400, 'Validation'),
      ).toBe('body has an unknown property "color"');
      expectError(
        await server.http('POST', '/applications', { name: 'x', rateLimit: { messages: -1, windowSeconds: 1 } }),
        400,
        'Validation',
      );
      // A malformed id names nothing: 404, like a well-formed unknown one.
      expectError(await server.http('GET', '/applications/not-an-id'), 404, 'NotFound');
      expectError(await server.http('GET', '/no/such/route'), 404, 'NotFound');
    });

    it('creates, reads, updates and deletes a device, validating its class and gateway', async () => {
      const url = `${appUrl()}/devices`;
      const created = await server.http<Record<string, unknown>>('POST', url, { name: 'crud device' });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({
        id: expect.stringMatching(/^[0-9a-f]{24}$/),
        applicationId: fleet.applicationId,
        name: 'crud device',
        description: '',
        deviceClass: 'standalone',
        gatewayId: null,
        tags: [],
        attributes: [],
        connectionInfo: { connected: null, time: null },
        lastReportedBy: null,
        creationDate: expect.stringMatching(ISO_RE),
        lastUpdated: expect.stringMatching(ISO_RE),
      });
      const id = created.body.id as string;
      expect(ok(await server.http('GET', `${url}/${id}`), 200)).toEqual(created.body);
      const patched = ok(
        await server.http<Record<string, unknown>>('PATCH', `${url}/${id}`, {
          name: 'renamed',
          tags: [{ key: 'site', value: 'north' }],
        }),
        200,
      );
      expect(patched).toMatchObject({ name: 'renamed', tags: [{ key: 'site', value: 'north' }] });

      // gatewayId naming a standalone device, gatewayId on a standalone device, an unknown class.
      expect(
        expectError(
          await server.http('POST', url, { name: 'p', deviceClass: 'peripheral', gatewayId: fleet.standalone }),
          400,
          'Validation',
        ),
      ).toContain('gateway or edgeCompute');
      expectError(await server.http('POST', url, { name: 's', gatewayId: fleet.gateway }), 400, 'Validation');
      expectError(await server.http('PATCH', `${url}/${id}`, { gatewayId: fleet.gateway }), 400, 'Validation');
      expectError(
        await server.http('POST', url, { name: 'p', deviceClass: 'peripheral', gatewayId: other.gateway }),
        400,
        'Validation',
      );
      expectError(await server.http('POST', url, { name: 'r', deviceClass: 'robot' }), 400, 'Validation');
      expectError(await server.http('POST', url, { deviceClass: 'gateway' }), 400, 'Validation');
      expectError(
        await server.http('POST', url, {
          name: 'dup',
          attributes: [
            { name: 'a', dataType: 'number' },
            { name: 'a', dataType: 'string' },
          ],
        }),
        400,
        'Validation',
      );
      // A valid binding, for contrast.
      ok(await server.http('POST', url, { name: 'p', deviceClass: 'peripheral', gatewayId: fleet.otherGateway }));

      // Malformed and unknown ids in the path: both name nothing.
      expectError(await server.http('GET', `${url}/xyz`), 404, 'NotFound');
      expectError(await server.http('GET', `/applications/xyz/devices`), 404, 'NotFound');
      expectError(await server.http('GET', `${url}/${'0'.repeat(24)}`), 404, 'NotFound');
      expectError(await server.http('GET', `${appUrl('0'.repeat(24))}/devices`), 404, 'NotFound');
      expectError(await server.http('GET', `${appUrl(other.applicationId)}/devices/${id}`), 404, 'NotFound');

      expect(ok(await server.http('DELETE', `${url}/${id}`), 200)).toEqual({ success: true });
      expectError(await server.http('GET', `${url}/${id}`), 404, 'NotFound');
      expectError(await server.http('PATCH', `${url}/${id}`, { name: 'x' }), 404, 'NotFound');
      expectError(await server.http('POST', stateUrl(id), { data: {} }), 404, 'NotFound');
      expectError(await server.http('POST', stateUrl('xyz'), { data: {} }), 404, 'NotFound');
      expectError(await server.http('GET', `${url}/${id}/logs`), 404, 'NotFound');
      expectError(await server.http('POST', `${url}/${id}/command`, { name: 'x' }), 404, 'NotFound');
    });

    it('returns a key secret only on create, never on GET or PATCH', async () => {
      const url = `${appUrl()}/keys`;
      const created = await server.http<Record<string, unknown>>('POST', url, {
        description: 'crud key',
        deviceIds: [fleet.gateway],
      });
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({
        id: expect.stringMatching(/^[0-9a-f]{24}$/),
        key: expect.any(String),
        secret: expect.any(String),
        description: 'crud key',
        status: 'active',
        deviceIds: [fleet.gateway],
      });
      const id = created.body.id as string;
      const secret = created.body.secret as string;
      const noSecret = (body: unknown) => {
        const text = JSON.stringify(body);
        expect(text).not.toContain(secret);
        expect(text).not.toMatch(/secret/i);
      };
      const one = ok(await server.http<Record<string, unknown>>('GET', `${url}/${id}`), 200);
      noSecret(one);
      expect(one).toMatchObject({ id, key: created.body.key, description: 'crud key' });
      const list = ok(await server.http<{ items: Array<{ id: string }> }>('GET', url), 200);
      expect(list.items.map((k) => k.id)).toContain(id);
      noSecret(list);
      const patched = ok(await server.http('PATCH', `${url}/${id}`, { description: 'renamed' }), 200);
      noSecret(patched);
      expect(patched).toMatchObject({ description: 'renamed', key: created.body.key });
      expectError(await server.http('PATCH', `${url}/${id}`, { status: 'paused' }), 400, 'Validation');
      expect(ok(await server.http('DELETE', `${url}/${id}`), 200)).toEqual({ success: true });
      expectError(await server.http('GET', `${url}/${id}`), 404, 'NotFound');
      expectError(await server.http('GET', `${appUrl(other.applicationId)}/keys/${id}`), 404, 'NotFound');
      expectError(await server.http('POST', `${appUrl('0'.repeat(24))}/keys`, {}), 404, 'NotFound');
    });

    it('pages the device list and filters it by class, tags and name', async () => {
      const app = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Listing' }));
      const url = `${appUrl(app.id)}/devices`;
      const make = (name: string, deviceClass: string, tags: Array<{ key: string; value: string }> = []) =>
        server.http<{ id: string }>('POST', url, { name, deviceClass, tags }).then((r) => ok(r).id);
      const g1 = await make('Gate One', 'gateway', [{ key: 'site', value: 'north' }]);
      const g2 = await make('Gate Two', 'edgeCompute', [{ key: 'site', value: 'south' }]);
      const s1 = await make('Sensor A', 'standalone', [
        { key: 'site', value: 'north' },
        { key: 'floor', value: '1' },
      ]);
      const s2 = await make('Sensor B', 'standalone', [{ key: 'floor', value: '2' }]);
      const f1 = await make('Tag C', 'floating');
      type Page = { items: Array<{ id: string }>; count: number; totalCount: number; page: number; perPage: number };
      const list = async (query: string) => ok(await server.http<Page>('GET', `${url}?${query}`), 200);
      const ids = async (query: string) => (await list(query)).items.map((d) => d.id);

      expect(await list('perPage=2&page=0')).toMatchObject({ count: 2, totalCount: 5, page: 0, perPage: 2 });
      expect(await ids('perPage=2&page=0')).toEqual([g1, g2]);
      expect(await ids('perPage=2&page=1')).toEqual([s1, s2]);
      expect(await list('perPage=2&page=2')).toMatchObject({ items: [{ id: f1 }], count: 1, totalCount: 5 });
      expect(await list('perPage=2&page=3')).toMatchObject({ items: [], count: 0, totalCount: 5 });
      expect(await list('')).toMatchObject({ count: 5, totalCount: 5, page: 0, perPage: 100 });

      expect(await ids('deviceClass=gateway')).toEqual([g1]);
      expect(await ids('deviceClass=gateway,edgeCompute')).toEqual([g1, g2]);
      expect(await list('deviceClass=standalone&perPage=1')).toMatchObject({ items: [{ id: s1 }], totalCount: 2 });
      expectError(await server.http('GET', `${url}?deviceClass=robot`), 400, 'Validation');

      expect(await ids('tagFilter=site:north')).toEqual([g1, s1]);
      expect(await ids('tagFilter=floor')).toEqual([s1, s2]);
      expect(await ids('tagFilter=site:north&tagFilter=floor:1')).toEqual([s1]);
      expect(await ids('tagFilter=site:east')).toEqual([]);
      expect(await ids('filter=sensor')).toEqual([s1, s2]);
      expect(await ids('filter=sensor&tagFilter=floor:2&deviceClass=standalone')).toEqual([s2]);

      // Connection status, decided by the server before paging: one gateway connected over MQTT.
      const key = ok(await server.http<{ key: string; secret: string }>('POST', `${appUrl(app.id)}/keys`, {}));
      const client = await server.connect(g1, key.key, key.secret);
      await eventually(async () => ((await ids('connectionStatus=connected')).length === 1 ? true : undefined));
      expect(await ids('connectionStatus=connected')).toEqual([g1]);
      expect(await list('connectionStatus=disconnected&perPage=2')).toMatchObject({
        items: [{ id: g2 }, { id: s1 }],
        totalCount: 4,
      });
      expect(await ids('connectionStatus=inactive')).toEqual([]);
      expectError(await server.http('GET', `${url}?connectionStatus=sleeping`), 400, 'Validation');
      client.end(true);

      expectError(await server.http('GET', `${url}?perPage=0`), 400, 'Validation');
      expectError(await server.http('GET', `${url}?page=-1`), 400, 'Validation');
      // Unknown query keys are ignored (Losant's client adds its own).
      expect(await list('colour=red&_links=true')).toMatchObject({ count: 5, totalCount: 5 });
    });
  });

  describe('state history, composite state and commands', () => {
    let device: string;
    const T0 = Date.now() - 600_000;
    const times = [0, 1, 2, 3, 4].map((i) => T0 + i * 1000);
    const iso = (ms: number) => new Date(ms).toISOString();

    beforeAll(async () => {
      device = ok(
        await server.http<{ id: string }>('POST', `${appUrl()}/devices`, {
          name: 'history',
          attributes: FLEET_ATTRIBUTES,
        }),
      ).id;
      ok(
        await server.http(
          'POST',
          stateUrl(device),
          times.map((time, i) => ({ time, data: i === 2 ? { label: 'two' } : { temperature: i } })),
        ),
        200,
      );
    });

    const query = async (q: string) =>
      ok(await server.http<StoredState[]>('GET', `${stateUrl(device)}${q ? `?${q}` : ''}`), 200).map((s) => s.time);

    it('answers GET state with limit, sortDirection, start, end and duration', async () => {
      expect(await query('')).toEqual([iso(times[4]!)]);
      expect(await query('limit=10')).toEqual([...times].reverse().map(iso));
      expect(await query('limit=10&sortDirection=asc')).toEqual(times.map(iso));
      expect(await query('limit=2&sortDirection=asc')).toEqual(times.slice(0, 2).map(iso));
      expect(await query(`limit=10&sortDirection=asc&start=${times[1]}&end=${times[3]}`)).toEqual(
        times.slice(1, 4).map(iso),
      );
      expect(await query(`limit=10&sortDirection=asc&start=${times[3]}`)).toEqual(times.slice(3).map(iso));
      expect(await query(`limit=10&end=${times[1]}`)).toEqual([iso(times[1]!), iso(times[0]!)]);
      expect(await query(`limit=10&sortDirection=asc&end=${times[4]}&duration=2500`)).toEqual(times.slice(2).map(iso));
      const states = ok(await server.http<StoredState[]>('GET', `${stateUrl(device)}?limit=10&sortDirection=asc`), 200);
      expect(states[2]).toEqual({
        time: iso(times[2]!),
        data: { label: 'two' },
        reportedBy: expect.stringMatching(/^token:[0-9a-f]{24}$/),
      });
      expectError(await server.http('GET', `${stateUrl(device)}?sortDirection=up`), 400, 'Validation');
      expectError(await server.http('GET', `${stateUrl(device)}?limit=0`), 400, 'Validation');
      expectError(await server.http('GET', `${stateUrl(device)}?start=yesterday`), 400, 'Validation');
    });

    it('answers compositeState, filtered by attributes', async () => {
      const all = ok(await server.http('GET', `${appUrl()}/devices/${device}/compositeState`), 200);
      expect(all).toEqual({
        temperature: { value: 4, time: iso(times[4]!) },
        label: { value: 'two', time: iso(times[2]!) },
      });
      expect(
        ok(await server.http('GET', `${appUrl()}/devices/${device}/compositeState?attributes=label`), 200),
      ).toEqual({ label: { value: 'two', time: iso(times[2]!) } });
      expect(
        ok(
          await server.http('GET', `${appUrl()}/devices/${device}/compositeState?attributes=label,temperature,on`),
          200,
        ),
      ).toEqual(all);
    });

    it('sends a command to many devices by id and by tag', async () => {
      const tagged = ok(
        await server.http<{ id: string }>('POST', `${appUrl()}/devices`, {
          name: 'tagged',
          tags: [{ key: 'group', value: 'blue' }],
        }),
      ).id;
      const client = await server.connect(fleet.standalone, fleet.key, fleet.secret);
      await client.subscribeAsync(`losant/${fleet.standalone}/command`, { qos: 1 });
      const received = nextMessage(client, `losant/${fleet.standalone}/command`);

      const res = await server.http('POST', `${appUrl()}/devices/command`, {
        deviceIds: [fleet.standalone, device],
        deviceTags: [{ key: 'group', value: 'blue' }],
        name: 'reboot',
        payload: { delay: 1 },
      });
      expect(res).toEqual({ status: 200, body: { success: true, count: 3 } });
      expect((await received).payload).toMatchObject({ name: 'reboot', payload: { delay: 1 } });
      for (const [id, routedTo] of [
        [fleet.standalone, [fleet.standalone]],
        [device, []],
        [tagged, []],
      ] as const) {
        const commands = ok(
          await server.http<Array<{ name: string; routedTo: string[] }>>(
            'GET',
            `${appUrl()}/devices/${id}/command?limit=10`,
          ),
          200,
        );
        expect(commands).toEqual([expect.objectContaining({ name: 'reboot', payload: { delay: 1 }, routedTo })]);
      }
      // Devices of another application are not selected.
      expect(
        ok(await server.http('POST', `${appUrl()}/devices/command`, { deviceIds: [other.gateway], name: 'x' }), 200),
      ).toEqual({ success: true, count: 0 });
      expectError(await server.http('POST', `${appUrl()}/devices/command`, { deviceIds: [device] }), 400, 'Validation');
      expectError(
        await server.http('POST', `${appUrl('0'.repeat(24))}/devices/command`, { name: 'x' }),
        404,
        'NotFound',
      );
      expectError(
        await server.http('POST', `${appUrl()}/devices/command`, { name: 'x' }, tokens.gateway),
        403,
        'Forbidden',
      );
    });
  });

  describe('POST /auth/device', () => {
    it('issues a token for valid credentials', async () => {
      const res = await server.http(
        'POST',
        '/auth/device',
        { deviceId: fleet.gateway, key: fleet.key, secret: fleet.secret },
        null,
      );
      expect(res).toEqual({
        status: 200,
        body: {
          applicationId: fleet.applicationId,
          deviceId: fleet.gateway,
          deviceClass: 'gateway',
          token: expect.any(String),
        },
      });
    });

    it('answers 401 for a bad secret or key and 403 for a peripheral', async () => {
      const auth = (body: Record<string, unknown>) => server.http('POST', '/auth/device', body, null);
      expectError(await auth({ deviceId: fleet.gateway, key: fleet.key, secret: 'wrong-secret' }), 401, 'Unauthorized');
      expectError(
        await auth({ deviceId: fleet.gateway, key: 'no-such-key', secret: fleet.secret }),
        401,
        'Unauthorized',
      );
      for (const peripheral of [fleet.bound, fleet.floating, other.peripheral]) {
        const res = await auth({ deviceId: peripheral, key: fleet.key, secret: fleet.secret });
        expectError(res, 403, 'Forbidden');
      }
      expectError(await auth({ deviceId: fleet.gateway, key: fleet.key }), 400, 'Validation');
    });
  });
});
