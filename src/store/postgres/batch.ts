/**
 * The group commit on PostgreSQL: the states of a write batch, their composite state, minute
 * rollups, reports and sightings go in one statement (`WRITE_STATES`, one sub-statement per
 * table, each taking its rows as arrays through `unnest`); connection changes, commands and log
 * entries follow in statements of their own, in one transaction with it. A batch of states and
 * reports only (the usual one) is therefore a single round trip that commits by itself. What
 * SQLite does row by row in arrival order is combined here first, because one INSERT ... ON
 * CONFLICT may not touch a row twice: states of one device and millisecond merge, the composite
 * state (one row per device) keeps the newest value per attribute, a device's reports and
 * connection changes reduce to the one that wins. Rows go in key order, so two nodes writing the
 * same rows lock them in the same order and cannot deadlock.
 *
 * Minute rollups are combined per batch (rollup-accumulator.ts) and upserted in the same
 * statement: durable with the states, nothing held in memory, so nothing to rebuild after a
 * crash and nothing one node holds that another would have to know about.
 */
import type pg from 'pg';
import type { CommandRecord, StateRecord } from '../../domain/model.js';
import { RollupAccumulator } from '../rollup-accumulator.js';
import { toJson } from '../rows.js';
import type { ConnectionChange, ReportMark, WriteBatch } from '../types.js';
import { escapeJson, escapeText } from './nul.js';

const byKey = <T>(map: Map<string, T>): T[] =>
  [...map.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, value]) => value);

// \u0000 cannot occur in a PostgreSQL text value, so it separates the parts of a key safely.
const key = (...parts: Array<string | number>): string => parts.join('\u0000');

// Locks, in key order, the devices a statement then updates (FOR NO KEY UPDATE: it conflicts with
// other updates and deletes, not with the foreign-key checks of inserts). An UPDATE ... FROM
// unnest(...) alone locks its rows in the order of the plan PostgreSQL picks, a sequential scan in
// heap order on a small table, and the heap order two nodes see differs while they move each
// other's rows: two nodes updating the same devices then deadlocked (docs/scale-out.md, "The
// group commit"). Each statement joins its update to these rows, so it updates only rows locked
// here, and so in this order. A statement given more ids than it updates (the connection changes
// of the same transaction) takes their locks too: one order for the whole transaction.
export const lockDevices = (ids: string) =>
  `SELECT id FROM devices WHERE id = ANY(${ids}::text[]) ORDER BY id FOR NO KEY UPDATE`;

// Marks the devices `locked` (lockDevices) reported, from the arrays of device ids, reporters and
// times given: both statements below that do it. A report processed late must not move "last
// reported" backwards, but any report is activity.
const markReported = (ids: string, reportedBy: string, times: string) => `UPDATE devices AS d SET
    last_reported_by = CASE WHEN d.last_reported_at IS NULL OR d.last_reported_at <= u.time
      THEN u.reported_by ELSE d.last_reported_by END,
    last_reported_at = CASE WHEN d.last_reported_at IS NULL OR d.last_reported_at <= u.time
      THEN u.time ELSE d.last_reported_at END,
    inactive_since = NULL
  FROM locked AS m, unnest(${ids}::text[], ${reportedBy}::text[], ${times}::bigint[]) AS u(device_id, reported_by, time)
  WHERE d.id = m.id AND u.device_id = m.id`;

