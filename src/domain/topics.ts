import { isId } from './ids.js';

export const DEFAULT_TOPIC_PREFIX = 'losant';

export type ParsedTopic =
  | { kind: 'state' | 'command' | 'error'; deviceId: string }
  /**
   * Under the platform prefix but not one of its topics; `suggestion` is the topic probably meant
   * and `deviceId` the device it names, when it names one (its log records the refusal too).
   */
  | { kind: 'invalid'; reason: string; suggestion?: string; deviceId?: string }
  | { kind: 'custom' };

const SUFFIXES = new Set(['state', 'command', 'error']);

/** Classifies a concrete topic name (no wildcards) against the wire contract. */
export function parseTopic(topic: string, prefix = DEFAULT_TOPIC_PREFIX): ParsedTopic {
  if (topic !== prefix && !topic.startsWith(`${prefix}/`)) return { kind: 'custom' };
  // The levels after the prefix, which may itself have several levels: [deviceId, suffix].
  const parts = topic.slice(prefix.length + 1).split('/');
  const deviceId = parts[0] ?? '';
  if (!isId(deviceId)) {
    return { kind: 'invalid', reason: `"${deviceId}" is not a device id (24 lowercase hex characters)` };
  }
  const suffix = parts[1];
  if (parts.length === 2 && suffix !== undefined && SUFFIXES.has(suffix)) {
    return { kind: suffix as 'state' | 'command' | 'error', deviceId };
  }
  const suggestion = `${prefix}/${deviceId}/state`;
  if (parts.length === 1) {
    return { kind: 'invalid', reason: `topic ${topic} has no /state suffix`, suggestion, deviceId };
  }
  return { kind: 'invalid', reason: `topic ${topic} is not a ${prefix} topic`, suggestion, deviceId };
}

export function stateTopic(deviceId: string, prefix = DEFAULT_TOPIC_PREFIX): string {
  return `${prefix}/${deviceId}/state`;
}
export function commandTopic(deviceId: string, prefix = DEFAULT_TOPIC_PREFIX): string {
  return `${prefix}/${deviceId}/command`;
}
export function errorTopic(deviceId: string, prefix = DEFAULT_TOPIC_PREFIX): string {
  return `${prefix}/${deviceId}/error`;
}

/** True when a topic filter contains MQTT wildcards. */
export function hasWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}

/** True when `filter` (with + and #) matches the concrete `topic` [MQTT-4.7]. */
export function filterMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && !filter.startsWith('$')) return false; // [MQTT-4.7.2-1]
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return true;
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/**
 * Filters whose first level starts with `$` match only `$` topics, and no other filter matches
 * those [MQTT-4.7.2-1]: such a pair shares no topic.
 */
function dollarMismatch(a: string, b: string): boolean {
  return a.startsWith('$') !== b.startsWith('$');
}

/** True when every topic matched by `inner` is also matched by `outer`. */
export function filterCovers(outer: string, inner: string): boolean {
  if (dollarMismatch(outer, inner)) return false;
  const o = outer.split('/');
  const n = inner.split('/');
  for (let i = 0; i < o.length; i++) {
    const level = o[i];
    if (level === '#') return true;
    const other = n[i];
    if (other === undefined || other === '#') return false;
    if (level === '+') continue;
    if (other === '+' || other !== level) return false;
  }
  return o.length === n.length;
}

/** True when some topic could be matched by both filters. */
export function filtersOverlap(a: string, b: string): boolean {
  if (dollarMismatch(a, b)) return false;
  const x = a.split('/');
  const y = b.split('/');
  const n = Math.max(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const p = x[i];
    const q = y[i];
    if (p === '#' || q === '#') return true;
    if (p === undefined || q === undefined) return false;
    if (p !== '+' && q !== '+' && p !== q) return false;
  }
  return true;
}
