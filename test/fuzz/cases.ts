/**
 * What a fuzz case is, and how it becomes bytes on the wire. Cases name the fleet symbolically
 * (device roles like `G1`, `unknown`, `bad:...`), and times relative to the fleet's seeding time,
 * so a case prints readably and replays against any fresh fleet.
 */
import type { ClientRole, DeviceRole, Fleet, KeyRole, TokenRole } from './model.js';

/** Placeholders inside JSON values, replaced when rendered. */
export class Ref {
  constructor(
    readonly what: 'id' | 'app' | 'key' | 'secret' | 'keyId',
    readonly ref: string,
  ) {}
  toJSON() {
    return `<${this.what} ${this.ref}>`;
  }
}
/** `text` repeated `times` times: long strings without generating them character by character. */
export class Repeat {
  constructor(
    readonly text: string,
    readonly times: number,
  ) {}
  toJSON() {
    return `<${JSON.stringify(this.text)} x ${this.times}>`;
  }
}
/** `depth` nested arrays or objects around 1: rendered as text, so no recursion builds or writes it. */
export class Deep {
  constructor(
    readonly depth: number,
    readonly open: 'array' | 'object',
  ) {}
  text(): string {
    return this.open === 'array'
      ? `${'['.repeat(this.depth)}1${']'.repeat(this.depth)}`
      : `${'{"a":'.repeat(this.depth)}1${'}'.repeat(this.depth)}`;
  }
  toJSON() {
    return `<${this.depth} nested ${this.open}s>`;
  }
}
/** A TIME in one of its forms, rendered relative to the fleet's seeding time. */
export class Time {
  constructor(readonly spec: TimeSpec) {}
  toJSON() {
    return { time: this.spec };
  }
}

export type TimeSpec =
  /** Milliseconds since the epoch: the base time plus `offset` ms. */
  | { form: 'ms'; offset: number }
  /** Seconds since the epoch (with a fraction when `fraction`). */
  | { form: 's'; offset: number; fraction: boolean }
  /** A negative number: milliseconds before the receive time. */
  | { form: 'before'; ms: number }
  | { form: 'iso'; offset: number; style: IsoStyle }
  | { form: 'numericString'; offset: number; unit: 'ms' | 's' }
  /** `{"$date": inner}`, nested `depth` times. */
  | { form: 'date'; inner: TimeSpec; depth: number }
  /** Any JSON value: huge numbers, NaN-like strings, booleans, objects. */
  | { form: 'raw'; value: unknown };
export type IsoStyle = 'Z' | 'offset' | 'compactOffset' | 'local' | 'date' | 'lowerT' | 'space' | 'micros';

/** JSON with placeholders (Ref, Repeat, Time). */
export type Json = unknown;

export type Payload =
  /** Valid-ish state: one object or an array of them. */
  | { kind: 'states'; array: boolean; states: StateSpec[] }
  /** Any JSON value as the whole payload (wrong shapes). */
  | { kind: 'json'; value: Json }
  /** `depth` nested arrays or objects at `site`. */
  | { kind: 'deep'; depth: number; site: 'root' | 'data' | 'value' | 'time'; open: 'array' | 'object' }
  /** `width` keys (or array elements) at `site`. */
  | { kind: 'wide'; width: number; site: 'data' | 'root' | 'array' }
  /** A state padded to `bytes` bytes in all (the limit is 262,144). */
  | { kind: 'big'; bytes: number; attribute: string }
  | { kind: 'bytes'; bytes: number[] }
  | { kind: 'text'; text: string }
  /** A valid state with raw bytes spliced into a string value (invalid UTF-8). */
  | { kind: 'badUtf8'; bytes: number[]; attribute: string };

export interface StateSpec {
  /** The `data` member: attribute entries, or any other JSON value (wrong shape), or absent. */
  data: { entries: Array<[string, Json]> } | { other: Json } | null;
  time: Time | null;
  extra: Array<[string, Json]>;
}

export type TopicSpec =
  | { kind: 'state'; device: string }
  /** `losant/DEVICE/...rest` */
  | { kind: 'platform'; device: string; rest: string[] }
  | { kind: 'custom'; levels: string[] }
  | { kind: 'raw'; topic: string };

export interface PublishCase {
  kind: 'publish';
  client: ClientRole;
  topic: TopicSpec;
  payload: Payload;
  qos: 0 | 1;
  retain: boolean;
}

