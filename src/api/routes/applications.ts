import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Platform } from '../../core/platform.js';
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
        allow(request, { type: 'manage' });
        const created = await registry.createApplication(request.body);
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
        allow(request, { type: 'manage' });
        return pageOf(await registry.listApplications(), request.query, presentApplication);
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
        allow(request, { type: 'manage' });
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
        allow(request, { type: 'manage' });
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
        allow(request, { type: 'manage' });
        await registry.deleteApplication(request.params.applicationId);
        return { success: true as const };
      },
    );
  };
