/**
 * Behind a load balancer named in --trusted-proxies, limits and logs see each client's address:
 * over MQTT from the PROXY protocol header (versions 1 and 2), over HTTP from X-Forwarded-For.
 * Every loopback address reaches the server, so 127.0.0.1 is the balancer here and a client
 * bound to 127.0.0.2 stands for a client that is not one.
 */
import http from 'node:http';
import net from 'node:net';
import type { MqttClient } from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';
import {
  Command,
  INETProtocol,
  IPv4Address,
  IPv4ProxyAddress,
  IPv6Address,
  IPv6ProxyAddress,
  Peer,
  TransportProtocol,
  V1ProxyProtocol,
  V2ProxyProtocol,
} from 'proxy-protocol-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connackFrom, connectPacket, rawConnect } from '../helpers/raw-mqtt.js';
import { deviceLogs, eventually, ok, startTestServer, type TestServer } from '../helpers/server.js';

let server: TestServer;
let applicationId: string;
const devices: Record<string, { id: string; key: string; secret: string }> = {};
const open: MqttClient[] = [];

beforeAll(async () => {
  server = await startTestServer({
    trustedProxies: '127.0.0.1',
    secretCheckLimits: { failuresPerAddress: 3, failuresPerCredential: 1_000 },
  });
  applicationId = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'behind a balancer' })).id;
  for (const name of ['v1', 'v2', 'v6', 'throttled', 'neighbour', 'direct', 'rest', 'rest-direct']) {
    const device = ok(await server.http<{ id: string }>('POST', `/applications/${applicationId}/devices`, { name }));
    const key = ok(
      await server.http<{ key: string; secret: string }>('POST', `/applications/${applicationId}/keys`, {}),
    );
    devices[name] = { id: device.id, key: key.key, secret: key.secret };
  }
});

afterAll(async () => {
  await Promise.all(open.splice(0).map((c) => c.endAsync(true).catch(() => {})));
  await server.stop();
});

