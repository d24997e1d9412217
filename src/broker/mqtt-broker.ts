/**
 * The MQTT side (docs/protocol.md, "MQTT"). Aedes handles the protocol; the hooks here stay thin
 * and ask the platform: credentials in `authenticate`, the authorization rule on every publish,
 * subscribe and delivery, state through the shared ingest path. Facts about aedes 1.2 this
 * relies on are in docs/aedes.md.
 */
import type { IncomingMessage } from 'node:http';
import { commandTopic, encodeErrorNotice, errorTopic, parseTopic } from '@gatehouse/wire';
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type PublishPacket,
  type Subscription,
} from 'aedes';
import type { BrokerEmitter } from '../cluster/custom-topic-emitter.js';
import type { ConnectionOwnership } from '../cluster/ownership.js';
import type { SharedSessionStore, StoredWill } from '../cluster/shared-sessions.js';
import { type IngestOutcome, ingestState } from '../core/ingest.js';
import type { Connections, Platform } from '../core/platform.js';
import { authorize, type Principal } from '../domain/authorization.js';
import type { Device } from '../domain/model.js';
import { MAX_PAYLOAD_BYTES } from '../domain/state.js';
import { hasWildcard } from '../domain/topics.js';
import type { Logger } from '../logger.js';
import {
  type BoundedPersistence,
  boundedMemoryPersistence,
  boundedPersistence,
  DEFAULT_QUEUE_LIMITS,
  QueueAccounting,
  type QueuedPacket,
  type QueueLimits,
  type QueueReplay,
} from './bounded-persistence.js';
import { outboundBytes, PacketSizeGuard, WriteHolds } from './connection-guard.js';
import {
  DEFAULT_RETAINED_LIMITS,
  type RetainedBounds,
  RetainedBudget,
  type RetainedLimits,
  scopeTopic,
  unscopeTopic,
} from './custom-topics.js';
import {
  type BrokerInstruments,
  disconnectCategory,
  MQTT_REFUSALS,
  type MqttRefusal,
  NO_BROKER_INSTRUMENTS,
  NOTABLE_DISCONNECTS,
} from './instruments.js';
import { type Session, SessionTable } from './sessions.js';

/** Refused publishes are re-pointed here: no client can subscribe to `$` topics [MQTT-4.7.2-1]. */
const SINK_TOPIC = '$gatehouse/refused';

/** What may wait to be sent to one client before it counts as a slow consumer and is disconnected. */
export const DEFAULT_MAX_OUTBOUND_BYTES = 4 * 1024 * 1024;
/** Messages aedes' emitter serves at once (its default is 100), for all clients and topics. */
const EMITTER_CONCURRENCY = 1_000;
/** Deliveries a backed-up connection may hold, and all of them together: half the emitter. */
const HOLDS_PER_CONNECTION = 4;
const HOLDS_TOTAL = EMITTER_CONCURRENCY / 2;

export interface BrokerLimits {
  maxOutboundBytes: number;
  queue: QueueLimits;
  retained: RetainedLimits;
}

const DEFAULT_LIMITS: BrokerLimits = {
  maxOutboundBytes: DEFAULT_MAX_OUTBOUND_BYTES,
  queue: DEFAULT_QUEUE_LIMITS,
  retained: DEFAULT_RETAINED_LIMITS,
};

type Connection = Parameters<Aedes['handle']>[0];
type Done = (err?: Error | null) => void;
type DevicePrincipal = Session['principal'];

/** [MQTT-1.5.3-2]: a string holding U+0000 ends the connection. */
const hasNul = (s: string): boolean => s.includes('\u0000');

/** The CONNACK return code of each refused CONNECT's category. */
const CONNACK_REFUSALS: Record<2 | 3 | 4 | 5, MqttRefusal> = {
  2: 'IdentifierRejected',
  3: 'Throttled',
  4: 'BadCredentials',
  5: 'NotAuthorized',
};

/** The refusal category of a state publish the ingest path refused, by its status. */
const INGEST_REFUSALS: Record<400 | 401 | 403 | 404 | 413 | 429, MqttRefusal> = {
  400: 'Validation',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  413: 'PayloadTooLarge',
  429: 'RateLimited',
};

/** Publish refusals the broker decides itself, each with the status of MQTT_REFUSALS. */
type PublishRefusal = 'InvalidTopic' | 'ReservedTopic' | 'Forbidden' | 'PayloadTooLarge' | 'RetainedBudget';

/** How long a resuming persistent session waits for its previous connection on another node to close. */
const PREVIOUS_CLOSE_MS = 1_000;
/** How long after its queue was read a resumed session's live messages are still checked against it. */
const REPLAY_GRACE_MS = 5_000;
/** Messages remembered per resumed session for that check; past this, it stops. */
const REPLAY_KEYS = 5_000;

/** Messages queued before their PUBACK and not yet routed by aedes; past this, the memory is reset. */
const QUEUED_EARLY_KEYS = 10_000;

/** What identifies one published message on every node: the broker that took it and its number there. */
const messageKey = (packet: QueuedPacket): string => `${packet.brokerId}:${packet.brokerCounter}`;

/** What a log line may quote of a client-chosen string (a user name): its start. */
const LOGGED_CHARS = 100;

export class MqttBroker implements Connections {
  readonly sessions = new SessionTable();
  private aedes!: Aedes;
  private readonly prefix: string;
  private readonly log: Logger;
  private readonly limits: BrokerLimits;
  private readonly holds = new WriteHolds(HOLDS_PER_CONNECTION, HOLDS_TOTAL);
  private readonly retained: RetainedBounds;
  private readonly persistence: BoundedPersistence;
  private readonly sessionStore: SharedSessionStore | undefined;
  /** Sessions with bytes authorized this turn; their counters are reset on the next. */
  private readonly unflushed = new Set<Session>();
  private unflushedReset = false;
  /** Connections whose CONNECT was refused and logged: aedes' own error for them is not logged again. */
  private readonly refusedConnects = new WeakSet<Client>();
  /** Releases of devices under way (nodes sharing Redis): `close` waits for their writes to be queued. */
  private readonly releasing = new Set<Promise<void>>();
  /**
   * QoS 1 custom messages queued for persistent sessions before their PUBACK (nodes sharing
   * Redis), by messageKey: aedes' own enqueue of them, after the PUBACK, is skipped.
   */
  private readonly queuedEarly = new Set<string>();
  /** Superseded connections whose CONNACK is not written yet: closed once it is. */
  private readonly closeAfterConnack = new WeakSet<Client>();
  private readonly ownership: ConnectionOwnership | undefined;
  /** This node's id among nodes sharing Redis: aedes' broker id, under which the wills of its clients are stored. */
  private readonly nodeId: string | undefined;
  private readonly emitter: ((concurrency: number) => BrokerEmitter) | undefined;
  /** The queue of a resumed session leaves out what reached it live already (the reconnect race). */
  private readonly replay: QueueReplay = {
    skip: (client, packet) => this.sessions.of(client as Client)?.replayed?.has(messageKey(packet)) ?? false,
    ended: (client) => {
      const session = this.sessions.of(client as Client);
      if (!session?.replayed) return;
      setTimeout(() => {
        session.replayed = null;
      }, REPLAY_GRACE_MS).unref();
    },
    keep: (client, packet) => {
      const { messageId } = packet;
      return messageId !== undefined && (this.sessions.of(client as Client)?.keptQueued?.delete(messageId) ?? false);
    },
  };