export type FilterSpec =
  | { kind: 'command' | 'error'; device: string }
  | { kind: 'custom'; levels: string[] }
  | { kind: 'raw'; filter: string };

export interface SubscribeCase {
  kind: 'subscribe';
  client: ClientRole;
  filters: FilterSpec[];
  qos: 0 | 1;
  /** Unsubscribe again once granted. */
  unsubscribe: boolean;
}

export const ROUTES = [
  'health',
  'apps',
  'app',
  'devices',
  'device',
  'state',
  'compositeState',
  'command',
  'deviceLogs',
  'stateStream',
  'commandStream',
  'commandMany',
  'keys',
  'key',
  'appLogs',
  'events',
  'timeSeries',
  'lastValue',
  'authDevice',
  'unknown',
] as const;
export type Route = (typeof ROUTES)[number];

export type Mangle =
  | 'none'
  | 'trailingSlash'
  | 'doubleSlash'
  | 'dotSegment'
  | 'dotDot'
  | 'encodeIds'
  | 'encodedSlash'
  | 'nul'
  | 'badPercent'
  | 'upperCase'
  | 'extraSegment'
  | 'matrix'
  | 'fragment';

export type Auth =
  | 'admin'
  | `token:${TokenRole}`
  | 'none'
  /** An unknown API token: the server checks it against the admin token's scrypt hash. */
  | 'garbage'
  | 'basic'
  | 'emptyBearer'
  /** Three base64url parts: read as a device token with a bad signature. */
  | 'forgedJwt'
  /** G1's device token with a changed payload. */
  | 'tamperedToken'
  | 'adminLowerCase'
  | 'adminPadded';

export interface RestCase {
  kind: 'rest';
  method: string;
  route: Route;
  app: string;
  device: string;
  key: string;
  /** Path levels of the `unknown` route. */
  levels: string[];
  mangle: Mangle;
  query: Array<[string, string]>;
  /** Query values written as they are, not percent-encoded (characters a URL may carry raw). */
  rawQuery: boolean;
  auth: Auth;
  contentType: string | null;
  body: Payload | null;
}

export type FuzzCase = PublishCase | SubscribeCase | RestCase;

export const UNKNOWN_ID = '0123456789abcdef01234567';

/** A device, application or key reference as the id it stands for. */
export function resolveId(fleet: Fleet, ref: string, what: 'id' | 'app' | 'keyId' = 'id'): string {
  if (ref.startsWith('bad:')) return ref.slice(4);
  if (ref === 'unknown') return UNKNOWN_ID;
  if (what === 'app') return fleet.apps[ref as 'A'] ?? UNKNOWN_ID;
  if (what === 'keyId') return fleet.keys[ref as KeyRole]?.id ?? UNKNOWN_ID;
  return fleet.devices[ref as DeviceRole]?.id ?? UNKNOWN_ID;
}

export function renderTime(spec: TimeSpec, base: number): unknown {
  switch (spec.form) {
    case 'ms':
      return base + spec.offset;
    case 's':
      return spec.fraction ? (base + spec.offset) / 1000 : Math.floor((base + spec.offset) / 1000);
    case 'before':
      return -spec.ms;
    case 'numericString':
      return spec.unit === 'ms' ? String(base + spec.offset) : String(Math.floor((base + spec.offset) / 1000));
    case 'iso':
      return isoString(base + spec.offset, spec.style);
    case 'date': {
      let value = renderTime(spec.inner, base);
      for (let i = 0; i < spec.depth; i++) value = { $date: value };
      return value;
    }
    case 'raw':
      return spec.value;
  }
}

function isoString(ms: number, style: IsoStyle): string {
  const d = new Date(ms);
  const z = d.toISOString();
  const pad = (n: number, w = 2) => String(Math.abs(n)).padStart(w, '0');
  const local = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  switch (style) {
    case 'Z':
      return z;
    case 'offset': {
      // The same instant written at +02:00.
      const shifted = new Date(ms + 2 * 3_600_000).toISOString().slice(0, 23);
      return `${shifted}+02:00`;
    }
    case 'compactOffset': {
      const shifted = new Date(ms - 5.5 * 3_600_000).toISOString().slice(0, 23);
      return `${shifted}-0530`;
    }
    case 'local':
      return local;
    case 'date':
      return z.slice(0, 10);
    case 'lowerT':
      return z.replace('T', 't').replace('Z', 'z');
    case 'space':
      return z.replace('T', ' ');
    case 'micros':
      return `${z.slice(0, 23)}456Z`;
  }
}