function v2Header(source: string): Buffer {
  const address = source.includes(':')
    ? new IPv6ProxyAddress(
        IPv6Address.createFrom([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
        40_000,
        IPv6Address.createFrom([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]),
        1883,
      )
    : new IPv4ProxyAddress(
        IPv4Address.createFrom(source.split('.').map(Number)),
        40_000,
        IPv4Address.createFrom([10, 0, 0, 1]),
        1883,
      );
  return Buffer.from(new V2ProxyProtocol(Command.PROXY, TransportProtocol.STREAM, address).build());
}

function v1Header(source: string): Buffer {
  return Buffer.from(
    new V1ProxyProtocol(INETProtocol.TCP4, new Peer(source, 40_000), new Peer('10.0.0.1', 1883)).build(),
  );
}

/** An MQTT CONNECT from `localAddress`, after `header`; resolves with the CONNACK code. */
function connack(
  device: { id: string; key: string },
  password: string,
  header: Buffer | null,
  localAddress = '127.0.0.1',
): Promise<number> {
  return connackFrom(
    server.running.urls.mqtt,
    { clientId: device.id, username: device.key, password },
    { localAddress, ...(header ? { before: header } : {}), keep: (c) => open.push(c) },
  );
}

async function authFailedFrom(name: string): Promise<string> {
  const entry = await eventually(async () =>
    (await deviceLogs(server, applicationId, devices[name]!.id)).find((e) => e.kind === 'authFailed'),
  );
  return entry.ipAddress as string;
}

describe('MQTT through a trusted proxy', () => {
  it("takes the client's address from a PROXY v2 header, IPv4 and IPv6", async () => {
    expect(await connack(devices.v2!, 'wrong', v2Header('203.0.113.7'))).toBe(4);
    expect(await authFailedFrom('v2')).toBe('203.0.113.7');
    expect(await connack(devices.v6!, 'wrong', v2Header('2001:db8::1'))).toBe(4);
    expect(await authFailedFrom('v6')).toBe('2001:db8::1');
  });

  it("takes the client's address from a PROXY v1 header", async () => {
    expect(await connack(devices.v1!, 'wrong', v1Header('198.51.100.9'))).toBe(4);
    expect(await authFailedFrom('v1')).toBe('198.51.100.9');
  });

  it('counts failed secret checks per client address, not per balancer', async () => {
    const d = devices.throttled!;
    for (let i = 0; i < 3; i++) expect(await connack(d, `wrong-${i}`, v2Header('203.0.113.20'))).toBe(4);
    // That client is throttled now; another behind the same balancer is not.
    expect(await connack(d, d.secret, v2Header('203.0.113.20'))).toBe(3);
    const n = devices.neighbour!;
    expect(await connack(n, n.secret, v2Header('203.0.113.21'))).toBe(0);
  });

  it('connects a client whose header comes in pieces, and its CONNECT in the same chunk as the end of it', async () => {
    const client = await rawConnect(server.running.urls.mqtt);
    const header = v2Header('203.0.113.30');
    const d = devices.neighbour!;
    client.socket.write(header.subarray(0, 1));
    await new Promise((resolve) => setTimeout(resolve, 20));
    client.socket.write(
      Buffer.concat([
        header.subarray(1),
        mqttPacket.generate(
          connectPacket({ clientId: `${d.id}`, username: d.key, password: d.secret }) as unknown as Packet,
        ),
      ]),
    );
    const connack = (await client.next('connack')) as { returnCode?: number };
    expect(connack.returnCode).toBe(0);
    client.end();
  });

  it('closes a connection from the balancer without a valid header, before any CONNACK', async () => {
    const port = Number(new URL(server.running.urls.mqtt).port);
    for (const first of [
      Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00]), // a bare CONNECT
      Buffer.from(`PROXY TCP4 ${'9'.repeat(120)}`), // a v1 line past 107 bytes
      Buffer.concat([v2Header('203.0.113.7').subarray(0, 14), Buffer.from([0xff, 0xff])]), // a v2 length of 65,535
      Buffer.from('PROXY TCP4 not-an-address 10.0.0.1 1 2\r\n'),
    ]) {
      const received = await new Promise<Buffer>((resolve) => {
        const socket = net.connect({ port, host: '127.0.0.1' });
        const chunks: Buffer[] = [];
        socket.on('data', (c) => chunks.push(c));
        socket.on('close', () => resolve(Buffer.concat(chunks)));
        socket.on('error', () => {});
        socket.write(first);
      });
      expect(received.length).toBe(0);
    }
  });

  it('expects no header from an address that is not a trusted proxy', async () => {
    const d = devices.direct!;
    expect(await connack(d, 'wrong', null, '127.0.0.2')).toBe(4);
    expect(await authFailedFrom('direct')).toBe('127.0.0.2');
    expect(await connack(d, d.secret, null, '127.0.0.2')).toBe(0);
  });
});

describe('HTTP through a trusted proxy', () => {
  function authDevice(
    d: { id: string; key: string },
    password: string,
    forwardedFor: string,
    localAddress: string,
  ): Promise<number> {
    const body = JSON.stringify({ deviceId: d.id, key: d.key, secret: password });
    const url = new URL('/auth/device', server.running.urls.http);
    return new Promise((resolve, reject) => {
      const req = http.request(
        url,
        {
          method: 'POST',
          localAddress,
          headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  it("believes the balancer's X-Forwarded-For, and no one else's", async () => {
    const d = devices.rest!;
    for (let i = 0; i < 3; i++) expect(await authDevice(d, `wrong-${i}`, '203.0.113.50', '127.0.0.1')).toBe(401);
    expect(await authDevice(d, d.secret, '203.0.113.50', '127.0.0.1')).toBe(429);
    expect(await authDevice(d, d.secret, '203.0.113.51', '127.0.0.1')).toBe(200);
    // From a client that is not a balancer, the header is the client's word only: the failures
    // count against the address it connects from, whatever it claims.
    // (Another device: a secret once accepted is accepted again without a check.)
    const other = devices['rest-direct']!;
    for (let i = 0; i < 3; i++) {
      expect(await authDevice(other, `wrong-${i}`, `203.0.113.${60 + i}`, '127.0.0.3')).toBe(401);
    }
    expect(await authDevice(other, other.secret, '203.0.113.70', '127.0.0.3')).toBe(429);
  });
});
