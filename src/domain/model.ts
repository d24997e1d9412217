/**
 * The platform's entities as the domain sees them. Timestamps are epoch milliseconds
 * here; the REST layer turns them into ISO strings.
 */

export const DEVICE_CLASSES = [
  'standalone',
  'gateway',
  'edgeCompute',
  'peripheral',
  'floating',
  'system',
  'embedded',
] as const;
export type DeviceClass = (typeof DEVICE_CLASSES)[number];

export const DATA_TYPES = ['number', 'string', 'boolean', 'gps', 'blob'] as const;
export type DataType = (typeof DATA_TYPES)[number];

export interface Tag {
  key: string;
  value: string;
}

export interface AttributeDef {
  name: string;
  dataType: DataType;
  description?: string;
}

export interface RateLimit {
  /** Messages allowed per window; 0 disables the limit. */
  messages: number;
  windowSeconds: number;
}

export const DEFAULT_RATE_LIMIT: RateLimit = { messages: 30, windowSeconds: 15 };
/** How long a peripheral counts as connected after its last report (ours). */
export const DEFAULT_PERIPHERAL_TIMEOUT_SECONDS = 900;

export interface Application {
  id: string;
  name: string;
  description: string;
  rateLimit: RateLimit;
  peripheralTimeoutSeconds: number;
  /** A device that reported nothing for this long is marked inactive; null: never. */
  inactivityTimeoutSeconds: number | null;
  /** State history older than this is deleted in the background; null: kept forever. */
  stateRetentionDays: number | null;
  /** Communication log entries older than this are deleted in the background. */
  logRetentionDays: number;
  creationDate: number;
  lastUpdated: number;
}

export const DEFAULT_LOG_RETENTION_DAYS = 30;

export interface Device {
  id: string;
  applicationId: string;
  name: string;
  description: string;
  deviceClass: DeviceClass;
  /** Only for `peripheral`: the one gateway allowed to act for it. */
  gatewayId: string | null;
  tags: Tag[];
  attributes: AttributeDef[];
  creationDate: number;
  lastUpdated: number;
}

/** What the platform knows about a device's connection; kept apart from the device's definition. */
export interface DeviceStatus {
  deviceId: string;
  connected: boolean | null;
  connectionTime: number | null;
  lastReportedBy: string | null;
  lastReportedAt: number | null;
  /** Since when the device counts as inactive (application inactivity timeout); null: active. */
  inactiveSince: number | null;
}

export const KEY_FILTER_TYPES = ['all', 'whitelist', 'blacklist', 'none'] as const;
export type KeyFilterType = (typeof KEY_FILTER_TYPES)[number];

export interface AccessKey {
  id: string;
  applicationId: string;
  key: string;
  description: string;
  status: 'active' | 'inactive';
  /** Custom (non-`losant/`) MQTT topics this key may use. */
  filterType: KeyFilterType;
  /** When set, the key covers only these devices (or those with one of `deviceTags`). */
  deviceIds: string[] | null;
  deviceTags: Tag[] | null;
  pubTopics: string[];
  subTopics: string[];
  creationDate: number;
  lastUpdated: number;
}

/** A key with its stored secret hash: never leaves the server. */
export interface StoredAccessKey extends AccessKey {
  secretHash: string;
}

export interface StateRecord {
  deviceId: string;
  time: number;
  data: Record<string, unknown>;
  /** The device that reported it: the device itself or the gateway that acted for it. */
  reportedBy: string;
}

export interface CommandRecord {
  id: string;
  applicationId: string;
  deviceId: string;
  name: string;
  payload: unknown;
  time: number;
  /** Client ids the command was delivered to; empty when no route existed. */
  routedTo: string[];
  /** Who sent it: `api` or a device id. */
  sentBy: string;
}

export type DeviceLogKind =
  | 'connect'
  | 'disconnect'
  | 'authFailed'
  | 'rejected'
  | 'dropped'
  | 'inactive'
  /** Entries over the per-device log budget were left out; `count` says how many. */
  | 'suppressed';

export interface DeviceLogEntry {
  id?: number;
  deviceId: string;
  applicationId: string;
  time: number;
  kind: DeviceLogKind;
  /** Free-form details: reasons, counters, topics, ip address. */
  details: Record<string, unknown>;
}
