/** MQTT over TLS, with a certificate made for the test by openssl. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { type RunningGatehouse, startGatehouse } from '../../src/server.js';
import { makeTestCertificate } from '../helpers/tls.js';

const ADMIN = 'tls-test-admin-token';

describe('MQTT over TLS', () => {
  let dir: string;
  let running: RunningGatehouse;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-tls-'));
    const tls = makeTestCertificate(dir);
    const config = resolveConfig(
      {
        dataDir: path.join(dir, 'data'),
        mqttPort: '0',
        httpPort: '0',
        mqttsPort: '0',
        tlsCert: tls.cert,
        tlsKey: tls.key,
        // Only errors reach the test output (connections are logged at info).
        logLevel: 'error',
      },
      { GATEHOUSE_ADMIN_TOKEN: ADMIN },
    );
    running = await startGatehouse(config);
  });
  afterAll(async () => {
    await running.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('accepts a device over mqtts:// and stores its state', async () => {
    expect(running.urls.mqtts).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const api = async <T>(method: string, url: string, body?: unknown): Promise<T> => {
      const res = await fetch(`${running.urls.http}${url}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return (await res.json()) as T;
    };
    const app = await api<{ id: string }>('POST', '/applications', { name: 'tls' });
    const device = await api<{ id: string }>('POST', `/applications/${app.id}/devices`, {
      name: 'd',
      attributes: [{ name: 'temperature', dataType: 'number' }],
    });
    const key = await api<{ key: string; secret: string }>('POST', `/applications/${app.id}/keys`, {});
    const client = await mqtt.connectAsync(running.urls.mqtts as string, {
      clientId: device.id,
      username: key.key,
      password: key.secret,
      ca: readFileSync(path.join(dir, 'cert.pem')),
      reconnectPeriod: 0,
    });
    await client.publishAsync(`losant/${device.id}/state`, JSON.stringify({ data: { temperature: 19 } }), { qos: 1 });
    await client.endAsync();
    const states = await api<Array<{ data: unknown }>>('GET', `/applications/${app.id}/devices/${device.id}/state`);
    expect(states.map((s) => s.data)).toEqual([{ temperature: 19 }]);
  });

  it('refuses a client that does not trust the certificate', async () => {
    await expect(
      mqtt.connectAsync(running.urls.mqtts as string, { reconnectPeriod: 0, connectTimeout: 3000 }),
    ).rejects.toThrow(/self[- ]signed|certificate/i);
  });
});
