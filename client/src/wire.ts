/**
 * The device side of the Gatehouse (Losant-compatible) wire contract, shared/spec/protocol.md:
 * topics `PREFIX/DEVICE_ID/state|command|error` and their payloads.
 */

export const DEFAULT_TOPIC_PREFIX = 'losant';

/** A command sent to a device (spec: Commands). `time` is when the server sent it. */
export interface Command {
  /** The device the command is for: the gateway itself or one of its peripherals. */
  deviceId: string;
  name: string;
  payload: unknown;
  time: Date;
}

/**
 * Something the server refused and reported on the device's error topic (spec: MQTT, beyond):
 * `code` is the HTTP status the same refusal gets over REST (400, 403, 404, 413, 429).
 * A refused command subscription is reported the same way, with code 403.
 */
export interface Rejection {
  code: number;
  message: string;
  /** The topic that was refused, e.g. `losant/PERIPHERAL_ID/state`. */
  topic: string;
  /** The device the refused message was for (from `topic`), or the reporting device itself. */
  deviceId: string;
  time: Date;
}

/** A state payload: attribute values, and the time they were measured. */
export type StateData = Record<string, unknown>;

export type TopicKind = 'state' | 'command' | 'error';

export function topic(prefix: string, deviceId: string, kind: TopicKind): string {
  return `${prefix}/${deviceId}/${kind}`;
}

/** `PREFIX/ID/KIND` split into its parts, or undefined for any other topic. */
export function parseTopic(prefix: string, value: string): { deviceId: string; kind: TopicKind } | undefined {
  if (!value.startsWith(`${prefix}/`)) return undefined;
  const parts = value.slice(prefix.length + 1).split('/');
  if (parts.length !== 2) return undefined;
  const [deviceId, kind] = parts as [string, string];
  if (!deviceId || (kind !== 'state' && kind !== 'command' && kind !== 'error')) return undefined;
  return { deviceId, kind };
}

/** Device ids end up in topics: no empty ids, no `/` and no MQTT wildcards. */
export function checkDeviceId(id: string): string {
  if (typeof id !== 'string' || id.length === 0 || /[/+#\s]/.test(id)) {
    throw new TypeError(`invalid device id ${JSON.stringify(id)}`);
  }
  return id;
}

/** `{"name", "payload", "time": {"$date": ISO}}` as delivered on a command topic. */
export function parseCommand(deviceId: string, payload: Buffer): Command {
  const body = parseObject(payload, 'command');
  if (typeof body.name !== 'string') throw new Error(`command for ${deviceId} has no name`);
  return { deviceId, name: body.name, payload: body.payload ?? null, time: parseTime(body.time) };
}

/** `{"code", "message", "topic", "time"}` as delivered on a device's error topic. */
export function parseRejection(prefix: string, ownId: string, payload: Buffer): Rejection {
  const body = parseObject(payload, 'error notice');
  const code = typeof body.code === 'number' ? body.code : 0;
  const refused = typeof body.topic === 'string' ? body.topic : '';
  return {
    code,
    message: typeof body.message === 'string' ? body.message : '',
    topic: refused,
    deviceId: parseTopic(prefix, refused)?.deviceId ?? ownId,
    time: parseTime(body.time),
  };
}

function parseObject(payload: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new Error(`${what} is not JSON: ${payload.toString('utf8').slice(0, 200)}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${what} is not an object`);
  return value as Record<string, unknown>;
}

function parseTime(value: unknown): Date {
  const raw =
    typeof value === 'object' && value !== null && '$date' in value ? (value as { $date: unknown }).$date : value;
  const time = typeof raw === 'string' || typeof raw === 'number' ? new Date(raw) : new Date(Number.NaN);
  return Number.isNaN(time.getTime()) ? new Date() : time;
}
