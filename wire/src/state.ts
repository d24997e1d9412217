/**
 * State payloads, device to server on `PREFIX/DEVICE_ID/state`: one report `{data, time?, meta?}`
 * or an array of them. `data` maps attribute names to values; `time` is a TIME (see time.ts),
 * the receive time when absent.
 */
import { encodeJson, isPlainObject, type Payload, parseJson, type WireResult } from './json.js';
import { type TimeValue, timeMs } from './time.js';

/** Attribute values, by attribute name. */
export type StateData = Record<string, unknown>;

/** One report as read from the wire. `time` is left as sent: read it with `readTime`. */
export interface StateReport {
  data: StateData;
  time?: unknown;
  meta?: unknown;
}

export interface StatePayload {
  reports: StateReport[];
  /** True when the payload was an array (reasons then name the index of a report). */
  batch: boolean;
}

/**
 * Checks the shape of a decoded state payload. A payload of the wrong shape is refused whole, so
 * a batch is all or nothing at this level; the attributes themselves are the server's to judge.
 */
export function readStatePayload(value: unknown): WireResult<StatePayload> {
  const batch = Array.isArray(value);
  const items: unknown[] = batch ? value : [value];
  if (items.length === 0) return { ok: false, reason: 'payload is an empty array' };
  for (const [i, item] of items.entries()) {
    const where = batch ? `state ${i}: ` : '';
    if (!isPlainObject(item)) return { ok: false, reason: `${where}expected an object with a "data" object` };
    if (!isPlainObject(item.data)) return { ok: false, reason: `${where}"data" must be an object of attribute values` };
  }
  return { ok: true, value: { reports: items as StateReport[], batch } };
}

/** `parseJson` then `readStatePayload`. */
export function parseStatePayload(raw: Payload): WireResult<StatePayload> {
  const json = parseJson(raw);
  return json.ok ? readStatePayload(json.value) : json;
}

/** A report to send. A Date or epoch ms is written as ms, the form every Losant client understands. */
export interface StateReportInput {
  data: StateData;
  time?: Date | TimeValue;
  meta?: unknown;
}

/**
 * The payload for one report or a batch. Throws a TypeError or RangeError for what the server
 * would refuse or misread: a `data` that is not an object, a time no Date can hold.
 */
export function encodeState(input: StateReportInput | readonly StateReportInput[]): string {
  const reports = Array.isArray(input) ? (input as readonly StateReportInput[]) : [input as StateReportInput];
  if (reports.length === 0) throw new TypeError('a state payload needs at least one report');
  const out = reports.map((report) => {
    if (!isPlainObject(report) || !isPlainObject(report.data)) {
      throw new TypeError('state data must be an object of attribute values');
    }
    const { data, time, meta } = report;
    const written = time instanceof Date || typeof time === 'number' ? timeMs(time, 'state time') : time;
    return { data, ...(written === undefined ? {} : { time: written }), ...(meta === undefined ? {} : { meta }) };
  });
  return encodeJson(Array.isArray(input) ? out : out[0], 'state');
}
