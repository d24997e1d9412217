/**
 * fast-check generators of fuzz cases. Large inputs (deep, wide, long, near the size limit) are
 * described by their size and built when rendered, so they cost nothing to generate and shrink
 * by their size.
 */
import fc from 'fast-check';
import {
  type Auth,
  confine,
  Deep,
  type FilterSpec,
  type FuzzCase,
  type IsoStyle,
  type Json,
  type Mangle,
  type Payload,
  type PublishCase,
  Ref,
  Repeat,
  type RestCase,
  ROUTES,
  type Route,
  type StateSpec,
  type SubscribeCase,
  Time,
  type TimeSpec,
  type TopicSpec,
} from './cases.js';
import {
  ATTRIBUTE_NAMES,
  ATTRIBUTES_A,
  ATTRIBUTES_B,
  appOfRole,
  CLIENT_ROLES,
  type DataType,
  DEVICE_ROLES,
  KEY_ROLES,
  TOKEN_ROLES,
} from './model.js';

const DAY = 86_400_000;

/** Ids that are not ids: wrong case, length, characters, encodings, traversal. */
const badId = fc.constantFrom(
  'bad:0123456789ABCDEF01234567',
  'bad:0123456789abcdef0123456',
  'bad:0123456789abcdef012345678',
  'bad:zzzzzzzzzzzzzzzzzzzzzzzz',
  'bad:..',
  'bad:.',
  'bad:__proto__',
  'bad:constructor',
  'bad:%2e%2e',
  'bad:%00',
  'bad:%ff%fe',
  'bad:null',
  'bad:-1',
  'bad:1e400',
  `bad:${'a'.repeat(5000)}`,
  'bad:%E2%9C%93',
  'bad:+',
  'bad:#',
);

export const deviceRef = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom(...DEVICE_ROLES) },
  { weight: 2, arbitrary: fc.constant('unknown') },
  { weight: 2, arbitrary: badId },
);
const appRef = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom('A', 'B', 'C') },
  { weight: 1, arbitrary: fc.constant('unknown') },
  { weight: 1, arbitrary: badId },
);
const keyRef = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...KEY_ROLES) },
  { weight: 1, arbitrary: fc.constant('unknown') },
  { weight: 1, arbitrary: badId },
);
/** Application, device and key of one application mostly, so that requests find what they name. */
const COHERENT = DEVICE_ROLES.flatMap((device) =>
  KEY_ROLES.filter((key) => appOfRole(key) === appOfRole(device)).map((key) => ({
    app: appOfRole(device) as string,
    device,
    key,
  })),
);
const target = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...COHERENT) },
  { weight: 1, arbitrary: fc.record({ app: appRef, device: deviceRef, key: keyRef }) },
);

// Values

const numbers = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, 1, 1e308, -1e308, 5e-324, 2 ** 53 + 2, -(2 ** 63), 1.0000000000000002, 0.1 + 0.2),
);
const oddStrings = fc.constantFrom(
  '',
  ' ',
  '72',
  ' 72 ',
  '-1.5e3',
  '0x10',
  '0b1',
  '1e400',
  '-1e400',
  'NaN',
  'Infinity',
  '-Infinity',
  'true',
  'false',
  '1',
  '0',
  'null',
  '45.5,-93.25',
  '45.5, -93.25',
  '91,0',
  '0,181',
  'a,b',
  '1,2,3',
  'QUJD',
  'QUJ=',
  'QU=D',
  'not base64!',
  '\u0000',
  '\uD800',
  '\uFEFF',
  '💥',
  '__proto__',
  '{"$date":1}',
  '2024-01-01T00:00:00Z',
);
const strings = fc.oneof(
  { weight: 3, arbitrary: oddStrings },
  { weight: 3, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  {
    weight: 1,
    arbitrary: fc
      .record({
        text: fc.constantFrom('a', 'é', '💥', 'QUJD', '\\', '"'),
        // Mostly short; past 64 KiB (the string limit) now and then.
        times: fc.oneof(
          { weight: 20, arbitrary: fc.integer({ min: 1, max: 300 }) },
          { weight: 1, arbitrary: fc.integer({ min: 300, max: 70_000 }) },
        ),
      })
      .map(({ text, times }) => new Repeat(text, times)),
  },
);
const smallJson = fc.jsonValue({ maxDepth: 2, depthSize: 'small' });
const deepDepth = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 1, max: 200 }) },
  { weight: 1, arbitrary: fc.integer({ min: 200, max: 20_000 }) },
);
/** Nested arrays or objects, up to 20,000 levels. */
const deepValue = fc
  .record({ depth: deepDepth, open: fc.constantFrom('array' as const, 'object' as const) })
  .map(({ depth, open }) => new Deep(depth, open));

