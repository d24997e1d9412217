import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  encodeCommand,
  encodeErrorNotice,
  encodeState,
  MAX_TIME_MS,
  parseCommand,
  parseErrorNotice,
  parseJson,
  parseStatePayload,
  readDate,
  readStatePayload,
  readTime,
  type WireResult,
} from '../src/index.js';

const NOW = Date.parse('2024-06-01T12:00:00.000Z');
const SENT = '2024-05-31T08:30:15.250Z';
const bytes = (text: string) => new TextEncoder().encode(text);

function value<T>(result: WireResult<T>): T {
  if (!result.ok) throw new Error(`expected a value, got: ${result.reason}`);
  return result.value;
}
function reason(result: WireResult<unknown>): string {
  if (result.ok) throw new Error('expected a refusal');
  return result.reason;
}

/** Nested one level per step, built without recursion: `[[[...]]]` as text, and as a value. */
const deepText = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;
function deepValue(levels: number): unknown {
  let v: unknown = [];
  for (let i = 0; i < levels; i++) v = [v];
  return v;
}

describe('parseJson', () => {
  it('reads text and UTF-8 bytes', () => {
    expect(parseJson('{"a":1}')).toEqual({ ok: true, value: { a: 1 } });
    expect(parseJson(bytes('{"label":"café"}'))).toEqual({ ok: true, value: { label: 'café' } });
  });

  it('turns invalid UTF-8 into U+FFFD rather than failing', () => {
    expect(parseJson(new Uint8Array([0x22, 0xff, 0x22]))).toEqual({ ok: true, value: '\ufffd' });
  });

  it('answers a reason for malformed JSON', () => {
    expect(reason(parseJson('{"data":'))).toMatch(/^invalid JSON: ./);
  });

  it('reads 100,000 levels of nesting without exhausting the stack', () => {
    expect(parseJson(deepText(100_000)).ok).toBe(true);
  });
});

describe('TIME', () => {
  it.each<[string, unknown, number]>([
    ['ms', Date.parse(SENT), Date.parse(SENT)],
    ['seconds', 1717144215.25, Date.parse(SENT)],
    ['{$date: ISO}', { $date: SENT }, Date.parse(SENT)],
    ['{$date: ms}', { $date: Date.parse(SENT) }, Date.parse(SENT)],
    ['ISO string', SENT, Date.parse(SENT)],
    ['decimal string', '1717144215.25', Date.parse(SENT)],
    ['negative: ms before now', -1500, NOW - 1500],
  ])('reads %s', (_name, time, expected) => {
    expect(readTime(time, NOW)).toEqual({ ok: true, time: expected });
  });

  it.each<[string, unknown]>([
    ['free text', 'sensor 7'],
    ['a boolean', true],
    ['an array', [1]],
    ['an object without $date', { date: 1 }],
    ['NaN', Number.NaN],
    ['a nested $date', { $date: { $date: 1 } }],
  ])('%s is unreadable', (_name, time) => {
    expect(readTime(time, NOW)).toEqual({ ok: false, why: 'unreadable' });
  });

  it('is absent for undefined and null', () => {
    expect(readTime(undefined, NOW)).toEqual({ ok: false, why: 'absent' });
    expect(readTime(null, NOW)).toEqual({ ok: false, why: 'absent' });
  });

  it('holds only times a Date can hold', () => {
    expect(readTime(MAX_TIME_MS, NOW)).toEqual({ ok: true, time: MAX_TIME_MS });
    expect(readTime(MAX_TIME_MS + 1, NOW)).toEqual({ ok: false, why: 'outOfRange' });
    expect(readTime(-MAX_TIME_MS, 0)).toEqual({ ok: true, time: -MAX_TIME_MS });
    expect(readTime(-MAX_TIME_MS - 1, 0)).toEqual({ ok: false, why: 'outOfRange' });
    expect(readTime({ $date: '1e300' }, NOW)).toEqual({ ok: false, why: 'unreadable' });
    expect(readTime({ $date: '9000000000000000' }, NOW)).toEqual({ ok: false, why: 'outOfRange' });
  });

  it('reads back the expanded years toISOString writes for times outside the years 0 to 9999', () => {
    for (const ms of [MAX_TIME_MS, -MAX_TIME_MS, Date.UTC(10_000, 0, 1), Date.UTC(-1, 0, 1)]) {
      const iso = new Date(ms).toISOString();
      expect(iso).toMatch(/^[+-]\d{6}-/);
      expect(readTime({ $date: iso }, NOW)).toEqual({ ok: true, time: ms });
    }
    expect(readTime('+275760-09-13T00:00:00.001Z', NOW)).toEqual({ ok: false, why: 'unreadable' });
    expect(readTime('+12345-01-01', NOW)).toEqual({ ok: false, why: 'unreadable' });
  });

  it('unwraps $date once, so 100,000 nested levels cost one step', () => {
    let deep: unknown = Date.parse(SENT);
    for (let i = 0; i < 100_000; i++) deep = { $date: deep };
    expect(readTime(deep, NOW)).toEqual({ ok: false, why: 'unreadable' });
  });

  it('readDate falls back to now, and to the clock when now itself is no time', () => {
    expect(readDate('garbage', NOW).getTime()).toBe(NOW);
    const before = Date.now();
    const fallback = readDate(undefined, Number.NaN).getTime();
    expect(fallback).toBeGreaterThanOrEqual(before);
    expect(fallback).toBeLessThanOrEqual(Date.now());
  });

  it('never yields an invalid Date, whatever the value', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.double(), fc.string()), (time) => {
        const reading = readTime(time, NOW);
        if (reading.ok) expect(Number.isNaN(new Date(reading.time).getTime())).toBe(false);
        expect(Number.isNaN(readDate(time, NOW).getTime())).toBe(false);
      }),
    );
  });
});

