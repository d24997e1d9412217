/**
 * The live-stream history the nodes sharing Redis keep together (the cluster's counterpart of
 * core/event-history.ts), so a stream on any node sees what every node committed, and a client
 * reconnecting with Last-Event-ID to another node is sent what it missed.
 *
 * - Which applications are watched is shared: a node with streams open on an application keeps
 *   it in a Redis hash with an expiry (refreshed while streams stay open, kept `keepMs` after the
 *   last closes) and tells the others at once when it starts.
 * - The node that commits a state, command or log entry of a watched application adds it to the
 *   application's Redis stream (bounded, MAXLEN ~) and publishes it, in one script: the stream
 *   entry id is the event id, and every node receives events in id order.
 * - Every node dispatches the published events to its own open streams, and keeps them in a
 *   local ring per watched application, as the single-process history does.
 * - A replay reads the local ring when it reaches back far enough, otherwise the Redis stream,
 *   then the ring for whatever arrived meanwhile.
 *
 * Event ids are the stream entry ids `ms-seq` as one number, ms × 1024 + seq: they grow with
 * time like the single-process ids do, so a client coming from a lone server is told of a gap.
 */
import {
  commandEvent,
  DEFAULT_HISTORY,
  type EventHistoryOptions,
  logEvent,
  type Replay,
  Ring,
  type StreamEvent,
  type StreamEventListener,
  type StreamHistory,
  stateEvent,
  type UnnumberedEvent,
} from '../core/event-history.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../logger.js';
import type { Messenger } from './messenger.js';
import type { RedisLinks } from './redis.js';

const SEQ = 1024;
/** How often the shared list of watched applications is refreshed from Redis. */
const REFRESH_MS = 2_000;

const RECORD = `
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[4], id .. ' ' .. ARGV[2])
return id`;

export function toEventId(streamId: string): number {
  const [ms, seq] = streamId.split('-');
  return Number(ms) * SEQ + Math.min(Number(seq), SEQ - 1);
}

export function toStreamId(eventId: number): string {
  return `${Math.floor(eventId / SEQ)}-${eventId % SEQ}`;
}

interface LocalWatch {
  ring: Ring;
  watchers: number;
  dropTimer: NodeJS.Timeout | undefined;
}

