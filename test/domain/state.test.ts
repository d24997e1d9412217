import { describe, expect, it } from 'vitest';
import type { AttributeDef, DataType } from '../../src/domain/model.js';
import {
  convertValue,
  MAX_AGE_MS,
  MAX_FUTURE_MS,
  MAX_STRING_BYTES,
  parseJson,
  parseStates,
  parseTime,
  readTime,
  type StateParseResult,
} from '../../src/domain/state.js';

const NOW = Date.parse('2024-06-01T12:00:00.000Z');
const DAY = 24 * 3600 * 1000;

function attr(name: string, dataType: DataType): AttributeDef {
  return { name, dataType };
}

const ATTRS: AttributeDef[] = [
  attr('temp', 'number'),
  attr('label', 'string'),
  attr('on', 'boolean'),
  attr('where', 'gps'),
  attr('image', 'blob'),
];

function accepted(result: StateParseResult) {
  if (!result.ok) throw new Error(`expected an accepted payload, got: ${result.reason}`);
  return result;
}

function refused(result: StateParseResult): string {
  if (result.ok) throw new Error('expected the payload to be refused');
  return result.reason;
}

describe('parseJson', () => {
  it.each([
    ['{"data":{"temp":1}}', { data: { temp: 1 } }],
    ['[1,2]', [1, 2]],
    ['"text"', 'text'],
    ['42', 42],
    ['null', null],
    ['  {"a": true}  ', { a: true }],
  ])('parses %s', (raw, value) => {
    expect(parseJson(raw)).toEqual({ ok: true, value });
  });

  it('parses a Buffer as UTF-8', () => {
    expect(parseJson(Buffer.from('{"label":"café"}', 'utf8'))).toEqual({ ok: true, value: { label: 'café' } });
  });

  it.each(['', '{', '{"data":', "{'a':1}", 'undefined', '{"a":1,}', 'NaN'])('refuses %j with a reason', (raw) => {
    const result = parseJson(raw);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.reason).toMatch(/^invalid JSON: /);
      expect(result.reason.length).toBeGreaterThan('invalid JSON: '.length);
    }
  });

  it('refuses an invalid Buffer', () => {
    const result = parseJson(Buffer.from('{"data": }'));
    expect(result.ok).toBe(false);
  });
});

describe('parseTime', () => {
  const ms = Date.parse('2024-05-31T08:30:15.250Z');
  it.each<[string, unknown, number]>([
    ['ms since the epoch', ms, ms],
    ['seconds since the epoch', 1717230615, 1717230615000],
    ['fractional seconds', 1717230615.25, 1717230615250],
    ['zero (epoch)', 0, 0],
    ['negative: ms before now', -5000, NOW - 5000],
    ['negative fraction rounds', -1.4, NOW - 1],
    ['{$date: ISO}', { $date: '2024-05-31T08:30:15.250Z' }, ms],
    ['{$date: ms}', { $date: ms }, ms],
    ['ISO string with Z', '2024-05-31T08:30:15.250Z', ms],
    ['ISO string with offset', '2024-05-31T10:30:15.250+02:00', ms],
    ['ISO string without seconds', '2024-05-31T08:30Z', Date.parse('2024-05-31T08:30:00Z')],
    ['ISO date only', '2024-05-31', Date.parse('2024-05-31')],
    ['ISO string padded with spaces', ' 2024-05-31T08:30:15.250Z ', ms],
    ['numeric string, ms', String(ms), ms],
    ['numeric string, seconds', '1717230615', 1717230615000],
    ['numeric string, negative', '-2500', NOW - 2500],
  ])('%s', (_name, value, expected) => {
    expect(parseTime(value, NOW)).toBe(expected);
  });

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['null', null],
    ['garbage string', 'yesterday'],
    ['free text that V8 would read as a date', 'sensor 7'],
    ['free text with a number', 'garbage 1'],
    ['empty string', ''],
    ['invalid ISO', '2024-13-45T00:00:00Z'],
    ['boolean', true],
    ['array', [1717230615]],
    ['object without $date', { date: '2024-05-31T08:30:15Z' }],
    ['{$date: garbage}', { $date: 'not a date' }],
    ['{$date: null}', { $date: null }],
    ['NaN', Number.NaN],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['-Infinity', Number.NEGATIVE_INFINITY],
  ])('%s → undefined', (_name, value) => {
    expect(parseTime(value, NOW)).toBeUndefined();
  });
});

