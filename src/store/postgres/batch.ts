/**
 * The group commit on PostgreSQL: a write batch becomes at most one statement per table, each
 * taking its rows as arrays (`unnest`), all in the caller's transaction. What SQLite does row
 * by row in arrival order is combined here first, because one INSERT ... ON CONFLICT may not
 * touch a row twice: states of one device and millisecond merge, the composite state (one row
 * per device) keeps the newest value per attribute, a device's reports and connection changes reduce to the one that
 * wins. Rows go in key order, so two nodes writing the same rows lock them in the same order
 * and cannot deadlock.
 *
 * Minute rollups are combined per batch (rollup-accumulator.ts) and upserted in the same
 * transaction: durable with the states, nothing held in memory, so nothing to rebuild after a
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

export const UPSERT_STATES = `
INSERT INTO device_states (device_id, time, data, reported_by)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[]::jsonb[], $4::text[])
ON CONFLICT (device_id, time) DO UPDATE
  SET data = device_states.data || excluded.data, reported_by = excluded.reported_by`;

// One row per device; composite_merge (migrations.ts) keeps, per attribute, the newer of the
// stored and the new value (the new one at equal times, as in the state merge).
const UPSERT_COMPOSITE = `
INSERT INTO composite_state (device_id, state)
SELECT * FROM unnest($1::text[], $2::text[]::jsonb[])
ON CONFLICT (device_id) DO UPDATE SET state = composite_merge(composite_state.state, excluded.state)`;

// First keeps the earlier arrival on equal times (strict <), last takes the later one (>=).
const UPSERT_ROLLUPS = `
INSERT INTO state_rollups (device_id, attribute, bucket, count, sum, min, max, first_time, first_value,
  last_time, last_value)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::float8[], $6::float8[],
  $7::float8[], $8::bigint[], $9::float8[], $10::bigint[], $11::float8[])
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
    THEN excluded.last_value ELSE state_rollups.last_value END`;

// A report processed late must not move "last reported" backwards, but any report is activity.
const MARK_REPORTED = `
UPDATE devices AS d SET
  last_reported_by = CASE WHEN d.last_reported_at IS NULL OR d.last_reported_at <= u.time
    THEN u.reported_by ELSE d.last_reported_by END,
  last_reported_at = CASE WHEN d.last_reported_at IS NULL OR d.last_reported_at <= u.time
    THEN u.time ELSE d.last_reported_at END,
  inactive_since = NULL
FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(device_id, reported_by, time)
WHERE d.id = u.device_id`;

const SIGHT_PERIPHERALS = `
INSERT INTO peripheral_gateways (peripheral_id, gateway_id, first_seen, last_seen, reports)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[])
ON CONFLICT (peripheral_id, gateway_id) DO UPDATE SET
  reports = peripheral_gateways.reports + excluded.reports,
  first_seen = least(peripheral_gateways.first_seen, excluded.first_seen),
  last_seen = greatest(peripheral_gateways.last_seen, excluded.last_seen)`;

// Never older over newer: with several nodes, the disconnect of an old connection may commit
// after the connect of the device's new one on another node.
const SET_CONNECTIONS = `
UPDATE devices AS d SET connected = u.connected, connection_time = u.time, inactive_since = NULL
FROM unnest($1::text[], $2::integer[], $3::bigint[]) AS u(device_id, connected, time)
WHERE d.id = u.device_id AND (d.connection_time IS NULL OR d.connection_time <= u.time)`;

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
 * Writes the batch in the caller's transaction. JSON is serialized before the first statement,
 * so a value JSON cannot hold (a BigInt) throws before anything is sent.
 */