describe('state payload', () => {
  it('reads one report or a batch, leaving times as sent', () => {
    expect(value(parseStatePayload('{"data":{"temp":21.5},"time":1717144215}'))).toEqual({
      reports: [{ data: { temp: 21.5 }, time: 1717144215 }],
      batch: false,
    });
    const batch = value(parseStatePayload(bytes('[{"data":{"a":1}},{"data":{"b":2},"meta":{"fw":"1.2"}}]')));
    expect(batch).toEqual({ reports: [{ data: { a: 1 } }, { data: { b: 2 }, meta: { fw: '1.2' } }], batch: true });
  });

  it.each<[string, unknown, string]>([
    ['an empty array', [], 'payload is an empty array'],
    ['a number', 42, 'expected an object with a "data" object'],
    ['null', null, 'expected an object with a "data" object'],
    ['no data', { time: 1 }, '"data" must be an object of attribute values'],
    ['data as an array', { data: [1] }, '"data" must be an object of attribute values'],
    ['a bad report in a batch', [{ data: {} }, { data: 'x' }], 'state 1: "data" must be an object of attribute values'],
  ])('refuses %s whole', (_name, payload, expected) => {
    expect(reason(readStatePayload(payload))).toBe(expected);
  });

  it('refuses malformed JSON with the JSON reason', () => {
    expect(reason(parseStatePayload('{"data":'))).toMatch(/^invalid JSON: /);
  });

  it('encodes Dates and numbers as ms, other TIME forms as given, and round-trips', () => {
    const text = encodeState({ data: { temp: 21.5 }, time: new Date(SENT) });
    expect(text).toBe(`{"data":{"temp":21.5},"time":${Date.parse(SENT)}}`);
    expect(encodeState({ data: { a: 1 } })).toBe('{"data":{"a":1}}');
    const batch = [
      { data: { a: 1 }, time: { $date: SENT } },
      { data: { b: true }, time: SENT, meta: { seq: 7 } },
    ];
    const read = value(parseStatePayload(encodeState(batch)));
    expect(read).toEqual({ reports: batch, batch: true });
    for (const report of read.reports) expect(readTime(report.time, NOW)).toEqual({ ok: true, time: Date.parse(SENT) });
  });

  it('refuses to encode what the server would refuse or misread', () => {
    expect(() => encodeState({ data: [] as unknown as Record<string, unknown> })).toThrow(TypeError);
    expect(() => encodeState([])).toThrow(TypeError);
    expect(() => encodeState({ data: {}, time: MAX_TIME_MS * 2 })).toThrow(RangeError);
    expect(() => encodeState({ data: {}, time: new Date(Number.NaN) })).toThrow(RangeError);
  });
});

