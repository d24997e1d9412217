/**
 * The PostgreSQL storage backend, for running several Gatehouse nodes on one database
 * (docs/scale-out.md). Same contract as the SQLite store (test/store/contract.ts); `applyBatch`
 * is the group commit: one transaction, one statement per table (batch.ts), durable when it
 * resolves (synchronous_commit as the server sets it: on by default).
 *
 * Everything a node needs is in the database, nothing is held in memory across calls, so any
 * node may read what another wrote the moment its commit returns.
 */
import pg from 'pg';
import type { Dashboard } from '../../dashboards/model.js';
import type { Membership, Session, StoredApiToken, StoredUser } from '../../domain/accounts.js';
import type {
  AccessKey,
  Application,
  CommandRecord,
  Device,
  DeviceLogEntry,
  DeviceStatus,
  StateRecord,
  StoredAccessKey,
} from '../../domain/model.js';
import type { Flow, FlowRun, FlowVersion, Webhook } from '../../workflows/definition.js';
import type { FlowStatsDelta } from '../../workflows/run-log.js';
import {
  type AccessKeyRow,
  type ApplicationRow,
  accessKeyFromRow,
  accessKeyToRow,
  applicationFromRow,
  applicationToRow,
  type CommandRow,
  commandFromRow,
  type DeviceLogRow,
  type DeviceRow,
  type DeviceStatusRow,
  deviceFromRow,
  deviceLogFromRow,
  deviceStatusFromRow,
  deviceToRow,
  storedAccessKeyFromRow,
  toJson,
} from '../rows.js';
import type {
  ApplicationLogEntry,
  ApplicationLogQuery,
  CompositeValue,
  DeviceQuery,
  GatewaySighting,
  SeriesPoint,
  SeriesQuery,
  Store,
  TimeRangeQuery,
  WriteBatch,
} from '../types.js';
import { PostgresAccounts } from './accounts.js';
import { PostgresApplicationLog } from './app-log.js';
import { lockDevices, needsTransaction, writeBatch } from './batch.js';
import { PostgresDashboards } from './dashboards.js';
import { PostgresFlows } from './flows.js';
import { MIGRATIONS, migrate } from './migrations.js';
import { escapeJson, fromJsonb, unescapeJson, unescapeText } from './nul.js';
import { DAY_MS, StatePartitions } from './partitions.js';
import { PostgresSeries } from './series.js';

export interface PostgresStoreOptions {
  /** A libpq connection string: postgres://user:password@host:port/database?options. */
  url: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** The clock that decides which partitions to create ahead (default `Date.now`). */
  now?: () => number;
  /**
   * The database must already be migrated (by a server); nothing is created or migrated
   * (`gatehouse token create` next to running servers).
   */
  shared?: boolean;
  /**
   * Called when something outside any call fails: `databaseConnectionLost` (a pooled connection the
   * server closed; the pool reconnects) or `partitionsFailed` (creating the coming days'
   * partitions; retried at the next batch that needs them). Default: console.error.
   */
  onError?: (event: 'databaseConnectionLost' | 'partitionsFailed', err: Error) => void;
}

const logToConsole = (event: string, err: Error) => console.error(`postgres store: ${event}:`, err.message);

const MIN_TIME = Number.MIN_SAFE_INTEGER;
const MAX_TIME = Number.MAX_SAFE_INTEGER;

/** Tables keyed by device that the store empties itself (they carry no foreign key). */
const PER_DEVICE_TABLES = ['device_states', 'composite_state', 'commands', 'device_logs', 'state_rollups'] as const;

const DEVICE_COLUMNS =
  'id, application_id, name, description, device_class, gateway_id, tags, attributes, creation_date, last_updated';

/** The settings row `checkWritable` writes and rolls back. */
const WRITABLE_CHECK_SETTING = 'writableCheck';

/** "no partition of relation found for row": a partition another node dropped, or not yet made. */
const NO_PARTITION = '23514';
// PostgreSQL ended the transaction to break a deadlock (with a writer other than a group commit:
// the group commits lock devices in key order). The batch wrote nothing, so it is written again.
const DEADLOCK = '40P01';
const BATCH_ATTEMPTS = 3;

