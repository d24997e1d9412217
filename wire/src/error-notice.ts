/**
 * Error notices, server to device on the device's own `PREFIX/DEVICE_ID/error` (beyond Losant):
 * `{"code", "message", "topic", "time": {"$date": ISO}}` for each message the server refused.
 * `code` is the HTTP status the same refusal gets over REST; `topic` is the refused topic, which
 * names the device the message was for (a gateway's peripheral, for instance).
 */
import { encodeJson, isPlainObject, type Payload, parseJson, type WireResult } from './json.js';
import { type DateField, dateField, readDate } from './time.js';

export interface ErrorNoticeBody {
  code: number;
  message: string;
  topic: string;
  time: DateField;
}

export interface ErrorNotice {
  code: number;
  message: string;
  topic: string;
  time: Date;
}

export interface ErrorNoticeInput {
  code: number;
  message: string;
  topic: string;
  time: Date | number;
}

/** The message for a notice. Throws a RangeError for a code that is not an HTTP status or a bad time. */
export function encodeErrorNotice(notice: ErrorNoticeInput): string {
  if (!isStatus(notice.code)) throw new RangeError(`error notice code ${notice.code} is not an HTTP status`);
  const body: ErrorNoticeBody = {
    code: notice.code,
    message: String(notice.message),
    topic: String(notice.topic),
    time: dateField(notice.time, 'error notice time'),
  };
  return encodeJson(body, 'error notice');
}

function isStatus(code: unknown): code is number {
  return typeof code === 'number' && Number.isInteger(code) && code >= 100 && code <= 599;
}

/** Reads a decoded notice. A missing or unreadable `time` is replaced by `now`. */
export function readErrorNotice(value: unknown, now: number = Date.now()): WireResult<ErrorNotice> {
  if (!isPlainObject(value)) return { ok: false, reason: 'an error notice must be a JSON object' };
  const { code, message, topic } = value;
  if (!isStatus(code)) return { ok: false, reason: 'an error notice needs a "code" HTTP status' };
  if (typeof message !== 'string') return { ok: false, reason: 'an error notice needs a "message" string' };
  if (typeof topic !== 'string') return { ok: false, reason: 'an error notice needs a "topic" string' };
  return { ok: true, value: { code, message, topic, time: readDate(value.time, now) } };
}

/** `parseJson` then `readErrorNotice`. */
export function parseErrorNotice(raw: Payload, now: number = Date.now()): WireResult<ErrorNotice> {
  const json = parseJson(raw);
  return json.ok ? readErrorNotice(json.value, now) : json;
}
