/**
 * GET /metrics (docs/operations.md, "Metrics") on a real server: real MQTT clients and HTTP
 * requests make traffic, the Prometheus text is scraped and parsed before and after, and each
 * series is checked to have moved by exactly what that traffic implies. Writes are drained
 * before each scrape, so group commits are settled; no assertion waits on a clock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchMetrics, moved, type Scrape, scrape } from '../helpers/metrics.js';
import {
  createFleet,
  eventually,
  nextMessage,
  ok,
  refusedConnect,
  type SeedFleet,
  startTestServer,
  subscribeGranted,
  type TestServer,
} from '../helpers/server.js';
import { openStream } from '../helpers/sse.js';

describe('GET /metrics', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  /** A key that also allows custom topics. */
  let topicKey: { key: string; secret: string };

  /** A scrape once every write so far is committed. */
  const settled = async (): Promise<Scrape> => {
    await server.running.platform.drain();
    return scrape(server);
  };

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server, { application: { rateLimit: { messages: 0, windowSeconds: 15 } } });
    topicKey = ok(
      await server.http<{ key: string; secret: string }>('POST', `/applications/${fleet.applicationId}/keys`, {
        description: 'custom topics too',
        filterType: 'all',
      }),
    );
  });
  afterAll(() => server?.stop());

  it('is public by default, in the Prometheus text format, with typed families and the process defaults', async () => {
    const res = await fetchMetrics(server);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const s = await settled();
    const types = Object.fromEntries(
      [
        'gatehouse_mqtt_connections',
        'gatehouse_sse_streams',
        'gatehouse_mqtt_connects_total',
        'gatehouse_mqtt_disconnects_total',
        'gatehouse_messages_in_total',
        'gatehouse_messages_out_total',
        'gatehouse_refusals_total',
        'gatehouse_states_stored_total',
        'gatehouse_peripheral_messages_total',
        'gatehouse_command_routes_total',
        'gatehouse_group_commit_batch_size',
        'gatehouse_group_commit_duration_seconds',
        'gatehouse_group_commit_failures_total',
        'gatehouse_mqtt_puback_seconds',
        'nodejs_eventloop_lag_seconds',
        'nodejs_eventloop_lag_p99_seconds',
        'process_cpu_seconds_total',
        'process_resident_memory_bytes',
      ].map((name) => [name, s.types.get(name)]),
    );
    expect(types).toEqual({
      gatehouse_mqtt_connections: 'gauge',
      gatehouse_sse_streams: 'gauge',
      gatehouse_mqtt_connects_total: 'counter',
      gatehouse_mqtt_disconnects_total: 'counter',
      gatehouse_messages_in_total: 'counter',
      gatehouse_messages_out_total: 'counter',
      gatehouse_refusals_total: 'counter',
      gatehouse_states_stored_total: 'counter',
      gatehouse_peripheral_messages_total: 'counter',
      gatehouse_command_routes_total: 'counter',
      gatehouse_group_commit_batch_size: 'histogram',
      gatehouse_group_commit_duration_seconds: 'histogram',
      gatehouse_group_commit_failures_total: 'counter',
      gatehouse_mqtt_puback_seconds: 'histogram',
      nodejs_eventloop_lag_seconds: 'gauge',
      nodejs_eventloop_lag_p99_seconds: 'gauge',
      process_cpu_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
    });
    // Label values are bounded categories: no id of this server's data appears in any series.
    for (const id of [fleet.applicationId, fleet.gateway, fleet.bound, fleet.key]) expect(s.text).not.toContain(id);
  });

  it('counts one QoS 1 state as one group commit of one write, one stored state and one PUBACK', async () => {
    const gateway = await server.connect(fleet.gateway, fleet.key, fleet.secret);
    const before = await settled();
    await gateway.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 20 } }), {
      qos: 1,
    });
    const after = await settled();
    expect(
      moved(before, after, [
        ['gatehouse_group_commit_batch_size_count'],
        ['gatehouse_group_commit_batch_size_sum'],
        ['gatehouse_group_commit_batch_size_bucket', { le: '1' }],
        ['gatehouse_group_commit_duration_seconds_count'],
        ['gatehouse_group_commit_duration_seconds_bucket', { le: '+Inf' }],
        ['gatehouse_group_commit_failures_total'],
        ['gatehouse_states_stored_total'],
        ['gatehouse_peripheral_messages_total'],
        ['gatehouse_mqtt_puback_seconds_count'],
        ['gatehouse_mqtt_puback_seconds_bucket', { le: '+Inf' }],
        ['gatehouse_messages_in_total', { protocol: 'mqtt', kind: 'state' }],
      ]),
    ).toEqual({
      gatehouse_group_commit_batch_size_count: 1,
      gatehouse_group_commit_batch_size_sum: 1,
      'gatehouse_group_commit_batch_size_bucket{"le":"1"}': 1,
      gatehouse_group_commit_duration_seconds_count: 1,
      'gatehouse_group_commit_duration_seconds_bucket{"le":"+Inf"}': 1,
      gatehouse_group_commit_failures_total: 0,
      gatehouse_states_stored_total: 1,
      gatehouse_peripheral_messages_total: 1,
      gatehouse_mqtt_puback_seconds_count: 1,
      'gatehouse_mqtt_puback_seconds_bucket{"le":"+Inf"}': 1,
      'gatehouse_messages_in_total{"protocol":"mqtt","kind":"state"}': 1,
    });
    // The commit took some time, and the PUBACK waited for it.
    expect(after.value('gatehouse_group_commit_duration_seconds_sum')).toBeGreaterThan(
      before.value('gatehouse_group_commit_duration_seconds_sum'),
    );
    expect(after.value('gatehouse_mqtt_puback_seconds_sum')).toBeGreaterThan(
      before.value('gatehouse_mqtt_puback_seconds_sum'),
    );
    await server.endClients();
  });

  it('counts connections, messages in and out, refusals, command routes and open streams', async () => {
    await server.endClients();
    await eventually(
      async () => (await scrape(server)).value('gatehouse_mqtt_connections', { device_class: 'gateway' }) === 0,
    );
    const before = await settled();

    // A gateway subscribed to its own error topic, its bound peripheral's commands and a custom topic.
    const gateway = await server.connect(fleet.gateway, topicKey.key, topicKey.secret);
    expect(await subscribeGranted(gateway, `losant/${fleet.gateway}/error`)).toEqual([1]);
    expect(await subscribeGranted(gateway, `losant/${fleet.bound}/command`)).toEqual([1]);
    expect(await subscribeGranted(gateway, 'site/greenhouse')).toEqual([1]);
    const errors = `losant/${fleet.gateway}/error`;

    // A custom topic, published and received back.
    const echoed = nextMessage(gateway, 'site/greenhouse');
    await gateway.publishAsync('site/greenhouse', JSON.stringify({ door: 'open' }), { qos: 1 });
    expect((await echoed).payload).toEqual({ door: 'open' });

    // Accepted: state for its peripheral. Refused: state for a standalone device (403) and a
    // publish to a command topic (403); both answered on its error topic. All at QoS 1.
    await gateway.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 21 } }), {
      qos: 1,
    });
    let notice = nextMessage(gateway, errors);
    await gateway.publishAsync(`losant/${fleet.standalone}/state`, JSON.stringify({ data: { temperature: 1 } }), {
      qos: 1,
    });
    expect((await notice).payload).toMatchObject({ code: 403 });
    notice = nextMessage(gateway, errors);
    await gateway.publishAsync(`losant/${fleet.bound}/command`, JSON.stringify({ name: 'x' }), { qos: 1 });
    expect((await notice).payload).toMatchObject({ code: 403 });

    // A CONNECT with a wrong secret, and a REST request without a token.
    expect((await refusedConnect(server, fleet.otherGateway, fleet.key, 'wrong secret')).code).toBe(4);
    expect((await server.http('GET', '/applications', undefined, null)).status).toBe(401);

    // REST: a command routed to the peripheral's last reporter, one with no route, and a state.
    const delivered = nextMessage(gateway, `losant/${fleet.bound}/command`);
    const routed = ok(
      await server.http<{ routedTo: string[] }>(
        'POST',
        `/applications/${fleet.applicationId}/devices/${fleet.bound}/command`,
        { name: 'blink' },
      ),
      200,
    );
    expect(routed.routedTo).toEqual([fleet.gateway]);
    expect((await delivered).payload).toMatchObject({ name: 'blink' });
    const unrouted = ok(
      await server.http<{ routedTo: string[] }>(
        'POST',
        `/applications/${fleet.applicationId}/devices/${fleet.standalone}/command`,
        { name: 'blink' },
      ),
      200,
    );
    expect(unrouted.routedTo).toEqual([]);
    ok(
      await server.http('POST', `/applications/${fleet.applicationId}/devices/${fleet.standalone}/state`, {
        data: { temperature: 5 },
      }),
      200,
    );

    // An open live stream.
    const stream = await openStream(server, `/applications/${fleet.applicationId}/events`);
    expect(stream.status).toBe(200);

    const after = await settled();
    expect(after.value('gatehouse_mqtt_connections', { device_class: 'gateway' })).toBe(1);
    expect(after.value('gatehouse_mqtt_connections', { device_class: 'standalone' })).toBe(0);
    expect(after.value('gatehouse_sse_streams')).toBe(1);
    expect(
      moved(before, after, [
        ['gatehouse_mqtt_connects_total'],
        ['gatehouse_messages_in_total', { protocol: 'mqtt', kind: 'state' }],
        ['gatehouse_messages_in_total', { protocol: 'mqtt', kind: 'command' }],
        ['gatehouse_messages_in_total', { protocol: 'mqtt', kind: 'custom' }],
        ['gatehouse_messages_in_total', { protocol: 'rest', kind: 'state' }],
        ['gatehouse_messages_in_total', { protocol: 'rest', kind: 'command' }],
        ['gatehouse_messages_out_total', { kind: 'errorNotice' }],
        ['gatehouse_messages_out_total', { kind: 'command' }],
        ['gatehouse_messages_out_total', { kind: 'custom' }],
        ['gatehouse_states_stored_total'],
        ['gatehouse_peripheral_messages_total'],
        ['gatehouse_refusals_total', { protocol: 'mqtt', reason: 'Forbidden', status: '403' }],
        ['gatehouse_refusals_total', { protocol: 'mqtt', reason: 'ReservedTopic', status: '403' }],
        ['gatehouse_refusals_total', { protocol: 'mqtt', reason: 'BadCredentials', status: '401' }],
        ['gatehouse_refusals_total', { protocol: 'rest', reason: 'Unauthorized', status: '401' }],
        ['gatehouse_refusals_total', { protocol: 'rest', reason: 'Validation', status: '400' }],
        ['gatehouse_command_routes_total', { outcome: 'lastReporter' }],
        ['gatehouse_command_routes_total', { outcome: 'candidates' }],
        ['gatehouse_command_routes_total', { outcome: 'none' }],
        ['gatehouse_mqtt_puback_seconds_count'],
        ['gatehouse_group_commit_failures_total'],
      ]),
    ).toEqual({
      gatehouse_mqtt_connects_total: 1,
      'gatehouse_messages_in_total{"protocol":"mqtt","kind":"state"}': 2,
      'gatehouse_messages_in_total{"protocol":"mqtt","kind":"command"}': 1,
      'gatehouse_messages_in_total{"protocol":"mqtt","kind":"custom"}': 1,
      'gatehouse_messages_in_total{"protocol":"rest","kind":"state"}': 1,
      'gatehouse_messages_in_total{"protocol":"rest","kind":"command"}': 2,
      'gatehouse_messages_out_total{"kind":"errorNotice"}': 2,
      'gatehouse_messages_out_total{"kind":"command"}': 1,
      'gatehouse_messages_out_total{"kind":"custom"}': 1,
      gatehouse_states_stored_total: 2,
      gatehouse_peripheral_messages_total: 1,
      'gatehouse_refusals_total{"protocol":"mqtt","reason":"Forbidden","status":"403"}': 1,
      'gatehouse_refusals_total{"protocol":"mqtt","reason":"ReservedTopic","status":"403"}': 1,
      'gatehouse_refusals_total{"protocol":"mqtt","reason":"BadCredentials","status":"401"}': 1,
      'gatehouse_refusals_total{"protocol":"rest","reason":"Unauthorized","status":"401"}': 1,
      'gatehouse_refusals_total{"protocol":"rest","reason":"Validation","status":"400"}': 0,
      'gatehouse_command_routes_total{"outcome":"lastReporter"}': 1,
      'gatehouse_command_routes_total{"outcome":"candidates"}': 0,
      'gatehouse_command_routes_total{"outcome":"none"}': 1,
      gatehouse_mqtt_puback_seconds_count: 4,
      gatehouse_group_commit_failures_total: 0,
    });
    // Every commit of this traffic joined at least one write.
    const commits = moved(before, after, [['gatehouse_group_commit_batch_size_count']]);
    expect(commits.gatehouse_group_commit_batch_size_count).toBeGreaterThan(0);

    // The stream closed and the gateway gone: the gauges go back, and the disconnect is counted by reason.
    stream.close();
    await gateway.endAsync();
    const gone = await eventually(async () => {
      const s = await scrape(server);
      const closed =
        s.value('gatehouse_sse_streams') === 0 &&
        s.value('gatehouse_mqtt_connections', { device_class: 'gateway' }) === 0;
      return closed ? s : undefined;
    });
    expect(moved(before, gone, [['gatehouse_mqtt_disconnects_total', { reason: 'clientDisconnected' }]])).toEqual({
      'gatehouse_mqtt_disconnects_total{"reason":"clientDisconnected"}': 1,
    });
  });
});