// The states of a batch and everything that follows from them, in one statement (one round trip
// instead of one per table; with nothing else in the batch, no BEGIN and COMMIT either). `known`
// is the batch's devices that exist, each row locked until the commit: data of a device deleted
// while its messages waited is left out, and a delete arriving meanwhile waits for the commit
// (and then removes what was written). A device with a report (every device with a state, under
// load) is locked by `locked` in key order (lockDevices), then updated by `reported` (which
// returns it); the others are locked with FOR KEY SHARE. Every sub-statement
// writes only rows of `known` devices, in the order given (ORDER BY ord), which is key order: two
// nodes writing the same rows lock them in the same order. The devices found are returned, for the
// commands and log entries of the batch.
export const WRITE_STATES = `
WITH locked AS (
  ${lockDevices('$27')}
),
reported AS (
  ${markReported('$19', '$20', '$21')}
  RETURNING d.id
),
unreported AS (
  SELECT id FROM devices WHERE id = ANY($1::text[]) ORDER BY id FOR KEY SHARE
),
known AS (
  SELECT id FROM reported UNION ALL SELECT id FROM unreported
),
states AS (
  INSERT INTO device_states (device_id, time, data, reported_by)
  SELECT device_id, time, data, reported_by
  FROM unnest($2::text[], $3::bigint[], $4::text[]::jsonb[], $5::text[])
    WITH ORDINALITY AS u(device_id, time, data, reported_by, ord)
  WHERE device_id IN (SELECT id FROM known)
  ORDER BY ord
  ON CONFLICT (device_id, time) DO UPDATE
    SET data = device_states.data || excluded.data, reported_by = excluded.reported_by
),
-- One row per device; composite_merge (migrations.ts) keeps, per attribute, the newer of the
-- stored and the new value (the new one at equal times, as in the state merge). When no stored
-- value is newer than any new one (the usual case: states arrive in time order), that is the plain
-- merge old || new, which skips composite_merge's per-call query (about 9 µs per row). The
-- jsonpath comparison is true when some stored time exceeds some new time (a comparison of two
-- sequences is true if any pair is).
composite AS (
  INSERT INTO composite_state (device_id, state)
  SELECT device_id, state FROM unnest($6::text[], $7::text[]::jsonb[]) WITH ORDINALITY AS u(device_id, state, ord)
  WHERE device_id IN (SELECT id FROM known)
  ORDER BY ord
  ON CONFLICT (device_id) DO UPDATE SET state = CASE
    WHEN jsonb_path_exists(composite_state.state, '$.*.t ? (@ > $new.*.t)', jsonb_build_object('new', excluded.state))
    THEN composite_merge(composite_state.state, excluded.state)
    ELSE composite_state.state || excluded.state END
),
-- First keeps the earlier arrival on equal times (strict <), last takes the later one (>=).
rollups AS (
  INSERT INTO state_rollups (device_id, attribute, bucket, count, sum, min, max, first_time, first_value,
    last_time, last_value)
  SELECT device_id, attribute, bucket, count, sum, min, max, first_time, first_value, last_time, last_value
  FROM unnest($8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::float8[], $13::float8[],
    $14::float8[], $15::bigint[], $16::float8[], $17::bigint[], $18::float8[])
    WITH ORDINALITY AS u(device_id, attribute, bucket, count, sum, min, max, first_time, first_value,
      last_time, last_value, ord)
  WHERE device_id IN (SELECT id FROM known)
  ORDER BY ord
  ON CONFLICT (device_id, attribute, bucket) DO UPDATE SET
    count = state_rollups.count + excluded.count,
    sum = state_rollups.sum + excluded.sum,
    min = least(state_rollups.min, excluded.min),
    max = greatest(state_rollups.max, excluded.max),
    first_time = least(state_rollups.first_time, excluded.first_time),
    first_value = CASE WHEN excluded.first_time < state_rollups.first_time
      THEN excluded.first_value ELSE state_rollups.first_value END,
    last_time = greatest(state_rollups.last_time, excluded.last_time),
    last_value = CASE WHEN excluded.last_time >= state_rollups.last_time
      THEN excluded.last_value ELSE state_rollups.last_value END
),
sightings AS (
  INSERT INTO peripheral_gateways (peripheral_id, gateway_id, first_seen, last_seen, reports)
  SELECT peripheral_id, gateway_id, first_seen, last_seen, reports
  FROM unnest($22::text[], $23::text[], $24::bigint[], $25::bigint[], $26::bigint[])
    WITH ORDINALITY AS u(peripheral_id, gateway_id, first_seen, last_seen, reports, ord)
  WHERE peripheral_id IN (SELECT id FROM known)
  ORDER BY ord
  ON CONFLICT (peripheral_id, gateway_id) DO UPDATE SET
    reports = peripheral_gateways.reports + excluded.reports,
    first_seen = least(peripheral_gateways.first_seen, excluded.first_seen),
    last_seen = greatest(peripheral_gateways.last_seen, excluded.last_seen)
)
SELECT id FROM known`;