describe('convertValue', () => {
  const MAX = 'x'.repeat(MAX_STRING_BYTES);
  it.each<[DataType, unknown, unknown]>([
    // number
    ['number', 72, 72],
    ['number', -3.5, -3.5],
    ['number', 0, 0],
    ['number', '72', 72],
    ['number', '-3.25', -3.25],
    ['number', ' 72 ', 72],
    ['number', '1e3', 1000],
    ['number', '.5', 0.5],
    // string
    ['string', 'hello', 'hello'],
    ['string', '', ''],
    ['string', 72, '72'],
    ['string', 1.5, '1.5'],
    ['string', true, 'true'],
    ['string', false, 'false'],
    ['string', MAX, MAX],
    // boolean
    ['boolean', true, true],
    ['boolean', false, false],
    ['boolean', 1, true],
    ['boolean', 0, false],
    ['boolean', 'true', true],
    ['boolean', 'false', false],
    ['boolean', '1', true],
    ['boolean', '0', false],
    // gps
    ['gps', '37.7749,-122.4194', '37.7749,-122.4194'],
    ['gps', '37.7749, -122.4194', '37.7749,-122.4194'],
    ['gps', [37.7749, -122.4194], '37.7749,-122.4194'],
    ['gps', [0, 0], '0,0'],
    ['gps', [90, 180], '90,180'],
    ['gps', [-90, -180], '-90,-180'],
    // blob
    ['blob', 'aGVsbG8=', 'aGVsbG8='],
    ['blob', 'aGk=', 'aGk='],
    ['blob', 'AAAA', 'AAAA'],
    ['blob', 'a+/b', 'a+/b'],
    ['blob', '', ''],
  ])('%s accepts %j', (dataType, value, expected) => {
    expect(convertValue(dataType, value)).toEqual({ ok: true, value: expected });
  });

  it.each<[DataType, unknown, string]>([
    // number
    ['number', 'abc', 'abc'],
    ['number', '', 'number'],
    ['number', '   ', 'number'],
    ['number', '72abc', '72abc'],
    ['number', '0x10', '0x10'],
    ['number', '0b11', '0b11'],
    ['number', 'Infinity', 'Infinity'],
    ['number', '1e400', 'not a number'],
    ['number', true, 'got boolean'],
    ['number', null, 'got null'],
    ['number', [1], 'got array'],
    ['number', { v: 1 }, 'got object'],
    ['number', Number.NaN, 'is not a finite number'],
    // string
    ['string', null, 'got null'],
    ['string', { a: 1 }, 'got object'],
    ['string', ['a'], 'got array'],
    ['string', `${MAX}x`, String(MAX_STRING_BYTES)],
    ['string', 'é'.repeat(MAX_STRING_BYTES / 2 + 1), String(MAX_STRING_BYTES)],
    // boolean
    ['boolean', 2, 'expected a boolean'],
    ['boolean', -1, 'expected a boolean'],
    ['boolean', 0.5, 'expected a boolean'],
    ['boolean', 'yes', 'expected a boolean'],
    ['boolean', 'TRUE', 'expected a boolean'],
    ['boolean', '', 'expected a boolean'],
    ['boolean', null, 'got null'],
    ['boolean', [true], 'got array'],
    // gps
    ['gps', '37.7', 'latitude,longitude'],
    ['gps', 'a,b', 'latitude,longitude'],
    ['gps', '1,2,3', 'latitude,longitude'],
    ['gps', ',5', 'latitude,longitude'],
    ['gps', '91,0', 'latitude,longitude'],
    ['gps', '0,181', 'latitude,longitude'],
    ['gps', '0x1,0x2', 'latitude,longitude'],
    ['gps', [91, 0], 'latitude,longitude'],
    ['gps', [1], 'got array'],
    ['gps', [1, 2, 3], 'got array'],
    ['gps', ['1', '2'], 'got array'],
    ['gps', 37.7, 'got number'],
    ['gps', { lat: 1, lon: 2 }, 'got object'],
    ['gps', null, 'got null'],
    // blob
    ['blob', 'not base64!', 'base64'],
    ['blob', 'abc', 'base64'],
    ['blob', 'ab=c', 'base64'],
    ['blob', 'a===', 'base64'],
    ['blob', 42, 'got number'],
    ['blob', null, 'got null'],
  ])('%s refuses %j', (dataType, value, reasonFragment) => {
    const result = convertValue(dataType, value);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toContain(reasonFragment);
  });

  it('clips long values in the reason', () => {
    const result = convertValue('number', 'z'.repeat(500));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason.length).toBeLessThan(100);
  });
});

