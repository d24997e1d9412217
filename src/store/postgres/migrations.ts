/**
 * Versioned schema migrations of the PostgreSQL store, a list of its own (the SQLite list is
 * history of another schema). Forward-only: each runs once, in its own transaction, and is
 * recorded in `schema_migrations`; released migrations are never edited, only appended to.
 * `migrate` holds a session advisory lock throughout, so nodes starting together against one
 * database apply each migration exactly once: the others wait, then find it recorded.
 */
import type pg from 'pg';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The advisory lock key of migrations (any constant; this one reads "gatehous" in ASCII). */
export const MIGRATION_LOCK_KEY = 0x67617465686f7573n;

// Column names and JSON-as-text columns are those of the SQLite schema, so both backends share
// their row mapping (src/store/rows.ts). Times are epoch ms in bigint. Identifiers and other keys
// that lists are ordered by use the "C" collation: byte order, as SQLite and JavaScript compare.
// JSON the database itself looks into is jsonb: states (merged with ||, read by jsonb_each),
// the composite state (merged per attribute by time) and device tags (the tag filter).
//
// device_states is partitioned by time (daily range partitions, created ahead and on demand by
// partitions.ts), so retention can drop a whole day at once. The high-volume per-device tables
// carry no foreign key, as in SQLite: a device deleted while its messages wait in a batch must
// not make the whole group commit fail; the store removes their rows itself.
const INITIAL_SCHEMA = `
CREATE TABLE settings (
  key text COLLATE "C" PRIMARY KEY,
  value text NOT NULL
);

CREATE TABLE applications (
  id text COLLATE "C" PRIMARY KEY,
  name text NOT NULL,
  description text NOT NULL,
  rate_limit_messages integer NOT NULL,
  rate_limit_window_seconds integer NOT NULL,
  peripheral_timeout_seconds integer NOT NULL,
  inactivity_timeout_seconds integer,
  state_retention_days integer,
  log_retention_days integer NOT NULL DEFAULT 30,
  creation_date bigint NOT NULL,
  last_updated bigint NOT NULL
);

-- gateway_id has no foreign key: a deleted gateway leaves its peripherals bound to nothing.
CREATE TABLE devices (
  id text COLLATE "C" PRIMARY KEY,
  application_id text COLLATE "C" NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  name text NOT NULL,
  description text NOT NULL,
  device_class text NOT NULL,
  gateway_id text COLLATE "C",
  tags jsonb NOT NULL,
  attributes text NOT NULL,
  creation_date bigint NOT NULL,
  last_updated bigint NOT NULL,
  connected integer,
  connection_time bigint,
  last_reported_by text COLLATE "C",
  last_reported_at bigint,
  inactive_since bigint
);
CREATE INDEX devices_by_application ON devices (application_id, creation_date, id);
CREATE INDEX devices_by_gateway ON devices (gateway_id) WHERE gateway_id IS NOT NULL;
CREATE INDEX devices_connected ON devices (connected) WHERE connected = 1;

CREATE TABLE access_keys (
  id text COLLATE "C" PRIMARY KEY,
  application_id text COLLATE "C" NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  key text COLLATE "C" NOT NULL UNIQUE,
  secret_hash text NOT NULL,
  description text NOT NULL,
  status text NOT NULL,
  filter_type text NOT NULL,
  device_ids text,
  device_tags text,
  pub_topics text NOT NULL,
  sub_topics text NOT NULL,
  creation_date bigint NOT NULL,
  last_updated bigint NOT NULL
);
CREATE INDEX access_keys_by_application ON access_keys (application_id, creation_date, id);

CREATE TABLE device_states (
  device_id text COLLATE "C" NOT NULL,
  time bigint NOT NULL,
  data jsonb NOT NULL,
  reported_by text COLLATE "C" NOT NULL,
  PRIMARY KEY (device_id, time)
) PARTITION BY RANGE (time);

-- The composite state: one row per device, {"attribute": {"v": value, "t": time}}. A batch
-- upserts one row per device (not one per attribute), merged per attribute by time: a value
-- older than the stored one of its attribute is left out, at equal times the later arrival wins.
CREATE TABLE composite_state (
  device_id text COLLATE "C" PRIMARY KEY,
  state jsonb NOT NULL
);

CREATE FUNCTION composite_merge(old jsonb, new jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT old || coalesce(jsonb_object_agg(n.key, n.value), '{}'::jsonb)
  FROM jsonb_each(new) AS n
  WHERE NOT (old ? n.key) OR (old -> n.key ->> 't')::bigint <= (n.value ->> 't')::bigint
$$;

-- One row per device, numeric attribute and minute: what a time-series query over long ranges
-- reads instead of the raw states.
CREATE TABLE state_rollups (
  device_id text COLLATE "C" NOT NULL,
  attribute text COLLATE "C" NOT NULL,
  bucket bigint NOT NULL,
  count bigint NOT NULL,
  sum double precision NOT NULL,
  min double precision NOT NULL,
  max double precision NOT NULL,
  first_time bigint NOT NULL,
  first_value double precision NOT NULL,
  last_time bigint NOT NULL,
  last_value double precision NOT NULL,
  PRIMARY KEY (device_id, attribute, bucket)
);

-- seq orders commands of one millisecond by insertion (SQLite's rowid).
CREATE TABLE commands (
  id text COLLATE "C" PRIMARY KEY,
  seq bigint GENERATED ALWAYS AS IDENTITY,
  application_id text COLLATE "C" NOT NULL,
  device_id text COLLATE "C" NOT NULL,
  name text NOT NULL,
  payload text NOT NULL,
  time bigint NOT NULL,
  routed_to text NOT NULL,
  sent_by text NOT NULL
);
CREATE INDEX commands_by_device_time ON commands (device_id, time, seq);

CREATE TABLE device_logs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  device_id text COLLATE "C" NOT NULL,
  application_id text COLLATE "C" NOT NULL,
  time bigint NOT NULL,
  kind text NOT NULL,
  details text NOT NULL
);
CREATE INDEX device_logs_by_device ON device_logs (device_id, id);
CREATE INDEX device_logs_by_application_time ON device_logs (application_id, time, id);

CREATE TABLE peripheral_gateways (
  peripheral_id text COLLATE "C" NOT NULL,
  gateway_id text COLLATE "C" NOT NULL,
  first_seen bigint NOT NULL,
  last_seen bigint NOT NULL,
  reports bigint NOT NULL,
  PRIMARY KEY (peripheral_id, gateway_id)
);
CREATE INDEX peripheral_gateways_by_gateway ON peripheral_gateways (gateway_id, last_seen);
`;