/** A value for an attribute: right types, wrong types, conversions, things that are no value. */
export const attributeValue: fc.Arbitrary<Json> = fc.oneof(
  { weight: 4, arbitrary: numbers },
  { weight: 4, arbitrary: strings },
  { weight: 2, arbitrary: fc.boolean() },
  {
    weight: 2,
    arbitrary: fc.tuple(
      fc.double({ min: -100, max: 100, noNaN: true }),
      fc.double({ min: -200, max: 200, noNaN: true }),
    ),
  },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: smallJson },
  { weight: 1, arbitrary: deepValue },
);

const attributeName = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...ATTRIBUTE_NAMES) },
  {
    weight: 1,
    arbitrary: fc.constantFrom('unknown', '', ' num', 'NUM', '__defineGetter__', 'isPrototypeOf', 'k'.repeat(300)),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 10 }) },
);

// Times

const offsets = fc.oneof(
  // Around the seeded states (base - 1 h, 2 h, 3 h): equal times merge.
  { weight: 2, arbitrary: fc.constantFrom(-3_600_000, -7_200_000, -10_800_000, 0, -1, 1) },
  { weight: 4, arbitrary: fc.integer({ min: -60_000, max: 60_000 }) },
  { weight: 2, arbitrary: fc.integer({ min: -31 * DAY, max: 2 * DAY }) },
  // The edges of the accepted window: 30 days back, 1 day ahead.
  { weight: 1, arbitrary: fc.integer({ min: -2000, max: 2000 }).map((d) => -30 * DAY + d) },
  { weight: 1, arbitrary: fc.integer({ min: -2000, max: 2000 }).map((d) => DAY + d) },
);
const isoStyle = fc.constantFrom<IsoStyle>(
  'Z',
  'offset',
  'compactOffset',
  'local',
  'date',
  'lowerT',
  'space',
  'micros',
);
const rawTimes = fc.constantFrom<unknown>(
  1e300,
  -1e300,
  8.64e15,
  8.64e15 + 1,
  -8.64e15,
  2 ** 53,
  2 ** 53 + 2,
  1e11 - 1,
  1e11,
  0,
  -0,
  'NaN',
  'Infinity',
  '-Infinity',
  '1e400',
  '1e309',
  'now',
  '',
  ' ',
  '2024-13-45T99:99:99Z',
  '+275760-09-13T00:00:00.001Z',
  '-271821-04-20T00:00:00.000Z',
  'sensor 7',
  true,
  false,
  [],
  [1, 2],
  {},
  { $date: null },
  { $date: {} },
  { $date: [] },
  { $date: true },
  { $date: '1e400' },
  { $date: 1e300 },
  { $date: 'NaN' },
  { $date: { $date: 1 } },
  { time: 1 },
);

export const timeSpec: fc.Arbitrary<TimeSpec> = fc.oneof(
  { weight: 4, arbitrary: offsets.map((offset) => ({ form: 'ms' as const, offset })) },
  { weight: 2, arbitrary: fc.record({ form: fc.constant('s' as const), offset: offsets, fraction: fc.boolean() }) },
  {
    weight: 2,
    arbitrary: fc
      .oneof(fc.integer({ min: 1, max: 120_000 }), fc.integer({ min: 1, max: 40 * DAY }))
      .map((ms) => ({ form: 'before' as const, ms })),
  },
  { weight: 3, arbitrary: fc.record({ form: fc.constant('iso' as const), offset: offsets, style: isoStyle }) },
  {
    weight: 1,
    arbitrary: fc.record({
      form: fc.constant('numericString' as const),
      offset: offsets,
      unit: fc.constantFrom('ms', 's'),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      form: fc.constant('date' as const),
      inner: fc.oneof(
        offsets.map((offset) => ({ form: 'ms' as const, offset })),
        fc.record({ form: fc.constant('iso' as const), offset: offsets, style: isoStyle }),
        rawTimes.map((value) => ({ form: 'raw' as const, value })),
      ),
      depth: fc.oneof(
        { weight: 5, arbitrary: fc.constant(1) },
        { weight: 1, arbitrary: fc.integer({ min: 2, max: 3000 }) },
      ),
    }),
  },
  { weight: 2, arbitrary: rawTimes.map((value) => ({ form: 'raw' as const, value })) },
  { weight: 1, arbitrary: fc.double().map((value) => ({ form: 'raw' as const, value })) },
);

