/**
 * Wires the platform, the MQTT broker and the REST API to their listeners: MQTT on TCP (and
 * TLS when configured), HTTP, and MQTT over WebSocket at /mqtt on the HTTP port. With a
 * certificate, the HTTP port also speaks TLS: HTTPS and `wss://` (src/http-tls.ts).
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import proxyaddr from 'proxy-addr';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { type Api, createApi } from './api/app.js';
import { MAX_PACKET_BYTES } from './broker/connection-guard.js';
import { MqttBroker } from './broker/mqtt-broker.js';
import { readProxyHeader } from './broker/proxy-protocol.js';
import { type Cluster, joinCluster } from './cluster/cluster.js';
import { customTopicEmitter } from './cluster/custom-topic-emitter.js';
import { SharedEventHistory } from './cluster/shared-history.js';
import { SharedRateLimiter } from './cluster/shared-rate-limit.js';
import { sharedSessionStore } from './cluster/shared-sessions.js';
import { ConfigError, type GatehouseConfig, optionName, redactDatabaseUrl } from './config.js';
import { newApiToken, newUser, publicUser } from './core/accounts.js';
import { Maintenance, type MaintenanceOptions } from './core/maintenance.js';
import { Platform } from './core/platform.js';
import { DEFAULT_SECRET_CHECK_LIMITS, type SecretCheckLimits } from './core/secrets.js';
import { normalizeEmail, passwordProblem, type User } from './domain/accounts.js';
import { acceptTlsOnHttpServer, type HttpTls } from './http-tls.js';
import { createLogger, type Logger } from './logger.js';
import { Metrics } from './ops/metrics.js';
import { Readiness } from './ops/readiness.js';
import { openPostgresStore } from './store/postgres/postgres-store.js';
import { lockDataDir, makeDirectory } from './store/sqlite/data-dir.js';
import { DATABASE_FILENAME, openSqliteStore } from './store/sqlite/sqlite-store.js';
import { openSqliteStoreThread } from './store/sqlite/store-thread.js';
import type { Store } from './store/types.js';
import { type EngineLimits, WorkflowEngine } from './workflows/engine.js';
import { Flows } from './workflows/flows.js';
import type { TimerSource } from './workflows/timers.js';
import { Webhooks } from './workflows/webhooks.js';

export interface RunningGatehouse {
  platform: Platform;
  /** The REST API, listening. */
  api: Api;
  broker: MqttBroker;
  maintenance: Maintenance;
  /** This server's metrics (GET /metrics) and readiness (GET /ready); docs/operations.md. */
  metrics: Metrics;
  readiness: Readiness;
  /** This node's part in the nodes sharing Redis, when `redisUrl` is set. */
  cluster: Cluster | undefined;
  /** Workflows: their definitions and the runtime. */
  workflows: { flows: Flows; engine: WorkflowEngine; webhooks: Webhooks };
  /** `https` and `wss` (the HTTP port, speaking TLS) and `mqtts` when a certificate is configured. */
  urls: { mqtt: string; http: string; ws: string; mqtts?: string; https?: string; wss?: string };
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
  /** Other limits on workflow runs than the defaults (tests). */
  workflowLimits?: Partial<EngineLimits>;
  /** What fires workflow timers instead of real time (tests drive them by hand). */
  workflowTimers?: TimerSource;
  /** Other limits on secret checks than the defaults (tests). */
  secretCheckLimits?: Partial<SecretCheckLimits>;
  /** How long a connection to the HTTP port may take to send its first byte and finish a TLS handshake (tests). */
  handshakeTimeoutMs?: number;
}

/**
 * Starts everything. Nothing new is written before every listener is up: a start that fails
 * (a port in use, a bad TLS file) leaves no admin token behind that was never printed.
 */
/** Keys of failed secret checks a node tracks (credentials, addresses), as the per-node counters keep. */
const SECRET_FAILURE_KEYS = DEFAULT_SECRET_CHECK_LIMITS.maxTracked;
/** How long a trusted proxy's MQTT connection may take to send its PROXY protocol header. */
const PROXY_HEADER_TIMEOUT_MS = 5_000;