describe('command', () => {
  it('encodes {name, payload, time: {$date}}', () => {
    expect(encodeCommand({ name: 'blink', payload: { times: 3 }, time: Date.parse(SENT) })).toBe(
      `{"name":"blink","payload":{"times":3},"time":{"$date":"${SENT}"}}`,
    );
    expect(JSON.parse(encodeCommand({ name: 'reset', time: new Date(SENT) }))).toEqual({
      name: 'reset',
      payload: null,
      time: { $date: SENT },
    });
  });

  it('round-trips through parseCommand', () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.jsonValue(),
        fc.integer({ min: -MAX_TIME_MS, max: MAX_TIME_MS }),
        (name, payload, time) => {
          const read = value(parseCommand(encodeCommand({ name, payload, time }), NOW));
          expect(read.name).toBe(name);
          // What JSON text can carry: a -0 (which fast-check generates) is written as 0.
          expect(read.payload).toEqual(JSON.parse(JSON.stringify(payload ?? null)));
          expect(read.time.getTime()).toBe(time);
        },
      ),
    );
  });

  it('uses now for a command whose time is missing or unreadable', () => {
    expect(value(parseCommand('{"name":"x"}', NOW))).toEqual({ name: 'x', payload: null, time: new Date(NOW) });
    expect(value(parseCommand('{"name":"x","time":{"$date":"soon"}}', NOW)).time).toEqual(new Date(NOW));
    expect(value(parseCommand('{"name":"x","time":{"$date":1e300}}', NOW)).time).toEqual(new Date(NOW));
  });

  it.each<[string, string, RegExp]>([
    ['not JSON', 'blink', /^invalid JSON: /],
    ['an array', '[{"name":"x"}]', /JSON object/],
    ['no name', '{"payload":1}', /"name"/],
    ['a name that is not a string', '{"name":7}', /"name"/],
  ])('refuses %s with a reason', (_name, raw, expected) => {
    expect(reason(parseCommand(raw, NOW))).toMatch(expected);
  });

  it('reads a payload nested 100,000 levels deep without walking it', () => {
    const read = value(parseCommand(`{"name":"x","payload":${deepText(100_000)}}`, NOW));
    expect(Array.isArray(read.payload)).toBe(true);
  });

  it('refuses to encode a payload too deep for JSON.stringify with a clear Error', () => {
    expect(() => encodeCommand({ name: 'x', payload: deepValue(100_000), time: NOW })).toThrow(
      /^command "x" cannot be encoded as JSON: /,
    );
  });

  it('refuses to encode a time no Date can hold', () => {
    expect(() => encodeCommand({ name: 'x', time: Number.POSITIVE_INFINITY })).toThrow(RangeError);
  });
});

describe('error notice', () => {
  const ID = '5f3a1b2c3d4e5f6a7b8c9d0e';

  it('encodes {code, message, topic, time: {$date}} and round-trips', () => {
    const notice = { code: 403, message: 'not yours', topic: `losant/${ID}/state`, time: Date.parse(SENT) };
    const text = encodeErrorNotice(notice);
    expect(text).toBe(`{"code":403,"message":"not yours","topic":"losant/${ID}/state","time":{"$date":"${SENT}"}}`);
    expect(value(parseErrorNotice(bytes(text), NOW))).toEqual({ ...notice, time: new Date(SENT) });
  });

  it('uses now for a notice whose time is missing', () => {
    expect(value(parseErrorNotice('{"code":400,"message":"m","topic":"t"}', NOW)).time).toEqual(new Date(NOW));
  });

  it.each<[string, string, RegExp]>([
    ['not JSON', '', /^invalid JSON: /],
    ['null', 'null', /JSON object/],
    ['no code', '{"message":"m","topic":"t"}', /"code"/],
    ['a code that is not a status', '{"code":1e3,"message":"m","topic":"t"}', /"code"/],
    ['a fractional code', '{"code":400.5,"message":"m","topic":"t"}', /"code"/],
    ['no message', '{"code":400,"topic":"t"}', /"message"/],
    ['no topic', '{"code":400,"message":"m"}', /"topic"/],
  ])('refuses %s with a reason', (_name, raw, expected) => {
    expect(reason(parseErrorNotice(raw, NOW))).toMatch(expected);
  });

  it('refuses to encode a code that is not an HTTP status', () => {
    expect(() => encodeErrorNotice({ code: 0, message: 'm', topic: 't', time: NOW })).toThrow(RangeError);
  });
});

describe('hostile input', () => {
  const parsers = {
    parseStatePayload: (raw: string | Uint8Array) => parseStatePayload(raw),
    parseCommand: (raw: string | Uint8Array) => parseCommand(raw, NOW),
    parseErrorNotice: (raw: string | Uint8Array) => parseErrorNotice(raw, NOW),
  };

  it.each(Object.entries(parsers))(
    '%s answers a result for any bytes, text or JSON, and only valid Dates',
    (_n, parse) => {
      const check = (raw: string | Uint8Array) => {
        const result = parse(raw);
        expect(typeof result.ok).toBe('boolean');
        if (!result.ok) expect(result.reason.length).toBeGreaterThan(0);
        else if ('time' in result.value) expect(Number.isNaN(result.value.time.getTime())).toBe(false);
      };
      fc.assert(
        fc.property(
          fc.oneof(
            fc.uint8Array(),
            fc.string(),
            fc.json(),
            fc
              .record({ name: fc.string(), payload: fc.jsonValue(), time: fc.jsonValue() })
              .map((v) => JSON.stringify(v)),
            fc
              .record({ code: fc.integer(), message: fc.string(), topic: fc.string(), time: fc.jsonValue() })
              .map((v) => JSON.stringify(v)),
          ),
          check,
        ),
      );
      for (const deep of [deepText(200_000), `{"data":{"a":${deepText(200_000)}}}`, `{"$date":${deepText(200_000)}}`]) {
        check(deep);
      }
    },
  );
});
