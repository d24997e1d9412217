/**
 * Versioned schema migrations. Each runs once, in its own transaction, and is recorded in
 * `schema_migrations`; released migrations are never edited, only appended to.
 */
import type Database from 'better-sqlite3';
import { rebuildRollups } from './rollup-rebuild.js';

/** A migration is a SQL script, or code for what SQL alone cannot loop over. */
export type Migration =
  | { version: number; name: string; sql: string }
  | { version: number; name: string; run: (db: Database.Database) => void };

// STRICT tables make a wrong-typed write (a fractional time, an object bound as text) fail
// loudly instead of being stored as something no query matches.
// The high-volume per-device tables (states, composite, commands, logs) carry no foreign key:
// a device deleted while its messages wait in a batch must not make the whole group commit
// fail. The store removes their rows itself when a device or application is deleted.
const INITIAL_SCHEMA = `
CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) STRICT;

CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  creation_date INTEGER NOT NULL
) STRICT;

CREATE TABLE applications (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  description TEXT NOT NULL,
  rate_limit_messages INTEGER NOT NULL,
  rate_limit_window_seconds INTEGER NOT NULL,
  peripheral_timeout_seconds INTEGER NOT NULL,
  creation_date INTEGER NOT NULL,
  last_updated INTEGER NOT NULL
) STRICT;

-- gateway_id has no foreign key: a deleted gateway leaves its peripherals bound to nothing,
-- which nobody can act for.
CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  description TEXT NOT NULL,
  device_class TEXT NOT NULL,
  gateway_id TEXT,
  tags TEXT NOT NULL,
  attributes TEXT NOT NULL,
  creation_date INTEGER NOT NULL,
  last_updated INTEGER NOT NULL,
  connected INTEGER,
  connection_time INTEGER,
  last_reported_by TEXT,
  last_reported_at INTEGER
) STRICT;
-- Serves both the cascade from applications and the paged listing order.
CREATE INDEX devices_by_application ON devices(application_id, creation_date, id);
CREATE INDEX devices_by_gateway ON devices(gateway_id) WHERE gateway_id IS NOT NULL;
-- resetConnections touches only the connected ones; the partial index keeps that cheap.
CREATE INDEX devices_connected ON devices(connected) WHERE connected = 1;

CREATE TABLE access_keys (
  id TEXT PRIMARY KEY,
  application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  key TEXT NOT NULL UNIQUE,
  secret_hash TEXT NOT NULL,
  description TEXT NOT NULL,
  status TEXT NOT NULL,
  filter_type TEXT NOT NULL,
  device_ids TEXT,
  device_tags TEXT,
  pub_topics TEXT NOT NULL,
  sub_topics TEXT NOT NULL,
  creation_date INTEGER NOT NULL,
  last_updated INTEGER NOT NULL
) STRICT;
CREATE INDEX access_keys_by_application ON access_keys(application_id, creation_date, id);

CREATE TABLE device_states (
  device_id TEXT NOT NULL,
  time INTEGER NOT NULL,
  data TEXT NOT NULL,
  reported_by TEXT NOT NULL,
  PRIMARY KEY (device_id, time)
) STRICT, WITHOUT ROWID;

CREATE TABLE composite_state (
  device_id TEXT NOT NULL,
  attribute TEXT NOT NULL,
  value TEXT NOT NULL,
  time INTEGER NOT NULL,
  PRIMARY KEY (device_id, attribute)
) STRICT, WITHOUT ROWID;

CREATE TABLE commands (
  id TEXT PRIMARY KEY,
  application_id TEXT NOT NULL,
  device_id TEXT NOT NULL,
  name TEXT NOT NULL,
  payload TEXT NOT NULL,
  time INTEGER NOT NULL,
  routed_to TEXT NOT NULL,
  sent_by TEXT NOT NULL
) STRICT;
CREATE INDEX commands_by_device_time ON commands(device_id, time);

CREATE TABLE device_logs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id TEXT NOT NULL,
  application_id TEXT NOT NULL,
  time INTEGER NOT NULL,
  kind TEXT NOT NULL,
  details TEXT NOT NULL
) STRICT;
CREATE INDEX device_logs_by_device ON device_logs(device_id, id);
`;

// Data and visibility: per-application inactivity and retention settings, the gateways a
// peripheral was heard through, minute rollups for time-series queries, and indexes for the
// application-wide communication log.
const DATA_AND_VISIBILITY = `
ALTER TABLE applications ADD COLUMN inactivity_timeout_seconds INTEGER;
ALTER TABLE applications ADD COLUMN state_retention_days INTEGER;
ALTER TABLE applications ADD COLUMN log_retention_days INTEGER NOT NULL DEFAULT 30;
ALTER TABLE devices ADD COLUMN inactive_since INTEGER;

CREATE TABLE peripheral_gateways (
  peripheral_id TEXT NOT NULL,
  gateway_id TEXT NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  reports INTEGER NOT NULL,
  PRIMARY KEY (peripheral_id, gateway_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX peripheral_gateways_by_gateway ON peripheral_gateways(gateway_id, last_seen);

-- One row per device, numeric attribute and minute: what a time-series query over long ranges
-- reads instead of the raw states.
CREATE TABLE state_rollups (
  device_id TEXT NOT NULL,
  attribute TEXT NOT NULL,
  bucket INTEGER NOT NULL,
  count INTEGER NOT NULL,
  sum REAL NOT NULL,
  min REAL NOT NULL,
  max REAL NOT NULL,
  first_time INTEGER NOT NULL,
  first_value REAL NOT NULL,
  last_time INTEGER NOT NULL,
  last_value REAL NOT NULL,
  PRIMARY KEY (device_id, attribute, bucket)
) STRICT, WITHOUT ROWID;

CREATE INDEX device_logs_by_application ON device_logs(application_id, id);
CREATE INDEX device_logs_by_application_time ON device_logs(application_id, time);
`;

