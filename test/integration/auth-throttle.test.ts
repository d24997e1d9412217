/**
 * Failed secret checks are limited (docs/decisions.md, "Credentials and secrets"): storms of
 * distinct wrong secrets over real MQTT and real HTTP. Every loopback address (127.x.y.z) reaches
 * the server, so a client bound to another one stands for another remote address.
 */
import http from 'node:http';
import type { MqttClient } from 'mqtt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_LOG_BUDGET } from '../../src/core/log-budget.js';
import { DEFAULT_SECRET_CHECK_LIMITS, type SecretCheckLimits } from '../../src/core/secrets.js';
import { connackFrom } from '../helpers/raw-mqtt.js';
import { ADMIN_TOKEN, deviceLogs, eventually, ok, startTestServer, type TestServer } from '../helpers/server.js';

const LIMITS = DEFAULT_SECRET_CHECK_LIMITS;
/** The most wrong secrets of one credential that can be hashed in a window: the limit, plus those in progress when it was reached. */
const MOST_HASHED = LIMITS.failuresPerCredential + LIMITS.pendingPerCredential;
const THROTTLED_KEY = /^too many failed checks for this access key; try again in \d+ s$/;

let server: TestServer;
const open: MqttClient[] = [];

async function start(secretCheckLimits?: Partial<SecretCheckLimits>): Promise<void> {
  server = await startTestServer(secretCheckLimits ? { secretCheckLimits } : {});
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.endAsync(true).catch(() => {})));
  await server.stop();
});

interface Credentials {
  clientId: string;
  username: string;
  password: string;
}

/** One MQTT CONNECT from `localAddress`; resolves with the CONNACK code (an accepted client stays connected until the test ends). */
function connack(credentials: Credentials, localAddress = '127.0.0.1'): Promise<number> {
  return connackFrom(server.running.urls.mqtt, credentials, { localAddress, keep: (c) => open.push(c) });
}

/** A different loopback address for each attempt, so no per-address limit is reached. */
function stormAddress(i: number): string {
  return `127.1.${Math.floor(i / 250)}.${1 + (i % 250)}`;
}

/** Application, devices and keys: one key per device name. */
async function setup(deviceNames: string[]) {
  const app = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'storm' }));
  const devices: Record<string, { id: string; key: string; secret: string }> = {};
  for (const name of deviceNames) {
    const device = ok(await server.http<{ id: string }>('POST', `/applications/${app.id}/devices`, { name }));
    const key = ok(await server.http<{ key: string; secret: string }>('POST', `/applications/${app.id}/keys`, {}));
    devices[name] = { id: device.id, key: key.key, secret: key.secret };
  }
  return { applicationId: app.id, devices };
}

/** Runs `count` attempts, `concurrency` at a time; tallies the answers by CONNACK code. */
async function burst(count: number, concurrency: number, attempt: (i: number) => Promise<number>) {
  const codes = new Map<number, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const code = await attempt(next++);
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }),
  );
  return codes;
}

