/**
 * Device topics: `PREFIX/DEVICE_ID/state` (device to server), `PREFIX/DEVICE_ID/command` and
 * `PREFIX/DEVICE_ID/error` (server to device). Every function takes the device id or topic
 * first and the prefix last, defaulting to `losant`.
 */

export const DEFAULT_TOPIC_PREFIX = 'losant';

export type TopicKind = 'state' | 'command' | 'error';
export const TOPIC_KINDS: readonly TopicKind[] = ['state', 'command', 'error'];

/** Application, device, key and command ids: 24 lowercase hex characters, as Losant's. */
export const ID_PATTERN = '^[0-9a-f]{24}$';
const ID_RE = new RegExp(ID_PATTERN);

export function isDeviceId(value: unknown): value is string {
  return typeof value === 'string' && ID_RE.test(value);
}

/**
 * A string usable as one level of a topic name: not empty, no `/` (a level separator), no `+` or
 * `#` (wildcards, not allowed in topic names [MQTT-3.3.2-2]), no U+0000 [MQTT-4.7.3-2], and no
 * white space, which in an id is always a mistake.
 */
export function isTopicLevel(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && !/[/+#\s]/.test(value) && !value.includes('\u0000');
}

/** Which topic levels count as device ids when a topic is parsed, and how a refusal names the rule. */
export interface DeviceIdRule {
  test(level: string): boolean;
  description: string;
}

/** The platform's rule: device ids are 24 lowercase hex characters. */
export const DEVICE_IDS: DeviceIdRule = { test: isDeviceId, description: '24 lowercase hex characters' };

/**
 * Any level `isTopicLevel` accepts. For clients, which learn from the topic which of their own
 * devices a message is for and must not lose a message over an id the server would refuse.
 */
export const ANY_TOPIC_LEVEL: DeviceIdRule = {
  test: isTopicLevel,
  description: 'a non-empty topic level without /, +, # or white space',
};

export function deviceTopic(deviceId: string, kind: TopicKind, prefix = DEFAULT_TOPIC_PREFIX): string {
  return `${prefix}/${deviceId}/${kind}`;
}
export function stateTopic(deviceId: string, prefix = DEFAULT_TOPIC_PREFIX): string {
  return deviceTopic(deviceId, 'state', prefix);
}
export function commandTopic(deviceId: string, prefix = DEFAULT_TOPIC_PREFIX): string {
  return deviceTopic(deviceId, 'command', prefix);
}
export function errorTopic(deviceId: string, prefix = DEFAULT_TOPIC_PREFIX): string {
  return deviceTopic(deviceId, 'error', prefix);
}

export type ParsedTopic =
  | { kind: TopicKind; deviceId: string }
  /**
   * Under the prefix but not one of its topics; `suggestion` is the topic probably meant and
   * `deviceId` the device it names, when it names one.
   */
  | { kind: 'invalid'; reason: string; suggestion?: string; deviceId?: string }
  /** Outside the prefix: not part of this contract. */
  | { kind: 'custom' };

function isTopicKind(value: string | undefined): value is TopicKind {
  return value === 'state' || value === 'command' || value === 'error';
}

/**
 * Classifies a concrete topic name (no wildcards) against the contract. The prefix may have
 * several levels; the two levels after it must be a device id (by `ids`) and a topic kind.
 */
export function parseTopic(topic: string, prefix = DEFAULT_TOPIC_PREFIX, ids: DeviceIdRule = DEVICE_IDS): ParsedTopic {
  if (topic !== prefix && !topic.startsWith(`${prefix}/`)) return { kind: 'custom' };
  const parts = topic.slice(prefix.length + 1).split('/');
  const deviceId = parts[0] ?? '';
  if (!ids.test(deviceId)) {
    return { kind: 'invalid', reason: `"${deviceId}" is not a device id (${ids.description})` };
  }
  const kind = parts[1];
  if (parts.length === 2 && isTopicKind(kind)) return { kind, deviceId };
  const suggestion = stateTopic(deviceId, prefix);
  if (parts.length === 1) {
    return { kind: 'invalid', reason: `topic ${topic} has no /state suffix`, suggestion, deviceId };
  }
  return { kind: 'invalid', reason: `topic ${topic} is not a ${prefix} topic`, suggestion, deviceId };
}