export async function startGatehouse(config: GatehouseConfig, options: StartOptions = {}): Promise<RunningGatehouse> {
  const logger = options.logger ?? createLogger(config.logLevel);
  // Files the operator named are checked before the data directory is touched.
  const tlsFiles = config.tlsCert && config.tlsKey ? readTlsFiles(config.tlsCert, config.tlsKey) : undefined;
  const { store, release } = options.store
    ? { store: options.store, release: () => {} }
    : config.databaseUrl
      ? await openPostgres(config.databaseUrl, logger)
      : await openStore(config.dataDir, logger);
  let cluster: Cluster | undefined;
  if (config.redisUrl) {
    try {
      cluster = await joinCluster({ url: config.redisUrl, prefix: config.redisPrefix, logger });
    } catch (err) {
      await store.close().catch(() => {});
      release();
      throw new ConfigError(
        `cannot connect to Redis ${redactDatabaseUrl(config.redisUrl)}: ${(err as Error).message} (set ${optionName('redisUrl')})`,
      );
    }
  }
  const metrics = new Metrics();
  const platform = new Platform({
    store,
    logger,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.secretCheckLimits ? { secretCheckLimits: options.secretCheckLimits } : {}),
    instruments: { writes: metrics.writes, commandRoutes: metrics.commandRoutes },
    // The first node up clears what a crash of every node left behind, as a lone server does.
    sharedConnections: cluster !== undefined && !cluster.alone,
    // Per-device limits count across nodes (docs/scale-out.md).
    ...(cluster ? { limiter: new SharedRateLimiter(cluster.links) } : {}),
    // So are failed secret checks, per credential and per address (docs/scale-out.md).
    ...(cluster
      ? {
          secretFailures: {
            credential: new SharedRateLimiter(cluster.links, {
              namespace: 'secret-credential:',
              maxKeys: SECRET_FAILURE_KEYS,
            }),
            address: new SharedRateLimiter(cluster.links, {
              namespace: 'secret-address:',
              maxKeys: SECRET_FAILURE_KEYS,
            }),
          },
        }
      : {}),
  });
  const readiness = new Readiness({
    store,
    writes: platform.writes,
    logger: logger.child({ component: 'ops' }),
    ...(cluster ? { cluster } : {}),
  });
  const closers: Array<() => Promise<void>> = [];
  let unlockStartup: (() => Promise<void>) | undefined;
  // Work that runs on one node only when nodes share Redis: where the singleton lease is held.
  const singleton = cluster ? () => cluster.lease.held : undefined;
  try {
    unlockStartup = await cluster?.lockStartup();
    await platform.start();
    const broker = new MqttBroker(
      platform,
      {},
      metrics.broker,
      cluster
        ? {
            nodeId: cluster.nodeId,
            ownership: cluster.ownership,
            emitter: (concurrency) =>
              customTopicEmitter({ url: config.redisUrl as string, prefix: config.redisPrefix, concurrency }),
            sessions: sharedSessionStore({ url: config.redisUrl as string, prefix: config.redisPrefix }),
          }
        : {},
    );
    await broker.start();
    cluster?.attach(platform, broker);
    const maintenance = new Maintenance(platform, { ...options.maintenance, ...(singleton ? { singleton } : {}) });
    maintenance.start();
    closers.push(() => maintenance.stop());

    // Workflows follow the event bus; they start before any listener, so no event is missed.
    const engine = new WorkflowEngine(platform, options.workflowLimits, {
      instruments: metrics.workflows,
      allowPrivateHttp: config.workflowHttpPrivate === 'allow',
      ...(options.workflowTimers ? { timers: options.workflowTimers } : {}),
      ...(singleton ? { singleton } : {}),
    });
    await engine.start();
    closers.push(() => engine.stop());
    const workflows = {
      flows: new Flows(platform.store, engine, platform.clock),
      engine,
      webhooks: new Webhooks(platform.store, platform.clock),
    };
    cluster?.shareFlows(workflows.flows);
    cluster?.shareReports(platform.bus, engine, platform.clock);

    // Live streams see what every node commits, and replay from any node (docs/scale-out.md).
    let sharedHistory: SharedEventHistory | undefined;
    if (cluster) {
      sharedHistory = new SharedEventHistory(
        platform.bus,
        cluster.links,
        cluster.messenger,
        logger.child({ component: 'cluster' }),
      );
      await sharedHistory.start();
    }
    const api = createApi(platform, {
      ...(sharedHistory ? { streams: { sharedHistory } } : {}),
      workflows,
      ops: { readiness, metrics, metricsToken: config.metricsToken },
      trustedProxies: config.trustedProxies,
    });
    metrics.watch({ connectionsByClass: () => broker.connectedByClass(), openStreams: () => api.streams.size });
    // Load balancers named by the operator tell the client's address (docs/scale-out.md).
    const trustsProxy = config.trustedProxies.length > 0 ? proxyaddr.compile(config.trustedProxies) : undefined;
    // ws buffers a whole frame before the MQTT parser sees a byte: bound frames like packets.
    const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PACKET_BYTES + 5 });
    api.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (new URL(req.url ?? '/', 'http://x').pathname !== '/mqtt') {
        socket.destroy();
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) =>
        broker.handle(createWebSocketStream(ws), req, trustsProxy ? proxyaddr(req, trustsProxy) : undefined),
      );
    });
    // With a certificate, connections to the HTTP port are sorted into plain and TLS first.
    const httpTls: HttpTls | undefined = tlsFiles
      ? acceptTlsOnHttpServer(api.server, {
          secureContext: tls.createSecureContext(tlsFiles),
          logger: logger.child({ component: 'https' }),
          ...(options.handshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
        })
      : undefined;
    api.server.on('connection', (socket: net.Socket) => socket.setNoDelay(true));
    await listenOrExplain('httpPort', config.host, config.httpPort, () =>
      api.listen({ host: config.host, port: config.httpPort }),
    );
    closers.push(() => {
      httpTls?.close();
      return api.close();
    });
    readiness.watchListener('http', api.server);

    const tcp = net.createServer({ noDelay: true }, (socket) => {
      if (!trustsProxy?.(socket.remoteAddress ?? '', 0)) {
        broker.handle(socket);
        return;
      }
      readProxyHeader(socket, PROXY_HEADER_TIMEOUT_MS).then(
        (address) => broker.handle(socket, undefined, address ?? undefined),
        (err: Error) =>
          logger.warn(
            { component: 'mqtt', event: 'proxyHeaderRefused', proxyAddress: socket.remoteAddress, reason: err.message },
            'MQTT connection from a trusted proxy closed: no valid PROXY protocol header',
          ),
      );
    });
    const mqttPort = await listenOrExplain('mqttPort', config.host, config.mqttPort, () =>
      listen(tcp, config.host, config.mqttPort),
    );
    closers.push(() => closeServer(tcp));
    readiness.watchListener('mqtt', tcp);

    let mqtts: string | undefined;
    if (tlsFiles) {
      const secure = tls.createServer(tlsFiles, (socket) => {
        socket.setNoDelay(true);
        broker.handle(socket);
      });
      const p = await listenOrExplain('mqttsPort', config.host, config.mqttsPort, () =>
        listen(secure, config.host, config.mqttsPort),
      );
      closers.push(() => closeServer(secure));
      readiness.watchListener('mqtts', secure);
      mqtts = `mqtts://${hostForUrl(config.host)}:${p}`;
    }

    const generatedAdminToken = await platform.commitStart(config.adminToken);
    await unlockStartup?.();
    readiness.markRunning();
    const httpPort = (api.server.address() as net.AddressInfo).port;
    const host = hostForUrl(config.host);
    let stopping: Promise<void> | undefined;
    return {
      platform,
      api,
      broker,
      maintenance,
      metrics,
      readiness,
      cluster,
      workflows,
      generatedAdminToken,
      urls: {
        mqtt: `mqtt://${host}:${mqttPort}`,
        http: `http://${host}:${httpPort}`,
        ws: `ws://${host}:${httpPort}/mqtt`,
        ...(mqtts ? { mqtts } : {}),
        ...(httpTls ? { https: `https://${host}:${httpPort}`, wss: `wss://${host}:${httpPort}/mqtt` } : {}),
      },
      stop() {
        // Stop accepting, disconnect clients (their last writes are queued), finish in-flight
        // requests, then drain the write queue so nothing acknowledged is lost, and close the store.
        readiness.markStopping();
        stopping ??= (async () => {
          // Live streams never end by themselves: end them (event: shutdown) before the HTTP
          // server waits for its connections to close.
          await api.streams.closeAll();
          const closing = closers.reverse().map((close) => close());
          await broker.close();
          wss.close();
          await Promise.all(closing);
          await platform.stop();
          await cluster?.stop();
          release();
        })();
        return stopping;
      },
    };
  } catch (err) {
    await Promise.allSettled(closers.map((close) => close()));
    await unlockStartup?.();
    await platform.stop().catch(() => {});
    await cluster?.stop().catch(() => {});
    release();
    throw err;
  }
}

