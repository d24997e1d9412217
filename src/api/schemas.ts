/** JSON schemas of the REST contract (spec: REST), declared once with TypeBox. */
import { type Static, type TObject, type TProperties, type TSchema, Type } from '@sinclair/typebox';
import { ERROR_TYPES, type ErrorStatus, typeForStatus } from '../core/errors.js';
import { STREAM_EVENT_TYPES } from '../core/event-history.js';
import { ID_PATTERN, NAME_PATTERN } from '../domain/ids.js';
import { DATA_TYPES, DEVICE_CLASSES, KEY_FILTER_TYPES } from '../domain/model.js';
import { MAX_PAYLOAD_BYTES } from '../domain/state.js';
import { AGGREGATIONS, type Aggregation, DEVICE_STATUS_FILTERS } from '../store/types.js';

export const Id = Type.String({ pattern: ID_PATTERN });
const Name = Type.String({ minLength: 1, maxLength: 255 });
const Description = Type.String({ maxLength: 32_767 });
const IsoTime = Type.String({ format: 'date-time' });
/** A string enum as `{type: string, enum}`: validation errors then list the allowed values. */
const StringEnum = <T extends readonly string[]>(values: T) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values] });
const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

/**
 * A query string's schema. Unknown keys are ignored, not refused: clients add their own, and
 * Losant's REST client sends `_actions`, `_links` and `_embedded` with every request. Bodies
 * stay strict (`additionalProperties: false`): an unknown field there is a mistake worth naming.
 */
export const Query = <T extends TProperties>(properties: T) => Type.Object(properties);

/** Offset paging of the lists the server defines (docs/decisions.md, Lists). */
export const MAX_PER_PAGE = 1000;
/** Far beyond any real list, and small enough that `page * perPage` stays an exact integer. */
const MAX_PAGE = 1_000_000_000;
export const PageQuery = {
  page: Type.Integer({ minimum: 0, maximum: MAX_PAGE, default: 0, description: 'The page, from 0.' }),
  perPage: Type.Integer({ minimum: 1, maximum: MAX_PER_PAGE, default: 100, description: 'Items per page.' }),
};
/** The envelope of an offset-paged list: the page's items and where it sits in the whole. */
export const Page = <T extends ReturnType<typeof Type.Object>>(item: T) =>
  Type.Object({
    items: Type.Array(item),
    count: Type.Integer(),
    totalCount: Type.Integer(),
    page: Type.Integer(),
    perPage: Type.Integer(),
  });

const ApplicationId = Type.String({ pattern: ID_PATTERN, description: 'The id of the application.' });
const DeviceId = Type.String({ pattern: ID_PATTERN, description: 'The id of a device of the application.' });
export const AppParams = Type.Object({ applicationId: ApplicationId });
export const DeviceParams = Type.Object({ applicationId: ApplicationId, deviceId: DeviceId });
export const KeyParams = Type.Object({
  applicationId: ApplicationId,
  keyId: Type.String({ pattern: ID_PATTERN, description: 'The id of an access key of the application.' }),
});

export const Success = Type.Object({ success: Type.Literal(true) });
export const ErrorBody = Type.Object({ type: Type.String(), message: Type.String() });

/** A schema with a description: in the API reference, the description of the answer it describes. */
export const described = <T extends TSchema>(schema: T, description: string): T => ({ ...schema, description });

const ERROR_WHEN: Record<ErrorStatus, string> = {
  400: 'the body, query or request cannot be accepted; the message names the value at fault by its path.',
  401: 'no credentials, or credentials that are unknown, invalid or expired.',
  403: 'the caller is known but may not do this.',
  404: 'what the path names does not exist, or is not visible to the caller.',
  409: 'the request contradicts what exists (a taken email, an existing member, the last owner).',
  413: `the body is over ${MAX_PAYLOAD_BYTES} bytes.`,
  415: 'the body is not `application/json`.',
  429: 'too many requests or failed checks: try again after `Retry-After` seconds.',
  500: 'a fault in the server; the details are in the server log, never in the answer.',
  503: 'the server is not ready for traffic (GET /ready); `reasons` says why.',
};

/** The error answer of one status: `{type, message}`, with the type the catalogue gives that status. */
function errorResponse(status: ErrorStatus): TObject {
  const type = typeForStatus(status);
  const body = Type.Object(
    { type: Type.Unsafe<string>({ type: 'string', enum: [type] }), message: Type.String() },
    { description: `${type}: ${ERROR_WHEN[status]}` },
  );
  if (status !== ERROR_TYPES.RateLimited) return body;
  // Documented for the reference only: Fastify does not check headers against it.
  return { ...body, headers: { 'retry-after': { type: 'integer', description: 'Whole seconds to wait.' } } };
}

