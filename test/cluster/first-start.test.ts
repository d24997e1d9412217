/**
 * Three nodes started at once on a fresh database (docs/scale-out.md, "Nodes sharing Redis"):
 * start-up takes turns, so what a first start writes is written once. Every node starts, the
 * admin token works on each, and a device token issued by one node is accepted by the others
 * (they share one device-token secret).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createFleet, ok, type TestServer } from '../helpers/server.js';
import { type Node, Nodes } from './nodes.js';

describe('nodes starting together on a fresh database', () => {
  let database: TestDatabase;
  let nodes: Nodes;
  let started: Node[];

  beforeAll(async () => {
    database = await createTestDatabase();
    nodes = new Nodes(database.url);
    started = await Promise.all(['a', 'b', 'c'].map((name) => nodes.start(name)));
  }, 60_000);

  afterAll(async () => {
    await nodes?.stop();
    await database?.drop();
  }, 30_000);

  it('all start, share the admin token and one device-token secret', async () => {
    const [a, b, c] = started as [Node, Node, Node];
    for (const node of started) expect((await node.http('GET', '/ready')).status).toBe(200);
    const fleet = await createFleet(b as unknown as TestServer);
    const { token } = ok(
      await a.http<{ token: string }>(
        'POST',
        '/auth/device',
        { deviceId: fleet.standalone, key: fleet.key, secret: fleet.secret },
        '',
      ),
      200,
    );
    for (const node of [b, c]) {
      const posted = await node.http(
        'POST',
        `/applications/${fleet.applicationId}/devices/${fleet.standalone}/state`,
        { data: { temperature: 1 } },
        token,
      );
      expect(posted.status).toBe(200);
    }
  });
});
