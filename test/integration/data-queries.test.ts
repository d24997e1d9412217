/**
 * Time-series and last-value queries over real HTTP (docs/data-queries.md): states posted over
 * REST with explicit times, by the device itself (API token) and by a gateway for its
 * peripheral, then queried and compared with values computed by hand.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, deviceToken, ok, type SeedFleet, startTestServer, type TestServer } from '../helpers/server.js';

const S = 1000;
const RES = 120 * S;
const iso = (ms: number) => new Date(ms).toISOString();

interface SeriesAnswer {
  start: string;
  end: string;
  resolution: number;
  aggregation: string;
  devices: Record<string, { name: string; points: Array<{ time: string; data: Record<string, unknown> }> }>;
}

describe('data queries', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let gatewayToken: string;
  /** On a minute, three hours ago: every state is well inside the accepted time window. */
  const B = Math.floor((Date.now() - 3 * 3600 * S) / 60_000) * 60_000;
  const appUrl = () => `/applications/${fleet.applicationId}`;

  async function post(deviceId: string, states: Array<[number, Record<string, unknown>]>, token?: string) {
    const body = states.map(([ms, data]) => ({ time: B + ms, data }));
    ok(await server.http('POST', `${appUrl()}/devices/${deviceId}/state`, body, token), 200);
  }

  const series = async (body: Record<string, unknown>, status = 200) =>
    ok(await server.http<SeriesAnswer>('POST', `${appUrl()}/data/time-series-query`, body), status);
  const lastValues = async (body: Record<string, unknown>) =>
    ok(
      await server.http<Record<string, Record<string, unknown>>>('POST', `${appUrl()}/data/last-value-query`, body),
      200,
    );
  const points = (answer: SeriesAnswer, deviceId: string) => answer.devices[deviceId]?.points;

  beforeAll(async () => {
    server = await startTestServer();
    fleet = await createFleet(server);
    for (const id of [fleet.standalone, fleet.bound]) {
      ok(await server.http('PATCH', `${appUrl()}/devices/${id}`, { tags: [{ key: 'zone', value: 'north' }] }), 200);
    }
    gatewayToken = await deviceToken(server, fleet.gateway, fleet);
    // standalone, with the API token; buckets of 2 min from B, end B + 450 s:
    // 0: temperature 10, 20, 6; label a, b; on true. 1: temperature 4; on false. 2: empty.
    // 3: temperature 7, 2 (at the end). After the end: temperature 1000.
    await post(fleet.standalone, [
      [0, { temperature: 10, label: 'a', on: true }],
      [30 * S, { temperature: 20 }],
      [90 * S, { temperature: 6, label: 'b' }],
      [120 * S, { temperature: 4, on: false }],
      [360 * S, { temperature: 7 }],
      [450 * S, { temperature: 2 }],
      [451 * S, { temperature: 1000 }],
    ]);
    // The bound peripheral, reported by its gateway with the gateway's device token.
    await post(
      fleet.bound,
      [
        [10 * S, { temperature: 30 }],
        [130 * S, { temperature: 40 }],
        [140 * S, { temperature: 50, label: 'via gateway' }],
      ],
      gatewayToken,
    );
  });

  afterAll(async () => {
    await server?.stop();
  });

  describe('POST .../data/time-series-query', () => {
    const window = { start: B, end: B + 450 * S, resolution: RES };

    it('answers MEAN per device and bucket, with bucket edges and empty buckets left out', async () => {
      const answer = await series({ ...window, deviceIds: [fleet.standalone, fleet.bound], aggregation: 'MEAN' });
      expect(answer).toEqual({
        start: iso(B),
        end: iso(B + 450 * S),
        resolution: RES,
        aggregation: 'MEAN',
        devices: {
          [fleet.standalone]: {
            name: 'standalone',
            points: [
              { time: iso(B), data: { temperature: 12 } },
              { time: iso(B + RES), data: { temperature: 4 } },
              { time: iso(B + 3 * RES), data: { temperature: 4.5 } },
            ],
          },
          [fleet.bound]: {
            name: 'bound',
            points: [
              { time: iso(B), data: { temperature: 30 } },
              { time: iso(B + RES), data: { temperature: 45 } },
            ],
          },
        },
      });
    });

    it('answers every aggregation as computed by hand', async () => {
      const expected: Record<string, Array<[number, Record<string, unknown>]>> = {
        SUM: [
          [0, { temperature: 36 }],
          [1, { temperature: 4 }],
          [3, { temperature: 9 }],
        ],
        MIN: [
          [0, { temperature: 6 }],
          [1, { temperature: 4 }],
          [3, { temperature: 2 }],
        ],
        MAX: [
          [0, { temperature: 20 }],
          [1, { temperature: 4 }],
          [3, { temperature: 7 }],
        ],
        COUNT: [
          [0, { temperature: 3, label: 2, on: 1 }],
          [1, { temperature: 1, on: 1 }],
          [3, { temperature: 2 }],
        ],
        FIRST: [
          [0, { temperature: 10, label: 'a', on: true }],
          [1, { temperature: 4, on: false }],
          [3, { temperature: 7 }],
        ],
        LAST: [
          [0, { temperature: 6, label: 'b', on: true }],
          [1, { temperature: 4, on: false }],
          [3, { temperature: 2 }],
        ],
      };
      for (const [aggregation, buckets] of Object.entries(expected)) {
        const answer = await series({ ...window, deviceIds: [fleet.standalone], aggregation });
        expect(points(answer, fleet.standalone), aggregation).toEqual(
          buckets.map(([b, data]) => ({ time: iso(B + b * RES), data })),
        );
      }
      // 1 ms off the minute (answered from the raw states): the state at B falls before the
      // start, the one at B + 120 s at the end of bucket 0, the one at 360 s at the end of bucket
      // 2, and the one at 450 s after the end.
      const shifted = await series({ ...window, start: B + 1, end: B + 450 * S - 1, deviceIds: [fleet.standalone] });
      expect(points(shifted, fleet.standalone)).toEqual([
        { time: iso(B + 1), data: { temperature: 10 } },
        { time: iso(B + 1 + 2 * RES), data: { temperature: 7 } },
      ]);
    });

    it('selects devices by class and tag, attributes, and returns the raw states for NONE', async () => {
      const byClass = await series({ ...window, deviceClass: 'peripheral', aggregation: 'MAX' });
      expect(Object.keys(byClass.devices).sort()).toEqual([fleet.bound, fleet.floating].sort());
      expect(points(byClass, fleet.floating)).toEqual([]);
      expect(points(byClass, fleet.bound)).toEqual([
        { time: iso(B), data: { temperature: 30 } },
        { time: iso(B + RES), data: { temperature: 50 } },
      ]);

      const byTag = await series({
        ...window,
        deviceTags: [{ key: 'zone' }],
        deviceClass: ['standalone', 'gateway'],
        attributes: ['label'],
        aggregation: 'LAST',
      });
      expect(byTag.devices).toEqual({
        [fleet.standalone]: { name: 'standalone', points: [{ time: iso(B), data: { label: 'b' } }] },
      });

      const raw = await series({
        start: B + 100 * S,
        end: B + 130 * S,
        deviceIds: [fleet.standalone, fleet.bound],
        deviceTags: [{ key: 'zone', value: 'north' }],
        aggregation: 'NONE',
      });
      expect(points(raw, fleet.standalone)).toEqual([{ time: iso(B + 120 * S), data: { temperature: 4, on: false } }]);
      expect(points(raw, fleet.bound)).toEqual([{ time: iso(B + 130 * S), data: { temperature: 40 } }]);
    });

    it('defaults to the last day in hourly MEAN buckets', async () => {
      const before = Date.now();
      const answer = await series({ deviceIds: [fleet.standalone] });
      const start = Date.parse(answer.start);
      const end = Date.parse(answer.end);
      expect(end).toBeGreaterThanOrEqual(before);
      expect(end - start).toBe(86_400_000);
      expect(answer).toMatchObject({ resolution: 3_600_000, aggregation: 'MEAN' });
      const buckets = points(answer, fleet.standalone) ?? [];
      expect(buckets.length).toBeGreaterThanOrEqual(1);
      const sums = await series({ start, end, deviceIds: [fleet.standalone], aggregation: 'SUM' });
      const total = (points(sums, fleet.standalone) ?? []).reduce((t, p) => t + (p.data.temperature as number), 0);
      expect(total).toBe(10 + 20 + 6 + 4 + 7 + 2 + 1000);
    });

    it('refuses bad ranges, resolutions, bodies and callers', async () => {
      const refused = async (body: Record<string, unknown>, status = 400, token?: string | null) => {
        const res = await server.http<{ type: string }>('POST', `${appUrl()}/data/time-series-query`, body, token);
        expect(res.status, JSON.stringify(body)).toBe(status);
        return res.body.type;
      };
      expect(await refused({ resolution: 999 })).toBe('Validation');
      expect(await refused({ duration: 86_400_000, resolution: 1000 })).toBe('Validation');
      expect(await refused({ start: B + 1, end: B })).toBe('Validation');
      expect(await refused({ end: -8.64e15, duration: 1 })).toBe('Validation');
      expect(await refused({ aggregation: 'MEDIAN' })).toBe('Validation');
      expect(await refused({ deviceClass: 'toaster' })).toBe('Validation');
      expect(await refused({ attributes: [] })).toBe('Validation');
      expect(await refused({ unknown: 1 })).toBe('Validation');
      // 10,000 buckets is the limit; NONE has no buckets.
      await series({ start: B, end: B + 10_000 * 1000, resolution: 1000 });
      await series({ start: B, end: B + 10_000 * 1000 + 1, resolution: 1000, aggregation: 'NONE' });
      expect(await refused({ start: B, end: B + 10_000 * 1000 + 1, resolution: 1000 })).toBe('Validation');

      expect(await refused({}, 403, gatewayToken)).toBe('Forbidden');
      expect(await refused({}, 401, null)).toBe('Unauthorized');
      const missing = await server.http('POST', '/applications/0123456789abcdef01234567/data/time-series-query', {});
      expect(missing.status).toBe(404);
    });
  });

  describe('POST .../data/last-value-query', () => {
    it('answers the newest value of each attribute for every selected device', async () => {
      const all = await lastValues({});
      expect(all).toEqual({
        [fleet.gateway]: {},
        [fleet.otherGateway]: {},
        [fleet.standalone]: {
          temperature: { value: 1000, time: iso(B + 451 * S) },
          label: { value: 'b', time: iso(B + 90 * S) },
          on: { value: false, time: iso(B + 120 * S) },
        },
        [fleet.bound]: {
          temperature: { value: 50, time: iso(B + 140 * S) },
          label: { value: 'via gateway', time: iso(B + 140 * S) },
        },
        [fleet.floating]: {},
      });
      expect(
        await lastValues({ deviceIds: [fleet.standalone, fleet.bound, fleet.floating], attributes: ['label'] }),
      ).toEqual({
        [fleet.standalone]: { label: { value: 'b', time: iso(B + 90 * S) } },
        [fleet.bound]: { label: { value: 'via gateway', time: iso(B + 140 * S) } },
        [fleet.floating]: {},
      });
      expect(await lastValues({ deviceClass: 'peripheral', deviceTags: [{ key: 'zone', value: 'north' }] })).toEqual({
        [fleet.bound]: {
          temperature: { value: 50, time: iso(B + 140 * S) },
          label: { value: 'via gateway', time: iso(B + 140 * S) },
        },
      });
    });

    it('ignores ids of other applications and refuses device tokens', async () => {
      const other = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Other' }));
      const stranger = ok(
        await server.http<{ id: string }>('POST', `/applications/${other.id}/devices`, { name: 'stranger' }),
      );
      expect(await lastValues({ deviceIds: [stranger.id, fleet.bound], attributes: ['temperature'] })).toEqual({
        [fleet.bound]: { temperature: { value: 50, time: iso(B + 140 * S) } },
      });
      const res = await server.http('POST', `${appUrl()}/data/last-value-query`, {}, gatewayToken);
      expect(res.status).toBe(403);
    });

    it('refuses a query over more than 1,000 devices', async () => {
      const big = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Big' }));
      const url = `/applications/${big.id}/devices`;
      for (let i = 0; i < 1001; i += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, 1001 - i) }, (_, j) =>
            server.http('POST', url, { name: `d${i + j}`, deviceClass: 'peripheral' }),
          ),
        );
      }
      const query = (path: string, body: Record<string, unknown>) =>
        server.http<{ type: string; message: string }>('POST', `/applications/${big.id}/data/${path}`, body);
      for (const path of ['last-value-query', 'time-series-query']) {
        const res = await query(path, {});
        expect(res.status).toBe(400);
        expect(res.body.message).toContain('1001 devices');
        expect((await query(path, { deviceClass: 'gateway' })).status).toBe(200);
      }
    });
  });
});
