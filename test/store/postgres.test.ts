import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { openPostgresStore } from '../../src/store/postgres/postgres-store.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { storeContract } from './contract.js';
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
