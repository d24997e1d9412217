/**
 * The fuzzer's MQTT clients: one real MQTT.js connection per client role. When the server
 * closes a connection (a protocol violation, a restart) a new client replaces it, with fresh
 * stores, so nothing the old one had in flight is sent again.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { CLIENT_KEYS, CLIENT_ROLES, type ClientRole, type Fleet } from './model.js';

export interface Received {
  client: ClientRole;
  topic: string;
  payload: Buffer;
  retain: boolean;
}

export type PublishOutcome = 'sent' | 'acked' | 'closed' | 'timeout' | 'unencodable';

/**
 * MQTT encodes a topic's length in two bytes: longer ones cannot be sent at all. MQTT.js 5 sends
 * nothing for an empty topic over MQTT 3.1.1 and never settles the publish (an empty topic is
 * an MQTT 5 topic alias); `test/integration/mqtt-limits.test.ts` sends one with a raw client.
 */
const encodable = (topic: string) => topic.length > 0 && Buffer.byteLength(topic) <= 65_535;

const ANSWER_MS = 5_000;

class Connection {
  private client: MqttClient | null = null;
  private ready: Promise<MqttClient> | null = null;
  /** Connections the server closed, and replacements made. */
  closes = 0;
  private stopped = false;

  constructor(
    readonly role: ClientRole,
    private readonly url: () => string,
    private readonly fleet: Fleet,
    private readonly onMessage: (m: Received) => void,
  ) {}

  /** The connected client, connecting (again) when needed. */
  connected(): Promise<MqttClient> {
    if (this.client?.connected) return Promise.resolve(this.client);
    this.ready ??= this.connect().finally(() => {
      this.ready = null;
    });
    return this.ready;
  }

  private async connect(): Promise<MqttClient> {
    const key = this.fleet.keys[CLIENT_KEYS[this.role]];
    for (let attempt = 0; ; attempt++) {
      if (this.stopped) throw new Error('stopped');
      const client = mqtt.connect(this.url(), {
        clientId: this.fleet.devices[this.role].id,
        username: key.key,
        password: key.secret,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
        keepalive: 60,
        // QoS 0 publishes made while offline must not pile up and be sent later.
        queueQoSZero: false,
      });
      client.on('error', () => {});
      // Every case in flight on this client listens for its close.
      client.setMaxListeners(0);
      try {
        await new Promise<void>((resolve, reject) => {
          client.once('connect', () => resolve());
          client.once('close', () => reject(new Error('closed before CONNACK')));
          client.once('error', (err) => reject(err));
        });
      } catch {
        client.end(true);
        // The server may be restarting: back off a little, up to half a second.
        await new Promise((r) => setTimeout(r, Math.min(500, 20 * 2 ** attempt)));
        continue;
      }
      client.on('message', (topic, payload, packet) =>
        this.onMessage({ client: this.role, topic, payload, retain: packet.retain }),
      );
      client.once('close', () => {
        if (this.client === client) {
          this.client = null;
          if (!this.stopped) this.closes++;
        }
        client.end(true);
      });
      this.client = client;
      return client;
    }
  }

  async publish(topic: string, payload: Buffer, qos: 0 | 1, retain: boolean): Promise<PublishOutcome> {
    if (!encodable(topic)) return 'unencodable';
    const client = await this.connected();
    return new Promise((resolve) => {
      const finish = (outcome: PublishOutcome) => {
        clearTimeout(timer);
        client.off('close', onClose);
        resolve(outcome);
      };
      const onClose = () => finish('closed');
      const timer = setTimeout(() => finish('timeout'), ANSWER_MS);
      client.once('close', onClose);
      try {
        client.publish(topic, payload, { qos, retain }, (err) => finish(err ? 'closed' : qos === 0 ? 'sent' : 'acked'));
      } catch {
        finish('closed');
      }
    });
  }

  async subscribe(filters: string[], qos: 0 | 1): Promise<number[] | 'closed' | 'invalid' | 'unencodable'> {
    // MQTT.js would throw from inside its own promise chain and leave a rejection unhandled.
    if (!filters.every(encodable)) return 'unencodable';
    const client = await this.connected();
    try {
      return (await client.subscribeAsync(filters, { qos })).map((g) => g.qos);
    } catch (err) {
      // A refused subscription (0x80) rejects too, with the SUBACK on the error.
      const granted = (err as { packet?: { granted?: Array<number | { qos: number }> } }).packet?.granted;
      if (granted) return granted.map((g) => (typeof g === 'number' ? g : g.qos));
      return /Invalid topic/i.test((err as Error).message) ? 'invalid' : 'closed';
    }
  }

  async unsubscribe(filters: string[]): Promise<void> {
    const client = await this.connected();
    await client.unsubscribeAsync(filters).catch(() => {});
  }

  /** No more connection attempts: waiting and later calls fail. */
  abort(): void {
    this.stopped = true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.client?.endAsync(true).catch(() => {});
  }
}

export class MqttPool {
  private readonly connections: Map<ClientRole, Connection>;

  constructor(url: () => string, fleet: Fleet, onMessage: (m: Received) => void) {
    this.connections = new Map(CLIENT_ROLES.map((role) => [role, new Connection(role, url, fleet, onMessage)]));
  }

  get(role: ClientRole): Connection {
    return this.connections.get(role)!;
  }

  async connectAll(): Promise<void> {
    await Promise.all([...this.connections.values()].map((c) => c.connected()));
  }

  /** Connections the server closed so far. */
  get closes(): number {
    let n = 0;
    for (const c of this.connections.values()) n += c.closes;
    return n;
  }

  abort(): void {
    for (const c of this.connections.values()) c.abort();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.connections.values()].map((c) => c.stop()));
  }
}
