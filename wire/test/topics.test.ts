import { describe, expect, it } from 'vitest';
import {
  ANY_TOPIC_LEVEL,
  commandTopic,
  DEFAULT_TOPIC_PREFIX,
  DEVICE_IDS,
  deviceTopic,
  errorTopic,
  isDeviceId,
  isTopicLevel,
  parseTopic,
  stateTopic,
  TOPIC_KINDS,
} from '../src/index.js';

const ID = '5f3a1b2c3d4e5f6a7b8c9d0e';

describe('topic builders', () => {
  it('take the device id first and the prefix last, defaulting to losant', () => {
    expect(DEFAULT_TOPIC_PREFIX).toBe('losant');
    expect(stateTopic(ID)).toBe(`losant/${ID}/state`);
    expect(commandTopic(ID, 'acme/iot')).toBe(`acme/iot/${ID}/command`);
    expect(errorTopic(ID, 'acme')).toBe(`acme/${ID}/error`);
    expect(deviceTopic(ID, 'command')).toBe(`losant/${ID}/command`);
  });

  it('round-trip through parseTopic for every kind and prefix', () => {
    for (const prefix of ['losant', 'acme', 'acme/iot/v1']) {
      for (const kind of TOPIC_KINDS) {
        expect(parseTopic(deviceTopic(ID, kind, prefix), prefix)).toEqual({ kind, deviceId: ID });
      }
    }
  });
});

describe('device ids', () => {
  it.each<[unknown, boolean]>([
    [ID, true],
    [ID.toUpperCase(), false],
    [`${ID}0`, false],
    [ID.slice(1), false],
    ['zzzzzzzzzzzzzzzzzzzzzzzz', false],
    [42, false],
    [undefined, false],
  ])('isDeviceId(%j) is %s', (value, expected) => {
    expect(isDeviceId(value)).toBe(expected);
  });

  it.each<[unknown, boolean]>([
    ['gw', true],
    ['sensor-1.a_b', true],
    [ID, true],
    ['', false],
    ['a/b', false],
    ['a+', false],
    ['#', false],
    ['a b', false],
    ['tab\there', false],
    ['nul\u0000', false],
    [null, false],
  ])('isTopicLevel(%j) is %s', (value, expected) => {
    expect(isTopicLevel(value)).toBe(expected);
  });
});

describe('parseTopic', () => {
  it('classifies the three device topics', () => {
    expect(parseTopic(`losant/${ID}/state`)).toEqual({ kind: 'state', deviceId: ID });
    expect(parseTopic(`losant/${ID}/command`)).toEqual({ kind: 'command', deviceId: ID });
    expect(parseTopic(`losant/${ID}/error`)).toEqual({ kind: 'error', deviceId: ID });
  });

  it('suggests the state topic for a device topic with a wrong or missing suffix', () => {
    expect(parseTopic(`losant/${ID}`)).toEqual({
      kind: 'invalid',
      reason: `topic losant/${ID} has no /state suffix`,
      suggestion: `losant/${ID}/state`,
      deviceId: ID,
    });
    expect(parseTopic(`losant/${ID}/states`)).toMatchObject({ kind: 'invalid', suggestion: `losant/${ID}/state` });
    expect(parseTopic(`losant/${ID}/state/x`)).toMatchObject({ kind: 'invalid', deviceId: ID });
  });

  it('names the device id rule when the id level breaks it', () => {
    expect(parseTopic('losant/gw/state')).toEqual({
      kind: 'invalid',
      reason: `"gw" is not a device id (${DEVICE_IDS.description})`,
    });
    expect(parseTopic('losant/a b/state', 'losant', ANY_TOPIC_LEVEL)).toEqual({
      kind: 'invalid',
      reason: `"a b" is not a device id (${ANY_TOPIC_LEVEL.description})`,
    });
  });

  it('with ANY_TOPIC_LEVEL, accepts ids the platform would refuse, for clients', () => {
    expect(parseTopic('losant/gw/command', 'losant', ANY_TOPIC_LEVEL)).toEqual({ kind: 'command', deviceId: 'gw' });
    expect(parseTopic('acme/my-sensor/error', 'acme', ANY_TOPIC_LEVEL)).toEqual({
      kind: 'error',
      deviceId: 'my-sensor',
    });
  });

  it.each(['custom/topic', 'losantx/a', `Losant/${ID}/state`, `x/losant/${ID}/state`, '$SYS/uptime', ''])(
    '%j is outside the contract (custom)',
    (topic) => {
      expect(parseTopic(topic)).toEqual({ kind: 'custom' });
    },
  );

  it('is custom for topics under another prefix, or sharing only the start of a prefix', () => {
    expect(parseTopic(`losant/${ID}/state`, 'acme')).toEqual({ kind: 'custom' });
    expect(parseTopic(`acme/${ID}/state`, 'acme/iot')).toEqual({ kind: 'custom' });
    expect(parseTopic(`acmex/${ID}/state`, 'acme')).toEqual({ kind: 'custom' });
  });

  it.each(['losant', 'losant/', 'losant//state'])('%j is invalid: no device id', (topic) => {
    expect(parseTopic(topic)).toMatchObject({ kind: 'invalid' });
    expect(parseTopic(topic)).not.toHaveProperty('deviceId');
  });
});