  constructor(
    private readonly platform: Platform,
    limits: Partial<BrokerLimits> = {},
    private readonly instruments: BrokerInstruments = NO_BROKER_INSTRUMENTS,
    /**
     * When nodes share Redis: which node holds which device, the emitter that carries custom
     * topics between nodes, and the session store that keeps persistent sessions and retained
     * messages in Redis (src/cluster/). None on a single node.
     */
    shared: {
      nodeId?: string;
      ownership?: ConnectionOwnership;
      emitter?: (concurrency: number) => BrokerEmitter;
      sessions?: SharedSessionStore;
    } = {},
  ) {
    this.ownership = shared.ownership;
    this.nodeId = shared.nodeId;
    this.emitter = shared.emitter;
    this.sessionStore = shared.sessions;
    this.prefix = platform.topicPrefix;
    this.log = platform.logger.child({ component: 'mqtt' });
    this.limits = { ...DEFAULT_LIMITS, ...limits };
    const onQueueFull = (clientId: string, queue: QueueLimits) => this.onQueueFull(clientId, queue);
    // One bounding layer for both backends (bounded-persistence.ts); with Redis, the bounds are
    // counted in Redis, since a queue filled on one node may be emptied on another.
    if (this.sessionStore) {
      this.retained = this.sessionStore.retained(this.limits.retained);
      this.persistence = boundedPersistence(
        this.sessionStore.persistence,
        this.sessionStore.queues(this.limits.queue, onQueueFull),
        { dropsQueueWithSubscriptions: true, replay: this.replay },
      );
      // A will is stored with the access key its client connected with: if this node dies, the
      // node that publishes the will in its place authorizes it with that key (publishWillsOf).
      const wills = this.persistence as unknown as { putWill(client: Client, packet: object): Promise<unknown> };
      const putWill = wills.putWill.bind(wills);
      wills.putWill = (client, packet) => {
        const session = this.sessions.of(client);
        if (session) Object.assign(packet, { keyId: session.principal.key.id });
        return putWill(client, packet);
      };
      // A QoS 1 custom message is queued before its PUBACK (queueEarly); aedes queues it again
      // once acknowledged, which is skipped.
      const queues = this.persistence as unknown as {
        outgoingEnqueueCombi(subs: unknown[], packet: QueuedPacket, cb?: Done): Promise<void> | undefined;
      };
      const enqueue = queues.outgoingEnqueueCombi.bind(queues);
      queues.outgoingEnqueueCombi = (subs, packet, cb) => {
        if (!this.queuedEarly.delete(messageKey(packet))) return enqueue(subs, packet, cb);
        if (!cb) return Promise.resolve();
        cb(null);
        return undefined;
      };
    } else {
      this.retained = new RetainedBudget(this.limits.retained);
      this.persistence = boundedMemoryPersistence(new QueueAccounting(this.limits.queue, onQueueFull), this.replay);
    }
  }

  async start(): Promise<void> {
    const mq = this.emitter?.(EMITTER_CONCURRENCY);
    await mq?.ready?.();
    this.aedes = new Aedes({
      ...(this.nodeId ? { id: this.nodeId } : {}),
      persistence: this.persistence,
      ...(mq ? { mq } : {}),
      // 24-hex device ids exceed MQTT 3.1's 23 characters; 3.1.1 has no such limit.
      maxClientsIdLength: 64,
      heartbeatInterval: 60_000,
      concurrency: EMITTER_CONCURRENCY,
      // A backed-up client holds few deliveries (connection-guard.ts) and is bounded by
      // maxOutboundBytes; this ends the holds of one that stays stuck below that bound.
      drainTimeout: 30_000,
      authenticate: (client, username, password, done) => {
        this.authenticate(client, username, password).then(
          (error) => done(error, error === null),
          (err: Error) => {
            this.refusedConnect(client, username, 3, 'InternalError', 'server error', err);
            done(Object.assign(err, { returnCode: 3 }) as AuthenticateError, false);
          },
        );
      },
      authorizePublish: (client, packet, done) => this.authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => {
        this.authorizeSubscribe(client, sub).then(
          (granted) => done(null, granted),
          (err: Error) => done(err),
        );
      },
      authorizeForward: (client, packet) => this.authorizeForward(client, packet),
    });
    skipSinkRouting(this.aedes);
    // aedes reports a failed offline enqueue or will sweep on itself; without a listener that
    // would end the process (it can happen while the session store's Redis is away).
    (this.aedes as unknown as NodeJS.EventEmitter).on('error', (err: Error) =>
      this.log.error({ event: 'brokerError', err }, 'broker error'),
    );
    await this.aedes.listen();
    this.aedes.on('client', (client) => this.onRegistered(client));
    this.aedes.on('clientDisconnect', (client) => this.onDisconnected(client));
    this.aedes.on('keepaliveTimeout', (client) => this.closeReason(client, 'Keep-alive timeout'));
    this.aedes.on('clientError', (client, err) =>
      this.closeReason(client, err.message === 'drain timeout' ? 'Slow consumer: nothing read for 30 s' : err.message),
    );
    this.aedes.on('connectionError', (client, err) => {
      if (this.refusedConnects.has(client)) return;
      this.log.info(
        { event: 'closedBeforeConnack', ipAddress: remoteAddress(client), reason: err.message },
        'connection closed before CONNACK',
      );
    });
    this.aedes.on('unsubscribe', (topics, client) => this.onUnsubscribed(client, topics));
    this.aedes.on('connackSent', (_packet, client) => {
      const session = this.closeAfterConnack.has(client) ? this.sessions.of(client) : undefined;
      if (session) this.disconnect(session, 'Duplicate client id');
    });
    this.platform.attachConnections(this);
  }

