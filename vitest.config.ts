import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration tests each start their own server on port 0; files run in parallel workers.
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'default',
          // client/test: the gateway SDK (workspace package @gatehouse/client) against a real server;
          // wire/test: the wire contract (workspace package @gatehouse/wire), pure units.
          include: ['test/**/*.test.ts', 'client/test/**/*.test.ts', 'wire/test/**/*.test.ts'],
        },
      },
      {
        extends: true,
        test: {
          // The REST suite once more with the server on PostgreSQL (a fresh database per file):
          // the wiring of --database-url end to end. The store itself: test/store/postgres.test.ts.
          name: 'postgres',
          include: ['test/integration/rest.test.ts'],
          env: { GATEHOUSE_TEST_STORE: 'postgres' },
        },
      },
    ],
  },
});