export class SharedEventHistory implements StreamHistory {
  private readonly local = new Map<string, LocalWatch>();
  /** Applications watched on any node, with when that ends (ms). */
  private watched = new Map<string, number>();
  private readonly listeners = new Set<StreamEventListener>();
  private readonly unsubscribe: Array<() => void>;
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly keepMs: number;
  private readonly clock: () => number;
  private readonly watchedKey: string;
  private readonly sinceKey: string;
  private readonly channel: string;
  private last: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    bus: EventBus,
    private readonly links: RedisLinks,
    private readonly messenger: Messenger,
    private readonly logger: Logger,
    options: EventHistoryOptions = {},
  ) {
    this.maxEvents = options.maxEvents ?? DEFAULT_HISTORY.maxEvents;
    this.maxBytes = options.maxBytes ?? DEFAULT_HISTORY.maxBytes;
    this.keepMs = options.keepMs ?? DEFAULT_HISTORY.keepMs;
    this.clock = options.clock ?? Date.now;
    this.last = Math.floor(this.clock()) * SEQ;
    this.watchedKey = `${links.prefix}watched`;
    this.sinceKey = `${links.prefix}watched-since`;
    this.channel = `${links.prefix}events`;
    this.unsubscribe = [
      bus.on('state', (s) => this.offer(s.applicationId, () => stateEvent(s))),
      bus.on('command', (c) => this.offer(c.applicationId, () => commandEvent(c))),
      bus.on('deviceLog', (l) => this.offer(l.applicationId, () => logEvent(l))),
    ];
    messenger.onNotice('watch', (body) => {
      const { applicationId, until } = body as { applicationId: string; until: number };
      this.watched.set(applicationId, Math.max(until, this.watched.get(applicationId) ?? 0));
    });
  }

  async start(): Promise<void> {
    await this.messenger.onRaw(this.channel, (message) => this.received(message));
    await this.refresh();
    this.timer = setInterval(() => void this.refresh().catch(() => {}), REFRESH_MS);
    this.timer.unref();
  }

  get lastId(): number {
    return this.last;
  }

  /** Any id up to a minute ahead of this node's clock: another node may have given it out just now. */
  knows(id: number): boolean {
    return id <= Math.max(this.last, (this.clock() + 60_000) * SEQ);
  }

  onEvent(listener: StreamEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  watch(applicationId: string): () => void {
    let watch = this.local.get(applicationId);
    if (!watch) {
      watch = { ring: new Ring(this.last), watchers: 0, dropTimer: undefined };
      this.local.set(applicationId, watch);
      void this.announce(applicationId).catch((err: unknown) =>
        this.logger.warn({ event: 'watchFailed', applicationId, err }, 'could not share a watched application'),
      );
    }
    clearTimeout(watch.dropTimer);
    watch.dropTimer = undefined;
    watch.watchers++;
    const watched = watch;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--watched.watchers > 0 || this.local.get(applicationId) !== watched) return;
      watched.dropTimer = setTimeout(() => {
        if (watched.watchers === 0) this.local.delete(applicationId);
      }, this.keepMs);
      watched.dropTimer.unref();
    };
  }

  async after(applicationId: string, id: number, max = 256): Promise<Replay> {
    const watch = this.local.get(applicationId);
    if (watch && watch.ring.evictedUpTo <= id) {
      return { events: watch.ring.after(id, max), evictedUpTo: watch.ring.evictedUpTo };
    }
    const key = this.streamKey(applicationId);
    const [entries, since, info] = await Promise.all([
      this.links.command.xrange(key, `(${toStreamId(id)}`, '+', 'COUNT', max),
      this.links.command.hget(this.sinceKey, applicationId),
      this.links.command.call('XINFO', 'STREAM', key).catch(() => null),
    ]);
    let evictedUpTo = since === null ? this.last : Number(since);
    const deleted = maxDeletedId(info);
    if (deleted !== undefined) evictedUpTo = Math.max(evictedUpTo, deleted);
    const events: StreamEvent[] = [];
    for (const [streamId, fields] of entries) {
      const event = parse(streamId, fields[1]);
      if (event) events.push(event);
    }
    // Whatever arrived while Redis answered is in the local ring (this stream watches it).
    if (watch && events.length < max) {
      const newest = events.length > 0 ? (events[events.length - 1] as StreamEvent).id : id;
      events.push(...watch.ring.after(newest, max - events.length));
    }
    return { events, evictedUpTo };
  }

  close(): void {
    for (const off of this.unsubscribe) off();
    clearInterval(this.timer);
    for (const watch of this.local.values()) clearTimeout(watch.dropTimer);
    this.local.clear();
    this.listeners.clear();
  }

  /** Records a committed fact when some node watches its application. */
  private offer(applicationId: string, make: () => UnnumberedEvent): void {
    if ((this.watched.get(applicationId) ?? 0) < this.clock() && !this.local.has(applicationId)) return;
    const event = make();
    this.links.command
      .eval(
        RECORD,
        1,
        this.streamKey(applicationId),
        String(this.maxEvents),
        JSON.stringify(event),
        String(this.keepMs),
        this.channel,
      )
      .catch((err: unknown) =>
        this.logger.warn({ event: 'streamEventLost', applicationId, err }, 'an event could not be shared'),
      );
  }

  private received(message: string): void {
    const space = message.indexOf(' ');
    const event = parse(message.slice(0, space), message.slice(space + 1));
    if (!event) return;
    if (event.id > this.last) this.last = event.id;
    const watch = this.local.get(event.applicationId);
    if (!watch) return;
    watch.ring.push(event, this.maxEvents, this.maxBytes);
    for (const listener of this.listeners) listener(event);
  }

  /** Shares that this node watches the application, now and for `keepMs`. */
  private async announce(applicationId: string): Promise<void> {
    const until = this.clock() + this.keepMs;
    this.watched.set(applicationId, until);
    const command = this.links.command;
    // Recording (re)starts now when nobody watched it: events before were not kept.
    const startedAt = String(Math.floor(this.clock()) * SEQ);
    const current = await command.hget(this.watchedKey, applicationId);
    if (current === null || Number(current) < this.clock()) await command.hset(this.sinceKey, applicationId, startedAt);
    await command.hset(this.watchedKey, applicationId, String(until));
    await this.messenger.notify('watch', { applicationId, until });
  }

  /** Extends this node's watches and reads everyone's. */
  private async refresh(): Promise<void> {
    const command = this.links.command;
    const until = this.clock() + this.keepMs;
    const mine = [...this.local.keys()];
    if (mine.length > 0) await command.hset(this.watchedKey, ...mine.flatMap((app) => [app, String(until)]));
    const all = await command.hgetall(this.watchedKey);
    const now = this.clock();
    const watched = new Map<string, number>();
    const expired: string[] = [];
    for (const [app, value] of Object.entries(all)) {
      if (Number(value) >= now) watched.set(app, Number(value));
      else expired.push(app);
    }
    this.watched = watched;
    if (expired.length > 0) await command.hdel(this.watchedKey, ...expired);
  }

  private streamKey(applicationId: string): string {
    return `${this.links.prefix}events:${applicationId}`;
  }
}

function parse(streamId: string, json: string | undefined): StreamEvent | undefined {
  if (!json) return undefined;
  try {
    return { id: toEventId(streamId), ...(JSON.parse(json) as UnnumberedEvent) };
  } catch {
    return undefined;
  }
}

/** `max-deleted-entry-id` of an XINFO STREAM reply (Redis 7): the newest entry trimmed away. */
function maxDeletedId(info: unknown): number | undefined {
  if (!Array.isArray(info)) return undefined;
  const at = info.indexOf('max-deleted-entry-id');
  const value = at >= 0 ? info[at + 1] : undefined;
  return typeof value === 'string' && value !== '0-0' ? toEventId(value) : undefined;
}
