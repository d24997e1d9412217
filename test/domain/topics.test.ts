import { describe, expect, it } from 'vitest';
import {
  commandTopic,
  DEFAULT_TOPIC_PREFIX,
  errorTopic,
  filterCovers,
  filterMatches,
  filtersOverlap,
  hasWildcard,
  type ParsedTopic,
  parseTopic,
  stateTopic,
} from '../../src/domain/topics.js';

const ID = '5f3a1b2c3d4e5f6a7b8c9d0e';

describe('parseTopic', () => {
  it.each<[string, ParsedTopic]>([
    [`losant/${ID}/state`, { kind: 'state', deviceId: ID }],
    [`losant/${ID}/command`, { kind: 'command', deviceId: ID }],
    [`losant/${ID}/error`, { kind: 'error', deviceId: ID }],
  ])('%s', (topic, expected) => {
    expect(parseTopic(topic)).toEqual(expected);
  });

  it('losant/ID without a suffix is invalid and suggests losant/ID/state', () => {
    const parsed = parseTopic(`losant/${ID}`);
    expect(parsed.kind).toBe('invalid');
    if (parsed.kind !== 'invalid') return;
    expect(parsed.suggestion).toBe(`losant/${ID}/state`);
    expect(parsed.reason).toContain(`losant/${ID}`);
    expect(parsed.reason).toContain('/state');
  });

  it.each([
    `losant/${ID}/states`,
    `losant/${ID}/State`,
    `losant/${ID}/`,
    `losant/${ID}/state/extra`,
    `losant/${ID}/command/x`,
    `losant/${ID}/foo`,
  ])('%s (other suffix) is invalid, suggesting the state topic', (topic) => {
    const parsed = parseTopic(topic);
    expect(parsed.kind).toBe('invalid');
    if (parsed.kind !== 'invalid') return;
    expect(parsed.suggestion).toBe(`losant/${ID}/state`);
    expect(parsed.reason).toContain(topic);
  });

  it.each([
    ['too short', 'losant/5f3a1b2c3d4e5f6a7b8c9d0/state', '5f3a1b2c3d4e5f6a7b8c9d0'],
    ['too long', `losant/${ID}0/state`, `${ID}0`],
    ['uppercase', `losant/${ID.toUpperCase()}/state`, ID.toUpperCase()],
    ['not hex', 'losant/zzzzzzzzzzzzzzzzzzzzzzzz/state', 'zzzzzzzzzzzzzzzzzzzzzzzz'],
    ['a name', 'losant/my-device/state', 'my-device'],
    ['a wildcard', 'losant/+/state', '+'],
    ['empty', 'losant//state', '""'],
  ])('bad device id (%s) is invalid without a suggestion', (_name, topic, mention) => {
    const parsed = parseTopic(topic);
    expect(parsed.kind).toBe('invalid');
    if (parsed.kind !== 'invalid') return;
    expect(parsed.suggestion).toBeUndefined();
    expect(parsed.reason).toContain(mention);
  });

  it.each(['losant', 'losant/'])('%s alone is invalid', (topic) => {
    expect(parseTopic(topic).kind).toBe('invalid');
  });

  it.each([
    'custom/topic',
    'sensors/a/temp',
    'losantx/abc',
    `losants/${ID}/state`,
    `Losant/${ID}/state`,
    `/losant/${ID}/state`,
    `x/losant/${ID}/state`,
    '$SYS/broker/uptime',
    '',
  ])('%j is custom', (topic) => {
    expect(parseTopic(topic)).toEqual({ kind: 'custom' });
  });

  describe('custom prefix', () => {
    it('classifies topics under the given prefix', () => {
      expect(parseTopic(`acme/${ID}/state`, 'acme')).toEqual({ kind: 'state', deviceId: ID });
      expect(parseTopic(`acme/${ID}/command`, 'acme')).toEqual({ kind: 'command', deviceId: ID });
      expect(parseTopic(`acme/${ID}/error`, 'acme')).toEqual({ kind: 'error', deviceId: ID });
    });

    it('suggests a state topic under the given prefix', () => {
      const parsed = parseTopic(`acme/${ID}`, 'acme');
      expect(parsed).toMatchObject({ kind: 'invalid', suggestion: `acme/${ID}/state` });
    });

    it('treats losant/ topics as custom', () => {
      expect(parseTopic(`losant/${ID}/state`, 'acme')).toEqual({ kind: 'custom' });
    });

    it('accepts a prefix of several levels', () => {
      expect(parseTopic(`acme/iot/${ID}/state`, 'acme/iot')).toEqual({ kind: 'state', deviceId: ID });
      expect(parseTopic(`acme/iot/${ID}/command`, 'acme/iot')).toEqual({ kind: 'command', deviceId: ID });
      expect(parseTopic(`acme/iot/${ID}`, 'acme/iot')).toMatchObject({
        kind: 'invalid',
        suggestion: `acme/iot/${ID}/state`,
      });
      expect(parseTopic(`acme/iot/${ID}/state/x`, 'acme/iot')).toMatchObject({ kind: 'invalid' });
      expect(parseTopic(`acme/${ID}/state`, 'acme/iot')).toEqual({ kind: 'custom' });
    });

    it('a topic sharing only the start of the prefix is custom', () => {
      expect(parseTopic('acmex/a', 'acme')).toEqual({ kind: 'custom' });
    });
  });

  it('uses losant as the default prefix', () => {
    expect(DEFAULT_TOPIC_PREFIX).toBe('losant');
  });
});

