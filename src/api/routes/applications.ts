import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Platform } from '../../core/platform.js';
import { allow } from '../guard.js';
import { presentApplication } from '../present.js';
import { Application, ApplicationBody, ApplicationPatch, AppParams, ListQuery, Page, Success } from '../schemas.js';
import { pageOf } from './paging.js';

export const applicationRoutes =
  (platform: Platform): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { registry } = platform;

    app.post(
      '/applications',
      { schema: { body: ApplicationBody, response: { 201: Application } } },
      async (request, reply) => {
        allow(request, { type: 'manage' });
        const created = await registry.createApplication(request.body);
        return reply.code(201).send(presentApplication(created));
      },
    );

    app.get(
      '/applications',
      { schema: { querystring: ListQuery, response: { 200: Page(Application) } } },
      async (request) => {
        allow(request, { type: 'manage' });
        return pageOf(await registry.listApplications(), request.query, presentApplication);
      },
    );

    app.get(
      '/applications/:applicationId',
      { schema: { params: AppParams, response: { 200: Application } } },
      async (request) => {
        allow(request, { type: 'manage' });
        return presentApplication(await registry.requireApplication(request.params.applicationId));
      },
    );

    app.patch(
      '/applications/:applicationId',
      { schema: { params: AppParams, body: ApplicationPatch, response: { 200: Application } } },
      async (request) => {
        allow(request, { type: 'manage' });
        return presentApplication(await registry.updateApplication(request.params.applicationId, request.body));
      },
    );

    app.delete(
      '/applications/:applicationId',
      { schema: { params: AppParams, response: { 200: Success } } },
      async (request) => {
        allow(request, { type: 'manage' });
        await registry.deleteApplication(request.params.applicationId);
        return { success: true as const };
      },
    );
  };
