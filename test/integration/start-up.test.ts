/**
 * Start-up in this process: the data directory lock is held while a server runs and let go when
 * it stops or fails to start (test/cli.test.ts covers the command and separate processes).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, resolveConfig } from '../../src/config.js';
import { type RunningGatehouse, startGatehouse } from '../../src/server.js';

const dirs: string[] = [];
const running: RunningGatehouse[] = [];

afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function config(dataDir: string, httpPort = '0') {
  return resolveConfig(
    { dataDir, mqttPort: '0', httpPort, host: '127.0.0.1', logLevel: 'silent' },
    { GATEHOUSE_ADMIN_TOKEN: '' },
  );
}

async function start(dataDir: string, httpPort?: string): Promise<RunningGatehouse> {
  const r = await startGatehouse(config(dataDir, httpPort));
  running.push(r);
  return r;
}

describe('start-up on a data directory', () => {
  it('holds the directory while running, refuses a second server, and lets go on stop', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-start-'));
    dirs.push(dataDir);
    const first = await start(dataDir);
    expect(first.generatedAdminToken).toMatch(/^ght_/);
    const second = startGatehouse(config(dataDir));
    await expect(second).rejects.toThrow(ConfigError);
    await expect(second).rejects.toThrow(`data directory ${dataDir} is in use by another gatehouse server`);
    await running.pop()?.stop();
    const again = await start(dataDir);
    // The token of the first start was created and printed then: none now.
    expect(again.generatedAdminToken).toBeUndefined();
  });

  it('lets go of the directory and creates no token when start-up fails, so the next start prints one', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'gatehouse-start-'));
    dirs.push(dataDir);
    const busy = net.createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    try {
      const port = String((busy.address() as net.AddressInfo).port);
      await expect(startGatehouse(config(dataDir, port))).rejects.toThrow(/already in use/);
    } finally {
      busy.close();
    }
    const next = await start(dataDir);
    expect(next.generatedAdminToken).toMatch(/^ght_/);
    const res = await fetch(`${next.urls.http}/applications`, {
      headers: { authorization: `Bearer ${next.generatedAdminToken}` },
    });
    expect(res.status).toBe(200);
  });

  it('takes trusted proxies as addresses and CIDR ranges, and refuses anything else naming the option', () => {
    const proxies = (list: string) => resolveConfig({ trustedProxies: list }, {}).trustedProxies;
    expect(proxies(' 10.0.0.5, 10.1.0.0/16,fd00::/64 ')).toEqual(['10.0.0.5', '10.1.0.0/16', 'fd00::/64']);
    expect(resolveConfig({}, {}).trustedProxies).toEqual([]);
    expect(resolveConfig({}, { GATEHOUSE_TRUSTED_PROXIES: '192.0.2.1' }).trustedProxies).toEqual(['192.0.2.1']);
    for (const bad of ['balancer.local', '10.0.0.0/33', '10.0.0.5,*']) {
      expect(() => proxies(bad)).toThrow(ConfigError);
      expect(() => proxies(bad)).toThrow(
        /^invalid trusted proxy ".+": .* \(set --trusted-proxies or GATEHOUSE_TRUSTED_PROXIES\)$/,
      );
    }
  });
});