/** Replaces placeholders in a JSON value; nested structures (Deep) become markers put in by `json`. */
function resolveValue(value: Json, fleet: Fleet, base: number, deep: Deep[]): unknown {
  if (value instanceof Deep) {
    deep.push(value);
    return `\u0000deep${deep.length - 1}\u0000`;
  }
  if (value instanceof Ref) {
    switch (value.what) {
      case 'id':
        return resolveId(fleet, value.ref);
      case 'app':
        return resolveId(fleet, value.ref, 'app');
      case 'keyId':
        return resolveId(fleet, value.ref, 'keyId');
      case 'key':
        return fleet.keys[value.ref as KeyRole]?.key ?? value.ref;
      case 'secret':
        return fleet.keys[value.ref as KeyRole]?.secret ?? value.ref;
    }
  }
  if (value instanceof Repeat) return value.text.repeat(value.times);
  if (value instanceof Time) return renderTime(value.spec, base);
  if (Array.isArray(value)) return value.map((v) => resolveValue(v, fleet, base, deep));
  if (value !== null && typeof value === 'object') {
    // Keys like "__proto__" must stay own keys: build with defineProperty semantics.
    const out: Record<string, unknown> = Object.create(null);
    for (const [k, v] of Object.entries(value)) out[k] = resolveValue(v, fleet, base, deep);
    return out;
  }
  return value;
}

/** JSON text of a value; entry lists keep their order and may repeat keys. */
function stateText(state: StateSpec, fleet: Fleet, base: number): string {
  const members: string[] = [];
  if (state.data !== null) {
    if ('entries' in state.data) {
      const inner = state.data.entries.map(([k, v]) => `${JSON.stringify(k)}:${json(v, fleet, base)}`);
      members.push(`"data":{${inner.join(',')}}`);
    } else {
      members.push(`"data":${json(state.data.other, fleet, base)}`);
    }
  }
  if (state.time) members.push(`"time":${json(state.time, fleet, base)}`);
  for (const [k, v] of state.extra) members.push(`${JSON.stringify(k)}:${json(v, fleet, base)}`);
  return `{${members.join(',')}}`;
}

export function json(value: Json, fleet: Fleet, base: number): string {
  const deep: Deep[] = [];
  const text = JSON.stringify(resolveValue(value, fleet, base, deep)) ?? 'null';
  if (deep.length === 0) return text;
  return text.replace(/"\\u0000deep(\d+)\\u0000"/g, (_m, i: string) => deep[Number(i)]!.text());
}

export function renderPayload(payload: Payload, fleet: Fleet, base: number): Buffer {
  switch (payload.kind) {
    case 'states': {
      const parts = payload.states.map((s) => stateText(s, fleet, base));
      return Buffer.from(payload.array ? `[${parts.join(',')}]` : (parts[0] ?? '{}'));
    }
    case 'json':
      return Buffer.from(json(payload.value, fleet, base));
    case 'deep': {
      const open = payload.open === 'array' ? '['.repeat(payload.depth) : '{"a":'.repeat(payload.depth);
      const close = (payload.open === 'array' ? ']' : '}').repeat(payload.depth);
      const nest = `${open}1${close}`;
      const now = base;
      switch (payload.site) {
        case 'root':
          return Buffer.from(nest);
        case 'data':
          return Buffer.from(`{"data":${nest},"time":${now}}`);
        case 'value':
          return Buffer.from(`{"data":{"num":${nest},"str":${nest}},"time":${now}}`);
        case 'time':
          return Buffer.from(`{"data":{"num":1},"time":${nest}}`);
      }
      break;
    }
    case 'wide': {
      const n = payload.width;
      if (payload.site === 'array') {
        const one = `{"data":{"num":1},"time":${base}}`;
        return Buffer.from(`[${Array.from({ length: n }, () => one).join(',')}]`);
      }
      const members = Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',');
      return Buffer.from(payload.site === 'data' ? `{"data":{"num":2,${members}}}` : `{"data":{"num":3},${members}}`);
    }
    case 'big': {
      const head = `{"data":{${JSON.stringify(payload.attribute)}:"`;
      const tail = `"},"time":${base}}`;
      const fill = Math.max(0, payload.bytes - head.length - tail.length);
      // Base64 characters: valid for a blob, a string over 64 KiB for a string attribute.
      return Buffer.from(`${head}${'QUJD'.repeat(Math.ceil(fill / 4)).slice(0, fill - (fill % 4))}${tail}`);
    }
    case 'bytes':
      return Buffer.from(payload.bytes);
    case 'text':
      return Buffer.from(payload.text);
    case 'badUtf8':
      return Buffer.concat([
        Buffer.from(`{"data":{${JSON.stringify(payload.attribute)}:"`),
        Buffer.from(payload.bytes),
        Buffer.from(`"},"time":${base}}`),
      ]);
  }
}

