/**
 * The REST layer under hostile and unexpected input, over real HTTP: unknown query keys are
 * ignored, validation messages name the field at fault, malformed path ids answer 404, no input
 * gets a 5xx, attribute names never touch prototypes, 429 carries Retry-After, and every list the
 * server defines answers one envelope.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi } from '../../src/api/app.js';
import { isReferenceRoute } from '../../src/api/openapi.js';
import { ERROR_TYPES, type ErrorType } from '../../src/core/errors.js';
import {
  ADMIN_TOKEN,
  createFleet,
  deviceToken,
  ok,
  type SeedFleet,
  startTestServer,
  type TestServer,
} from '../helpers/server.js';
import { openStream } from '../helpers/sse.js';

interface Answer {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON (JSON.parse: a "__proto__" key stays an own key). */
  json: unknown;
}

/** Every route the API serves, with a request that reaches it. `:a`, `:d`, `:k`, `:u`, `:t` are path ids. */
const ROUTES: Array<{ method: string; url: string; query?: string[]; body?: Record<string, unknown> }> = [
  { method: 'POST', url: '/auth/device', body: { deviceId: '', key: '', secret: '' } },
  { method: 'POST', url: '/applications', body: { name: 'n' } },
  { method: 'GET', url: '/applications', query: ['page', 'perPage'] },
  { method: 'GET', url: '/applications/:a' },
  { method: 'PATCH', url: '/applications/:a', body: {} },
  { method: 'DELETE', url: '/applications/:a' },
  { method: 'POST', url: '/applications/:a/devices', body: { name: 'n' } },
  { method: 'GET', url: '/applications/:a/devices', query: ['page', 'perPage', 'deviceClass', 'filter', 'tagFilter'] },
  { method: 'GET', url: '/applications/:a/devices/:d' },
  { method: 'PATCH', url: '/applications/:a/devices/:d', body: {} },
  { method: 'DELETE', url: '/applications/:a/devices/:d' },
  { method: 'POST', url: '/applications/:a/keys', body: {} },
  { method: 'GET', url: '/applications/:a/keys', query: ['page', 'perPage'] },
  { method: 'GET', url: '/applications/:a/keys/:k' },
  { method: 'PATCH', url: '/applications/:a/keys/:k', body: {} },
  { method: 'DELETE', url: '/applications/:a/keys/:k' },
  { method: 'POST', url: '/applications/:a/devices/:d/state', body: { data: { temperature: 1 } } },
  {
    method: 'GET',
    url: '/applications/:a/devices/:d/state',
    query: ['start', 'end', 'duration', 'limit', 'sortDirection'],
  },
  { method: 'GET', url: '/applications/:a/devices/:d/compositeState', query: ['attributes'] },
  { method: 'POST', url: '/applications/:a/devices/:d/command', body: { name: 'n' } },
  {
    method: 'GET',
    url: '/applications/:a/devices/:d/command',
    query: ['start', 'end', 'duration', 'limit', 'sortDirection'],
  },
  { method: 'POST', url: '/applications/:a/devices/command', body: { name: 'n', deviceIds: [] } },
  { method: 'GET', url: '/applications/:a/devices/:d/logs', query: ['limit', 'before'] },
  { method: 'GET', url: '/applications/:a/devices/:d/stateStream', query: ['lastEventId'] },
  { method: 'GET', url: '/applications/:a/devices/:d/commandStream', query: ['lastEventId'] },
  {
    method: 'GET',
    url: '/applications/:a/events',
    query: ['deviceId', 'deviceClass', 'tagFilter', 'types', 'lastEventId'],
  },
  { method: 'GET', url: '/applications/:a/logs', query: ['limit', 'before', 'deviceId', 'kinds', 'start', 'end'] },
  { method: 'POST', url: '/applications/:a/data/time-series-query', body: {} },
  { method: 'POST', url: '/applications/:a/data/last-value-query', body: {} },
  { method: 'POST', url: '/auth/user', body: { email: 'nobody@example.com', password: 'not the password' } },
  { method: 'POST', url: '/auth/logout' },
  { method: 'GET', url: '/me' },
  { method: 'POST', url: '/users', body: { email: 'probe@example.com', password: 'a long password' } },
  { method: 'GET', url: '/users', query: ['page', 'perPage'] },
  { method: 'GET', url: '/users/:u' },
  { method: 'PATCH', url: '/users/:u', body: { name: 'n' } },
  { method: 'DELETE', url: '/users/:u' },
  { method: 'GET', url: '/applications/:a/members', query: ['page', 'perPage'] },
  { method: 'POST', url: '/applications/:a/members', body: { email: 'member@example.com', role: 'viewer' } },
  { method: 'PATCH', url: '/applications/:a/members/:u', body: { role: 'editor' } },
  { method: 'DELETE', url: '/applications/:a/members/:u' },
  { method: 'GET', url: '/applications/:a/tokens', query: ['page', 'perPage'] },
  { method: 'POST', url: '/applications/:a/tokens', body: { name: 'n', role: 'viewer' } },
  { method: 'DELETE', url: '/applications/:a/tokens/:t' },
  { method: 'POST', url: '/applications/:a/flows', body: { name: 'n' } },
  { method: 'GET', url: '/applications/:a/flows', query: ['page', 'perPage'] },
  { method: 'GET', url: '/applications/:a/flows/:f' },
  { method: 'PATCH', url: '/applications/:a/flows/:f', body: { description: 'd' } },
  { method: 'DELETE', url: '/applications/:a/flows/:f' },
  { method: 'POST', url: '/applications/:a/flows/:f/versions', body: { version: 'v' } },
  { method: 'GET', url: '/applications/:a/flows/:f/versions', query: ['page', 'perPage'] },
  { method: 'GET', url: '/applications/:a/flows/:f/logs', query: ['limit', 'start', 'end'] },
  { method: 'GET', url: '/applications/:a/flows/:f/debugStream' },
  { method: 'POST', url: '/applications/:a/flows/:f/virtualButton', body: { key: 'go' } },
  // Dashboards: `:b` is a dashboard's id, under its application and at Losant's top-level paths.
  { method: 'POST', url: '/applications/:a/dashboards', body: { name: 'n' } },
  {
    method: 'GET',
    url: '/applications/:a/dashboards',
    query: ['page', 'perPage', 'sortField', 'sortDirection', 'filterField', 'filter'],
  },
  { method: 'GET', url: '/applications/:a/dashboards/:b' },
  { method: 'PATCH', url: '/applications/:a/dashboards/:b', body: { description: 'd' } },
  { method: 'DELETE', url: '/applications/:a/dashboards/:b' },
  { method: 'POST', url: '/dashboards', body: { name: 'n', applicationId: '' } },
  { method: 'GET', url: '/dashboards', query: ['page', 'perPage', 'sortField', 'applicationId', 'filter'] },
  { method: 'GET', url: '/dashboards/:b' },
  { method: 'PATCH', url: '/dashboards/:b', body: { description: 'd' } },
  { method: 'DELETE', url: '/dashboards/:b' },
  // Webhooks: `:w` is a webhook's id, `:h` its token (the public URLs take any method and body).
  { method: 'POST', url: '/applications/:a/webhooks', body: { name: 'n' } },
  { method: 'GET', url: '/applications/:a/webhooks', query: ['page', 'perPage'] },
  { method: 'GET', url: '/applications/:a/webhooks/:w' },
  { method: 'PATCH', url: '/applications/:a/webhooks/:w', body: { name: 'n' } },
  { method: 'DELETE', url: '/applications/:a/webhooks/:w' },
  ...['/webhooks/:h', '/webhooks/:h/*'].flatMap((url) => [
    { method: 'GET', url, query: ['x'] },
    ...['POST', 'PUT', 'PATCH', 'DELETE'].map((method) => ({ method, url, body: { n: 1 } })),
  ]),
];

