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
import { ErrorBody, ListQuery, Page, Success } from '../schemas.js';
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

const ERRORS = { 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody, 429: ErrorBody };

export const accountRoutes =
  (accounts: Accounts): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/auth/user',
      { config: { public: true }, schema: { body: SignInBody, response: { 200: SignInReply, ...ERRORS } } },
      async (request, reply) => {
        const { email, password } = request.body;
        const { user, cookie, csrfToken, session } = await accounts.signIn(email, password, request.ip);
        setSessionCookie(request, reply, cookie, Math.floor((session.expiresAt - session.creationDate) / 1000));
        return { user: presentUser(user), csrfToken, expiresAt: iso(session.expiresAt) };
      },
    );

    app.post(
      '/auth/logout',
      { config: { public: true }, schema: { response: { 200: Success, ...ERRORS } } },
      async (request, reply) => {
        const cookie = sessionCookie(request);
        const found = cookie ? await accounts.session(cookie) : undefined;
        if (found) {
          // Ending a session changes state: a page of another site must not be able to do it.
          const sent = request.headers[CSRF_HEADER];
          if (!csrfMatches(found.csrfToken, Array.isArray(sent) ? sent[0] : sent)) {
            throw new GatehouseError('Forbidden', `a missing or wrong ${CSRF_HEADER} header`);
          }
          await accounts.endSession(found.session.id);
        }
        setSessionCookie(request, reply, '', 0);
        return { success: true as const };
      },
    );

    app.get('/me', { schema: { response: { 200: Me, ...ERRORS } } }, async (request) => {
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
    });

    app.post('/users', { schema: { body: UserBody, response: { 201: User, ...ERRORS } } }, async (request, reply) => {
      allow(request, { type: 'manageUsers' });
      return reply.code(201).send(presentUser(await accounts.createUser(request.body)));
    });

    app.get(
      '/users',
      { schema: { querystring: ListQuery, response: { 200: Page(User), ...ERRORS } } },
      async (request) => {
        allow(request, { type: 'manageUsers' });
        return pageOf(await accounts.listUsers(), request.query, presentUser);
      },
    );

    app.get(
      '/users/:userId',
      { schema: { params: UserParams, response: { 200: User, ...ERRORS } } },
      async (request) => {
        allow(request, { type: 'manageUsers' });
        return presentUser(await accounts.requireUser(request.params.userId));
      },
    );

    app.patch(
      '/users/:userId',
      { schema: { params: UserParams, body: UserPatch, response: { 200: User, ...ERRORS } } },
      async (request) => {
        allow(request, { type: 'manageUsers' });
        return presentUser(await accounts.updateUser(request.params.userId, request.body));
      },
    );

    app.delete(
      '/users/:userId',
      { schema: { params: UserParams, response: { 200: Success, ...ERRORS } } },
      async (request) => {
        allow(request, { type: 'manageUsers' });
        await accounts.deleteUser(request.params.userId);
        return { success: true as const };
      },
    );
  };
