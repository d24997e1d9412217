/**
 * The platform's core, shared by the broker and the API: the registry, the group-commit write
 * queue, authentication, rate limits, device logs and the event bus. Protocol adapters hold a
 * reference to it and nothing else.
 */
import { authorize, type Principal, principalId } from '../domain/authorization.js';
import { isPeripheralClass } from '../domain/device-class.js';
import {
  DEFAULT_RATE_LIMIT,
  type Device,
  type DeviceLogEntry,
  type DeviceLogKind,
  type DeviceStatus,
  type RateLimit,
} from '../domain/model.js';
import { type MessageLimiter, RateLimiter } from '../domain/rate-limit.js';
import { DEFAULT_TOPIC_PREFIX } from '../domain/topics.js';
import { type Logger, silentLogger } from '../logger.js';
import { type Count, noCounts } from '../ops/instruments.js';
import type { Store, WriteBatch } from '../store/types.js';
import { Accounts } from './accounts.js';
import { type DeviceTokenClaims, looksLikeDeviceToken, signDeviceToken, verifyDeviceToken } from './device-tokens.js';
import { GatehouseError } from './errors.js';
import { type ConnectionEvent, EventBus } from './events.js';
import type { IngestOutcome } from './ingest.js';
import { LogBudget } from './log-budget.js';
import { Registry } from './registry.js';
import { generateSecret, type SecretCheckLimits, type Throttle, VerifiedSecrets } from './secrets.js';
import { WriteQueue, type WriteQueueInstruments } from './write-queue.js';

/** What the platform needs to know about live MQTT connections; the broker provides it. */
export interface Connections {
  isConnected(deviceId: string): boolean;
  /**
   * The client ids a command for `target` would go to now (empty: no route). Asynchronous when
   * the clients may be connected to other nodes (src/cluster/).
   */
  routeCommand(target: Device, preferredGatewayId: string | null): string[] | Promise<string[]>;
  /** Sends a command, once recorded, to the clients of its route that are still there. */
  deliverCommand(target: Device, message: Buffer, route: readonly string[]): void;
  /** Re-checks connected clients after a change that may take rights away. */
  revalidate(change: { deviceId?: string; keyId?: string; applicationId?: string }): void;
}

const NO_CONNECTIONS: Connections = {
  isConnected: () => false,
  routeCommand: () => [],
  deliverCommand: () => {},
  revalidate: () => {},
};

export type DeviceAuthResult =
  | { ok: true; principal: Extract<Principal, { kind: 'device' }> }
  /**
   * `code` is the CONNACK return code: 4 bad user name or password, 5 not authorized, 3 server
   * unavailable when the secret was not checked because failed checks are throttled
   * (`retryAfterMs` says for how long).
   */
  | { ok: false; code: 3 | 4 | 5; reason: string; device?: Device; retryAfterMs?: number };

export interface ConnectionInfo {
  connected: 1 | 0 | null;
  time: number | null;
}

export interface PlatformOptions {
  store: Store;
  clock?: () => number;
  topicPrefix?: string;
  /** The operator log (default: silent). */
  logger?: Logger;
  /** Limits on secret checks that need hashing (tests lower them). */
  secretCheckLimits?: Partial<SecretCheckLimits>;
  /**
   * Whether other nodes share the store and hold connections of their own (nodes sharing Redis):
   * then a starting node must not mark every device offline, as a lone server does.
   */
  sharedConnections?: boolean;
  /** What messages and commands are counted with (default: this process's own counters). */
  limiter?: MessageLimiter;
  /** What failed secret checks are counted with, per credential and per address (default: this process's own). */
  secretFailures?: { credential: MessageLimiter; address: MessageLimiter };
  /** What the group commit and command routing count with (src/ops/metrics.ts); default: nothing. */
  instruments?: { writes: WriteQueueInstruments; commandRoutes: Record<CommandRoute, Count> };
}

/** Where a recorded command went: the peripheral's last reporter, every allowed receiver, or nobody. */
export const COMMAND_ROUTES = ['lastReporter', 'candidates', 'none'] as const;
export type CommandRoute = (typeof COMMAND_ROUTES)[number];

const TOKEN_SECRET_SETTING = 'deviceTokenSecret';
/**
 * Commands sent by one user, API token or workflow (docs/decisions.md, "Commands"); a device
 * token counts against its device's message limit instead.
 */
