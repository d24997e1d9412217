/**
 * Accounts against a real server (spec: Accounts and API tokens): users, sign-in with a session
 * cookie and CSRF, roles per application, API tokens shown once and revoked at once (open
 * streams end), throttled failed sign-ins, and secrets never stored as sent.
 */
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, ok, startTestServer, type TestServer } from '../helpers/server.js';
import { openStream } from '../helpers/sse.js';

const PASSWORD = 'correct horse battery';

interface Browser {
  cookie: string;
  csrf: string;
  userId: string;
}

describe('accounts', () => {
  let server: TestServer;

  beforeAll(async () => {
    // Low limits, so the throttling test needs few attempts.
    server = await startTestServer({ secretCheckLimits: { failuresPerCredential: 3, failuresPerAddress: 1000 } });
  });
  afterAll(async () => {
    await server.stop();
  });

  async function makeUser(email: string, extra: Record<string, unknown> = {}): Promise<string> {
    const user = ok(await server.http<{ id: string }>('POST', '/users', { email, password: PASSWORD, ...extra }));
    return user.id;
  }

  async function signIn(email: string, password = PASSWORD): Promise<Browser & { setCookie: string }> {
    const res = await fetch(`${server.running.urls.http}/auth/user`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { user: { id: string }; csrfToken: string };
    const setCookie = res.headers.get('set-cookie') ?? '';
    return { cookie: setCookie.split(';')[0] as string, csrf: body.csrfToken, userId: body.user.id, setCookie };
  }

  /** A new user, signed in. */
  async function newUser(email: string): Promise<Browser> {
    await makeUser(email);
    return signIn(email);
  }

  /** A request as the browser sends it: the cookie, and the CSRF header when `csrf` is given. */
  function asBrowser(b: Browser, method: string, url: string, body?: unknown, csrf: string | null = b.csrf) {
    return server.http(method, url, body, null, { cookie: b.cookie, ...(csrf ? { 'x-csrf-token': csrf } : {}) });
  }

  it('makes users with a hashed password, one per email, and refuses short passwords by name', async () => {
    const id = await makeUser('Ada@Example.com', { name: 'Ada' });
    const got = await server.http<Record<string, unknown>>('GET', `/users/${id}`);
    expect(got.body).toMatchObject({ id, email: 'ada@example.com', name: 'Ada', admin: false });
    expect(got.body).not.toHaveProperty('passwordHash');
    const dup = await server.http('POST', '/users', { email: 'ADA@example.COM', password: PASSWORD });
    expect(dup).toMatchObject({ status: 409, body: { type: 'Conflict' } });
    const short = await server.http('POST', '/users', { email: 'bob@example.com', password: 'short' });
    expect(short).toMatchObject({
      status: 400,
      body: { type: 'Validation', message: expect.stringContaining('password') },
    });
  });

  it('signs in with an HttpOnly, SameSite=Strict cookie; a cookie request that changes something needs the CSRF token', async () => {
    await makeUser('carol@example.com');
    const b = await signIn('carol@example.com');
    expect(b.setCookie).toMatch(/^gh_session=[0-9a-f]{24}\.[A-Za-z0-9_-]{43}; /);
    expect(b.setCookie).toMatch(/HttpOnly/);
    expect(b.setCookie).toMatch(/SameSite=Strict/);
    expect(b.setCookie).toMatch(/Path=\//);
    expect(b.setCookie).not.toMatch(/Secure/); // plain HTTP here; over HTTPS the cookie is Secure

    const me = await asBrowser(b, 'GET', '/me', undefined, null);
    expect(me).toMatchObject({
      status: 200,
      body: { user: { email: 'carol@example.com' }, applications: [], csrfToken: b.csrf },
    });

    const without = await asBrowser(b, 'POST', '/applications', { name: 'Forged' }, null);
    expect(without).toMatchObject({
      status: 403,
      body: { type: 'Forbidden', message: expect.stringContaining('x-csrf-token') },
    });
    const wrong = await asBrowser(b, 'POST', '/applications', { name: 'Forged' }, `${b.csrf}x`);
    expect(wrong.status).toBe(403);
    const listed = await asBrowser(b, 'GET', '/applications', undefined, null);
    expect(listed.body).toMatchObject({ totalCount: 0 });

    const created = await asBrowser(b, 'POST', '/applications', { name: 'Carol farm' });
    expect(created.status).toBe(201);
    const appId = (created.body as { id: string }).id;
    // The creator owns it, and sees only it.
    const members = await asBrowser(b, 'GET', `/applications/${appId}/members`, undefined, null);
    expect(members.body).toMatchObject({ items: [{ userId: b.userId, email: 'carol@example.com', role: 'owner' }] });
    const mine = await asBrowser(b, 'GET', '/applications', undefined, null);
    expect((mine.body as { items: Array<{ id: string }> }).items.map((a) => a.id)).toEqual([appId]);
    // Another user's application does not exist for her.
    const other = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Not hers' }));
    expect((await asBrowser(b, 'GET', `/applications/${other.id}`, undefined, null)).status).toBe(404);
  });

  it('answers a wrong password and an unknown email alike, and throttles repeated failures with Retry-After', async () => {
    await makeUser('dave@example.com');
    const attempt = (email: string, password: string) =>
      fetch(`${server.running.urls.http}/auth/user`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email, password }),
      });
    const wrong = await attempt('dave@example.com', 'not the password');
    const unknown = await attempt('nobody@example.com', 'not the password');
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(await wrong.json()).toEqual(await unknown.json());
    await attempt('dave@example.com', 'wrong again 1');
    await attempt('dave@example.com', 'wrong again 2');
    // Past three failures for this account, even the right password waits.
    const throttled = await attempt('dave@example.com', PASSWORD);
    expect(throttled.status).toBe(429);
    expect(Number(throttled.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another account is not affected.
    await makeUser('erin@example.com');
    expect((await attempt('erin@example.com', PASSWORD)).status).toBe(200);
  });

  it('gives each role exactly its rights: a viewer reads and streams, an editor changes devices, an owner manages members and tokens', async () => {
    const owner = await newUser('owner1@example.com');
    const app = (await asBrowser(owner, 'POST', '/applications', { name: 'Roles' })).body as { id: string };
    const base = `/applications/${app.id}`;
    const token = async (role: string) =>
      ok(await asBrowser(owner, 'POST', `${base}/tokens`, { name: `${role} token`, role })) as {
        token: string;
        id: string;
      };
    const [viewer, editor, ownerToken] = [await token('viewer'), await token('editor'), await token('owner')];

    // The token is shown once: the list has none.
    const list = ok(await asBrowser(owner, 'GET', `${base}/tokens`, undefined, null), 200) as { items: object[] };
    expect(list.items).toHaveLength(3);
    for (const item of list.items) expect(item).not.toHaveProperty('token');

    const device = { name: 'sensor', attributes: [{ name: 't', dataType: 'number' }] };
    expect((await server.http('GET', `${base}/devices`, undefined, viewer.token)).status).toBe(200);
    expect((await server.http('POST', `${base}/devices`, device, viewer.token)).status).toBe(403);
    const made = await server.http<{ id: string }>('POST', `${base}/devices`, device, editor.token);
    expect(made.status).toBe(201);
    const dev = `${base}/devices/${made.body.id}`;
    expect((await server.http('POST', `${dev}/state`, { data: { t: 1 } }, viewer.token)).status).toBe(403);
    expect((await server.http('POST', `${dev}/state`, { data: { t: 1 } }, editor.token)).status).toBe(200);
    expect((await server.http('GET', `${dev}/state`, undefined, viewer.token)).status).toBe(200);
    expect((await server.http('POST', `${dev}/command`, { name: 'go' }, viewer.token)).status).toBe(403);
    const sent = await server.http<{ commandId: string }>('POST', `${dev}/command`, { name: 'go' }, editor.token);
    expect(sent.status).toBe(200);
    const history = await server.http<Array<{ sentBy: string }>>('GET', `${dev}/command`, undefined, viewer.token);
    expect(history.body[0]?.sentBy).toBe(`token:${editor.id}`);
    expect((await server.http('PATCH', base, { name: 'x' }, editor.token)).status).toBe(403);
    expect((await server.http('GET', `${base}/tokens`, undefined, editor.token)).status).toBe(403);
    expect(
      (await server.http('POST', `${base}/members`, { email: 'owner1@example.com', role: 'viewer' }, editor.token))
        .status,
    ).toBe(403);
    expect((await server.http('GET', `${base}/keys`, undefined, viewer.token)).status).toBe(403);
    expect((await server.http('POST', '/applications', { name: 'no' }, ownerToken.token)).status).toBe(403);
    expect((await server.http('GET', '/users', undefined, ownerToken.token)).status).toBe(403);

    // A viewer member, added by email, reads and streams but changes nothing.
    await makeUser('viewer1@example.com');
    const added = await server.http(
      'POST',
      `${base}/members`,
      { email: 'VIEWER1@example.com', role: 'viewer' },
      ownerToken.token,
    );
    expect(added).toMatchObject({ status: 201, body: { email: 'viewer1@example.com', role: 'viewer' } });
    const v = await signIn('viewer1@example.com');
    expect((await asBrowser(v, 'GET', `${dev}/compositeState`, undefined, null)).status).toBe(200);
    expect((await asBrowser(v, 'PATCH', dev, { name: 'renamed' })).status).toBe(403);
    const stream = await openStream(server, `${base}/events`, { token: null, headers: { cookie: v.cookie } });
    expect(stream.status).toBe(200);
    stream.close();

    // Tokens of one application do not exist in another.
    const elsewhere = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Elsewhere' }));
    expect(
      (await server.http('GET', `/applications/${elsewhere.id}/devices`, undefined, ownerToken.token)).status,
    ).toBe(404);
  });

  it('revokes a token at once: its next request is refused and its open stream ends with event: closed', async () => {
    const app = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Revoke' }));
    const made = ok(
      await server.http<{ id: string; token: string }>('POST', `/applications/${app.id}/tokens`, {
        name: 'ro',
        role: 'viewer',
      }),
    );
    const stream = await openStream(server, `/applications/${app.id}/events`, { token: made.token });
    expect(stream.status).toBe(200);
    expect(ok(await server.http('DELETE', `/applications/${app.id}/tokens/${made.id}`), 200)).toEqual({
      success: true,
    });
    const events = await stream.waitForEnd();
    expect(events.at(-1)).toMatchObject({ event: 'closed', json: { message: expect.stringContaining('revoked') } });
    const after = await server.http('GET', `/applications/${app.id}`, undefined, made.token);
    expect(after).toMatchObject({ status: 401, body: { type: 'Unauthorized' } });
    expect((await server.http('DELETE', `/applications/${app.id}/tokens/${made.id}`)).status).toBe(404);
  });

  it('refuses an expired token, and a token whose application was deleted', async () => {
    const app = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Expiry' }));
    const soon = new Date(Date.now() + 1500).toISOString();
    const brief = ok(
      await server.http<{ token: string; expiresAt: string }>('POST', `/applications/${app.id}/tokens`, {
        name: 'brief',
        role: 'viewer',
        expiresAt: soon,
      }),
    );
    expect(brief.expiresAt).toBe(soon);
    const past = await server.http('POST', `/applications/${app.id}/tokens`, {
      name: 'p',
      role: 'viewer',
      expiresAt: 1000,
    });
    expect(past).toMatchObject({ status: 400, body: { message: expect.stringContaining('expiresAt') } });
    expect((await server.http('GET', `/applications/${app.id}`, undefined, brief.token)).status).toBe(200);
    await eventually(async () => {
      const r = await server.http<{ message: string }>('GET', `/applications/${app.id}`, undefined, brief.token);
      return r.status === 401 && r.body.message.includes('expired') ? r : undefined;
    }, 5000);

    const lasting = ok(
      await server.http<{ token: string }>('POST', `/applications/${app.id}/tokens`, { name: 'l', role: 'owner' }),
    );
    expect(ok(await server.http('DELETE', `/applications/${app.id}`), 200)).toEqual({ success: true });
    expect((await server.http('GET', '/applications', undefined, lasting.token)).status).toBe(401);
  });

  it('keeps an owner: the last owner can be neither removed nor demoted', async () => {
    const b = await newUser('solo@example.com');
    const app = (await asBrowser(b, 'POST', '/applications', { name: 'Solo' })).body as { id: string };
    const self = `/applications/${app.id}/members/${b.userId}`;
    expect(await asBrowser(b, 'PATCH', self, { role: 'editor' })).toMatchObject({
      status: 409,
      body: { type: 'Conflict' },
    });
    expect((await asBrowser(b, 'DELETE', self)).status).toBe(409);
    const second = await makeUser('second@example.com');
    expect(
      (await asBrowser(b, 'POST', `/applications/${app.id}/members`, { email: 'second@example.com', role: 'owner' }))
        .status,
    ).toBe(201);
    expect(ok(await asBrowser(b, 'PATCH', self, { role: 'viewer' }), 200)).toMatchObject({ role: 'viewer' });
    // Now a viewer, the same session may no longer manage members.
    expect((await asBrowser(b, 'DELETE', `/applications/${app.id}/members/${second}`)).status).toBe(403);
  });

  it("ends a member's open stream when their role is taken away, and every session when the password changes", async () => {
    const owner = await newUser('own2@example.com');
    const app = (await asBrowser(owner, 'POST', '/applications', { name: 'Streams' })).body as { id: string };
    const viewerId = await makeUser('watcher@example.com');
    await asBrowser(owner, 'POST', `/applications/${app.id}/members`, { email: 'watcher@example.com', role: 'viewer' });
    const w = await signIn('watcher@example.com');
    const stream = await openStream(server, `/applications/${app.id}/events`, {
      token: null,
      headers: { cookie: w.cookie },
    });
    expect(stream.status).toBe(200);
    expect(ok(await asBrowser(owner, 'DELETE', `/applications/${app.id}/members/${viewerId}`), 200)).toEqual({
      success: true,
    });
    expect((await stream.waitForEnd()).at(-1)).toMatchObject({ event: 'closed' });
    expect((await asBrowser(w, 'GET', `/applications/${app.id}`, undefined, null)).status).toBe(404);

    expect(
      ok(await server.http('PATCH', `/users/${viewerId}`, { password: 'a new long password' }), 200),
    ).toMatchObject({ id: viewerId });
    expect(await asBrowser(w, 'GET', '/me', undefined, null)).toMatchObject({ status: 401 });
    expect((await signIn('watcher@example.com', 'a new long password')).userId).toBe(viewerId);
  });

  it('logs out with the CSRF token only, clearing the cookie; the session is gone afterwards', async () => {
    await makeUser('leaver@example.com');
    const b = await signIn('leaver@example.com');
    const forged = await asBrowser(b, 'POST', '/auth/logout', undefined, null);
    expect(forged.status).toBe(403);
    const res = await fetch(`${server.running.urls.http}/auth/logout`, {
      method: 'POST',
      headers: { cookie: b.cookie, 'x-csrf-token': b.csrf },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toMatch(/^gh_session=; Max-Age=0/);
    expect(await asBrowser(b, 'GET', '/me', undefined, null)).toMatchObject({
      status: 401,
      body: { message: expect.stringContaining('sign in again') },
    });
  });

  it('an admin user may do what the admin token may; other users may not manage users', async () => {
    await makeUser('root@example.com', { admin: true });
    const admin = await signIn('root@example.com');
    expect((await asBrowser(admin, 'GET', '/users', undefined, null)).status).toBe(200);
    const anyApp = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Operators see it' }));
    expect((await asBrowser(admin, 'GET', `/applications/${anyApp.id}`, undefined, null)).status).toBe(200);
    await makeUser('plain@example.com');
    const plain = await signIn('plain@example.com');
    expect((await asBrowser(plain, 'GET', '/users', undefined, null)).status).toBe(403);
    expect((await asBrowser(plain, 'POST', '/users', { email: 'x@example.com', password: PASSWORD })).status).toBe(403);
  });

  it('stores no password, token or session secret as sent', async () => {
    const app = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Hashes' }));
    const made = ok(
      await server.http<{ token: string }>('POST', `/applications/${app.id}/tokens`, { name: 'x', role: 'viewer' }),
    );
    await makeUser('hash@example.com');
    const b = await signIn('hash@example.com');
    await server.running.platform.drain();
    const db = new Database(`${server.dataDir}/gatehouse.db`, { readonly: true });
    try {
      const dump = JSON.stringify([
        db.prepare('SELECT * FROM api_tokens').all(),
        db.prepare('SELECT * FROM users').all(),
        db.prepare('SELECT * FROM sessions').all(),
      ]);
      expect(dump).not.toContain(made.token);
      expect(dump).not.toContain(made.token.slice(28));
      expect(dump).not.toContain(PASSWORD);
      expect(dump).not.toContain(b.cookie.split('.')[1]);
    } finally {
      db.close();
    }
  });
});
