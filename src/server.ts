/**
 * Wires the platform, the MQTT broker and the REST API to their listeners: MQTT on TCP (and
 * TLS when configured), HTTP, and MQTT over WebSocket at /mqtt on the HTTP port.
 */
import { accessSync, constants, mkdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { createApi } from './api/app.js';
import { MAX_PACKET_BYTES } from './broker/connection-guard.js';
import { MqttBroker } from './broker/mqtt-broker.js';
import { ConfigError, type GatehouseConfig, optionName } from './config.js';
import { Maintenance, type MaintenanceOptions } from './core/maintenance.js';
import { Platform } from './core/platform.js';
import { createLogger, type Logger } from './logger.js';
import { openSqliteStore } from './store/sqlite/sqlite-store.js';
import type { Store } from './store/types.js';

export interface RunningGatehouse {
  platform: Platform;
  broker: MqttBroker;
  maintenance: Maintenance;
  urls: { mqtt: string; http: string; ws: string; mqtts?: string };
  /** The admin API token, when this start created a random one. */
  generatedAdminToken: string | undefined;
  stop(): Promise<void>;
}

export interface StartOptions {
  /** Use this store instead of opening SQLite in the data directory (tests). */
  store?: Store;
  clock?: () => number;
  maintenance?: MaintenanceOptions;
  /** Use this logger instead of one made from `config.logLevel` (tests capture the log). */
  logger?: Logger;
}

export async function startGatehouse(config: GatehouseConfig, options: StartOptions = {}): Promise<RunningGatehouse> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const store = options.store ?? (await openStore(config.dataDir, logger));
  const platform = new Platform({ store, logger, ...(options.clock ? { clock: options.clock } : {}) });
  const closers: Array<() => Promise<void>> = [];
  try {
    await platform.start();
    const generatedAdminToken = await platform.ensureAdminToken(config.adminToken);
    const broker = new MqttBroker(platform);
    await broker.start();
    const maintenance = new Maintenance(platform, options.maintenance);
    maintenance.start();
    closers.push(() => maintenance.stop());

    const api = createApi(platform);
    // ws buffers a whole frame before the MQTT parser sees a byte: bound frames like packets.
    const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PACKET_BYTES + 5 });
    api.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (new URL(req.url ?? '/', 'http://x').pathname !== '/mqtt') {
        socket.destroy();
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => broker.handle(createWebSocketStream(ws), req));
    });
    api.server.on('connection', (socket: net.Socket) => socket.setNoDelay(true));
    await listenOrExplain('httpPort', config.host, config.httpPort, () =>
      api.listen({ host: config.host, port: config.httpPort }),
    );
    closers.push(() => api.close());

    const tcp = net.createServer({ noDelay: true }, (socket) => broker.handle(socket));
    const mqttPort = await listenOrExplain('mqttPort', config.host, config.mqttPort, () =>
      listen(tcp, config.host, config.mqttPort),
    );
    closers.push(() => closeServer(tcp));

    let mqtts: string | undefined;
    if (config.tlsCert && config.tlsKey) {
      const secure = tls.createServer(
        { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) },
        (socket) => {
          socket.setNoDelay(true);
          broker.handle(socket);
        },
      );
      const p = await listenOrExplain('mqttsPort', config.host, config.mqttsPort, () =>
        listen(secure, config.host, config.mqttsPort),
      );
      closers.push(() => closeServer(secure));
      mqtts = `mqtts://${hostForUrl(config.host)}:${p}`;
    }

    const httpPort = (api.server.address() as net.AddressInfo).port;
    const host = hostForUrl(config.host);
    let stopping: Promise<void> | undefined;
    return {
      platform,
      broker,
      maintenance,
      generatedAdminToken,
      urls: {
        mqtt: `mqtt://${host}:${mqttPort}`,
        http: `http://${host}:${httpPort}`,
        ws: `ws://${host}:${httpPort}/mqtt`,
        ...(mqtts ? { mqtts } : {}),
      },
      stop() {
        // Stop accepting, disconnect clients (their last writes are queued), finish in-flight
        // requests, then drain the write queue so nothing acknowledged is lost, and close the store.
        stopping ??= (async () => {
          // Live streams never end by themselves: end them (event: shutdown) before the HTTP
          // server waits for its connections to close.
          await api.streams.closeAll();
          const closing = closers.reverse().map((close) => close());
          await broker.close();
          wss.close();
          await Promise.all(closing);
          await platform.stop();
        })();
        return stopping;
      },
    };
  } catch (err) {
    await Promise.allSettled(closers.map((close) => close()));
    await platform.stop().catch(() => {});
    throw err;
  }
}

async function openStore(dataDir: string, logger: Logger): Promise<Store> {
  try {
    mkdirSync(dataDir, { recursive: true });
    accessSync(dataDir, constants.R_OK | constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(`cannot use data directory ${dataDir}: ${code} (set ${optionName('dataDir')})`);
  }
  try {
    return await openSqliteStore({
      dataDir,
      onRollupFlushError: (err) => logger.error({ err }, 'rollup flush failed'),
    });
  } catch (err) {
    throw new ConfigError(
      `cannot open the database in ${dataDir}: ${(err as Error).message} (set ${optionName('dataDir')})`,
    );
  }
}

async function listenOrExplain(
  key: 'httpPort' | 'mqttPort' | 'mqttsPort',
  host: string,
  port: number,
  start: () => Promise<unknown>,
): Promise<number> {
  try {
    const result = await start();
    if (typeof result === 'number') return result;
    return port;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new ConfigError(`port ${port} on ${host} is already in use (set ${optionName(key)})`);
    }
    if (code === 'EACCES') throw new ConfigError(`no permission to listen on port ${port} (set ${optionName(key)})`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
      throw new ConfigError(`cannot listen on host ${host}: ${code} (set ${optionName('host')})`);
    }
    throw err;
  }
}

function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '::') return host === '::' ? '[::1]' : '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