export const API_COMMAND_LIMIT: RateLimit = { messages: 1_000, windowSeconds: 10 };
/** How often ended rate-limit windows are forgotten and log suppressions summarized. */
const SWEEP_INTERVAL_MS = 15_000;
function retryIn(throttle: Throttle): string {
  return `${throttle.reason}; try again in ${Math.ceil(throttle.retryAfterMs / 1000)} s`;
}

export class Platform {
  readonly store: Store;
  readonly registry: Registry;
  readonly writes: WriteQueue;
  readonly bus: EventBus;
  readonly limiter: MessageLimiter;
  readonly topicPrefix: string;
  readonly clock: () => number;
  readonly logger: Logger;
  readonly accounts: Accounts;
  /** Commands recorded, by route (core/commands.ts). */
  readonly commandRoutes: Record<CommandRoute, Count>;
  private connections: Connections = NO_CONNECTIONS;
  private readonly verified: VerifiedSecrets;
  private readonly logBudget = new LogBudget();
  private readonly lastReports = new Map<string, { by: string; time: number }>();
  private readonly lastReceiveTimes = new Map<string, number>();
  /** Peripherals counted as connected (connection events), by the gateway their status follows. */
  private readonly peripheralsVia = new Map<string, Map<string, number>>();
  private readonly peripheralGateway = new Map<string, string>();
  private tokenSecret = '';
  /** A device-token secret made by this start, saved by `commitStart`. */
  private unsavedTokenSecret = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly sharedConnections: boolean;

  constructor(options: PlatformOptions) {
    this.sharedConnections = options.sharedConnections === true;
    this.limiter = options.limiter ?? new RateLimiter();
    this.store = options.store;
    this.clock = options.clock ?? Date.now;
    this.topicPrefix = options.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
    this.logger = options.logger ?? silentLogger;
    this.verified = new VerifiedSecrets({
      ...(options.secretCheckLimits ? { limits: options.secretCheckLimits } : {}),
      ...(options.secretFailures ? { failures: options.secretFailures } : {}),
    });
    this.bus = new EventBus((err, busEvent) =>
      this.logger.error({ component: 'core', event: 'listenerFailed', busEvent, err }, 'event listener failed'),
    );
    this.registry = new Registry(this.store, this.clock);
    this.writes = new WriteQueue(this.store, {
      onCommitted: (b) => this.announce(b),
      onError: (err) => this.logger.error({ component: 'core', event: 'commitFailed', err }, 'group commit failed'),
      ...(options.instruments ? { instruments: options.instruments.writes } : {}),
    });
    this.commandRoutes = options.instruments?.commandRoutes ?? noCounts(COMMAND_ROUTES);
    this.accounts = new Accounts(this.store, this.verified, this.clock);
    this.registry.onRevocation((change) => {
      if (change.keyId) this.verified.forget(change.keyId);
      if (change.applicationId) this.accounts.applicationDeleted(change.applicationId);
      this.connections.revalidate(change);
    });
  }

  /**
   * Loads what the platform needs. New data (a device-token secret, the first API token) is
   * written by `commitStart`, once start-up has succeeded (docs/decisions.md).
   */
  async start(): Promise<void> {
    const secret = await this.store.getSetting(TOKEN_SECRET_SETTING);
    this.tokenSecret = secret || generateSecret(48);
    this.unsavedTokenSecret = !secret;
    // Nobody is connected to a process that is only starting (the data directory is locked to
    // this server): clear what a crash left behind. A later start would do the same. A node
    // joining others leaves that to the sweep after a dead node (src/cluster/node-sweep.ts).
    if (!this.sharedConnections) await this.store.resetConnections(this.clock());
    await this.accounts.start();
    this.sweepTimer = setInterval(() => this.sweep(), SWEEP_INTERVAL_MS);
    this.sweepTimer.unref();
  }

  /** Waits for every pending write; the store stays open. */
  async drain(): Promise<void> {
    await this.writes.drain();
  }

  async stop(): Promise<void> {
    clearInterval(this.sweepTimer);
    this.log(this.logBudget.sweep(Number.MAX_SAFE_INTEGER));
    await this.writes.drain();
    await this.store.close();
  }

  attachConnections(connections: Connections): void {
    this.connections = connections;
  }

  get live(): Connections {
    return this.connections;
  }