// Payloads

/** A value its attribute accepts, in any accepted form. */
function validValue(dataType: DataType): fc.Arbitrary<Json> {
  switch (dataType) {
    case 'number':
      return fc.oneof(
        fc.integer({ min: -1_000_000, max: 1_000_000 }),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.integer().map((n) => ` ${n / 100} `),
      );
    case 'string':
      return fc.oneof(
        fc.string({ maxLength: 30 }),
        fc.string({ unit: 'grapheme', maxLength: 10 }),
        fc.integer(),
        fc.boolean(),
      );
    case 'boolean':
      return fc.oneof(fc.boolean(), fc.constantFrom(0, 1, 'true', 'false', '0', '1'));
    case 'gps': {
      const lat = fc.double({ min: -90, max: 90, noNaN: true });
      const lon = fc.double({ min: -180, max: 180, noNaN: true });
      return fc.oneof(
        fc.tuple(lat, lon),
        fc.tuple(lat, lon).map(([a, b]) => `${a}, ${b}`),
      );
    }
    case 'blob':
      return fc.uint8Array({ maxLength: 48 }).map((b) => Buffer.from(b).toString('base64'));
  }
}
const validEntry: fc.Arbitrary<[string, Json]> = fc.oneof(
  ...[...ATTRIBUTES_A, ...ATTRIBUTES_B].map((a) => fc.tuple(fc.constant(a.name), validValue(a.dataType))),
);

const stateSpec: fc.Arbitrary<StateSpec> = fc.record({
  data: fc.oneof(
    {
      weight: 12,
      arbitrary: fc
        .array(fc.oneof(validEntry, fc.tuple(attributeName, attributeValue)), { minLength: 0, maxLength: 6 })
        .map((entries) => ({ entries: entries as Array<[string, Json]> })),
    },
    { weight: 1, arbitrary: smallJson.map((other) => ({ other })) },
    { weight: 1, arbitrary: fc.constant(null) },
  ),
  time: fc.option(
    timeSpec.map((t) => new Time(t)),
    { freq: 4 },
  ),
  extra: fc.oneof(
    { weight: 8, arbitrary: fc.constant([] as Array<[string, Json]>) },
    {
      weight: 1,
      arbitrary: fc.array(fc.tuple(fc.constantFrom('__proto__', 'constructor', 'x', 'time'), smallJson), {
        maxLength: 2,
      }),
    },
  ),
});

const badUtf8 = fc.oneof(
  fc.constantFrom<number[]>(
    [0xff],
    [0xc3],
    [0xed, 0xa0, 0x80],
    [0xf4, 0x90, 0x80, 0x80],
    [0xc0, 0xaf],
    [0xe2, 0x82],
    [0x00],
  ),
  fc.array(fc.integer({ min: 0x80, max: 0xff }), { minLength: 1, maxLength: 8 }),
);
const invalidJson = fc.constantFrom(
  '',
  ' ',
  '{',
  '{"data":',
  '{"data":{"num":1}',
  '{"data":{"num":1}}x',
  '{"data":{"num":01}}',
  "{'data':{}}",
  '{"data":{"num":NaN}}',
  '{"data":{"num":Infinity}}',
  '{"data":{"num":1e400}}',
  '{"data":{"num":-1e400}}',
  '\uFEFF{"data":{"num":1}}',
  '{"data":{"num":1},"data":{"str":"x"}}',
  '{"__proto__":{"data":{"num":1}}}',
  '{"data":{"__proto__":{"num":1}}}',
  '{"constructor":{"prototype":{"x":1}}}',
  'null',
  'true',
  '1',
  '"data"',
  '[]',
  '[[]]',
  '[null]',
  '{"data":null}',
  '{"data":[]}',
  '{"data":"x"}',
  '{}',
);