/** The certificate and key, read and checked, or a ConfigError naming the option to fix. */
function readTlsFiles(certFile: string, keyFile: string): { cert: Buffer; key: Buffer } {
  const read = (file: string, what: string, option: 'tlsCert' | 'tlsKey'): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new ConfigError(`cannot read the TLS ${what} ${file}: ${code} (set ${optionName(option)})`);
    }
  };
  const cert = read(certFile, 'certificate', 'tlsCert');
  const key = read(keyFile, 'key', 'tlsKey');
  const problem = (options: tls.SecureContextOptions): string | undefined => {
    try {
      tls.createSecureContext(options);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  };
  const certProblem = problem({ cert });
  if (certProblem) {
    throw new ConfigError(`invalid TLS certificate ${certFile}: ${certProblem} (set ${optionName('tlsCert')})`);
  }
  const keyProblem = problem({ key });
  if (keyProblem) throw new ConfigError(`invalid TLS key ${keyFile}: ${keyProblem} (set ${optionName('tlsKey')})`);
  const pairProblem = problem({ cert, key });
  if (pairProblem) {
    throw new ConfigError(
      `TLS certificate ${certFile} and key ${keyFile} do not belong together: ${pairProblem} (set --tls-cert and --tls-key)`,
    );
  }
  return { cert, key };
}

