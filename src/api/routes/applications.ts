import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Platform } from '../../core/platform.js';
import { applicationScope } from '../../domain/authorization.js';
import { allow } from '../guard.js';
import { presentApplication } from '../present.js';
import {
  Application,
  ApplicationBody,
  ApplicationPatch,
  AppParams,
  described,
  errorResponses,
  ListQuery,
  Page,
  Success,
} from '../schemas.js';
import { pageOf } from './paging.js';

export const applicationRoutes =
  (platform: Platform): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { registry } = platform;

    app.post(
      '/applications',
      {
        schema: {
          summary: 'Create an application',
          tags: ['applications'],
          body: ApplicationBody,
          response: {
            201: described(Application, 'The new application.'),
            ...errorResponses(400, 401, 403, 413, 415, 429),
          },
        },
      },
      async (request, reply) => {
        const principal = allow(request, { type: 'createApplication' });
        const created = await registry.createApplication(request.body);
        // Its maker owns it; an operator needs no membership to manage it.
        if (principal.kind === 'user') await platform.accounts.addOwner(created.id, principal.userId);
        return reply.code(201).send(presentApplication(created));
      },
    );

    app.get(
      '/applications',
      {
        schema: {
          summary: 'List applications',
          tags: ['applications'],
          querystring: ListQuery,
          response: {
            200: described(Page(Application), 'A page of applications.'),
            ...errorResponses(400, 401, 403, 429),
          },
        },
      },
      async (request) => {
        const scope = applicationScope(allow(request, { type: 'listApplications' }));
        const all = await registry.listApplications();
        const visible = scope === null ? all : all.filter((a) => scope.includes(a.id));
        return pageOf(visible, request.query, presentApplication);
      },
    );

    app.get(
      '/applications/:applicationId',
      {
        schema: {
          summary: 'Get an application',
          tags: ['applications'],
          params: AppParams,
          response: { 200: described(Application, 'The application.'), ...errorResponses(401, 403, 404, 429) },
        },
      },
      async (request) => {
        allow(request, { type: 'readApplication', applicationId: request.params.applicationId });
        return presentApplication(await registry.requireApplication(request.params.applicationId));
      },
    );

    app.patch(
      '/applications/:applicationId',
      {
        schema: {
          summary: 'Change an application',
          tags: ['applications'],
          params: AppParams,
          body: ApplicationPatch,
          response: {
            200: described(Application, 'The application as changed.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        allow(request, { type: 'ownApplication', applicationId: request.params.applicationId });
        return presentApplication(await registry.updateApplication(request.params.applicationId, request.body));
      },
    );

    app.delete(
      '/applications/:applicationId',
      {
        schema: {
          summary: 'Delete an application, with its devices, keys and data',
          tags: ['applications'],
          params: AppParams,
          response: {
            200: described(Success, 'Deleted.'),
            // A DELETE may carry a body: it is parsed (and refused) as on any other route.
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        allow(request, { type: 'ownApplication', applicationId: request.params.applicationId });
        await registry.deleteApplication(request.params.applicationId);
        return { success: true as const };
      },
    );
  };
