/**
 * A bare MQTT 3.1.1 connection over a socket, for what a well-behaved client library will not
 * do: stop reading, declare huge packets, send U+0000 in a topic.
 */
import net from 'node:net';
import { MqttClient } from 'mqtt';
import mqttPacket, { type Packet } from 'mqtt-packet';

export interface RawClient {
  socket: net.Socket;
  /** Packets received so far, in order. */
  received: Packet[];
  send(packet: Record<string, unknown>): void;
  /** Resolves with the next received packet of `cmd` (or rejects after `ms`). */
  next(cmd: string, ms?: number): Promise<Packet>;
  /** Resolves when the server has closed the connection. */
  closed: Promise<void>;
  isClosed(): boolean;
  /** Stops reading from the socket: the server's writes pile up. */
  stopReading(): void;
  end(): void;
}

export async function rawConnect(url: string): Promise<RawClient> {
  const { hostname, port } = new URL(url);
  const socket = net.connect({ host: hostname, port: Number(port) });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('error', reject);
  });
  socket.on('error', () => {});
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const received: Packet[] = [];
  const waiters: Array<{ cmd: string; resolve: (p: Packet) => void }> = [];
  parser.on('packet', (packet: Packet) => {
    const i = waiters.findIndex((w) => w.cmd === packet.cmd);
    if (i >= 0) waiters.splice(i, 1)[0]?.resolve(packet);
    else received.push(packet);
  });
  socket.on('data', (chunk: Buffer) => parser.parse(chunk));
  let isClosed = false;
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      isClosed = true;
      resolve();
    }),
  );
  return {
    socket,
    received,
    send(packet) {
      socket.write(mqttPacket.generate(packet as unknown as Packet));
    },
    next(cmd, ms = 3000) {
      const found = received.findIndex((p) => p.cmd === cmd);
      if (found >= 0) return Promise.resolve(received.splice(found, 1)[0] as Packet);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${cmd} within ${ms} ms`)), ms);
        waiters.push({
          cmd,
          resolve: (p) => {
            clearTimeout(timer);
            resolve(p);
          },
        });
      });
    },
    closed,
    isClosed: () => isClosed,
    stopReading() {
      socket.removeAllListeners('data');
      socket.pause();
    },
    end() {
      socket.destroy();
    },
  };
}

export interface RawCredentials {
  clientId: string;
  username: string;
  password: string;
}

/** An MQTT 3.1.1 CONNECT with these credentials; `extra` adds or overrides fields (a will). */
export function connectPacket(credentials: RawCredentials, extra: Record<string, unknown> = {}) {
  return {
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    keepalive: 60,
    clientId: credentials.clientId,
    username: credentials.username,
    password: Buffer.from(credentials.password),
    ...extra,
  };
}

/** A raw client connected as a device (CONNACK 0), optionally with a will. */
export async function rawDevice(
  url: string,
  credentials: RawCredentials,
  extra: Record<string, unknown> = {},
): Promise<RawClient> {
  const client = await rawConnect(url);
  client.send(connectPacket(credentials, extra));
  const connack = (await client.next('connack')) as { returnCode?: number };
  if (connack.returnCode !== 0) throw new Error(`CONNACK ${connack.returnCode}`);
  return client;
}

/**
 * One MQTT CONNECT over a socket bound to `localAddress` (every 127.x.y.z reaches a loopback
 * server, so each stands for another remote address), after the bytes `before` (a PROXY
 * protocol header). Resolves with the CONNACK return code; an accepted client (0) is handed to
 * `keep`, to be ended by the test.
 */
export function connackFrom(
  mqttUrl: string,
  credentials: RawCredentials,
  options: { localAddress?: string; before?: Buffer; keep: (client: MqttClient) => void },
): Promise<number> {
  const port = Number(new URL(mqttUrl).port);
  const client = new MqttClient(
    () => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress: options.localAddress ?? '127.0.0.1' });
      if (options.before) socket.write(options.before);
      return socket;
    },
    { ...credentials, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 60_000 },
  );
  return new Promise((resolve, reject) => {
    client.once('connect', () => {
      options.keep(client);
      resolve(0);
    });
    client.once('error', (err) => {
      client.end(true);
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'number') resolve(code);
      else reject(err);
    });
  });
}
