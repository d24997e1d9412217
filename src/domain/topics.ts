/**
 * Topics. The device topics (builders, parser, default prefix) are the wire contract and are
 * defined once in @gatehouse/wire, re-exported here for the server's modules. What follows them
 * is MQTT topic-filter matching [MQTT-4.7], which only the server needs: the authorization rule
 * checks custom topics and subscription filters with it. Devices never match filters.
 */
export {
  commandTopic,
  DEFAULT_TOPIC_PREFIX,
  errorTopic,
  type ParsedTopic,
  parseTopic,
  stateTopic,
  type TopicKind,
} from '@gatehouse/wire';

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
