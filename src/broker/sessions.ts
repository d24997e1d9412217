import type { Client } from 'aedes';
import type { Principal } from '../domain/authorization.js';

/** One live MQTT connection of a device, with what the platform tracks about it. */
export interface Session {
  client: Client;
  principal: Extract<Principal, { kind: 'device' }>;
  deviceId: string;
  ipAddress: string | null;
  connectedAt: number;
  messagesFromClient: number;
  messagesToClient: number;
  /** Command topics subscribed, by device id, with the granted QoS; null until the first. */
  commandSubscriptions: Map<string, 0 | 1> | null;
  /** QoS of the subscription to its own error topic, if any. */
  errorSubscription: 0 | 1 | null;
  /** Why the server is closing it, when the server is. */
  closeReason: string | null;
  /** Closed because its rights were taken away: its will is not published. */
  revoked: boolean;
  /** Bytes authorized for delivery in this turn of the event loop and not yet written. */
  unflushed: number;
  /**
   * The connection's generation among the device's connections on every node, when nodes share
   * Redis (src/cluster/ownership.ts); null on a single node.
   */
  generation: number | null;
  /** Ingest of this client's publishes in arrival order; set while one waits on the store. */
  pending: Promise<void> | null;
  /** Custom publishes of this client in arrival order; set while a retained one waits on Redis. */
  customPending: Promise<void> | null;
  /**
   * A resumed persistent session: the QoS 1 messages sent to it since it connected, while its
   * queue is read (mqtt-broker.ts, "the reconnect race"); null otherwise.
   */
  replayed: Set<string> | null;
  /** Numbers of queued messages left out as already sent live (QueueReplay.keep); null until the first. */
  keptQueued: Set<number> | null;
}

/** Sessions by device id, and who is subscribed to each device's command topic. */
export class SessionTable {
  private readonly byDevice = new Map<string, Session>();
  private readonly byClient = new WeakMap<Client, Session>();
  private readonly commandSubscribers = new Map<string, Set<Session>>();

  bind(session: Session): void {
    this.byClient.set(session.client, session);
  }

  /** The session of an aedes client, once authenticated. */
  of(client: Client | null): Session | undefined {
    return client ? this.byClient.get(client) : undefined;
  }

  activate(session: Session): void {
    this.byDevice.set(session.deviceId, session);
  }

  /** Removes the session; false when a newer connection of the device had already replaced it. */
  deactivate(session: Session): boolean {
    if (session.commandSubscriptions) {
      for (const deviceId of session.commandSubscriptions.keys()) this.unsubscribeCommands(session, deviceId);
    }
    if (this.byDevice.get(session.deviceId) !== session) return false;
    this.byDevice.delete(session.deviceId);
    return true;
  }

  current(deviceId: string): Session | undefined {
    return this.byDevice.get(deviceId);
  }

  all(): IterableIterator<Session> {
    return this.byDevice.values();
  }

  get size(): number {
    return this.byDevice.size;
  }

  subscribeCommands(session: Session, deviceId: string, qos: 0 | 1): void {
    session.commandSubscriptions ??= new Map();
    session.commandSubscriptions.set(deviceId, qos);
    let set = this.commandSubscribers.get(deviceId);
    if (!set) {
      set = new Set();
      this.commandSubscribers.set(deviceId, set);
    }
    set.add(session);
  }

  unsubscribeCommands(session: Session, deviceId: string): void {
    session.commandSubscriptions?.delete(deviceId);
    const set = this.commandSubscribers.get(deviceId);
    if (!set) return;
    set.delete(session);
    if (set.size === 0) this.commandSubscribers.delete(deviceId);
  }

  /** Live sessions subscribed to a device's command topic. */
  commandSubscribersOf(deviceId: string): Session[] {
    return [...(this.commandSubscribers.get(deviceId) ?? [])].filter((s) => this.byDevice.get(s.deviceId) === s);
  }
}
