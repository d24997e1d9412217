/**
 * The Mosquitto bridge of docs/mosquitto-bridge.md, for real: a private mosquitto on a free
 * loopback port (never the system one on 1883) with the documented bridge section, filled in,
 * pointed at a Gatehouse started here.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFleet,
  eventually,
  type Fleet,
  freePort,
  GatehouseUnderTest,
  removeTempDirs,
  tempDir,
} from './helpers.js';

afterAll(removeTempDirs);

const DOC = path.resolve(import.meta.dirname, '..', '..', 'docs', 'mosquitto-bridge.md');

/** The mosquitto executable: on PATH, or in /usr/sbin where Debian puts it (not always on a user's PATH). */
function findMosquitto(): string {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/usr/local/sbin']) {
    if (!dir) continue;
    try {
      accessSync(path.join(dir, 'mosquitto'), constants.X_OK);
      return path.join(dir, 'mosquitto');
    } catch {
      // not here
    }
  }
  throw new Error('mosquitto is not installed (apt-get install mosquitto); the bridge test needs it');
}

/** The bridge section exactly as documented, between the bridge-config markers. */
function documentedBridge(): string {
  const doc = readFileSync(DOC, 'utf8');
  const block = /<!-- bridge-config:start -->\s*```conf\n([\s\S]*?)```\s*<!-- bridge-config:end -->/.exec(doc);
  if (!block?.[1]) throw new Error(`no bridge-config block in ${DOC}`);
  return block[1];
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('Mosquitto bridged to Gatehouse as a gateway', () => {
  let server: GatehouseUnderTest;
  let fleet: Fleet;
  let mosquitto: ChildProcess;
  let exited: Promise<unknown>;
  let local: MqttClient;
  const output: string[] = [];
  const received: Array<{ topic: string; payload: Record<string, unknown> }> = [];

  beforeAll(async () => {
    const executable = findMosquitto();
    server = await GatehouseUnderTest.start();
    fleet = await createFleet(server);
    const port = await freePort();
    const dir = tempDir('mosquitto');
    const bridge = documentedBridge()
      .replaceAll('GATEHOUSE_HOST:1883', `127.0.0.1:${server.ports.mqtt}`)
      .replaceAll('GATEWAY_ID', fleet.gateway)
      .replaceAll('ACCESS_KEY', fleet.key)
      .replaceAll('ACCESS_SECRET', fleet.secret)
      .replaceAll('PERIPHERAL_1_ID', fleet.bound)
      .replaceAll('PERIPHERAL_2_ID', fleet.floating);
    const conf = path.join(dir, 'mosquitto.conf');
    writeFileSync(
      conf,
      [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        'persistence false',
        'log_dest stderr',
        'log_type error',
        'log_type warning',
        'log_type notice',
        '',
        bridge,
      ].join('\n'),
    );
    mosquitto = spawn(executable, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    mosquitto.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
    mosquitto.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
    exited = new Promise((resolve) => mosquitto.once('exit', resolve));
    await eventually(async () => {
      if (mosquitto.exitCode !== null) throw new Error(`mosquitto exited: ${output.join('')}`);
      return canConnect(port);
    }, 10_000);

    local = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { clientId: 'local-sensor-hub', reconnectPeriod: 0 });
    local.on('message', (topic, payload) => received.push({ topic, payload: JSON.parse(payload.toString()) }));
    await local.subscribeAsync(['losant/+/command', `losant/${fleet.gateway}/error`], { qos: 1 });

    // The bridge is connected once Gatehouse shows the gateway connected.
    await eventually(async () => {
      const gateway = await server.api<{ connectionInfo: { connected: number | null } }>(
        'GET',
        `/applications/${fleet.applicationId}/devices/${fleet.gateway}`,
      );
      return gateway.connectionInfo.connected === 1;
    }, 10_000).catch((err: Error) => {
      throw new Error(`${err.message}; mosquitto said: ${output.join('')}`);
    });
  });

  afterAll(async () => {
    await local?.endAsync(true);
    if (mosquitto && mosquitto.exitCode === null) {
      mosquitto.kill('SIGTERM');
      await exited;
    }
    await server?.dispose();
  });

  it('stores state published on the local broker, reported by the gateway', async () => {
    await local.publishAsync(`losant/${fleet.bound}/state`, JSON.stringify({ data: { temperature: 23.5 } }), {
      qos: 1,
    });
    await local.publishAsync(`losant/${fleet.floating}/state`, JSON.stringify({ data: { label: 'crate' } }), {
      qos: 1,
    });
    await local.publishAsync(`losant/${fleet.gateway}/state`, JSON.stringify({ data: { temperature: 50 } }), {
      qos: 1,
    });
    await eventually(async () => (await server.history(fleet.applicationId, fleet.gateway)).length === 1, 10_000);
    expect(await server.history(fleet.applicationId, fleet.bound)).toEqual([
      expect.objectContaining({ data: { temperature: 23.5 }, reportedBy: fleet.gateway }),
    ]);
    expect(await server.history(fleet.applicationId, fleet.floating)).toEqual([
      expect.objectContaining({ data: { label: 'crate' }, reportedBy: fleet.gateway }),
    ]);
  });

  it('delivers commands sent over REST to the local broker, for the gateway and each listed peripheral', async () => {
    for (const [deviceId, name] of [
      [fleet.bound, 'blink'],
      [fleet.floating, 'locate'],
      [fleet.gateway, 'reboot'],
    ] as const) {
      const sent = await server.command(fleet.applicationId, deviceId, name, { from: 'rest' });
      expect(sent.routedTo).toEqual([fleet.gateway]);
      const message = await eventually(() => received.find((m) => m.topic === `losant/${deviceId}/command`), 10_000);
      expect(message.payload).toMatchObject({ name, payload: { from: 'rest' }, time: { $date: expect.any(String) } });
    }
  });

  it("brings Gatehouse's refusals back on the gateway's error topic", async () => {
    // A standalone device is nobody's peripheral: the bridge (the gateway) may not report for it.
    await local.publishAsync(`losant/${fleet.standalone}/state`, JSON.stringify({ data: { temperature: 1 } }), {
      qos: 1,
    });
    const notice = await eventually(() => received.find((m) => m.topic === `losant/${fleet.gateway}/error`), 10_000);
    expect(notice.payload).toMatchObject({ code: 403, topic: `losant/${fleet.standalone}/state` });
    expect(await server.history(fleet.applicationId, fleet.standalone)).toEqual([]);
  });

  it('holds state published while Gatehouse is down and forwards it once the bridge is back', async () => {
    await server.stop();
    // With times: the two arrive together after the reconnect, and two states of one device
    // stamped with the same receive millisecond would merge (docs/mosquitto-bridge.md).
    const time = Date.now();
    for (const [i, temperature] of [7, 8].entries()) {
      const state = JSON.stringify({ data: { temperature }, time: time + i });
      await local.publishAsync(`losant/${fleet.bound}/state`, state, { qos: 1 });
    }
    await server.restart();
    await eventually(async () => (await server.history(fleet.applicationId, fleet.bound)).length === 3, 15_000).catch(
      (err: Error) => {
        throw new Error(`${err.message}; mosquitto said: ${output.join('')}`);
      },
    );
    const temperatures = (await server.history(fleet.applicationId, fleet.bound)).map((s) => s.data.temperature);
    expect(temperatures).toEqual([23.5, 7, 8]);
  }, 30_000);
});