  /**
   * Hands a connection (TCP socket, TLS socket or WebSocket stream) to the broker; `clientAddress`
   * is the client's address when a trusted load balancer told it (PROXY protocol, X-Forwarded-For).
   */
  handle(stream: Connection, request?: IncomingMessage, clientAddress?: string): void {
    this.holds.wrap(stream as unknown as Parameters<WriteHolds['wrap']>[0]);
    const client = this.aedes.handle(stream, request);
    if (clientAddress) clientAddresses.set(client, clientAddress);
    new PacketSizeGuard(client);
  }

  /** Disconnects every client (reason `Server shutting down`) and stops the broker. */
  async close(): Promise<void> {
    if (!this.aedes || this.aedes.closed) return;
    for (const session of this.sessions.all()) session.closeReason ??= 'Server shutting down';
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    await Promise.allSettled([...this.releasing]);
    await this.sessionStore?.close();
  }

  get connectedClients(): number {
    return this.aedes.connectedClients;
  }

  /** Authenticated connections by the class of their device (the connections gauge). */
  connectedByClass(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const { principal } of this.sessions.all()) {
      const deviceClass = principal.device.deviceClass;
      counts.set(deviceClass, (counts.get(deviceClass) ?? 0) + 1);
    }
    return counts;
  }

  /** Retained messages an application holds (tests and diagnostics). */
  async retainedUsage(applicationId: string): Promise<{ messages: number; bytes: number }> {
    return await this.retained.usage(applicationId);
  }

  // Connections (used by the platform)

  isConnected(deviceId: string): boolean {
    return this.sessions.current(deviceId) !== undefined;
  }

  /**
   * Where a command for `target` should go: the gateway that last reported for a peripheral when
   * it is connected and subscribed; otherwise every connected, subscribed client that may act for
   * it (docs/protocol.md, "Commands"). Rights are checked with the current definitions.
   */
  routeCommand(target: Device, preferredGatewayId: string | null): string[] {
    const allowed = this.commandReceivers(target);
    const preferred = allowed.find((s) => s.deviceId === preferredGatewayId);
    return (preferred ? [preferred] : allowed).map((s) => s.deviceId);
  }

  /** Sends a recorded command along its route, to those still connected and allowed. */
  deliverCommand(target: Device, message: Buffer, route: readonly string[]): void {
    const topic = commandTopic(target.id, this.prefix);
    for (const session of this.commandReceivers(target)) {
      if (!route.includes(session.deviceId)) continue;
      session.messagesToClient++;
      this.send(session, topic, message, session.commandSubscriptions?.get(target.id) ?? 0);
    }
  }

  revalidate(change: { deviceId?: string; keyId?: string; applicationId?: string }): void {
    for (const session of this.sessions.all()) {
      const { device, key } = session.principal;
      if (device.id !== change.deviceId && key.id !== change.keyId && device.applicationId !== change.applicationId) {
        continue;
      }
      const gone = !this.platform.registry.deviceCached(device.id)
        ? 'Device deleted'
        : !this.platform.registry.keyCached(key.id)
          ? 'Access key deleted'
          : null;
      const principal = this.currentPrincipal(session);
      const decision = gone || !principal ? null : authorize(principal, { type: 'connect' });
      if (gone || !principal || (decision && !decision.allow)) {
        session.revoked = true;
        this.disconnect(session, gone ?? `Not authorized: ${(decision as { reason: string }).reason}`);
      } else {
        session.principal = principal;
      }
    }
    if (change.applicationId && !this.platform.registry.applicationCached(change.applicationId)) {
      this.dropRetained(change.applicationId);
    }
  }

  // Hooks

  /** Resolves null when the client may connect, or the error that refuses it (CONNACK 3, 4 or 5). */
  private async authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
  ): Promise<AuthenticateError | null> {
    const ipAddress = remoteAddress(client);
    if (hasNul(client.id) || (username !== undefined && hasNul(username))) {
      // [MQTT-1.5.3-2]; CONNACK 2 (identifier rejected) closes the connection.
      const reason = 'client id or user name contains U+0000';
      this.refusedConnect(client, username, 2, 'IdentifierRejected', reason);
      return Object.assign(new Error(reason), { returnCode: 2 }) as AuthenticateError;
    }
    const result = await this.platform.authenticateDevice(
      client.id,
      username ?? '',
      password?.toString('utf8') ?? '',
      ipAddress,
    );
    if (!result.ok) {
      if (result.device) {
        this.platform.log([this.platform.logEntry(result.device, 'authFailed', { reason: result.reason, ipAddress })]);
      }
      this.refusedConnect(client, username, result.code, CONNACK_REFUSALS[result.code], result.reason);
      return Object.assign(new Error(result.reason), { returnCode: result.code }) as AuthenticateError;
    }
    let generation: number | null = null;
    if (this.ownership) {
      // A persistent session coming back while its previous connection on another node is still
      // open or closing: its queue is read once that one is gone and its acknowledgements are
      // written (the reconnect race, docs/scale-out.md), or after a second if that node is silent.
      const previous = client.clean ? undefined : this.ownership.heldElsewhere(client.id);
      try {
        generation = await this.ownership.claim(client.id);
      } catch (err) {
        // Without Redis this node cannot tell whether another holds the device: refuse for now.
        const reason = 'the cluster cannot be reached; try again later';
        this.refusedConnect(client, username, 3, 'Throttled', reason, err as Error);
        return Object.assign(new Error(reason), { returnCode: 3 }) as AuthenticateError;
      }
      if (previous !== undefined) await this.ownership.closedElsewhere(client.id, previous, PREVIOUS_CLOSE_MS);
    }
    const previous = this.sessions.current(client.id);
    if (previous) previous.closeReason = 'Duplicate client id'; // [MQTT-3.1.4-2]
    setNoDelay(client);
    PacketSizeGuard.of(client)?.accept();
    this.sessions.bind({
      client,
      principal: result.principal,
      deviceId: client.id,
      ipAddress,
      connectedAt: this.platform.clock(),
      messagesFromClient: 0,
      messagesToClient: 0,
      commandSubscriptions: null,
      errorSubscription: null,
      closeReason: null,
      revoked: false,
      unflushed: 0,
      generation,
      pending: null,
      customPending: null,
      replayed: client.clean ? null : new Set(),
      keptQueued: null,
    });
    return null;
  }

  /**
   * Counts and logs a refused CONNECT: one warning naming the client id, the access key it
   * offered (its user name), its address, the CONNACK code and why. Never the password.
   */
  private refusedConnect(
    client: Client,
    username: string | undefined,
    returnCode: 2 | 3 | 4 | 5,
    category: MqttRefusal,
    reason: string,
    err?: Error,
  ): void {
    this.refusedConnects.add(client);
    this.instruments.refusals[category].inc();
    const fields = {
      event: 'connectRefused',
      clientId: client.id,
      accessKey: username === undefined ? null : username.slice(0, LOGGED_CHARS),
      ipAddress: remoteAddress(client),
      returnCode,
      category,
      reason,
    };
    if (err) this.log.error({ ...fields, err }, 'mqtt connect failed');
    else this.log.warn(fields, 'mqtt connect refused');
  }

  private onRegistered(client: Client): void {
    const session = this.sessions.of(client);
    if (!session) return;
    this.sessions.activate(session);
    const device = session.principal.device;
    this.instruments.connects.inc();
    this.log.info(
      {
        event: 'connect',
        clientId: session.deviceId,
        applicationId: device.applicationId,
        deviceClass: device.deviceClass,
        keyId: session.principal.key.id,
        accessKey: session.principal.key.key,
        ipAddress: session.ipAddress,
        cleanSession: client.clean,
      },
      'mqtt connect',
    );
    const committed = this.platform.writes.enqueue({
      connections: [{ deviceId: device.id, connected: true, time: session.connectedAt }],
      // Authentication succeeded: the entry names the access key that was used.
      logs: this.platform.admitLogs([
        this.platform.logEntry(device, 'connect', {
          connected: 1,
          keyId: session.principal.key.id,
          ipAddress: session.ipAddress,
        }),
      ]),
    });
    committed.then(
      () =>
        this.platform.connectionCommitted(device, {
          connected: true,
          time: session.connectedAt,
          ipAddress: session.ipAddress,
        }),
      () => {},
    );
    // A newer connection of the device claimed it on another node while this one's claim was
    // under way: the newest wins (src/cluster/ownership.ts).
    if (session.generation !== null && this.ownership?.superseded(device.id, session.generation)) {
      this.closeSuperseded(session);
    }
  }

  /**
   * Closes a connection a newer one of its device replaced on another node. aedes registers a
   * client (the `client` event) before it writes the CONNACK: a connection closed in between
   * would leave its client waiting for a CONNACK that never comes, so it is closed once sent.
   */
  private closeSuperseded(session: Session): void {
    session.closeReason ??= 'Duplicate client id';
    if ((session.client as unknown as { connackSent?: boolean }).connackSent)
      this.disconnect(session, 'Duplicate client id');
    else this.closeAfterConnack.add(session.client);
  }

  /**
   * Another node accepted a connection of the device with a newer generation: the one here, if
   * older, is closed [MQTT-3.1.4-2]. Its disconnect then leaves the device online.
   */
  supersede(deviceId: string, generation: number): void {
    const session = this.sessions.current(deviceId);
    if (session && session.generation !== null && session.generation < generation) this.closeSuperseded(session);
  }

  /**
   * Claims every device connected here again, and marks it online: after the other nodes took
   * this one for dead and a sweep may have marked its devices offline (src/cluster/node-sweep.ts).
   */
  async reclaimAll(): Promise<void> {
    const ownership = this.ownership;
    if (!ownership) return;
    for (const session of [...this.sessions.all()]) {
      if (session.client.closed) continue;
      const generation = await ownership.claim(session.deviceId);
      if (this.sessions.current(session.deviceId) !== session) continue;
      session.generation = generation;
      const device = session.principal.device;
      const time = this.platform.clock();
      this.platform.writes.enqueue({ connections: [{ deviceId: device.id, connected: true, time }] }).then(
        () => this.platform.connectionCommitted(device, { connected: true, time, ipAddress: session.ipAddress }),
        () => {},
      );
    }
  }

  /**
   * Publishes the Last Wills left by the clients of a node that died (nodes sharing Redis; the
   * sweep after dead nodes calls it, src/cluster/node-sweep.ts), as that node would have when
   * their connections ended: each through the same authorization as a will here, with the access
   * key its client connected with and the rights of the moment. Each will is taken from Redis
   * once, whichever node sweeps. Answers how many wills were taken.
   */
  async publishWillsOf(nodeId: string): Promise<number> {
    if (!this.sessionStore || nodeId === this.nodeId) return 0;
    let taken = 0;
    for await (const will of this.sessionStore.takeWills(nodeId)) {
      taken++;
      try {
        await this.publishWill(will);
      } catch (err) {
        this.log.warn({ event: 'willFailed', err, clientId: will.clientId, nodeId }, 'publishing a will failed');
      }
    }
    return taken;
  }

  /** One will of a dead node's client, through authorizePublish as on a closed connection here. */
  private async publishWill(will: StoredWill): Promise<void> {
    const { registry } = this.platform;
    const [device, key] = await Promise.all([
      registry.device(will.clientId),
      will.keyId ? registry.keyById(will.keyId) : undefined,
    ]);
    const principal: DevicePrincipal | undefined =
      device && key && key.applicationId === device.applicationId ? { kind: 'device', device, key } : undefined;
    // A connection whose rights are gone is closed here with its will dropped (revalidate); the
    // same rights decide now.
    if (!principal || !authorize(principal, { type: 'connect' }).allow) return;
    // The connection is gone: a stand-in, closed, so that the will is handled as on this node.
    const client = { id: will.clientId, closed: true, close() {} } as unknown as Client;
    this.sessions.bind({
      client,
      principal,
      deviceId: will.clientId,
      ipAddress: null,
      connectedAt: this.platform.clock(),
      messagesFromClient: 0,
      messagesToClient: 0,
      commandSubscriptions: new Map(),
      errorSubscription: null,
      closeReason: null,
      revoked: false,
      unflushed: 0,
      generation: null,
      pending: null,
      customPending: null,
      replayed: null,
      keptQueued: new Set(),
    });
    const packet: PublishPacket = {
      cmd: 'publish',
      topic: will.topic,
      payload: Buffer.from(will.payload),
      qos: will.qos,
      retain: will.retain,
      dup: false,
    };
    await new Promise<void>((resolve, reject) =>
      this.authorizePublish(client, packet, (err) => (err ? reject(err) : resolve())),
    );
    if (packet.topic === SINK_TOPIC) return;
    await new Promise<void>((resolve, reject) =>
      this.aedes.publish(packet, (err?: Error) => (err ? reject(err) : resolve())),
    );
  }

  private onDisconnected(client: Client): void {
    const session = this.sessions.of(client);
    if (!session) return;
    const current = this.sessions.deactivate(session);
    this.unflushed.delete(session);
    const reason =
      session.closeReason ??
      ((client as unknown as { _disconnected?: boolean })._disconnected ? 'Client disconnected' : 'Connection lost');
    const device = session.principal.device;
    const now = this.platform.clock();
    const category = disconnectCategory(reason);
    this.instruments.disconnects[category].inc();
    const fields = {
      event: 'disconnect',
      clientId: session.deviceId,
      applicationId: device.applicationId,
      ipAddress: session.ipAddress,
      reason,
      category,
      durationMs: now - session.connectedAt,
      messagesFromClient: session.messagesFromClient,
      messagesToClient: session.messagesToClient,
    };
    if (NOTABLE_DISCONNECTS.has(category)) this.log.warn(fields, 'mqtt disconnect');
    else this.log.info(fields, 'mqtt disconnect');
    const changed = (current: boolean) => {
      const committed = this.platform.writes.enqueue({
        // A replaced connection must not mark the device offline under its successor.
        connections: current ? [{ deviceId: device.id, connected: false, time: now }] : [],
        logs: this.platform.admitLogs([
          this.platform.logEntry(device, 'disconnect', {
            connected: 0,
            disconnectReason: reason,
            messagesFromClient: session.messagesFromClient,
            messagesToClient: session.messagesToClient,
            ipAddress: session.ipAddress,
            connectedAt: new Date(session.connectedAt).toISOString(),
          }),
        ]),
      });
      // A replaced connection changed nothing: its successor keeps the device connected.
      if (!current) return;
      committed.then(
        () =>
          this.platform.connectionCommitted(device, {
            connected: false,
            time: now,
            reason,
            ipAddress: session.ipAddress,
            messagesFromClient: session.messagesFromClient,
            messagesToClient: session.messagesToClient,
          }),
        () => {},
      );
    };
    if (!current || session.generation === null || !this.ownership) {
      changed(current);
      return;
    }
    // With nodes sharing Redis, the device may have reconnected on another node meanwhile: only
    // the newest connection marks it offline. Without Redis, this node's own view decides. A
    // persistent session's acknowledgements are written first: the release tells a node where it
    // is resuming that its queue may be read.
    const ownership = this.ownership;
    const generation = session.generation;
    const releasing = (client.clean ? Promise.resolve() : this.persistence.settled(client.id))
      .then(() => ownership.release(device.id, generation))
      .then(changed, () => changed(current));
    this.releasing.add(releasing);
    void releasing.then(() => this.releasing.delete(releasing));
  }

  private closeReason(client: Client, reason: string): void {
    const session = this.sessions.of(client);
    if (session) session.closeReason ??= reason;
  }

  private authorizePublish(client: Client | null, packet: PublishPacket, done: Done): void {
    const session = this.sessions.of(client);
    if (!session) {
      // Nothing reaches the broker from a client that is not authenticated.
      sink(packet);
      done(null);
      return;
    }
    if (hasNul(packet.topic)) {
      session.closeReason ??= 'Protocol error: topic name contains U+0000 [MQTT-1.5.3-2]';
      done(new Error('topic name contains U+0000'));
      return;
    }
    const parsed = parseTopic(packet.topic, this.prefix);
    /** When a QoS 1 publish reached this hook, for its PUBACK's latency; -1: no PUBACK (QoS 0, a will). */
    let startedAt = -1;
    if (client?.closed) {
      // aedes publishes a Last Will after closing the connection [MQTT-3.1.2-8]. It is authorized
      // like any publish, with the rights the device has now; a revoked session has none left.
      const principal = this.currentPrincipal(session);
      if (session.revoked || !principal) {
        sink(packet);
        done(null);
        return;
      }
      session.principal = principal;
    } else {
      session.messagesFromClient++;
      this.instruments.messagesIn[parsed.kind].inc();
      if (packet.qos > 0) startedAt = performance.now();
    }
    switch (parsed.kind) {
      case 'state':
        this.publishState(session, packet, parsed.deviceId, done, startedAt);
        return;
      case 'custom':
        this.publishCustom(session, packet, () => this.ack(done, startedAt), done);
        return;
      case 'command':
      case 'error':
        this.refuse(
          session,
          packet,
          'ReservedTopic',
          `devices may not publish to ${packet.topic}; state goes to ${this.prefix}/${parsed.deviceId}/state`,
        );
        this.ack(done, startedAt);
        return;
      case 'invalid':
        this.refuse(session, packet, 'InvalidTopic', parsed.reason, parsed.suggestion);
        this.ack(done, startedAt);
        return;
    }
  }

  /**
   * Lets aedes go on with an accepted or refused publish. For QoS 1 it writes the PUBACK right
   * after this callback (docs/aedes.md), so the latency observed here is the PUBACK's.
   */
  private ack(done: Done, startedAt: number): void {
    if (startedAt >= 0) this.instruments.pubackSeconds.observe((performance.now() - startedAt) / 1000);
    done(null);
  }

  private publishState(session: Session, packet: PublishPacket, deviceId: string, done: Done, startedAt: number) {
    const topic = packet.topic;
    const payload = packet.payload as Buffer;
    sink(packet); // state is ingested, never forwarded
    // Publishes of one client are ingested in arrival order [MQTT-4.6.0-2]; see docs/aedes.md on ordering.
    const outcome = session.pending
      ? session.pending.then(() => this.ingest(session, deviceId, payload, topic))
      : this.ingest(session, deviceId, payload, topic);
    if (outcome instanceof Promise) {
      const settled = outcome.then(
        () => {},
        () => {},
      );
      session.pending = settled;
      void settled.then(() => {
        if (session.pending === settled) session.pending = null;
      });
      outcome.then(
        (o) => this.afterIngest(session, packet, topic, o, done, startedAt),
        (err: Error) => done(err),
      );
    } else {
      this.afterIngest(session, packet, topic, outcome, done, startedAt);
    }
  }

  private ingest(session: Session, deviceId: string, payload: Buffer, topic: string) {
    return ingestState(this.platform, {
      principal: session.principal,
      targetId: deviceId,
      applicationId: session.principal.device.applicationId,
      payload,
      via: 'mqtt',
      topic,
      receivedAt: this.platform.clock(),
    });
  }

  private afterIngest(
    session: Session,
    packet: PublishPacket,
    topic: string,
    outcome: IngestOutcome,
    done: Done,
    startedAt: number,
  ): void {
    if (!outcome.ok) {
      this.instruments.refusals[INGEST_REFUSALS[outcome.status]].inc();
      this.sendError(session, outcome.status, outcome.reason, topic);
      this.ack(done, startedAt);
      if (outcome.limited === 'device') this.disconnect(session, 'Rate limit exceeded');
      return;
    }
    if (outcome.issues.length > 0) this.sendError(session, 400, outcome.issueSummary, topic);
    // QoS 1: the PUBACK waits for the commit (docs/protocol.md: QoS 1 state acknowledged once stored).
    // A failed commit closes the connection unacknowledged, so the client sends it again.
    if (packet.qos > 0)
      outcome.committed.then(
        () => this.ack(done, startedAt),
        (err: Error) => done(err),
      );
    else done(null);
  }

  /**
   * A topic outside the platform prefix: authorized, bounded, then scoped to the application;
   * `next` lets aedes go on with it. With nodes sharing Redis, a retained publish waits for the
   * application's budget in Redis, and the client's later custom publishes wait behind it, so
   * they keep their order.
   */
  private publishCustom(session: Session, packet: PublishPacket, next: () => void, fail: Done): void {
    if (session.customPending) {
      const after = session.customPending.then(() => this.publishCustomNow(session, packet, next, fail));
      this.chainCustom(session, after);
      return;
    }
    const pending = this.publishCustomNow(session, packet, next, fail);
    if (pending) this.chainCustom(session, pending);
  }

  private chainCustom(session: Session, pending: Promise<void> | undefined): void {
    const settled = Promise.resolve(pending).then(
      () => {},
      () => {},
    );
    session.customPending = settled;
    void settled.then(() => {
      if (session.customPending === settled) session.customPending = null;
    });
  }

  /** Answers a promise only while the retained budget is asked of Redis. */
  private publishCustomNow(
    session: Session,
    packet: PublishPacket,
    next: () => void,
    fail: Done,
  ): Promise<void> | undefined {
    const { principal } = session;
    const decision = authorize(principal, { type: 'publishTopic', topic: packet.topic });
    if (!decision.allow) {
      this.refuse(session, packet, 'Forbidden', decision.reason);
      next();
      return undefined;
    }
    const size = payloadBytes(packet);
    if (size > MAX_PAYLOAD_BYTES) {
      this.refuse(session, packet, 'PayloadTooLarge', `payload of ${size} bytes exceeds ${MAX_PAYLOAD_BYTES} bytes`);
      next();
      return undefined;
    }
    const applicationId = principal.device.applicationId;
    const unscoped = packet.topic;
    const scoped = scopeTopic(applicationId, packet.topic);
    const go = (refusal: string | null): Promise<void> | undefined => {
      if (refusal) this.refuse(session, packet, 'RetainedBudget', refusal);
      else this.acceptCustom(session, packet, applicationId, unscoped, scoped);
      const queued = packet.topic === scoped ? this.queueEarly(packet) : undefined;
      if (!queued) {
        next();
        return undefined;
      }
      return queued.then(next, (err: Error) => fail(err));
    };
    if (!packet.retain) {
      // Not chained: the client's publishes are queued concurrently, in arrival order (one Redis
      // connection answers in order, and each takes the same steps). Waiting for each queue
      // before the next publish halved the rate one publisher could reach.
      go(null)?.catch((err: unknown) => this.log.error({ event: 'brokerError', err }, 'broker error'));
      return undefined;
    }
    const refusal = this.retained.admit(applicationId, scoped, size);
    if (!(refusal instanceof Promise)) return go(refusal);
    // Redis cannot be asked: the publish is not acknowledged and the connection closes, as when
    // a state cannot be committed; the client sends it again.
    return refusal.then(go, (err: Error) => fail(err));
  }

  /**
   * Nodes sharing Redis: queues an accepted QoS 1 custom message for the persistent sessions
   * subscribed to it before aedes writes its PUBACK (aedes queues after it, so a queue that
   * fails, Redis away, would lose an acknowledged message). A failure closes the connection
   * unacknowledged, and the client sends the message again. The message gets its identity (this
   * broker's id and next number) here, and keeps it through aedes' routing.
   */
  private queueEarly(packet: PublishPacket): Promise<void> | undefined {
    if (!this.sessionStore || packet.qos !== 1) return undefined;
    const broker = this.aedes as unknown as { id: string; counter: number };
    const identified = packet as PublishPacket & { brokerId?: string; brokerCounter?: number };
    identified.brokerId = broker.id;
    identified.brokerCounter = ++broker.counter;
    const copy = {
      cmd: 'publish',
      brokerId: identified.brokerId,
      brokerCounter: identified.brokerCounter,
      topic: packet.topic,
      payload: packet.payload,
      qos: packet.qos,
      retain: packet.retain,
      dup: false,
    };
    const persistence = this.persistence as unknown as {
      subscriptionsByTopic(topic: string): Promise<unknown[]>;
      outgoingEnqueueCombi(subs: unknown[], packet: QueuedPacket): Promise<void>;
    };
    const key = messageKey(copy);
    return persistence.subscriptionsByTopic(packet.topic).then(async (subs) => {
      if (subs.length === 0) return;
      await persistence.outgoingEnqueueCombi(subs, copy);
      if (this.queuedEarly.size >= QUEUED_EARLY_KEYS) this.queuedEarly.clear();
      this.queuedEarly.add(key);
    });
  }

  private acceptCustom(
    session: Session,
    packet: PublishPacket,
    applicationId: string,
    unscoped: string,
    scoped: string,
  ) {
    const { principal } = session;
    if (this.platform.countMessage(principal, undefined, this.platform.clock())) {
      const topic = packet.topic;
      sink(packet);
      this.instruments.refusals.RateLimited.inc();
      this.sendError(session, 429, 'Rate limit exceeded', topic);
      this.disconnect(session, 'Rate limit exceeded');
      return;
    }
    packet.topic = scoped;
    this.platform.bus.emit('customMessage', {
      applicationId,
      topic: unscoped,
      payload: typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload,
      publisherId: principal.device.id,
      time: this.platform.clock(),
    });
  }

  /** Drops a publish, logs why, tells the publisher on its error topic; the connection stays up. */
  private refuse(
    session: Session,
    packet: PublishPacket,
    category: PublishRefusal,
    reason: string,
    suggestion?: string,
  ) {
    const topic = packet.topic;
    const status = MQTT_REFUSALS[category];
    this.instruments.refusals[category].inc();
    sink(packet);
    const parsed = parseTopic(topic, this.prefix);
    const targetId = 'deviceId' in parsed ? parsed.deviceId : undefined;
    const target = targetId ? this.platform.registry.deviceCached(targetId) : undefined;
    const detail = suggestion ? `${reason}; did you mean ${suggestion}?` : reason;
    this.platform.reject({ principal: session.principal, via: 'mqtt', topic }, target, status, detail, [], suggestion);
    this.sendError(session, status, detail, topic);
    if (this.platform.countMessage(session.principal, undefined, this.platform.clock())) {
      this.disconnect(session, 'Rate limit exceeded');
    }
  }

  private async authorizeSubscribe(client: Client, sub: Subscription): Promise<Subscription | null> {
    const session = this.sessions.of(client);
    if (!session) return null;
    if (hasNul(sub.topic)) {
      session.closeReason ??= 'Protocol error: topic filter contains U+0000 [MQTT-1.5.3-2]';
      throw new Error('topic filter contains U+0000');
    }
    const qos: 0 | 1 = sub.qos > 0 ? 1 : 0;
    const applicationId = session.principal.device.applicationId;
    // A persistent session's subscriptions are restored as they were stored: scoped.
    const restored = unscopeTopic(sub.topic);
    if (restored && restored.applicationId !== applicationId) {
      return this.refuseSubscription(session, sub.topic, 'topics starting with $ are reserved');
    }
    const filter = restored?.topic ?? sub.topic;
    const underPrefix = filter === this.prefix || filter.startsWith(`${this.prefix}/`);
    if (!underPrefix) {
      const decision = authorize(session.principal, { type: 'subscribeTopic', filter, prefix: this.prefix });
      if (!decision.allow) return this.refuseSubscription(session, filter, decision.reason);
      // Changed in place: aedes persists the SUBSCRIBE's own list for a persistent session.
      sub.topic = scopeTopic(applicationId, filter);
      sub.qos = qos;
      return sub;
    }
    if (hasWildcard(filter)) {
      return this.refuseSubscription(session, filter, 'wildcards are not allowed in platform topics');
    }
    const parsed = parseTopic(filter, this.prefix);
    if (parsed.kind !== 'command' && parsed.kind !== 'error') {
      return this.refuseSubscription(
        session,
        filter,
        `${filter} cannot be subscribed; devices subscribe to ${this.prefix}/DEVICE_ID/command`,
      );
    }
    const target = await this.platform.registry.device(parsed.deviceId);
    const sameApp = target && target.applicationId === applicationId ? target : undefined;
    const decision = authorize(session.principal, {
      type: parsed.kind === 'command' ? 'receiveCommands' : 'receiveErrors',
      target: sameApp,
    });
    if (!decision.allow) return this.refuseSubscription(session, filter, decision.reason, sameApp);
    if (parsed.kind === 'command') this.sessions.subscribeCommands(session, parsed.deviceId, qos);
    else session.errorSubscription = qos;
    sub.qos = qos;
    return sub;
  }

  /** SUBACK 0x80 for this subscription only; the connection stays up. */
  private refuseSubscription(session: Session, filter: string, reason: string, target?: Device): null {
    this.instruments.refusals.SubscribeRefused.inc();
    this.platform.reject(
      { principal: session.principal, via: 'mqtt', topic: filter },
      target,
      403,
      `subscribe refused: ${reason}`,
    );
    return null;
  }

  private onUnsubscribed(client: Client, topics: string[]): void {
    const session = this.sessions.of(client);
    if (!session) return;
    const custom: string[] = [];
    for (const topic of topics) {
      if (topic.startsWith('$')) continue; // our own scoped follow-up, below
      const parsed = parseTopic(topic, this.prefix);
      if (parsed.kind === 'command') this.sessions.unsubscribeCommands(session, parsed.deviceId);
      else if (parsed.kind === 'error' && parsed.deviceId === session.deviceId) session.errorSubscription = null;
      else if (parsed.kind === 'custom') custom.push(scopeTopic(session.principal.device.applicationId, topic));
    }
    if (custom.length === 0 || client.closed) return;
    // The client unsubscribed from the topics it knows; its subscriptions are held scoped.
    client.unsubscribe({ unsubscriptions: custom } as never, () => {});
    if (!client.clean) {
      this.persistence.removeSubscriptions(client, custom).then(
        () => {},
        (err: unknown) =>
          this.log.warn(
            { event: 'unsubscribeFailed', err, clientId: session.deviceId },
            'removing a persistent subscription failed',
          ),
      );
    }
  }

  /**
   * Every message to a client passes here: routed commands and error notices, custom topics,
   * retained messages and the queue of a persistent session. Platform topics reach a client only
   * through `send`; custom topics only within the client's application and while its key still
   * allows them; nothing past the client's outbound bound.
   */
  private authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const session = this.sessions.of(client);
    if (!session) return null;
    // [MQTT-3.2.0-1] Nothing before the CONNACK. aedes subscribes a resumed persistent session
    // before it writes the CONNACK, and writes what reaches it meanwhile: a QoS 1 PUBLISH ahead of
    // the CONNACK left MQTT.js waiting for a CONNACK forever. A QoS 1 message dropped here is in
    // the session's queue, which aedes sends right after the CONNACK (docs/scale-out.md).
    if (!(client as unknown as { connackSent?: boolean }).connackSent) return null;
    const replayed = session.replayed;
    if (replayed === null || packet.qos === 0 || packet.brokerId === undefined)
      return this.forwardable(session, packet);
    // The reconnect race: a message published while a persistent session comes back reaches it
    // both live and from its queue. Each is sent once: the queue leaves out what went live
    // (QueueReplay.skip), a live copy of what the queue sent is dropped, and a queued copy that
    // lost the race by a hair (numbered already) is dropped but kept queued (QueueReplay.keep)
    // until the live copy is acknowledged.
    const key = messageKey(packet);
    if (replayed.has(key)) {
      if (packet.messageId !== undefined) {
        session.keptQueued ??= new Set();
        session.keptQueued.add(packet.messageId);
      }
      return null;
    }
    const forwarded = this.forwardable(session, packet);
    if (forwarded) {
      if (replayed.size >= REPLAY_KEYS) session.replayed = null;
      else replayed.add(key);
    }
    return forwarded;
  }

  private forwardable(session: Session, packet: AedesPublishPacket): AedesPublishPacket | null {
    const topic = packet.topic;
    if (topic.startsWith('$')) {
      const scoped = unscopeTopic(topic);
      if (!scoped || scoped.applicationId !== session.principal.device.applicationId) return null;
      if (!this.mayReceive(session, scoped.topic) || !this.admitOutbound(session, packet)) return null;
      // Each client gets its own copy of a packet from aedes, so restoring the topic here is
      // safe, and it must be in place: the queue of a persistent session writes this object.
      packet.topic = scoped.topic;
      // Subscriptions are granted at most QoS 1.
      if (packet.qos > 1) packet.qos = 1;
      session.messagesToClient++;
      this.instruments.messagesOut.custom.inc();
      return packet;
    }
    if (topic !== this.prefix && !topic.startsWith(`${this.prefix}/`)) {
      // A custom topic already restored: a message of this client's own unacknowledged queue.
      if (!this.mayReceive(session, topic) || !this.admitOutbound(session, packet)) return null;
      session.messagesToClient++;
      this.instruments.messagesOut.custom.inc();
      return packet;
    }
    const parsed = parseTopic(topic, this.prefix);
    if (parsed.kind === 'error' && parsed.deviceId === session.deviceId) {
      if (!this.admitOutbound(session, packet)) return null;
      this.instruments.messagesOut.errorNotice.inc();
      return packet;
    }
    if (parsed.kind === 'command') {
      const target = this.platform.registry.deviceCached(parsed.deviceId);
      const principal = this.currentPrincipal(session);
      if (target && principal && authorize(principal, { type: 'receiveCommands', target }).allow) {
        if (!this.admitOutbound(session, packet)) return null;
        this.instruments.messagesOut.command.inc();
        return packet;
      }
    }
    return null;
  }

  // Helpers

  /** Sessions subscribed to a device's command topic that may receive its commands now. */
  private commandReceivers(target: Device): Session[] {
    return this.sessions.commandSubscribersOf(target.id).filter((s) => {
      const principal = this.currentPrincipal(s);
      return principal !== undefined && authorize(principal, { type: 'receiveCommands', target }).allow;
    });
  }

  /** May the client receive a message on custom `topic` with the rights it has now? */
  private mayReceive(session: Session, topic: string): boolean {
    const principal = this.currentPrincipal(session);
    return principal !== undefined && authorize(principal, { type: 'receiveTopic', topic }).allow;
  }

  /**
   * Counts a delivery against the client's outbound bound: what its connection has not sent
   * yet, plus what was authorized this turn and will be written on the next. A client past the
   * bound is disconnected as a slow consumer, which frees what it held.
   */
  private admitOutbound(session: Session, packet: AedesPublishPacket): boolean {
    const size = payloadBytes(packet) + Buffer.byteLength(packet.topic) + 8;
    const waiting = outboundBytes(session.client.conn) + session.unflushed;
    if (waiting + size > this.limits.maxOutboundBytes) {
      this.disconnect(
        session,
        `Slow consumer: ${waiting} bytes waiting to be sent, at most ${this.limits.maxOutboundBytes}`,
      );
      return false;
    }
    session.unflushed += size;
    this.unflushed.add(session);
    if (!this.unflushedReset) {
      this.unflushedReset = true;
      setImmediate(() => {
        for (const s of this.unflushed) s.unflushed = 0;
        this.unflushed.clear();
        this.unflushedReset = false;
      });
    }
    return true;
  }

  private onQueueFull(clientId: string, queue: QueueLimits): void {
    const reason = `queue of undelivered QoS 1 messages is full (${queue.messages} messages or ${queue.bytes} bytes); newer messages are dropped until the device acknowledges older ones`;
    const device = this.platform.registry.deviceCached(clientId);
    if (device) this.platform.log([this.platform.logEntry(device, 'dropped', { via: 'mqtt', reason })]);
    this.log.warn({ event: 'queueFull', clientId, reason }, 'message queue full');
  }

  private dropRetained(applicationId: string): void {
    const failed = (err: unknown) =>
      this.log.warn({ event: 'retainedRemovalFailed', err, applicationId }, 'removing a retained message failed');
    const remove = (topics: string[]) => {
      for (const topic of topics) {
        const empty = { cmd: 'publish', topic, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false };
        this.persistence.storeRetained(empty).then(() => {}, failed);
      }
    };
    const topics = this.retained.release(applicationId);
    if (topics instanceof Promise) topics.then(remove, failed);
    else remove(topics);
  }

  private send(session: Session, topic: string, payload: Buffer, qos: 0 | 1): void {
    if (session.client.closed) return;
    session.client.publish({ cmd: 'publish', topic, payload, qos, retain: false, dup: false }, () => {});
  }

  /** `{code, message, topic, time}` on the publisher's error topic, when it subscribed there (beyond). */
  private sendError(session: Session, code: number, message: string, topic: string): void {
    if (session.errorSubscription === null) return;
    const body = encodeErrorNotice({ code, message, topic, time: this.platform.clock() });
    // Error notices are not device messages: they do not count in messagesToClient.
    this.send(session, errorTopic(session.deviceId, this.prefix), Buffer.from(body), session.errorSubscription);
  }

  private disconnect(session: Session, reason: string): void {
    session.closeReason ??= reason;
    session.client.close();
  }

  /**
   * The session's principal with the current device and key definitions; undefined when the
   * device or its key no longer exists.
   */
  private currentPrincipal(session: Session): DevicePrincipal | undefined {
    const { registry } = this.platform;
    const device = registry.deviceCached(session.principal.device.id);
    const key = registry.keyCached(session.principal.key.id);
    return device && key ? ({ kind: 'device', device, key } satisfies Principal) : undefined;
  }
}