describe('a storm of distinct wrong secrets over MQTT', () => {
  beforeEach(() => start());

  it('hashes only the first few for the key and refuses the rest with CONNACK 3, logged on the device', async () => {
    const { applicationId, devices } = await setup(['target']);
    const target = devices.target!;
    const codes = await burst(400, 50, (i) =>
      connack({ clientId: target.id, username: target.key, password: `wrong-${i}` }, stormAddress(i)),
    );
    // CONNACK 4 means the secret was hashed and was wrong; 3 means it was not checked.
    expect([...codes.keys()].sort()).toEqual([3, 4]);
    expect(codes.get(4)).toBeLessThanOrEqual(MOST_HASHED);
    expect((codes.get(3) ?? 0) + (codes.get(4) ?? 0)).toBe(400);
    // Every refusal is logged, within the device's log budget (docs/streams-and-logs.md).
    const logged = Math.min(400, DEFAULT_LOG_BUDGET.entries);
    const logs = await eventually(async () => {
      const entries = (await deviceLogs(server, applicationId, target.id)).filter((e) => e.kind === 'authFailed');
      return entries.length === logged ? entries : undefined;
    }, 10_000);
    expect(logs.filter((e) => e.reason === 'wrong access secret').length).toBeLessThanOrEqual(codes.get(4) ?? 0);
    const throttled = logs.filter((e) => e.reason !== 'wrong access secret');
    expect(throttled.length).toBeLessThanOrEqual(codes.get(3) ?? 0);
    // Refused while checks were in progress, or after too many failures in the window.
    for (const e of throttled) {
      expect(e.reason).toMatch(/^too many (failed checks|checks in progress) for this access key; try again in \d+ s$/);
    }
    // Once the storm has settled nothing is in progress: a further attempt is refused because
    // the key has had too many failures (its log entry may be past the device's log budget).
    expect(
      await connack({ clientId: target.id, username: target.key, password: 'after-the-storm' }, stormAddress(400)),
    ).toBe(3);
  });

  it('keeps accepting the right secret of a device that connected before, while the key is throttled', async () => {
    const { devices } = await setup(['fleet']);
    const fleet = devices.fleet!;
    const right = { clientId: fleet.id, username: fleet.key, password: fleet.secret };
    expect(await connack(right)).toBe(0);
    await Promise.all(open.splice(0).map((c) => c.endAsync()));
    let i = 0;
    let code = 4;
    while (code !== 3 && i < 100) {
      code = await connack({ ...right, password: `wrong-${i}` }, stormAddress(i));
      i++;
    }
    expect(code).toBe(3);
    // Throttled for the key: a new wrong secret is not even checked...
    expect(await connack({ ...right, password: 'one-more-wrong' }, stormAddress(i))).toBe(3);
    // ...but the secret verified before needs no check, from any address.
    expect(await connack(right)).toBe(0);
    expect(await connack(right, '127.0.0.9')).toBe(0);
  });

  it('refuses checks from an address that failed too often, whatever the key, and not from others', async () => {
    const names = ['a', 'b', 'c', 'fresh'];
    const { applicationId, devices } = await setup(names);
    // Under the per-key limit for each key, over the per-address limit in all.
    const perKey = LIMITS.failuresPerCredential - 1;
    for (const name of ['a', 'b', 'c']) {
      const d = devices[name]!;
      for (let i = 0; i < perKey; i++) {
        const code = await connack({ clientId: d.id, username: d.key, password: `wrong-${i}` }, '127.0.0.3');
        if (code !== 4) break;
      }
    }
    expect(3 * perKey).toBeGreaterThanOrEqual(LIMITS.failuresPerAddress);
    const fresh = devices.fresh!;
    const credentials = { clientId: fresh.id, username: fresh.key, password: fresh.secret };
    expect(await connack(credentials, '127.0.0.3')).toBe(3);
    const entry = await eventually(async () =>
      (await deviceLogs(server, applicationId, fresh.id)).find((e) => e.kind === 'authFailed'),
    );
    expect(entry.reason).toMatch(/^too many failed secret checks from this address; try again in \d+ s$/);
    expect(entry.ipAddress).toBe('127.0.0.3');
    expect(await connack(credentials, '127.0.0.4')).toBe(0);
  });
});

describe('fairness between keys', () => {
  // Every limit but the number of checks at once lifted: the storm's checks all queue, so what
  // is left to keep them from queuing ahead of another key is the turns the keys take.
  beforeEach(() =>
    start({
      failuresPerCredential: 1_000_000,
      failuresPerAddress: 1_000_000,
      pendingPerCredential: 1_000_000,
      pendingPerAddress: 1_000_000,
      pendingTotal: 1_000_000,
    }),
  );

  it('checks the secret of a device of another key ahead of a storm queued before it', async () => {
    const { devices } = await setup(['target', 'bystander']);
    const target = devices.target!;
    const bystander = devices.bystander!;
    const STORM = 120;
    let answered = 0;
    const storm = Array.from({ length: STORM }, (_, i) =>
      connack({ clientId: target.id, username: target.key, password: `wrong-${i}` }, stormAddress(i)).then((code) => {
        answered++;
        return code;
      }),
    );
    // Once the first storm check is done, the server has read every storm CONNECT and queued its check.
    await eventually(() => answered > 0, 30_000);
    const code = await connack({ clientId: bystander.id, username: bystander.key, password: bystander.secret });
    const answeredBefore = answered;
    expect(code).toBe(0);
    // In arrival order it would have come after all of them.
    expect(answeredBefore).toBeLessThan(STORM / 2);
    expect(await Promise.all(storm)).toEqual(Array(STORM).fill(4));
  });
});