const ACCOUNTS = `
CREATE TABLE api_tokens (
  id text COLLATE "C" PRIMARY KEY,
  name text NOT NULL,
  secret_hash text NOT NULL,
  creation_date bigint NOT NULL,
  application_id text COLLATE "C" REFERENCES applications(id) ON DELETE CASCADE,
  role text,
  expires_at bigint
);
CREATE INDEX api_tokens_by_application ON api_tokens (application_id, creation_date, id);

CREATE TABLE users (
  id text COLLATE "C" PRIMARY KEY,
  email text COLLATE "C" NOT NULL UNIQUE,
  name text NOT NULL,
  password_hash text NOT NULL,
  admin integer NOT NULL,
  creation_date bigint NOT NULL,
  last_updated bigint NOT NULL
);

CREATE TABLE memberships (
  application_id text COLLATE "C" NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  user_id text COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role text NOT NULL,
  creation_date bigint NOT NULL,
  PRIMARY KEY (application_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE sessions (
  id text COLLATE "C" PRIMARY KEY,
  user_id text COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  secret_hash text NOT NULL,
  creation_date bigint NOT NULL,
  expires_at bigint NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
`;

const WORKFLOWS = `
CREATE TABLE flows (
  id text COLLATE "C" PRIMARY KEY,
  application_id text COLLATE "C" NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  name text NOT NULL,
  description text NOT NULL,
  enabled integer NOT NULL,
  definition text NOT NULL,
  default_version_id text COLLATE "C",
  run_count bigint NOT NULL DEFAULT 0,
  error_count bigint NOT NULL DEFAULT 0,
  creation_date bigint NOT NULL,
  last_updated bigint NOT NULL
);
CREATE INDEX flows_by_application ON flows (application_id, creation_date, id);

CREATE TABLE flow_versions (
  id text COLLATE "C" PRIMARY KEY,
  flow_id text COLLATE "C" NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
  application_id text COLLATE "C" NOT NULL,
  version text NOT NULL,
  notes text NOT NULL,
  definition text NOT NULL,
  creation_date bigint NOT NULL,
  UNIQUE (flow_id, version)
);

CREATE TABLE flow_runs (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  flow_id text COLLATE "C" NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
  time bigint NOT NULL,
  run text NOT NULL
);
CREATE INDEX flow_runs_by_flow ON flow_runs (flow_id, time, id);

CREATE TABLE flow_values (
  flow_id text COLLATE "C" NOT NULL REFERENCES flows(id) ON DELETE CASCADE,
  key text COLLATE "C" NOT NULL,
  value text NOT NULL,
  PRIMARY KEY (flow_id, key)
);

CREATE TABLE webhooks (
  id text COLLATE "C" PRIMARY KEY,
  application_id text COLLATE "C" NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  name text NOT NULL,
  token_hash text NOT NULL UNIQUE,
  creation_date bigint NOT NULL,
  last_updated bigint NOT NULL
);
CREATE INDEX webhooks_by_application ON webhooks (application_id, creation_date, id);
`;

