/**
 * The `gatehouse` command as an operator runs it: the built CLI in a child process.
 * (`npm test` builds first.)
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { httpsJson } from './helpers/https.js';
import { createTestDatabase } from './helpers/postgres.js';
import { makeTestCertificate } from './helpers/tls.js';

const CLI = path.resolve('dist/src/cli.js');
const ADMIN = 'cli-test-admin-token';
const dirs: string[] = [];
const children: ChildProcessWithoutNullStreams[] = [];

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-cli-'));
  dirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function serve(args: string[], env: Record<string, string> = {}) {
  return gatehouse(['serve', ...args], env);
}

function gatehouse(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, GATEHOUSE_ADMIN_TOKEN: ADMIN, ...env },
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const listening = async (): Promise<{ mqtt: string; http: string }> => {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const m = /mqtt listening on (\S+)/.exec(stdout);
      const h = /http listening on (\S+)/.exec(stdout);
      if (m?.[1] && h?.[1]) return { mqtt: m[1], http: h[1] };
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`server did not start: ${stdout}${stderr}`);
  };
  return { child, exited, listening, out: () => stdout, err: () => stderr };
}

/** Waits for the command to end with exit code 1 and exactly one line on stderr; returns that line. */
async function oneLineFailure(run: ReturnType<typeof gatehouse>): Promise<string> {
  expect(await run.exited).toBe(1);
  const lines = run.err().trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  return lines[0] ?? '';
}

/** JSON over HTTP with the admin token of these tests. */
function adminApi(base: string, token = ADMIN) {
  return async <T>(method: string, url: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    if (res.status >= 300) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };
}

/** An application, one device and a key made over REST, and a real MQTT client connected as the device. */
async function connectedDevice(
  urls: { http: string; mqtt: string },
  application: Record<string, unknown>,
  deviceBody: Record<string, unknown>,
) {
  const api = adminApi(urls.http);
  const app = await api<{ id: string }>('POST', '/applications', application);
  const device = await api<{ id: string }>('POST', `/applications/${app.id}/devices`, deviceBody);
  const key = await api<{ key: string; secret: string }>('POST', `/applications/${app.id}/keys`, {});
  const client = await mqtt.connectAsync(urls.mqtt, {
    clientId: device.id,
    username: key.key,
    password: key.secret,
    reconnectPeriod: 0,
  });
  return { api, app, device, client };
}