// Epoch ms and counts are int8: as numbers (exact below 2^53). jsonb and json come as text, so
// the row mapping shared with SQLite (rows.ts) parses them.
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === pg.types.builtins.INT8) return Number;
    if (oid === pg.types.builtins.JSONB || oid === pg.types.builtins.JSON) return (text: string) => text;
    return pg.types.getTypeParser(oid, format);
  }) as typeof pg.types.getTypeParser,
};

// One static statement for every combination of filters: an absent filter binds NULL.
// $1 application, $2 lower-cased name filter, $3 classes, $4 scope device, $5 with peripherals,
// $6 wanted tags (jsonb array). ICU lower() folds every script, as JavaScript's toLowerCase does.
const DEVICE_MATCH = `
  application_id = $1
  AND ($2::text IS NULL OR strpos(lower(name COLLATE "und-x-icu"), $2::text) > 0)
  AND ($3::text[] IS NULL OR device_class = ANY($3::text[]))
  AND ($4::text IS NULL OR id = $4::text OR ($5::boolean AND (device_class = 'floating'
    OR (device_class = 'peripheral' AND (gateway_id IS NULL OR gateway_id = $4::text)))))
  AND NOT EXISTS (
    SELECT 1 FROM jsonb_array_elements($6::jsonb) AS wanted
    WHERE NOT EXISTS (
      SELECT 1 FROM jsonb_array_elements(devices.tags) AS tag
      WHERE tag ->> 'key' = wanted ->> 'key'
        AND (wanted ->> 'value' IS NULL OR tag ->> 'value' = wanted ->> 'value')))
  AND ($7::text IS NULL
    OR ($7::text = 'inactive' AND inactive_since IS NOT NULL)
    OR ($7::text IN ('connected', 'disconnected') AND ($7::text = 'connected') = coalesce(CASE
      WHEN device_class IN ('peripheral', 'floating') THEN
        last_reported_at IS NOT NULL
        AND last_reported_at >= $8::bigint - 1000 * (SELECT peripheral_timeout_seconds FROM applications AS a
          WHERE a.id = devices.application_id)
        AND EXISTS (SELECT 1 FROM devices AS g WHERE g.id = devices.last_reported_by AND g.connected = 1)
      ELSE connected = 1 END, false)))`;

type Executor = pg.Pool | pg.PoolClient;

export class PostgresStore implements Store {
  private readonly series: PostgresSeries;
  private readonly appLog: PostgresApplicationLog;
  private readonly accounts: PostgresAccounts;
  private readonly flows: PostgresFlows;
  private readonly dashboards: PostgresDashboards;
  private readonly now: () => number;
  private readonly onError: NonNullable<PostgresStoreOptions['onError']>;
  private partitionTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /**
   * Two group commits at once, on two pooled connections (two backends): the node builds and
   * sends one batch while PostgreSQL writes and syncs the other (docs/scale-out.md, "The group
   * commit"). The write queue never has two batches touching one device in here.
   */
  readonly maxCommitsInFlight = 2;

  /** Takes a pool on a migrated database; use `openPostgresStore`. */
  constructor(
    private readonly pool: pg.Pool,
    readonly partitions: StatePartitions,
    settings: Pick<PostgresStoreOptions, 'now' | 'onError'> = {},
  ) {
    this.now = settings.now ?? Date.now;
    this.onError = settings.onError ?? logToConsole;
    this.series = new PostgresSeries(pool);
    this.appLog = new PostgresApplicationLog(pool);
    this.accounts = new PostgresAccounts(pool);
    this.flows = new PostgresFlows(pool);
    this.dashboards = new PostgresDashboards(pool);
  }

