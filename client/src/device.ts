/**
 * A device's connection to Gatehouse over MQTT (client id = device id, username = access key,
 * password = access secret, as Losant's MQTT; topics and payloads are @gatehouse/wire), with:
 *
 * - store-and-forward: every state goes through a bounded queue (on disk by default), online or
 *   not, so states leave in order; an entry leaves the queue when the server acknowledged it
 *   (QoS 1: Gatehouse sends the PUBACK only once the state is stored);
 * - idempotent resends: each state is stamped with its time (ms) when queued, strictly increasing
 *   per device, and keeps it on every resend; Gatehouse merges two states of one device with the
 *   same millisecond, so a resend after a lost PUBACK stores nothing twice;
 * - reconnection with jittered exponential backoff, managed here (MQTT.js's own reconnect is
 *   off), re-subscribing the command and error topics after each reconnect;
 * - a paced drain: at most `maxRate` states per second, at most `maxInflight` unacknowledged.
 */
import path from 'node:path';
import {
  ANY_TOPIC_LEVEL,
  type CommandMessage,
  commandTopic,
  DEFAULT_TOPIC_PREFIX,
  type ErrorNotice,
  encodeState,
  errorTopic,
  isTimeMs,
  isTopicLevel,
  parseCommand,
  parseErrorNotice,
  parseTopic,
  type StateData,
  stateTopic,
} from '@gatehouse/wire';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { type BackoffOptions, backoffDelay, backoffOptions } from './backoff.js';
import { FileQueue } from './queue/file-queue.js';
import { MemoryQueue } from './queue/memory-queue.js';
import type { QueuedState, QueueOptions, StateQueue } from './queue/types.js';
import { TokenBucket } from './rate.js';
import { TypedEmitter } from './typed-emitter.js';

/** A command for a device (Losant's command topic). `time` is when the server sent it. */
export interface Command extends CommandMessage {
  /** The device the command is for: the gateway itself or one of its peripherals. */
  deviceId: string;
}

/**
 * Something the server refused and reported on the device's error topic (a Gatehouse addition):
 * `code` is the HTTP status the same refusal gets over REST (400, 403, 404, 413, 429). A refused
 * command subscription is reported the same way, with code 403.
 */
export interface Rejection extends ErrorNotice {
  /** The device the refused message was for (from `topic`), or the reporting device itself. */
  deviceId: string;
}

/** Device ids end up in topics: no empty ids, no `/`, no MQTT wildcards, no white space. */
export function checkDeviceId(id: string): string {
  if (!isTopicLevel(id)) throw new TypeError(`invalid device id ${JSON.stringify(id)}`);
  return id;
}

export interface DeviceOptions {
  /** The device id (24 hex characters in Gatehouse); also the MQTT client id. */
  id: string;
  /** Access key and secret; the key must cover this device. */
  key: string;
  secret: string;
  /**
   * Broker URL: `mqtt://host:1883`, `mqtts://host:8883`, `ws://host:8080/mqtt` or
   * `wss://host/mqtt`. Default `mqtt://localhost:1883`.
   */
  url?: string;
  /** CA certificate(s) (PEM) to trust for mqtts:// and wss://, e.g. a self-signed server's certificate. */
  ca?: string | string[] | Buffer | Buffer[];
  /** Default true: refuse a server whose certificate is not trusted. */
  rejectUnauthorized?: boolean;
  /** Topic prefix. Default `losant`. */
  topicPrefix?: string;
  /** MQTT keep-alive in seconds. Default 60. */
  keepalive?: number;
  /** How long one connection attempt may take, in ms. Default 10000. */
  connectTimeout?: number;
  /** Reconnect delays; see BackoffOptions. */
  backoff?: Partial<BackoffOptions>;
  /**
   * Where states wait: `{type: 'disk', dir}` (the default, in `./gatehouse-queue/DEVICE_ID`),
   * `{type: 'memory'}`, or any StateQueue.
   */
  queue?: QueueOptions | StateQueue;
  /**
   * At most this many states per second leave the queue (0: no limit). Default 10. Gatehouse
   * limits each device (each peripheral, for a gateway) to 30 messages per 15 s unless the
   * application says otherwise, and drops what is over: keep the drain below your limit.
   */
  maxRate?: number;
  /** At most this many states sent and not yet acknowledged. Default 10. */
  maxInflight?: number;
  /**
   * Default true: a CONNACK refusal (bad credentials, key not covering the device, unknown
   * device) ends the device (`error`, then `close`) instead of retrying forever.
   */
  stopOnRefusal?: boolean;
}

