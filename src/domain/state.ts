/**
 * State payloads (spec: State): shape, time forms, and attribute value conversion.
 * Pure: the caller passes the device's attribute definitions and the receive time.
 */
import type { AttributeDef, DataType } from './model.js';

export const MAX_PAYLOAD_BYTES = 256 * 1024;
export const MAX_STRING_BYTES = 64 * 1024;
export const MAX_AGE_MS = 30 * 24 * 3600 * 1000;
export const MAX_FUTURE_MS = 24 * 3600 * 1000;
/** Numbers below this are seconds since the epoch, above it milliseconds (1e11 s is the year 5138). */
const SECONDS_THRESHOLD = 1e11;
/**
 * ISO 8601 / RFC 3339 dates and date-times. Checked before `Date.parse`, which on its own also
 * reads free text ("sensor 7" is a date in 2001 to V8), turning garbage into a wrong time.
 */
const ISO_DATE_RE = /^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?)?$/;
/** A plain decimal number, as a device would write one in a string (no hex, binary, octal or Infinity). */
const DECIMAL_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export interface ParsedState {
  time: number;
  data: Record<string, unknown>;
  /** True when the payload gave no usable time and `time` is the receive time. */
  receiveTime?: true;
}

/** Something in an accepted payload that was left out, with the reason (logged on the device). */
export interface StateIssue {
  /** Index of the state in an array payload. */
  index: number;
  attribute?: string;
  reason: string;
}

export type StateParseResult =
  | { ok: true; states: ParsedState[]; issues: StateIssue[] }
  | { ok: false; reason: string };

export type JsonResult = { ok: true; value: unknown } | { ok: false; reason: string };

export function parseJson(raw: Buffer | string): JsonResult {
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, reason: `invalid JSON: ${(err as Error).message}` };
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Epoch ms a JavaScript Date can hold: ±100,000,000 days (ECMA-262, "Time Values and Time Range"). */
export const MAX_TIME_MS = 8.64e15;

export type TimeReading =
  | { ok: true; time: number }
  /** `absent`: no time given; `unreadable`: not a TIME form; `outOfRange`: a number no Date can hold. */
  | { ok: false; why: 'absent' | 'unreadable' | 'outOfRange' };

const ABSENT: TimeReading = { ok: false, why: 'absent' };
const UNREADABLE: TimeReading = { ok: false, why: 'unreadable' };

function fromNumber(value: number, now: number): TimeReading {
  if (!Number.isFinite(value)) return UNREADABLE;
  const ms = Math.round(value < 0 ? now + value : value < SECONDS_THRESHOLD ? value * 1000 : value);
  return Math.abs(ms) <= MAX_TIME_MS ? { ok: true, time: ms } : { ok: false, why: 'outOfRange' };
}

function fromString(value: string, now: number): TimeReading {
  const trimmed = value.trim();
  if (/^-?\d+(\.\d+)?$/.test(trimmed)) return fromNumber(Number(trimmed), now);
  if (!ISO_DATE_RE.test(trimmed)) return UNREADABLE;
  const ms = Date.parse(trimmed);
  return Number.isNaN(ms) ? UNREADABLE : { ok: true, time: ms };
}

/**
 * Reads a TIME: ms or s since the epoch, `{"$date": ISO or number}`, an ISO string, or negative
 * ms before `now`. `$date` is unwrapped once: its value must be a number or a string, so a
 * nested payload costs one step, not one per level. Every time read is one a Date can hold.
 */
export function readTime(value: unknown, now: number): TimeReading {
  if (value === undefined || value === null) return ABSENT;
  const inner = isPlainObject(value) && '$date' in value ? value.$date : value;
  if (typeof inner === 'number') return fromNumber(inner, now);
  if (typeof inner === 'string') return fromString(inner, now);
  return UNREADABLE;
}

/** `readTime` for callers that only need the time: undefined when there is no usable one. */
export function parseTime(value: unknown, now: number): number | undefined {
  const reading = readTime(value, now);
  return reading.ok ? reading.time : undefined;
}

export type Conversion = { ok: true; value: unknown } | { ok: false; reason: string };

const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

function gpsString(lat: number, lon: number): Conversion {
  if (!Number.isFinite(lat) || !Number.isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180) {
    return { ok: false, reason: 'is not a valid "latitude,longitude" position' };
  }
  return { ok: true, value: `${lat},${lon}` };
}