  /** Creates the coming days' partitions now and every few hours (a node may run for weeks). */
  startPartitionUpkeep(): void {
    const every = DAY_MS / 6;
    this.partitionTimer = setInterval(() => {
      this.partitions.ensureAhead(this.now()).catch((err: Error) => this.onError('partitionsFailed', err));
    }, every);
    this.partitionTimer.unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.partitionTimer) clearInterval(this.partitionTimer);
    await this.pool.end();
  }

  /**
   * Takes a pooled connection as a group commit does, writes one settings row and rolls it
   * back: a closed store, an unreachable server, a read-only server (a standby, or
   * default_transaction_read_only) fail here. Nothing is committed, so it costs no WAL flush.
   */
  async checkWritable(): Promise<void> {
    if (this.closed) throw new Error('the database connection is not open: the store was closed');
    await this.transaction(async (client) => {
      await client.query(
        `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [WRITABLE_CHECK_SETTING, String(this.now())],
      );
      throw ROLLBACK;
    }).catch((err) => {
      if (err !== ROLLBACK) throw err;
    });
  }

  private async rows<R extends pg.QueryResultRow>(sql: string, params: unknown[] = [], on: Executor = this.pool) {
    return (await on.query<R>(sql, params)).rows;
  }

  /** Runs `fn` in a transaction on one pooled connection; rolls back when it throws. */
  /** A pooled connection outside any transaction: each statement commits by itself. */
  private async connection<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    try {
      return await fn(client);
    } finally {
      client.release();
    }
  }

  private async transaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    // A connection that cannot even roll back (the server went away) is discarded, not pooled.
    let broken = false;
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  async getSetting(key: string): Promise<string | undefined> {
    const [row] = await this.rows<{ value: string }>('SELECT value FROM settings WHERE key = $1', [key]);
    return row?.value;
  }

  async setSetting(key: string, value: string): Promise<void> {
    await this.pool.query(
      'INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      [key, value],
    );
  }

  // Accounts: src/store/postgres/accounts.ts.
  createUser = (user: StoredUser) => this.accounts.createUser(user);
  getUser = (id: string) => this.accounts.getUser(id);
  getUserByEmail = (email: string) => this.accounts.getUserByEmail(email);
  listUsers = () => this.accounts.listUsers();
  updateUser = (user: StoredUser) => this.accounts.updateUser(user);
  deleteUser = (id: string) => this.accounts.deleteUser(id);
  putMembership = (membership: Membership) => this.accounts.putMembership(membership);
  deleteMembership = (applicationId: string, userId: string) => this.accounts.deleteMembership(applicationId, userId);
  listMembers = (applicationId: string) => this.accounts.listMembers(applicationId);
  listMemberships = (userId: string) => this.accounts.listMemberships(userId);
  createApiToken = (token: StoredApiToken) => this.accounts.createApiToken(token);
  getApiToken = (id: string) => this.accounts.getApiToken(id);
  listApiTokens = (applicationId?: string | null) => this.accounts.listApiTokens(applicationId);
  deleteApiToken = (id: string) => this.accounts.deleteApiToken(id);
  createSession = (session: Session) => this.accounts.createSession(session);
  getSession = (id: string) => this.accounts.getSession(id);
  deleteSession = (id: string) => this.accounts.deleteSession(id);
  deleteSessionsOf = (userId: string) => this.accounts.deleteSessionsOf(userId);
  deleteExpiredSessions = (now: number) => this.accounts.deleteExpiredSessions(now);

  // Dashboards: src/store/postgres/dashboards.ts.
  createDashboard = (dashboard: Dashboard) => this.dashboards.createDashboard(dashboard);
  getDashboard = (id: string) => this.dashboards.getDashboard(id);
  listDashboards = (applicationId: string) => this.dashboards.listDashboards(applicationId);
  updateDashboard = (dashboard: Dashboard) => this.dashboards.updateDashboard(dashboard);
  deleteDashboard = (id: string) => this.dashboards.deleteDashboard(id);

  // Workflows: src/store/postgres/flows.ts.
  createFlow = (flow: Flow) => this.flows.createFlow(flow);
  getFlow = (id: string) => this.flows.getFlow(id);
  listFlows = (applicationId?: string) => this.flows.listFlows(applicationId);
  updateFlow = (flow: Flow) => this.flows.updateFlow(flow);
  deleteFlow = (id: string) => this.flows.deleteFlow(id);
  createFlowVersion = (version: FlowVersion) => this.flows.createFlowVersion(version);
  getFlowVersion = (id: string) => this.flows.getFlowVersion(id);
  listFlowVersions = (flowId: string) => this.flows.listFlowVersions(flowId);
  recordFlowRuns = (runs: FlowRun[], stats: FlowStatsDelta[], keepPerFlow: number) =>
    this.flows.recordFlowRuns(runs, stats, keepPerFlow);
  listFlowRuns = (flowId: string, query: { limit: number; start?: number; end?: number }) =>
    this.flows.listFlowRuns(flowId, query);
  getFlowValue = (flowId: string, key: string) => this.flows.getFlowValue(flowId, key);
  setFlowValue = (flowId: string, key: string, value: unknown) => this.flows.setFlowValue(flowId, key, value);
  createWebhook = (webhook: Webhook) => this.flows.createWebhook(webhook);
  getWebhook = (id: string) => this.flows.getWebhook(id);
  getWebhookByTokenHash = (tokenHash: string) => this.flows.getWebhookByTokenHash(tokenHash);
  listWebhooks = (applicationId: string) => this.flows.listWebhooks(applicationId);
  updateWebhook = (webhook: Webhook) => this.flows.updateWebhook(webhook);
  deleteWebhook = (id: string) => this.flows.deleteWebhook(id);

  async createApplication(app: Application): Promise<void> {
    const r = applicationToRow(app);
    await this.pool.query(
      `INSERT INTO applications (id, name, description, rate_limit_messages, rate_limit_window_seconds,
         peripheral_timeout_seconds, inactivity_timeout_seconds, state_retention_days, log_retention_days,
         creation_date, last_updated)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
      [
        r.id,
        r.name,
        r.description,
        r.rate_limit_messages,
        r.rate_limit_window_seconds,
        r.peripheral_timeout_seconds,
        r.inactivity_timeout_seconds,
        r.state_retention_days,
        r.log_retention_days,
        r.creation_date,
        r.last_updated,
      ],
    );
  }

  async getApplication(id: string): Promise<Application | undefined> {
    const [row] = await this.rows<ApplicationRow>('SELECT * FROM applications WHERE id = $1', [id]);
    return row && applicationFromRow(row);
  }

  async listApplications(): Promise<Application[]> {
    return (await this.rows<ApplicationRow>('SELECT * FROM applications ORDER BY creation_date, id')).map(
      applicationFromRow,
    );
  }

  async updateApplication(app: Application): Promise<void> {
    const r = applicationToRow(app);
    await this.pool.query(
      `UPDATE applications SET name = $2, description = $3, rate_limit_messages = $4,
         rate_limit_window_seconds = $5, peripheral_timeout_seconds = $6, inactivity_timeout_seconds = $7,
         state_retention_days = $8, log_retention_days = $9, last_updated = $10
       WHERE id = $1`,
      [
        r.id,
        r.name,
        r.description,
        r.rate_limit_messages,
        r.rate_limit_window_seconds,
        r.peripheral_timeout_seconds,
        r.inactivity_timeout_seconds,
        r.state_retention_days,
        r.log_retention_days,
        r.last_updated,
      ],
    );
  }

  async deleteApplication(id: string): Promise<void> {
    await this.transaction(async (client) => {
      // Locking the devices first waits for batches writing to them (they hold KEY SHARE), so
      // the deletes below see what those batches wrote.
      const ids = (
        await this.rows<{ id: string }>(
          'SELECT id FROM devices WHERE application_id = $1 ORDER BY id FOR UPDATE',
          [id],
          client,
        )
      ).map((r) => r.id);
      await this.deleteDeviceData(client, ids);
      await client.query('DELETE FROM applications WHERE id = $1', [id]);
    });
  }

  async createDevice(device: Device): Promise<void> {
    const r = deviceRow(device);
    await this.pool.query(`INSERT INTO devices (${DEVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, [
      r.id,
      r.application_id,
      r.name,
      r.description,
      r.device_class,
      r.gateway_id,
      r.tags,
      r.attributes,
      r.creation_date,
      r.last_updated,
    ]);
  }

  async getDevice(id: string): Promise<Device | undefined> {
    const [row] = await this.rows<DeviceRow>(`SELECT ${DEVICE_COLUMNS} FROM devices WHERE id = $1`, [id]);
    return row && deviceOfRow(row);
  }

  async listDevices(applicationId: string, query: DeviceQuery): Promise<{ items: Device[]; totalCount: number }> {
    // An empty class list is taken as "no class filter", as an absent query parameter would be.
    const params = [
      applicationId,
      query.filter ? query.filter.toLowerCase() : null,
      query.deviceClass?.length ? query.deviceClass : null,
      query.scope?.deviceId ?? null,
      query.scope?.withPeripherals ?? false,
      escapeJson(toJson(query.tags ?? [])),
      query.status?.is ?? null,
      query.status?.now ?? 0,
    ];
    const items = await this.rows<DeviceRow>(
      `SELECT ${DEVICE_COLUMNS} FROM devices WHERE ${DEVICE_MATCH}
       ORDER BY creation_date, id LIMIT $9 OFFSET $10`,
      [...params, query.perPage, query.page * query.perPage],
    );
    const [count] = await this.rows<{ count: number }>(
      `SELECT count(*) AS count FROM devices WHERE ${DEVICE_MATCH}`,
      params,
    );
    return { items: items.map(deviceOfRow), totalCount: count?.count ?? 0 };
  }

  async listBoundPeripherals(gatewayId: string): Promise<string[]> {
    const rows = await this.rows<{ id: string }>('SELECT id FROM devices WHERE gateway_id = $1 ORDER BY id', [
      gatewayId,
    ]);
    return rows.map((r) => r.id);
  }

  async updateDevice(device: Device): Promise<void> {
    // The application and creation date of a device never change.
    const r = deviceRow(device);
    await this.pool.query(
      `UPDATE devices SET name = $2, description = $3, device_class = $4, gateway_id = $5, tags = $6,
         attributes = $7, last_updated = $8 WHERE id = $1`,
      [r.id, r.name, r.description, r.device_class, r.gateway_id, r.tags, r.attributes, r.last_updated],
    );
  }

  async deleteDevice(id: string): Promise<void> {
    await this.transaction(async (client) => {
      // The device row first: this waits for batches writing to it (see deleteApplication).
      await client.query('DELETE FROM devices WHERE id = $1', [id]);
      await this.deleteDeviceData(client, [id]);
    });
  }

  private async deleteDeviceData(client: pg.PoolClient, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    for (const table of PER_DEVICE_TABLES) {
      await client.query(`DELETE FROM ${table} WHERE device_id = ANY($1::text[])`, [ids]);
    }
    await client.query(
      'DELETE FROM peripheral_gateways WHERE peripheral_id = ANY($1::text[]) OR gateway_id = ANY($1::text[])',
      [ids],
    );
  }

  async getDeviceStatuses(ids: string[]): Promise<Map<string, DeviceStatus>> {
    const statuses = new Map<string, DeviceStatus>();
    if (ids.length === 0) return statuses;
    const rows = await this.rows<DeviceStatusRow>(
      `SELECT id, connected, connection_time, last_reported_by, last_reported_at, inactive_since FROM devices
       WHERE id = ANY($1::text[])`,
      [ids],
    );
    for (const row of rows) statuses.set(row.id, deviceStatusFromRow(row));
    return statuses;
  }

  async resetConnections(time: number): Promise<void> {
    await this.pool.query('UPDATE devices SET connected = 0, connection_time = $1 WHERE connected = 1', [time]);
  }

  async createKey(key: StoredAccessKey): Promise<void> {
    const r = accessKeyToRow(key);
    await this.pool.query(
      `INSERT INTO access_keys (id, application_id, key, secret_hash, description, status, filter_type,
         device_ids, device_tags, pub_topics, sub_topics, creation_date, last_updated)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
      [
        r.id,
        r.application_id,
        r.key,
        key.secretHash,
        r.description,
        r.status,
        r.filter_type,
        r.device_ids,
        r.device_tags,
        r.pub_topics,
        r.sub_topics,
        r.creation_date,
        r.last_updated,
      ],
    );
  }

  async getKey(id: string): Promise<StoredAccessKey | undefined> {
    const [row] = await this.rows<AccessKeyRow>('SELECT * FROM access_keys WHERE id = $1', [id]);
    return row && storedAccessKeyFromRow(row);
  }

  async getKeyByKey(key: string): Promise<StoredAccessKey | undefined> {
    const [row] = await this.rows<AccessKeyRow>('SELECT * FROM access_keys WHERE key = $1', [key]);
    return row && storedAccessKeyFromRow(row);
  }

  async listKeys(applicationId: string): Promise<AccessKey[]> {
    const rows = await this.rows<AccessKeyRow>(
      'SELECT * FROM access_keys WHERE application_id = $1 ORDER BY creation_date, id',
      [applicationId],
    );
    return rows.map(accessKeyFromRow);
  }

  async updateKey(key: AccessKey): Promise<void> {
    // The key string, its secret and its application are fixed at creation.
    const r = accessKeyToRow(key);
    await this.pool.query(
      `UPDATE access_keys SET description = $2, status = $3, filter_type = $4, device_ids = $5, device_tags = $6,
         pub_topics = $7, sub_topics = $8, last_updated = $9 WHERE id = $1`,
      [
        r.id,
        r.description,
        r.status,
        r.filter_type,
        r.device_ids,
        r.device_tags,
        r.pub_topics,
        r.sub_topics,
        r.last_updated,
      ],
    );
  }

  async deleteKey(id: string): Promise<void> {
    await this.pool.query('DELETE FROM access_keys WHERE id = $1', [id]);
  }

  async applyBatch(batch: WriteBatch): Promise<void> {
    const times = batch.states.map((s) => s.time);
    await this.partitions.ensure(times);
    // A batch of states and reports only is one statement, a transaction by itself: one round trip.
    const write = () =>
      needsTransaction(batch)
        ? this.transaction((client) => writeBatch(client, batch))
        : this.connection((client) => writeBatch(client, batch));
    for (let attempt = 1; ; attempt++) {
      try {
        await write();
        return;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (attempt >= BATCH_ATTEMPTS || (code !== NO_PARTITION && code !== DEADLOCK)) throw err;
        // A partition this node thought existed was dropped by another (retention).
        if (code === NO_PARTITION) {
          await this.partitions.reload();
          await this.partitions.ensure(times);
        }
      }
    }
  }

  async queryStates(deviceId: string, query: TimeRangeQuery): Promise<StateRecord[]> {
    const rows = await this.rows<{ time: number; data: string; reported_by: string }>(
      `SELECT time, data, reported_by FROM device_states WHERE device_id = $1 AND time BETWEEN $2 AND $3
       ORDER BY time ${sqlDirection(query)} LIMIT $4`,
      rangeParams(deviceId, query),
    );
    return rows.map((row) => ({ deviceId, time: row.time, data: fromJsonb(row.data), reportedBy: row.reported_by }));
  }

  async getCompositeState(deviceId: string): Promise<Record<string, CompositeValue>> {
    // No prototype: an attribute named __proto__ is a key like any other.
    const composite: Record<string, CompositeValue> = Object.create(null);
    const rows = await this.rows<{ attribute: string; value: string; time: number }>(
      `SELECT e.key AS attribute, e.value -> 'v' AS value, (e.value ->> 't')::bigint AS time
       FROM composite_state, jsonb_each(state) AS e WHERE device_id = $1 ORDER BY e.key COLLATE "C"`,
      [deviceId],
    );
    for (const row of rows) composite[row.attribute] = { value: fromJsonb(row.value), time: row.time };
    return composite;
  }

  async queryCommands(deviceId: string, query: TimeRangeQuery): Promise<CommandRecord[]> {
    const dir = sqlDirection(query);
    const rows = await this.rows<CommandRow>(
      `SELECT id, application_id, device_id, name, payload, time, routed_to, sent_by FROM commands
       WHERE device_id = $1 AND time BETWEEN $2 AND $3 ORDER BY time ${dir}, seq ${dir} LIMIT $4`,
      rangeParams(deviceId, query),
    );
    return rows.map((row) => commandFromRow({ ...row, name: unescapeText(row.name) }));
  }

  async listLogs(deviceId: string, query: { limit: number; before?: number }): Promise<DeviceLogEntry[]> {
    const rows = await this.rows<DeviceLogRow>(
      'SELECT * FROM device_logs WHERE device_id = $1 AND time < $2 ORDER BY id DESC LIMIT $3',
      [deviceId, query.before ?? MAX_TIME, query.limit],
    );
    return rows.map(deviceLogFromRow);
  }

  querySeries(query: SeriesQuery): Promise<Map<string, SeriesPoint[]>> {
    return this.series.query(query);
  }

  lastValues(deviceIds: string[], attributes: string[] | null): Promise<Map<string, Record<string, CompositeValue>>> {
    return this.series.lastValues(deviceIds, attributes);
  }

  listApplicationLog(query: ApplicationLogQuery): Promise<ApplicationLogEntry[]> {
    return this.appLog.list(query);
  }

  async listGatewaySightings(peripheralId: string): Promise<GatewaySighting[]> {
    const rows = await this.rows<{ gateway_id: string; first_seen: number; last_seen: number; reports: number }>(
      `SELECT gateway_id, first_seen, last_seen, reports FROM peripheral_gateways
       WHERE peripheral_id = $1 ORDER BY last_seen DESC, gateway_id`,
      [peripheralId],
    );
    return rows.map((r) => ({
      gatewayId: r.gateway_id,
      firstSeen: r.first_seen,
      lastSeen: r.last_seen,
      reports: r.reports,
    }));
  }

  async listPeripheralsSeenBy(
    gatewayId: string,
    since: number,
  ): Promise<Array<{ peripheralId: string; lastSeen: number; reports: number }>> {
    const rows = await this.rows<{ peripheral_id: string; last_seen: number; reports: number }>(
      `SELECT peripheral_id, last_seen, reports FROM peripheral_gateways
       WHERE gateway_id = $1 AND last_seen >= $2 ORDER BY last_seen DESC, peripheral_id`,
      [gatewayId, since],
    );
    return rows.map((r) => ({ peripheralId: r.peripheral_id, lastSeen: r.last_seen, reports: r.reports }));
  }

  async listInactivityCandidates(applicationId: string, activeBefore: number): Promise<string[]> {
    // Activity is the latest of the last report and the last connection change; never-seen
    // devices count from their creation.
    const rows = await this.rows<{ id: string }>(
      `SELECT id FROM devices WHERE application_id = $1 AND inactive_since IS NULL
         AND greatest(coalesce(last_reported_at, 0), coalesce(connection_time, 0), creation_date) < $2
       ORDER BY id`,
      [applicationId, activeBefore],
    );
    return rows.map((r) => r.id);
  }

  async markInactive(deviceIds: string[], since: number): Promise<void> {
    if (deviceIds.length === 0) return;
    // Locked in key order first, as the group commits lock them (batch.ts).
    await this.pool.query(
      `WITH locked AS (${lockDevices('$1')})
       UPDATE devices AS d SET inactive_since = $2 FROM locked AS m WHERE d.id = m.id AND d.inactive_since IS NULL`,
      [deviceIds, since],
    );
  }

  /**
   * Drops whole day partitions that end before `before` and hold only states that retention
   * lets go: this application's, and those of applications whose own cut-off is past the
   * partition's end. "Now" is inferred from `before` and this application's retention days, as
   * the maintenance loop computes `before`; an application keeping states forever holds its
   * days. One catalog change however many rows; the count returned is every state dropped (of
   * any application), and may exceed `limit`. Then deletes up to `limit` more of this
   * application's states row by row, in the same transaction. Rollups of whole minutes before
   * `before` go too.
   */
  async pruneStates(applicationId: string, before: number, limit: number): Promise<number> {
    return this.transaction(async (client) => {
      let deleted = 0;
      const old = (await this.partitions.list(client)).filter((p) => p.to <= before);
      if (old.length > 0) {
        const apps = await this.rows<{ id: string; days: number | null }>(
          'SELECT id, state_retention_days AS days FROM applications',
          [],
          client,
        );
        const ownDays = apps.find((a) => a.id === applicationId)?.days;
        const now = ownDays === null || ownDays === undefined ? undefined : before + ownDays * DAY_MS;
        await this.partitions.lock(client);
        for (const partition of old) {
          const allowed = apps
            .filter(
              (a) =>
                a.id === applicationId ||
                (now !== undefined && a.days !== null && now - a.days * DAY_MS >= partition.to),
            )
            .map((a) => a.id);
          // Holds off writers into this partition until the decision is committed.
          await client.query(`LOCK TABLE ${partition.name} IN SHARE ROW EXCLUSIVE MODE`);
          const [kept] = await this.rows<{ found: boolean }>(
            `SELECT EXISTS (SELECT 1 FROM ${partition.name} AS s WHERE NOT EXISTS
               (SELECT 1 FROM devices AS d WHERE d.id = s.device_id AND d.application_id = ANY($1::text[]))) AS found`,
            [allowed],
            client,
          );
          if (kept?.found) continue;
          const [count] = await this.rows<{ n: number }>(`SELECT count(*) AS n FROM ${partition.name}`, [], client);
          deleted += count?.n ?? 0;
          await this.partitions.drop(client, partition);
        }
      }
      if (deleted < limit) {
        const result = await client.query(
          `DELETE FROM device_states WHERE (device_id, time) IN (
             SELECT s.device_id, s.time FROM device_states AS s JOIN devices AS d ON d.id = s.device_id
             WHERE d.application_id = $1 AND s.time < $2 ORDER BY s.time LIMIT $3)`,
          [applicationId, before, limit - deleted],
        );
        deleted += result.rowCount ?? 0;
      }
      await client.query(
        `DELETE FROM state_rollups WHERE device_id IN (SELECT id FROM devices WHERE application_id = $1)
           AND bucket + 60000 <= $2`,
        [applicationId, before],
      );
      return deleted;
    });
  }

  async pruneLogs(applicationId: string, before: number, limit: number): Promise<number> {
    const result = await this.pool.query(
      `DELETE FROM device_logs WHERE id IN
         (SELECT id FROM device_logs WHERE application_id = $1 AND time < $2 ORDER BY time LIMIT $3)`,
      [applicationId, before, limit],
    );
    return result.rowCount ?? 0;
  }
}

/** The shared device row, with the tags (jsonb) escaped (nul.ts). */
function deviceRow(device: Device): DeviceRow {
  const row = deviceToRow(device);
  return { ...row, tags: escapeJson(row.tags) };
}

function deviceOfRow(row: DeviceRow): Device {
  return deviceFromRow({ ...row, tags: unescapeJson(row.tags) });
}

/** Thrown inside `checkWritable`'s transaction to roll it back. */
const ROLLBACK = Symbol('rollback');

function sqlDirection(query: TimeRangeQuery): 'ASC' | 'DESC' {
  return query.sortDirection === 'desc' ? 'DESC' : 'ASC';
}

function rangeParams(deviceId: string, query: TimeRangeQuery): unknown[] {
  return [deviceId, query.start ?? MIN_TIME, query.end ?? MAX_TIME, query.limit];
}

/** A pool with this store's type parsers. */
export function createPool(
  url: string,
  max = 10,
  onError: NonNullable<PostgresStoreOptions['onError']> = logToConsole,
): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, types: TYPES });
  // A connection the server closed (a restart, a terminated backend) emits an error on its
  // client, also while checked out between two queries of a transaction: without a listener
  // that error would crash the process. The query in flight fails; the pool reconnects.
  const lost = (err: Error) => onError('databaseConnectionLost', err);
  pool.on('error', lost);
  pool.on('connect', (client) => client.on('error', lost));
  return pool;
}

/** Opens the store: connects, migrates (under the advisory lock) and creates the coming days' partitions. */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<PostgresStore> {
  const pool = createPool(options.url, options.poolSize, options.onError);
  try {
    if (options.shared) await requireMigrated(pool);
    else await migrate(pool);
    const partitions = new StatePartitions(pool);
    await partitions.reload();
    const store = new PostgresStore(pool, partitions, { now: options.now, onError: options.onError });
    if (!options.shared) {
      await partitions.ensureAhead((options.now ?? Date.now)());
      store.startPartitionUpkeep();
    }
    return store;
  } catch (err) {
    await pool.end().catch(() => {});
    throw err;
  }
}

/** Throws unless every migration this version knows has been applied (by a server). */
async function requireMigrated(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query<{ exists: boolean }>(
    "SELECT to_regclass('schema_migrations') IS NOT NULL AS exists",
  );
  const applied = new Set<number>();
  if (rows[0]?.exists) {
    for (const row of (await pool.query<{ version: number }>('SELECT version FROM schema_migrations')).rows) {
      applied.add(row.version);
    }
  }
  if (MIGRATIONS.some((m) => !applied.has(m.version))) {
    throw new Error('the database schema is older than this version: start `gatehouse serve` once to migrate it');
  }
}