export function renderTopic(topic: TopicSpec, fleet: Fleet): string {
  switch (topic.kind) {
    case 'state':
      return `losant/${resolveId(fleet, topic.device)}/state`;
    case 'platform':
      return ['losant', resolveId(fleet, topic.device), ...topic.rest].join('/');
    case 'custom':
      return topic.levels.join('/');
    case 'raw':
      return topic.topic;
  }
}

export function renderFilter(filter: FilterSpec, fleet: Fleet): string {
  switch (filter.kind) {
    case 'command':
    case 'error':
      return `losant/${resolveId(fleet, filter.device)}/${filter.kind}`;
    case 'custom':
      return filter.levels.join('/');
    case 'raw':
      return filter.filter;
  }
}

export interface HttpRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body: Buffer | null;
}

function routePath(c: RestCase, fleet: Fleet): string[] {
  const app = resolveId(fleet, c.app, 'app');
  const device = resolveId(fleet, c.device);
  const key = resolveId(fleet, c.key, 'keyId');
  const deviceRoute = (tail: string) => ['applications', app, 'devices', device, tail];
  switch (c.route) {
    case 'health':
      return ['health'];
    case 'apps':
      return ['applications'];
    case 'app':
      return ['applications', app];
    case 'devices':
      return ['applications', app, 'devices'];
    case 'device':
      return ['applications', app, 'devices', device];
    case 'state':
    case 'compositeState':
    case 'command':
    case 'stateStream':
    case 'commandStream':
      return deviceRoute(c.route);
    case 'deviceLogs':
      return deviceRoute('logs');
    case 'commandMany':
      return ['applications', app, 'devices', 'command'];
    case 'keys':
      return ['applications', app, 'keys'];
    case 'key':
      return ['applications', app, 'keys', key];
    case 'appLogs':
      return ['applications', app, 'logs'];
    case 'events':
      return ['applications', app, 'events'];
    case 'timeSeries':
      return ['applications', app, 'data', 'time-series-query'];
    case 'lastValue':
      return ['applications', app, 'data', 'last-value-query'];
    case 'authDevice':
      return ['auth', 'device'];
    case 'unknown':
      return c.levels.map((l) => encode(l));
  }
}

const isIdLevel = (level: string) => /^[0-9a-f]{24}$/.test(level);

function mangle(levels: string[], how: Mangle): string {
  const plain = `/${levels.join('/')}`;
  switch (how) {
    case 'none':
      return plain;
    case 'trailingSlash':
      return `${plain}/`;
    case 'doubleSlash':
      return `/${levels.join('//')}`;
    case 'dotSegment':
      return `/${levels.join('/./')}`;
    case 'dotDot':
      // Goes up from a level that is not there: a server that resolves dot segments lands on the same path.
      return `/${levels.slice(0, -1).join('/')}/x/../${levels.at(-1) ?? ''}`;
    case 'encodeIds':
      return `/${levels.map((l) => (isIdLevel(l) ? [...l].map((ch) => `%${ch.charCodeAt(0).toString(16)}`).join('') : l)).join('/')}`;
    case 'encodedSlash':
      return `/${levels.join('%2F')}`;
    case 'nul':
      return `/${levels.map((l) => (isIdLevel(l) ? `${l}%00` : l)).join('/')}`;
    case 'badPercent':
      return `${plain}%zz%`;
    case 'upperCase':
      return plain.toUpperCase();
    case 'extraSegment':
      return `${plain}/extra`;
    case 'matrix':
      return `${plain};jsessionid=1`;
    case 'fragment':
      return `${plain}#frag`;
  }
}

/** encodeURIComponent, with lone surrogates (which it refuses) written as U+FFFD. */
export function encode(s: string): string {
  return encodeURIComponent(s.replace(/[\uD800-\uDFFF]/gu, '\uFFFD'));
}

