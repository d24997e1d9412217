/** The SDK against a real Gatehouse: a gateway with peripherals end to end, rejections, transports. */
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeTestCertificate } from '../../test/helpers/tls.js';
import { type Command, ConnectionRefusedError, Device, Gateway, type Rejection } from '../src/index.js';
import {
  collect,
  createFleet,
  eventually,
  FAST_BACKOFF,
  type Fleet,
  GatehouseUnderTest,
  removeTempDirs,
  tempDir,
} from './helpers.js';

afterAll(removeTempDirs);

describe('a gateway with peripherals, end to end', () => {
  let server: GatehouseUnderTest;
  let fleet: Fleet;
  const open: Device[] = [];
  const gatewayFor = (id: string, options: Partial<ConstructorParameters<typeof Gateway>[0]> = {}) => {
    const gateway = new Gateway({
      id,
      key: fleet.key,
      secret: fleet.secret,
      url: server.mqttUrl,
      queue: { type: 'memory' },
      maxRate: 0,
      backoff: FAST_BACKOFF,
      ...options,
    });
    open.push(gateway);
    return gateway;
  };

  beforeAll(async () => {
    server = await GatehouseUnderTest.start();
    fleet = await createFleet(server);
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((d) => d.disconnect()));
  });
  afterAll(() => server.dispose());

  it('reports for itself and its peripherals, and routes each command to its own target', async () => {
    const gateway = gatewayFor(fleet.gateway);
    const bound = gateway.addPeripheral(fleet.bound);
    const floating = gateway.addPeripheral(fleet.floating);
    const connects = collect<void>((l) => gateway.on('connect', l));
    await gateway.connect();
    expect(gateway.connected).toBe(true);
    expect(connects).toHaveLength(1);

    expect(await gateway.sendState({ temperature: 40 })).toBe('sent');
    expect(await bound.sendState({ temperature: 21.5, label: 'bench' })).toBe('sent');
    expect(await floating.sendState({ temperature: 4 }, new Date(Date.now() - 60_000))).toBe('sent');

    // 'sent' means acknowledged, and Gatehouse acknowledges QoS 1 state once it is stored.
    expect(await server.history(fleet.applicationId, fleet.gateway)).toEqual([
      expect.objectContaining({ data: { temperature: 40 }, reportedBy: fleet.gateway }),
    ]);
    expect(await server.history(fleet.applicationId, fleet.bound)).toEqual([
      expect.objectContaining({ data: { temperature: 21.5, label: 'bench' }, reportedBy: fleet.gateway }),
    ]);
    const [floatingState] = await server.history(fleet.applicationId, fleet.floating);
    expect(floatingState?.data).toEqual({ temperature: 4 });

    const toGateway = collect<Command>((l) => gateway.on('command', l));
    const toBound = collect<Command>((l) => bound.on('command', l));
    const toFloating = collect<Command>((l) => floating.on('command', l));
    expect((await server.command(fleet.applicationId, fleet.bound, 'blink', { times: 3 })).routedTo).toEqual([
      fleet.gateway,
    ]);
    await server.command(fleet.applicationId, fleet.gateway, 'reboot');
    await eventually(() => toBound.length === 1 && toGateway.length === 1);
    expect(toBound[0]).toMatchObject({ deviceId: fleet.bound, name: 'blink', payload: { times: 3 } });
    expect(toBound[0]?.time).toBeInstanceOf(Date);
    expect(toGateway[0]).toMatchObject({ deviceId: fleet.gateway, name: 'reboot', payload: null });
    expect(toFloating).toEqual([]);
  });

  it('keeps the order of a burst of states, each stored once', async () => {
    const gateway = gatewayFor(fleet.gateway, { maxInflight: 5 });
    const bound = gateway.addPeripheral(fleet.bound);
    await gateway.connect();
    const before = (await server.history(fleet.applicationId, fleet.bound)).length;
    const results = await Promise.all(Array.from({ length: 60 }, (_, seq) => bound.sendState({ seq })));
    expect(results.every((r) => r === 'sent')).toBe(true);
    const seqs = (await server.history(fleet.applicationId, fleet.bound)).slice(before).map((s) => s.data.seq);
    expect(seqs).toEqual(Array.from({ length: 60 }, (_, i) => i));
  });

  it('subscribes a peripheral added while online at once', async () => {
    const gateway = gatewayFor(fleet.gateway);
    await gateway.connect();
    const floating = gateway.addPeripheral(fleet.floating);
    const received = collect<Command>((l) => floating.on('command', l));
    await eventually(async () => {
      const routed = await server.command(fleet.applicationId, fleet.floating, 'ping');
      return routed.routedTo.includes(fleet.gateway);
    });
    await eventually(() => received.length > 0);
    expect(received[0]).toMatchObject({ deviceId: fleet.floating, name: 'ping' });
  });

  it("emits what the server refused as typed 'rejected' events, on the gateway and on the peripheral", async () => {
    // The bound peripheral belongs to the first gateway: the other one may neither report for it
    // nor subscribe to its commands.
    const other = gatewayFor(fleet.otherGateway);
    const stolen = other.addPeripheral(fleet.bound);
    const fromGateway = collect<Rejection>((l) => other.on('rejected', l));
    const fromPeripheral = collect<Rejection>((l) => stolen.on('rejected', l));
    await other.connect();
    // The refused publish is acknowledged all the same (MQTT 3.1.1 has no negative PUBACK): it leaves the queue.
    expect(await stolen.sendState({ temperature: 99 })).toBe('sent');
    await eventually(() => fromPeripheral.length >= 2);
    expect(fromPeripheral).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ code: 403, topic: `losant/${fleet.bound}/command`, deviceId: fleet.bound }),
        expect.objectContaining({ code: 403, topic: `losant/${fleet.bound}/state`, deviceId: fleet.bound }),
      ]),
    );
    const stateRefusal = fromPeripheral.find((r) => r.topic.endsWith('/state'));
    expect(stateRefusal?.message).toMatch(/bound/);
    expect(stateRefusal?.time).toBeInstanceOf(Date);
    expect(fromGateway).toEqual(expect.arrayContaining(fromPeripheral));
    expect(await server.history(fleet.applicationId, fleet.bound)).not.toContainEqual(
      expect.objectContaining({ data: { temperature: 99 } }),
    );

    // Its own state with an attribute the device does not have: the rest is stored, the drop reported.
    expect(await other.sendState({ temperature: 1, humidity: 50 })).toBe('sent');
    await eventually(() => fromGateway.some((r) => r.code === 400));
    expect(fromGateway.find((r) => r.code === 400)).toMatchObject({
      deviceId: fleet.otherGateway,
      topic: `losant/${fleet.otherGateway}/state`,
      message: expect.stringMatching(/humidity/),
    });
    // A standalone device is nobody's peripheral.
    const standalone = other.addPeripheral(fleet.standalone);
    await standalone.sendState({ temperature: 3 });
    await eventually(() => fromGateway.some((r) => r.deviceId === fleet.standalone && r.topic.endsWith('/state')));
    expect(other.connected).toBe(true);
  });

  it('refuses bad credentials for good: connect() rejects with the CONNACK code and the device closes', async () => {
    const gateway = gatewayFor(fleet.gateway, { secret: 'wrong' });
    const closes = collect<void>((l) => gateway.on('close', l));
    const error = await gateway.connect().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectionRefusedError);
    expect((error as ConnectionRefusedError).code).toBe(4);
    expect(closes).toHaveLength(1);
    await expect(gateway.sendState({ temperature: 1 })).rejects.toThrow(/disconnected/);
  });

  it('connects over WebSocket', async () => {
    const device = new Device({
      id: fleet.gateway,
      key: fleet.key,
      secret: fleet.secret,
      url: server.wsUrl,
      queue: { type: 'memory' },
    });
    open.push(device);
    await device.connect();
    expect(await device.sendState({ label: 'over ws' })).toBe('sent');
    const states = await server.history(fleet.applicationId, fleet.gateway);
    expect(states.at(-1)?.data).toEqual({ label: 'over ws' });
  });
});

