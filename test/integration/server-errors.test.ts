/**
 * A fault in the server answers 500 `InternalError` without details, and its cause goes to the
 * operator log (docs/errors.md). The fault is injected into the real store of a real server.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

describe('server faults', () => {
  let server: TestServer;
  const lines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
        done();
      },
    });
    server = await startTestServer({ logger: createLogger('info', sink) });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('answers 500 without the cause, and logs the cause with the request', async () => {
    const store = server.running.platform.store;
    const original = store.listApplications;
    store.listApplications = () => Promise.reject(new Error('disk on fire: /var/lib/secret/path'));
    try {
      const answer = await server.http<{ type: string; message: string }>('GET', '/applications');
      expect(answer).toEqual({ status: 500, body: { type: 'InternalError', message: 'internal error' } });
    } finally {
      store.listApplications = original;
    }
    const logged = lines.find((l) => l.msg === 'request failed');
    expect(logged).toMatchObject({
      level: 50,
      component: 'http',
      method: 'GET',
      url: '/applications',
      err: expect.objectContaining({ message: 'disk on fire: /var/lib/secret/path' }),
    });
    // The bearer token never reaches the log.
    expect(JSON.stringify(lines)).not.toContain('test-admin-token');
  });
});
