import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // client/test: the gateway SDK (workspace package @gatehouse/client) against a real server;
    // wire/test: the wire contract (workspace package @gatehouse/wire), pure units.
    include: ['test/**/*.test.ts', 'client/test/**/*.test.ts', 'wire/test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Integration tests each start their own server on port 0; files run in parallel workers.
    pool: 'forks',
  },
});
