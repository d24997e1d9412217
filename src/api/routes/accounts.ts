/**
 * Users and sign-in (spec: Accounts and API tokens): `POST /auth/user` opens a browser session
 * (an HttpOnly, SameSite=Strict cookie), `POST /auth/logout` ends it, `GET /me` says who is
 * signed in, and operators manage users under `/users`.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { parse as parseCookie, serialize as serializeCookie } from 'cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Accounts, CSRF_HEADER, csrfMatches, publicUser, SESSION_COOKIE } from '../../core/accounts.js';
import { GatehouseError } from '../../core/errors.js';
import { iso } from '../../core/wire.js';
import type { StoredUser } from '../../domain/accounts.js';
import { principalId } from '../../domain/authorization.js';
import { Me, SignInBody, SignInReply, User, UserBody, UserParams, UserPatch } from '../account-schemas.js';
import { allow } from '../guard.js';
import { described, errorResponses, ListQuery, Page, Success } from '../schemas.js';
import { pageOf } from './paging.js';

export function presentUser(user: StoredUser) {
  const u = publicUser(user);
  return { ...u, creationDate: iso(u.creationDate), lastUpdated: iso(u.lastUpdated) };
}

/** The session cookie's value as sent, if any. */
export function sessionCookie(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  return header ? parseCookie(header)[SESSION_COOKIE] : undefined;
}

function setSessionCookie(request: FastifyRequest, reply: FastifyReply, value: string, maxAgeSeconds: number): void {
  void reply.header(
    'set-cookie',
    serializeCookie(SESSION_COOKIE, value, {
      httpOnly: true,
      sameSite: 'strict',
      secure: request.protocol === 'https',
      path: '/',
      maxAge: maxAgeSeconds,
    }),
  );
}

export const accountRoutes =
  (accounts: Accounts): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/auth/user',
      {
        config: { public: true },
        schema: {
          summary: 'Sign in',
          description:
            "Sets the `gh_session` cookie (HttpOnly, SameSite=Strict, Secure over HTTPS). Requests signed in by the cookie that change something must send the answer's `csrfToken` as `X-CSRF-Token`. Wrong email and wrong password are answered alike; failures are throttled per account and per address.",
          tags: ['auth'],
          body: SignInBody,
          response: {
            200: described(SignInReply, 'The user, the CSRF token of the session and when the session ends.'),
            ...errorResponses(400, 401, 413, 415, 429),
          },
        },
      },
      async (request, reply) => {
        const { email, password } = request.body;
        const { user, cookie, csrfToken, session } = await accounts.signIn(email, password, request.ip);
        setSessionCookie(request, reply, cookie, Math.floor((session.expiresAt - session.creationDate) / 1000));
        return { user: presentUser(user), csrfToken, expiresAt: iso(session.expiresAt) };
      },
    );

    app.post(
      '/auth/logout',
      {
        config: { public: true },
        schema: {
          summary: 'Sign out',
          description: "Ends the cookie's session (the request must carry `X-CSRF-Token`) and clears the cookie.",
          tags: ['auth'],
          response: { 200: described(Success, 'Signed out.'), ...errorResponses(400, 403, 413, 415) },
        },
      },
      async (request, reply) => {
        const cookie = sessionCookie(request);
        const found = cookie ? await accounts.session(cookie) : undefined;
        if (found) {
          // Ending a session changes state: a page of another site must not be able to do it.
          if (!csrfMatches(found.csrfToken, request.headers[CSRF_HEADER])) {
            throw new GatehouseError('Forbidden', `a missing or wrong ${CSRF_HEADER} header`);
          }
          await accounts.endSession(found.session.id);
        }
        setSessionCookie(request, reply, '', 0);
        return { success: true as const };
      },
    );

    app.get(
      '/me',
      {
        schema: {
          summary: 'Who the caller is',
          description: 'The kind of credential, its id, the user when signed in, and its roles per application.',
          tags: ['users'],
          response: { 200: described(Me, 'The caller.'), ...errorResponses(401, 404, 429) },
        },
      },
      async (request) => {
        const principal = request.principal;
        if (!principal) throw new GatehouseError('Unauthorized', 'authentication required');
        const userId =
          principal.kind === 'user'
            ? principal.userId
            : principal.kind === 'admin' && principal.via === 'user'
              ? principal.id
              : undefined;
        const applications =
          principal.kind === 'user'
            ? [...principal.roles].map(([applicationId, role]) => ({ applicationId, role }))
            : principal.kind === 'apiToken'
              ? [{ applicationId: principal.applicationId, role: principal.role }]
              : [];
        return {
          kind: principal.kind,
          id: principalId(principal),
          ...(userId ? { user: presentUser(await accounts.requireUser(userId)) } : {}),
          applications,
          ...(request.csrfToken ? { csrfToken: request.csrfToken } : {}),
        };
      },
    );

    app.post(
      '/users',
      {
        schema: {
          summary: 'Create a user',
          description: 'Operators only. The password (at least 10 characters) is stored as a salted hash.',
          tags: ['users'],
          body: UserBody,
          response: { 201: described(User, 'The new user.'), ...errorResponses(400, 401, 403, 409, 413, 415, 429) },
        },
      },
      async (request, reply) => {
        allow(request, { type: 'manageUsers' });
        return reply.code(201).send(presentUser(await accounts.createUser(request.body)));
      },
    );

    app.get(
      '/users',
      {
        schema: {
          summary: 'List users',
          tags: ['users'],
          querystring: ListQuery,
          response: {
            200: described(Page(User), 'A page of users, oldest first.'),
            ...errorResponses(400, 401, 403, 429),
          },
        },
      },
      async (request) => {
        allow(request, { type: 'manageUsers' });
        return pageOf(await accounts.listUsers(), request.query, presentUser);
      },
    );

    app.get(
      '/users/:userId',
      {
        schema: {
          summary: 'Get a user',
          tags: ['users'],
          params: UserParams,
          response: { 200: described(User, 'The user.'), ...errorResponses(401, 403, 404, 429) },
        },
      },
      async (request) => {
        allow(request, { type: 'manageUsers' });
        return presentUser(await accounts.requireUser(request.params.userId));
      },
    );

    app.patch(
      '/users/:userId',
      {
        schema: {
          summary: 'Change a user',
          description: 'A new password ends every session of the user.',
          tags: ['users'],
          params: UserParams,
          body: UserPatch,
          response: {
            200: described(User, 'The user as changed.'),
            ...errorResponses(400, 401, 403, 404, 409, 413, 415, 429),
          },
        },
      },
      async (request) => {
        allow(request, { type: 'manageUsers' });
        return presentUser(await accounts.updateUser(request.params.userId, request.body));
      },
    );

    app.delete(
      '/users/:userId',
      {
        schema: {
          summary: 'Delete a user',
          description: 'Removes the user with their memberships and sessions; their open streams end.',
          tags: ['users'],
          params: UserParams,
          response: { 200: described(Success, 'Deleted.'), ...errorResponses(400, 401, 403, 404, 413, 415, 429) },
        },
      },
      async (request) => {
        allow(request, { type: 'manageUsers' });
        await accounts.deleteUser(request.params.userId);
        return { success: true as const };
      },
    );
  };
