/**
 * Live streams (Server-Sent Events) on a real server with real MQTT and HTTP clients: device
 * state and command streams, the application event stream and its filters, Last-Event-ID,
 * authorization, revocation and shutdown.
 *
 * Completeness is shown without waiting on a clock: the last action of a scenario is an event
 * every stream under test accepts (a sentinel). One response delivers in order, so once the
 * sentinel arrived anything sent before it has arrived too.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN_TOKEN,
  createFleet,
  deviceToken,
  eventually,
  ok,
  type SeedFleet,
  startTestServer,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';
import { openStream, type SseEvent, type SseStream, summary } from '../helpers/sse.js';

describe('live streams', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  const open: SseStream[] = [];

  const base = () => `/applications/${fleet.applicationId}`;
  const stream = async (url: string, options: Parameters<typeof openStream>[2] = {}) => {
    const s = await openStream(server, url, options);
    open.push(s);
    return s;
  };
  const tokenOf = (deviceId: string) => deviceToken(server, deviceId, fleet);
  const postState = async (deviceId: string, body: unknown, token?: string) =>
    ok(await server.http('POST', `${base()}/devices/${deviceId}/state`, body, token), 200);
  const command = async (deviceId: string, name: string) =>
    ok(
      await server.http<{ commandId: string; routedTo: string[] }>('POST', `${base()}/devices/${deviceId}/command`, {
        name,
        payload: { n: name },
      }),
      200,
    );
  const publishState = async (client: Awaited<ReturnType<TestServer['connect']>>, deviceId: string, data: unknown) =>
    client.publishAsync(`losant/${deviceId}/state`, JSON.stringify({ data }), { qos: 1 });

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server, { application: { rateLimit: { messages: 0, windowSeconds: 15 } } });
    // Tags for the tag filter: the standalone device is in zone a, the bound peripheral in zone b.
    ok(
      await server.http('PATCH', `${base()}/devices/${fleet.standalone}`, { tags: [{ key: 'zone', value: 'a' }] }),
      200,
    );
    ok(await server.http('PATCH', `${base()}/devices/${fleet.bound}`, { tags: [{ key: 'zone', value: 'b' }] }), 200);
  });
  afterEach(async () => {
    for (const s of open.splice(0)) s.close();
    await server.endClients();
    // The last disconnects are logged (and streamed) before the next test opens its streams.
    await eventually(() => server.running.broker.connectedClients === 0);
    await server.running.platform.drain();
  });
  afterAll(() => server.stop());

  it('answers HEAD on a stream with its headers and ends, without opening a stream', async () => {
    for (const path of [`${base()}/events`, `${base()}/devices/${fleet.standalone}/stateStream`]) {
      const answer = await fetch(`${server.running.urls.http}${path}`, {
        method: 'HEAD',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
        signal: AbortSignal.timeout(5_000),
      });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    }
  });

  it("streams a peripheral's state reported by its gateway over MQTT and over REST", async () => {
    const s = await stream(`${base()}/devices/${fleet.bound}/stateStream`);
    expect(s.status).toBe(200);
    expect(s.contentType).toMatch(/^text\/event-stream/);

    const gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
    await publishState(gateway, fleet.bound, { temperature: 21 });
    // Another device's state never shows on this stream.
    await publishState(gateway, fleet.floating, { temperature: 99 });
    const token = await tokenOf(fleet.gateway);
    await postState(fleet.bound, { data: { temperature: 22, label: 'rest' } }, token);
    await postState(fleet.bound, { data: { temperature: 23 } }); // API token

    const events = await s.waitFor(3);
    expect(events.map((e) => e.event)).toEqual(['state', 'state', 'state']);
    expect(events.map((e) => e.json)).toEqual([
      { time: expect.any(String), data: { temperature: 21 }, reportedBy: fleet.gateway },
      { time: expect.any(String), data: { temperature: 22, label: 'rest' }, reportedBy: fleet.gateway },
      {
        time: expect.any(String),
        data: { temperature: 23 },
        reportedBy: expect.stringMatching(/^token:[0-9a-f]{24}$/),
      },
    ]);
    const ids = events.map((e) => Number(e.id));
    expect(ids.every(Number.isSafeInteger)).toBe(true);
    expect(ids[1]).toBeGreaterThan(ids[0]!);
    expect(ids[2]).toBeGreaterThan(ids[1]!);
    // The stored history says the same.
    const history = ok(await server.http<unknown[]>('GET', `${base()}/devices/${fleet.bound}/state?limit=3`), 200);
    expect(history.map((h) => (h as { data: unknown }).data)).toEqual([
      { temperature: 23 },
      { temperature: 22, label: 'rest' },
      { temperature: 21 },
    ]);
  });

  it('streams the commands of a device, to the device itself', async () => {
    const token = await tokenOf(fleet.standalone);
    const s = await stream(`${base()}/devices/${fleet.standalone}/commandStream`, { token });
    expect(s.status).toBe(200);
    await command(fleet.gateway, 'not-mine');
    const sent = await command(fleet.standalone, 'blink');
    const [event] = await s.waitFor(1);
    expect(event).toMatchObject({ event: 'command', id: expect.stringMatching(/^\d+$/) });
    expect(event!.json).toEqual({
      id: sent.commandId,
      name: 'blink',
      payload: { n: 'blink' },
      time: expect.any(String),
      routedTo: [],
      sentBy: expect.stringMatching(/^token:[0-9a-f]{24}$/),
    });
    // States are not commands.
    await postState(fleet.standalone, { data: { temperature: 1 } });
    await command(fleet.standalone, 'second');
    expect(summary(await s.waitFor(2))).toEqual(['command', 'command']);
  });

  it('filters the application stream by device, device class, tag and type', async () => {
    const all = await stream(`${base()}/events`);
    const byId = await stream(`${base()}/events?deviceId=${fleet.standalone}&deviceId=${fleet.bound}`);
    const byClass = await stream(`${base()}/events?deviceClass=standalone,peripheral`);
    const byTagValue = await stream(`${base()}/events?tagFilter=zone:a`);
    const byTagKey = await stream(`${base()}/events?tagFilter=zone`);
    const byType = await stream(`${base()}/events?types=command,connect`);
    const combined = await stream(`${base()}/events?deviceClass=peripheral,standalone&types=state,command`);

    const gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
    expect(await subscribeGranted(gateway, `losant/${fleet.bound}/command`)).toEqual([1]);
    await all.waitFor((events) => events.some((e) => e.event === 'connect'));
    await publishState(gateway, fleet.bound, { temperature: 1 });
    await publishState(gateway, fleet.floating, { temperature: 2 });
    await postState(fleet.standalone, { data: { temperature: 3 } });
    expect((await command(fleet.bound, 'to-bound')).routedTo).toEqual([fleet.gateway]);
    await gateway.endAsync();
    await all.waitFor((events) => events.some((e) => e.event === 'disconnect'));
    // The sentinel: every filter above accepts a command to the standalone device (zone a).
    await command(fleet.standalone, 'sentinel');
    const sentinel = (events: SseEvent[]) =>
      events.some((e) => e.event === 'command' && (e.json as { name: string }).name === 'sentinel');
    for (const s of [all, byId, byClass, byTagValue, byTagKey, byType, combined]) await s.waitFor(sentinel);

    const { gateway: gw, bound, floating, standalone } = fleet;
    expect(summary(all.events)).toEqual([
      `connect:${gw}`,
      `state:${bound}`,
      `state:${floating}`,
      `state:${standalone}`,
      `command:${bound}`,
      `disconnect:${gw}`,
      `command:${standalone}`,
    ]);
    expect(summary(byId.events)).toEqual([
      `state:${bound}`,
      `state:${standalone}`,
      `command:${bound}`,
      `command:${standalone}`,
    ]);
    expect(summary(byClass.events)).toEqual([
      `state:${bound}`,
      `state:${floating}`,
      `state:${standalone}`,
      `command:${bound}`,
      `command:${standalone}`,
    ]);
    expect(summary(byTagValue.events)).toEqual([`state:${standalone}`, `command:${standalone}`]);
    expect(summary(byTagKey.events)).toEqual([
      `state:${bound}`,
      `state:${standalone}`,
      `command:${bound}`,
      `command:${standalone}`,
    ]);
    expect(summary(byType.events)).toEqual([`connect:${gw}`, `command:${bound}`, `command:${standalone}`]);
    expect(summary(combined.events)).toEqual(summary(byClass.events));

    // Payloads: the REST shapes with the device id in front; log entries with their details.
    const [connect, state, , , cmd, disconnect] = all.events;
    expect(connect!.json).toEqual({
      deviceId: gw,
      time: expect.any(String),
      connected: 1,
      keyId: expect.stringMatching(/^[0-9a-f]{24}$/),
      ipAddress: expect.any(String),
    });
    expect(state!.json).toEqual({
      deviceId: bound,
      time: expect.any(String),
      data: { temperature: 1 },
      reportedBy: gw,
    });
    expect(cmd!.json).toEqual({
      deviceId: bound,
      id: expect.any(String),
      name: 'to-bound',
      payload: { n: 'to-bound' },
      time: expect.any(String),
      routedTo: [gw],
      sentBy: expect.stringMatching(/^token:[0-9a-f]{24}$/),
    });
    expect(disconnect!.json).toMatchObject({ deviceId: gw, connected: 0, disconnectReason: 'Client disconnected' });
    // Every event carries an increasing id.
    const ids = all.events.map((e) => Number(e.id));
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('shows refused messages and failed authentication on the application stream', async () => {
    const all = await stream(`${base()}/events?types=rejected,authFailed,dropped,command`);
    // The other gateway may not act for a peripheral bound to the first one.
    const other = await server.connect(fleet.otherGateway, fleet.key, fleet.secret);
    await publishState(other, fleet.bound, { temperature: 5 });
    await publishState(other, fleet.floating, { temperature: 6, unknown: 1 });
    await expect(server.connect(fleet.standalone, fleet.key, 'wrong-secret')).rejects.toThrow();
    await all.waitFor((events) => events.some((e) => e.event === 'authFailed'));
    await command(fleet.standalone, 'sentinel');
    await all.waitFor((events) => events.some((e) => e.event === 'command'));

    const rejected = all.events.filter((e) => e.event === 'rejected').map((e) => e.json);
    expect(rejected).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ deviceId: fleet.otherGateway, targetDeviceId: fleet.bound, status: 403 }),
        expect.objectContaining({ deviceId: fleet.bound, reportedBy: fleet.otherGateway, status: 403 }),
      ]),
    );
    expect(rejected).toHaveLength(2);
    expect(all.events.find((e) => e.event === 'dropped')?.json).toMatchObject({
      deviceId: fleet.floating,
      attribute: 'unknown',
    });
    expect(all.events.find((e) => e.event === 'authFailed')?.json).toMatchObject({
      deviceId: fleet.standalone,
      reason: 'wrong access secret',
    });
  });

  it('logs one disconnect event when a gateway with peripherals disconnects', async () => {
    const all = await stream(`${base()}/events`);
    const gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
    await publishState(gateway, fleet.bound, { temperature: 7 });
    await publishState(gateway, fleet.floating, { temperature: 8 });
    gateway.stream.destroy(); // the connection drops without a DISCONNECT
    await all.waitFor((events) => events.some((e) => e.event === 'disconnect'));
    await command(fleet.standalone, 'sentinel');
    await all.waitFor((events) => events.some((e) => e.event === 'command'));

    const disconnects = all.events.filter((e) => e.event === 'disconnect');
    expect(disconnects).toHaveLength(1);
    expect(disconnects[0]!.json).toMatchObject({ deviceId: fleet.gateway, disconnectReason: 'Connection lost' });
    expect(summary(all.events)).toEqual([
      `connect:${fleet.gateway}`,
      `state:${fleet.bound}`,
      `state:${fleet.floating}`,
      `disconnect:${fleet.gateway}`,
      `command:${fleet.standalone}`,
    ]);
  });

  it('sends a reconnecting client exactly the events it missed (Last-Event-ID)', async () => {
    const url = `${base()}/devices/${fleet.floating}/stateStream`;
    const first = await stream(url);
    await postState(fleet.floating, { data: { temperature: 10 } });
    const [seen] = await first.waitFor(1);
    first.close();

    await postState(fleet.floating, { data: { temperature: 11 } });
    await postState(fleet.standalone, { data: { temperature: 50 } }); // not this stream's
    await postState(fleet.floating, { data: { temperature: 12 } });

    const again = await stream(url, { lastEventId: seen!.id! });
    await postState(fleet.floating, { data: { temperature: 13 } }); // live, after the replay
    const events = await again.waitFor(3);
    expect(events.map((e) => (e.json as { data: { temperature: number } }).data.temperature)).toEqual([11, 12, 13]);
    expect(events.every((e) => e.event === 'state')).toBe(true);
    expect(Number(events[0]!.id)).toBeGreaterThan(Number(seen!.id));

    // The same through the query parameter (for EventSource clients starting afresh).
    const viaQuery = await stream(`${url}?lastEventId=${events[0]!.id}`);
    await postState(fleet.floating, { data: { temperature: 14 } });
    const replayed = await viaQuery.waitFor(3);
    expect(replayed.map((e) => (e.json as { data: { temperature: number } }).data.temperature)).toEqual([12, 13, 14]);
  });

  it('announces a gap when the events after Last-Event-ID are no longer kept', async () => {
    // An id from before this process (or long evicted): a gap notice, then what is kept, then live.
    const s = await stream(`${base()}/events?deviceId=${fleet.floating}&types=state`, { lastEventId: '1' });
    await postState(fleet.floating, { data: { temperature: 20 } });
    const events = await s.waitFor((ev) =>
      ev.some((e) => (e.json as { data?: { temperature?: number } }).data?.temperature === 20),
    );
    expect(events[0]).toMatchObject({ event: 'gap', json: { message: expect.any(String), lastEventId: '1' } });
    expect(events[0]!.id).toBeUndefined();
    expect(events.slice(1).every((e) => e.event === 'state')).toBe(true);

    const garbage = await stream(`${base()}/devices/${fleet.floating}/stateStream`, { lastEventId: 'not-an-id' });
    await postState(fleet.floating, { data: { temperature: 21 } });
    expect((await garbage.waitFor(2)).map((e) => e.event)).toEqual(['gap', 'state']);
  });

  it('refuses streams to whoever may not read them', async () => {
    const standaloneToken = await tokenOf(fleet.standalone);
    const otherApp = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'other' }));
    const stranger = ok(
      await server.http<{ id: string }>('POST', `/applications/${otherApp.id}/devices`, { name: 'stranger' }),
    );
    const admin = undefined;
    const cases: Array<{ url: string; token: string | null | undefined; status: number; type: string }> = [
      { url: `${base()}/devices/${fleet.standalone}/stateStream`, token: null, status: 401, type: 'Unauthorized' },
      { url: `${base()}/devices/${fleet.standalone}/stateStream`, token: 'nope', status: 401, type: 'Unauthorized' },
      { url: `${base()}/events`, token: null, status: 401, type: 'Unauthorized' },
      // A device token reads only its own device, and never the application stream.
      { url: `${base()}/devices/${fleet.gateway}/stateStream`, token: standaloneToken, status: 403, type: 'Forbidden' },
      { url: `${base()}/devices/${fleet.bound}/commandStream`, token: standaloneToken, status: 403, type: 'Forbidden' },
      { url: `${base()}/events`, token: standaloneToken, status: 403, type: 'Forbidden' },
      // Another application's device, or no application at all: not found.
      { url: `${base()}/devices/${stranger.id}/stateStream`, token: admin, status: 404, type: 'NotFound' },
      { url: `${base()}/devices/${stranger.id}/stateStream`, token: standaloneToken, status: 404, type: 'NotFound' },
      {
        url: `/applications/${otherApp.id}/devices/${fleet.standalone}/commandStream`,
        token: admin,
        status: 404,
        type: 'NotFound',
      },
      { url: `/applications/${'0'.repeat(24)}/events`, token: admin, status: 404, type: 'NotFound' },
      // Filters are checked.
      { url: `${base()}/events?types=state,bogus`, token: admin, status: 400, type: 'Validation' },
      { url: `${base()}/events?deviceClass=gizmo`, token: admin, status: 400, type: 'Validation' },
      { url: `${base()}/events?deviceId=nope`, token: admin, status: 400, type: 'Validation' },
    ];
    for (const { url, token, status, type } of cases) {
      const s = await stream(url, token === undefined ? {} : { token });
      expect([url, s.status, (s.error as { type?: string } | undefined)?.type]).toEqual([url, status, type]);
    }
    const own = await stream(`${base()}/devices/${fleet.standalone}/stateStream`, { token: standaloneToken });
    expect(own.status).toBe(200);
  });

  it('ends a device-token stream when its access key is deactivated', async () => {
    const key = ok(
      await server.http<{ id: string; key: string; secret: string }>('POST', `${base()}/keys`, { description: 'temp' }),
    );
    const token = await deviceToken(server, fleet.standalone, key);
    const s = await stream(`${base()}/devices/${fleet.standalone}/commandStream`, { token });
    await command(fleet.standalone, 'before');
    await s.waitFor(1);
    ok(await server.http('PATCH', `${base()}/keys/${key.id}`, { status: 'inactive' }), 200);
    await command(fleet.standalone, 'after');
    const events = await s.waitForEnd();
    expect(events.map((e) => e.event)).toEqual(['command', 'closed']);
    expect(events[1]!.json).toEqual({ message: expect.stringContaining('inactive') });
  });
});

describe('live streams on shutdown', () => {
  it('end with event: shutdown when the server stops', async () => {
    const server = await startTestServer();
    const fleet = await createFleet(server);
    const base = `/applications/${fleet.applicationId}`;
    const device = await openStream(server, `${base}/devices/${fleet.standalone}/stateStream`);
    const app = await openStream(server, `${base}/events`);
    ok(await server.http('POST', `${base}/devices/${fleet.standalone}/state`, { data: { temperature: 1 } }), 200);
    await device.waitFor(1);
    await app.waitFor(1);

    await server.stop();
    const deviceEvents = await device.waitForEnd();
    const appEvents = await app.waitForEnd();
    expect(deviceEvents.map((e) => e.event)).toEqual(['state', 'shutdown']);
    expect(appEvents.map((e) => e.event)).toEqual(['state', 'shutdown']);
    expect(appEvents[1]!.json).toEqual({ message: 'server shutting down' });
  });
});
