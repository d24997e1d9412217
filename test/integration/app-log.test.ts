/**
 * The application communication log (GET /applications/APP/logs) on a real server with real
 * MQTT clients: authentication success and failure, connects and disconnects with reasons,
 * accepted, refused and dropped states, commands with their route; paging with the cursor
 * across kinds, and the filters.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFleet,
  deviceToken,
  eventually,
  ok,
  type SeedFleet,
  startTestServer,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';

interface Item {
  id?: number;
  kind: string;
  time: string;
  deviceId: string;
  [detail: string]: unknown;
}
interface Page {
  items: Item[];
  count: number;
  nextBefore: string | null;
}

describe('application communication log', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let commandId: string;

  const logs = async (query = '', token?: string) =>
    server.http<Page>('GET', `/applications/${fleet.applicationId}/logs${query}`, undefined, token);
  const everything = async (query = '') => ok(await logs(`?limit=1000${query}`), 200).items;

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server, { application: { rateLimit: { messages: 0, windowSeconds: 15 } } });
    const gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
    expect(await subscribeGranted(gateway, `losant/${fleet.bound}/command`)).toEqual([1]);
    await gateway.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 21 } }), {
      qos: 1,
    });
    // Refused: the other gateway may not act for a peripheral bound to the first.
    const other = await server.connect(fleet.otherGateway, fleet.key, fleet.secret);
    await other.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 99 } }), { qos: 1 });
    // Partly dropped: an attribute the device does not define.
    await other.publishAsync(
      `losant/${fleet.floating}/state`,
      JSON.stringify({ data: { temperature: 5, humidity: 40 } }),
      { qos: 1 },
    );
    await expect(server.connect(fleet.standalone, fleet.key, 'wrong-secret')).rejects.toThrow();
    const sent = ok(
      await server.http<{ commandId: string; routedTo: string[] }>(
        'POST',
        `/applications/${fleet.applicationId}/devices/${fleet.bound}/command`,
        { name: 'open', payload: { valve: 1 } },
      ),
      200,
    );
    expect(sent.routedTo).toEqual([fleet.gateway]);
    commandId = sent.commandId;
    await gateway.endAsync();
    await other.endAsync();
    await eventually(async () => (await everything('&kinds=disconnect')).length === 2);
  });
  afterAll(() => server.stop());

  it('lists every kind of entry, newest first, with its details', async () => {
    const items = await everything();
    const times = items.map((i) => Date.parse(i.time));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    const of = (kind: string, deviceId: string) => items.filter((i) => i.kind === kind && i.deviceId === deviceId);

    // Authentication success names the key; failure names the reason.
    expect(of('connect', fleet.gateway)).toEqual([
      {
        id: expect.any(Number),
        kind: 'connect',
        time: expect.any(String),
        deviceId: fleet.gateway,
        connected: 1,
        keyId: expect.stringMatching(/^[0-9a-f]{24}$/),
        ipAddress: expect.any(String),
      },
    ]);
    expect(of('authFailed', fleet.standalone)).toEqual([
      expect.objectContaining({ id: expect.any(Number), reason: 'wrong access secret' }),
    ]);
    expect(of('disconnect', fleet.gateway)).toEqual([
      expect.objectContaining({ disconnectReason: 'Client disconnected', messagesFromClient: expect.any(Number) }),
    ]);
    // Accepted states come from the state history, not from log rows: they have no id.
    expect(of('state', fleet.bound)).toEqual([
      {
        kind: 'state',
        time: expect.any(String),
        deviceId: fleet.bound,
        data: { temperature: 21 },
        reportedBy: fleet.gateway,
      },
    ]);
    expect(of('state', fleet.floating)).toEqual([
      expect.objectContaining({ data: { temperature: 5 }, reportedBy: fleet.otherGateway }),
    ]);
    expect(of('dropped', fleet.floating)).toEqual([
      expect.objectContaining({ attribute: 'humidity', reportedBy: fleet.otherGateway }),
    ]);
    // A refusal is on the sender (naming the target) and on the target (naming the sender).
    expect(of('rejected', fleet.otherGateway)).toEqual([
      expect.objectContaining({ status: 403, targetDeviceId: fleet.bound, reason: expect.stringContaining('bound') }),
    ]);
    expect(of('rejected', fleet.bound)).toEqual([
      expect.objectContaining({ status: 403, reportedBy: fleet.otherGateway }),
    ]);
    // Commands with their route, from the command history.
    expect(of('command', fleet.bound)).toEqual([
      {
        kind: 'command',
        time: expect.any(String),
        deviceId: fleet.bound,
        commandId,
        name: 'open',
        payload: { valve: 1 },
        routedTo: [fleet.gateway],
        sentBy: expect.stringMatching(/^token:[0-9a-f]{24}$/),
      },
    ]);
  });

  it('pages across kinds with the cursor, without loss or repetition', async () => {
    const whole = await everything();
    expect(whole.length).toBeGreaterThan(8);
    for (const limit of [1, 3]) {
      const seen: Item[] = [];
      let before: string | null = null;
      let pages = 0;
      do {
        const query: string = `?limit=${limit}${before ? `&before=${encodeURIComponent(before)}` : ''}`;
        const page: Page = ok(await logs(query), 200);
        expect(page.items.length).toBeLessThanOrEqual(limit);
        expect(page.count).toBe(page.items.length);
        seen.push(...page.items);
        before = page.nextBefore;
        pages++;
      } while (before && pages < 1000);
      expect(seen).toEqual(whole);
    }
    // The last page says there is no next one.
    expect(ok(await logs('?limit=1000'), 200).nextBefore).toBeNull();
  });

  it('filters by device, kind and time range', async () => {
    const whole = await everything();
    const bound = await everything(`&deviceId=${fleet.bound}`);
    expect(bound).toEqual(whole.filter((i) => i.deviceId === fleet.bound));
    expect(new Set(bound.map((i) => i.kind))).toEqual(new Set(['state', 'rejected', 'command']));

    const two = await everything(`&deviceId=${fleet.bound}&deviceId=${fleet.floating}&kinds=state,dropped`);
    expect(two).toEqual(
      whole.filter((i) => [fleet.bound, fleet.floating].includes(i.deviceId) && ['state', 'dropped'].includes(i.kind)),
    );
    expect(two).toHaveLength(3);

    const middle = whole[Math.floor(whole.length / 2)]!;
    const at = Date.parse(middle.time);
    const ranged = await everything(`&start=${at}&end=${at}`);
    expect(ranged).toEqual(whole.filter((i) => Date.parse(i.time) === at));
    expect(await everything(`&end=${at - 1}`)).toEqual(whole.filter((i) => Date.parse(i.time) < at));

    // Filtered pages follow the cursor too.
    const first = ok(await logs(`?limit=1&kinds=connect,disconnect,command`), 200);
    const rest = ok(
      await logs(`?limit=1000&kinds=connect,disconnect,command&before=${encodeURIComponent(first.nextBefore!)}`),
      200,
    );
    expect([...first.items, ...rest.items]).toEqual(
      whole.filter((i) => ['connect', 'disconnect', 'command'].includes(i.kind)),
    );
  });

  it('filters by device class and tags, as the device list does', async () => {
    const whole = await everything();
    const classOf = new Map<string, string>();
    for (const id of new Set(whole.map((i) => i.deviceId))) {
      const d = ok(
        await server.http<{ deviceClass: string }>('GET', `/applications/${fleet.applicationId}/devices/${id}`),
        200,
      );
      classOf.set(id, d.deviceClass);
    }
    const gateways = await everything('&deviceClass=gateway');
    expect(gateways).toEqual(whole.filter((i) => classOf.get(i.deviceId) === 'gateway'));
    expect(gateways.length).toBeGreaterThan(0);
    const peripherals = await everything('&deviceClass=peripheral,floating&kinds=state,dropped,rejected');
    expect(peripherals).toEqual(
      whole.filter(
        (i) =>
          ['peripheral', 'floating'].includes(classOf.get(i.deviceId) ?? '') &&
          ['state', 'dropped', 'rejected'].includes(i.kind),
      ),
    );
    // With named devices, only those of the class.
    expect(await everything(`&deviceClass=gateway&deviceId=${fleet.bound}`)).toEqual([]);
    expect(await everything(`&deviceClass=peripheral&deviceId=${fleet.bound}`)).toEqual(
      whole.filter((i) => i.deviceId === fleet.bound),
    );
    expect(await everything('&tagFilter=nobody:has-this')).toEqual([]);
    const refused = await logs('?deviceClass=robot');
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ type: 'Validation' });
  });

  it('refuses bad queries and callers that may not read it', async () => {
    const token = await deviceToken(server, fleet.standalone, fleet);
    const cases: Array<[string, string | null | undefined, number, string]> = [
      ['', null, 401, 'Unauthorized'],
      ['', token, 403, 'Forbidden'],
      ['?kinds=state,bogus', undefined, 400, 'Validation'],
      ['?before=not-a-cursor', undefined, 400, 'Validation'],
      [`?before=${Buffer.from('[1,"log","x"]').toString('base64url')}`, undefined, 400, 'Validation'],
      ['?limit=1001', undefined, 400, 'Validation'],
      ['?limit=0', undefined, 400, 'Validation'],
      ['?deviceId=nope', undefined, 400, 'Validation'],
    ];
    for (const [query, who, status, type] of cases) {
      const res = await logs(query, who as string | undefined);
      expect([query, res.status, (res.body as unknown as { type: string }).type]).toEqual([query, status, type]);
    }
    const missing = await server.http('GET', `/applications/${'0'.repeat(24)}/logs`);
    expect(missing.status).toBe(404);
    // Default limit 100.
    expect(ok(await logs(), 200).items.length).toBeLessThanOrEqual(100);
  });
});