describe('topic builders', () => {
  it('build the device topics', () => {
    expect(stateTopic(ID)).toBe(`losant/${ID}/state`);
    expect(commandTopic(ID)).toBe(`losant/${ID}/command`);
    expect(errorTopic(ID)).toBe(`losant/${ID}/error`);
    expect(stateTopic(ID, 'acme')).toBe(`acme/${ID}/state`);
    expect(commandTopic(ID, 'acme')).toBe(`acme/${ID}/command`);
    expect(errorTopic(ID, 'acme')).toBe(`acme/${ID}/error`);
  });

  it('round-trip through parseTopic', () => {
    expect(parseTopic(stateTopic(ID))).toEqual({ kind: 'state', deviceId: ID });
    expect(parseTopic(commandTopic(ID, 'acme'), 'acme')).toEqual({ kind: 'command', deviceId: ID });
  });
});

describe('hasWildcard', () => {
  it.each([
    ['a/b', false],
    ['a/+', true],
    ['#', true],
    ['a/#', true],
    ['', false],
  ])('%s → %s', (filter, expected) => {
    expect(hasWildcard(filter)).toBe(expected);
  });
});

describe('filterMatches', () => {
  it.each<[string, string, boolean]>([
    // exact
    ['a/b', 'a/b', true],
    ['a/b', 'a/c', false],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
    ['a', 'a', true],
    ['a/b', 'A/b', false],
    // +
    ['a/+', 'a/b', true],
    ['a/+', 'a/b/c', false],
    ['a/+', 'a', false],
    ['a/+', 'a/', true],
    ['+', 'a', true],
    ['+', 'a/b', false],
    ['+', '/a', false],
    ['+/+', '/a', true],
    ['+/b/+', 'a/b/c', true],
    ['+/b/+', 'a/x/c', false],
    ['a/+/c', 'a//c', true],
    // #
    ['#', 'a', true],
    ['#', 'a/b/c', true],
    ['#', '/a', true],
    ['a/#', 'a', true],
    ['a/#', 'a/b', true],
    ['a/#', 'a/b/c', true],
    ['a/#', 'b/a', false],
    ['a/#', 'ab', false],
    ['a/b/#', 'a', false],
    ['+/#', 'a', true],
    ['+/#', 'a/b/c', true],
    ['a/+/#', 'a/b', true],
    ['a/+/#', 'a', false],
    // $ topics
    ['#', '$SYS/broker', false],
    ['+/broker', '$SYS/broker', false],
    ['+', '$x', false],
    ['$SYS/#', '$SYS/broker', true],
    ['$SYS/+', '$SYS/broker', true],
    ['$SYS/broker', '$SYS/broker', true],
    ['$SYS/#', 'SYS/broker', false],
    ['a/#', 'a/$b', true],
  ])('%j matches %j → %s', (filter, topic, expected) => {
    expect(filterMatches(filter, topic)).toBe(expected);
  });
});