describe('GET /metrics with a metrics token', () => {
  const token = 'metrics-token-0123456789abcdef';
  let server: TestServer;
  let other: TestServer;

  beforeAll(async () => {
    [server, other] = await Promise.all([startTestServer({ metricsToken: token }), startTestServer()]);
  });
  afterAll(() => Promise.all([server?.stop(), other?.stop()]));

  it('answers 401 without the token or with another one, 200 with it; /health and /ready stay public', async () => {
    const missing = await fetchMetrics(server);
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
    expect(await missing.json()).toEqual({
      type: 'Unauthorized',
      message: 'metrics need Authorization: Bearer with the metrics token',
    });
    expect((await fetchMetrics(server, `${token}x`)).status).toBe(401);
    expect((await fetchMetrics(server, token.slice(0, -1))).status).toBe(401);
    // The admin API token is not the metrics token.
    expect((await fetchMetrics(server, 'test-admin-token-0123456789')).status).toBe(401);
    const s = await scrape(server, token);
    expect(s.value('gatehouse_refusals_total', { protocol: 'rest', reason: 'Unauthorized', status: '401' })).toBe(4);
    expect((await fetch(`${server.running.urls.http}/health`)).status).toBe(200);
    expect((await fetch(`${server.running.urls.http}/ready`)).status).toBe(200);
  });

  it('keeps a registry per server: traffic on one server does not show on another in the same process', async () => {
    const fleet = await createFleet(other);
    await other.connect(fleet.gateway, fleet.key, fleet.secret);
    expect((await scrape(other)).value('gatehouse_mqtt_connects_total')).toBe(1);
    expect((await scrape(server, token)).value('gatehouse_mqtt_connects_total')).toBe(0);
  });
});
