/**
 * The one storage interface, implemented by the embedded SQLite backend (the default) and the
 * PostgreSQL backend (docs/scale-out.md); both pass the same contract suite
 * (test/store/contract.ts). All methods are async so a networked backend fits; ids and
 * timestamps (epoch ms) are chosen by the caller.
 */
import type { Dashboard } from '../dashboards/model.js';
import type { Membership, Session, StoredApiToken, StoredUser } from '../domain/accounts.js';
import type {
  AccessKey,
  Application,
  CommandRecord,
  Device,
  DeviceClass,
  DeviceLogEntry,
  DeviceLogKind,
  DeviceStatus,
  StateRecord,
  StoredAccessKey,
  Tag,
} from '../domain/model.js';
import type { Flow, FlowRun, FlowVersion, Webhook } from '../workflows/definition.js';
import type { FlowStatsDelta } from '../workflows/run-log.js';

/**
 * Users, memberships, API tokens and sessions. Deleting an application removes its memberships
 * and tokens; deleting a user removes their memberships and sessions.
 */
export interface AccountStore {
  createUser(user: StoredUser): Promise<void>;
  getUser(id: string): Promise<StoredUser | undefined>;
  /** `email` as stored: normalized (domain/accounts.ts). */
  getUserByEmail(email: string): Promise<StoredUser | undefined>;
  /** Oldest first. */
  listUsers(): Promise<StoredUser[]>;
  updateUser(user: StoredUser): Promise<void>;
  deleteUser(id: string): Promise<void>;

  /** Adds the membership, or changes the role of an existing one (keeping its creation date). */
  putMembership(membership: Membership): Promise<void>;
  deleteMembership(applicationId: string, userId: string): Promise<void>;
  /** Oldest first. */
  listMembers(applicationId: string): Promise<Membership[]>;
  listMemberships(userId: string): Promise<Membership[]>;

  createApiToken(token: StoredApiToken): Promise<void>;
  getApiToken(id: string): Promise<StoredApiToken | undefined>;
  /** Oldest first; `applicationId` null: the operators' tokens; absent: every token. */
  listApiTokens(applicationId?: string | null): Promise<StoredApiToken[]>;
  deleteApiToken(id: string): Promise<void>;

  createSession(session: Session): Promise<void>;
  getSession(id: string): Promise<Session | undefined>;
  deleteSession(id: string): Promise<void>;
  deleteSessionsOf(userId: string): Promise<void>;
  /** Removes sessions that expired before `now`; returns how many. */
  deleteExpiredSessions(now: number): Promise<number>;
}

export const DEVICE_STATUS_FILTERS = ['connected', 'disconnected', 'inactive'] as const;
export type DeviceStatusFilter = (typeof DEVICE_STATUS_FILTERS)[number];

export interface DeviceQuery {
  deviceClass?: DeviceClass[];
  /** Case-insensitive substring of the name. */
  filter?: string;
  /** Devices having every one of these tags (a tag without value matches any value of the key). */
  tags?: Array<{ key: string; value?: string }>;
  /**
   * Only the device `deviceId` and, with `withPeripherals`, the peripherals it may act for: the
   * application's `floating` devices and its `peripheral` devices bound to `deviceId` or to no
   * gateway (the device-class rule, `actFor` in src/domain/authorization.ts). Absent: all.
   */
  scope?: { deviceId: string; withPeripherals: boolean };
  /**
   * Only devices in this state at `now` (epoch ms): `connected` as `connectionInfo.connected`
   * says (a peripheral: the gateway that last reported for it is connected, and its last report
   * is within the application's peripheral timeout), `disconnected` (everything else, never
   * connected included), `inactive` (marked inactive).
   */
  status?: { is: DeviceStatusFilter; now: number };
  page: number;
  perPage: number;
}

export interface TimeRangeQuery {
  /** Inclusive bounds in epoch ms. */
  start?: number;
  end?: number;
  limit: number;
  sortDirection: 'asc' | 'desc';
}

export interface CompositeValue {
  value: unknown;
  time: number;
}

/** A peripheral reported through a gateway (or a device reporting itself). */
export interface ReportMark {
  deviceId: string;
  reportedBy: string;
  time: number;
}

export interface ConnectionChange {
  deviceId: string;
  connected: boolean;
  time: number;
}

/**
 * Everything ingest and the broker write, applied in one transaction: the unit of a group
 * commit. When `applyBatch` resolves, all of it is durable, except that a store may hold the
 * `reports` (who reported a device last, gateway sightings) in memory and write them shortly
 * after, as long as its readers see them at once and it rebuilds them after a crash (the SQLite
 * store: docs/decisions.md, "Reports are written behind").
 */
export interface WriteBatch {
  /** In arrival order; two states of one device with the same time merge (later keys win). */
  states: StateRecord[];
  reports: ReportMark[];
  connections: ConnectionChange[];
  logs: DeviceLogEntry[];
  /** Commands, recorded before they are delivered; one of a device that no longer exists is left out. */
  commands: CommandRecord[];
}