export const payload: fc.Arbitrary<Payload> = fc.oneof(
  {
    weight: 60,
    arbitrary: fc.record({
      kind: fc.constant('states' as const),
      array: fc.constant(false),
      states: fc.tuple(stateSpec).map((s) => [...s]),
    }),
  },
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant('states' as const),
      array: fc.constant(true),
      states: fc.array(stateSpec, { minLength: 0, maxLength: 12 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('json' as const), value: smallJson }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('deep' as const),
      depth: deepDepth,
      site: fc.constantFrom('root', 'data', 'value', 'time'),
      open: fc.constantFrom('array', 'object'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('wide' as const),
      width: fc.oneof(
        { weight: 3, arbitrary: fc.integer({ min: 1, max: 300 }) },
        { weight: 1, arbitrary: fc.integer({ min: 300, max: 20_000 }) },
      ),
      site: fc.constantFrom('data', 'root', 'array'),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('big' as const),
      bytes: fc.oneof(
        fc.integer({ min: 262_144 - 64, max: 262_144 + 64 }),
        fc.integer({ min: 60_000, max: 70_000 }),
        fc.integer({ min: 262_144, max: 400_000 }),
      ),
      attribute: fc.constantFrom('bin', 'str', 'prototype', 'label'),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('bytes' as const),
      bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 64 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('text' as const), text: invalidJson }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('badUtf8' as const),
      bytes: badUtf8,
      attribute: fc.constantFrom('str', 'label', 'constructor', 'bin'),
    }),
  },
);

// MQTT

const topicLevel = fc.oneof(
  {
    weight: 24,
    arbitrary: fc.constantFrom('fuzz', 'shared', 'secret', 'x', 'a', 'state', 'command', 'losant', 'Losant'),
  },
  // Random text without wildcards: those get a weight of their own below.
  { weight: 8, arbitrary: fc.string({ maxLength: 8 }).map((l) => l.replace(/[+#]/g, '_')) },
  { weight: 4, arbitrary: fc.constantFrom('', ' ', '温度', 'ü', '💥', '\u0000', '$SYS', '$gatehouse') },
  // A wildcard in a topic name is a protocol violation: the server closes the connection.
  { weight: 1, arbitrary: fc.constantFrom('+', '#', 'a+b', 'x#') },
  {
    weight: 1,
    arbitrary: fc
      .oneof(
        { weight: 4, arbitrary: fc.integer({ min: 1, max: 300 }) },
        { weight: 1, arbitrary: fc.integer({ min: 300, max: 70_000 }) },
      )
      .map((n) => 'l'.repeat(n)),
  },
);

export const topicSpec: fc.Arbitrary<TopicSpec> = fc.oneof(
  { weight: 14, arbitrary: fc.record({ kind: fc.constant('state' as const), device: deviceRef }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('platform' as const),
      device: deviceRef,
      rest: fc.oneof(
        fc.constantFrom<string[]>(
          [],
          [''],
          ['command'],
          ['error'],
          ['state', 'x'],
          ['State'],
          ['state', ''],
          ['', 'state'],
        ),
        fc.array(topicLevel, { maxLength: 3 }),
      ),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('custom' as const),
      levels: fc.array(topicLevel, { minLength: 1, maxLength: 4 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('raw' as const),
      topic: fc.constantFrom(
        '',
        '/',
        'losant',
        'losant/',
        'losant//state',
        '/losant/x/state',
        'a//b',
        '$SYS/x',
        '$gatehouse/refused',
      ),
    }),
  },
);

export const publishCase: fc.Arbitrary<PublishCase> = fc.record({
  kind: fc.constant('publish' as const),
  client: fc.constantFrom(...CLIENT_ROLES),
  topic: topicSpec,
  payload,
  qos: fc.oneof({ weight: 6, arbitrary: fc.constant(0 as const) }, { weight: 1, arbitrary: fc.constant(1 as const) }),
  retain: fc.oneof({ weight: 30, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});

const filterLevel = fc.oneof({ weight: 5, arbitrary: topicLevel }, { weight: 3, arbitrary: fc.constantFrom('+', '#') });
const filterSpec: fc.Arbitrary<FilterSpec> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constantFrom('command' as const, 'error' as const), device: deviceRef }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('custom' as const),
      levels: fc.array(filterLevel, { minLength: 1, maxLength: 4 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('raw' as const),
      filter: fc.constantFrom(
        '#',
        '+',
        '+/+',
        '+/#',
        'losant/#',
        'losant/+/command',
        'losant/+/state',
        '$SYS/#',
        '$gatehouse/#',
        'fuzz/#',
        'shared/+/x',
        'secret/#',
        '/#',
        '+/+/+',
      ),
    }),
  },
);
export const subscribeCase: fc.Arbitrary<SubscribeCase> = fc.record({
  kind: fc.constant('subscribe' as const),
  client: fc.constantFrom(...CLIENT_ROLES),
  filters: fc.array(filterSpec, { minLength: 1, maxLength: 3 }),
  qos: fc.constantFrom(0 as const, 1 as const),
  unsubscribe: fc.boolean(),
});

// REST

const QUERY_KEYS = [
  'limit',
  'start',
  'end',
  'duration',
  'sortDirection',
  'page',
  'perPage',
  'deviceClass',
  'filter',
  'tagFilter',
  'attributes',
  'before',
  'lastEventId',
  'deviceId',
  'types',
  'resolution',
  'aggregation',
];
const queryValue = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      '1',
      '0',
      '-1',
      '10',
      '10000',
      '10001',
      '1e400',
      '-1e400',
      '1e21',
      '9007199254740993',
      '-9007199254740993',
      '8.64e15',
      '1.5',
      '-0',
      'NaN',
      'Infinity',
      '0x10',
      '',
      'asc',
      'desc',
      'ASC',
      'gateway',
      'gateway,peripheral',
      'nope',
      'site',
      'site:north',
      ':',
      'num,str,__proto__',
      '__proto__',
      'state,command',
      'true',
      '[]',
      '{}',
    ),
  },
  { weight: 2, arbitrary: fc.integer().map(String) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((n) => '9'.repeat(n)) },
);
const NUMERIC_KEYS = new Set(['limit', 'start', 'end', 'duration', 'page', 'perPage', 'before']);
/** Numbers a query string can carry that no integer type holds, or barely does. */
const numericEdge = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '1e400',
      '-1e400',
      '1e309',
      '1e308',
      '1e21',
      '-1e21',
      '9007199254740993',
      '-9007199254740993',
      '8.64e15',
      '8640000000000001',
      '1.5',
      '-0',
      '0',
      '-1',
      '10001',
      '1001',
      'NaN',
      'Infinity',
      '0x10',
      ' 1',
      '1 ',
      '',
    ),
  },
  { weight: 1, arbitrary: fc.integer().map(String) },
  { weight: 1, arbitrary: fc.double().map(String) },
);
const queryKey = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...QUERY_KEYS) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '__proto__',
      'constructor',
      'limit[]',
      'limit[0]',
      'a.b',
      '',
      'toString',
      'hasOwnProperty',
    ),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }) },
);