/**
 * The error answers a route can give, as `response` entries (docs/errors.md). 500 is always
 * among them: any route can meet a fault in the server.
 */
export function errorResponses<S extends Exclude<ErrorStatus, 500>>(...statuses: S[]): Record<S | 500, TObject> {
  const out = {} as Record<S | 500, TObject>;
  for (const status of [...statuses, ERROR_TYPES.InternalError] as Array<S | 500>) out[status] = errorResponse(status);
  return out;
}

export const RateLimit = Type.Object(
  {
    messages: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    windowSeconds: Type.Integer({ minimum: 1, maximum: 86_400 }),
  },
  { additionalProperties: false },
);

export const ApplicationBody = Type.Object(
  {
    name: Name,
    description: Type.Optional(Description),
    rateLimit: Type.Optional(RateLimit),
    peripheralTimeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 30 * 86_400 })),
    inactivityTimeoutSeconds: Type.Optional(
      Type.Union([Type.Integer({ minimum: 60, maximum: 365 * 86_400 }), Type.Null()]),
    ),
    stateRetentionDays: Type.Optional(Type.Union([Type.Integer({ minimum: 1, maximum: 36_500 }), Type.Null()])),
    logRetentionDays: Type.Optional(Type.Integer({ minimum: 1, maximum: 3650 })),
  },
  { additionalProperties: false },
);
export const ApplicationPatch = Type.Partial(ApplicationBody, { additionalProperties: false });
export const Application = Type.Object({
  id: Id,
  name: Type.String(),
  description: Type.String(),
  rateLimit: RateLimit,
  peripheralTimeoutSeconds: Type.Integer(),
  inactivityTimeoutSeconds: Type.Union([Type.Integer(), Type.Null()]),
  stateRetentionDays: Type.Union([Type.Integer(), Type.Null()]),
  logRetentionDays: Type.Integer(),
  creationDate: IsoTime,
  lastUpdated: IsoTime,
});

export const Tag = Type.Object(
  { key: Type.String({ pattern: NAME_PATTERN }), value: Type.String({ minLength: 1, maxLength: 255 }) },
  { additionalProperties: false },
);
export const Attribute = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN }),
    dataType: StringEnum(DATA_TYPES),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);
const DeviceClass = StringEnum(DEVICE_CLASSES);

export const DeviceBody = Type.Object(
  {
    name: Name,
    description: Type.Optional(Description),
    deviceClass: Type.Optional(DeviceClass),
    gatewayId: Type.Optional(Nullable(Id)),
    tags: Type.Optional(Type.Array(Tag, { maxItems: 100 })),
    attributes: Type.Optional(Type.Array(Attribute, { maxItems: 256 })),
  },
  { additionalProperties: false },
);
export const DevicePatch = Type.Partial(DeviceBody, { additionalProperties: false });
export const ConnectionInfo = Type.Object({
  connected: Type.Union([Type.Literal(1), Type.Literal(0), Type.Null()]),
  time: Type.Union([IsoTime, Type.Null()]),
});
export const Device = Type.Object({
  id: Id,
  applicationId: Id,
  name: Type.String(),
  description: Type.String(),
  deviceClass: DeviceClass,
  gatewayId: Type.Union([Id, Type.Null()]),
  tags: Type.Array(Tag),
  attributes: Type.Array(Attribute),
  connectionInfo: ConnectionInfo,
  lastReportedBy: Type.Union([Type.Object({ deviceId: Type.String(), time: IsoTime }), Type.Null()]),
  /** Set while the device counts as inactive (application inactivity timeout). */
  inactiveSince: Type.Union([IsoTime, Type.Null()]),
  creationDate: IsoTime,
  lastUpdated: IsoTime,
});
/** One device, with its provenance: a gateway's peripherals, a peripheral's gateways. */
export const DeviceDetail = Type.Intersect([
  Device,
  Type.Object({
    peripherals: Type.Optional(
      Type.Object({
        bound: Type.Array(Id),
        recent: Type.Array(Type.Object({ deviceId: Id, lastSeen: IsoTime, reports: Type.Integer() })),
      }),
    ),
    gateways: Type.Optional(
      Type.Array(Type.Object({ gatewayId: Id, firstSeen: IsoTime, lastSeen: IsoTime, reports: Type.Integer() })),
    ),
  }),
]);
export const DeviceListQuery = Query({
  ...PageQuery,
  deviceClass: Type.Optional(
    Type.String({ maxLength: 200, description: 'Only devices of these classes (comma-separated).' }),
  ),
  filter: Type.Optional(Type.String({ maxLength: 255, description: 'Only devices whose name contains this.' })),
  tagFilter: Type.Optional(
    Type.Union([Type.String({ maxLength: 600 }), Type.Array(Type.String({ maxLength: 600 }), { maxItems: 100 })], {
      description: 'Only devices with this tag: `key` or `key:value`; repeat for several (all must match).',
    }),
  ),
  connectionStatus: Type.Optional(
    Type.Unsafe<(typeof DEVICE_STATUS_FILTERS)[number]>({
      type: 'string',
      enum: [...DEVICE_STATUS_FILTERS],
      description:
        "Only devices that are `connected` now (as `connectionInfo.connected` says, a peripheral's derived from its gateway), `disconnected` (never connected included), or `inactive`.",
    }),
  ),
});
export const ListQuery = Query(PageQuery);