function queryString(c: RestCase): string {
  if (c.query.length === 0) return '';
  // Raw: only what a request line may carry (Node refuses the rest); '&', '=', '%' and '#' stay raw.
  const enc = (s: string) => (c.rawQuery ? s.replace(/[^\x21-\x7e]/gu, (ch) => encode(ch)) : encode(s));
  return `?${c.query.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&')}`;
}

function authHeader(auth: Auth, fleet: Fleet): string | string[] | undefined {
  switch (auth) {
    case 'admin':
      return `Bearer ${fleet.adminToken}`;
    case 'none':
      return undefined;
    case 'garbage':
      return 'Bearer not-a-token-0123456789';
    case 'basic':
      return `Basic ${Buffer.from(`x:${fleet.adminToken}`).toString('base64')}`;
    case 'emptyBearer':
      return 'Bearer ';
    case 'forgedJwt':
      return `Bearer ${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')}.${Buffer.from(
        `{"sub":"${fleet.devices.G1.id}","key":"${fleet.keys.KA.id}","exp":9999999999}`,
      ).toString('base64url')}.c2lnbmF0dXJl`;
    case 'tamperedToken': {
      const [h, , s] = fleet.tokens.G1.split('.');
      const claims = Buffer.from(
        `{"sub":"${fleet.devices.S3.id}","key":"${fleet.keys.KA.id}","exp":9999999999}`,
      ).toString('base64url');
      return `Bearer ${h}.${claims}.${s}`;
    }
    case 'adminLowerCase':
      return `bearer ${fleet.adminToken}`;
    case 'adminPadded':
      return `Bearer   ${fleet.adminToken}  `;
    default:
      return `Bearer ${fleet.tokens[auth.slice('token:'.length) as TokenRole]}`;
  }
}

export function renderRest(c: RestCase, fleet: Fleet, base: number): HttpRequest {
  const path = mangle(routePath(c, fleet), c.mangle) + queryString(c);
  const headers: Record<string, string | string[]> = {};
  const auth = authHeader(c.auth, fleet);
  if (auth !== undefined) headers.authorization = auth;
  if (c.contentType !== null) headers['content-type'] = c.contentType;
  const body = c.body ? renderPayload(c.body, fleet, base) : null;
  return { method: c.method, path, headers, body };
}

/** Management routes, where a mutation by an admin could change what the oracle protects. */
const MANAGEMENT: ReadonlySet<Route> = new Set(['app', 'devices', 'device', 'keys', 'key']);
const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const SCRATCH: DeviceRole[] = ['C1', 'C2', 'C3'];

/**
 * Keeps admin mutations away from the watched applications: a PATCH, POST or DELETE with the
 * admin token goes to the scratch application C (or an id that does not exist), so that every
 * change to A and B must come from an accepted state. Without a usable admin token, anything
 * goes: such requests must change nothing.
 */
export function confine(c: RestCase): RestCase {
  const admin = c.auth === 'admin' || c.auth === 'adminLowerCase' || c.auth === 'adminPadded';
  if (!admin || READ_METHODS.has(c.method) || !MANAGEMENT.has(c.route)) return c;
  const app = c.app === 'A' || c.app === 'B' ? 'C' : c.app;
  const device =
    /^[A-Z][A-Z0-9]$/.test(c.device) && !c.device.startsWith('C')
      ? (SCRATCH[c.device.charCodeAt(1) % SCRATCH.length] as string)
      : c.device;
  const key = /^K/.test(c.key) && c.key !== 'KC' ? 'KC' : c.key;
  // The scratch application itself stays: deleting it would leave nothing to mutate.
  const keepApp = c.route === 'app' && c.method === 'DELETE' ? 'unknown' : app;
  return { ...c, app: keepApp, device, key };
}

/** A short, readable form of a case for reports. */
export function describeCase(c: FuzzCase): string {
  const text = JSON.stringify(c, (_k, v: unknown) => {
    if (Array.isArray(v) && v.length > 40 && v.every((x) => typeof x === 'number')) {
      return `<${v.length} bytes: ${Buffer.from(v.slice(0, 32) as number[]).toString('hex')}…>`;
    }
    if (typeof v === 'string' && v.length > 200) return `${v.slice(0, 200)}…(${v.length} chars)`;
    return v;
  });
  return text.length > 4000 ? `${text.slice(0, 4000)}…` : text;
}