/** How a `sendState` ended: acknowledged by the server, kept in the queue for later, or dropped by the bound. */
export type SendResult = 'sent' | 'queued' | 'dropped';

/** A state the bounded queue dropped to make room; `total` counts every drop since the queue was opened. */
export interface DroppedState {
  deviceId: string;
  data: StateData;
  time: Date;
  total: number;
}

export interface DeviceEvents {
  /** The first connection (and subscriptions) succeeded. */
  connect: [];
  /** A later connection succeeded; subscriptions are back and the queue drains. */
  reconnected: [];
  /** A live connection was lost (with the transport's error, when there was one). */
  offline: [error: Error | undefined];
  /** The next connection attempt is scheduled. */
  reconnecting: [info: { attempt: number; delay: number; error: Error | undefined }];
  /** The device is finished: `disconnect()` was called, or the server refused it for good. */
  close: [];
  /** A command for this device. */
  command: [command: Command];
  /** The server refused something this device sent or subscribed to (its error topic). */
  rejected: [rejection: Rejection];
  /** The bounded queue dropped its oldest state. */
  dropped: [state: DroppedState];
  /** A problem that does not stop the device (a malformed command, ...), or the refusal that does. */
  error: [error: Error];
}

/** The server refused the connection: `code` is the CONNACK return code (4: bad credentials, 5: not authorized). */
export class ConnectionRefusedError extends Error {
  override name = 'ConnectionRefusedError';
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** A connection that stayed up this long resets the backoff to its first delay. */
const STABLE_MS = 10_000;

type Phase = 'idle' | 'connecting' | 'online' | 'waiting' | 'closed';

export class Device extends TypedEmitter<DeviceEvents> {
  readonly id: string;
  readonly url: string;
  readonly topicPrefix: string;
  protected readonly options: DeviceOptions;
  private readonly backoff: BackoffOptions;
  private readonly bucket: TokenBucket;
  private readonly maxInflight: number;
  private queueInstance: StateQueue | null = null;
  private client: MqttClient | null = null;
  /** Grows on every connection loss; callbacks of an older connection are ignored. */
  private epoch = 0;
  private phase: Phase = 'idle';
  private attempt = 0;
  private onlineSince = 0;
  private everConnected = false;
  private lastError: Error | undefined;
  private fatal: ConnectionRefusedError | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pumpTimer: NodeJS.Timeout | undefined;
  private readonly inflight = new Set<number>();
  private readonly waiters = new Map<number, (result: SendResult) => void>();
  private flushWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private readonly lastTime = new Map<string, number>();
  private firstConnect: { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(options: DeviceOptions) {
    super();
    this.options = options;
    this.id = checkDeviceId(options.id);
    this.url = options.url ?? 'mqtt://localhost:1883';
    this.topicPrefix = options.topicPrefix ?? DEFAULT_TOPIC_PREFIX;
    this.backoff = backoffOptions(options.backoff);
    this.bucket = new TokenBucket(options.maxRate ?? 10);
    this.maxInflight = options.maxInflight ?? 10;
    if (!Number.isInteger(this.maxInflight) || this.maxInflight < 1) {
      throw new RangeError(`maxInflight must be a positive integer, got ${options.maxInflight}`);
    }
  }

  /** True while connected and subscribed. */
  get connected(): boolean {
    return this.phase === 'online';
  }

  /** States waiting in the queue (sent but not acknowledged ones included). */
  get queued(): number {
    return this.queueInstance?.length ?? 0;
  }

  /** States the bounded queue dropped since it was opened. */
  get dropped(): number {
    return this.queueInstance?.dropped ?? 0;
  }

  /**
   * Connects, retrying with backoff until it works. Resolves on the first connection; rejects
   * with a ConnectionRefusedError when the server refuses the credentials (see `stopOnRefusal`),
   * or when `disconnect()` comes first. States may be sent before it resolves: they are queued.
   */
  connect(): Promise<void> {
    if (this.phase === 'closed') return Promise.reject(new Error(`device ${this.id} was disconnected`));
    if (!this.firstConnect) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // Handled here too, so that a refusal nobody awaited is not an unhandled rejection (it is
      // also emitted as `error` and `close`).
      promise.catch(() => {});
      this.firstConnect = { promise, resolve, reject };
      try {
        this.queue();
      } catch (err) {
        this.firstConnect = undefined;
        return Promise.reject(err);
      }
      this.dial();
    }
    return this.firstConnect.promise;
  }