const mangle = fc.oneof(
  { weight: 20, arbitrary: fc.constant<Mangle>('none') },
  {
    weight: 4,
    arbitrary: fc.constantFrom<Mangle>(
      'trailingSlash',
      'doubleSlash',
      'dotSegment',
      'dotDot',
      'encodeIds',
      'encodedSlash',
      'nul',
      'badPercent',
      'upperCase',
      'extraSegment',
      'matrix',
      'fragment',
    ),
  },
);

const auth = fc.oneof(
  { weight: 60, arbitrary: fc.constant<Auth>('admin') },
  { weight: 30, arbitrary: fc.constantFrom(...TOKEN_ROLES.map((r) => `token:${r}` as Auth)) },
  { weight: 10, arbitrary: fc.constantFrom<Auth>('none', 'basic', 'emptyBearer', 'forgedJwt', 'tamperedToken') },
  { weight: 5, arbitrary: fc.constantFrom<Auth>('adminLowerCase', 'adminPadded') },
  // Each costs a scrypt check on the server: rare, or they would set the pace.
  { weight: 1, arbitrary: fc.constant<Auth>('garbage') },
);

const contentType = fc.oneof(
  { weight: 10, arbitrary: fc.constant<string | null>('application/json') },
  {
    weight: 2,
    arbitrary: fc.constantFrom<string | null>(
      null,
      '',
      'application/json; charset=utf-8',
      'application/json; charset=utf-16',
      'APPLICATION/JSON',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      'application/vnd.api+json',
      'application/json, text/plain',
    ),
  },
);