// Reports without states (devices reporting about themselves only): as in WRITE_STATES.
const MARK_REPORTED = `
WITH locked AS (
  ${lockDevices('$4')}
)
${markReported('$1', '$2', '$3')}`;

// Never older over newer: with several nodes, the disconnect of an old connection may commit
// after the connect of the device's new one on another node.
const SET_CONNECTIONS = `
WITH locked AS (
  ${lockDevices('$1')}
)
UPDATE devices AS d SET connected = u.connected, connection_time = u.time, inactive_since = NULL
FROM locked AS m, unnest($1::text[], $2::integer[], $3::bigint[]) AS u(device_id, connected, time)
WHERE d.id = m.id AND u.device_id = m.id AND (d.connection_time IS NULL OR d.connection_time <= u.time)`;

// WITH ORDINALITY and ORDER BY: the identity (seq, id) follows arrival order.
const INSERT_COMMANDS = `
INSERT INTO commands (id, application_id, device_id, name, payload, time, routed_to, sent_by)
SELECT id, application_id, device_id, name, payload, time, routed_to, sent_by
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::text[])
  WITH ORDINALITY AS u(id, application_id, device_id, name, payload, time, routed_to, sent_by, ord)
ORDER BY ord`;

const INSERT_LOGS = `
INSERT INTO device_logs (device_id, application_id, time, kind, details)
SELECT device_id, application_id, time, kind, details
FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[])
  WITH ORDINALITY AS u(device_id, application_id, time, kind, details, ord)
ORDER BY ord`;

/**
 * Writes the batch: the states and what follows from them in one statement, then connection
 * changes, commands and log entries. `run` gives the connection to write on: one in a
 * transaction when the batch holds more than states and reports (`needsTransaction`), else any
 * (the single statement commits by itself). JSON is serialized before the first statement, so a
 * value JSON cannot hold (a BigInt) throws before anything is sent.
 */