/** A request from `localAddress`, with the Retry-After header. */
function request(
  method: string,
  url: string,
  options: { token?: string; body?: unknown; localAddress?: string } = {},
): Promise<{ status: number; body: { type?: string; message?: string }; retryAfter: string | undefined }> {
  const target = new URL(url, server.running.urls.http);
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      target,
      {
        method,
        localAddress: options.localAddress ?? '127.0.0.1',
        headers: {
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
          ...(payload ? { 'content-type': 'application/json' } : {}),
        },
        agent: false,
      },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => {
          text += d.toString();
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: text ? JSON.parse(text) : {},
            retryAfter: res.headers['retry-after'],
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

describe('a storm of distinct bogus bearer tokens over REST', () => {
  beforeEach(() => start());

  it('checks only a few and answers the rest 429 RateLimited with Retry-After; the known admin token still works', async () => {
    expect((await request('GET', '/applications', { token: ADMIN_TOKEN })).status).toBe(200);
    const answers = await Promise.all(
      Array.from({ length: 300 }, (_, i) => request('GET', '/applications', { token: `bogus-${i}` })),
    );
    const unauthorized = answers.filter((a) => a.status === 401);
    const limited = answers.filter((a) => a.status === 429);
    expect(unauthorized.length + limited.length).toBe(300);
    expect(unauthorized.length).toBeLessThanOrEqual(MOST_HASHED);
    for (const a of unauthorized) expect(a.body).toEqual({ type: 'Unauthorized', message: 'invalid API token' });
    for (const a of limited) {
      expect(a.body.type).toBe('RateLimited');
      expect(a.body.message).toMatch(
        /^too many (failed checks|checks in progress) for this API token; try again in \d+ s$/,
      );
      expect(Number(a.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    // Keep failing until the limit is reached; then even a new bogus token is not checked.
    let last = 401;
    for (let i = 0; i < 2 * MOST_HASHED && last !== 429; i++) {
      last = (await request('GET', '/applications', { token: `sequential-${i}` })).status;
    }
    const after = await request('GET', '/applications', { token: 'yet-another' });
    expect(after.status).toBe(429);
    expect(after.body.message).toMatch(/^too many failed checks for this API token; try again in \d+ s$/);
    expect(Number(after.retryAfter)).toBeGreaterThan(1);
    // The admin token was verified before: it is never throttled, from any address.
    expect((await request('GET', '/applications', { token: ADMIN_TOKEN })).status).toBe(200);
    expect((await request('GET', '/applications', { token: ADMIN_TOKEN, localAddress: '127.0.0.5' })).status).toBe(200);
  });

  it('answers POST /auth/device 429 once the key has failed too often', async () => {
    const { devices } = await setup(['target']);
    const target = devices.target!;
    const auth = (secret: string) =>
      request('POST', '/auth/device', { body: { deviceId: target.id, key: target.key, secret } });
    const statuses: number[] = [];
    for (let i = 0; i < 2 * MOST_HASHED && statuses.at(-1) !== 429; i++) statuses.push((await auth(`w-${i}`)).status);
    expect(statuses.at(-1)).toBe(429);
    expect(statuses.filter((s) => s === 401).length).toBe(LIMITS.failuresPerCredential);
    const refused = await auth(target.secret);
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({ type: 'RateLimited', message: expect.stringMatching(THROTTLED_KEY) });
    expect(Number(refused.retryAfter)).toBeGreaterThan(1);
  });
});