describe('parseStates', () => {
  it('follows a device definition replaced with other attributes', () => {
    const before: AttributeDef[] = [attr('temp', 'number')];
    const after: AttributeDef[] = [attr('temp', 'string'), attr('seq', 'number')];
    const payload = { data: { temp: 21, seq: 1 }, time: NOW };
    for (const attrs of [before, after, before]) {
      const result = accepted(parseStates(payload, attrs, NOW));
      expect(result.states[0]?.data).toEqual(attrs === before ? { temp: 21 } : { temp: '21', seq: 1 });
      expect(result.issues.map((i) => i.attribute)).toEqual(attrs === before ? ['seq'] : []);
    }
  });

  it('keeps an attribute named __proto__ like any other', () => {
    const result = accepted(parseStates(JSON.parse('{"data":{"__proto__":5}}'), [attr('__proto__', 'number')], NOW));
    expect(Object.entries(result.states[0]?.data ?? {})).toEqual([['__proto__', 5]]);
  });

  describe('accepted shapes', () => {
    it('accepts a single object', () => {
      const result = accepted(parseStates({ data: { temp: 72 } }, ATTRS, NOW));
      expect(result.states).toEqual([{ time: NOW, data: { temp: 72 }, receiveTime: true }]);
      expect(result.issues).toEqual([]);
    });

    it('converts every data type in one state', () => {
      const result = accepted(
        parseStates(
          { data: { temp: '72', label: 5, on: 'true', where: [1, 2], image: 'aGk=' }, time: NOW - 1000 },
          ATTRS,
          NOW,
        ),
      );
      expect(result.states).toEqual([
        { time: NOW - 1000, data: { temp: 72, label: '5', on: true, where: '1,2', image: 'aGk=' } },
      ]);
      expect(result.issues).toEqual([]);
    });

    it('accepts an array and keeps its order', () => {
      const payload = [
        { data: { temp: 3 }, time: NOW - 1000 },
        { data: { temp: 1 }, time: NOW - 3000 },
        { data: { temp: 2 }, time: NOW - 2000 },
      ];
      const result = accepted(parseStates(payload, ATTRS, NOW));
      expect(result.states).toEqual([
        { time: NOW - 1000, data: { temp: 3 } },
        { time: NOW - 3000, data: { temp: 1 } },
        { time: NOW - 2000, data: { temp: 2 } },
      ]);
      expect(result.issues).toEqual([]);
    });

    it('accepts an array of one', () => {
      const result = accepted(parseStates([{ data: { on: 1 } }], ATTRS, NOW));
      expect(result.states).toEqual([{ time: NOW, data: { on: true }, receiveTime: true }]);
    });

    it('ignores meta', () => {
      const result = accepted(parseStates({ data: { temp: 1 }, meta: { any: 'thing' } }, ATTRS, NOW));
      expect(result.states).toEqual([{ time: NOW, data: { temp: 1 }, receiveTime: true }]);
      expect(result.issues).toEqual([]);
    });
  });

  describe('wrong shapes are refused whole', () => {
    it('refuses an empty array', () => {
      expect(refused(parseStates([], ATTRS, NOW))).toContain('empty');
    });

    it.each<[string, unknown]>([
      ['null', null],
      ['a number', 42],
      ['a string', 'temp=72'],
      ['a boolean', true],
      ['an object without data', { temp: 72 }],
      ['data is null', { data: null }],
      ['data is an array', { data: [72] }],
      ['data is a string', { data: 'temp' }],
      ['data is a number', { data: 72 }],
      ['a nested array', [[{ data: { temp: 1 } }]]],
    ])('refuses %s', (_name, payload) => {
      expect(refused(parseStates(payload, ATTRS, NOW)).length).toBeGreaterThan(0);
    });

    it('refuses an array when one element is wrong, naming its index', () => {
      const reason = refused(parseStates([{ data: { temp: 1 } }, { data: { temp: 2 } }, { nodata: 1 }], ATTRS, NOW));
      expect(reason).toContain('state 2');
      expect(reason).toContain('data');
    });

    it('refuses an array when an element is not an object, naming its index', () => {
      const reason = refused(parseStates([{ data: { temp: 1 } }, 7], ATTRS, NOW));
      expect(reason).toContain('state 1');
    });

    it('refuses an array when an element has data null', () => {
      expect(refused(parseStates([{ data: null }], ATTRS, NOW))).toContain('state 0');
    });

    it('does not name an index for a single object', () => {
      expect(refused(parseStates({ data: [] }, ATTRS, NOW))).not.toContain('state 0');
    });
  });

  describe('attributes', () => {
    it('drops unknown attributes with an issue and keeps the rest', () => {
      const result = accepted(parseStates({ data: { temp: 1, humidity: 40 } }, ATTRS, NOW));
      expect(result.states).toEqual([{ time: NOW, data: { temp: 1 }, receiveTime: true }]);
      expect(result.issues).toHaveLength(1);
      expect(result.issues[0]).toMatchObject({ index: 0, attribute: 'humidity' });
      expect(result.issues[0]?.reason).toContain('humidity');
    });

    it('drops unconvertible values with an issue and keeps the rest', () => {
      const result = accepted(parseStates({ data: { temp: 'warm', on: true } }, ATTRS, NOW));
      expect(result.states).toEqual([{ time: NOW, data: { on: true }, receiveTime: true }]);
      expect(result.issues).toHaveLength(1);
      expect(result.issues[0]).toMatchObject({ index: 0, attribute: 'temp' });
      expect(result.issues[0]?.reason).toContain('temp');
      expect(result.issues[0]?.reason).toContain('warm');
    });

    it('drops an over-long string with an issue', () => {
      const result = accepted(parseStates({ data: { label: 'x'.repeat(MAX_STRING_BYTES + 1), temp: 1 } }, ATTRS, NOW));
      expect(result.states).toEqual([{ time: NOW, data: { temp: 1 }, receiveTime: true }]);
      expect(result.issues).toEqual([expect.objectContaining({ index: 0, attribute: 'label' })]);
    });

    it('does not return a state left with no valid attributes', () => {
      const result = accepted(parseStates({ data: { humidity: 40, temp: 'warm' } }, ATTRS, NOW));
      expect(result.states).toEqual([]);
      expect(result.issues.map((i) => i.attribute)).toEqual(['humidity', 'temp']);
    });

    it('does not return a state with empty data', () => {
      const result = accepted(parseStates({ data: {} }, ATTRS, NOW));
      expect(result.states).toEqual([]);
    });

    it('drops everything for a device without attributes', () => {
      const result = accepted(parseStates({ data: { temp: 1 } }, [], NOW));
      expect(result.states).toEqual([]);
      expect(result.issues).toEqual([expect.objectContaining({ index: 0, attribute: 'temp' })]);
    });

    it('reports issues with the index of the state in an array', () => {
      const result = accepted(
        parseStates([{ data: { temp: 1 } }, { data: { temp: 2, bogus: 1 } }, { data: { on: 'maybe' } }], ATTRS, NOW),
      );
      expect(result.states).toEqual([
        { time: NOW, data: { temp: 1 }, receiveTime: true },
        { time: NOW, data: { temp: 2 }, receiveTime: true },
      ]);
      expect(result.issues).toEqual([
        expect.objectContaining({ index: 1, attribute: 'bogus' }),
        expect.objectContaining({ index: 2, attribute: 'on' }),
      ]);
    });
  });

  describe('time', () => {
    it('uses now when time is missing, without an issue', () => {
      const result = accepted(parseStates({ data: { temp: 1 } }, ATTRS, NOW));
      expect(result.states[0]?.time).toBe(NOW);
      expect(result.issues).toEqual([]);
    });

    it('uses now when time is null, without an issue', () => {
      const result = accepted(parseStates({ data: { temp: 1 }, time: null }, ATTRS, NOW));
      expect(result.states[0]?.time).toBe(NOW);
      expect(result.issues).toEqual([]);
    });

    it.each<[string, unknown]>([
      ['garbage string', 'not a time'],
      ['free text', 'sensor 7'],
      ['boolean', true],
      ['object', { when: 1 }],
    ])('uses now with an issue when time is unparsable (%s)', (_name, time) => {
      const result = accepted(parseStates({ data: { temp: 1 }, time }, ATTRS, NOW));
      expect(result.states).toEqual([{ time: NOW, data: { temp: 1 }, receiveTime: true }]);
      expect(result.issues).toHaveLength(1);
      expect(result.issues[0]?.index).toBe(0);
      expect(result.issues[0]?.attribute).toBeUndefined();
      expect(result.issues[0]?.reason).toContain('time');
    });

    it.each<[string, unknown, number]>([
      ['ms', NOW - 60_000, NOW - 60_000],
      ['seconds', (NOW - 60_000) / 1000, NOW - 60_000],
      ['negative', -60_000, NOW - 60_000],
      ['{$date}', { $date: new Date(NOW - 60_000).toISOString() }, NOW - 60_000],
      ['ISO string', new Date(NOW - 60_000).toISOString(), NOW - 60_000],
    ])('reads the time form %s', (_name, time, expected) => {
      const result = accepted(parseStates({ data: { temp: 1 }, time }, ATTRS, NOW));
      expect(result.states).toEqual([{ time: expected, data: { temp: 1 } }]);
      expect(result.issues).toEqual([]);
    });

    it('ignores a state older than 30 days with an issue', () => {
      const result = accepted(parseStates({ data: { temp: 1 }, time: NOW - MAX_AGE_MS - 1 }, ATTRS, NOW));
      expect(result.states).toEqual([]);
      expect(result.issues).toHaveLength(1);
      expect(result.issues[0]?.reason).toContain('30 days');
    });

    it('accepts a state exactly 30 days old', () => {
      const result = accepted(parseStates({ data: { temp: 1 }, time: NOW - MAX_AGE_MS }, ATTRS, NOW));
      expect(result.states).toEqual([{ time: NOW - MAX_AGE_MS, data: { temp: 1 } }]);
    });

    it('ignores a state more than 1 day ahead with an issue', () => {
      const result = accepted(parseStates({ data: { temp: 1 }, time: NOW + MAX_FUTURE_MS + 1 }, ATTRS, NOW));
      expect(result.states).toEqual([]);
      expect(result.issues).toHaveLength(1);
      expect(result.issues[0]?.reason).toContain('1 day');
    });

    it('accepts a state exactly 1 day ahead', () => {
      const result = accepted(parseStates({ data: { temp: 1 }, time: NOW + DAY }, ATTRS, NOW));
      expect(result.states).toEqual([{ time: NOW + DAY, data: { temp: 1 } }]);
    });

    it('ignores a state at the epoch (seconds 0)', () => {
      const result = accepted(parseStates({ data: { temp: 1 }, time: 0 }, ATTRS, NOW));
      expect(result.states).toEqual([]);
      expect(result.issues).toHaveLength(1);
    });

    it('ignores only the out-of-window states of an array, with their index', () => {
      const result = accepted(
        parseStates(
          [
            { data: { temp: 1 }, time: NOW - 31 * DAY },
            { data: { temp: 2 }, time: NOW - DAY },
            { data: { temp: 3 }, time: NOW + 2 * DAY },
          ],
          ATTRS,
          NOW,
        ),
      );
      expect(result.states).toEqual([{ time: NOW - DAY, data: { temp: 2 } }]);
      expect(result.issues.map((i) => i.index)).toEqual([0, 2]);
    });
  });
});