export async function writeBatch(client: pg.ClientBase, batch: WriteBatch): Promise<void> {
  const ids = new Set<string>();
  for (const s of batch.states) ids.add(s.deviceId);
  for (const r of batch.reports) if (r.reportedBy !== r.deviceId) ids.add(r.deviceId);
  for (const c of batch.commands) ids.add(c.deviceId);
  for (const l of batch.logs) ids.add(l.deviceId);

  const states = combineStates(batch.states);
  const commands = batch.commands.map((c) => ({ c, payload: toJson(c.payload), routedTo: toJson(c.routedTo) }));
  const logs = batch.logs.map((l) => ({ l, details: toJson(l.details) }));

  const known = new Set<string>();
  if (ids.size > 0) {
    const composite = combineComposite(batch.states);
    const rollups = combineRollups(batch.states);
    const { marks, seen } = combineReports(batch.reports);
    const marked = new Set(marks.map((r) => r.deviceId));
    const locked = lockedIds(marks, batch.connections);
    const { rows } = await client.query<{ id: string }>({
      ...writeStatesStatement(states.length),
      values: [
        [...ids].filter((id) => !marked.has(id)),
        states.map((s) => s.deviceId),
        states.map((s) => s.time),
        states.map((s) => s.json),
        states.map((s) => s.reportedBy),
        composite.map((c) => c.deviceId),
        composite.map((c) => c.json),
        rollups.map((r) => r.deviceId),
        rollups.map((r) => r.attribute),
        rollups.map((r) => r.bucket),
        rollups.map((r) => r.count),
        rollups.map((r) => r.sum),
        rollups.map((r) => r.min),
        rollups.map((r) => r.max),
        rollups.map((r) => r.firstTime),
        rollups.map((r) => r.firstValue),
        rollups.map((r) => r.lastTime),
        rollups.map((r) => r.lastValue),
        marks.map((r) => r.deviceId),
        marks.map((r) => r.reportedBy),
        marks.map((r) => r.time),
        seen.map((s) => s.peripheral),
        seen.map((s) => s.gateway),
        seen.map((s) => s.first),
        seen.map((s) => s.last),
        seen.map((s) => s.n),
        locked,
      ],
    });
    for (const row of rows) known.add(row.id);
  } else if (batch.reports.length > 0) {
    // Reports of devices about themselves only (no states): "last reported" moves all the same.
    const { marks } = combineReports(batch.reports);
    await client.query(MARK_REPORTED, [
      marks.map((r) => r.deviceId),
      marks.map((r) => r.reportedBy),
      marks.map((r) => r.time),
      lockedIds(marks, batch.connections),
    ]);
  }

  await writeConnections(client, batch.connections);

  const keptCommands = commands.filter(({ c }) => known.has(c.deviceId));
  if (keptCommands.length > 0) await insertCommands(client, keptCommands);

  const keptLogs = logs.filter(({ l }) => known.has(l.deviceId));
  if (keptLogs.length > 0) {
    await client.query(INSERT_LOGS, [
      keptLogs.map(({ l }) => l.deviceId),
      keptLogs.map(({ l }) => l.applicationId),
      keptLogs.map(({ l }) => l.time),
      keptLogs.map(({ l }) => l.kind),
      keptLogs.map(({ details }) => details),
    ]);
  }
}

/**
 * Below this many states a batch runs WRITE_STATES as a prepared statement (named, so each pooled
 * connection parses it once and PostgreSQL may reuse a generic plan); from it on, the statement is
 * planned for each batch. Parsing and planning the statement costs PostgreSQL about 0.9 ms,
 * over a third of what a batch of 20 states costs it, and under 2 µs per state in a batch of 500,
 * where a generic plan ran slower than one made for the batch's arrays (docs/scale-out.md,
 * "Capacity").
 */
export const PREPARED_BELOW_STATES = 100;

const WRITE_STATES_PREPARED = { name: 'gatehouse_write_states', text: WRITE_STATES };
const WRITE_STATES_PLANNED = { text: WRITE_STATES };

function writeStatesStatement(states: number): { name?: string; text: string } {
  return states < PREPARED_BELOW_STATES ? WRITE_STATES_PREPARED : WRITE_STATES_PLANNED;
}

/** Whether the batch takes more than one statement, so needs a transaction of its own. */
export function needsTransaction(batch: WriteBatch): boolean {
  if (batch.commands.length > 0 || batch.logs.length > 0) return true;
  return batch.connections.length > 0 && (batch.states.length > 0 || batch.reports.length > 0);
}

interface CombinedState {
  deviceId: string;
  time: number;
  data: Record<string, unknown>;
  json: string;
  reportedBy: string;
}

/** One row per device and millisecond: later keys win, the later arrival's reporter is kept. */
function combineStates(states: StateRecord[]): CombinedState[] {
  const merged = new Map<
    string,
    { deviceId: string; time: number; data: Record<string, unknown>; reportedBy: string }
  >();
  for (const s of states) {
    const k = key(s.deviceId, s.time);
    const prev = merged.get(k);
    // Spread defines own properties, so an attribute named __proto__ stays a key.
    if (prev) merged.set(k, { ...prev, data: { ...prev.data, ...s.data }, reportedBy: s.reportedBy });
    else merged.set(k, { deviceId: s.deviceId, time: s.time, data: s.data, reportedBy: s.reportedBy });
  }
  return byKey(merged).map((s) => ({ ...s, json: escapeJson(toJson(s.data)) }));
}

