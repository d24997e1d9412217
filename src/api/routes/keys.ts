import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Platform } from '../../core/platform.js';
import { allow } from '../guard.js';
import { presentKey } from '../present.js';
import {
  AppParams,
  described,
  errorResponses,
  Key,
  KeyBody,
  KeyParams,
  KeyWithSecret,
  ListQuery,
  Page,
  Success,
} from '../schemas.js';
import { pageOf } from './paging.js';

export const keyRoutes =
  (platform: Platform): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { registry } = platform;

    app.post(
      '/applications/:applicationId/keys',
      {
        schema: {
          summary: 'Create an access key',
          description: 'The answer holds the secret: the only time it is shown (it is stored as a salted hash).',
          tags: ['keys'],
          params: AppParams,
          body: KeyBody,
          response: {
            201: described(KeyWithSecret, 'The new key, with its secret.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
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
        schema: {
          summary: "List an application's access keys",
          tags: ['keys'],
          params: AppParams,
          querystring: ListQuery,
          response: { 200: described(Page(Key), 'A page of keys.'), ...errorResponses(400, 401, 403, 404, 429) },
        },
      },
      async (request) => {
        allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        await registry.requireApplication(request.params.applicationId);
        return pageOf(await registry.listKeys(request.params.applicationId), request.query, presentKey);
      },
    );

    app.get(
      '/applications/:applicationId/keys/:keyId',
      {
        schema: {
          summary: 'Get an access key',
          tags: ['keys'],
          params: KeyParams,
          response: { 200: described(Key, 'The key (without its secret).'), ...errorResponses(401, 403, 404, 429) },
        },
      },
      async (request) => {
        allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        return presentKey(await registry.requireKey(request.params.applicationId, request.params.keyId));
      },
    );

    app.patch(
      '/applications/:applicationId/keys/:keyId',
      {
        schema: {
          summary: 'Change an access key',
          tags: ['keys'],
          params: KeyParams,
          body: KeyBody,
          response: {
            200: described(Key, 'The key as changed.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        const { applicationId, keyId } = request.params;
        return presentKey(await registry.updateKey(applicationId, keyId, request.body));
      },
    );

    app.delete(
      '/applications/:applicationId/keys/:keyId',
      {
        schema: {
          summary: 'Delete an access key',
          tags: ['keys'],
          params: KeyParams,
          response: { 200: described(Success, 'Deleted.'), ...errorResponses(400, 401, 403, 404, 413, 415, 429) },
        },
      },
      async (request) => {
        allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        await registry.deleteKey(request.params.applicationId, request.params.keyId);
        return { success: true as const };
      },
    );
  };