/** A batch holding `parts` and nothing else. */
export function writeBatch(parts: Partial<WriteBatch> = {}): WriteBatch {
  return { states: [], reports: [], connections: [], logs: [], commands: [], ...parts };
}

/** A gateway a peripheral was heard through (a location trail for things that move). */
export interface GatewaySighting {
  gatewayId: string;
  firstSeen: number;
  lastSeen: number;
  reports: number;
}

export const AGGREGATIONS = ['FIRST', 'LAST', 'MIN', 'MAX', 'MEAN', 'SUM', 'COUNT', 'NONE'] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

export interface SeriesQuery {
  deviceIds: string[];
  /** null: every attribute. */
  attributes: string[] | null;
  /** Inclusive bounds, epoch ms. */
  start: number;
  end: number;
  /** Bucket width in ms; buckets start at `start` (ignored for NONE). */
  resolution: number;
  aggregation: Aggregation;
}

/** One bucket (or, for NONE, one state) of one device: attribute name to value. */
export interface SeriesPoint {
  time: number;
  data: Record<string, unknown>;
}

/** What the communication log lists: the device log kinds, plus commands sent and states accepted. */
export type ApplicationLogKind = DeviceLogKind | 'command' | 'state';

/**
 * A position in the communication log. The log merges three tables, so a position names the
 * table (`source`) and the entry's key in it (a log row id, a command's sequence number, or the
 * device id of a state, which is unique per device and millisecond). Entries are ordered newest
 * first by `time`, then `source` (log, command, state), then `key`, descending.
 */
export interface ApplicationLogCursor {
  time: number;
  source: 'log' | 'command' | 'state';
  key: number | string;
}

export interface ApplicationLogEntry {
  /** Device log entries only: their row id. */
  id?: number;
  kind: ApplicationLogKind;
  deviceId: string;
  applicationId: string;
  time: number;
  /** A log entry's details; `{commandId, name, payload, routedTo, sentBy}`; `{data, reportedBy}`. */
  details: Record<string, unknown>;
  /** This entry's position: pass it as `before` to continue after it. */
  cursor: ApplicationLogCursor;
}

export interface ApplicationLogQuery {
  applicationId: string;
  limit: number;
  /** Only entries after this position (exclusive) in newest-first order. */
  before?: ApplicationLogCursor;
  /** Only these devices (of the application). */
  deviceIds?: string[];
  /** Only these kinds; absent: all. */
  kinds?: ApplicationLogKind[];
  /** Inclusive bounds, epoch ms. */
  start?: number;
  end?: number;
}

/**
 * Workflows: flows with their versions, run logs and storage values, and webhooks. Deleting a
 * flow removes its versions, runs and values; deleting an application removes its flows and
 * webhooks.
 */
export interface FlowStore {
  createFlow(flow: Flow): Promise<void>;
  getFlow(id: string): Promise<Flow | undefined>;
  /** Oldest first; absent `applicationId`: every application's. */
  listFlows(applicationId?: string): Promise<Flow[]>;
  /** Writes the definition and settings; `stats` are left as stored (see recordFlowRuns). */
  updateFlow(flow: Flow): Promise<void>;
  deleteFlow(id: string): Promise<void>;
  createFlowVersion(version: FlowVersion): Promise<void>;
  getFlowVersion(id: string): Promise<FlowVersion | undefined>;
  /** Oldest first. */
  listFlowVersions(flowId: string): Promise<FlowVersion[]>;

  /**
   * In one transaction: appends runs to their flows' logs, keeping the newest `keepPerFlow` of
   * each (older ones go in batches: a few more may stay a while), and adds to the flows' run and
   * error counts. Runs and counts of a flow that no longer exists are ignored.
   */
  recordFlowRuns(runs: FlowRun[], stats: FlowStatsDelta[], keepPerFlow: number): Promise<void>;
  /** Newest first; bounds inclusive, epoch ms. */
  listFlowRuns(flowId: string, query: { limit: number; start?: number; end?: number }): Promise<FlowRun[]>;

  /** A workflow storage value (JSON), or undefined. */
  getFlowValue(flowId: string, key: string): Promise<unknown>;
  /** Sets a value; undefined removes it. */
  setFlowValue(flowId: string, key: string, value: unknown): Promise<void>;

  createWebhook(webhook: Webhook): Promise<void>;
  getWebhook(id: string): Promise<Webhook | undefined>;
  getWebhookByTokenHash(tokenHash: string): Promise<Webhook | undefined>;
  listWebhooks(applicationId: string): Promise<Webhook[]>;
  updateWebhook(webhook: Webhook): Promise<void>;
  deleteWebhook(id: string): Promise<void>;
}

/** Dashboards, each kept whole. Deleting an application removes its dashboards. */
export interface DashboardStore {
  createDashboard(dashboard: Dashboard): Promise<void>;
  getDashboard(id: string): Promise<Dashboard | undefined>;
  /** Oldest first. */
  listDashboards(applicationId: string): Promise<Dashboard[]>;
  /** Writes everything but the id, the application and the creation date. */
  updateDashboard(dashboard: Dashboard): Promise<void>;
  deleteDashboard(id: string): Promise<void>;
}