/** Per device, the newest value of each attribute in the batch (the later arrival on equal times). */
function combineComposite(states: StateRecord[]): Array<{ deviceId: string; json: string }> {
  // No prototype: an attribute named __proto__ is a key like any other.
  const devices = new Map<string, Record<string, { v: unknown; t: number }>>();
  for (const s of states) {
    let composite = devices.get(s.deviceId);
    if (composite === undefined) {
      composite = Object.create(null) as Record<string, { v: unknown; t: number }>;
      devices.set(s.deviceId, composite);
    }
    for (const [attribute, value] of Object.entries(s.data)) {
      if (value === undefined) continue;
      const prev = composite[attribute];
      if (!prev || s.time >= prev.t) composite[attribute] = { v: value, t: s.time };
    }
  }
  return [...devices.keys()].sort().map((deviceId) => ({ deviceId, json: escapeJson(toJson(devices.get(deviceId))) }));
}

/** The batch's partial minute aggregates, in key order (count and sum add up, first and last by time). */
function combineRollups(states: StateRecord[]) {
  const acc = new RollupAccumulator();
  for (const s of states) acc.addState(s.deviceId, s.time, s.data);
  return acc.sortedRows();
}

/** Per device the report that wins (the latest, the later arrival on equal times), and the sightings of peripherals. */
function combineReports(reports: ReportMark[]) {
  const last = new Map<string, ReportMark>();
  const sightings = new Map<string, { peripheral: string; gateway: string; first: number; last: number; n: number }>();
  for (const r of reports) {
    const prev = last.get(r.deviceId);
    if (!prev || r.time >= prev.time) last.set(r.deviceId, r);
    if (r.reportedBy === r.deviceId) continue;
    const k = key(r.deviceId, r.reportedBy);
    const s = sightings.get(k);
    if (s) {
      s.first = Math.min(s.first, r.time);
      s.last = Math.max(s.last, r.time);
      s.n++;
    } else {
      sightings.set(k, { peripheral: r.deviceId, gateway: r.reportedBy, first: r.time, last: r.time, n: 1 });
    }
  }
  return { marks: byKey(last), seen: byKey(sightings) };
}

/** The devices the batch's first statement locks: those it marks reported and those whose
 * connection changes follow in the same transaction. */
function lockedIds(marks: ReportMark[], connections: ConnectionChange[]): string[] {
  if (connections.length === 0) return marks.map((r) => r.deviceId);
  return [...new Set([...marks.map((r) => r.deviceId), ...connections.map((c) => c.deviceId)])];
}

async function writeConnections(client: pg.ClientBase, changes: ConnectionChange[]): Promise<void> {
  if (changes.length === 0) return;
  // Applied in order, so the last change of each device is what stays.
  const last = new Map<string, ConnectionChange>();
  for (const c of changes) last.set(c.deviceId, c);
  const rows = byKey(last);
  await client.query(SET_CONNECTIONS, [
    rows.map((c) => c.deviceId),
    rows.map((c) => (c.connected ? 1 : 0)),
    rows.map((c) => c.time),
  ]);
}

async function insertCommands(
  client: pg.ClientBase,
  rows: Array<{ c: CommandRecord; payload: string; routedTo: string }>,
): Promise<void> {
  await client.query(INSERT_COMMANDS, [
    rows.map(({ c }) => c.id),
    rows.map(({ c }) => c.applicationId),
    rows.map(({ c }) => c.deviceId),
    rows.map(({ c }) => escapeText(c.name)),
    rows.map(({ payload }) => payload),
    rows.map(({ c }) => c.time),
    rows.map(({ routedTo }) => routedTo),
    rows.map(({ c }) => c.sentBy),
  ]);
}