  /**
   * Reports state for this device. The state gets its time now (or `time`), goes into the queue,
   * and leaves it in order. Resolves `'sent'` once the server acknowledged it, `'queued'` when
   * the device is offline (it will be sent after reconnecting, or by a later process using the
   * same disk queue), or `'dropped'` if the bound pushed it out first.
   */
  sendState(data: StateData, time?: Date | number): Promise<SendResult> {
    return this.enqueue(this.id, data, time);
  }

  /** Resolves once the queue is empty (everything acknowledged or dropped). */
  flush(): Promise<void> {
    if (this.queued === 0) return Promise.resolve();
    if (this.phase === 'closed') return Promise.reject(new Error(`device ${this.id} was disconnected`));
    return new Promise((resolve, reject) => this.flushWaiters.push({ resolve, reject }));
  }

  /**
   * Disconnects cleanly and stops reconnecting. States not yet acknowledged stay in the queue
   * (on disk: for the next process using it). The device cannot be connected again.
   */
  async disconnect(): Promise<void> {
    if (this.phase === 'closed') return;
    const client = this.client;
    this.stop();
    if (client) await client.endAsync(!client.connected).catch(() => {});
    this.firstConnect?.reject(new Error(`device ${this.id} was disconnected before it connected`));
    this.emit('close');
  }

  // For Gateway

  protected enqueue(deviceId: string, data: StateData, time: Date | number | undefined): Promise<SendResult> {
    if (this.phase === 'closed') return Promise.reject(new Error(`device ${this.id} was disconnected`));
    let entry: QueuedState;
    let dropped: QueuedState[];
    try {
      if (typeof data !== 'object' || data === null || Array.isArray(data)) {
        throw new TypeError('state data must be an object of attribute values');
      }
      const copy = JSON.parse(JSON.stringify(data)) as StateData; // later changes by the caller do not leak in
      ({ entry, dropped } = this.queue().push({ deviceId, data: copy, time: this.stamp(deviceId, time) }));
    } catch (err) {
      return Promise.reject(err);
    }
    for (const gone of dropped) this.onDropped(gone);
    const result =
      this.phase === 'online' || this.phase === 'connecting'
        ? new Promise<SendResult>((resolve) => this.waiters.set(entry.seq, resolve))
        : Promise.resolve<SendResult>('queued');
    this.pump();
    return result;
  }

  /** Device ids whose command topics this connection subscribes to, besides its own. */
  protected commandTargets(): string[] {
    return [];
  }

  /** Subscribes one more command topic now, when connected (a peripheral added while online). */
  protected async subscribeCommands(deviceId: string): Promise<void> {
    const client = this.client;
    if (client && this.phase === 'online') await this.subscribe(client, commandTopic(deviceId, this.topicPrefix));
  }

  protected async unsubscribeCommands(deviceId: string): Promise<void> {
    const client = this.client;
    if (client && this.phase === 'online') {
      await client.unsubscribeAsync(commandTopic(deviceId, this.topicPrefix)).catch(() => {});
    }
  }

  protected routeCommand(command: Command): void {
    if (command.deviceId === this.id) this.emit('command', command);
  }

  protected routeRejection(rejection: Rejection): void {
    this.emit('rejected', rejection);
  }

  protected routeDropped(state: DroppedState): void {
    this.emit('dropped', state);
  }

  // Connection