const tagBody = fc.oneof(
  fc.record({
    key: fc.constantFrom('site', 'kind', '__proto__', ''),
    value: fc.constantFrom('north', 'embedded', '', 'x'),
  }),
  smallJson,
);
const idList = fc.array(
  deviceRef.map((r) => new Ref('id', r)),
  { maxLength: 4 },
);

/** Mostly `valid`, now and then `odd`. */
const mostly = (valid: fc.Arbitrary<unknown>, odd: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: odd });

/** An object with some of `fields`, and now and then a field no schema knows. */
const body = (fields: Record<string, fc.Arbitrary<unknown>>, requiredKeys: string[] = []): fc.Arbitrary<Json> =>
  mostly(
    fc.record(fields, { requiredKeys: requiredKeys as never[] }),
    fc.record({ ...fields, unknownField: smallJson }, { requiredKeys: requiredKeys as never[] }),
  );

// Bodies close to what each route takes, so validation lets many through to the handlers.
const appBody = body({
  name: mostly(fc.constant('fuzz app'), fc.oneof(fc.constantFrom('', 'x'.repeat(256)), smallJson)),
  description: mostly(fc.string(), fc.constant(new Repeat('d', 40_000))),
  rateLimit: mostly(
    fc.record({ messages: fc.integer({ min: 0, max: 1_000_000 }), windowSeconds: fc.integer({ min: 1, max: 86_400 }) }),
    fc.oneof(
      fc.record({
        messages: fc.integer({ min: -1, max: 2_000_000 }),
        windowSeconds: fc.integer({ min: -1, max: 100_000 }),
      }),
      smallJson,
    ),
  ),
  peripheralTimeoutSeconds: mostly(fc.integer({ min: 1, max: 2_592_000 }), fc.oneof(fc.integer(), smallJson)),
  inactivityTimeoutSeconds: mostly(fc.oneof(fc.integer({ min: 60, max: 31_536_000 }), fc.constant(null)), fc.integer()),
  stateRetentionDays: mostly(fc.oneof(fc.integer({ min: 1, max: 36_500 }), fc.constant(null)), fc.integer()),
  logRetentionDays: mostly(fc.integer({ min: 1, max: 3650 }), fc.integer()),
});

const attributeDef = mostly(
  fc.record({ name: attributeName, dataType: fc.constantFrom('number', 'string', 'boolean', 'gps', 'blob') }),
  fc.oneof(fc.record({ name: fc.constantFrom('x y', ''), dataType: fc.constantFrom('json', '') }), smallJson),
);
const deviceBody = body({
  name: mostly(fc.constant('fuzz device'), fc.constantFrom('', '💥', 'x'.repeat(256))),
  deviceClass: mostly(
    fc.constantFrom('standalone', 'gateway', 'edgeCompute', 'peripheral', 'floating', 'system', 'embedded'),
    fc.constantFrom('nope', 'Gateway', ''),
  ),
  gatewayId: fc.oneof(
    deviceRef.map((r) => new Ref('id', r)),
    fc.constant(null),
  ),
  tags: fc.array(tagBody, { maxLength: 3 }),
  attributes: fc.array(attributeDef, { maxLength: 4 }),
});

const keyBody = body({
  description: fc.string(),
  status: mostly(fc.constantFrom('active', 'inactive'), fc.constant('deleted')),
  filterType: mostly(fc.constantFrom('all', 'none', 'whitelist', 'blacklist'), fc.constant('some')),
  deviceIds: fc.oneof(idList, fc.constant(null)),
  deviceTags: fc.oneof(fc.array(tagBody, { maxLength: 2 }), fc.constant(null)),
  pubTopics: fc.array(fc.constantFrom('#', 'losant/#', 'fuzz/#', '', '+/state', '$SYS/#', 'secret/+'), {
    maxLength: 3,
  }),
  subTopics: fc.array(fc.constantFrom('#', 'losant/#', 'fuzz/#', '', '+/command', 'a/#/b'), { maxLength: 3 }),
});

const commandFields = {
  name: mostly(fc.constant('reboot'), fc.constantFrom('', 'x'.repeat(256))),
  payload: fc.oneof(
    { weight: 12, arbitrary: smallJson },
    // Nested thousands of levels deep: the command is stored and sent as JSON.
    { weight: 4, arbitrary: deepValue },
    { weight: 1, arbitrary: fc.constant(new Repeat('p', 300_000)) },
  ),
  time: mostly(
    timeSpec.map((t) => new Time(t)),
    smallJson,
  ),
};
const commandBody = body(commandFields, ['name']);
const commandManyBody = body({ ...commandFields, deviceIds: idList, deviceTags: fc.array(tagBody, { maxLength: 2 }) }, [
  'name',
]);