// A dashboard is read and written whole: blocks and context variables as JSON text.
const DASHBOARDS = `
CREATE TABLE dashboards (
  id text COLLATE "C" PRIMARY KEY,
  application_id text COLLATE "C" NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
  name text NOT NULL,
  description text NOT NULL,
  refresh_rate double precision NOT NULL,
  default_theme text NOT NULL,
  blocks text NOT NULL,
  context_configuration text NOT NULL,
  creation_date bigint NOT NULL,
  last_updated bigint NOT NULL
);
CREATE INDEX dashboards_by_application ON dashboards (application_id, creation_date, id);
`;

// Room for HOT updates on the tables every state updates in place. An update is heap-only (no new
// index entries, the old version pruned on the page later) when no indexed column changes and the
// new version fits on the old one's page. peripheral_gateways' index on (gateway_id, last_seen)
// held a column every sighting updates, so none of those updates was HOT: it is now on gateway_id
// alone (a gateway's sightings are few; listPeripheralsSeenBy filters last_seen among them). And
// at the default fillfactor (100) pages are full, so an update found no room beside the old
// version; one statement updates many rows of a page at once (a batch updates each of its
// devices, and the old versions cannot be pruned before it commits), so 30% is kept free: HOT
// went from 77-97% (0% for peripheral_gateways) to 98-99% in benchmark s (docs/scale-out.md,
// "Capacity"), for tables 1.4 times as large. Existing pages are not
// rewritten: new versions go to new pages, filled to 70%, and vacuum frees the old ones.
const HOT_UPDATES = `
DROP INDEX peripheral_gateways_by_gateway;
CREATE INDEX peripheral_gateways_by_gateway ON peripheral_gateways (gateway_id);
ALTER TABLE devices SET (fillfactor = 70);
ALTER TABLE composite_state SET (fillfactor = 70);
ALTER TABLE state_rollups SET (fillfactor = 70);
ALTER TABLE peripheral_gateways SET (fillfactor = 70);
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: 'initial schema', sql: INITIAL_SCHEMA },
  { version: 2, name: 'accounts', sql: ACCOUNTS },
  { version: 3, name: 'workflows', sql: WORKFLOWS },
  { version: 4, name: 'dashboards', sql: DASHBOARDS },
  { version: 5, name: 'room for HOT updates', sql: HOT_UPDATES },
];

/** Applies the migrations not yet recorded, under the advisory lock; returns the versions it applied. */
export async function migrate(
  pool: pg.Pool,
  migrations: readonly Migration[] = MIGRATIONS,
  now: () => number = Date.now,
): Promise<number[]> {
  const client = await pool.connect();
  try {
    // A session lock, not a transaction lock: it spans the migrations' own transactions.
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version integer PRIMARY KEY,
        name text NOT NULL,
        applied_at bigint NOT NULL
      )`);
      const applied = new Set(
        (await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version),
      );
      const done: number[] = [];
      for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
        if (applied.has(migration.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(migration.sql);
          await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
            migration.version,
            migration.name,
            now(),
          ]);
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK');
          throw err;
        }
        done.push(migration.version);
      }
      return done;
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
    }
  } finally {
    client.release();
  }
}
