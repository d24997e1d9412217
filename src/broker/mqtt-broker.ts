/**
 * The MQTT side (spec: MQTT). Aedes handles the protocol; the hooks here stay thin and ask the
 * platform: credentials in `authenticate`, the authorization rule on every publish and
 * subscribe, state through the shared ingest path. Facts about aedes 1.2 this relies on are in
 * shared/notes/aedes-1.2.md.
 */
import type { IncomingMessage } from 'node:http';
import {
  Aedes,
  type AedesPublishPacket,
  type AuthenticateError,
  type Client,
  type PublishPacket,
  type Subscription,
} from 'aedes';
import { type IngestOutcome, ingestState } from '../core/ingest.js';
import type { Connections, Platform } from '../core/platform.js';
import { authorize } from '../domain/authorization.js';
import type { Device } from '../domain/model.js';
import { commandTopic, errorTopic, hasWildcard, parseTopic } from '../domain/topics.js';
import { type Session, SessionTable } from './sessions.js';

/** Refused publishes are re-pointed here: no client can subscribe to `$` topics [MQTT-4.7.2-1]. */
const SINK_TOPIC = '$gatehouse/refused';

type Connection = Parameters<Aedes['handle']>[0];

export class MqttBroker implements Connections {
  readonly sessions = new SessionTable();
  private aedes!: Aedes;
  private readonly prefix: string;

  constructor(private readonly platform: Platform) {
    this.prefix = platform.topicPrefix;
  }

