/**
 * The `gatehouse serve` command as an operator runs it: the built CLI in a child process.
 * (`npm test` builds first.)
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';

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
  const child = spawn(process.execPath, [CLI, 'serve', ...args], {
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

  it('refuses an unusable data directory with a one-line error', async () => {
    const file = path.join(tempDir(), 'not-a-dir');
    writeFileSync(file, 'x');
    chmodSync(file, 0o400);
    const run = serve(['--data-dir', path.join(file, 'sub'), '--mqtt-port', '0', '--http-port', '0']);
    expect(await run.exited).toBe(1);
    const lines = run.err().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^gatehouse: cannot use data directory .*not-a-dir\/sub: ENOTDIR \(set --data-dir or GATEHOUSE_DATA_DIR\)$/,
    );
  });

  it('keeps every acknowledged QoS 1 state across SIGTERM while a device is publishing', async () => {
    await publishThroughStop('SIGTERM');
  });

  it('keeps every acknowledged QoS 1 state across SIGKILL while a device is publishing', async () => {
    await publishThroughStop('SIGKILL');
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
  const api = async <T>(method: string, url: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${urls.http}${url}`, {
      method,
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return (await res.json()) as T;
  };
  const app = await api<{ id: string }>('POST', '/applications', {
    name: 'shutdown',
    rateLimit: { messages: 0, windowSeconds: 15 },
  });
  const device = await api<{ id: string }>('POST', `/applications/${app.id}/devices`, {
    name: 'd',
    attributes: [{ name: 'seq', dataType: 'number' }],
  });
  const key = await api<{ key: string; secret: string }>('POST', `/applications/${app.id}/keys`, {});
  const client = await mqtt.connectAsync(urls.mqtt, {
    clientId: device.id,
    username: key.key,
    password: key.secret,
    reconnectPeriod: 0,
  });
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