export const KeyBody = Type.Object(
  {
    description: Type.Optional(Description),
    status: Type.Optional(StringEnum(['active', 'inactive'] as const)),
    filterType: Type.Optional(StringEnum(KEY_FILTER_TYPES)),
    deviceIds: Type.Optional(Type.Union([Type.Array(Id, { maxItems: 10_000 }), Type.Null()])),
    deviceTags: Type.Optional(Type.Union([Type.Array(Tag, { maxItems: 100 }), Type.Null()])),
    pubTopics: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { maxItems: 100 })),
    subTopics: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 255 }), { maxItems: 100 })),
  },
  { additionalProperties: false },
);
export const Key = Type.Object({
  id: Id,
  applicationId: Id,
  key: Type.String(),
  description: Type.String(),
  status: Type.String(),
  filterType: Type.String(),
  deviceIds: Type.Union([Type.Array(Id), Type.Null()]),
  deviceTags: Type.Union([Type.Array(Tag), Type.Null()]),
  pubTopics: Type.Array(Type.String()),
  subTopics: Type.Array(Type.String()),
  creationDate: IsoTime,
  lastUpdated: IsoTime,
});
export const KeyWithSecret = Type.Intersect([Key, Type.Object({ secret: Type.String() })]);

export const AuthDeviceBody = Type.Object(
  {
    deviceId: Id,
    key: Type.String({ minLength: 1, maxLength: 255 }),
    secret: Type.String({ minLength: 1, maxLength: 1024 }),
    tokenTTL: Type.Optional(Type.Integer({ minimum: 60, maximum: 365 * 86_400 })),
  },
  { additionalProperties: false },
);
export const AuthDeviceReply = Type.Object({
  applicationId: Id,
  deviceId: Id,
  deviceClass: DeviceClass,
  token: Type.String(),
});

export const TimeRangeQuery = Query({
  start: Type.Optional(Type.Integer({ description: 'From this time (epoch milliseconds).' })),
  end: Type.Optional(Type.Integer({ description: 'Up to this time (epoch milliseconds).' })),
  duration: Type.Optional(
    Type.Integer({ minimum: 0, description: 'Without `start`: this many milliseconds before `end` (or now).' }),
  ),
  limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1, description: 'At most this many entries.' }),
  sortDirection: Type.Unsafe<'asc' | 'desc'>({
    type: 'string',
    enum: ['asc', 'desc'],
    default: 'desc',
    description: 'Oldest (`asc`) or newest (`desc`) first.',
  }),
});
export const StateEntry = Type.Object({
  time: IsoTime,
  data: Type.Record(Type.String(), Type.Unknown()),
  reportedBy: Type.String(),
});
export const CompositeQuery = Query({
  attributes: Type.Optional(
    Type.String({ maxLength: 10_000, description: 'Only these attributes (comma-separated); all when absent.' }),
  ),
});
/**
 * The body of `POST .../state`, for the reference only: the route reads raw bytes and parses them
 * as an MQTT payload is parsed (docs/protocol.md, State), so no schema refuses it before that.
 */
const StatePayload = Type.Object({
  data: Type.Record(Type.String(), Type.Unknown(), { description: 'Attribute values by attribute name.' }),
  time: Type.Optional(
    Type.Unknown({
      description:
        'Epoch milliseconds or seconds, an ISO 8601 string, `{"$date": ...}`, or negative milliseconds before now.',
    }),
  ),
  meta: Type.Optional(Type.Unknown()),
});
export const StateBodyDoc = Type.Union([StatePayload, Type.Array(StatePayload)], {
  description: 'One state or an array of states, taken in order; any content type is read as JSON.',
});

export const StateReply = Type.Object({
  success: Type.Literal(true),
  stored: Type.Integer(),
  dropped: Type.Optional(
    Type.Array(Type.Object({ index: Type.Integer(), attribute: Type.Optional(Type.String()), reason: Type.String() })),
  ),
});