describe('over TLS', () => {
  let dir: string;
  let server: GatehouseUnderTest;

  beforeAll(async () => {
    dir = tempDir('tls');
    const tls = makeTestCertificate(dir);
    server = await GatehouseUnderTest.start({
      tls,
    });
  });
  afterAll(async () => {
    await server.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects over mqtts:// trusting the given CA, and reports', async () => {
    const fleet = await createFleet(server);
    const gateway = new Gateway({
      id: fleet.gateway,
      key: fleet.key,
      secret: fleet.secret,
      url: server.mqttsUrl,
      ca: readFileSync(path.join(dir, 'cert.pem')),
      queue: { type: 'memory' },
    });
    try {
      await gateway.connect();
      expect(await gateway.addPeripheral(fleet.bound).sendState({ temperature: 19 })).toBe('sent');
      expect((await server.history(fleet.applicationId, fleet.bound)).map((s) => s.data)).toEqual([
        { temperature: 19 },
      ]);
    } finally {
      await gateway.disconnect();
    }
  });

  it('connects over wss:// on the HTTP port trusting the given CA: reports for a peripheral, receives its command', async () => {
    const fleet = await createFleet(server);
    const gateway = new Gateway({
      id: fleet.gateway,
      key: fleet.key,
      secret: fleet.secret,
      url: server.wssUrl,
      ca: readFileSync(path.join(dir, 'cert.pem')),
      queue: { type: 'memory' },
      backoff: FAST_BACKOFF,
    });
    try {
      const bound = gateway.addPeripheral(fleet.bound);
      const commands = collect<Command>((l) => bound.on('command', l));
      await gateway.connect();
      expect(await bound.sendState({ temperature: 23.5, label: 'over wss' })).toBe('sent');
      // 'sent' means acknowledged, which Gatehouse does once the state is stored.
      expect(await server.history(fleet.applicationId, fleet.bound)).toEqual([
        expect.objectContaining({ data: { temperature: 23.5, label: 'over wss' }, reportedBy: fleet.gateway }),
      ]);
      expect((await server.command(fleet.applicationId, fleet.bound, 'blink', { times: 2 })).routedTo).toEqual([
        fleet.gateway,
      ]);
      await eventually(() => commands.length === 1);
      expect(commands[0]).toMatchObject({ deviceId: fleet.bound, name: 'blink', payload: { times: 2 } });
    } finally {
      await gateway.disconnect();
    }
  });

  it('keeps retrying over wss:// while the certificate is not trusted, saying why; rejectUnauthorized: false connects', async () => {
    const fleet = await createFleet(server);
    const untrusting = new Gateway({
      id: fleet.gateway,
      key: fleet.key,
      secret: fleet.secret,
      url: server.wssUrl,
      queue: { type: 'memory' },
      backoff: FAST_BACKOFF,
    });
    const attempts = collect<{ error: Error | undefined }>((l) => untrusting.on('reconnecting', l));
    void untrusting.connect().catch(() => {});
    try {
      await eventually(() => attempts.length >= 2);
      expect(attempts[0]?.error?.message).toMatch(/self[- ]signed|certificate/i);
      expect(untrusting.connected).toBe(false);
    } finally {
      await untrusting.disconnect();
    }
    const careless = new Gateway({
      id: fleet.gateway,
      key: fleet.key,
      secret: fleet.secret,
      url: server.wssUrl,
      rejectUnauthorized: false,
      queue: { type: 'memory' },
    });
    try {
      await careless.connect();
      expect(await careless.sendState({ temperature: 1 })).toBe('sent');
    } finally {
      await careless.disconnect();
    }
  });
});
