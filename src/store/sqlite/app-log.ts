/**
 * The application-wide communication log over SQLite (issue 3). It merges three tables at
 * query time, so nothing is written twice: `device_logs` (connects, disconnects, auth failures,
 * refusals, inactivity), `commands` (commands sent, with their route) and `device_states`
 * (accepted states). Each table is read newest first through an index, in chunks, by "lanes"
 * (one for the logs, one per device for commands and for states), and the lanes are merged
 * with a heap. A page reads about `limit` rows plus one small chunk per device, never a
 * device's whole history.
 */
import type Database from 'better-sqlite3';
import type { DeviceLogKind } from '../../domain/model.js';
import { fromJson } from '../rows.js';
import type { ApplicationLogCursor, ApplicationLogEntry, ApplicationLogQuery } from '../types.js';

const MIN_TIME = Number.MIN_SAFE_INTEGER;
const MAX_TIME = Number.MAX_SAFE_INTEGER;
const MAX_SEQ = Number.MAX_SAFE_INTEGER;

type Source = ApplicationLogCursor['source'];

/** At equal times, log entries come first, then commands, then states (newest-first order). */
const RANK: Record<Source, number> = { state: 0, command: 1, log: 2 };

/** Positive when `a` comes before `b` in the newest-first order. */
export function comparePositions(a: ApplicationLogCursor, b: ApplicationLogCursor): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  if (a.source !== b.source) return RANK[a.source] - RANK[b.source];
  if (a.key === b.key) return 0;
  return a.key < b.key ? -1 : 1;
}

/** A row read but not yet returned: its position, and how to build the entry if it is. */
interface Pending {
  cursor: ApplicationLogCursor;
  build(): ApplicationLogEntry;
}

interface BoundParams {
  start: number;
  /** Inclusive upper time bound. */
  hi: number;
  /** At `time = hi`, only keys below this (log ids, command sequence numbers). */
  seq: number;
  limit: number;
}

/**
 * The part of one table that comes after `below` in the merged order: the upper time bound
 * and, at that time, the key bound. `laneKey` is the device id of a state lane.
 */
function boundAfter(source: Source, below: ApplicationLogCursor | undefined, end: number, laneKey?: string) {
  if (!below || below.time > end) return { hi: end, seq: MAX_SEQ };
  // Same time, lower rank: after `below`. Higher rank: before it.
  if (RANK[source] < RANK[below.source]) return { hi: below.time, seq: MAX_SEQ };
  if (RANK[source] > RANK[below.source]) return { hi: below.time - 1, seq: MAX_SEQ };
  if (source === 'state') {
    return { hi: (laneKey as string) < (below.key as string) ? below.time : below.time - 1, seq: MAX_SEQ };
  }
  return { hi: below.time, seq: below.key as number };
}

/** One table (or one device's part of it), read newest first in growing chunks. */
class Lane {
  private rows: Pending[] = [];
  private index = 0;
  private exhausted = false;

  constructor(
    private readonly fetch: (below: ApplicationLogCursor | undefined, limit: number) => Pending[],
    private below: ApplicationLogCursor | undefined,
    private chunk: number,
    private readonly maxChunk: number,
  ) {}

  head(): Pending | undefined {
    if (this.index >= this.rows.length) {
      if (this.exhausted) return undefined;
      this.rows = this.fetch(this.below, this.chunk);
      this.index = 0;
      if (this.rows.length < this.chunk) this.exhausted = true;
      this.chunk = Math.min(this.chunk * 2, this.maxChunk);
    }
    return this.rows[this.index];
  }

  take(): Pending {
    const row = this.rows[this.index++] as Pending;
    this.below = row.cursor;
    return row;
  }
}

/** A max-heap of lanes by their head's position. */
class LaneHeap {
  private readonly items: Array<{ head: Pending; lane: Lane }> = [];

  /** Adds the lane unless it has nothing left. */
  push(lane: Lane): void {
    const head = lane.head();
    if (!head) return;
    const items = this.items;
    items.push({ head, lane });
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  /** The lane whose head comes first, removed from the heap. */
  pop(): Lane | undefined {
    const items = this.items;
    const top = items[0];
    if (!top) return undefined;
    const last = items.pop()!;
    if (items.length > 0) {
      items[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let first = i;
        if (left < items.length && this.before(left, first)) first = left;
        if (right < items.length && this.before(right, first)) first = right;
        if (first === i) break;
        [items[i], items[first]] = [items[first]!, items[i]!];
        i = first;
      }
    }
    return top.lane;
  }

  private before(a: number, b: number): boolean {
    return comparePositions(this.items[a]!.head.cursor, this.items[b]!.head.cursor) > 0;
  }
}

interface LogRow {
  id: number;
  device_id: string;
  time: number;
  kind: string;
  details: string;
}

interface CommandRow {
  seq: number;
  id: string;
  name: string;
  payload: string;
  time: number;
  routed_to: string;
  sent_by: string;
}

interface StateRow {
  time: number;
  data: string;
  reported_by: string;
}

export class SqliteApplicationLog {
  private readonly s;

