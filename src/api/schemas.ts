/** JSON schemas of the REST contract (spec: REST), declared once with TypeBox. */
import { type Static, type TProperties, Type } from '@sinclair/typebox';
import { ID_PATTERN, NAME_PATTERN } from '../domain/ids.js';
import { DATA_TYPES, DEVICE_CLASSES, KEY_FILTER_TYPES } from '../domain/model.js';
import { AGGREGATIONS, type Aggregation } from '../store/types.js';

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
  page: Type.Integer({ minimum: 0, maximum: MAX_PAGE, default: 0 }),
  perPage: Type.Integer({ minimum: 1, maximum: MAX_PER_PAGE, default: 100 }),
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

export const AppParams = Type.Object({ applicationId: Id });
export const DeviceParams = Type.Object({ applicationId: Id, deviceId: Id });
export const KeyParams = Type.Object({ applicationId: Id, keyId: Id });

export const Success = Type.Object({ success: Type.Literal(true) });
export const ErrorBody = Type.Object({ type: Type.String(), message: Type.String() });

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
  deviceClass: Type.Optional(Type.String({ maxLength: 200 })),
  filter: Type.Optional(Type.String({ maxLength: 255 })),
  tagFilter: Type.Optional(
    Type.Union([Type.String({ maxLength: 600 }), Type.Array(Type.String({ maxLength: 600 }), { maxItems: 100 })]),
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
  start: Type.Optional(Type.Integer()),
  end: Type.Optional(Type.Integer()),
  duration: Type.Optional(Type.Integer({ minimum: 0 })),
  limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1 }),
  sortDirection: Type.Unsafe<'asc' | 'desc'>({ type: 'string', enum: ['asc', 'desc'], default: 'desc' }),
});
export const StateEntry = Type.Object({
  time: IsoTime,
  data: Type.Record(Type.String(), Type.Unknown()),
  reportedBy: Type.String(),
});
export const CompositeQuery = Query({ attributes: Type.Optional(Type.String({ maxLength: 10_000 })) });
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
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  before: Type.Optional(Type.Integer()),
});

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