const authBody = body({
  deviceId: deviceRef.map((r) => new Ref('id', r)),
  key: mostly(
    fc.constantFrom(...KEY_ROLES).map((r) => new Ref('key', r)),
    fc.constantFrom('', 'nope'),
  ),
  // Right secrets mostly: a wrong one for a real key costs a scrypt check.
  secret: fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom(...KEY_ROLES).map((r) => new Ref('secret', r)) },
    { weight: 1, arbitrary: fc.constantFrom('', 'wrong') },
  ),
  tokenTTL: mostly(fc.integer({ min: 60, max: 31_536_000 }), fc.oneof(fc.integer(), fc.constantFrom(1e308, 59))),
});

const queryBody = body({
  deviceIds: idList,
  deviceTags: fc.array(
    mostly(
      fc.record({ key: fc.constantFrom('site', '__proto__'), value: fc.constantFrom('north', 'south') }),
      smallJson,
    ),
    { maxLength: 2 },
  ),
  deviceClass: fc.oneof(
    fc.constantFrom('gateway', 'peripheral', 'nope'),
    fc.array(fc.constantFrom('gateway', 'standalone', 'x'), { maxLength: 8 }),
  ),
  attributes: fc.array(attributeName, { maxLength: 4 }),
  start: fc.oneof(fc.integer(), fc.constantFrom(-8.64e15, 8.64e15, 8.64e15 + 1, 1e300, 0)),
  end: fc.oneof(fc.integer(), fc.constantFrom(-8.64e15, 8.64e15, 8.64e15 + 1, 1e300)),
  duration: fc.oneof(fc.nat(), fc.constantFrom(8.64e15, 8.64e15 + 1, -1)),
  resolution: fc.oneof(fc.integer({ min: 1, max: 10_000_000 }), fc.constantFrom(999, 1000, 60_000, 8.64e15)),
  aggregation: mostly(
    fc.constantFrom('MEAN', 'SUM', 'COUNT', 'MIN', 'MAX', 'FIRST', 'LAST', 'NONE'),
    fc.constantFrom('MEDIAN', 'mean'),
  ),
});

const routeBody: fc.Arbitrary<Json> = fc.oneof(
  appBody,
  deviceBody,
  keyBody,
  commandBody,
  commandManyBody,
  authBody,
  queryBody,
);

const restBody: fc.Arbitrary<Payload | null> = fc.oneof(
  { weight: 6, arbitrary: fc.constant(null) },
  { weight: 8, arbitrary: routeBody.map((value) => ({ kind: 'json' as const, value })) },
  { weight: 6, arbitrary: payload },
);

const methodFor = fc.constantFrom('GET', 'GET', 'GET', 'POST', 'POST', 'PATCH', 'DELETE', 'PUT', 'HEAD', 'OPTIONS');

const restFields = {
  kind: fc.constant('rest' as const),
  method: methodFor,
  route: fc.constantFrom(...ROUTES),
  app: appRef,
  device: deviceRef,
  key: keyRef,
  target: fc.constant(null as null | { app: string; device: string; key: string }),
  levels: fc.array(
    fc.oneof(fc.constantFrom('applications', 'devices', 'state', '..', '.', '', 'admin'), fc.string({ maxLength: 6 })),
    {
      maxLength: 5,
    },
  ),
  mangle,
  query: fc.array(fc.tuple(queryKey, queryValue), { maxLength: 4 }),
  rawQuery: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  auth,
  contentType,
  body: restBody,
};

const RANGE_KEYS = ['start', 'end', 'duration', 'limit', 'sortDirection'];