describe('filterCovers', () => {
  it.each<[string, string, boolean]>([
    // identical
    ['a/b', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/#', 'a/#', true],
    ['#', '#', true],
    // outer broader
    ['#', 'a/b', true],
    ['#', 'a/+/c', true],
    ['#', '+', true],
    ['a/#', 'a', true],
    ['a/#', 'a/b', true],
    ['a/#', 'a/+', true],
    ['a/#', 'a/b/#', true],
    ['a/+', 'a/b', true],
    ['+/+', 'a/b', true],
    ['+/b', 'a/b', true],
    ['a/+/c', 'a/b/c', true],
    ['a/+/#', 'a/b', true],
    ['a/+/#', 'a/b/c/d', true],
    ['a/+/#', 'a/+/c', true],
    // outer narrower or different
    ['a/b', 'a/+', false],
    ['a/b', 'a/#', false],
    ['a/+', 'a/#', false],
    ['a/+', 'a/b/c', false],
    ['a/+', 'a', false],
    ['a/b', 'a/b/c', false],
    ['a/b/c', 'a/b', false],
    ['a/b/#', 'a/#', false],
    ['a/b/#', 'a', false],
    ['a/+/#', 'a', false],
    ['a/+/#', 'a/#', false],
    ['+', '#', false],
    ['+', 'a/b', false],
    ['a/#', 'b/#', false],
    ['a/#', '+/x', false],
    ['a/#', '#', false],
    // $ topics: wildcards at the first level never reach them
    ['#', '$SYS/#', false],
    ['#', '$SYS/broker', false],
    ['+/broker', '$SYS/broker', false],
    ['+/#', '$SYS/x', false],
    ['$SYS/#', '$SYS/broker', true],
    ['$SYS/#', '$SYS/+', true],
    ['$SYS/+', '$SYS/broker', true],
    ['$SYS/#', '#', false],
    ['$SYS/#', '+/broker', false],
  ])('%j covers %j → %s', (outer, inner, expected) => {
    expect(filterCovers(outer, inner)).toBe(expected);
  });
});

describe('filtersOverlap', () => {
  const rows: Array<[string, string, boolean]> = [
    // identical / exact
    ['a/b', 'a/b', true],
    ['a/b', 'a/c', false],
    ['a/b', 'a/b/c', false],
    ['a', 'a/b', false],
    // +
    ['a/+', 'a/b', true],
    ['+/b', 'a/+', true],
    ['+/b', 'a/c', false],
    ['a/+', 'a', false],
    ['a/+', 'a/b/c', false],
    ['+', 'a/b', false],
    ['+/+', '+/+', true],
    ['+/+', '+/+/+', false],
    // #
    ['#', 'a/b', true],
    ['#', '+', true],
    ['#', '#', true],
    ['a/#', 'a', true],
    ['a/#', 'a/b/c', true],
    ['a/#', 'b/#', false],
    ['a/#', '+/x', true],
    ['a/b/#', 'a/+', true],
    ['a/b/#', 'a/c/#', false],
    ['a/+', 'a/b/#', true],
    ['a/b/c', 'a/#', true],
    ['a/b/c', '+/#', true],
    // the platform's topics
    ['#', 'losant/#', true],
    ['+', 'losant/#', true],
    ['+/#', 'losant/#', true],
    ['+/x/command', 'losant/#', true],
    ['+/+/command', 'losant/#', true],
    ['losant/+/command', 'losant/#', true],
    ['losant', 'losant/#', true],
    ['losantx/a', 'losant/#', false],
    ['x/losant/a', 'losant/#', false],
    ['custom/#', 'losant/#', false],
    // $ topics: wildcards at the first level never reach them
    ['#', '$SYS/#', false],
    ['+/broker', '$SYS/broker', false],
    ['+', '$SYS', false],
    ['$SYS/#', '$SYS/broker', true],
    ['$SYS/+', '$SYS/#', true],
    ['$SYS/#', '$other/#', false],
    ['$SYS/#', 'SYS/#', false],
  ];

  it.each(rows)('%j and %j → %s', (a, b, expected) => {
    expect(filtersOverlap(a, b)).toBe(expected);
  });

  it.each(rows)('is symmetric for %j and %j', (a, b, expected) => {
    expect(filtersOverlap(b, a)).toBe(expected);
  });
});