/** Polls `check` until it is truthy. */
async function eventually(check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function busyPort(): Promise<{ port: number; close: () => void }> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

describe('gatehouse serve', () => {
  it('prints one listening line per listener and a random admin token once when none is configured', async () => {
    const dataDir = tempDir();
    const first = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0'], { GATEHOUSE_ADMIN_TOKEN: '' });
    const urls = await first.listening();
    expect(urls.mqtt).toMatch(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    expect(urls.http).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(first.out()).toMatch(/^ws listening on ws:\/\/127\.0\.0\.1:\d+\/mqtt$/m);
    const token = /admin API token \(shown once, store it now\): (\S+)/.exec(first.out())?.[1];
    expect(token).toBeTruthy();
    const res = await fetch(`${urls.http}/applications`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    // Second start on the same data directory: the token exists, nothing is printed.
    const second = serve(['--data-dir', dataDir], {
      GATEHOUSE_MQTT_PORT: '0',
      GATEHOUSE_HTTP_PORT: '0',
      GATEHOUSE_ADMIN_TOKEN: '',
    });
    await second.listening();
    expect(second.out()).not.toMatch(/admin API token/);
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  });

  it('with a certificate, also prints the https and wss URLs, on the HTTP port, which answers both', async () => {
    const tmp = tempDir();
    const tls = makeTestCertificate(tmp);
    const run = serve([
      '--data-dir',
      path.join(tmp, 'data'),
      '--mqtt-port',
      '0',
      '--http-port',
      '0',
      '--mqtts-port',
      '0',
      '--tls-cert',
      tls.cert,
      '--tls-key',
      tls.key,
    ]);
    const urls = await run.listening();
    const port = new URL(urls.http).port;
    await eventually(() => /^wss listening on /m.test(run.out()));
    const lines = run.out().trimEnd().split('\n');
    expect(lines.slice(-6)).toEqual([
      expect.stringMatching(/^mqtt listening on mqtt:\/\/127\.0\.0\.1:\d+$/),
      expect.stringMatching(/^mqtts listening on mqtts:\/\/127\.0\.0\.1:\d+$/),
      `http listening on http://127.0.0.1:${port}`,
      `ws listening on ws://127.0.0.1:${port}/mqtt`,
      `https listening on https://127.0.0.1:${port}`,
      `wss listening on wss://127.0.0.1:${port}/mqtt`,
    ]);
    const secure = await httpsJson(`https://127.0.0.1:${port}`, readFileSync(tls.cert), 'GET', '/applications', {
      token: ADMIN,
    });
    expect(secure).toMatchObject({ status: 200, encrypted: true });
    const plain = await fetch(`${urls.http}/applications`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(plain.status).toBe(200);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  it('ends with a one-line error naming the option when the MQTT port is taken', async () => {
    const busy = await busyPort();
    try {
      const run = serve(['--data-dir', tempDir(), '--mqtt-port', String(busy.port), '--http-port', '0']);
      expect(await run.exited).toBe(1);
      expect(run.err().trim()).toBe(
        `gatehouse: port ${busy.port} on 127.0.0.1 is already in use (set --mqtt-port or GATEHOUSE_MQTT_PORT)`,
      );
    } finally {
      busy.close();
    }
  });

  it('ends with a one-line error naming the option when the HTTP port is taken', async () => {
    const busy = await busyPort();
    try {
      const run = serve(['--data-dir', tempDir(), '--mqtt-port', '0', '--http-port', String(busy.port)]);
      expect(await run.exited).toBe(1);
      expect(run.err().trim()).toBe(
        `gatehouse: port ${busy.port} on 127.0.0.1 is already in use (set --http-port or GATEHOUSE_HTTP_PORT)`,
      );
    } finally {
      busy.close();
    }
  });

  it('refuses an invalid port with a one-line error', async () => {
    const run = serve(['--data-dir', tempDir(), '--mqtt-port', 'abc']);
    expect(await run.exited).toBe(1);
    expect(run.err().trim()).toBe(
      'gatehouse: invalid port "abc": expected an integer from 0 to 65535 (set --mqtt-port or GATEHOUSE_MQTT_PORT)',
    );
  });

  /** Each makes a data directory that cannot be used; the answer names the option and the cause. */
  const UNUSABLE_DATA_DIRS: Array<[string, (tmp: string) => string, RegExp]> = [
    [
      'a path under a regular file',
      (tmp) => {
        const file = path.join(tmp, 'not-a-dir');
        writeFileSync(file, 'x');
        chmodSync(file, 0o400);
        return path.join(file, 'sub');
      },
      /cannot use data directory .*not-a-dir\/sub: ENOTDIR/,
    ],
    [
      'a regular file',
      (tmp) => {
        writeFileSync(path.join(tmp, 'file'), 'x');
        return path.join(tmp, 'file');
      },
      /cannot use data directory .*file: ENOTDIR/,
    ],
    // procfs answers ENOENT to mkdir, on which Node's recursive mkdirSync retried forever.
    [
      'a new directory in /proc/self',
      () => '/proc/self/gatehouse-data',
      /cannot use data directory \/proc\/self\/gatehouse-data: ENOENT/,
    ],
    [
      'a new directory under /proc',
      () => '/proc/gatehouse/data',
      /cannot use data directory \/proc\/gatehouse\/data: ENOENT/,
    ],
    ['a path under /dev/null', () => '/dev/null/x', /cannot use data directory \/dev\/null\/x: ENOTDIR/],
    // A place where no file can be made, root or not.
    ['/proc itself', () => '/proc', /cannot use data directory \/proc: unable to open database file/],
    [
      'a directory where gatehouse.db is a directory',
      (tmp) => {
        mkdirSync(path.join(tmp, 'data', 'gatehouse.db'), { recursive: true });
        return path.join(tmp, 'data');
      },
      /cannot open the database in .*data: unable to open database file/,
    ],
    [
      'a directory where gatehouse.db is not a database',
      (tmp) => {
        mkdirSync(path.join(tmp, 'data'));
        writeFileSync(path.join(tmp, 'data', 'gatehouse.db'), 'this is not SQLite, just some text that is long enough');
        return path.join(tmp, 'data');
      },
      /cannot open the database in .*data: file is not a database/,
    ],
  ];

  it.each(UNUSABLE_DATA_DIRS)('refuses %s as the data directory with a one-line error', async (_, make, cause) => {
    const run = serve(['--data-dir', make(tempDir()), '--mqtt-port', '0', '--http-port', '0']);
    const line = await oneLineFailure(run);
    expect(line).toMatch(/^gatehouse: .* \(set --data-dir or GATEHOUSE_DATA_DIR\)$/);
    expect(line).toMatch(cause);
  });

  it('refuses a second server on a data directory in use, and leaves the running one alone', async () => {
    const dataDir = tempDir();
    const first = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0']);
    const urls = await first.listening();
    const { api, app, device, client } = await connectedDevice(urls, { name: 'one server' }, { name: 'd' });
    try {
      const connected = async () =>
        (
          await api<{ connectionInfo: { connected: number | null } }>(
            'GET',
            `/applications/${app.id}/devices/${device.id}`,
          )
        ).connectionInfo.connected;
      await eventually(async () => (await connected()) === 1);
      const second = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0']);
      expect(await oneLineFailure(second)).toBe(
        `gatehouse: data directory ${dataDir} is in use by another gatehouse server (set --data-dir or GATEHOUSE_DATA_DIR)`,
      );
      // The second start changed nothing: the device is still shown connected.
      expect(await connected()).toBe(1);
    } finally {
      await client.endAsync(true);
    }
  });

  it('writes nothing when the first start fails, so the next start creates and prints a working admin token', async () => {
    const dataDir = tempDir();
    const busy = await busyPort();
    try {
      const failed = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', String(busy.port)], {
        GATEHOUSE_ADMIN_TOKEN: '',
      });
      expect(await oneLineFailure(failed)).toMatch(/already in use \(set --http-port or GATEHOUSE_HTTP_PORT\)$/);
    } finally {
      busy.close();
    }
    const db = new Database(path.join(dataDir, 'gatehouse.db'), { readonly: true });
    try {
      expect(db.prepare('SELECT count(*) AS n FROM api_tokens').get()).toEqual({ n: 0 });
      expect(db.prepare('SELECT key FROM settings').all()).toEqual([]);
    } finally {
      db.close();
    }
    const next = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0'], { GATEHOUSE_ADMIN_TOKEN: '' });
    const urls = await next.listening();
    const token = /admin API token \(shown once, store it now\): (\S+)/.exec(next.out())?.[1];
    expect(token).toMatch(/^ght_/);
    const res = await fetch(`${urls.http}/applications`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
  });

  /** Each names a TLS file that cannot be used, and the option the answer must name. */
  const BAD_TLS: Array<[string, (tls: { cert: string; key: string }, tmp: string) => string[], RegExp]> = [
    [
      'a missing certificate',
      (t, tmp) => [path.join(tmp, 'none.pem'), t.key],
      /TLS certificate .*none\.pem: ENOENT \(set --tls-cert or GATEHOUSE_TLS_CERT\)$/,
    ],
    [
      'a missing key',
      (t, tmp) => [t.cert, path.join(tmp, 'none.pem')],
      /TLS key .*none\.pem: ENOENT \(set --tls-key or GATEHOUSE_TLS_KEY\)$/,
    ],
    [
      'a directory as the certificate',
      (t, tmp) => [tmp, t.key],
      /cannot read the TLS certificate .*: EISDIR \(set --tls-cert or GATEHOUSE_TLS_CERT\)$/,
    ],
    [
      'a certificate that is not PEM',
      (t, tmp) => {
        writeFileSync(path.join(tmp, 'junk.pem'), 'junk');
        return [path.join(tmp, 'junk.pem'), t.key];
      },
      /^gatehouse: invalid TLS certificate .*junk\.pem: .* \(set --tls-cert or GATEHOUSE_TLS_CERT\)$/,
    ],
    [
      'a key that is not PEM',
      (t, tmp) => {
        writeFileSync(path.join(tmp, 'junk.pem'), 'junk');
        return [t.cert, path.join(tmp, 'junk.pem')];
      },
      /^gatehouse: invalid TLS key .*junk\.pem: .* \(set --tls-key or GATEHOUSE_TLS_KEY\)$/,
    ],
    [
      'a key of another certificate',
      (t, tmp) => [makeTestCertificate(mkdtempSync(path.join(tmp, 'other-'))).cert, t.key],
      /do not belong together: .* \(set --tls-cert and --tls-key\)$/,
    ],
  ];

  it.each(BAD_TLS)(
    'refuses %s with a one-line error, before touching the data directory',
    async (_, pick, expected) => {
      const tmp = tempDir();
      const [cert, key] = pick(makeTestCertificate(tmp), tmp);
      const dataDir = path.join(tmp, 'data');
      const run = serve([
        '--data-dir',
        dataDir,
        '--mqtt-port',
        '0',
        '--http-port',
        '0',
        '--mqtts-port',
        '0',
        '--tls-cert',
        cert ?? '',
        '--tls-key',
        key ?? '',
      ]);
      expect(await oneLineFailure(run)).toMatch(expected);
      expect(existsSync(dataDir)).toBe(false);
    },
  );

  it('keeps every acknowledged QoS 1 state across SIGTERM while a device is publishing', async () => {
    await publishThroughStop('SIGTERM');
  });

  it('keeps every acknowledged QoS 1 state across SIGKILL while a device is publishing', async () => {
    await publishThroughStop('SIGKILL');
  });
});

describe('gatehouse token create', () => {
  it('creates an admin token that a server running on the same data directory accepts at once', async () => {
    const dataDir = tempDir();
    const server = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0']);
    const urls = await server.listening();
    const created = gatehouse(['token', 'create', '--admin', '--name', 'ops laptop', '--data-dir', dataDir]);
    expect(await created.exited).toBe(0);
    expect(created.err()).toBe('');
    const lines = created.out().trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    const token = /^admin API token \(shown once, store it now\): (ght_\S+)$/.exec(lines[0] ?? '')?.[1];
    expect(token).toBeTruthy();
    // Its first use: the server has read its tokens at start and reads them again for this one.
    const first = await fetch(`${urls.http}/applications`, { headers: { authorization: `Bearer ${token}` } });
    expect(first.status).toBe(200);
    // The data directory from the environment, as for `serve`; every token is new.
    const again = gatehouse(['token', 'create', '--admin'], { GATEHOUSE_DATA_DIR: dataDir });
    expect(await again.exited).toBe(0);
    const second = /: (ght_\S+)$/m.exec(again.out())?.[1];
    expect(second).toBeTruthy();
    expect(second).not.toBe(token);
    const res = await fetch(`${urls.http}/applications`, { headers: { authorization: `Bearer ${second}` } });
    expect(res.status).toBe(200);
    // The running server went on as before: its own admin token still works.
    expect((await fetch(`${urls.http}/applications`, { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(
      200,
    );
  });

  it('is the way back in after the printed token was lost: the next start prints none, the new token works', async () => {
    const dataDir = tempDir();
    const first = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0'], { GATEHOUSE_ADMIN_TOKEN: '' });
    await first.listening();
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    const created = gatehouse(['token', 'create', '--admin', '--data-dir', dataDir]);
    expect(await created.exited).toBe(0);
    const token = /: (ght_\S+)$/m.exec(created.out())?.[1];
    const second = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0'], {
      GATEHOUSE_ADMIN_TOKEN: '',
    });
    const urls = await second.listening();
    expect(second.out()).not.toMatch(/admin API token/);
    const res = await fetch(`${urls.http}/applications`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
  });

  it('refuses a data directory without a database, and a missing --admin, with one line', async () => {
    const dataDir = path.join(tempDir(), 'nothing-here');
    expect(await oneLineFailure(gatehouse(['token', 'create', '--admin', '--data-dir', dataDir]))).toBe(
      `gatehouse: no database in ${dataDir}: start \`gatehouse serve\` there first (set --data-dir or GATEHOUSE_DATA_DIR)`,
    );
    expect(existsSync(dataDir)).toBe(false);
    expect(await oneLineFailure(gatehouse(['token', 'create', '--data-dir', dataDir]))).toBe(
      "error: required option '--admin' not specified",
    );
  });
});

describe('gatehouse user create', () => {
  it('creates a user, reading the password from standard input, who can sign in to a running server', async () => {
    const dataDir = tempDir();
    const server = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0']);
    const urls = await server.listening();
    const created = gatehouse([
      'user',
      'create',
      '--email',
      'Ops@Example.com',
      '--password-stdin',
      '--admin',
      '--data-dir',
      dataDir,
    ]);
    created.child.stdin.end('a long enough password\n');
    expect(await created.exited).toBe(0);
    expect(created.out()).toMatch(/^user ops@example\.com created with id [0-9a-f]{24} \(administrator\)\n$/);
    expect(created.out()).not.toContain('a long enough password');
    const signIn = await fetch(`${urls.http}/auth/user`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'ops@example.com', password: 'a long enough password' }),
    });
    expect(signIn.status).toBe(200);
    const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] as string;
    // An administrator: may list users.
    expect((await fetch(`${urls.http}/users`, { headers: { cookie } })).status).toBe(200);
  });

  it('refuses a short password and a taken email with one line, creating nothing', async () => {
    const dataDir = tempDir();
    const first = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0']);
    await first.listening();
    const short = gatehouse(['user', 'create', '--email', 'a@example.com', '--password-stdin', '--data-dir', dataDir]);
    short.child.stdin.end('short\n');
    expect(await oneLineFailure(short)).toBe(
      'gatehouse: invalid password: a password needs at least 10 characters (give it on standard input with --password-stdin)',
    );
    const made = gatehouse(['user', 'create', '--email', 'a@example.com', '--password-stdin', '--data-dir', dataDir]);
    made.child.stdin.end('long enough password');
    expect(await made.exited).toBe(0);
    const again = gatehouse(['user', 'create', '--email', 'A@example.com', '--password-stdin', '--data-dir', dataDir]);
    again.child.stdin.end('long enough password');
    expect(await oneLineFailure(again)).toBe('gatehouse: a user with email a@example.com exists already (set --email)');
  });
});

/**
 * A device publishes QoS 1 states as fast as PUBACKs come back; the server gets `signal` in the
 * middle of it and is started again on the same data directory. Every state acknowledged before
 * the stop must be stored: SIGTERM shuts down cleanly, and after SIGKILL nothing may be missing
 * either, since a PUBACK is sent only once its state is committed to disk.
 */
async function publishThroughStop(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
  const dataDir = tempDir();
  const run = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0']);
  const urls = await run.listening();
  const { app, device, client } = await connectedDevice(
    urls,
    { name: 'shutdown', rateLimit: { messages: 0, windowSeconds: 15 } },
    { name: 'd', attributes: [{ name: 'seq', dataType: 'number' }] },
  );
  client.on('error', () => {});
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  const base = Date.now();
  const acked: number[] = [];
  let seq = 0;
  // Twenty publishes in flight, so that the stop lands in the middle of group commits.
  const publisher = async () => {
    const start = Date.now();
    while (Date.now() - start < 5000) {
      const n = seq++;
      try {
        await client.publishAsync(`losant/${device.id}/state`, JSON.stringify({ data: { seq: n }, time: base + n }), {
          qos: 1,
        });
        acked.push(n);
      } catch {
        return;
      }
      if (!client.connected) return;
    }
  };
  const publishing = Promise.all(Array.from({ length: 20 }, publisher));
  while (acked.length < 200 && client.connected) await new Promise((r) => setTimeout(r, 10));
  run.child.kill(signal);
  // SIGTERM ends with exit code 0; SIGKILL leaves no code, only the signal.
  expect(await run.exited).toBe(signal === 'SIGTERM' ? 0 : null);
  expect(run.child.signalCode).toBe(signal === 'SIGTERM' ? null : 'SIGKILL');
  // A publish in flight when the server went away is never acknowledged: stop waiting at close.
  await Promise.race([publishing, closed]);
  await client.endAsync(true).catch(() => {});
  expect(acked.length).toBeGreaterThan(0);

  const again = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0']);
  const urls2 = await again.listening();
  const res = await fetch(
    `${urls2.http}/applications/${app.id}/devices/${device.id}/state?limit=10000&sortDirection=asc&start=0`,
    {
      headers: { authorization: `Bearer ${ADMIN}` },
    },
  );
  const states = (await res.json()) as Array<{ data: { seq: number } }>;
  const stored = new Set(states.map((s) => s.data.seq));
  expect(acked.filter((n) => !stored.has(n))).toEqual([]);
  again.child.kill('SIGTERM');
  await again.exited;
}

describe('gatehouse on PostgreSQL (--database-url)', () => {
  it('serves from the database, leaves the data directory alone, and token create adds a token the server accepts', async () => {
    const database = await createTestDatabase();
    try {
      const dataDir = path.join(tempDir(), 'unused');
      const server = serve(['--data-dir', dataDir, '--mqtt-port', '0', '--http-port', '0'], {
        GATEHOUSE_DATABASE_URL: database.url,
      });
      const urls = await server.listening();
      const api = adminApi(urls.http);
      const app = await api<{ id: string }>('POST', '/applications', { name: 'on postgres' });
      const listed = await api<{ items: Array<{ id: string }> }>('GET', '/applications');
      expect(listed.items.map((a) => a.id)).toEqual([app.id]);
      expect(existsSync(dataDir)).toBe(false);

      const created = gatehouse(['token', 'create', '--admin', '--database-url', database.url]);
      expect(await created.exited).toBe(0);
      const token = /: (ght_\S+)$/m.exec(created.out())?.[1];
      expect(token).toBeTruthy();
      const res = await fetch(`${urls.http}/applications`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      expect((await fetch(`${urls.http}/ready`)).status).toBe(200);
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    } finally {
      await database.drop();
    }
  });

  it('refuses a URL that is not postgres:// and a database it cannot reach with one line, without the password', async () => {
    expect(await oneLineFailure(serve(['--database-url', 'mysql://localhost/x']))).toBe(
      'gatehouse: invalid database URL: expected postgres://... (set --database-url or GATEHOUSE_DATABASE_URL)',
    );
    const { port, close } = await busyPort();
    close();
    const line = await oneLineFailure(
      serve(['--mqtt-port', '0', '--http-port', '0'], {
        GATEHOUSE_DATABASE_URL: `postgres://gatehouse:hunter2@127.0.0.1:${port}/gatehouse`,
      }),
    );
    expect(line).toMatch(
      new RegExp(
        `^gatehouse: cannot open the database postgres://gatehouse:\\*\\*\\*@127\\.0\\.0\\.1:${port}/gatehouse: .* \\(set --database-url or GATEHOUSE_DATABASE_URL\\)$`,
      ),
    );
    expect(line).not.toContain('hunter2');
  });
});