/** Converts a reported value to the attribute's type when that loses nothing. */
export function convertValue(dataType: DataType, value: unknown): Conversion {
  const got = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  const wrong = (): Conversion => ({ ok: false, reason: `expected a ${dataType}, got ${got}` });
  switch (dataType) {
    case 'number': {
      if (typeof value === 'number') {
        // JSON.parse reads 1e999 as Infinity: refused like any value that is not a number.
        return Number.isFinite(value) ? { ok: true, value } : { ok: false, reason: 'is not a finite number' };
      }
      if (typeof value === 'string') {
        const n = DECIMAL_RE.test(value.trim()) ? Number(value) : Number.NaN;
        return Number.isFinite(n) ? { ok: true, value: n } : { ok: false, reason: `"${clip(value)}" is not a number` };
      }
      return wrong();
    }
    case 'string': {
      if (typeof value === 'number' && !Number.isFinite(value)) return { ok: false, reason: 'is not a finite number' };
      if (typeof value === 'number' || typeof value === 'boolean') return { ok: true, value: String(value) };
      if (typeof value !== 'string') return wrong();
      if (Buffer.byteLength(value) > MAX_STRING_BYTES) {
        return { ok: false, reason: `string longer than ${MAX_STRING_BYTES} bytes` };
      }
      return { ok: true, value };
    }
    case 'boolean': {
      if (typeof value === 'boolean') return { ok: true, value };
      if (value === 1 || value === 0) return { ok: true, value: value === 1 };
      if (value === 'true' || value === 'false') return { ok: true, value: value === 'true' };
      if (value === '1' || value === '0') return { ok: true, value: value === '1' };
      return wrong();
    }
    case 'gps': {
      if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'number')) {
        return gpsString(value[0] as number, value[1] as number);
      }
      if (typeof value === 'string') {
        const parts = value.split(',').map((p) => p.trim());
        if (parts.length === 2 && parts.every((p) => DECIMAL_RE.test(p))) {
          return gpsString(Number(parts[0]), Number(parts[1]));
        }
        return { ok: false, reason: `"${clip(value)}" is not a "latitude,longitude" position` };
      }
      return wrong();
    }
    case 'blob': {
      if (typeof value !== 'string') return wrong();
      if (!BASE64_RE.test(value) || value.length % 4 !== 0) return { ok: false, reason: 'blob is not base64' };
      return { ok: true, value };
    }
  }
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/**
 * Validates a parsed payload against a device's attributes. A payload of the wrong shape is
 * refused whole; inside an accepted payload, unknown or unconvertible attributes and states
 * outside the accepted time window are left out and reported as issues.
 */
export function parseStates(payload: unknown, attributes: readonly AttributeDef[], now: number): StateParseResult {
  const items = Array.isArray(payload) ? payload : [payload];
  if (items.length === 0) return { ok: false, reason: 'payload is an empty array' };
  for (const [i, item] of items.entries()) {
    const where = Array.isArray(payload) ? `state ${i}: ` : '';
    if (!isPlainObject(item)) return { ok: false, reason: `${where}expected an object with a "data" object` };
    if (!isPlainObject(item.data)) return { ok: false, reason: `${where}"data" must be an object of attribute values` };
  }
  const byName = new Map(attributes.map((a) => [a.name, a]));
  const states: ParsedState[] = [];
  const issues: StateIssue[] = [];
  for (const [index, item] of (items as Array<{ data: Record<string, unknown>; time?: unknown }>).entries()) {
    const reading = readTime(item.time, now);
    if (!reading.ok && reading.why === 'outOfRange') {
      issues.push({ index, reason: 'state time is outside the range of dates; ignored' });
      continue;
    }
    if (!reading.ok && reading.why === 'unreadable') {
      issues.push({ index, reason: 'time is not a recognised form; used the receive time' });
    }
    const receiveTime = !reading.ok;
    const time = reading.ok ? reading.time : now;
    if (time < now - MAX_AGE_MS) {
      issues.push({ index, reason: `state time ${new Date(time).toISOString()} is more than 30 days old; ignored` });
      continue;
    }
    if (time > now + MAX_FUTURE_MS) {
      issues.push({ index, reason: `state time ${new Date(time).toISOString()} is more than 1 day ahead; ignored` });
      continue;
    }
    // No prototype: an attribute named __proto__ must be stored like any other.
    const data: Record<string, unknown> = Object.create(null);
    for (const [name, value] of Object.entries(item.data)) {
      const def = byName.get(name);
      if (!def) {
        issues.push({ index, attribute: name, reason: `unknown attribute "${name}"` });
        continue;
      }
      const converted = convertValue(def.dataType, value);
      if (converted.ok) data[name] = converted.value;
      else issues.push({ index, attribute: name, reason: `attribute "${name}": ${converted.reason}` });
    }
    if (Object.keys(data).length > 0) states.push(receiveTime ? { time, data, receiveTime } : { time, data });
  }
  return { ok: true, states, issues };
}