describe('times no Date can hold (hardening)', () => {
  it.each<[string, unknown]>([
    ['1e300', 1e300],
    ['-1e300', -1e300],
    ['{$date: "9000000000000000"}', { $date: '9000000000000000' }],
    ['a numeric string past the range', '99999999999999999999'],
    ['just past the range', 8.64e15 + 1],
  ])('%s is out of range, and the state is ignored with a reason', (_name, time) => {
    expect(readTime(time, NOW)).toEqual({ ok: false, why: 'outOfRange' });
    const result = accepted(parseStates({ data: { temp: 1 }, time }, ATTRS, NOW));
    expect(result.states).toEqual([]);
    expect(result.issues).toEqual([{ index: 0, reason: 'state time is outside the range of dates; ignored' }]);
  });

  it('reads the edge of the range', () => {
    expect(readTime(8.64e15, NOW)).toEqual({ ok: true, time: 8.64e15 });
  });

  it('unwraps $date once: a nested $date is unreadable, however deep', () => {
    let deep: unknown = 1717230615000;
    for (let i = 0; i < 100_000; i++) deep = { $date: deep };
    expect(readTime(deep, NOW)).toEqual({ ok: false, why: 'unreadable' });
    expect(readTime({ $date: { $date: 1717230615000 } }, NOW)).toEqual({ ok: false, why: 'unreadable' });
  });

  it('refuses non-finite numbers for every type, never storing "Infinity"', () => {
    for (const dataType of ['number', 'string', 'boolean', 'gps', 'blob'] as const) {
      expect(convertValue(dataType, Number.POSITIVE_INFINITY).ok).toBe(false);
      expect(convertValue(dataType, Number.NEGATIVE_INFINITY).ok).toBe(false);
    }
    const parsed = parseJson('{"data":{"temp":1e999}}');
    expect(parsed.ok && accepted(parseStates(parsed.value, ATTRS, NOW)).states).toEqual([]);
  });
});
