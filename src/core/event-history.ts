/**
 * What live streams send, numbered and remembered (issue 3). Every state, command and device
 * log entry of a watched application becomes a `StreamEvent` with an id from one counter per
 * process, serialized once, and kept in a bounded ring per application, so a client that
 * reconnects with `Last-Event-ID` can be sent what it missed.
 *
 * Only watched applications are recorded: from the first stream opened on one until
 * `keepMs` after its last stream closed (the window in which a client may reconnect). An
 * application nobody follows costs nothing beyond one map lookup per event.
 */
import type { CommandRecord, DeviceLogEntry, DeviceLogKind, StateRecord } from '../domain/model.js';
import type { EventBus } from './events.js';
import { iso, presentCommand, presentState } from './wire.js';

/** The event types of the application stream, and the kinds of the communication log. */
export const STREAM_EVENT_TYPES = [
  'state',
  'command',
  'connect',
  'disconnect',
  'authFailed',
  'rejected',
  'dropped',
  'inactive',
  'suppressed',
] as const;
export type StreamEventType = (typeof STREAM_EVENT_TYPES)[number];

// A new device log kind must be added above: this fails to compile until it is.
const _everyLogKindIsAStreamType: Record<DeviceLogKind, StreamEventType> = {
  connect: 'connect',
  disconnect: 'disconnect',
  authFailed: 'authFailed',
  rejected: 'rejected',
  dropped: 'dropped',
  inactive: 'inactive',
  suppressed: 'suppressed',
};
void _everyLogKindIsAStreamType;

export interface StreamEvent {
  id: number;
  applicationId: string;
  deviceId: string;
  type: StreamEventType;
  time: number;
  /** The application stream's `data`: the REST shape with `deviceId` first. */
  json: string;
  /** A device stream's `data` (state and command only): exactly the REST shape. */
  deviceJson?: string;
}

export interface EventHistoryOptions {
  /** Events kept per application (default 10,000). */
  maxEvents?: number;
  /** Bytes of serialized payload kept per application (default 8 MiB). */
  maxBytes?: number;
  /** How long an application stays recorded after its last stream closed (default 10 min). */
  keepMs?: number;
  clock?: () => number;
}

export const DEFAULT_HISTORY = { maxEvents: 10_000, maxBytes: 8 * 1024 * 1024, keepMs: 10 * 60_000 } as const;

/**
 * A log entry's details as the API shows them. The refusal logged on a sender names the device
 * the message was for as `deviceId`; that becomes `targetDeviceId`, since `deviceId` is whose log it is.
 */
export function logFields(details: Record<string, unknown>): Record<string, unknown> {
  if (!('deviceId' in details)) return details;
  const { deviceId, ...rest } = details;
  return { ...rest, targetDeviceId: deviceId };
}

/** What an event holds in memory, roughly: its payloads (UTF-16 code units, counted as bytes). */
const sizeOf = (event: StreamEvent): number => event.json.length + (event.deviceJson?.length ?? 0) + 64;

/** One application's ring: events in id order, oldest evicted first. */
export class Ring {
  private events: StreamEvent[] = [];
  private head = 0;
  private bytes = 0;
  watchers = 0;
  dropTimer: NodeJS.Timeout | undefined;

  /** Ids up to this one were not kept (evicted, or before recording started). */
  constructor(public evictedUpTo: number) {}

  push(event: StreamEvent, maxEvents: number, maxBytes: number): void {
    this.events.push(event);
    this.bytes += sizeOf(event);
    while (this.size > maxEvents || (this.bytes > maxBytes && this.size > 1)) {
      const old = this.events[this.head++]!;
      this.bytes -= sizeOf(old);
      this.evictedUpTo = old.id;
    }
    if (this.head > 1024 && this.head * 2 > this.events.length) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
  }

  get size(): number {
    return this.events.length - this.head;
  }

  /** Up to `max` events with an id above `id`, oldest first. */
  after(id: number, max: number): StreamEvent[] {
    let lo = this.head;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.events[mid]!.id <= id) lo = mid + 1;
      else hi = mid;
    }
    return this.events.slice(lo, lo + max);
  }
}

export type StreamEventListener = (event: StreamEvent) => void;

/** What a replay reads: events after an id, and the id up to which events are no longer kept. */
export interface Replay {
  events: StreamEvent[];
  evictedUpTo: number;
}

/**
 * What live streams read (api/streams.ts): this process's EventHistory, or the history the
 * nodes sharing Redis keep together (src/cluster/shared-history.ts).
 */
export interface StreamHistory {
  /** The last id given out (or seen). */
  readonly lastId: number;
  /** Whether `id` may be an event id of this history, as a client's Last-Event-ID. */
  knows(id: number): boolean;
  onEvent(listener: StreamEventListener): () => void;
  watch(applicationId: string): () => void;
  after(applicationId: string, id: number, max?: number): Replay | Promise<Replay>;
  close(): void;
}