// Accounts (issue 8): users, their roles per application, application API tokens and browser
// sessions. Memberships and tokens go with their application, memberships and sessions with
// their user. The tokens made before have no application: they are the operators' (admin) tokens.
const ACCOUNTS = `
ALTER TABLE api_tokens ADD COLUMN application_id TEXT REFERENCES applications(id) ON DELETE CASCADE;
ALTER TABLE api_tokens ADD COLUMN role TEXT;
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
CREATE INDEX api_tokens_by_application ON api_tokens(application_id, creation_date, id);

CREATE TABLE users (
  id TEXT PRIMARY KEY,
  email TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  admin INTEGER NOT NULL,
  creation_date INTEGER NOT NULL,
  last_updated INTEGER NOT NULL
) STRICT;

CREATE TABLE memberships (
  application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role TEXT NOT NULL,
  creation_date INTEGER NOT NULL,
  PRIMARY KEY (application_id, user_id)
) STRICT;
CREATE INDEX memberships_by_user ON memberships(user_id);

CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  secret_hash TEXT NOT NULL,
  creation_date INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_by_user ON sessions(user_id);
CREATE INDEX sessions_by_expiry ON sessions(expires_at);
`;

// Workflows (issue 9): definitions are kept whole as JSON (they are read and written whole);
// runs are a bounded log per flow; storage values are JSON per flow and key.
const WORKFLOWS = `
CREATE TABLE flows (
  id TEXT PRIMARY KEY,
  application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  description TEXT NOT NULL,
  enabled INTEGER NOT NULL,
  definition TEXT NOT NULL,
  default_version_id TEXT,
  run_count INTEGER NOT NULL DEFAULT 0,
  error_count INTEGER NOT NULL DEFAULT 0,
  creation_date INTEGER NOT NULL,
  last_updated INTEGER NOT NULL
) STRICT;
CREATE INDEX flows_by_application ON flows(application_id, creation_date, id);

CREATE TABLE flow_versions (
  id TEXT PRIMARY KEY,
  flow_id TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
  application_id TEXT NOT NULL,
  version TEXT NOT NULL,
  notes TEXT NOT NULL,
  definition TEXT NOT NULL,
  creation_date INTEGER NOT NULL,
  UNIQUE (flow_id, version)
) STRICT;

CREATE TABLE flow_runs (
  id INTEGER PRIMARY KEY,
  flow_id TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
  time INTEGER NOT NULL,
  run TEXT NOT NULL
) STRICT;
CREATE INDEX flow_runs_by_flow ON flow_runs(flow_id, time, id);

CREATE TABLE flow_values (
  flow_id TEXT NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (flow_id, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE webhooks (
  id TEXT PRIMARY KEY,
  application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  creation_date INTEGER NOT NULL,
  last_updated INTEGER NOT NULL
) STRICT;
CREATE INDEX webhooks_by_application ON webhooks(application_id, creation_date, id);
`;

// Dashboards (the console issue): a dashboard is read and written whole, so its blocks and
// context variables are kept as JSON beside the fields a list shows.
const DASHBOARDS = `
CREATE TABLE dashboards (
  id TEXT PRIMARY KEY,
  application_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  description TEXT NOT NULL,
  refresh_rate REAL NOT NULL,
  default_theme TEXT NOT NULL,
  blocks TEXT NOT NULL,
  context_configuration TEXT NOT NULL,
  creation_date INTEGER NOT NULL,
  last_updated INTEGER NOT NULL
) STRICT;
CREATE INDEX dashboards_by_application ON dashboards(application_id, creation_date, id);
`;

// Migration 3 rebuilds the minute rollups from the stored states: states written before the
// store kept rollups would otherwise be missing from time-series queries answered from the
// rollups. The same code rebuilds the recent minutes after a crash (rollup-rebuild.ts).

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial schema', sql: INITIAL_SCHEMA },
  { version: 2, name: 'data and visibility', sql: DATA_AND_VISIBILITY },
  { version: 3, name: 'rebuild minute rollups', run: (db) => rebuildRollups(db) },
  { version: 4, name: 'accounts', sql: ACCOUNTS },
  { version: 5, name: 'workflows', sql: WORKFLOWS },
  { version: 6, name: 'dashboards', sql: DASHBOARDS },
];

/** Applies the migrations not yet recorded; returns the versions it applied. */
export function migrate(
  db: Database.Database,
  migrations: readonly Migration[] = MIGRATIONS,
  now: () => number = Date.now,
): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  ) STRICT`);
  const isApplied = db.prepare<[number], { version: number }>(
    'SELECT version FROM schema_migrations WHERE version = ?',
  );
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  // IMMEDIATE takes the write lock before the check, so two processes opening the same file
  // at once cannot both apply a migration.
  const applyOne = db.transaction((migration: Migration): boolean => {
    if (isApplied.get(migration.version)) return false;
    if ('sql' in migration) db.exec(migration.sql);
    else migration.run(db);
    record.run(migration.version, migration.name, now());
    return true;
  });
  const done: number[] = [];
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (applyOne.immediate(migration)) done.push(migration.version);
  }
  return done;
}
