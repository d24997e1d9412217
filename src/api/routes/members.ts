/**
 * An application's members and API tokens (spec: Accounts and API tokens). Owners manage both;
 * every member may read the member list. A token is shown once, by the POST that makes it.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Accounts } from '../../core/accounts.js';
import type { Registry } from '../../core/registry.js';
import { iso } from '../../core/wire.js';
import type { ApiToken as ApiTokenModel, Membership, StoredUser } from '../../domain/accounts.js';
import {
  ApiToken,
  ApiTokenBody,
  ApiTokenWithSecret,
  Member,
  MemberBody,
  MemberParams,
  MemberPatch,
  TokenParams,
} from '../account-schemas.js';
import { allow } from '../guard.js';
import { AppParams, described, errorResponses, ListQuery, Page, Success } from '../schemas.js';
import { pageOf } from './paging.js';

function presentMember(m: Membership & { user: StoredUser }) {
  return { userId: m.userId, email: m.user.email, name: m.user.name, role: m.role, creationDate: iso(m.creationDate) };
}

function presentToken(t: ApiTokenModel) {
  return {
    id: t.id,
    name: t.name,
    role: t.role ?? 'owner',
    expiresAt: t.expiresAt === null ? null : iso(t.expiresAt),
    creationDate: iso(t.creationDate),
  };
}

export const memberRoutes =
  (accounts: Accounts, registry: Registry): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/applications/:applicationId/members',
      {
        schema: {
          summary: 'List members',
          description: 'Every member may read the list.',
          tags: ['members'],
          params: AppParams,
          querystring: ListQuery,
          response: {
            200: described(Page(Member), 'A page of members, oldest first.'),
            ...errorResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        const { applicationId } = request.params;
        allow(request, { type: 'readApplication', applicationId });
        await registry.requireApplication(applicationId);
        return pageOf(await accounts.listMembers(applicationId), request.query, presentMember);
      },
    );

    app.post(
      '/applications/:applicationId/members',
      {
        schema: {
          summary: 'Add a member',
          description: 'Owners only; the user must exist (by email).',
          tags: ['members'],
          params: AppParams,
          body: MemberBody,
          response: {
            201: described(Member, 'The new member.'),
            ...errorResponses(400, 401, 403, 404, 409, 413, 415, 429),
          },
        },
      },
      async (request, reply) => {
        const { applicationId } = request.params;
        allow(request, { type: 'ownApplication', applicationId });
        await registry.requireApplication(applicationId);
        const member = await accounts.addMember(applicationId, request.body.email, request.body.role);
        return reply.code(201).send(presentMember(member));
      },
    );

    app.patch(
      '/applications/:applicationId/members/:userId',
      {
        schema: {
          summary: "Change a member's role",
          description: 'Owners only; an application keeps at least one owner.',
          tags: ['members'],
          params: MemberParams,
          body: MemberPatch,
          response: {
            200: described(Member, 'The member as changed.'),
            ...errorResponses(400, 401, 403, 404, 409, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const { applicationId, userId } = request.params;
        allow(request, { type: 'ownApplication', applicationId });
        return presentMember(await accounts.changeRole(applicationId, userId, request.body.role));
      },
    );

    app.delete(
      '/applications/:applicationId/members/:userId',
      {
        schema: {
          summary: 'Remove a member',
          description: 'Owners only; an application keeps at least one owner.',
          tags: ['members'],
          params: MemberParams,
          response: {
            200: described(Success, 'Removed; their open streams end.'),
            ...errorResponses(400, 401, 403, 404, 409, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const { applicationId, userId } = request.params;
        allow(request, { type: 'ownApplication', applicationId });
        await accounts.removeMember(applicationId, userId);
        return { success: true as const };
      },
    );

    app.get(
      '/applications/:applicationId/tokens',
      {
        schema: {
          summary: 'List API tokens',
          description: 'Owners only.',
          tags: ['members'],
          params: AppParams,
          querystring: ListQuery,
          response: {
            200: described(Page(ApiToken), 'A page of tokens, without their secrets.'),
            ...errorResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        const { applicationId } = request.params;
        allow(request, { type: 'ownApplication', applicationId });
        await registry.requireApplication(applicationId);
        return pageOf(await accounts.listTokens(applicationId), request.query, presentToken);
      },
    );

    app.post(
      '/applications/:applicationId/tokens',
      {
        schema: {
          summary: 'Create an API token',
          description: 'Owners only. The token acts only in this application, with this role.',
          tags: ['members'],
          params: AppParams,
          body: ApiTokenBody,
          response: {
            201: described(ApiTokenWithSecret, 'The new token, with its value: the only time it is shown.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request, reply) => {
        const { applicationId } = request.params;
        allow(request, { type: 'ownApplication', applicationId });
        await registry.requireApplication(applicationId);
        const { name, role, expiresAt } = request.body;
        const expires = expiresAt === undefined || expiresAt === null ? null : new Date(expiresAt).getTime();
        const { token, record } = await accounts.createToken({ name, role, applicationId, expiresAt: expires });
        // The only time the token leaves the server: it is stored as a salted hash.
        return reply.code(201).send({ ...presentToken(record), token });
      },
    );

    app.delete(
      '/applications/:applicationId/tokens/:tokenId',
      {
        schema: {
          summary: 'Revoke an API token',
          description: 'Owners only.',
          tags: ['members'],
          params: TokenParams,
          response: {
            200: described(Success, 'Revoked at once; streams opened with it end.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const { applicationId, tokenId } = request.params;
        allow(request, { type: 'ownApplication', applicationId });
        await accounts.revokeToken(applicationId, tokenId);
        return { success: true as const };
      },
    );
  };