  async start(): Promise<void> {
    this.aedes = new Aedes({
      // 24-hex device ids exceed MQTT 3.1's 23 characters; 3.1.1 has no such limit.
      maxClientsIdLength: 64,
      heartbeatInterval: 60_000,
      authenticate: (client, username, password, done) => {
        this.authenticate(client, username, password).then(
          (error) => done(error, error === null),
          (err: Error) => done(Object.assign(err, { returnCode: 3 }) as AuthenticateError, false),
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
    await this.aedes.listen();
    this.aedes.on('client', (client) => this.onRegistered(client));
    this.aedes.on('clientDisconnect', (client) => this.onDisconnected(client));
    this.aedes.on('keepaliveTimeout', (client) => this.closeReason(client, 'Keep-alive timeout'));
    this.aedes.on('clientError', (client, err) => this.closeReason(client, err.message));
    this.aedes.on('unsubscribe', (topics, client) => this.onUnsubscribed(client, topics));
    this.platform.attachConnections(this);
  }

  /** Hands a connection (TCP socket, TLS socket or WebSocket stream) to the broker. */
  handle(stream: Connection, request?: IncomingMessage): void {
    this.aedes.handle(stream, request);
  }

  /** Disconnects every client (reason `Server shutting down`) and stops the broker. */
  async close(): Promise<void> {
    if (!this.aedes || this.aedes.closed) return;
    for (const session of this.sessions.all()) session.closeReason ??= 'Server shutting down';
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
  }

  get connectedClients(): number {
    return this.aedes.connectedClients;
  }

  // Connections (used by the platform)

  isConnected(deviceId: string): boolean {
    return this.sessions.current(deviceId) !== undefined;
  }

  /**
   * A peripheral's command goes to the gateway that last reported for it when that gateway is
   * connected and subscribed; otherwise to every connected, subscribed gateway that may act for
   * it (spec: Commands). Rights are re-checked now, with the current device definitions.
   */
  deliverCommand(target: Device, message: Buffer, preferredGatewayId: string | null): string[] {
    const allowed = this.sessions
      .commandSubscribersOf(target.id)
      .filter((s) => authorize(this.freshPrincipal(s), { type: 'receiveCommands', target }).allow);
    const preferred = allowed.find((s) => s.deviceId === preferredGatewayId);
    const route = preferred ? [preferred] : allowed;
    const topic = commandTopic(target.id, this.prefix);
    for (const session of route) {
      session.messagesToClient++;
      this.send(session, topic, message, session.commandSubscriptions.get(target.id) ?? 0);
    }
    return route.map((s) => s.deviceId);
  }

  revalidate(change: { deviceId?: string; keyId?: string; applicationId?: string }): void {
    for (const session of this.sessions.all()) {
      const { device, key } = session.principal;
      if (device.id !== change.deviceId && key.id !== change.keyId && device.applicationId !== change.applicationId) {
        continue;
      }
      const principal = this.freshPrincipal(session);
      const gone = !this.platform.registry.deviceCached(device.id)
        ? 'Device deleted'
        : !this.platform.registry.keyCached(key.id)
          ? 'Access key deleted'
          : null;
      const decision = gone ? null : authorize(principal, { type: 'connect' });
      if (gone || (decision && !decision.allow)) {
        this.disconnect(session, gone ?? `Not authorized: ${(decision as { reason: string }).reason}`);
      } else {
        session.principal = principal;
      }
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
      return Object.assign(new Error(result.reason), { returnCode: result.code }) as AuthenticateError;
    }
    const previous = this.sessions.current(client.id);
    if (previous) previous.closeReason = 'Duplicate client id'; // [MQTT-3.1.4-2]
    setNoDelay(client);
    this.sessions.bind({
      client,
      principal: result.principal,
      deviceId: client.id,
      ipAddress,
      connectedAt: this.platform.clock(),
      messagesFromClient: 0,
      messagesToClient: 0,
      commandSubscriptions: new Map(),
      errorSubscription: null,
      closeReason: null,
      pending: null,
    });
    return null;
  }

  private onRegistered(client: Client): void {
    const session = this.sessions.of(client);
    if (!session) return;
    this.sessions.activate(session);
    const device = session.principal.device;
    void this.platform.writes.enqueue({
      connections: [{ deviceId: device.id, connected: true, time: session.connectedAt }],
      // Authentication succeeded: the entry names the access key that was used.
      logs: [
        this.platform.logEntry(device, 'connect', {
          connected: 1,
          keyId: session.principal.key.id,
          ipAddress: session.ipAddress,
        }),
      ],
    });
  }

  private onDisconnected(client: Client): void {
    const session = this.sessions.of(client);
    if (!session) return;
    const current = this.sessions.deactivate(session);
    const reason =
      session.closeReason ??
      ((client as unknown as { _disconnected?: boolean })._disconnected ? 'Client disconnected' : 'Connection lost');
    const device = session.principal.device;
    const now = this.platform.clock();
    void this.platform.writes.enqueue({
      // A replaced connection must not mark the device offline under its successor.
      connections: current ? [{ deviceId: device.id, connected: false, time: now }] : [],
      logs: [
        this.platform.logEntry(device, 'disconnect', {
          connected: 0,
          disconnectReason: reason,
          messagesFromClient: session.messagesFromClient,
          messagesToClient: session.messagesToClient,
          ipAddress: session.ipAddress,
          connectedAt: new Date(session.connectedAt).toISOString(),
        }),
      ],
    });
  }

  private closeReason(client: Client, reason: string): void {
    const session = this.sessions.of(client);
    if (session) session.closeReason ??= reason;
  }

  private authorizePublish(client: Client | null, packet: PublishPacket, done: (err?: Error | null) => void): void {
    const session = this.sessions.of(client);
    if (!session) {
      // Only a will published after its client is gone lands here; wills never reach device topics.
      if (packet.topic.startsWith(`${this.prefix}/`)) sink(packet);
      done(null);
      return;
    }
    session.messagesFromClient++;
    const parsed = parseTopic(packet.topic, this.prefix);
    switch (parsed.kind) {
      case 'state':
        this.publishState(session, packet, parsed.deviceId, done);
        return;
      case 'custom':
        this.publishCustom(session, packet, done);
        return;
      case 'command':
      case 'error':
        this.refuse(
          session,
          packet,
          403,
          `devices may not publish to ${packet.topic}; state goes to ${this.prefix}/${parsed.deviceId}/state`,
        );
        done(null);
        return;
      case 'invalid':
        this.refuse(session, packet, 400, parsed.reason, parsed.suggestion);
        done(null);
        return;
    }
  }

  private publishState(session: Session, packet: PublishPacket, deviceId: string, done: (err?: Error | null) => void) {
    const topic = packet.topic;
    const payload = packet.payload as Buffer;
    sink(packet); // state is ingested, never forwarded
    const run = (): Promise<IngestOutcome> | IngestOutcome =>
      ingestState(this.platform, {
        principal: session.principal,
        targetId: deviceId,
        applicationId: session.principal.device.applicationId,
        payload,
        via: 'mqtt',
        topic,
        receivedAt: this.platform.clock(),
      });
    // Publishes of one client are ingested in arrival order [MQTT-4.6.0-2]; see the aedes note on ordering.
    const outcome = session.pending ? session.pending.then(run) : run();
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
        (o) => this.afterIngest(session, packet, topic, o, done),
        (err: Error) => done(err),
      );
    } else {
      this.afterIngest(session, packet, topic, outcome, done);
    }
  }

  private afterIngest(
    session: Session,
    packet: PublishPacket,
    topic: string,
    outcome: IngestOutcome,
    done: (err?: Error | null) => void,
  ): void {
    if (!outcome.ok) {
      this.sendError(session, outcome.status, outcome.reason, topic);
      done(null);
      if (outcome.limited === 'device') this.disconnect(session, 'Rate limit exceeded');
      return;
    }
    if (outcome.issues.length > 0) {
      this.sendError(session, 400, outcome.issues.map((i) => i.reason).join('; '), topic);
    }
    // QoS 1: the PUBACK waits for the commit (spec: QoS 1 state acknowledged only once stored).
    // A failed commit closes the connection unacknowledged, so the client sends it again.
    if (packet.qos > 0)
      outcome.committed.then(
        () => done(null),
        (err: Error) => done(err),
      );
    else done(null);
  }

  private publishCustom(session: Session, packet: PublishPacket, done: (err?: Error | null) => void): void {
    const decision = authorize(session.principal, { type: 'publishTopic', topic: packet.topic });
    if (!decision.allow) {
      this.refuse(session, packet, 403, decision.reason);
    } else if (this.platform.countMessage(session.principal, undefined, this.platform.clock())) {
      sink(packet);
      this.sendError(session, 429, 'Rate limit exceeded', packet.topic);
      this.disconnect(session, 'Rate limit exceeded');
    }
    done(null);
  }

  /** Drops a publish, logs why, tells the publisher on its error topic; the connection stays up. */
  private refuse(session: Session, packet: PublishPacket, status: 400 | 403, reason: string, suggestion?: string) {
    const topic = packet.topic;
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
    const qos: 0 | 1 = sub.qos > 0 ? 1 : 0;
    const filter = sub.topic;
    const underPrefix = filter === this.prefix || filter.startsWith(`${this.prefix}/`);
    if (!underPrefix) {
      const decision = authorize(session.principal, { type: 'subscribeTopic', filter, prefix: this.prefix });
      return decision.allow ? sub : this.refuseSubscription(session, filter, decision.reason);
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
    const sameApp = target && target.applicationId === session.principal.device.applicationId ? target : undefined;
    const decision = authorize(session.principal, {
      type: parsed.kind === 'command' ? 'receiveCommands' : 'receiveErrors',
      target: sameApp,
    });
    if (!decision.allow) return this.refuseSubscription(session, filter, decision.reason, sameApp);
    if (parsed.kind === 'command') this.sessions.subscribeCommands(session, parsed.deviceId, qos);
    else session.errorSubscription = qos;
    return { ...sub, qos };
  }

  /** SUBACK 0x80 for this subscription only; the connection stays up. */
  private refuseSubscription(session: Session, filter: string, reason: string, target?: Device): null {
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
    for (const topic of topics) {
      const parsed = parseTopic(topic, this.prefix);
      if (parsed.kind === 'command') this.sessions.unsubscribeCommands(session, parsed.deviceId);
      else if (parsed.kind === 'error' && parsed.deviceId === session.deviceId) session.errorSubscription = null;
    }
  }

  /**
   * Platform topics reach clients only through `send` (commands and errors, already routed);
   * anything else under the prefix is never forwarded. Re-checked here because aedes also
   * delivers queued messages of persistent sessions through this hook.
   */
  private authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    if (packet.topic.startsWith('$')) return null;
    if (!packet.topic.startsWith(`${this.prefix}/`)) {
      const session = this.sessions.of(client);
      if (session) session.messagesToClient++;
      return packet;
    }
    const parsed = parseTopic(packet.topic, this.prefix);
    const session = this.sessions.of(client);
    if (!session) return null;
    if (parsed.kind === 'error' && parsed.deviceId === session.deviceId) return packet;
    if (parsed.kind === 'command') {
      const target = this.platform.registry.deviceCached(parsed.deviceId);
      if (target && authorize(this.freshPrincipal(session), { type: 'receiveCommands', target }).allow) return packet;
    }
    return null;
  }

  // Helpers

  private send(session: Session, topic: string, payload: Buffer, qos: 0 | 1): void {
    session.client.publish({ cmd: 'publish', topic, payload, qos, retain: false, dup: false }, () => {});
  }

  /** `{code, message, topic, time}` on the publisher's error topic, when it subscribed there (beyond). */
  private sendError(session: Session, code: number, message: string, topic: string): void {
    if (session.errorSubscription === null) return;
    const body = JSON.stringify({
      code,
      message,
      topic,
      time: { $date: new Date(this.platform.clock()).toISOString() },
    });
    // Error notices are not device messages: they do not count in messagesToClient.
    this.send(session, errorTopic(session.deviceId, this.prefix), Buffer.from(body), session.errorSubscription);
  }

  private disconnect(session: Session, reason: string): void {
    session.closeReason ??= reason;
    session.client.close();
  }

  /** The session's principal with the current device and key definitions. */
  private freshPrincipal(session: Session): Session['principal'] {
    const registry = this.platform.registry;
    return {
      kind: 'device',
      device: registry.deviceCached(session.principal.device.id) ?? session.principal.device,
      key: registry.keyCached(session.principal.key.id) ?? session.principal.key,
    };
  }
}

function sink(packet: PublishPacket): void {
  packet.topic = SINK_TOPIC;
  packet.retain = false;
}

function remoteAddress(client: Client): string | null {
  const conn = client.conn as { remoteAddress?: string };
  return client.req?.socket.remoteAddress ?? conn.remoteAddress ?? null;
}

function setNoDelay(client: Client): void {
  const conn = client.conn as { setNoDelay?: (on: boolean) => void };
  conn.setNoDelay?.(true);
}