export interface Store extends AccountStore, FlowStore, DashboardStore {
  close(): Promise<void>;
  /**
   * Resolves when the store can take a write now, through the connection the group commit uses;
   * rejects with the cause otherwise (closed, read-only, locked). Leaves no data behind, and is
   * cheap enough for a readiness probe (docs/operations.md, "/ready").
   */
  checkWritable(): Promise<void>;

  getSetting(key: string): Promise<string | undefined>;
  setSetting(key: string, value: string): Promise<void>;

  createApplication(app: Application): Promise<void>;
  getApplication(id: string): Promise<Application | undefined>;
  listApplications(): Promise<Application[]>;
  updateApplication(app: Application): Promise<void>;
  /** Removes the application and everything in it, its members and API tokens included. */
  deleteApplication(id: string): Promise<void>;

  createDevice(device: Device): Promise<void>;
  getDevice(id: string): Promise<Device | undefined>;
  listDevices(applicationId: string, query: DeviceQuery): Promise<{ items: Device[]; totalCount: number }>;
  /** Ids of the peripherals bound to a gateway. */
  listBoundPeripherals(gatewayId: string): Promise<string[]>;
  updateDevice(device: Device): Promise<void>;
  /** Removes the device with its states, commands and logs. */
  deleteDevice(id: string): Promise<void>;
  getDeviceStatuses(ids: string[]): Promise<Map<string, DeviceStatus>>;
  /** Marks every device disconnected (start-up after a crash, or shutdown). */
  resetConnections(time: number): Promise<void>;

  createKey(key: StoredAccessKey): Promise<void>;
  getKey(id: string): Promise<StoredAccessKey | undefined>;
  getKeyByKey(key: string): Promise<StoredAccessKey | undefined>;
  listKeys(applicationId: string): Promise<AccessKey[]>;
  updateKey(key: AccessKey): Promise<void>;
  deleteKey(id: string): Promise<void>;

  /**
   * Writes a batch (the group commit); durable when it resolves. With `maxCommitsInFlight` above 1
   * the write queue calls it again before an earlier call resolved, never with two batches in the
   * store that touch the same device (src/core/write-queue.ts).
   */
  applyBatch(batch: WriteBatch): Promise<void>;
  /**
   * How many `applyBatch` calls the write queue may have in flight at once; 1 when absent.
   * SQLite writes in-process, one transaction at a time: 1. PostgreSQL: 2, so a node keeps a
   * second backend busy while one batch commits (docs/scale-out.md, "The group commit").
   */
  readonly maxCommitsInFlight?: number;
  queryStates(deviceId: string, query: TimeRangeQuery): Promise<StateRecord[]>;
  getCompositeState(deviceId: string): Promise<Record<string, CompositeValue>>;

  queryCommands(deviceId: string, query: TimeRangeQuery): Promise<CommandRecord[]>;

  /** Newest first. */
  listLogs(deviceId: string, query: { limit: number; before?: number }): Promise<DeviceLogEntry[]>;

  // Data and visibility

  /** Per device, buckets (or raw states for NONE) in time order; devices without data are absent. */
  querySeries(query: SeriesQuery): Promise<Map<string, SeriesPoint[]>>;
  /** Composite state of many devices at once; `attributes` null for all. */
  lastValues(deviceIds: string[], attributes: string[] | null): Promise<Map<string, Record<string, CompositeValue>>>;
  /**
   * The communication log of an application, newest first: device log entries, commands sent
   * (from the command history) and states accepted (from the state history), merged.
   */
  listApplicationLog(query: ApplicationLogQuery): Promise<ApplicationLogEntry[]>;

  /** Gateways a peripheral was reported through, most recently seen first. */
  listGatewaySightings(peripheralId: string): Promise<GatewaySighting[]>;
  /** Peripherals a gateway reported for since `since`, most recently seen first. */
  listPeripheralsSeenBy(
    gatewayId: string,
    since: number,
  ): Promise<Array<{ peripheralId: string; lastSeen: number; reports: number }>>;

  /** Devices of the application with no report and no connection change since `activeBefore`, not yet marked inactive. */
  listInactivityCandidates(applicationId: string, activeBefore: number): Promise<string[]>;
  /** Marks devices inactive from `since`; any later report or connection clears it. */
  markInactive(deviceIds: string[], since: number): Promise<void>;

  /**
   * Deletes up to `limit` states (and rollups) of the application older than `before`; returns
   * how many states. A backend that drops a whole partition of them at once may exceed `limit`.
   */
  pruneStates(applicationId: string, before: number, limit: number): Promise<number>;
  /** Deletes up to `limit` log entries of the application older than `before`; returns how many. */
  pruneLogs(applicationId: string, before: number, limit: number): Promise<number>;
}

export type { Tag };
