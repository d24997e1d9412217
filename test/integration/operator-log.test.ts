/**
 * The operator log (docs/operations.md, "Logs"): JSON lines from a real server, captured while
 * real clients connect, disconnect and are refused. Each event is exactly one line with its
 * `component` and `event` fields; no line ever holds a secret the clients or the API used.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_MAX_OUTBOUND_BYTES } from '../../src/broker/mqtt-broker.js';
import { createLogger } from '../../src/logger.js';
import { rawDevice } from '../helpers/raw-mqtt.js';
import {
  ADMIN_TOKEN,
  closed,
  eventually,
  ok,
  refusedConnect,
  startTestServer,
  type TestServer,
} from '../helpers/server.js';

type Line = Record<string, unknown>;

describe('the operator log', () => {
  let server: TestServer;
  const lines: Line[] = [];
  let applicationId: string;
  const devices: Record<string, string> = {};
  /** Keys by use: one for connecting, one whose secret is guessed over MQTT, one over REST. */
  const keys: Record<'main' | 'mqttVictim' | 'restVictim', { id: string; key: string; secret: string }> = {} as never;
  /** Every secret sent in this file, right or wrong: none may reach the log. */
  const secretsUsed = new Set<string>([ADMIN_TOKEN]);

  const linesOf = (event: string, clientId?: string): Line[] =>
    lines.filter((l) => l.event === event && (clientId === undefined || l.clientId === clientId));

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
        done();
      },
    });
    server = await startTestServer({
      logger: createLogger('info', sink),
      // Two failed checks of one key within a minute, then checks are throttled.
      secretCheckLimits: { failuresPerCredential: 2 },
    });
    applicationId = ok(
      await server.http<{ id: string }>('POST', '/applications', {
        name: 'logged',
        rateLimit: { messages: 3, windowSeconds: 3600 },
      }),
    ).id;
    for (const [name, deviceClass] of [
      ['sensor', 'standalone'],
      ['chatty', 'standalone'],
      ['gateway', 'gateway'],
      ['guessed', 'standalone'],
    ] as const) {
      devices[name] = ok(
        await server.http<{ id: string }>('POST', `/applications/${applicationId}/devices`, {
          name,
          deviceClass,
          attributes: [{ name: 'temperature', dataType: 'number' }],
        }),
      ).id;
    }
    for (const name of ['main', 'mqttVictim', 'restVictim'] as const) {
      keys[name] = ok(
        await server.http<{ id: string; key: string; secret: string }>('POST', `/applications/${applicationId}/keys`, {
          description: name,
        }),
      );
      secretsUsed.add(keys[name].secret);
    }
  });
  afterAll(() => server?.stop());

  it('writes one line for a connection and one for its end, with the reason, duration and message counts', async () => {
    const sensor = devices.sensor as string;
    const client = await server.connect(sensor, keys.main.key, keys.main.secret);
    for (const temperature of [20, 21]) {
      await client.publishAsync(`losant/${sensor}/state`, JSON.stringify({ data: { temperature } }), { qos: 1 });
    }
    await client.endAsync();
    await eventually(() => linesOf('disconnect', sensor).length > 0);

    expect(linesOf('connect', sensor)).toEqual([
      expect.objectContaining({
        level: 30,
        component: 'mqtt',
        event: 'connect',
        msg: 'mqtt connect',
        clientId: sensor,
        applicationId,
        deviceClass: 'standalone',
        keyId: keys.main.id,
        accessKey: keys.main.key,
        ipAddress: expect.stringContaining('127.0.0.1'),
        cleanSession: true,
      }),
    ]);
    const [end] = linesOf('disconnect', sensor);
    expect(linesOf('disconnect', sensor)).toHaveLength(1);
    expect(end).toEqual(
      expect.objectContaining({
        level: 30,
        component: 'mqtt',
        msg: 'mqtt disconnect',
        clientId: sensor,
        applicationId,
        reason: 'Client disconnected',
        category: 'clientDisconnected',
        messagesFromClient: 2,
        messagesToClient: 0,
        ipAddress: expect.stringContaining('127.0.0.1'),
      }),
    );
    expect(end?.durationMs).toEqual(expect.any(Number));
    expect(end?.durationMs as number).toBeGreaterThanOrEqual(0);
  });

  it('writes one warning per refused CONNECT with its CONNACK code, reason, key, client id and address', async () => {
    const guessed = devices.guessed as string;
    const before = lines.length;
    const attempts: number[] = [];
    // Wrong secrets, each a new one (a repeated one is refused from memory), until throttled.
    for (let i = 0; i < 10 && attempts.at(-1) !== 3; i++) {
      const wrong = `wrong-secret-${i}-${Math.random().toString(36).slice(2)}`;
      secretsUsed.add(wrong);
      const err = await refusedConnect(server, guessed, keys.mqttVictim.key, wrong);
      attempts.push(err.code as number);
    }
    expect(attempts.at(-1)).toBe(3);
    expect(attempts.slice(0, -1).every((code) => code === 4)).toBe(true);
    // An unknown key, and a device the key's application does not hold.
    expect((await refusedConnect(server, guessed, 'no-such-key', 'whatever-secret')).code).toBe(4);
    secretsUsed.add('whatever-secret');
    expect((await refusedConnect(server, 'a'.repeat(24), keys.main.key, keys.main.secret)).code).toBe(5);

    const refused = lines.slice(before).filter((l) => l.event === 'connectRefused');
    expect(refused).toHaveLength(attempts.length + 2);
    for (const line of refused) {
      expect(line).toMatchObject({ level: 40, component: 'mqtt', msg: 'mqtt connect refused' });
      expect(line.ipAddress).toEqual(expect.stringContaining('127.0.0.1'));
    }
    expect(refused.map((l) => [l.clientId, l.accessKey, l.returnCode, l.category])).toEqual([
      ...attempts.slice(0, -1).map(() => [guessed, keys.mqttVictim.key, 4, 'BadCredentials']),
      [guessed, keys.mqttVictim.key, 3, 'Throttled'],
      [guessed, 'no-such-key', 4, 'BadCredentials'],
      ['a'.repeat(24), keys.main.key, 5, 'NotAuthorized'],
    ]);
    expect(refused.map((l) => l.reason)).toEqual([
      ...attempts.slice(0, -1).map(() => 'wrong access secret'),
      expect.stringMatching(/^too many failed checks for this access key; try again in \d+ s$/),
      'unknown access key',
      `device ${'a'.repeat(24)} not found in the key's application`,
    ]);
    // Nothing else is written about these connections: no second line from the protocol layer.
    expect(lines.slice(before).filter((l) => l.component === 'mqtt' && l.event !== 'connectRefused')).toEqual([]);
  });

  it('writes one warning when a device is disconnected for its rate limit', async () => {
    const chatty = devices.chatty as string;
    const client = await server.connect(chatty, keys.main.key, keys.main.secret);
    for (const temperature of [1, 2, 3]) {
      await client.publishAsync(`losant/${chatty}/state`, JSON.stringify({ data: { temperature } }), { qos: 1 });
    }
    const gone = closed(client);
    client.publish(`losant/${chatty}/state`, JSON.stringify({ data: { temperature: 4 } }), { qos: 0 });
    await gone;
    await eventually(() => linesOf('disconnect', chatty).length > 0);
    expect(linesOf('connect', chatty)).toHaveLength(1);
    expect(linesOf('disconnect', chatty)).toEqual([
      expect.objectContaining({
        level: 40,
        component: 'mqtt',
        reason: 'Rate limit exceeded',
        category: 'rateLimited',
        messagesFromClient: 4,
      }),
    ]);
  });

  it('writes one warning when a client that stops reading is disconnected as a slow consumer', async () => {
    const gateway = devices.gateway as string;
    const client = await rawDevice(server.running.urls.mqtt, {
      clientId: gateway,
      username: keys.main.key,
      password: keys.main.secret,
    });
    client.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: `losant/${gateway}/command`, qos: 0 }] });
    await client.next('suback');
    client.stopReading();
    const payload = { blob: 'x'.repeat(128 * 1024) };
    // Commands pile up unread until the outbound bound is passed; the next ones find no route.
    await eventually(async () => {
      const answer = ok(
        await server.http<{ routedTo: string[] }>('POST', `/applications/${applicationId}/devices/${gateway}/command`, {
          name: 'update',
          payload,
        }),
        200,
      );
      return answer.routedTo.length === 0;
    }, 30_000);
    await eventually(() => linesOf('disconnect', gateway).length > 0);
    client.end();
    expect(linesOf('connect', gateway)).toHaveLength(1);
    const [end] = linesOf('disconnect', gateway);
    expect(linesOf('disconnect', gateway)).toHaveLength(1);
    expect(end).toMatchObject({ level: 40, component: 'mqtt', category: 'slowConsumer' });
    expect(end?.reason).toMatch(
      new RegExp(`^Slow consumer: \\d+ bytes waiting to be sent, at most ${DEFAULT_MAX_OUTBOUND_BYTES}$`),
    );
  }, 60_000);

  it('writes one warning per credential check over REST refused because checks are throttled', async () => {
    const before = lines.length;
    const statuses: number[] = [];
    for (let i = 0; i < 10 && statuses.at(-1) !== 429; i++) {
      const wrong = `rest-wrong-${i}-${Math.random().toString(36).slice(2)}`;
      secretsUsed.add(wrong);
      const answer = await server.http(
        'POST',
        '/auth/device',
        { deviceId: devices.guessed, key: keys.restVictim.key, secret: wrong },
        null,
      );
      statuses.push(answer.status);
    }
    expect(statuses.at(-1)).toBe(429);
    // Bearer tokens nobody issued, until their checks are throttled too.
    const bearers: number[] = [];
    for (let i = 0; i < 10 && bearers.at(-1) !== 429; i++) {
      const guess = `gha_guess${i}${Math.random().toString(36).slice(2)}`;
      secretsUsed.add(guess);
      bearers.push((await server.http('GET', '/applications', undefined, guess)).status);
    }
    expect(bearers.at(-1)).toBe(429);
    const throttled = lines.slice(before).filter((l) => l.event === 'credentialsThrottled');
    expect(throttled).toEqual([
      expect.objectContaining({
        level: 40,
        component: 'http',
        msg: 'credential check throttled',
        route: '/auth/device',
        accessKey: keys.restVictim.key,
        ipAddress: expect.stringContaining('127.0.0.1'),
        reason: expect.stringMatching(/^too many failed checks for this access key; try again in \d+ s$/),
      }),
      expect.objectContaining({
        level: 40,
        component: 'http',
        route: '/applications',
        ipAddress: expect.stringContaining('127.0.0.1'),
        reason: expect.stringMatching(/^too many failed checks for this API token; try again in \d+ s$/),
      }),
    ]);
    expect(throttled[1]).not.toHaveProperty('accessKey');
    // The other refusals (401) are answers, not operator events.
    expect(lines.slice(before).filter((l) => l.component === 'http')).toHaveLength(2);
  });

  it('never writes a secret, a password or a token', () => {
    expect(lines.length).toBeGreaterThan(0);
    const text = lines.map((l) => JSON.stringify(l)).join('\n');
    for (const secret of secretsUsed) expect(text).not.toContain(secret);
    for (const line of lines) {
      for (const field of ['password', 'secret', 'token', 'authorization']) expect(line).not.toHaveProperty(field);
    }
  });
});
