/**
 * HTTPS on the HTTP port (src/http-tls.ts): with a certificate configured, one port answers
 * plain HTTP and TLS. Real sockets, a certificate made by openssl, real HTTPS and MQTT clients.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import Fastify from 'fastify';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { acceptTlsOnHttpServer } from '../../src/http-tls.js';
import { createLogger } from '../../src/logger.js';
import { type RunningGatehouse, type StartOptions, startGatehouse } from '../../src/server.js';
import { httpsJson, openHttpsStream } from '../helpers/https.js';
import { eventually, nextMessage } from '../helpers/server.js';
import { makeTestCertificate } from '../helpers/tls.js';

const ADMIN = 'https-test-admin-token';

interface Started {
  running: RunningGatehouse;
  dir: string;
  ca: Buffer;
  /** The operator log, parsed. */
  log: Array<Record<string, unknown>>;
}

async function startWithTls(options: StartOptions = {}): Promise<Started> {
  const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-https-'));
  const files = makeTestCertificate(dir);
  const log: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) log.push(JSON.parse(line));
      done();
    },
  });
  const config = resolveConfig(
    {
      dataDir: path.join(dir, 'data'),
      host: '127.0.0.1',
      mqttPort: '0',
      httpPort: '0',
      mqttsPort: '0',
      tlsCert: files.cert,
      tlsKey: files.key,
    },
    { GATEHOUSE_ADMIN_TOKEN: ADMIN },
  );
  const running = await startGatehouse(config, { logger: createLogger('debug', sink), ...options });
  return { running, dir, ca: readFileSync(files.cert), log };
}

/** A raw TCP connection to the HTTP port; `closed` resolves when it is closed (by either side). */
function rawConnection(url: string): Promise<{ socket: net.Socket; closed: Promise<void>; received: () => string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let received = '';
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
    });
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('connect', () => resolve({ socket, closed, received: () => received }));
    socket.once('error', reject);
  });
}