/** Query values no route expects. */
const HOSTILE_VALUES = [
  '1e400',
  '-1e400',
  'Infinity',
  'NaN',
  '-1',
  '1e308',
  '9007199254740993',
  '1.5',
  '0x10',
  '',
  '%20',
  '%00',
  '%F0%9F%92%A5',
  'x'.repeat(5000),
  '__proto__',
  'true',
];

/** Body field values no route expects: small ones, tried in every field. */
const HOSTILE_JSON = [
  'null',
  '-1e400',
  '1e400',
  '"1e400"',
  '"x"',
  'true',
  '[]',
  '{}',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '"\\u0000\\ud800"',
];

/** Large ones (deep, long, wide), tried as the whole body and as a free-form field. */
function largeHostileJson(): string[] {
  const deep = (open: string, close: string, n: number) => `${open.repeat(n)}1${close.repeat(n)}`;
  return [
    `"${'x'.repeat(100_000)}"`,
    `[${Array(50_000).fill('1').join(',')}]`,
    deep('[', ']', 4000),
    deep('{"a":', '}', 4000),
    deep('[', ']', 100_000),
  ];
}

describe('REST hardening', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let keyId: string;
  let gatewayToken: string;
  const failures: string[] = [];
  const errorLog: string[] = [];

  let userId: string;
  let tokenId: string;
  let flowId: string;
  let dashboardId: string;
  let webhook: { id: string; token: string };
  const fill = (
    url: string,
    ids: { a?: string; d?: string; k?: string; u?: string; t?: string; f?: string; b?: string } = {},
  ) =>
    url
      .replace(':a', ids.a ?? fleet.applicationId)
      .replace(':d', ids.d ?? fleet.standalone)
      .replace(':k', ids.k ?? keyId)
      .replace(':u', ids.u ?? userId)
      .replace(':t', ids.t ?? tokenId)
      .replace(':f', ids.f ?? flowId)
      .replace(':b', ids.b ?? dashboardId)
      .replace(':w', webhook.id)
      .replace(':h', webhook.token);

  async function send(
    method: string,
    url: string,
    options: { body?: string; token?: string | null; contentType?: string } = {},
  ): Promise<Answer> {
    const token = options.token === undefined ? ADMIN_TOKEN : options.token;
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (options.body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
    const abort = new AbortController();
    const res = await fetch(`${server.running.urls.http}${url}`, {
      method,
      headers,
      ...(options.body !== undefined ? { body: options.body } : {}),
      signal: abort.signal,
    });
    if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
      abort.abort(); // a stream opened: it would never end by itself
      return { status: res.status, headers: res.headers, text: '', json: undefined };
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  }

  /**
   * Records an answer that is a 5xx or not in the API's shape (`{type, message}`, with a type of
   * the catalogue and that type's status); the test checks the list at its end.
   */
  function check(what: string, answer: Answer): Answer {
    const body = answer.json as { type?: unknown; message?: unknown } | undefined;
    const catalogued = (type: unknown) => Object.hasOwn(ERROR_TYPES, String(type));
    const shaped =
      answer.status < 400 ||
      (catalogued(body?.type) &&
        ERROR_TYPES[body?.type as ErrorType] === answer.status &&
        typeof body?.message === 'string' &&
        Object.keys(body).length === 2);
    if (answer.status >= 500 || !shaped)
      failures.push(`${answer.status} ${what.slice(0, 160)}: ${answer.text.slice(0, 200)}`);
    return answer;
  }

  function expectError(answer: Answer, status: number, type: string): string {
    expect({ status: answer.status, type: (answer.json as { type?: string } | undefined)?.type }).toEqual({
      status,
      type,
    });
    return (answer.json as { message: string }).message;
  }

  beforeAll(async () => {
    // The operator log at error level: a request that failed on our side shows up here.
    const logger = pino(
      { level: 'error' },
      new Writable({
        write(chunk, _encoding, done) {
          errorLog.push(String(chunk));
          done();
        },
      }),
    );
    server = await startTestServer({ logger });
    fleet = await createFleet(server, { application: { rateLimit: { messages: 100_000, windowSeconds: 60 } } });
    keyId = ok(
      await server.http<{ items: Array<{ id: string }> }>('GET', `/applications/${fleet.applicationId}/keys`),
      200,
    ).items[0]!.id;
    gatewayToken = await deviceToken(server, fleet.gateway, fleet);
    userId = ok(
      await server.http<{ id: string }>('POST', '/users', { email: 'u@example.com', password: 'a long password' }),
    ).id;
    await server.http('POST', `/applications/${fleet.applicationId}/members`, {
      email: 'u@example.com',
      role: 'owner',
    });
    flowId = ok(
      await server.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/flows`, {
        name: 'probe',
        triggers: [{ type: 'virtualButton', key: 'go', outputIds: [[]] }],
      }),
    ).id;
    dashboardId = ok(
      await server.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/dashboards`, { name: 'probe' }),
    ).id;
    webhook = ok(
      await server.http<{ id: string; token: string }>('POST', `/applications/${fleet.applicationId}/webhooks`, {
        name: 'probe',
      }),
    );
    tokenId = ok(
      await server.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/tokens`, {
        name: 't',
        role: 'viewer',
      }),
    ).id;
  });
  afterAll(() => server.stop());

  it('probes every route the API serves', async () => {
    // A second API on the same platform, never listening: only to list its routes.
    const api = createApi(server.running.platform, { workflows: server.running.workflows });
    const served: string[] = [];
    api.addHook('onRoute', (route) => {
      // The API reference's own routes (/openapi.json, /docs) are not part of the API it describes.
      if (isReferenceRoute(route.url)) return;
      for (const method of [route.method].flat()) if (method !== 'HEAD') served.push(`${method} ${route.url}`);
    });
    await api.ready();
    await api.close();
    const probed = ROUTES.map(
      (r) =>
        `${r.method} ${r.url
          .replace(':a', ':applicationId')
          .replace(':d', ':deviceId')
          .replace(':k', ':keyId')
          .replace(':u', ':userId')
          .replace(':t', ':tokenId')
          .replace(':f', ':flowId')
          .replace(':b', ':dashboardId')
          .replace(':w', ':webhookId')
          .replace(':h', ':token')}`,
    );
    // The operator's routes answer no API resource (test/integration/readiness.test.ts, metrics.test.ts).
    const operator = ['GET /health', 'GET /ready', 'GET /metrics'];
    expect(served.filter((r) => !operator.includes(r)).sort()).toEqual(probed.sort());
  });

  describe('query strings', () => {
    it("ignores unknown keys on every route, such as losant-rest's _actions, _links and _embedded", async () => {
      const extra = '_actions=false&_links=true&_embedded=true&colour=red&colour=blue&__proto__=x&constructor=y';
      for (const route of ROUTES.filter((r) => r.method === 'GET')) {
        const url = `${fill(route.url)}?${extra}`;
        const answer = check(url, await send('GET', url));
        expect([url, answer.status]).toEqual([url, 200]);
      }
      // With a device token too.
      const own = `${fill('/applications/:a/devices/:d/state', { d: fleet.gateway })}?${extra}`;
      expect((await send('GET', own, { token: gatewayToken })).status).toBe(200);
    });

    it('refuses a number no bound can hold, naming the key', async () => {
      for (const url of [
        '/applications/:a/devices/:d/state?limit=1e400',
        '/applications/:a/devices/:d/command?limit=1e400',
        '/applications/:a/devices/:d/logs?limit=-1e400',
        '/applications/:a/logs?limit=Infinity',
        '/applications/:a/devices?page=1e400',
        '/applications?perPage=-Infinity',
        '/applications/:a/devices/:d/state?start=1e400',
      ]) {
        const key = /\?(\w+)=/.exec(url)![1];
        const answer = check(url, await send('GET', fill(url)));
        expect([url, expectError(answer, 400, 'Validation')]).toEqual([
          url,
          `querystring/${key} must be a finite number`,
        ]);
      }
      expect(expectError(await send('GET', fill('/applications/:a/devices?page=1e308')), 400, 'Validation')).toBe(
        'querystring/page must be <= 1000000000',
      );
    });
  });

  describe('validation messages', () => {
    it('name the field at fault by its path', async () => {
      const a = fleet.applicationId;
      const cases: Array<[string, string, unknown, string]> = [
        ['POST', '/applications', { name: 'x', colour: 'red' }, 'body has an unknown property "colour"'],
        ['POST', '/applications', {}, 'body/name is required'],
        ['POST', '/applications', { name: ['a', 'b'] }, 'body/name must be a string'],
        ['POST', '/applications', [], 'body must be an object'],
        ['PATCH', `/applications/${a}`, { rateLimit: { messages: 1 } }, 'body/rateLimit/windowSeconds is required'],
        [
          'PATCH',
          `/applications/${a}`,
          { rateLimit: { messages: 1, windowSeconds: 1, burst: 2 } },
          'body/rateLimit has an unknown property "burst"',
        ],
        [
          'POST',
          `/applications/${a}/devices`,
          { name: 'd', tags: [{ key: 'k', value: 'v', colour: 1 }] },
          'body/tags/0 has an unknown property "colour"',
        ],
        [
          'POST',
          `/applications/${a}/devices`,
          { name: 'd', deviceClass: 'robot' },
          'body/deviceClass must be one of standalone, gateway, edgeCompute, peripheral, floating, system, embedded',
        ],
        [
          'POST',
          `/applications/${a}/devices`,
          { name: 'd', attributes: [{ name: 'a b', dataType: 'number' }] },
          'body/attributes/0/name must match pattern "^[0-9a-zA-Z_-]{1,255}$"',
        ],
        [
          'POST',
          `/applications/${a}/devices`,
          { name: 'd', gatewayId: 'nope' },
          'body/gatewayId must match pattern "^[0-9a-f]{24}$"',
        ],
        [
          'POST',
          `/applications/${a}/keys`,
          { deviceIds: ['nope'] },
          'body/deviceIds/0 must match pattern "^[0-9a-f]{24}$"',
        ],
        [
          'POST',
          `/applications/${a}/devices`,
          {
            name: 'd',
            attributes: [
              { name: 'a', dataType: 'number' },
              { name: 'a', dataType: 'string' },
            ],
          },
          'body/attributes/1/name: attribute "a" is defined twice',
        ],
        [
          'POST',
          `/applications/${a}/devices`,
          { name: 's', gatewayId: fleet.gateway },
          'body/gatewayId is refused: gatewayId applies only to peripheral devices, not to a standalone device',
        ],
        ['POST', '/auth/device', { deviceId: fleet.gateway, key: 'k' }, 'body/secret is required'],
        [
          'POST',
          `/applications/${a}/data/time-series-query`,
          { aggregation: 'MEDIAN' },
          'body/aggregation must be one of FIRST, LAST, MIN, MAX, MEAN, SUM, COUNT, NONE',
        ],
        [
          'GET',
          `/applications/${a}/devices/${fleet.standalone}/state?limit=0`,
          undefined,
          'querystring/limit must be >= 1',
        ],
        [
          'GET',
          `/applications/${a}/devices/${fleet.standalone}/state?sortDirection=up`,
          undefined,
          'querystring/sortDirection must be one of asc, desc',
        ],
        [
          'GET',
          `/applications/${a}/devices?deviceClass=robot`,
          undefined,
          'querystring/deviceClass has an unknown value robot; one of standalone, gateway, edgeCompute, peripheral, floating, system, embedded',
        ],
        [
          'POST',
          `/applications/${a}/devices/${fleet.standalone}/command`,
          '{"name":"x","payload":{"list":[{"__proto__":{"polluted":1}}]}}',
          'body/payload/list/0/__proto__ is a key that is not accepted',
        ],
        [
          'POST',
          `/applications/${a}/devices/${fleet.standalone}/command`,
          '{"name":"x","payload":{"constructor":{"prototype":{}}}}',
          'body/payload/constructor is a key that is not accepted',
        ],
      ];
      for (const [method, url, body, message] of cases) {
        const text = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
        const answer = await send(method, url, text === undefined ? {} : { body: text });
        expect([method, url, answer.status, (answer.json as { message?: string }).message]).toEqual([
          method,
          url,
          400,
          message,
        ]);
      }
      expect(({}.constructor.prototype as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('name the body when it is not JSON', async () => {
      const answer = await send('POST', '/applications', { body: '{"name":' });
      expect(expectError(answer, 400, 'Validation')).toMatch(/^body is not valid JSON: /);
      expect(expectError(await send('POST', '/applications', { body: '' }), 400, 'Validation')).toMatch(
        /^body is not valid JSON: /,
      );
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded']) {
        const other = await send('POST', '/applications', { body: 'name=x', contentType });
        expect(expectError(other, 415, 'UnsupportedMediaType')).toBe(
          `body must be application/json, not ${contentType}`,
        );
      }
    });
  });

  describe('malformed ids in paths', () => {
    const MALFORMED = ['xyz', 'A'.repeat(24), '0'.repeat(25), 'x'.repeat(200), '%E0%A4%A', '__proto__', '%F0%9F%92%A5'];

    it('answer 404 NotFound on every route, for every id in the path', async () => {
      for (const route of ROUTES.filter((r) => r.url.includes(':'))) {
        for (const slot of ['a', 'd', 'k', 'u', 't', 'f', 'b'] as const) {
          if (!route.url.includes(`:${slot}`)) continue;
          for (const bad of MALFORMED) {
            const url = fill(route.url, { [slot]: bad });
            const body = route.body ? JSON.stringify(route.body) : undefined;
            const answer = check(url, await send(route.method, url, body === undefined ? {} : { body }));
            expect([route.method, url, answer.status, (answer.json as { type?: string }).type]).toEqual([
              route.method,
              url,
              404,
              'NotFound',
            ]);
          }
        }
      }
      expect(failures).toEqual([]);
    });

    it('name what was not found', async () => {
      const device = await send('GET', `/applications/${fleet.applicationId}/devices/xyz`);
      expect(expectError(device, 404, 'NotFound')).toBe('device xyz not found (params/deviceId is not an id)');
      const app = await send('GET', '/applications/xyz/devices');
      expect(expectError(app, 404, 'NotFound')).toBe('application xyz not found (params/applicationId is not an id)');
      // Also with a device token (authenticated first, then the path).
      const own = await send('GET', `/applications/${fleet.applicationId}/devices/xyz/state`, { token: gatewayToken });
      expectError(own, 404, 'NotFound');
    });
  });

  describe('no 5xx for any input', () => {
    it('answers every hostile query value on every route with a 2xx or a 4xx in the error shape', async () => {
      for (const route of ROUTES.filter((r) => r.query)) {
        for (const key of [...(route.query ?? []), 'bogus']) {
          for (const value of HOSTILE_VALUES) {
            for (const query of [`${key}=${value}`, `${key}=${value}&${key}=${value}`, `${key}[]=${value}`]) {
              const url = `${fill(route.url)}?${query}`;
              check(`GET ${url}`, await send('GET', url));
            }
          }
        }
      }
      expect(failures).toEqual([]);
    }, 60_000);

    it('answers every hostile body and body field with a 2xx or a 4xx in the error shape', async () => {
      // Scratch records: a probe that happens to be valid must not change what later probes meet.
      const scratchApp = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'scratch' })).id;
      const scratchDevice = ok(
        await server.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/devices`, { name: 'scratch' }),
      ).id;
      const scratchKey = ok(
        await server.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/keys`, { description: 'x' }),
      ).id;
      const large = largeHostileJson();
      const withField = (base: Record<string, unknown>, field: string, value: string) =>
        `{${Object.entries(base)
          .filter(([k]) => k !== field)
          .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`)
          .concat(`${JSON.stringify(field)}:${value}`)
          .join(',')}}`;
      for (const route of ROUTES.filter((r) => r.body)) {
        const url = fill(route.url, {
          ...(route.url === '/applications/:a' ? { a: scratchApp } : {}),
          d: route.url.endsWith('/state') ? fleet.standalone : scratchDevice,
          k: scratchKey,
        });
        const base = route.body ?? {};
        const fields = [...Object.keys(base), 'payload', 'time', 'data', 'deviceIds', 'tags', 'bogus'];
        for (const value of HOSTILE_JSON) {
          check(`${route.method} ${url} body=${value}`, await send(route.method, url, { body: value }));
          for (const field of fields) {
            const body = withField(base, field, value);
            check(`${route.method} ${url} ${field}=${value}`, await send(route.method, url, { body }));
          }
        }
        for (const value of large) {
          const what = `${route.method} ${url} ${value.slice(0, 20)}…`;
          check(`${what} as the body`, await send(route.method, url, { body: value }));
          check(`${what} as payload`, await send(route.method, url, { body: withField(base, 'payload', value) }));
        }
      }
      expect(failures).toEqual([]);
      expect(({}.constructor.prototype as Record<string, unknown>).polluted).toBeUndefined();
    }, 60_000);

    it('logged no request failure on the server side', () => {
      expect(errorLog.filter((line) => line.includes('request failed'))).toEqual([]);
    });
  });

  describe('bad input that once answered 500', () => {
    const commandUrl = () => `/applications/${fleet.applicationId}/devices/${fleet.standalone}/command`;
    const nested = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;

    it('refuses a command payload nested deeper than 64 levels, and stores one of 64', async () => {
      for (const url of [commandUrl(), `/applications/${fleet.applicationId}/devices/command`]) {
        const body = `{"name":"deep","deviceIds":["${fleet.standalone}"],"payload":${nested(4000)}}`;
        const text = url.endsWith('/devices/command') ? body : body.replace(`"deviceIds":["${fleet.standalone}"],`, '');
        expect(expectError(await send('POST', url, { body: text }), 400, 'Validation')).toBe(
          'body/payload nests arrays and objects more than 64 levels deep',
        );
      }
      ok(await server.http('POST', commandUrl(), JSON.parse(`{"name":"sixty-four","payload":${nested(64)}}`)), 200);
      const history = ok(
        await server.http<Array<{ name: string; payload: unknown }>>('GET', `${commandUrl()}?limit=1`),
        200,
      );
      expect(history[0]).toMatchObject({ name: 'sixty-four', payload: JSON.parse(nested(64)) });
      expectError(
        await send('POST', commandUrl(), { body: `{"name":"x","payload":${nested(65)}}` }),
        400,
        'Validation',
      );
    });

    it('refuses command times no date can hold, or that are not times, with 400 Validation', async () => {
      const outside = 'body/time is outside the range of dates (at most 8640000000000000 ms either side of 1970)';
      const notATime =
        'body/time is not a time: give ms or s since the epoch, an ISO 8601 string, or {"$date": one of those}';
      const cases: Array<[string, string]> = [
        ['1e17', outside],
        ['-1e20', outside],
        ['"100000000000000000000"', outside],
        ['{"$date": 8640000000000001}', outside],
        ['1e400', 'body/time must be a finite number'],
        ['"yesterday"', notATime],
        ['true', notATime],
        ['{"$date": {"$date": 1}}', notATime],
      ];
      for (const [time, message] of cases) {
        const answer = await send('POST', commandUrl(), { body: `{"name":"t","time":${time}}` });
        expect([time, answer.status, (answer.json as { message?: string }).message]).toEqual([time, 400, message]);
      }
    });

    it('refuses state times no date can hold with 400 Validation, keeping the good states of an array', async () => {
      const stateUrl = `/applications/${fleet.applicationId}/devices/${fleet.standalone}/state`;
      for (const time of ['1e17', '-1e20', '{"$date": 8640000000000001}']) {
        const answer = await send('POST', stateUrl, { body: `{"data":{"temperature":1},"time":${time}}` });
        expect([time, expectError(answer, 400, 'Validation')]).toEqual([
          time,
          'nothing to store: state time is outside the range of dates; ignored',
        ]);
      }
      const mixed = await send('POST', stateUrl, {
        body: `[{"data":{"temperature":2},"time":1e17},{"data":{"temperature":3}}]`,
      });
      expect({ status: mixed.status, body: mixed.json }).toEqual({
        status: 200,
        body: {
          success: true,
          stored: 1,
          dropped: [{ index: 0, reason: 'state time is outside the range of dates; ignored' }],
        },
      });
      const empty = await send('POST', stateUrl, { body: '{"data":{}}' });
      expect(expectError(empty, 400, 'Validation')).toBe('nothing to store: "data" holds no attribute');
    });
  });

  describe('attribute names that are Object.prototype keys', () => {
    const NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
    let device: string;

    const keysOf = (value: unknown) => Object.keys(value as object).sort();

    beforeAll(async () => {
      device = ok(
        await server.http<{ id: string }>('POST', `/applications/${fleet.applicationId}/devices`, {
          name: 'prototype keys',
          attributes: NAMES.map((name) => ({ name, dataType: 'number' })),
        }),
      ).id;
    });

    it('keeps them in every read path', async () => {
      const now = Date.now();
      const base = `/applications/${fleet.applicationId}/devices/${device}`;
      const live = await openStream(server, `${base}/stateStream`);
      const posted = await send('POST', `${base}/state`, {
        body: `{"data":{"__proto__":1,"constructor":2,"toString":3,"hasOwnProperty":4},"time":${now}}`,
      });
      expect({ status: posted.status, body: posted.json }).toEqual({ status: 200, body: { success: true, stored: 1 } });
      const sorted = [...NAMES].sort();

      // State history, composite state (whole and filtered), the live stream.
      const history = (await send('GET', `${base}/state`)).json as Array<{ data: Record<string, unknown> }>;
      expect(keysOf(history[0]?.data)).toEqual(sorted);
      expect(Object.getOwnPropertyDescriptor(history[0]?.data, '__proto__')?.value).toBe(1);
      const composite = (await send('GET', `${base}/compositeState`)).json as Record<string, { value: unknown }>;
      expect(keysOf(composite)).toEqual(sorted);
      expect(Object.getOwnPropertyDescriptor(composite, '__proto__')?.value).toMatchObject({ value: 1 });
      expect(keysOf((await send('GET', `${base}/compositeState?attributes=__proto__,toString`)).json)).toEqual([
        '__proto__',
        'toString',
      ]);
      const [event] = await live.waitFor(1);
      live.close();
      expect(keysOf((event?.json as { data: unknown } | undefined)?.data ?? {})).toEqual(sorted);

      // Last-value query, whole and filtered.
      const lastValues = (body: unknown) =>
        send('POST', `/applications/${fleet.applicationId}/data/last-value-query`, { body: JSON.stringify(body) }).then(
          (a) => (a.json as Record<string, unknown>)[device],
        );
      expect(keysOf(await lastValues({ deviceIds: [device] }))).toEqual(sorted);
      expect(keysOf(await lastValues({ deviceIds: [device], attributes: ['__proto__', 'constructor'] }))).toEqual([
        '__proto__',
        'constructor',
      ]);

      // Time series: minute rollups, raw aggregation, and raw states.
      const series = async (body: Record<string, unknown>) => {
        const answer = await send('POST', `/applications/${fleet.applicationId}/data/time-series-query`, {
          body: JSON.stringify({ deviceIds: [device], start: now - 60_000, end: now + 60_000, ...body }),
        });
        const points = (answer.json as { devices: Record<string, { points: Array<{ data: unknown }> }> }).devices[
          device
        ]?.points;
        return points?.map((p) => keysOf(p.data));
      };
      const minute = Math.floor(now / 60_000) * 60_000;
      expect(
        await series({ start: minute - 60_000, end: minute + 119_999, resolution: 60_000, aggregation: 'MAX' }),
      ).toEqual([sorted]);
      expect(await series({ resolution: 1000, aggregation: 'LAST' })).toEqual([sorted]);
      expect(await series({ aggregation: 'NONE' })).toEqual([sorted]);

      // The application log's state entry.
      const log = (await send('GET', `/applications/${fleet.applicationId}/logs?kinds=state&deviceId=${device}`))
        .json as { items: Array<{ data: unknown }> };
      expect(keysOf(log.items[0]?.data)).toEqual(sorted);
    });
  });

  describe('429', () => {
    it('carries Retry-After: whole seconds until the window frees', async () => {
      const limited = await createFleet(server, { application: { rateLimit: { messages: 2, windowSeconds: 30 } } });
      const token = await deviceToken(server, limited.gateway, limited);
      for (const target of [limited.gateway, limited.bound]) {
        const url = `/applications/${limited.applicationId}/devices/${target}/state`;
        const post = () => send('POST', url, { body: '{"data":{"temperature":1}}', token });
        expect((await post()).status).toBe(200);
        expect((await post()).status).toBe(200);
        const refused = await post();
        expectError(refused, 429, 'RateLimited');
        const retryAfter = refused.headers.get('retry-after');
        expect(retryAfter).toMatch(/^\d+$/);
        expect(Number(retryAfter)).toBeGreaterThanOrEqual(29);
        expect(Number(retryAfter)).toBeLessThanOrEqual(30);
      }
      // Other errors carry none.
      const forbidden = await send(
        'GET',
        `/applications/${limited.applicationId}/devices/${limited.standalone}/state`,
        {
          token,
        },
      );
      expect(forbidden.status).toBe(403);
      expect(forbidden.headers.get('retry-after')).toBeNull();
    });
  });

  describe('lists', () => {
    type Envelope = { items: Array<{ id: string }>; count: number; totalCount: number; page: number; perPage: number };

    it('answer {items, count, totalCount, page, perPage} for applications, keys and devices', async () => {
      ok(await server.http('POST', `/applications/${fleet.applicationId}/keys`, { description: 'second' }));
      for (const url of [
        '/applications',
        `/applications/${fleet.applicationId}/keys`,
        `/applications/${fleet.applicationId}/devices`,
      ]) {
        const all = ok(await server.http<Envelope>('GET', url), 200);
        expect(all).toEqual({
          items: expect.any(Array),
          count: all.items.length,
          totalCount: all.items.length,
          page: 0,
          perPage: 100,
        });
        expect(all.totalCount).toBeGreaterThanOrEqual(2);
        const second = ok(await server.http<Envelope>('GET', `${url}?page=1&perPage=1`), 200);
        expect(second).toEqual({ items: [all.items[1]], count: 1, totalCount: all.totalCount, page: 1, perPage: 1 });
        const beyond = ok(await server.http<Envelope>('GET', `${url}?page=${all.totalCount}&perPage=1`), 200);
        expect(beyond).toMatchObject({ items: [], count: 0, totalCount: all.totalCount });
        expectError(await send('GET', `${url}?perPage=1001`), 400, 'Validation');
      }
    });

    it('answer {items, count, nextBefore} for the cursor-paged application log', async () => {
      const page = ok(
        await server.http<{ items: unknown[]; count: number; nextBefore: string | null }>(
          'GET',
          `/applications/${fleet.applicationId}/logs?limit=1`,
        ),
        200,
      );
      expect(page).toEqual({ items: [expect.any(Object)], count: 1, nextBefore: expect.any(String) });
    });
  });
});
