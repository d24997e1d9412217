/**
 * State payloads (spec: State): the time window and attribute value conversion. The payload's
 * shape, its JSON and its TIME forms are the wire contract, defined in @gatehouse/wire.
 * Pure: the caller passes the device's attribute definitions and the receive time.
 */
import { readStatePayload, readTime, type WireResult } from '@gatehouse/wire';
import type { AttributeDef, DataType } from './model.js';

export { MAX_TIME_MS, parseJson, parseTime, readTime, type TimeReading } from '@gatehouse/wire';

export const MAX_PAYLOAD_BYTES = 256 * 1024;
export const MAX_STRING_BYTES = 64 * 1024;
export const MAX_AGE_MS = 30 * 24 * 3600 * 1000;
export const MAX_FUTURE_MS = 24 * 3600 * 1000;
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

export type JsonResult = WireResult<unknown>;

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
  const wrong = (): Conversion => wrongType(dataType, value);
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

function wrongType(dataType: DataType, value: unknown): Conversion {
  const got = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
  return { ok: false, reason: `expected a ${dataType}, got ${got}` };
}

function clip(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

/**
 * A device's attributes by name, made once per attribute list: a device's definition is
 * replaced, never changed in place, so its list stands for one version of it.
 */
const namedAttributes = new WeakMap<readonly AttributeDef[], Map<string, AttributeDef>>();

function attributesByName(attributes: readonly AttributeDef[]): Map<string, AttributeDef> {
  let byName = namedAttributes.get(attributes);
  if (!byName) {
    byName = new Map(attributes.map((a) => [a.name, a]));
    namedAttributes.set(attributes, byName);
  }
  return byName;
}

/**
 * Validates a parsed payload against a device's attributes. A payload of the wrong shape is
 * refused whole; inside an accepted payload, unknown or unconvertible attributes and states
 * outside the accepted time window are left out and reported as issues.
 */
export function parseStates(payload: unknown, attributes: readonly AttributeDef[], now: number): StateParseResult {
  const shape = readStatePayload(payload);
  if (!shape.ok) return shape;
  const byName = attributesByName(attributes);
  const states: ParsedState[] = [];
  const issues: StateIssue[] = [];
  const reports = shape.value.reports;
  for (let index = 0; index < reports.length; index++) {
    const item = reports[index] as (typeof reports)[number];
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
    let stored = 0;
    const given = item.data as Record<string, unknown>;
    for (const name of Object.keys(given)) {
      const value = given[name];
      const def = byName.get(name);
      if (!def) {
        issues.push({ index, attribute: name, reason: `unknown attribute "${name}"` });
        continue;
      }
      const converted = convertValue(def.dataType, value);
      if (converted.ok) {
        data[name] = converted.value;
        stored++;
      } else issues.push({ index, attribute: name, reason: `attribute "${name}": ${converted.reason}` });
    }
    if (stored > 0) states.push(receiveTime ? { time, data, receiveTime } : { time, data });
  }
  return { ok: true, states, issues };
}
