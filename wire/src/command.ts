/**
 * Commands, server to device on `PREFIX/DEVICE_ID/command`:
 * `{"name": string, "payload": any JSON, "time": {"$date": ISO}}`, `time` being when it was sent.
 */
import { encodeJson, isPlainObject, type Payload, parseJson, type WireResult } from './json.js';
import { type DateField, dateField, readDate } from './time.js';

/** A command as it travels. */
export interface CommandBody {
  name: string;
  payload: unknown;
  time: DateField;
}

/** A command as read. */
export interface CommandMessage {
  name: string;
  /** `null` when the sender gave none. */
  payload: unknown;
  time: Date;
}

export interface CommandInput {
  name: string;
  payload?: unknown;
  time: Date | number;
}

/**
 * The message for a command. Throws a RangeError for a time no Date can hold, and an Error when
 * the payload cannot be written as JSON (e.g. nested deeper than the engine's stack).
 */
export function encodeCommand(command: CommandInput): string {
  if (typeof command.name !== 'string') throw new TypeError('a command needs a name');
  const body: CommandBody = {
    name: command.name,
    payload: command.payload ?? null,
    time: dateField(command.time, 'command time'),
  };
  return encodeJson(body, `command "${command.name.slice(0, 100)}"`);
}

/**
 * Reads a decoded command. A `time` that is missing or not a TIME is replaced by `now`: the
 * command itself is still good.
 */
export function readCommand(value: unknown, now: number = Date.now()): WireResult<CommandMessage> {
  if (!isPlainObject(value)) return { ok: false, reason: 'a command must be a JSON object' };
  if (typeof value.name !== 'string') return { ok: false, reason: 'a command needs a "name" string' };
  return { ok: true, value: { name: value.name, payload: value.payload ?? null, time: readDate(value.time, now) } };
}

/** `parseJson` then `readCommand`. */
export function parseCommand(raw: Payload, now: number = Date.now()): WireResult<CommandMessage> {
  const json = parseJson(raw);
  return json.ok ? readCommand(json.value, now) : json;
}
