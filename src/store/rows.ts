/** Row shapes of the tables both backends share (same columns, JSON kept as text) and their mapping to and from the domain entities. */
import type {
  AccessKey,
  Application,
  AttributeDef,
  CommandRecord,
  Device,
  DeviceClass,
  DeviceLogEntry,
  DeviceLogKind,
  DeviceStatus,
  KeyFilterType,
  StoredAccessKey,
  Tag,
} from '../domain/model.js';

export interface ApplicationRow {
  id: string;
  name: string;
  description: string;
  rate_limit_messages: number;
  rate_limit_window_seconds: number;
  peripheral_timeout_seconds: number;
  inactivity_timeout_seconds: number | null;
  state_retention_days: number | null;
  log_retention_days: number;
  creation_date: number;
  last_updated: number;
}

export interface DeviceRow {
  id: string;
  application_id: string;
  name: string;
  description: string;
  device_class: string;
  gateway_id: string | null;
  tags: string;
  attributes: string;
  creation_date: number;
  last_updated: number;
}

export interface DeviceStatusRow {
  id: string;
  connected: number | null;
  connection_time: number | null;
  last_reported_by: string | null;
  last_reported_at: number | null;
  inactive_since: number | null;
}

export interface AccessKeyRow {
  id: string;
  application_id: string;
  key: string;
  secret_hash: string;
  description: string;
  status: string;
  filter_type: string;
  device_ids: string | null;
  device_tags: string | null;
  pub_topics: string;
  sub_topics: string;
  creation_date: number;
  last_updated: number;
}

export interface CommandRow {
  id: string;
  application_id: string;
  device_id: string;
  name: string;
  payload: string;
  time: number;
  routed_to: string;
  sent_by: string;
}

export interface DeviceLogRow {
  id: number;
  device_id: string;
  application_id: string;
  time: number;
  kind: string;
  details: string;
}

/** JSON text for a column; throws on what JSON cannot hold (a BigInt), which aborts a batch. */
export function toJson(value: unknown): string {
  const text = JSON.stringify(value ?? null);
  if (text === undefined) throw new TypeError(`cannot store ${typeof value} as JSON`);
  return text;
}

export function fromJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

function fromNullableJson<T>(text: string | null): T | null {
  return text === null ? null : fromJson<T>(text);
}

export function applicationToRow(app: Application): ApplicationRow {
  return {
    id: app.id,
    name: app.name,
    description: app.description,
    rate_limit_messages: app.rateLimit.messages,
    rate_limit_window_seconds: app.rateLimit.windowSeconds,
    peripheral_timeout_seconds: app.peripheralTimeoutSeconds,
    inactivity_timeout_seconds: app.inactivityTimeoutSeconds,
    state_retention_days: app.stateRetentionDays,
    log_retention_days: app.logRetentionDays,
    creation_date: app.creationDate,
    last_updated: app.lastUpdated,
  };
}

export function applicationFromRow(row: ApplicationRow): Application {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    rateLimit: { messages: row.rate_limit_messages, windowSeconds: row.rate_limit_window_seconds },
    peripheralTimeoutSeconds: row.peripheral_timeout_seconds,
    inactivityTimeoutSeconds: row.inactivity_timeout_seconds,
    stateRetentionDays: row.state_retention_days,
    logRetentionDays: row.log_retention_days,
    creationDate: row.creation_date,
    lastUpdated: row.last_updated,
  };
}

export function deviceToRow(device: Device): DeviceRow {
  return {
    id: device.id,
    application_id: device.applicationId,
    name: device.name,
    description: device.description,
    device_class: device.deviceClass,
    gateway_id: device.gatewayId,
    tags: toJson(device.tags),
    attributes: toJson(device.attributes),
    creation_date: device.creationDate,
    last_updated: device.lastUpdated,
  };
}

export function deviceFromRow(row: DeviceRow): Device {
  return {
    id: row.id,
    applicationId: row.application_id,
    name: row.name,
    description: row.description,
    deviceClass: row.device_class as DeviceClass,
    gatewayId: row.gateway_id,
    tags: fromJson<Tag[]>(row.tags),
    attributes: fromJson<AttributeDef[]>(row.attributes),
    creationDate: row.creation_date,
    lastUpdated: row.last_updated,
  };
}

export function deviceStatusFromRow(row: DeviceStatusRow): DeviceStatus {
  return {
    deviceId: row.id,
    connected: row.connected === null ? null : row.connected !== 0,
    connectionTime: row.connection_time,
    lastReportedBy: row.last_reported_by,
    lastReportedAt: row.last_reported_at,
    inactiveSince: row.inactive_since,
  };
}

/** Every column but the secret hash, which only `createKey` writes. */
export function accessKeyToRow(key: AccessKey): Omit<AccessKeyRow, 'secret_hash'> {
  return {
    id: key.id,
    application_id: key.applicationId,
    key: key.key,
    description: key.description,
    status: key.status,
    filter_type: key.filterType,
    device_ids: key.deviceIds === null ? null : toJson(key.deviceIds),
    device_tags: key.deviceTags === null ? null : toJson(key.deviceTags),
    pub_topics: toJson(key.pubTopics),
    sub_topics: toJson(key.subTopics),
    creation_date: key.creationDate,
    last_updated: key.lastUpdated,
  };
}

export function accessKeyFromRow(row: AccessKeyRow): AccessKey {
  return {
    id: row.id,
    applicationId: row.application_id,
    key: row.key,
    description: row.description,
    status: row.status as AccessKey['status'],
    filterType: row.filter_type as KeyFilterType,
    deviceIds: fromNullableJson<string[]>(row.device_ids),
    deviceTags: fromNullableJson<Tag[]>(row.device_tags),
    pubTopics: fromJson<string[]>(row.pub_topics),
    subTopics: fromJson<string[]>(row.sub_topics),
    creationDate: row.creation_date,
    lastUpdated: row.last_updated,
  };
}

export function storedAccessKeyFromRow(row: AccessKeyRow): StoredAccessKey {
  return { ...accessKeyFromRow(row), secretHash: row.secret_hash };
}

export function commandToRow(command: CommandRecord): CommandRow {
  return {
    id: command.id,
    application_id: command.applicationId,
    device_id: command.deviceId,
    name: command.name,
    payload: toJson(command.payload),
    time: command.time,
    routed_to: toJson(command.routedTo),
    sent_by: command.sentBy,
  };
}

export function commandFromRow(row: CommandRow): CommandRecord {
  return {
    id: row.id,
    applicationId: row.application_id,
    deviceId: row.device_id,
    name: row.name,
    payload: fromJson<unknown>(row.payload),
    time: row.time,
    routedTo: fromJson<string[]>(row.routed_to),
    sentBy: row.sent_by,
  };
}

export function deviceLogFromRow(row: DeviceLogRow): DeviceLogEntry {
  return {
    id: row.id,
    deviceId: row.device_id,
    applicationId: row.application_id,
    time: row.time,
    kind: row.kind as DeviceLogKind,
    details: fromJson<Record<string, unknown>>(row.details),
  };
}
