import pg from 'pg';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { Application } from '../../src/domain/model.js';
import { MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { dayOf, partitionName } from '../../src/store/postgres/partitions.js';
import { openPostgresStore, type PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { writeBatch } from '../../src/store/types.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { makeApp, makeDevice, state, storeContract } from './contract.js';
import { visibilityContract } from './contract-visibility.js';

const db = await createTestDatabase();
afterAll(() => db.drop());

// One database for the contract suites, emptied before each store is opened.
const open = async () => {
  await db.truncate();
  return openPostgresStore({ url: db.url });
};

storeContract('postgres', open);
visibilityContract('postgres', open);

describe('PostgresStore', () => {
  it('migrates a fresh database once when two stores open it at the same time', async () => {
    const fresh = await createTestDatabase();
    try {
      const stores = await Promise.all([openPostgresStore({ url: fresh.url }), openPostgresStore({ url: fresh.url })]);
      const client = new pg.Client({ connectionString: fresh.url });
      await client.connect();
      const { rows } = await client.query<{ version: number }>(
        'SELECT version FROM schema_migrations ORDER BY version',
      );
      await client.end();
      expect(rows.map((r) => r.version)).toEqual(MIGRATIONS.map((m) => m.version));
      await Promise.all(stores.map((s) => s.checkWritable()));
      await Promise.all(stores.map((s) => s.close()));
    } finally {
      await fresh.drop();
    }
  });
});

describe('PostgresStore schema', () => {
  it('leaves room for HOT updates where every state updates rows: no updated column indexed, pages 70% full', async () => {
    const fresh = await createTestDatabase();
    try {
      const store = await openPostgresStore({ url: fresh.url });
      const client = new pg.Client({ connectionString: fresh.url });
      await client.connect();
      try {
        const { rows: options } = await client.query<{ relname: string; reloptions: string[] | null }>(
          `SELECT relname, reloptions FROM pg_class
           WHERE relname IN ('devices', 'composite_state', 'state_rollups', 'peripheral_gateways') ORDER BY relname`,
        );
        expect(options).toEqual(
          ['composite_state', 'devices', 'peripheral_gateways', 'state_rollups'].map((relname) => ({
            relname,
            reloptions: ['fillfactor=70'],
          })),
        );
        const { rows: indexes } = await client.query<{ indexdef: string }>(
          "SELECT indexdef FROM pg_indexes WHERE tablename = 'peripheral_gateways' ORDER BY indexname",
        );
        expect(indexes.map((i) => i.indexdef.replace(/^.* USING /, ''))).toEqual([
          'btree (gateway_id)',
          'btree (peripheral_id, gateway_id)',
        ]);
      } finally {
        await client.end();
        await store.close();
      }
    } finally {
      await fresh.drop();
    }
  });
});

describe('PostgresStore with two nodes', () => {
  it('takes batches from four stores, two at a time each, locking the same devices in different orders, without deadlock', async () => {
    await db.truncate();
    // The server's count of deadlocks in this database, once every other backend of it has ended
    // (a backend's counters reach the view when it ends, at the latest).
    const deadlocks = async () => {
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        await vi.waitFor(
          async () => {
            const { rows } = await client.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity
               WHERE datname = current_database() AND pid <> pg_backend_pid()`,
            );
            expect(rows[0]!.n).toBe(0);
          },
          { timeout: 5_000, interval: 50 },
        );
        const { rows } = await client.query<{ n: number }>(
          'SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = current_database()',
        );
        return rows[0]!.n;
      } finally {
        await client.end();
      }
    };
    const before = await deadlocks();
    const stores = await Promise.all([0, 1, 2, 3].map(() => openPostgresStore({ url: db.url })));
    const app = makeApp();
    const devices = Array.from({ length: 40 }, () => makeDevice(app.id));
    const writers = stores.flatMap((store, s) => [0, 1].map((lane) => ({ store, w: s * 2 + lane })));
    const rounds = 40;
    try {
      await stores[0]!.createApplication(app);
      for (const d of devices) await stores[0]!.createDevice(d);
      const T = 1_700_000_080_000;
      // Writer w, round r: the devices rotated, and reversed for every other writer, so batches
      // arrive in many orders; each writer its own times, so every state is a row of its own. In
      // odd rounds the last 10 get a connection change instead of a state, which makes the batch
      // a transaction of two statements updating devices.
      const orderOf = (w: number, r: number) => {
        const turned = devices.map((_, i) => devices[(i + r * 7 + w * 13) % devices.length]!);
        return w % 2 === 0 ? turned : turned.reverse();
      };
      const failures: unknown[] = [];
      await Promise.all(
        writers.map(async ({ store, w }) => {
          for (let r = 0; r < rounds; r++) {
            const time = T + r * writers.length + w;
            const order = orderOf(w, r);
            const reported = r % 2 === 1 ? order.slice(0, 30) : order;
            const connected = r % 2 === 1 ? order.slice(30) : [];
            await store
              .applyBatch(
                writeBatch({
                  states: reported.map((d) => state(d.id, time, { n: r })),
                  reports: reported.map((d) => ({ deviceId: d.id, reportedBy: devices[0]!.id, time })),
                  connections: connected.map((d) => ({ deviceId: d.id, connected: true, time })),
                }),
              )
              .catch((error: unknown) => failures.push(error));
          }
        }),
      );
      expect(failures).toEqual([]);
      let stored = 0;
      for (const d of devices)
        stored += (await stores[1]!.queryStates(d.id, { limit: 1000, sortDirection: 'asc' })).length;
      expect(stored).toBe(writers.length * (rounds / 2) * (40 + 30));
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
    // A batch PostgreSQL ends to break a deadlock is written again (next test), so only the
    // server's count shows whether one happened.
    expect(await deadlocks()).toBe(before);
  });

  it('writes a batch again when PostgreSQL ends it to break a deadlock with another writer', async () => {
    await db.truncate();
    const store = await openPostgresStore({ url: db.url });
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      const app = makeApp();
      await store.createApplication(app);
      const [a, b] = [makeDevice(app.id, { id: 'lock-a' }), makeDevice(app.id, { id: 'lock-b' })];
      await store.createDevice(a);
      await store.createDevice(b);
      const T = 1_700_000_090_000;
      // The other writer holds b; the batch locks a, then waits for b; the other writer then
      // asks for a. The batch waited first, so its deadlock check runs first and ends it.
      await other.query('BEGIN');
      await other.query(`SELECT id FROM devices WHERE id = 'lock-b' FOR NO KEY UPDATE`);
      const written = store.applyBatch(
        writeBatch({
          states: [state(a.id, T, { n: 1 }), state(b.id, T, { n: 1 })],
          reports: [a, b].map((d) => ({ deviceId: d.id, reportedBy: d.id, time: T })),
        }),
      );
      await vi.waitFor(
        async () => {
          const { rows } = await other.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
          );
          expect(rows[0]!.n).toBe(1);
        },
        { timeout: 5_000, interval: 20 },
      );
      await other.query(`UPDATE devices SET description = 'held' WHERE id = 'lock-a'`);
      await other.query('COMMIT');
      await written;
      expect((await store.getCompositeState(a.id)).n).toEqual({ value: 1, time: T });
      expect((await store.getCompositeState(b.id)).n).toEqual({ value: 1, time: T });
      expect((await store.getDevice(a.id))?.description).toBe('held');
    } finally {
      await other.end();
      await store.close();
    }
  });

  it('takes batches from two stores writing the same devices at once, without deadlock or loss', async () => {
    await db.truncate();
    const [one, two] = [await openPostgresStore({ url: db.url }), await openPostgresStore({ url: db.url })];
    try {
      const app = makeApp();
      await one.createApplication(app);
      const devices = Array.from({ length: 40 }, () => makeDevice(app.id));
      for (const d of devices) await one.createDevice(d);
      const T = 1_700_000_040_000;
      // Each node writes every device, in opposite orders, with reports and sightings too.
      const batchOf = (node: number, round: number) =>
        writeBatch({
          states: (node === 0 ? devices : [...devices].reverse()).map((d, i) =>
            state(d.id, T + round * 10 + node, { n: round * 2 + node, x: i }),
          ),
          reports: devices.map((d) => ({ deviceId: d.id, reportedBy: devices[0]!.id, time: T + round * 10 + node })),
        });
      const rounds = 15;
      await Promise.all(
        [one, two].map(async (store, node) => {
          for (let round = 0; round < rounds; round++) await store.applyBatch(batchOf(node, round));
        }),
      );
      for (const d of devices) {
        expect(await two.queryStates(d.id, { limit: 100, sortDirection: 'asc' })).toHaveLength(rounds * 2);
        expect((await one.getCompositeState(d.id)).n).toEqual({
          value: rounds * 2 - 1,
          time: T + (rounds - 1) * 10 + 1,
        });
      }
      const [rollup] =
        (
          await one.querySeries({
            deviceIds: [devices[5]!.id],
            attributes: ['n'],
            start: T,
            end: T + 59_999,
            resolution: 60_000,
            aggregation: 'COUNT',
          })
        ).get(devices[5]!.id) ?? [];
      expect(rollup?.data).toEqual({ n: rounds * 2 });
      const sightings = await one.listGatewaySightings(devices[1]!.id);
      expect(sightings).toEqual([expect.objectContaining({ gatewayId: devices[0]!.id, reports: rounds * 2 })]);
    } finally {
      await one.close();
      await two.close();
    }
  });
});

describe('PostgresStore group commit', () => {
  it('writes a batch of states as one statement that waits for a delete under way, then leaves the deleted device out', async () => {
    await db.truncate();
    const store = await openPostgresStore({ url: db.url });
    const deleter = new pg.Client({ connectionString: db.url });
    await deleter.connect();
    try {
      const app = makeApp();
      await store.createApplication(app);
      const gateway = makeDevice(app.id, { deviceClass: 'gateway' });
      const [kept, deleted] = [makeDevice(app.id), makeDevice(app.id)];
      for (const d of [gateway, kept, deleted]) await store.createDevice(d);
      const T = 1_700_000_100_000;
      // A delete of one device, not committed yet.
      await deleter.query('BEGIN');
      await deleter.query('DELETE FROM devices WHERE id = $1', [deleted.id]);
      let done = false;
      const applied = store
        .applyBatch(
          writeBatch({
            states: [kept, deleted].map((d) => state(d.id, T, { t: 1 }, gateway.id)),
            reports: [kept, deleted].map((d) => ({ deviceId: d.id, reportedBy: gateway.id, time: T })),
          }),
        )
        .then(() => {
          done = true;
        });
      // The batch's statement waits on the deleted device's row lock (pg_stat_activity says so).
      const admin = new pg.Client({ connectionString: db.url });
      await admin.connect();
      try {
        for (;;) {
          const { rows } = await admin.query<{ n: string }>(
            `SELECT count(*) AS n FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%known AS (%'`,
          );
          if (Number(rows[0]?.n) > 0) break;
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        await admin.end();
      }
      expect(done).toBe(false);
      await deleter.query('COMMIT');
      await applied;
      expect(await store.queryStates(kept.id, { limit: 10, sortDirection: 'asc' })).toHaveLength(1);
      expect(await store.queryStates(deleted.id, { limit: 10, sortDirection: 'asc' })).toHaveLength(0);
      expect(await store.listGatewaySightings(kept.id)).toEqual([
        expect.objectContaining({ gatewayId: gateway.id, reports: 1 }),
      ]);
      expect(await store.listGatewaySightings(deleted.id)).toEqual([]);
      expect((await store.getCompositeState(kept.id)).t).toEqual({ value: 1, time: T });
      expect(await store.getCompositeState(deleted.id)).toEqual({});
    } finally {
      await deleter.end();
      await store.close();
    }
  });
});

describe('PostgresStore partitions and retention', () => {
  const DAY = 86_400_000;
  // Midnight UTC, so each offset of whole days falls in its own partition.
  const D0 = 19_700 * DAY;

  const app = (): Application => makeApp();
  const partitionDays = async (store: PostgresStore) =>
    (await store.partitions.list()).map((p) => (p.from - D0) / DAY).filter((d) => d >= -10_000);

  it('creates the partitions of the coming days at open, and of any other day when a batch needs it', async () => {
    await db.truncate();
    const store = await openPostgresStore({ url: db.url, now: () => D0 + 5 * DAY + 1000 });
    try {
      expect(await partitionDays(store)).toEqual(expect.arrayContaining([5, 6, 7]));
      const a = app();
      await store.createApplication(a);
      const device = makeDevice(a.id);
      await store.createDevice(device);
      // A backfilled state decades back, and one of a device whose clock runs a year ahead.
      const old = D0 - 9000 * DAY + 5;
      const ahead = D0 + 370 * DAY;
      await store.applyBatch(
        writeBatch({ states: [state(device.id, old, { t: 1 }), state(device.id, ahead, { t: 2 })] }),
      );
      expect((await store.queryStates(device.id, { limit: 10, sortDirection: 'asc' })).map((s) => s.time)).toEqual([
        old,
        ahead,
      ]);
      const names = (await store.partitions.list()).map((p) => p.name);
      expect(names).toContain(partitionName(dayOf(old)));
      expect(names).toContain(partitionName(dayOf(ahead)));
    } finally {
      await store.close();
    }
  });

  it("drops a day partition holding only the application's states, and deletes row by row where others share the day", async () => {
    await db.truncate();
    const store = await openPostgresStore({ url: db.url, now: () => D0 });
    try {
      const [a, b] = [app(), app()];
      await store.createApplication(a);
      await store.createApplication(b);
      const da = makeDevice(a.id);
      const db2 = makeDevice(b.id);
      await store.createDevice(da);
      await store.createDevice(db2);
      const states = [
        // Day -3: application a alone. Day -2: both. Day -1: a, after the cut-off.
        ...[0, 1, 2, 3].map((i) => state(da.id, D0 - 3 * DAY + i, { t: i })),
        ...[0, 1].map((i) => state(da.id, D0 - 2 * DAY + i, { t: i })),
        state(db2.id, D0 - 2 * DAY, { t: 9 }),
        state(da.id, D0 - DAY, { t: 5 }),
      ];
      await store.applyBatch(writeBatch({ states }));
      const dropped = partitionName(dayOf(D0 - 3 * DAY));
      expect((await store.partitions.list()).map((p) => p.name)).toContain(dropped);

      // The whole day -3 goes at once (4 states, more than the limit of 1), then day -2 row by row.
      expect(await store.pruneStates(a.id, D0 - DAY, 1)).toBe(4);
      expect((await store.partitions.list()).map((p) => p.name)).not.toContain(dropped);
      expect(await store.pruneStates(a.id, D0 - DAY, 1)).toBe(1);
      expect(await store.pruneStates(a.id, D0 - DAY, 100)).toBe(1);
      expect(await store.pruneStates(a.id, D0 - DAY, 100)).toBe(0);
      const all = { limit: 100, sortDirection: 'asc' as const };
      expect((await store.queryStates(da.id, all)).map((s) => s.time)).toEqual([D0 - DAY]);
      expect(await store.queryStates(db2.id, all)).toHaveLength(1);

      // A node that still believes the dropped partition exists re-reads the partitions and retries.
      const other = await openPostgresStore({ url: db.url, now: () => D0 });
      try {
        await other.applyBatch(writeBatch({ states: [state(da.id, D0 - 3 * DAY + 7, { t: 7 })] }));
        await store.pruneStates(a.id, D0 - 2 * DAY, 100);
        await other.applyBatch(writeBatch({ states: [state(da.id, D0 - 3 * DAY + 8, { t: 8 })] }));
        expect((await store.queryStates(da.id, all)).map((s) => s.time)).toEqual([D0 - 3 * DAY + 8, D0 - DAY]);
      } finally {
        await other.close();
      }
    } finally {
      await store.close();
    }
  });

  it('drops a day shared with other applications once every one of them lets it go, and keeps one an application keeps forever', async () => {
    await db.truncate();
    const store = await openPostgresStore({ url: db.url, now: () => D0 });
    try {
      // a keeps 2 days, b 4 days, c forever; "now" is D0.
      const a = makeApp({ stateRetentionDays: 2 });
      const b = makeApp({ stateRetentionDays: 4 });
      const c = makeApp({ stateRetentionDays: null });
      for (const x of [a, b, c]) await store.createApplication(x);
      const [da, dbb, dc] = [makeDevice(a.id), makeDevice(b.id), makeDevice(c.id)];
      for (const d of [da, dbb, dc]) await store.createDevice(d);
      await store.applyBatch(
        writeBatch({
          states: [
            // Day -5: a and b (both let it go). Day -4: a and b (b keeps it). Day -6: a and c.
            state(da.id, D0 - 5 * DAY, { t: 1 }),
            state(dbb.id, D0 - 5 * DAY + 1, { t: 2 }),
            state(da.id, D0 - 4 * DAY, { t: 3 }),
            state(dbb.id, D0 - 3 * DAY - 1, { t: 4 }),
            state(da.id, D0 - 6 * DAY, { t: 5 }),
            state(dc.id, D0 - 6 * DAY, { t: 6 }),
          ],
        }),
      );
      const names = async () => (await store.partitions.list()).map((p) => p.name);
      // As the maintenance loop calls it for a at D0: before = D0 - 2 days. Day -5 goes whole
      // (2 states), then a's states of days -4 and -6 row by row.
      expect(await store.pruneStates(a.id, D0 - 2 * DAY, 100)).toBe(2 + 2);
      expect(await names()).not.toContain(partitionName(dayOf(D0 - 5 * DAY)));
      expect(await names()).toContain(partitionName(dayOf(D0 - 4 * DAY)));
      expect(await names()).toContain(partitionName(dayOf(D0 - 6 * DAY)));
      const all = { limit: 100, sortDirection: 'asc' as const };
      expect(await store.queryStates(da.id, all)).toEqual([]);
      expect((await store.queryStates(dbb.id, all)).map((s) => s.time)).toEqual([D0 - 3 * DAY - 1]);
      expect(await store.queryStates(dc.id, all)).toHaveLength(1);
    } finally {
      await store.close();
    }
  });

  it('checkWritable rejects when the server only takes reads', async () => {
    const fresh = await createTestDatabase();
    try {
      const writable = await openPostgresStore({ url: fresh.url });
      await writable.checkWritable();
      await writable.close();
      // Connections made from now on are read-only, as on a standby.
      const admin = new pg.Client({ connectionString: fresh.url });
      await admin.connect();
      await admin.query(`ALTER DATABASE ${fresh.name} SET default_transaction_read_only = on`);
      await admin.end();
      const store = await openPostgresStore({ url: fresh.url, shared: true });
      try {
        await expect(store.checkWritable()).rejects.toThrow(/read-only/);
        expect(await store.getSetting('writableCheck')).toBeUndefined();
      } finally {
        await store.close();
      }
    } finally {
      await fresh.drop();
    }
  });
});

describe('PostgresStore and U+0000', () => {
  // PostgreSQL text and jsonb cannot hold U+0000; SQLite can. Strings with it must round-trip,
  // and above all must not make a group commit fail for every device in it.
  const tricky = ['a\u0000b', '\u0000', '\uffff', '\uffff0', '\\u0000', '\\\u0000', 'plain'];

  it('keeps strings with U+0000 (and U+FFFF, and a literal backslash-u0000) in states, composite state, series, the log, command names and tags', async () => {
    await db.truncate();
    const store = await openPostgresStore({ url: db.url });
    try {
      const a = makeApp();
      await store.createApplication(a);
      const device = makeDevice(a.id, { tags: [{ key: 'where', value: 'x\u0000y' }] });
      const other = makeDevice(a.id);
      await store.createDevice(device);
      await store.createDevice(other);
      const data = Object.fromEntries(tricky.map((v, i) => [`s${i}`, v]));
      await store.applyBatch(
        writeBatch({
          states: [state(device.id, 1_700_000_000_000, data), state(other.id, 1_700_000_000_000, { n: 1 })],
        }),
      );
      const [stored] = await store.queryStates(device.id, { limit: 10, sortDirection: 'asc' });
      expect(stored?.data).toEqual(data);
      expect(await store.queryStates(other.id, { limit: 10, sortDirection: 'asc' })).toHaveLength(1);
      const composite = await store.getCompositeState(device.id);
      expect(Object.fromEntries(Object.entries(composite).map(([k, v]) => [k, v.value]))).toEqual(data);
      expect((await store.lastValues([device.id], ['s0'])).get(device.id)?.s0?.value).toBe('a\u0000b');
      const series = await store.querySeries({
        deviceIds: [device.id],
        attributes: null,
        start: 1_700_000_000_000,
        end: 1_700_000_000_999,
        resolution: 1000,
        aggregation: 'LAST',
      });
      expect(series.get(device.id)?.[0]?.data).toEqual(data);
      const [logged] = await store.listApplicationLog({ applicationId: a.id, limit: 10, deviceIds: [device.id] });
      expect(logged?.details.data).toEqual(data);

      // A command name (any string up to 255 characters) is written in the batch too.
      const command = {
        id: 'c1',
        applicationId: a.id,
        deviceId: device.id,
        name: 'go\u0000now\uffff',
        payload: { p: '\u0000' },
        time: 1_700_000_000_001,
        routedTo: [device.id],
        sentBy: 'api',
      };
      await store.applyBatch(writeBatch({ commands: [command] }));
      expect(await store.queryCommands(device.id, { limit: 10, sortDirection: 'asc' })).toEqual([command]);
      const [sent] = await store.listApplicationLog({ applicationId: a.id, limit: 1, kinds: ['command'] });
      expect(sent?.details).toMatchObject({ name: command.name, payload: command.payload });

      expect((await store.getDevice(device.id))?.tags).toEqual([{ key: 'where', value: 'x\u0000y' }]);
      const tagged = await store.listDevices(a.id, {
        tags: [{ key: 'where', value: 'x\u0000y' }],
        page: 0,
        perPage: 10,
      });
      expect(tagged.items.map((d) => d.id)).toEqual([device.id]);
    } finally {
      await store.close();
    }
  });
});