describe('HTTPS on the HTTP port', () => {
  let s: Started;
  let base: string;
  const admin = <T>(method: string, url: string, body?: unknown) =>
    httpsJson<T>(base, s.ca, method, url, { token: ADMIN, ...(body === undefined ? {} : { body }) });

  beforeAll(async () => {
    s = await startWithTls();
    base = s.running.urls.https as string;
  });
  afterAll(async () => {
    await s.running.stop();
    rmSync(s.dir, { recursive: true, force: true });
  });

  /** An application, a device with a number attribute, and a key, made over HTTPS. */
  async function fleet() {
    const app = (await admin<{ id: string }>('POST', '/applications', { name: 'https' })).body;
    const device = (
      await admin<{ id: string }>('POST', `/applications/${app.id}/devices`, {
        name: 'd',
        attributes: [{ name: 'temperature', dataType: 'number' }],
      })
    ).body;
    const key = (await admin<{ key: string; secret: string }>('POST', `/applications/${app.id}/keys`, {})).body;
    return { app, device, key };
  }

  it('names the https and wss URLs on the HTTP port', () => {
    const { http: plain, https: secure, ws, wss } = s.running.urls;
    const port = new URL(plain).port;
    expect(secure).toBe(`https://127.0.0.1:${port}`);
    expect(wss).toBe(`wss://127.0.0.1:${port}/mqtt`);
    expect(ws).toBe(`ws://127.0.0.1:${port}/mqtt`);
  });

  it('answers REST over HTTPS with the configured certificate', async () => {
    const created = await admin<{ id: string; name: string }>('POST', '/applications', { name: 'over tls' });
    expect(created).toMatchObject({ status: 201, encrypted: true, peerCommonName: 'localhost' });
    const listed = await admin<{ items: Array<{ id: string }> }>('GET', '/applications');
    expect(listed.status).toBe(200);
    expect(listed.encrypted).toBe(true);
    expect(listed.body.items.map((a) => a.id)).toContain(created.body.id);
    // No token, no answer: authentication is the same over TLS.
    expect((await httpsJson(base, s.ca, 'GET', '/applications')).status).toBe(401);
  });

  it('marks the session cookie Secure when signed in over HTTPS, and only then', async () => {
    const credentials = { email: 'tls@example.com', password: 'a long enough passphrase' };
    expect((await admin('POST', '/users', credentials)).status).toBe(201);
    const secure = await httpsJson(base, s.ca, 'POST', '/auth/user', { body: credentials });
    expect(secure.status).toBe(200);
    expect(String(secure.headers['set-cookie'])).toMatch(/;\s*Secure/i);
    const plain = await fetch(`${s.running.urls.http}/auth/user`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(credentials),
    });
    expect(plain.status).toBe(200);
    expect(plain.headers.get('set-cookie')).toMatch(/HttpOnly/i);
    expect(plain.headers.get('set-cookie')).not.toMatch(/;\s*Secure/i);
  });

  it('keeps answering plain HTTP on the same port', async () => {
    const res = await fetch(`${s.running.urls.http}/applications`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(res.status).toBe(200);
    // Several requests on one kept-alive connection, plain and then TLS.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 3; i++) {
        const status = await new Promise<number | undefined>((resolve, reject) =>
          http
            .get(`${s.running.urls.http}/health`, { agent }, (r) => {
              r.resume();
              r.on('end', () => resolve(r.statusCode));
            })
            .on('error', reject),
        );
        expect(status).toBe(200);
      }
    } finally {
      agent.destroy();
    }
  });

  it('streams events over HTTPS', async () => {
    const { app, device } = await fleet();
    const stream = await openHttpsStream(base, s.ca, `/applications/${app.id}/devices/${device.id}/stateStream`, ADMIN);
    try {
      expect(stream.status).toBe(200);
      const posted = await admin('POST', `/applications/${app.id}/devices/${device.id}/state`, {
        data: { temperature: 22 },
      });
      expect(posted.status).toBe(200);
      const events = await stream.waitFor((e) => e.some((x) => x.event === 'state'));
      expect(events.find((e) => e.event === 'state')?.json).toMatchObject({ data: { temperature: 22 } });
    } finally {
      stream.close();
    }
  });

  it('carries MQTT over wss:// at /mqtt: states are stored, commands arrive', async () => {
    const { app, device, key } = await fleet();
    const events = await openHttpsStream(base, s.ca, `/applications/${app.id}/events`, ADMIN);
    const client = await mqtt.connectAsync(s.running.urls.wss as string, {
      clientId: device.id,
      username: key.key,
      password: key.secret,
      ca: s.ca,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    try {
      await client.subscribeAsync(`losant/${device.id}/command`, { qos: 1 });
      await client.publishAsync(`losant/${device.id}/state`, JSON.stringify({ data: { temperature: 19 } }), {
        qos: 1,
      });
      const states = await admin<Array<{ data: unknown }>>('GET', `/applications/${app.id}/devices/${device.id}/state`);
      expect(states.body.map((x) => x.data)).toEqual([{ temperature: 19 }]);
      const command = nextMessage(client, `losant/${device.id}/command`);
      const sent = await admin<{ routedTo: string[] }>('POST', `/applications/${app.id}/devices/${device.id}/command`, {
        name: 'blink',
        payload: { times: 2 },
      });
      expect(sent.body.routedTo).toEqual([device.id]);
      expect((await command).payload).toMatchObject({ name: 'blink', payload: { times: 2 } });
      // The connection is seen from its real peer address, through the TLS socket.
      const connected = await events.waitFor((e) => e.some((x) => x.event === 'connect'));
      expect(connected.find((e) => e.event === 'connect')?.json).toMatchObject({
        deviceId: device.id,
        ipAddress: '127.0.0.1',
      });
    } finally {
      await client.endAsync();
      events.close();
    }
    // Plain ws:// still works on the same port.
    const plain = await mqtt.connectAsync(s.running.urls.ws, {
      clientId: device.id,
      username: key.key,
      password: key.secret,
      reconnectPeriod: 0,
      connectTimeout: 5000,
    });
    await plain.publishAsync(`losant/${device.id}/state`, JSON.stringify({ data: { temperature: 20 } }), { qos: 1 });
    await plain.endAsync();
    const after = await admin<Array<{ data: unknown }>>(
      'GET',
      `/applications/${app.id}/devices/${device.id}/state?limit=100&sortDirection=asc&start=0`,
    );
    expect(after.body.map((x) => x.data)).toEqual([{ temperature: 19 }, { temperature: 20 }]);
  });

  it('lets a client that does not trust the certificate give up, and goes on', async () => {
    await expect(
      mqtt.connectAsync(s.running.urls.wss as string, { reconnectPeriod: 0, connectTimeout: 5000 }),
    ).rejects.toThrow(/self[- ]signed|certificate/i);
    expect((await admin('GET', '/applications')).status).toBe(200);
  });

  it('logs a failed handshake at debug, destroys the socket and goes on', async () => {
    // A real TLS client that offers only a cipher the server's RSA certificate cannot serve.
    const raw = await rawConnection(s.running.urls.http);
    const client = tls.connect({
      socket: raw.socket,
      servername: 'localhost',
      ca: s.ca,
      maxVersion: 'TLSv1.2',
      ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256',
    });
    const failure = new Promise<Error>((resolve) => client.once('error', resolve));
    expect((await failure).message).toMatch(/handshake failure/i);
    await raw.closed;
    await eventually(() =>
      s.log.some((l) => l.msg === 'TLS handshake failed' && /no shared cipher/.test(JSON.stringify(l))),
    );
    const line = s.log.find((l) => l.msg === 'TLS handshake failed');
    expect(line).toMatchObject({ level: 20, component: 'https', remoteAddress: '127.0.0.1' });
    expect((await admin('GET', '/applications')).status).toBe(200);
  });

  it('survives garbage and early closes, and answers both protocols afterwards', async () => {
    // Not TLS and not HTTP: the HTTP server answers 400 and closes.
    const junk = await rawConnection(s.running.urls.http);
    junk.socket.write(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a, 0x0d, 0x0a]));
    await junk.closed;
    expect(junk.received()).toMatch(/^HTTP\/1\.1 400 /);

    // A handshake record byte followed by garbage: the handshake fails, the socket is destroyed.
    const badTls = await rawConnection(s.running.urls.http);
    const before = s.log.filter((l) => l.msg === 'TLS handshake failed').length;
    badTls.socket.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x99, 0x99]));
    await badTls.closed;
    await eventually(() => s.log.filter((l) => l.msg === 'TLS handshake failed').length > before);

    // Closed at once; closed after the first byte of a handshake; reset halfway through a handshake.
    const quiet = await rawConnection(s.running.urls.http);
    quiet.socket.end();
    await quiet.closed;
    const oneByte = await rawConnection(s.running.urls.http);
    oneByte.socket.end(Buffer.from([0x16]));
    await oneByte.closed;
    const reset = await rawConnection(s.running.urls.http);
    const client = tls.connect({ socket: reset.socket, servername: 'localhost', ca: s.ca });
    client.on('error', () => {});
    client.once('secureConnect', () => reset.socket.resetAndDestroy());
    await reset.closed;
    // Reset while a request over TLS is half sent.
    const half = await rawConnection(s.running.urls.http);
    const halfTls = tls.connect({ socket: half.socket, servername: 'localhost', ca: s.ca });
    halfTls.on('error', () => {});
    halfTls.once('secureConnect', () => {
      halfTls.write('GET /applications HTTP/1.1\r\nHost: x\r\n', () => half.socket.resetAndDestroy());
    });
    await half.closed;

    expect((await admin('GET', '/applications')).status).toBe(200);
    expect(
      (await fetch(`${s.running.urls.http}/applications`, { headers: { authorization: `Bearer ${ADMIN}` } })).status,
    ).toBe(200);
  });
});

