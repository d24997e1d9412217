/**
 * Failed secret checks counted across nodes (docs/scale-out.md, "Topology"): two real nodes
 * sharing Redis and PostgreSQL. Wrong secrets for one access key sent to the nodes in turn are
 * throttled once the key's failures on both together reach its limit (10 a minute), not 10 on
 * each.
 *
 * Needs the built CLI (`npm run build`), PostgreSQL and Redis (`.ci/run` starts both).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createFleet, type SeedFleet, type TestServer } from '../helpers/server.js';
import { type Node, Nodes } from './nodes.js';

describe('failed secret checks on nodes sharing Redis', () => {
  let database: TestDatabase;
  let nodes: Nodes;
  let a: Node;
  let b: Node;
  let fleet: SeedFleet;

  beforeAll(async () => {
    database = await createTestDatabase();
    nodes = new Nodes(database.url);
    a = await nodes.start('a');
    b = await nodes.start('b');
    fleet = await createFleet(a as unknown as TestServer);
  }, 60_000);

  afterAll(async () => {
    await nodes?.stop();
    await database?.drop();
  }, 30_000);

  it('throttle an access key once its failures on every node together reach the limit', async () => {
    const statuses: number[] = [];
    for (let i = 1; i <= 16; i++) {
      const node = i % 2 === 1 ? a : b;
      const body = { deviceId: fleet.standalone, key: fleet.key, secret: `wrong secret ${i}` };
      statuses.push((await node.http('POST', '/auth/device', body, '')).status);
    }
    // Ten failures in all, five on each node, then each node knows the total once its own next
    // failure is counted: at most one more check each.
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(12);
    expect(statuses.slice(-4)).toEqual([429, 429, 429, 429]);
    // The right secret is throttled too while the window lasts: the limit is the key's.
    const right = { deviceId: fleet.standalone, key: fleet.key, secret: fleet.secret };
    expect((await b.http('POST', '/auth/device', right, '')).status).toBe(429);
  }, 30_000);
});