/** A stored fact as a stream event without its id: what both histories record. */
export type UnnumberedEvent = Omit<StreamEvent, 'id'>;

export function stateEvent(state: StateRecord & { applicationId: string }): UnnumberedEvent {
  return numbered(state.applicationId, state.deviceId, 'state', state.time, JSON.stringify(presentState(state)));
}

export function commandEvent(command: CommandRecord): UnnumberedEvent {
  const body = JSON.stringify(presentCommand(command));
  return numbered(command.applicationId, command.deviceId, 'command', command.time, body);
}

export function logEvent(entry: DeviceLogEntry): UnnumberedEvent {
  const json = JSON.stringify({ deviceId: entry.deviceId, time: iso(entry.time), ...logFields(entry.details) });
  return numbered(entry.applicationId, entry.deviceId, entry.kind, entry.time, undefined, json);
}

/** `body` is a device stream's payload; the application stream's is the same with `deviceId` in front. */
function numbered(
  applicationId: string,
  deviceId: string,
  type: StreamEventType,
  time: number,
  body: string | undefined,
  json = `{"deviceId":${JSON.stringify(deviceId)},${(body as string).slice(1)}`,
): UnnumberedEvent {
  return { applicationId, deviceId, type, time, json, ...(body !== undefined ? { deviceJson: body } : {}) };
}

export class EventHistory implements StreamHistory {
  private readonly rings = new Map<string, Ring>();
  private readonly listeners = new Set<StreamEventListener>();
  private readonly unsubscribe: Array<() => void>;
  private readonly maxEvents: number;
  private readonly maxBytes: number;
  private readonly keepMs: number;
  /**
   * The last id given out. Ids start from the start time in microseconds, so a process started
   * later hands out higher ids than an earlier one did (unless it sent more than a million
   * events a second), and a client coming back after a restart is told it missed something.
   */
  private last: number;

  constructor(bus: EventBus, options: EventHistoryOptions = {}) {
    this.maxEvents = options.maxEvents ?? DEFAULT_HISTORY.maxEvents;
    this.maxBytes = options.maxBytes ?? DEFAULT_HISTORY.maxBytes;
    this.keepMs = options.keepMs ?? DEFAULT_HISTORY.keepMs;
    this.last = Math.floor((options.clock ?? Date.now)()) * 1000;
    this.unsubscribe = [
      bus.on('state', (s) => this.onState(s)),
      bus.on('command', (c) => this.onCommand(c)),
      bus.on('deviceLog', (l) => this.onLog(l)),
    ];
  }

  /** The last id given out. */
  get lastId(): number {
    return this.last;
  }

  /** Called with every recorded event, after it is in the ring. */
  onEvent(listener: StreamEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Starts (or keeps) recording the application; call the returned function when done. */
  watch(applicationId: string): () => void {
    let ring = this.rings.get(applicationId);
    if (!ring) {
      ring = new Ring(this.last);
      this.rings.set(applicationId, ring);
    }
    clearTimeout(ring.dropTimer);
    ring.dropTimer = undefined;
    ring.watchers++;
    const watched = ring;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--watched.watchers > 0 || this.rings.get(applicationId) !== watched) return;
      watched.dropTimer = setTimeout(() => {
        if (watched.watchers === 0) this.rings.delete(applicationId);
      }, this.keepMs);
      watched.dropTimer.unref();
    };
  }

  /**
   * Up to `max` recorded events of the application after `id`, oldest first, and the id up to
   * which events are no longer kept: when `id` is below it, some events after `id` are lost.
   */
  after(applicationId: string, id: number, max = 256): Replay {
    const ring = this.rings.get(applicationId);
    if (!ring) return { events: [], evictedUpTo: this.last };
    return { events: ring.after(id, max), evictedUpTo: ring.evictedUpTo };
  }

  /** Stops listening to the bus and forgets everything. */
  close(): void {
    for (const off of this.unsubscribe) off();
    for (const ring of this.rings.values()) clearTimeout(ring.dropTimer);
    this.rings.clear();
    this.listeners.clear();
  }

  knows(id: number): boolean {
    return id <= this.last;
  }

  private onState(state: StateRecord & { applicationId: string }): void {
    if (this.rings.has(state.applicationId)) this.record(stateEvent(state));
  }

  private onCommand(command: CommandRecord): void {
    if (this.rings.has(command.applicationId)) this.record(commandEvent(command));
  }

  private onLog(entry: DeviceLogEntry): void {
    if (this.rings.has(entry.applicationId)) this.record(logEvent(entry));
  }

  private record(unnumbered: UnnumberedEvent): void {
    const ring = this.rings.get(unnumbered.applicationId);
    if (!ring) return;
    const event: StreamEvent = { id: ++this.last, ...unnumbered };
    ring.push(event, this.maxEvents, this.maxBytes);
    for (const listener of this.listeners) listener(event);
  }
}