describe('connections to the HTTPS port that stall', () => {
  it('are closed when they send nothing, or stop halfway through a handshake, in time', async () => {
    const s = await startWithTls({ handshakeTimeoutMs: 200 });
    try {
      const silent = await rawConnection(s.running.urls.http);
      const stalled = await rawConnection(s.running.urls.http);
      stalled.socket.write(Buffer.from([0x16, 0x03, 0x01]));
      // Closed by the server: these clients never end their side.
      await silent.closed;
      await stalled.closed;
      await eventually(
        () =>
          s.log.some((l) => l.msg === 'connection sent nothing in time') &&
          s.log.some((l) => l.msg === 'TLS handshake timed out'),
      );
    } finally {
      await s.running.stop();
      rmSync(s.dir, { recursive: true, force: true });
    }
  });

  it('do not hold up a stop, nor do open streams, kept-alive connections or wss clients', async () => {
    const s = await startWithTls();
    try {
      const base = s.running.urls.https as string;
      const admin = <T>(url: string, body: unknown) =>
        httpsJson<T>(base, s.ca, 'POST', url, { token: ADMIN, body }).then((r) => r.body);
      const app = await admin<{ id: string }>('/applications', { name: 'x' });
      const device = await admin<{ id: string }>(`/applications/${app.id}/devices`, { name: 'd' });
      const key = await admin<{ key: string; secret: string }>(`/applications/${app.id}/keys`, {});
      const stream = await openHttpsStream(base, s.ca, `/applications/${app.id}/events`, ADMIN);
      const wss = await mqtt.connectAsync(s.running.urls.wss as string, {
        clientId: device.id,
        username: key.key,
        password: key.secret,
        ca: s.ca,
        reconnectPeriod: 0,
      });
      const wssClosed = new Promise<void>((resolve) => wss.once('close', () => resolve()));
      // A kept-alive HTTPS connection that has had its answer and waits for the next request.
      const keptAlive = await rawConnection(s.running.urls.http);
      const keptAliveTls = tls.connect({ socket: keptAlive.socket, servername: 'localhost', ca: s.ca });
      keptAliveTls.on('error', () => {});
      let answer = '';
      keptAliveTls.on('data', (d: Buffer) => {
        answer += d.toString();
      });
      keptAliveTls.write('GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n');
      await eventually(() => answer.includes('{"status":"ok"}'));
      const silent = await rawConnection(s.running.urls.http);
      const handshaking = await rawConnection(s.running.urls.http);
      handshaking.socket.write(Buffer.from([0x16]));
      const idleTls = await rawConnection(s.running.urls.http);
      const idleTlsClient = tls.connect({ socket: idleTls.socket, servername: 'localhost', ca: s.ca });
      idleTlsClient.on('error', () => {});
      await new Promise<void>((resolve) => idleTlsClient.once('secureConnect', () => resolve()));

      await s.running.stop();
      // Every one of them was closed by the server.
      await Promise.all([silent.closed, handshaking.closed, idleTls.closed, keptAlive.closed, wssClosed]);
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
      const events = await stream.waitForEnd();
      expect(events.map((e) => e.event)).toContain('shutdown');
    } finally {
      await s.running.stop();
      rmSync(s.dir, { recursive: true, force: true });
    }
  });
});

describe('acceptTlsOnHttpServer under Fastify', () => {
  it("makes request.protocol 'https' on a TLS connection and 'http' on a plain one", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-https-unit-'));
    const files = makeTestCertificate(dir);
    const ca = readFileSync(files.cert);
    const app = Fastify();
    app.get('/protocol', async (request) => ({ protocol: request.protocol, encrypted: 'encrypted' in request.socket }));
    const sniffing = acceptTlsOnHttpServer(app.server, {
      secureContext: tls.createSecureContext({ cert: ca, key: readFileSync(files.key) }),
      logger: createLogger('silent'),
    });
    try {
      await app.listen({ host: '127.0.0.1', port: 0 });
      const { port } = app.server.address() as net.AddressInfo;
      const secure = await httpsJson(`https://127.0.0.1:${port}`, ca, 'GET', '/protocol');
      expect(secure.body).toEqual({ protocol: 'https', encrypted: true });
      const plain = await (await fetch(`http://127.0.0.1:${port}/protocol`)).json();
      expect(plain).toEqual({ protocol: 'http', encrypted: false });
      expect(sniffing.pending).toBe(0);
    } finally {
      sniffing.close();
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