  private dial(): void {
    this.phase = 'connecting';
    const options: IClientOptions = {
      clientId: this.id,
      username: this.options.key,
      password: this.options.secret,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0, // reconnection is ours: backoff, re-subscription, queue
      resubscribe: false,
      queueQoSZero: false,
      keepalive: this.options.keepalive ?? 60,
      connectTimeout: this.options.connectTimeout ?? 10_000,
      ...(this.options.ca ? { ca: this.options.ca } : {}),
      ...(this.options.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
    };
    const client = mqtt.connect(this.url, options);
    this.client = client;
    client.on('connect', () => {
      if (this.client === client) void this.online(client);
    });
    client.on('message', (t, payload) => {
      if (this.client === client) this.onMessage(t, payload);
    });
    client.on('error', (err: Error & { code?: unknown }) => {
      if (this.client !== client) return;
      this.lastError = err;
      // CONNACK 1 (protocol), 2 (client id), 4 (credentials), 5 (not authorized): retrying will not help.
      if (typeof err.code === 'number' && [1, 2, 4, 5].includes(err.code) && this.options.stopOnRefusal !== false) {
        this.fatal = new ConnectionRefusedError(err.code, `connection refused: ${err.message}`);
      }
    });
    client.on('close', () => {
      if (this.client === client) this.offline(client);
    });
  }

  private async online(client: MqttClient): Promise<void> {
    const targets = [this.id, ...this.commandTargets()];
    await Promise.all([
      this.subscribe(client, errorTopic(this.id, this.topicPrefix)),
      ...targets.map((id) => this.subscribe(client, commandTopic(id, this.topicPrefix))),
    ]);
    if (this.client !== client || !client.connected) return;
    this.phase = 'online';
    this.onlineSince = Date.now();
    this.lastError = undefined;
    if (this.everConnected) {
      this.emit('reconnected');
    } else {
      this.everConnected = true;
      this.firstConnect?.resolve();
      this.emit('connect');
    }
    this.pump();
  }

  /** QoS 1 subscription; a refusal (SUBACK 0x80) is reported as a rejection, not thrown. */
  private async subscribe(client: MqttClient, t: string): Promise<void> {
    try {
      await client.subscribeAsync(t, { qos: 1 });
    } catch (err) {
      if (this.client !== client || !client.connected) return;
      // MQTT.js rejects when the SUBACK holds 0x80; the SUBACK rides on the error.
      const granted = (err as { packet?: { granted?: unknown[] } }).packet?.granted ?? [];
      const refused = granted.some((g) => (typeof g === 'number' ? g : (g as { qos?: number }).qos) === 0x80);
      if (!refused) return; // the connection is going away; the next one subscribes again
      this.routeRejection({
        code: 403,
        message: `subscription to ${t} refused by the server`,
        topic: t,
        deviceId: this.deviceOf(t),
        time: new Date(),
      });
    }
  }

  private offline(client: MqttClient): void {
    const wasOnline = this.phase === 'online';
    this.client = null;
    this.epoch++;
    this.inflight.clear();
    this.clearPump();
    client.end(true);
    this.settleWaiters('queued');
    if (wasOnline) {
      if (Date.now() - this.onlineSince >= STABLE_MS) this.attempt = 0;
      this.emit('offline', this.lastError);
    }
    if (this.phase === 'closed') return;
    if (this.fatal) {
      const fatal = this.fatal;
      this.stop();
      this.firstConnect?.reject(fatal);
      this.emit('error', fatal);
      this.emit('close');
      return;
    }
    this.phase = 'waiting';
    const delay = backoffDelay(this.attempt++, this.backoff);
    this.emit('reconnecting', { attempt: this.attempt, delay, error: this.lastError });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.phase === 'waiting') this.dial();
    }, delay);
  }

  private stop(): void {
    this.phase = 'closed';
    this.client = null;
    this.epoch++;
    this.inflight.clear();
    this.clearPump();
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.settleWaiters('queued');
    for (const waiter of this.flushWaiters.splice(0)) waiter.reject(new Error(`device ${this.id} was disconnected`));
    this.queueInstance?.close();
  }

  private onMessage(t: string, payload: Buffer): void {
    const parsed = parseTopic(t, this.topicPrefix, ANY_TOPIC_LEVEL);
    if (parsed.kind === 'command') {
      const command = parseCommand(payload);
      if (command.ok) this.routeCommand({ deviceId: parsed.deviceId, ...command.value });
      else this.emit('error', new Error(`malformed command for ${parsed.deviceId}: ${command.reason}`));
    } else if (parsed.kind === 'error' && parsed.deviceId === this.id) {
      const notice = parseErrorNotice(payload);
      if (notice.ok) this.routeRejection({ ...notice.value, deviceId: this.deviceOf(notice.value.topic) });
      else this.emit('error', new Error(`malformed error notice for ${this.id}: ${notice.reason}`));
    }
  }

  /** The device a refused topic names (a peripheral, for a gateway), or this device. */
  private deviceOf(refused: string): string {
    const parsed = parseTopic(refused, this.topicPrefix, ANY_TOPIC_LEVEL);
    return 'deviceId' in parsed && parsed.deviceId !== undefined ? parsed.deviceId : this.id;
  }

  // Queue

  private queue(): StateQueue {
    if (this.queueInstance) return this.queueInstance;
    const spec = this.options.queue ?? {};
    let queue: StateQueue;
    if ('open' in spec) {
      queue = spec;
    } else if (spec.type === 'memory') {
      queue = new MemoryQueue(spec.maxMessages === undefined ? {} : { maxMessages: spec.maxMessages });
    } else {
      queue = new FileQueue({
        dir: spec.dir ?? path.join('gatehouse-queue', this.id),
        ...(spec.maxMessages === undefined ? {} : { maxMessages: spec.maxMessages }),
        ...(spec.fsync === undefined ? {} : { fsync: spec.fsync }),
      });
    }
    queue.open();
    // States left by an earlier process keep their times; new ones must come after them.
    for (const entry of queue.peek(queue.length)) {
      this.lastTime.set(entry.deviceId, Math.max(this.lastTime.get(entry.deviceId) ?? 0, entry.time));
    }
    this.queueInstance = queue;
    return queue;
  }

  /**
   * The state's time: `time` when given, otherwise now, but always after the previous state of
   * the same device, so no two queued states of a device share a millisecond (they would merge).
   */
  private stamp(deviceId: string, time: Date | number | undefined): number {
    const now = Date.now();
    if (time !== undefined) {
      const ms = time instanceof Date ? time.getTime() : time;
      if (!isTimeMs(ms)) throw new TypeError(`invalid state time ${String(time)}`);
      if (ms <= now) this.lastTime.set(deviceId, Math.max(this.lastTime.get(deviceId) ?? 0, ms));
      return ms;
    }
    const ms = Math.max(now, (this.lastTime.get(deviceId) ?? 0) + 1);
    this.lastTime.set(deviceId, ms);
    return ms;
  }

  private pump(): void {
    const client = this.client;
    const queue = this.queueInstance;
    if (this.phase !== 'online' || !client || !queue || this.pumpTimer) return;
    for (const entry of queue.peek(this.maxInflight)) {
      if (this.inflight.size >= this.maxInflight) break;
      if (this.inflight.has(entry.seq)) continue;
      const wait = this.bucket.take();
      if (wait > 0) {
        this.pumpTimer = setTimeout(() => {
          this.pumpTimer = undefined;
          this.pump();
        }, wait);
        return;
      }
      this.publish(client, entry);
    }
  }

  private publish(client: MqttClient, entry: QueuedState): void {
    const epoch = this.epoch;
    this.inflight.add(entry.seq);
    const payload = encodeState({ data: entry.data, time: entry.time });
    client.publish(stateTopic(entry.deviceId, this.topicPrefix), payload, { qos: 1 }, (err) => {
      if (epoch !== this.epoch) return; // that connection is gone; the entry is still queued
      this.inflight.delete(entry.seq);
      if (err) {
        this.emit('error', err);
        return;
      }
      this.queueInstance?.ack(entry.seq);
      this.settle(entry.seq, 'sent');
      if (this.queued === 0) for (const waiter of this.flushWaiters.splice(0)) waiter.resolve();
      this.pump();
    });
  }

  private onDropped(entry: QueuedState): void {
    this.settle(entry.seq, 'dropped');
    this.routeDropped({
      deviceId: entry.deviceId,
      data: entry.data,
      time: new Date(entry.time),
      total: this.dropped,
    });
  }

  private settle(seq: number, result: SendResult): void {
    const waiter = this.waiters.get(seq);
    if (!waiter) return;
    this.waiters.delete(seq);
    waiter(result);
  }

  private settleWaiters(result: SendResult): void {
    const waiters = [...this.waiters.values()];
    this.waiters.clear();
    for (const waiter of waiters) waiter(result);
  }

  private clearPump(): void {
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
  }
}