  constructor(db: Database.Database) {
    this.s = {
      devices: db.prepare<[{ applicationId: string; devices: string | null }], { id: string }>(
        `SELECT id FROM devices WHERE application_id = @applicationId
           AND (@devices IS NULL OR id IN (SELECT value FROM json_each(@devices))) ORDER BY id`,
      ),
      // device_logs_by_application_time (application_id, time, rowid) yields this order without sorting.
      logs: db.prepare<[BoundParams & { applicationId: string; kinds: string | null; devices: string | null }], LogRow>(
        `SELECT id, device_id, time, kind, details FROM device_logs
         WHERE application_id = @applicationId AND time BETWEEN @start AND @hi AND (time < @hi OR id < @seq)
           AND (@kinds IS NULL OR kind IN (SELECT value FROM json_each(@kinds)))
           AND (@devices IS NULL OR device_id IN (SELECT value FROM json_each(@devices)))
         ORDER BY time DESC, id DESC LIMIT @limit`,
      ),
      // commands_by_device_time (device_id, time, rowid); rowid orders commands of one millisecond
      // by insertion, as the command history does.
      commands: db.prepare<[BoundParams & { deviceId: string }], CommandRow>(
        `SELECT rowid AS seq, id, name, payload, time, routed_to, sent_by FROM commands
         WHERE device_id = @deviceId AND time BETWEEN @start AND @hi AND (time < @hi OR rowid < @seq)
         ORDER BY time DESC, rowid DESC LIMIT @limit`,
      ),
      states: db.prepare<[Omit<BoundParams, 'seq'> & { deviceId: string }], StateRow>(
        `SELECT time, data, reported_by FROM device_states
         WHERE device_id = @deviceId AND time BETWEEN @start AND @hi ORDER BY time DESC LIMIT @limit`,
      ),
    };
  }

  list(query: ApplicationLogQuery): ApplicationLogEntry[] {
    const { applicationId, limit } = query;
    const start = query.start ?? MIN_TIME;
    const end = query.end ?? MAX_TIME;
    if (limit <= 0 || start > end || query.deviceIds?.length === 0 || query.kinds?.length === 0) return [];
    const wanted = query.kinds ? new Set<string>(query.kinds) : undefined;
    const logKinds = wanted ? [...wanted].filter((k) => k !== 'command' && k !== 'state') : undefined;
    const devicesJson = query.deviceIds ? JSON.stringify(query.deviceIds) : null;
    const before = query.before;

    const heap = new LaneHeap();
    if (!logKinds || logKinds.length > 0) {
      const kinds = logKinds ? JSON.stringify(logKinds) : null;
      const fetch = (below: ApplicationLogCursor | undefined, n: number): Pending[] =>
        this.s.logs
          .all({ applicationId, kinds, devices: devicesJson, start, ...boundAfter('log', below, end), limit: n })
          .map((row) => ({
            cursor: { time: row.time, source: 'log', key: row.id },
            build: () => ({
              id: row.id,
              kind: row.kind as DeviceLogKind,
              deviceId: row.device_id,
              applicationId,
              time: row.time,
              details: fromJson<Record<string, unknown>>(row.details),
              cursor: { time: row.time, source: 'log', key: row.id },
            }),
          }));
      heap.push(new Lane(fetch, before, limit, limit));
    }

    const withCommands = !wanted || wanted.has('command');
    const withStates = !wanted || wanted.has('state');
    if (withCommands || withStates) {
      const firstChunk = Math.min(limit, 4);
      for (const { id: deviceId } of this.s.devices.all({ applicationId, devices: devicesJson })) {
        if (withCommands)
          heap.push(new Lane(this.commandLane(applicationId, deviceId, start, end), before, firstChunk, limit));
        if (withStates)
          heap.push(new Lane(this.stateLane(applicationId, deviceId, start, end), before, firstChunk, limit));
      }
    }

    const out: ApplicationLogEntry[] = [];
    while (out.length < limit) {
      const lane = heap.pop();
      if (!lane) break;
      out.push(lane.take().build());
      heap.push(lane);
    }
    return out;
  }

  private commandLane(applicationId: string, deviceId: string, start: number, end: number) {
    return (below: ApplicationLogCursor | undefined, n: number): Pending[] =>
      this.s.commands.all({ deviceId, start, ...boundAfter('command', below, end), limit: n }).map((row) => {
        const cursor: ApplicationLogCursor = { time: row.time, source: 'command', key: row.seq };
        return {
          cursor,
          build: () => ({
            kind: 'command' as const,
            deviceId,
            applicationId,
            time: row.time,
            details: {
              commandId: row.id,
              name: row.name,
              payload: fromJson<unknown>(row.payload),
              routedTo: fromJson<string[]>(row.routed_to),
              sentBy: row.sent_by,
            },
            cursor,
          }),
        };
      });
  }

  private stateLane(applicationId: string, deviceId: string, start: number, end: number) {
    return (below: ApplicationLogCursor | undefined, n: number): Pending[] => {
      const { hi } = boundAfter('state', below, end, deviceId);
      return this.s.states.all({ deviceId, start, hi, limit: n }).map((row) => {
        const cursor: ApplicationLogCursor = { time: row.time, source: 'state', key: deviceId };
        return {
          cursor,
          build: () => ({
            kind: 'state' as const,
            deviceId,
            applicationId,
            time: row.time,
            details: { data: fromJson<Record<string, unknown>>(row.data), reportedBy: row.reported_by },
            cursor,
          }),
        };
      });
    };
  }
}
