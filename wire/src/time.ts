/**
 * TIME, as state payloads, commands and error notices carry it: milliseconds or seconds since the
 * epoch, `{"$date": ...}`, an ISO 8601 string, or negative milliseconds before now.
 */

/** Epoch ms a JavaScript Date can hold: ±100,000,000 days (ECMA-262, "Time Values and Time Range"). */
export const MAX_TIME_MS = 8.64e15;

/** Numbers below this are seconds since the epoch, above it milliseconds (1e11 s is the year 5138). */
export const SECONDS_THRESHOLD = 1e11;

/** The forms a TIME may take on the wire. */
export type TimeValue = number | string | { $date: number | string };

/** How this package writes a time: `{"$date": ISO 8601 in UTC}`. */
export interface DateField {
  $date: string;
}

/**
 * ISO 8601 / RFC 3339 dates and date-times. Checked before `Date.parse`, which on its own also
 * reads free text ("sensor 7" is a date in 2001 to V8), turning garbage into a wrong time. Years
 * have four digits, or six with a sign: the expanded years `toISOString` writes outside 0 to
 * 9999 (ECMA-262, "Date Time String Format"), so every time a Date holds reads back.
 */
const ISO_DATE_RE = /^([+-]\d{6}|\d{4})-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?)?$/;
const DECIMAL_TIME_RE = /^-?\d+(\.\d+)?$/;

export type TimeReading =
  | { ok: true; time: number }
  /** `absent`: no time given; `unreadable`: not a TIME form; `outOfRange`: a number no Date can hold. */
  | { ok: false; why: 'absent' | 'unreadable' | 'outOfRange' };

const ABSENT: TimeReading = { ok: false, why: 'absent' };
const UNREADABLE: TimeReading = { ok: false, why: 'unreadable' };
const OUT_OF_RANGE: TimeReading = { ok: false, why: 'outOfRange' };

function fromNumber(value: number, now: number): TimeReading {
  if (!Number.isFinite(value)) return UNREADABLE;
  const ms = Math.round(value < 0 ? now + value : value < SECONDS_THRESHOLD ? value * 1000 : value);
  return Math.abs(ms) <= MAX_TIME_MS ? { ok: true, time: ms } : OUT_OF_RANGE;
}

function fromString(value: string, now: number): TimeReading {
  const trimmed = value.trim();
  if (DECIMAL_TIME_RE.test(trimmed)) return fromNumber(Number(trimmed), now);
  if (!ISO_DATE_RE.test(trimmed)) return UNREADABLE;
  const ms = Date.parse(trimmed);
  return Number.isNaN(ms) ? UNREADABLE : { ok: true, time: ms };
}

/**
 * Reads a TIME into epoch ms. `$date` is unwrapped once: its value must be a number or a string,
 * so a nested payload costs one step, not one per level. Every time read is one a Date can hold.
 * An ISO time without a time zone is local time, as `Date.parse` reads it.
 */
export function readTime(value: unknown, now: number): TimeReading {
  if (value === undefined || value === null) return ABSENT;
  const inner =
    typeof value === 'object' && !Array.isArray(value) && Object.hasOwn(value, '$date')
      ? (value as { $date: unknown }).$date
      : value;
  if (typeof inner === 'number') return fromNumber(inner, now);
  if (typeof inner === 'string') return fromString(inner, now);
  return UNREADABLE;
}

/** `readTime` for callers that only need the time: undefined when there is no usable one. */
export function parseTime(value: unknown, now: number): number | undefined {
  const reading = readTime(value, now);
  return reading.ok ? reading.time : undefined;
}

/** True for epoch ms a Date can hold. */
export function isTimeMs(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && Math.abs(value) <= MAX_TIME_MS;
}

/** Epoch ms of a Date or a number, or a RangeError naming `what` when no Date can hold it. */
export function timeMs(time: Date | number, what: string): number {
  const ms = time instanceof Date ? time.getTime() : time;
  if (!isTimeMs(ms)) throw new RangeError(`${what} is not a time a Date can hold: ${String(time)}`);
  return ms;
}

/** `{"$date": ISO}` for a Date or epoch ms; a RangeError when no Date can hold it. */
export function dateField(time: Date | number, what = 'time'): DateField {
  return { $date: new Date(timeMs(time, what)).toISOString() };
}

/**
 * The Date of a TIME, or of `now` when there is no usable one (a message whose time is missing or
 * garbled is still a message). Always a valid Date, whatever `now` is.
 */
export function readDate(value: unknown, now: number): Date {
  const reading = readTime(value, now);
  if (reading.ok) return new Date(reading.time);
  return new Date(isTimeMs(now) ? now : Date.now());
}
