import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Platform } from '../../core/platform.js';
import { allow } from '../guard.js';
import { presentKey } from '../present.js';
import { AppParams, Key, KeyBody, KeyParams, KeyWithSecret, ListQuery, Page, Success } from '../schemas.js';
import { pageOf } from './paging.js';

export const keyRoutes =
  (platform: Platform): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { registry } = platform;

    app.post(
      '/applications/:applicationId/keys',
      { schema: { params: AppParams, body: KeyBody, response: { 201: KeyWithSecret } } },
      async (request, reply) => {
        allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        const { key, secret } = await registry.createKey(request.params.applicationId, request.body);
        // The only time the secret leaves the server: it is stored as a salted hash.
        return reply.code(201).send({ ...presentKey(key), secret });
      },
    );

    app.get(
      '/applications/:applicationId/keys',
      {
        schema: { params: AppParams, querystring: ListQuery, response: { 200: Page(Key) } },
      },
      async (request) => {
        allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        await registry.requireApplication(request.params.applicationId);
        return pageOf(await registry.listKeys(request.params.applicationId), request.query, presentKey);
      },
    );

    app.get(
      '/applications/:applicationId/keys/:keyId',
      { schema: { params: KeyParams, response: { 200: Key } } },
      async (request) => {
        allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        return presentKey(await registry.requireKey(request.params.applicationId, request.params.keyId));
      },
    );

    app.patch(
      '/applications/:applicationId/keys/:keyId',
      { schema: { params: KeyParams, body: KeyBody, response: { 200: Key } } },
      async (request) => {
        allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        const { applicationId, keyId } = request.params;
        return presentKey(await registry.updateKey(applicationId, keyId, request.body));
      },
    );

    app.delete(
      '/applications/:applicationId/keys/:keyId',
      { schema: { params: KeyParams, response: { 200: Success } } },
      async (request) => {
        allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        await registry.deleteKey(request.params.applicationId, request.params.keyId);
        return { success: true as const };
      },
    );
  };