export async function writeBatch(client: pg.PoolClient, batch: WriteBatch): Promise<void> {
  const ids = new Set<string>();
  for (const s of batch.states) ids.add(s.deviceId);
  for (const r of batch.reports) if (r.reportedBy !== r.deviceId) ids.add(r.deviceId);
  for (const c of batch.commands) ids.add(c.deviceId);
  for (const l of batch.logs) ids.add(l.deviceId);

  const states = combineStates(batch.states);
  const commands = batch.commands.map((c) => ({ c, payload: toJson(c.payload), routedTo: toJson(c.routedTo) }));
  const logs = batch.logs.map((l) => ({ l, details: toJson(l.details) }));

  // A device deleted while its messages waited in the batch: its data is dropped, not orphaned.
  // KEY SHARE holds off a concurrent delete of these devices until this batch commits (the delete
  // then removes what the batch wrote).
  const known = new Set<string>();
  if (ids.size > 0) {
    const { rows } = await client.query<{ id: string }>(
      'SELECT id FROM devices WHERE id = ANY($1::text[]) ORDER BY id FOR KEY SHARE',
      [[...ids]],
    );
    for (const row of rows) known.add(row.id);
  }

  const kept = states.filter((s) => known.has(s.deviceId));
  if (kept.length > 0) {
    await client.query(UPSERT_STATES, [
      kept.map((s) => s.deviceId),
      kept.map((s) => s.time),
      kept.map((s) => s.json),
      kept.map((s) => s.reportedBy),
    ]);
    await writeComposite(client, batch.states, known);
    const rollups = new RollupAccumulator();
    for (const s of batch.states) if (known.has(s.deviceId)) rollups.addState(s.deviceId, s.time, s.data);
    await upsertRollups(client, rollups);
  }

  await writeReports(client, batch.reports, known);
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

async function writeComposite(client: pg.PoolClient, states: StateRecord[], known: Set<string>): Promise<void> {
  // Per device, the newest value of each attribute in the batch (the later arrival on equal
  // times). No prototype: an attribute named __proto__ is a key like any other.
  const devices = new Map<string, Record<string, { v: unknown; t: number }>>();
  for (const s of states) {
    if (!known.has(s.deviceId)) continue;
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
  const ids = [...devices.keys()].sort();
  if (ids.length === 0) return;
  await client.query(UPSERT_COMPOSITE, [ids, ids.map((id) => escapeJson(toJson(devices.get(id))))]);
}

/** Adds the partial aggregates to `state_rollups` (count and sum add up, first and last by time). */
export async function upsertRollups(client: pg.PoolClient, acc: RollupAccumulator): Promise<void> {
  if (acc.size === 0) return;
  const rows = [...acc.values()].sort((a, b) =>
    a.deviceId !== b.deviceId
      ? a.deviceId < b.deviceId
        ? -1
        : 1
      : a.attribute !== b.attribute
        ? a.attribute < b.attribute
          ? -1
          : 1
        : a.bucket - b.bucket,
  );
  await client.query(UPSERT_ROLLUPS, [
    rows.map((r) => r.deviceId),
    rows.map((r) => r.attribute),
    rows.map((r) => r.bucket),
    rows.map((r) => r.count),
    rows.map((r) => r.sum),
    rows.map((r) => r.min),
    rows.map((r) => r.max),
    rows.map((r) => r.firstTime),
    rows.map((r) => r.firstValue),
    rows.map((r) => r.lastTime),
    rows.map((r) => r.lastValue),
  ]);
}

async function writeReports(client: pg.PoolClient, reports: ReportMark[], known: Set<string>): Promise<void> {
  if (reports.length === 0) return;
  // Per device the report that wins: the latest, the later arrival on equal times.
  const last = new Map<string, ReportMark>();
  const sightings = new Map<string, { peripheral: string; gateway: string; first: number; last: number; n: number }>();
  for (const r of reports) {
    const prev = last.get(r.deviceId);
    if (!prev || r.time >= prev.time) last.set(r.deviceId, r);
    if (r.reportedBy === r.deviceId || !known.has(r.deviceId)) continue;
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
  const marks = byKey(last);
  await client.query(MARK_REPORTED, [
    marks.map((r) => r.deviceId),
    marks.map((r) => r.reportedBy),
    marks.map((r) => r.time),
  ]);
  const seen = byKey(sightings);
  if (seen.length === 0) return;
  await client.query(SIGHT_PERIPHERALS, [
    seen.map((s) => s.peripheral),
    seen.map((s) => s.gateway),
    seen.map((s) => s.first),
    seen.map((s) => s.last),
    seen.map((s) => s.n),
  ]);
}

async function writeConnections(client: pg.PoolClient, changes: ConnectionChange[]): Promise<void> {
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
  client: pg.PoolClient,
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
