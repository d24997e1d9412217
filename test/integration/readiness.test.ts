/**
 * GET /health and GET /ready on a real server (docs/operations.md): ready once started; not
 * ready, naming the reason, once its database cannot be written (the store is closed under
 * the running server) or the last group commit failed (another connection held the write lock),
 * while /health still answers; ready again after a commit succeeds; and not ready from the
 * moment shutdown begins.
 */
import path from 'node:path';
import { Writable } from 'node:stream';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { DATABASE_FILENAME } from '../../src/store/sqlite/sqlite-store.js';
import { createFleet, ok, startTestServer, type TestServer } from '../helpers/server.js';

describe('GET /health and GET /ready', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  const get = async (path: string) => {
    const res = await fetch(`${(server as TestServer).running.urls.http}${path}`);
    return { status: res.status, cacheControl: res.headers.get('cache-control'), body: await res.json() };
  };

  it('are public and answer 200 once the server has started', async () => {
    server = await startTestServer();
    expect(await get('/health')).toMatchObject({ status: 200, body: { status: 'ok' } });
    expect(await get('/ready')).toEqual({ status: 200, cacheControl: 'no-store', body: { status: 'ready' } });
  });

  it('answer 503 naming the database while it cannot be written, and the failed commit once one failed; /health stays 200', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
        done();
      },
    });
    server = await startTestServer({ logger: createLogger('error', sink) });
    const fleet = await createFleet(server);
    expect((await get('/ready')).status).toBe(200);

    // The database connection closes under the running server.
    await server.running.platform.store.close();
    const unwritable = await get('/ready');
    expect(unwritable).toEqual({
      status: 503,
      cacheControl: 'no-store',
      body: {
        type: 'Unavailable',
        message: 'not ready: the database cannot take a write (the cause is in the operator log)',
        reasons: [
          {
            code: 'databaseNotWritable',
            message: 'the database cannot take a write (the cause is in the operator log)',
          },
        ],
      },
    });
    expect(await get('/health')).toMatchObject({ status: 200, body: { status: 'ok' } });

    // A state cannot be committed: the group commit fails, and readiness says so too.
    const posted = await server.http('POST', `/applications/${fleet.applicationId}/devices/${fleet.standalone}/state`, {
      data: { temperature: 1 },
    });
    expect(posted.status).toBe(500);
    const failed = await get('/ready');
    expect(failed.status).toBe(503);
    expect((failed.body as { reasons: Array<{ code: string }> }).reasons.map((r) => r.code)).toEqual([
      'databaseNotWritable',
      'lastCommitFailed',
    ]);

    // The cause is in the operator log, once, however often /ready was asked.
    const causes = lines.filter((l) => l.event === 'databaseNotWritable');
    expect(causes).toHaveLength(1);
    expect(causes[0]).toMatchObject({
      level: 50,
      component: 'ops',
      err: expect.objectContaining({ message: expect.stringContaining('not open') }),
    });
    expect(lines.some((l) => l.msg === 'group commit failed')).toBe(true);
  });

  it('is not ready from the moment shutdown begins', async () => {
    server = await startTestServer();
    const running = server.running;
    expect(await running.readiness.check()).toEqual([]);
    // The server's own stop: the helper's first waits for its clients to end.
    const stopping = running.stop();
    expect(await running.readiness.check()).toEqual([{ code: 'shuttingDown', message: 'the server is shutting down' }]);
    await stopping;
  });
});

describe('GET /ready with a group commit that failed and a database that recovered', () => {
  it('is ready again once a later group commit succeeds', async () => {
    // The failed commit is logged at error level; this test does not read the log.
    const server = await startTestServer({ logger: createLogger('silent') });
    const other = new Database(path.join(server.dataDir, DATABASE_FILENAME));
    try {
      const fleet = await createFleet(server);
      const post = (temperature: number) =>
        server.http('POST', `/applications/${fleet.applicationId}/devices/${fleet.standalone}/state`, {
          data: { temperature },
        });
      // Another process holds the write lock: the commit waits busy_timeout (5 s), then fails.
      other.exec('BEGIN IMMEDIATE');
      expect((await post(1)).status).toBe(500);
      other.exec('ROLLBACK');
      // The database takes writes again, but the last commit failed until one succeeds.
      expect((await server.running.readiness.check()).map((r) => r.code)).toEqual(['lastCommitFailed']);
      ok(await post(2), 200);
      const res = await fetch(`${server.running.urls.http}/ready`);
      expect({ status: res.status, body: await res.json() }).toEqual({ status: 200, body: { status: 'ready' } });
    } finally {
      other.close();
      await server.stop();
    }
  });
});