/** Opens the store in the data directory, locked to this server; `release` unlocks it after close. */
async function openStore(dataDir: string, logger: Logger): Promise<{ store: Store; release: () => void }> {
  const unusable = (cause: string) =>
    new ConfigError(`cannot use data directory ${dataDir}: ${cause} (set ${optionName('dataDir')})`);
  try {
    makeDirectory(dataDir);
    accessSync(dataDir, constants.R_OK | constants.W_OK);
  } catch (err) {
    throw unusable((err as NodeJS.ErrnoException).code ?? (err as Error).message);
  }
  let lock: ReturnType<typeof lockDataDir>;
  try {
    lock = lockDataDir(dataDir);
  } catch (err) {
    throw unusable((err as Error).message);
  }
  if (!lock) {
    throw new ConfigError(
      `data directory ${dataDir} is in use by another gatehouse server (set ${optionName('dataDir')})`,
    );
  }
  try {
    const store = await openSqliteStoreThread({
      dataDir,
      backgroundCheckpoints: true,
      onRollupFlushError: (err) =>
        logger.error({ component: 'store', event: 'rollupFlushFailed', err }, 'rollup flush failed'),
      onCheckpointError: (err) =>
        logger.error({ component: 'store', event: 'checkpointFailed', err }, 'background checkpoint failed'),
    });
    return { store, release: () => lock.release() };
  } catch (err) {
    lock.release();
    throw new ConfigError(
      `cannot open the database in ${dataDir}: ${(err as Error).message} (set ${optionName('dataDir')})`,
    );
  }
}

