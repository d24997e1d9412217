import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { described, Health } from '../schemas.js';

/** Whether the server answers: for load balancers and supervisors, without credentials. */
export const healthRoutes = (): FastifyPluginAsyncTypebox => async (app) => {
  app.get(
    '/health',
    {
      config: { public: true },
      schema: {
        summary: 'Whether the server answers',
        tags: ['health'],
        response: { 200: described(Health, 'The server answers.') },
      },
    },
    async () => ({ status: 'ok' as const }),
  );
};
