/**
 * The REST side (spec: REST). Every route declares its schemas; authentication happens once in
 * an onRequest hook, authorization through the domain rule; every error leaves as
 * `{ type, message }` with its HTTP status.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError, type FastifyInstance, LogController } from 'fastify';
import { ERROR_TYPES, type ErrorType, GatehouseError } from '../core/errors.js';
import type { Platform } from '../core/platform.js';
import type { Principal } from '../domain/authorization.js';
import { MAX_PAYLOAD_BYTES } from '../domain/state.js';
import { appLogRoutes } from './routes/app-log.js';
import { applicationRoutes } from './routes/applications.js';
import { authRoutes } from './routes/auth.js';
import { dataQueryRoutes } from './routes/data-queries.js';
import { deviceDataRoutes } from './routes/device-data.js';
import { deviceRoutes } from './routes/devices.js';
import { keyRoutes } from './routes/keys.js';
import { streamRoutes } from './routes/streams.js';
import { StreamHub, type StreamHubOptions, unusedConnections } from './streams.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
  }
  interface FastifyInstance {
    /** Open live streams; `closeAll()` ends them (shutdown). */
    streams: StreamHub;
  }
  interface FastifyContextConfig {
    /** Routes anyone may call. */
    public?: boolean;
  }
}

export type Api = FastifyInstance extends infer _ ? ReturnType<typeof createApi> : never;

export function createApi(platform: Platform, options: { streams?: StreamHubOptions } = {}) {
  const app = Fastify({
    // The operator log. Requests are not logged one by one, failures are (the error handler), and
    // Fastify's own info lines ("Server listening at") only at debug: the command prints its own.
    loggerInstance: platform.logger.child(
      { component: 'http' },
      { level: platform.logger.level === 'info' ? 'warn' : platform.logger.level },
    ),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_PAYLOAD_BYTES,
    // Ids are matched by schema; keep unknown query keys out rather than silently dropping them.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.decorateRequest('principal', null);
  const streams = new StreamHub(platform.bus, options.streams);
  app.decorate('streams', streams);
  // Open streams, and connections that never sent a request, would keep close() waiting: end them first.
  const unused = unusedConnections(app.server);
  app.addHook('preClose', async () => {
    await streams.closeAll();
    unused.destroy();
  });
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config.public) return;
    if (!request.routeOptions.url) return; // unknown route: answered 404 by the not-found handler
    request.principal = await platform.authenticateBearer(request.headers.authorization, request.ip);
  });

  app.setErrorHandler((error: FastifyError | GatehouseError, request, reply) => {
    const { status, type, message } = describeError(error);
    // A 5xx is our fault: its cause goes to the operator log and never to the client.
    if (status >= 500) request.log.error({ err: error, method: request.method, url: request.url }, 'request failed');
    if (error instanceof GatehouseError && error.retryAfterSeconds !== undefined) {
      void reply.header('retry-after', String(error.retryAfterSeconds));
    }
    void reply.code(status).send({ type, message });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ type: 'NotFound', message: `no route ${request.method} ${request.url}` });
  });

  app.get('/health', { config: { public: true } }, async () => ({ status: 'ok' }));
  app.register(authRoutes(platform));
  app.register(applicationRoutes(platform));
  app.register(deviceRoutes(platform));
  app.register(keyRoutes(platform));
  app.register(deviceDataRoutes(platform));
  app.register(streamRoutes(platform, streams));
  app.register(appLogRoutes(platform));
  app.register(dataQueryRoutes(platform));
  return app;
}

const TYPE_BY_STATUS = new Map<number, ErrorType>(
  Object.entries(ERROR_TYPES).map(([type, status]) => [status, type as ErrorType]),
);

function describeError(error: FastifyError | GatehouseError): { status: number; type: string; message: string } {
  if (error instanceof GatehouseError) return { status: error.status, type: error.type, message: error.message };
  if (error.validation) {
    return {
      status: 400,
      type: 'Validation',
      message: `${error.validationContext ?? 'request'} ${error.message.replace(/^(body|querystring|params|headers)\s*/, '')}`,
    };
  }
  if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return { status: 413, type: 'PayloadTooLarge', message: `request body exceeds ${MAX_PAYLOAD_BYTES} bytes` };
  }
  const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
  if (status === 500) return { status, type: 'InternalError', message: 'internal error' };
  return { status, type: TYPE_BY_STATUS.get(status) ?? 'BadRequest', message: error.message };
}