/**
 * Opens the PostgreSQL store (docs/scale-out.md): migrates it under a lock, so nodes starting
 * together are fine. No data directory lock: several servers share one database by design.
 */
async function openPostgres(url: string, logger: Logger): Promise<{ store: Store; release: () => void }> {
  try {
    const store = await openPostgresStore({
      url,
      onError: (event, err) =>
        logger.error(
          { component: 'store', event, err },
          event === 'databaseConnectionLost' ? 'database connection lost' : 'creating state partitions failed',
        ),
    });
    return { store, release: () => {} };
  } catch (err) {
    throw new ConfigError(
      `cannot open the database ${redactDatabaseUrl(url)}: ${(err as Error).message} (set ${optionName('databaseUrl')})`,
    );
  }
}

/** Where the offline commands find the store: PostgreSQL when `databaseUrl` is set, else SQLite in `dataDir`. */
export interface StoreLocation {
  dataDir: string;
  databaseUrl?: string | undefined;
}

/**
 * Runs `work` on the store opened a second time, beside servers that may be running on it
 * (SQLite in WAL mode lets a second process write; PostgreSQL takes any number of clients); the
 * servers accept what is added at its first use. For the commands that add a credential
 * (`token create`, `user create`).
 */
async function withSharedStore<T>(location: StoreLocation, work: (store: Store) => Promise<T>): Promise<T> {
  const { dataDir, databaseUrl } = location;
  if (databaseUrl) {
    let store: Store;
    try {
      store = await openPostgresStore({ url: databaseUrl, shared: true, poolSize: 1 });
    } catch (err) {
      throw new ConfigError(
        `cannot open the database ${redactDatabaseUrl(databaseUrl)}: ${(err as Error).message} (set ${optionName('databaseUrl')})`,
      );
    }
    try {
      return await work(store);
    } finally {
      await store.close();
    }
  }
  if (!existsSync(path.join(dataDir, DATABASE_FILENAME))) {
    throw new ConfigError(
      `no database in ${dataDir}: start \`gatehouse serve\` there first (set ${optionName('dataDir')})`,
    );
  }
  let store: Store;
  try {
    store = await openSqliteStore({ dataDir, shared: true });
  } catch (err) {
    throw new ConfigError(
      `cannot open the database in ${dataDir}: ${(err as Error).message} (set ${optionName('dataDir')})`,
    );
  }
  try {
    return await work(store);
  } finally {
    await store.close();
  }
}

/** `gatehouse token create --admin`: adds an operator (admin) API token and returns it. */
export async function createAdminToken(location: StoreLocation, name: string): Promise<string> {
  const trimmed = name.trim();
  if (trimmed.length === 0 || trimmed.length > 200) {
    throw new ConfigError('invalid token name: expected 1 to 200 characters (set --name)');
  }
  return withSharedStore(location, async (store) => {
    const { token, record } = await newApiToken(
      { name: trimmed, applicationId: null, role: null, expiresAt: null },
      Date.now(),
    );
    await store.createApiToken(record);
    return token;
  });
}

/** `gatehouse user create`: adds a user (an administrator with `admin`) and returns it. */
export async function createUserOffline(
  location: StoreLocation,
  input: { email: string; password: string; name?: string; admin: boolean },
): Promise<User> {
  const email = normalizeEmail(input.email);
  if (!/^[^\s@]+@[^\s@]+$/.test(email) || email.length > 254) {
    throw new ConfigError(`invalid email "${input.email}" (set --email)`);
  }
  const problem = passwordProblem(input.password);
  if (problem) throw new ConfigError(`invalid password: ${problem} (give it on standard input with --password-stdin)`);
  return withSharedStore(location, async (store) => {
    if (await store.getUserByEmail(email))
      throw new ConfigError(`a user with email ${email} exists already (set --email)`);
    const user = await newUser({ ...input, email }, Date.now());
    await store.createUser(user);
    return publicUser(user);
  });
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