  // Credentials

  /**
   * The end of start-up, once every listener is up: saves a device-token secret made by
   * `start`, and creates the first API token when there is none: `fromEnv` when given,
   * otherwise a random one, which is returned so it can be printed once. A start that failed
   * before this point has written neither, so the next one creates (and prints) the token.
   */
  async commitStart(fromEnv: string | undefined): Promise<string | undefined> {
    if (this.unsavedTokenSecret) {
      await this.store.setSetting(TOKEN_SECRET_SETTING, this.tokenSecret);
      this.unsavedTokenSecret = false;
    }
    if (await this.accounts.hasAdminToken()) return undefined;
    const { token } = await this.accounts.createToken(
      { name: 'admin', applicationId: null, role: null, expiresAt: null },
      fromEnv,
    );
    return fromEnv ? undefined : token;
  }

  /**
   * The principal behind an `Authorization` header; 401 when there is none or it is unknown,
   * 429 when it would need a scrypt check while failed checks are throttled. `remoteAddress`
   * is the caller's, for the per-address limit.
   */
  async authenticateBearer(header: string | undefined, remoteAddress?: string): Promise<Principal> {
    const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match?.[1]) throw new GatehouseError('Unauthorized', 'missing or malformed Authorization: Bearer header');
    const token = match[1];
    if (looksLikeDeviceToken(token)) {
      const claims = verifyDeviceToken(token, this.tokenSecret, this.clock());
      if (!claims) throw new GatehouseError('Unauthorized', 'device token is invalid or expired');
      const [device, key] = await Promise.all([this.registry.device(claims.sub), this.registry.keyById(claims.key)]);
      if (!device || !key)
        throw new GatehouseError('Unauthorized', 'device token names a device or key that no longer exists');
      const principal: Principal = { kind: 'device', device, key };
      const decision = authorize(principal, { type: 'connect' });
      if (!decision.allow) throw new GatehouseError('Unauthorized', decision.reason);
      return principal;
    }
    return this.accounts.authenticateToken(token, remoteAddress);
  }

  /**
   * Checks MQTT CONNECT credentials (client id, username, password) or `POST /auth/device`.
   * `remoteAddress` is the client's, for the per-address limit on failed checks.
   */
  async authenticateDevice(
    deviceId: string,
    keyString: string,
    secret: string,
    remoteAddress?: string | null,
  ): Promise<DeviceAuthResult> {
    const key = keyString ? await this.registry.keyByKey(keyString) : undefined;
    if (!key) return { ok: false, code: 4, reason: 'unknown access key' };
    const check = await this.verified.verify(`key:${key.id}`, secret, [{ id: key.id, hash: key.secretHash }], {
      address: remoteAddress ?? null,
      label: 'access key',
    });
    if (!check.ok) {
      const device = await this.registry.device(deviceId);
      const sameApp = device && device.applicationId === key.applicationId ? { device } : {};
      if (check.throttled) {
        return {
          ok: false,
          code: 3,
          reason: retryIn(check.throttled),
          retryAfterMs: check.throttled.retryAfterMs,
          ...sameApp,
        };
      }
      return { ok: false, code: 4, reason: 'wrong access secret', ...sameApp };
    }
    const device = await this.registry.device(deviceId);
    if (!device || device.applicationId !== key.applicationId) {
      return { ok: false, code: 5, reason: `device ${deviceId} not found in the key's application` };
    }
    await this.registry.application(device.applicationId); // warms the cache the hot path reads
    const principal = { kind: 'device' as const, device, key };
    const decision = authorize(principal, { type: 'connect' });
    if (!decision.allow) return { ok: false, code: 5, reason: decision.reason, device };
    return { ok: true, principal };
  }

  issueDeviceToken(principal: Extract<Principal, { kind: 'device' }>, ttlSeconds: number): string {
    const iat = Math.floor(this.clock() / 1000);
    const claims: DeviceTokenClaims = {
      sub: principal.device.id,
      app: principal.device.applicationId,
      key: principal.key.id,
      iat,
      exp: iat + ttlSeconds,
    };
    return signDeviceToken(claims, this.tokenSecret);
  }

  // Rate limits (spec: MQTT, rate limit)

  /**
   * Counts one message from `principal`. A gateway's message for a peripheral counts against
   * that peripheral; everything else (own state, refused publishes) against the sender.
   * Returns whose limit is exceeded, if any. API tokens are not limited.
   */
  countMessage(principal: Principal, target: Device | undefined, now: number): 'device' | 'peripheral' | undefined {
    if (principal.kind !== 'device') return undefined;
    const actor = principal.device;
    const limit = this.registry.applicationCached(actor.applicationId)?.rateLimit ?? DEFAULT_RATE_LIMIT;
    const { key, whose } = this.limitKey(actor, target);
    return this.limiter.hit(key, limit, now) ? undefined : whose;
  }

  /** Whole seconds until the counter `countMessage` uses for this message starts afresh. */
  retryAfterSeconds(principal: Principal, target: Device | undefined, now: number): number {
    if (principal.kind !== 'device') return 0;
    return this.limiter.retryAfterSeconds(this.limitKey(principal.device, target).key, now);
  }

  /** The rate-limit counter of a message: the peripheral's when a gateway sends for one, else the sender's. */
  private limitKey(actor: Device, target: Device | undefined): { key: string; whose: 'device' | 'peripheral' } {
    return target && target.id !== actor.id
      ? { key: `p:${target.id}`, whose: 'peripheral' }
      : { key: `d:${actor.id}`, whose: 'device' };
  }

  /**
   * Counts one command request against its sender: a device token against the device's own
   * message limit (the one its MQTT messages count against), anyone else (user, API token,
   * workflow) against API_COMMAND_LIMIT of their own. Throws 429 past the limit.
   */
  countCommand(principal: Principal, now: number): void {
    const [key, limit] =
      principal.kind === 'device'
        ? [
            this.limitKey(principal.device, undefined).key,
            this.registry.applicationCached(principal.device.applicationId)?.rateLimit ?? DEFAULT_RATE_LIMIT,
          ]
        : [`c:${principalId(principal)}`, API_COMMAND_LIMIT];
    if (!this.limiter.hit(key, limit, now)) {
      throw new GatehouseError(
        'RateLimited',
        `Rate limit exceeded: at most ${limit.messages} commands per ${limit.windowSeconds} s from this sender`,
        { retryAfterSeconds: Math.max(1, this.limiter.retryAfterSeconds(key, now)) },
      );
    }
  }

  // Device logs

  logEntry(device: Device, kind: DeviceLogKind, details: Record<string, unknown>): DeviceLogEntry {
    return { deviceId: device.id, applicationId: device.applicationId, time: this.clock(), kind, details };
  }

  /** Writes log entries, within each device's log budget (log-budget.ts). */
  log(entries: DeviceLogEntry[]): void {
    const admitted = this.admitLogs(entries);
    if (admitted.length > 0) void this.writes.enqueue({ logs: admitted });
  }

  /** The entries within their devices' log budgets, for callers that enqueue them with other writes. */
  admitLogs(entries: DeviceLogEntry[]): DeviceLogEntry[] {
    return entries.length === 0 ? entries : this.logBudget.admit(entries, this.clock());
  }

  private sweep(): void {
    const now = this.clock();
    this.accounts.sweep().catch((err: unknown) => this.logger.error({ err }, 'removing expired sessions failed'));
    this.limiter.sweep(now);
    this.expirePeripherals(now);
    this.log(this.logBudget.sweep(now));
  }

  /**
   * Refuses a message: logs the reason on the sender and, when it exists in the same
   * application, on the device the message was for. Nothing else is written.
   */
  reject(
    req: { principal: Principal; via: 'mqtt' | 'rest'; topic?: string },
    target: Device | undefined,
    status: 400 | 401 | 403 | 404 | 413 | 429,
    reason: string,
    extraLogs: DeviceLogEntry[] = [],
    suggestion?: string,
  ): Extract<IngestOutcome, { ok: false }> {
    const details = {
      via: req.via,
      status,
      reason,
      ...(req.topic ? { topic: req.topic } : {}),
      ...(suggestion ? { suggestion } : {}),
    };
    const entries = [...extraLogs];
    const actor = req.principal.kind === 'device' ? req.principal.device : undefined;
    if (actor)
      entries.push(this.logEntry(actor, 'rejected', { ...details, ...(target ? { deviceId: target.id } : {}) }));
    if (target && target.id !== actor?.id && (!actor || target.applicationId === actor.applicationId)) {
      entries.push(this.logEntry(target, 'rejected', { ...details, ...(actor ? { reportedBy: actor.id } : {}) }));
    }
    this.log(entries);
    return { ok: false, status, reason };
  }

  /** The receive time for a state without one: never equal to the device's previous one. */
  nextReceiveTime(deviceId: string, receivedAt: number): number {
    const last = this.lastReceiveTimes.get(deviceId);
    const time = last !== undefined && last >= receivedAt ? last + 1 : receivedAt;
    this.lastReceiveTimes.set(deviceId, time);
    return time;
  }

  // Status

  noteReport(device: Device, actor: Device | undefined, time: number): void {
    if (actor) this.lastReports.set(device.id, { by: actor.id, time });
  }

  /** The gateway that last reported for a peripheral, from memory or the store. */
  async lastReporter(deviceId: string): Promise<{ by: string; time: number } | undefined> {
    const known = this.lastReports.get(deviceId);
    if (known) return known;
    const status = (await this.store.getDeviceStatuses([deviceId])).get(deviceId);
    if (status?.lastReportedBy && status.lastReportedAt !== null) {
      return { by: status.lastReportedBy, time: status.lastReportedAt };
    }
    return undefined;
  }

  /**
   * `connectionInfo` and `lastReportedBy` for devices. A peripheral's connection is derived:
   * connected while the gateway that last reported for it is connected and its last report is
   * within the application's peripheral timeout (spec: Devices).
   */
  async statusOf(devices: Device[]): Promise<Map<string, { connectionInfo: ConnectionInfo; status: DeviceStatus }>> {
    const statuses = await this.store.getDeviceStatuses(devices.map((d) => d.id));
    const now = this.clock();
    const out = new Map<string, { connectionInfo: ConnectionInfo; status: DeviceStatus }>();
    for (const device of devices) {
      const stored = statuses.get(device.id);
      const memory = this.lastReports.get(device.id);
      const status: DeviceStatus = {
        deviceId: device.id,
        connected: stored?.connected ?? null,
        connectionTime: stored?.connectionTime ?? null,
        lastReportedBy: memory?.by ?? stored?.lastReportedBy ?? null,
        lastReportedAt: memory?.time ?? stored?.lastReportedAt ?? null,
        inactiveSince: stored?.inactiveSince ?? null,
      };
      let connectionInfo: ConnectionInfo;
      if (isPeripheralClass(device.deviceClass)) {
        if (!status.lastReportedBy || status.lastReportedAt === null) {
          connectionInfo = { connected: null, time: null };
        } else {
          const app = await this.registry.application(device.applicationId);
          const timeoutMs = (app?.peripheralTimeoutSeconds ?? 0) * 1000;
          const live = this.connections.isConnected(status.lastReportedBy) && now - status.lastReportedAt <= timeoutMs;
          connectionInfo = { connected: live ? 1 : 0, time: status.lastReportedAt };
        }
      } else {
        connectionInfo = {
          connected: status.connected === null ? null : status.connected ? 1 : 0,
          time: status.connectionTime,
        };
      }
      out.set(device.id, { connectionInfo, status });
    }
    return out;
  }

  /**
   * A device's own connection change, committed: announced on the bus. A gateway's disconnect
   * also disconnects, once each, the peripherals whose status followed it.
   */
  connectionCommitted(device: Device, change: Omit<ConnectionEvent, 'deviceId' | 'applicationId'>): void {
    this.bus.emit('connection', { deviceId: device.id, applicationId: device.applicationId, ...change });
    if (change.connected) return;
    const followers = this.peripheralsVia.get(device.id);
    if (!followers) return;
    this.peripheralsVia.delete(device.id);
    for (const [peripheralId, lastReport] of followers) {
      this.peripheralGateway.delete(peripheralId);
      const peripheral = this.registry.deviceCached(peripheralId);
      if (!peripheral || !this.withinPeripheralTimeout(peripheral, lastReport, change.time)) continue;
      this.bus.emit('connection', {
        deviceId: peripheralId,
        applicationId: peripheral.applicationId,
        connected: false,
        time: change.time,
        reason: 'gateway disconnected',
        gatewayId: device.id,
      });
    }
  }

  /**
   * Peripherals counted as connected whose last report is past their application's peripheral
   * timeout: each is disconnected once (`reason: "peripheral timeout"`). Runs with the sweep.
   * A gateway's followers are kept in the order of their last report (a report moves its
   * peripheral to the end), and share the gateway's application and so its timeout: the walk
   * stops at the first one still within it. At fleet scale a walk of every follower held the
   * event loop for tens of milliseconds every sweep. Reports committed a few milliseconds out of
   * order can leave an expired follower behind a live one; the next sweep takes it.
   */
  expirePeripherals(now = this.clock()): void {
    for (const [gatewayId, followers] of this.peripheralsVia) {
      for (const [peripheralId, lastReport] of followers) {
        const peripheral = this.registry.deviceCached(peripheralId);
        if (peripheral && this.withinPeripheralTimeout(peripheral, lastReport, now)) break;
        followers.delete(peripheralId);
        this.peripheralGateway.delete(peripheralId);
        if (peripheral) this.peripheralTimedOut(peripheral, gatewayId, now);
      }
      if (followers.size === 0) this.peripheralsVia.delete(gatewayId);
    }
  }

  private peripheralTimedOut(peripheral: Device, gatewayId: string, time: number): void {
    this.bus.emit('connection', {
      deviceId: peripheral.id,
      applicationId: peripheral.applicationId,
      connected: false,
      time,
      reason: 'peripheral timeout',
      gatewayId,
    });
  }

  private withinPeripheralTimeout(peripheral: Device, lastReport: number, now: number): boolean {
    const app = this.registry.applicationCached(peripheral.applicationId);
    return now - lastReport <= (app?.peripheralTimeoutSeconds ?? 0) * 1000;
  }

  /** Committed reports of peripherals through gateways: the first through a connected gateway is a connect. */
  private announcePeripheralReports(batch: WriteBatch): void {
    for (const report of batch.reports) {
      if (report.reportedBy === report.deviceId) continue;
      const peripheral = this.registry.deviceCached(report.deviceId);
      if (!peripheral || !isPeripheralClass(peripheral.deviceClass)) continue;
      const gatewayId = report.reportedBy;
      if (!this.connections.isConnected(gatewayId)) continue;
      const previousGateway = this.peripheralGateway.get(peripheral.id);
      const previousTime = previousGateway ? this.peripheralsVia.get(previousGateway)?.get(peripheral.id) : undefined;
      const wasConnected =
        previousGateway !== undefined &&
        previousTime !== undefined &&
        this.connections.isConnected(previousGateway) &&
        this.withinPeripheralTimeout(peripheral, previousTime, report.time);
      // Timed out before the sweep saw it: its disconnect comes before this connect.
      if (previousGateway && previousTime !== undefined && !wasConnected) {
        this.peripheralTimedOut(peripheral, previousGateway, report.time);
      }
      if (previousGateway && previousGateway !== gatewayId)
        this.peripheralsVia.get(previousGateway)?.delete(peripheral.id);
      const followers = this.peripheralsVia.get(gatewayId) ?? new Map<string, number>();
      this.peripheralsVia.set(gatewayId, followers);
      const last = Math.max(report.time, followers.get(peripheral.id) ?? 0);
      // To the end: followers stay in the order of their last report (see expirePeripherals).
      followers.delete(peripheral.id);
      followers.set(peripheral.id, last);
      this.peripheralGateway.set(peripheral.id, gatewayId);
      if (!wasConnected) {
        this.bus.emit('connection', {
          deviceId: peripheral.id,
          applicationId: peripheral.applicationId,
          connected: true,
          time: report.time,
          gatewayId,
        });
      }
    }
  }

  private announce(batch: WriteBatch): void {
    if (batch.reports.length > 0) this.announcePeripheralReports(batch);
    if (this.bus.hasListeners('state')) this.announceStates(batch);
    for (const command of batch.commands) this.bus.emit('command', command);
    if (this.bus.hasListeners('deviceLog')) for (const entry of batch.logs) this.bus.emit('deviceLog', entry);
  }

  private announceStates(batch: WriteBatch): void {
    for (const state of batch.states) {
      const applicationId = this.registry.deviceCached(state.deviceId)?.applicationId;
      // Written out rather than spread: this runs for every stored state.
      if (applicationId) {
        this.bus.emit('state', {
          deviceId: state.deviceId,
          time: state.time,
          data: state.data,
          reportedBy: state.reportedBy,
          applicationId,
        });
      }
    }
  }
}