export const CommandBody = Type.Object(
  {
    name: Name,
    payload: Type.Optional(Type.Unknown()),
    time: Type.Optional(Type.Unknown()),
  },
  { additionalProperties: false },
);
export const ManyCommandBody = Type.Object(
  {
    name: Name,
    payload: Type.Optional(Type.Unknown()),
    time: Type.Optional(Type.Unknown()),
    deviceIds: Type.Optional(Type.Array(Id, { maxItems: 10_000 })),
    deviceTags: Type.Optional(Type.Array(Tag, { maxItems: 100 })),
  },
  { additionalProperties: false },
);
export const CommandEntry = Type.Object({
  id: Id,
  name: Type.String(),
  payload: Type.Unknown(),
  time: IsoTime,
  routedTo: Type.Array(Type.String()),
  sentBy: Type.String(),
});
export const LogsQuery = Query({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'At most this many entries.' }),
  before: Type.Optional(Type.Integer({ description: 'Only entries before this time (epoch milliseconds).' })),
});

/** The device log kinds: the stream event types that are not a state or a command. */
const DEVICE_LOG_KINDS = STREAM_EVENT_TYPES.filter((t) => t !== 'state' && t !== 'command');
/** A device log entry: its kind and time, then the details of that kind (docs/streams-and-logs.md). */
export const DeviceLogEntry = Type.Object(
  { kind: StringEnum(DEVICE_LOG_KINDS), time: IsoTime },
  { additionalProperties: true },
);
/** A page of the application communication log, newest first; `nextBefore` asks for the next page. */
export const AppLogPage = Type.Object({
  items: Type.Array(
    Type.Object(
      {
        id: Type.Optional(Type.Integer()),
        kind: StringEnum(STREAM_EVENT_TYPES),
        time: IsoTime,
        deviceId: Type.String(),
      },
      { additionalProperties: true },
    ),
  ),
  count: Type.Integer(),
  nextBefore: Type.Union([Type.String(), Type.Null()]),
});

/**
 * A live stream's answer (docs/streams-and-logs.md): Server-Sent Events until the client leaves,
 * the caller may no longer read, or the server shuts down. For the reference only: the stream is
 * written by the stream hub, not serialized.
 */
export const EventStreamResponse = {
  description:
    'Server-Sent Events (`text/event-stream`) until the client leaves: an event per state, command or log ' +
    'entry, each with an `id` to resume from (`Last-Event-ID`); `: heartbeat` comments while idle; `gap`, ' +
    '`closed` and `shutdown` events when events were lost, the caller may no longer read, or the server stops.',
  content: { 'text/event-stream': { schema: { type: 'string' } } },
};

export const Health = Type.Object({ status: Type.Literal('ok') });

export type ApplicationBodyT = Static<typeof ApplicationBody>;

// Data queries (docs/data-queries.md): devices by ids, tags and class, then attributes.
/** Epoch ms that a Date can hold (±8.64e15), so that every time can be answered as ISO 8601. */
const EpochMs = Type.Integer({ minimum: -8.64e15, maximum: 8.64e15 });
const TagSelector = Type.Object(
  { key: Type.String({ pattern: NAME_PATTERN }), value: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) },
  { additionalProperties: false },
);
const DataSelection = {
  deviceIds: Type.Optional(Type.Array(Id, { maxItems: 1_000 })),
  deviceTags: Type.Optional(Type.Array(TagSelector, { maxItems: 100 })),
  deviceClass: Type.Optional(
    Type.Union([DeviceClass, Type.Array(DeviceClass, { minItems: 1, maxItems: DEVICE_CLASSES.length })]),
  ),
  attributes: Type.Optional(Type.Array(Type.String({ pattern: NAME_PATTERN }), { minItems: 1, maxItems: 256 })),
};
export const LastValueQueryBody = Type.Object(DataSelection, { additionalProperties: false });
export const TimeSeriesQueryBody = Type.Object(
  {
    ...DataSelection,
    start: Type.Optional(EpochMs),
    end: Type.Optional(EpochMs),
    duration: Type.Optional(Type.Integer({ minimum: 0, maximum: 8.64e15 })),
    resolution: Type.Integer({ minimum: 1_000, maximum: 8.64e15, default: 3_600_000 }),
    aggregation: Type.Unsafe<Aggregation>({ type: 'string', enum: [...AGGREGATIONS], default: 'MEAN' }),
  },
  { additionalProperties: false },
);
export const TimeSeriesReply = Type.Object({
  start: IsoTime,
  end: IsoTime,
  resolution: Type.Integer(),
  aggregation: Type.String(),
  devices: Type.Record(
    Type.String(),
    Type.Object({
      name: Type.String(),
      points: Type.Array(Type.Object({ time: IsoTime, data: Type.Record(Type.String(), Type.Unknown()) })),
    }),
  ),
});
export const LastValueReply = Type.Record(
  Type.String(),
  Type.Record(Type.String(), Type.Object({ value: Type.Unknown(), time: IsoTime })),
);