/** A query parameter of a route: numeric ones mostly with numeric edge cases. */
function queryPair(keys: string[]): fc.Arbitrary<[string, string]> {
  const numeric = keys.filter((k) => NUMERIC_KEYS.has(k));
  const others = fc.tuple(
    fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...keys) }, { weight: 1, arbitrary: queryKey }),
    queryValue,
  );
  if (numeric.length === 0) return others;
  return fc.oneof(
    { weight: 3, arbitrary: fc.tuple(fc.constantFrom(...numeric), numericEdge) },
    { weight: 2, arbitrary: others },
  );
}
/** Each route with its own methods, query keys and body: requests that get past validation. */
const ROUTE_SHAPES: Array<{ route: Route; methods: string[]; keys?: string[]; body?: fc.Arbitrary<Json> }> = [
  { route: 'health', methods: ['GET'] },
  { route: 'apps', methods: ['GET', 'POST'], body: appBody },
  { route: 'app', methods: ['GET', 'PATCH', 'DELETE'], body: appBody },
  {
    route: 'devices',
    methods: ['GET', 'POST'],
    keys: ['page', 'perPage', 'deviceClass', 'filter', 'tagFilter'],
    body: deviceBody,
  },
  { route: 'device', methods: ['GET', 'PATCH', 'DELETE'], body: deviceBody },
  { route: 'state', methods: ['GET'], keys: RANGE_KEYS },
  { route: 'compositeState', methods: ['GET'], keys: ['attributes'] },
  { route: 'command', methods: ['GET', 'POST', 'POST'], keys: RANGE_KEYS, body: commandBody },
  { route: 'deviceLogs', methods: ['GET'], keys: ['limit', 'before'] },
  { route: 'stateStream', methods: ['GET'], keys: ['lastEventId'] },
  { route: 'commandStream', methods: ['GET'], keys: ['lastEventId'] },
  { route: 'commandMany', methods: ['POST'], body: commandManyBody },
  { route: 'keys', methods: ['GET', 'POST'], body: keyBody },
  { route: 'key', methods: ['GET', 'PATCH', 'DELETE'], body: keyBody },
  { route: 'appLogs', methods: ['GET'], keys: ['limit', 'before', 'deviceId', 'kinds', 'start', 'end'] },
  { route: 'events', methods: ['GET'], keys: ['deviceId', 'deviceClass', 'tagFilter', 'types', 'lastEventId'] },
  { route: 'timeSeries', methods: ['POST'], body: queryBody },
  { route: 'lastValue', methods: ['POST'], body: queryBody },
  { route: 'authDevice', methods: ['POST'], body: authBody },
];

const shaped = fc.oneof(
  ...ROUTE_SHAPES.map((shape) =>
    fc.record({
      ...restFields,
      target,
      method: fc.constantFrom(...shape.methods),
      route: fc.constant(shape.route),
      mangle: fc.oneof({ weight: 10, arbitrary: fc.constant<Mangle>('none') }, { weight: 1, arbitrary: mangle }),
      query: shape.keys
        ? fc.array(queryPair(shape.keys), { maxLength: 3 })
        : fc.constant([] as Array<[string, string]>),
      contentType: fc.oneof(
        { weight: 10, arbitrary: fc.constant<string | null>('application/json') },
        { weight: 1, arbitrary: contentType },
      ),
      body: shape.body
        ? fc.oneof(
            { weight: 8, arbitrary: shape.body.map((value) => ({ kind: 'json' as const, value })) },
            { weight: 1, arbitrary: restBody },
          )
        : fc.constant(null),
    }),
  ),
);

export const restCase: fc.Arbitrary<RestCase> = fc
  .oneof(
    // Anything: any method, route, query and body.
    { weight: 10, arbitrary: fc.record(restFields) },
    // What each route takes, with odd values.
    { weight: 10, arbitrary: shaped },
    // State posts, the REST write path, with state payloads.
    {
      weight: 8,
      arbitrary: fc.record({
        ...restFields,
        target,
        method: fc.oneof({ weight: 12, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: methodFor }),
        route: fc.constant('state' as const),
        mangle: fc.oneof({ weight: 8, arbitrary: fc.constant<Mangle>('none') }, { weight: 1, arbitrary: mangle }),
        query: fc.oneof(
          { weight: 8, arbitrary: fc.constant([] as Array<[string, string]>) },
          { weight: 1, arbitrary: restFields.query },
        ),
        body: fc.oneof({ weight: 12, arbitrary: payload }, { weight: 1, arbitrary: restBody }),
      }),
    },
  )
  // A coherent target replaces the independent application, device and key.
  .map(({ target: t, ...c }) => confine(t ? { ...c, ...t } : c));

export const fuzzCase: fc.Arbitrary<FuzzCase> = fc.oneof(
  { weight: 55, arbitrary: publishCase },
  { weight: 4, arbitrary: subscribeCase },
  { weight: 41, arbitrary: restCase },
);
