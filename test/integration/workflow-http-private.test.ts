/**
 * The HTTP node against the operator's policy on private addresses: with the default (deny), a
 * flow cannot call loopback by address or by name, IPv6 loopback, or the cloud metadata address,
 * and the run error says why and which option allows it; the local server sees no request.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFleet, eventually, ok, type SeedFleet, startTestServer, type TestServer } from '../helpers/server.js';

describe('workflow HTTP to private addresses, denied', () => {
  let server: TestServer;
  let fleet: SeedFleet;
  let web: Server;
  let port: number;
  let requests = 0;
  const app = () => `/applications/${fleet.applicationId}`;

  beforeAll(async () => {
    server = await startTestServer({ workflowHttpPrivate: 'deny' });
    fleet = await createFleet(server);
    web = createServer((_req, res) => {
      requests++;
      res.end('reached');
    });
    await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
    port = (web.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => web.close(resolve));
    await server.stop();
  });

  it('refuses loopback by address and by name, IPv6 loopback and the metadata address, naming the option', async () => {
    const flow = ok(
      await server.http<{ id: string }>('POST', `${app()}/flows`, {
        name: 'reach inside',
        triggers: [{ type: 'virtualButton', key: 'go', outputIds: [['call']] }],
        nodes: [
          {
            id: 'call',
            type: 'HttpNode',
            config: { uriTemplate: '{{data.url}}', timeoutTemplate: '5', responsePath: 'working.res' },
            outputIds: [[]],
          },
        ],
      }),
      201,
    ).id;
    const targets = [
      `http://127.0.0.1:${port}/`,
      `http://localhost:${port}/`,
      `http://[::1]:${port}/`,
      'http://169.254.169.254/latest/meta-data/',
    ];
    for (const url of targets) {
      ok(await server.http('POST', `${app()}/flows/${flow}/virtualButton`, { key: 'go', payload: { url } }), 200);
    }
    const log = await eventually(async () => {
      const r = ok(
        await server.http<Array<{ errors: Array<{ message: string }> }>>('GET', `${app()}/flows/${flow}/logs`),
        200,
      );
      return r.length >= targets.length ? r : undefined;
    }, 15_000);
    const messages = log.flatMap((r) => r.errors.map((e) => e.message)).sort();
    expect(messages).toHaveLength(targets.length);
    for (const m of messages) {
      expect(m).toMatch(
        /is a (loopback|link-local \(cloud metadata\)) address; workflows may not call private addresses unless the operator allows it \(--workflow-http-private allow\)$/,
      );
    }
    expect(messages.some((m) => m.includes(`localhost (127.0.0.1)`) || m.includes('localhost (::1)'))).toBe(true);
    expect(requests).toBe(0);
  });
});
