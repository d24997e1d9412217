/**
 * Messages between nodes over Redis pub/sub: notices to every node, and requests to one node or
 * to all, each answered on the asker's own channel. Pub/sub delivers to whoever is subscribed
 * now and keeps nothing, so every request has a timeout and a missing answer counts as none.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from '../logger.js';
import type { RedisLinks } from './redis.js';

type Envelope =
  | { t: 'notice'; kind: string; from: string; body: unknown }
  | { t: 'request'; kind: string; from: string; id: string; body: unknown }
  | { t: 'reply'; from: string; id: string; body: unknown };

type RequestHandler = (body: unknown, from: string) => Promise<unknown> | unknown;
type NoticeHandler = (body: unknown, from: string) => void;

interface Waiting {
  expected: Set<string>;
  replies: Map<string, unknown>;
  resolve(replies: Map<string, unknown>): void;
  timer: NodeJS.Timeout;
}

export class Messenger {
  readonly allChannel: string;
  readonly ownChannel: string;
  private readonly requestHandlers = new Map<string, RequestHandler>();
  private readonly noticeHandlers = new Map<string, NoticeHandler[]>();
  private readonly waiting = new Map<string, Waiting>();
  private readonly rawHandlers = new Map<string, (message: string) => void>();
  private started = false;

  constructor(
    private readonly links: RedisLinks,
    private readonly logger: Logger,
  ) {
    this.allChannel = `${links.prefix}all`;
    this.ownChannel = `${links.prefix}node:${links.nodeId}`;
  }

  get nodeId(): string {
    return this.links.nodeId;
  }

  /** Subscribes to the broadcast channel, this node's own, and the raw channels registered so far. */
  async start(): Promise<void> {
    this.started = true;
    this.links.subscriber.on('message', (channel: string, message: string) => this.receive(channel, message));
    await this.links.subscriber.subscribe(this.allChannel, this.ownChannel, ...this.rawHandlers.keys());
  }

  /** A channel whose messages are not envelopes (the stream events). */
  async onRaw(channel: string, handler: (message: string) => void): Promise<void> {
    this.rawHandlers.set(channel, handler);
    if (this.started) await this.links.subscriber.subscribe(channel);
  }

  onRequest(kind: string, handler: RequestHandler): void {
    this.requestHandlers.set(kind, handler);
  }

  onNotice(kind: string, handler: NoticeHandler): void {
    const list = this.noticeHandlers.get(kind) ?? [];
    list.push(handler);
    this.noticeHandlers.set(kind, list);
  }

  /** Tells every node, this one included. */
  async notify(kind: string, body: unknown): Promise<void> {
    const envelope: Envelope = { t: 'notice', kind, from: this.nodeId, body };
    await this.links.command.publish(this.allChannel, JSON.stringify(envelope));
  }

  /** Tells one node. */
  async notifyNode(nodeId: string, kind: string, body: unknown): Promise<void> {
    const envelope: Envelope = { t: 'notice', kind, from: this.nodeId, body };
    await this.links.command.publish(this.channelOf(nodeId), JSON.stringify(envelope));
  }

  /** Asks one node; undefined when it did not answer in time (or Redis failed). */
  async request(nodeId: string, kind: string, body: unknown, timeoutMs: number): Promise<unknown> {
    const replies = await this.ask([nodeId], this.channelOf(nodeId), kind, body, timeoutMs);
    return replies.get(nodeId);
  }

  /** Asks every node in `nodes` (others than this one) at once; answers whoever replied in time. */
  requestAll(nodes: string[], kind: string, body: unknown, timeoutMs: number): Promise<Map<string, unknown>> {
    const others = nodes.filter((n) => n !== this.nodeId);
    if (others.length === 0) return Promise.resolve(new Map());
    return this.ask(others, this.allChannel, kind, body, timeoutMs);
  }

  private ask(
    expected: string[],
    channel: string,
    kind: string,
    body: unknown,
    timeoutMs: number,
  ): Promise<Map<string, unknown>> {
    const id = randomBytes(8).toString('hex');
    return new Promise((resolve) => {
      const waiting: Waiting = {
        expected: new Set(expected),
        replies: new Map(),
        resolve,
        timer: setTimeout(() => this.finish(id), timeoutMs),
      };
      waiting.timer.unref();
      this.waiting.set(id, waiting);
      const envelope: Envelope = { t: 'request', kind, from: this.nodeId, id, body };
      this.links.command.publish(channel, JSON.stringify(envelope)).catch(() => this.finish(id));
    });
  }

  private finish(id: string): void {
    const waiting = this.waiting.get(id);
    if (!waiting) return;
    this.waiting.delete(id);
    clearTimeout(waiting.timer);
    waiting.resolve(waiting.replies);
  }

  private channelOf(nodeId: string): string {
    return `${this.links.prefix}node:${nodeId}`;
  }

  private receive(channel: string, message: string): void {
    const raw = this.rawHandlers.get(channel);
    if (raw) {
      raw(message);
      return;
    }
    let envelope: Envelope;
    try {
      envelope = JSON.parse(message) as Envelope;
    } catch {
      return;
    }
    switch (envelope.t) {
      case 'notice':
        for (const handler of this.noticeHandlers.get(envelope.kind) ?? []) {
          try {
            handler(envelope.body, envelope.from);
          } catch (err) {
            this.logger.error({ event: 'clusterNoticeFailed', kind: envelope.kind, err }, 'cluster notice failed');
          }
        }
        return;
      case 'request': {
        // A broadcast reaches its sender too: it answers itself without Redis.
        if (envelope.from === this.nodeId) return;
        const handler = this.requestHandlers.get(envelope.kind);
        if (!handler) return;
        const { from, id } = envelope;
        Promise.resolve()
          .then(() => handler(envelope.body, from))
          .then((body) => {
            const reply: Envelope = { t: 'reply', from: this.nodeId, id, body: body ?? null };
            return this.links.command.publish(this.channelOf(from), JSON.stringify(reply));
          })
          .catch((err: unknown) =>
            this.logger.error({ event: 'clusterRequestFailed', kind: envelope.kind, err }, 'cluster request failed'),
          );
        return;
      }
      case 'reply': {
        const waiting = this.waiting.get(envelope.id);
        if (!waiting?.expected.has(envelope.from)) return;
        waiting.replies.set(envelope.from, envelope.body);
        if (waiting.replies.size === waiting.expected.size) this.finish(envelope.id);
        return;
      }
    }
  }
}