/**
 * A publish pointed at the sink (every state, every refused message) goes nowhere: aedes would
 * still route it after its PUBACK (a queue look-up for persistent sessions, the emitter, its
 * `published` hook), for every state. Its routing step ends at once for the sink instead, as
 * it ends for a topic without subscribers (synchronously, as for a QoS 0 publish).
 */
function skipSinkRouting(aedes: Aedes): void {
  type Route = (packet: PublishPacket, client: unknown, done?: (err?: Error | null) => void) => void;
  const broker = aedes as unknown as { publish: Route };
  const route = broker.publish;
  broker.publish = function publish(this: unknown, packet, client, done) {
    if (packet.topic !== SINK_TOPIC) return route.call(this, packet, client, done);
    const callback = typeof client === 'function' ? (client as (err?: Error | null) => void) : done;
    callback?.(null);
  };
}

function sink(packet: PublishPacket): void {
  packet.topic = SINK_TOPIC;
  packet.retain = false;
}

function payloadBytes(packet: { payload: Buffer | string }): number {
  return typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
}

/** Clients' addresses as a trusted load balancer gave them, where one did. */
const clientAddresses = new WeakMap<Client, string>();

function remoteAddress(client: Client): string | null {
  const told = clientAddresses.get(client);
  if (told) return told;
  const conn = client.conn as { remoteAddress?: string };
  return client.req?.socket.remoteAddress ?? conn.remoteAddress ?? null;
}

function setNoDelay(client: Client): void {
  const conn = client.conn as { setNoDelay?: (on: boolean) => void };
  conn.setNoDelay?.(true);
}
