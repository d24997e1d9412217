/**
 * The REST side (spec: REST). Every route declares its schemas; authentication happens once in
 * an onRequest hook, authorization through the domain rule; every error leaves as
 * `{ type, message }` with its HTTP status.
 */
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError, type FastifyInstance, LogController } from 'fastify';
import { GatehouseError } from '../core/errors.js';
import type { Platform } from '../core/platform.js';
import type { Principal } from '../domain/authorization.js';
import { MAX_PAYLOAD_BYTES } from '../domain/state.js';
import { clip, describeError, firstPath, frameworkError, isNonFinite, isPrototypeKey } from './errors.js';
import { idleOps, installOps, type Ops } from './ops.js';
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

export function createApi(platform: Platform, options: { streams?: StreamHubOptions; ops?: Ops } = {}) {
  const app = Fastify({
    // The operator log. Requests are not logged one by one, failures are (the error handler), and
    // Fastify's own info lines ("Server listening at") only at debug: the command prints its own.
    loggerInstance: platform.logger.child(
      { component: 'http' },
      { level: platform.logger.level === 'info' ? 'warn' : platform.logger.level },
    ),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_PAYLOAD_BYTES,
    // Unknown body fields are refused by the schemas (`additionalProperties: false`), never
    // dropped; query schemas allow unknown keys, which the handlers do not read (schemas.ts, Query).
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
    // A path Fastify cannot route (bad percent-encoding, a segment longer than any id) is
    // answered in the API's error shape too.
    frameworkErrors: frameworkError,
  }).withTypeProvider<TypeBoxTypeProvider>();

  // JSON bodies: a syntax error names the body; a `__proto__` or `constructor.prototype` key
  // anywhere is refused with its path (a naive merge would turn it into a prototype change).
  // Every route but state (which reads raw bytes) takes JSON and nothing else: other types are 415.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, text, done) => {
    let body: unknown;
    try {
      body = JSON.parse(text as string);
    } catch (err) {
      done(new GatehouseError('Validation', `body is not valid JSON: ${(err as Error).message}`), undefined);
      return;
    }
    const forbidden = firstPath(body, 'body', isPrototypeKey);
    if (forbidden) done(new GatehouseError('Validation', `${forbidden} is a key that is not accepted`), undefined);
    else done(null, body);
  });

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

  // After validation: a number no schema bound can catch (see isNonFinite) is refused by its path.
  app.addHook('preHandler', async (request) => {
    const where = firstPath(request.query, 'querystring', isNonFinite) ?? firstPath(request.body, 'body', isNonFinite);
    if (where) throw new GatehouseError('Validation', `${where} must be a finite number`);
  });

  app.setErrorHandler((error: FastifyError | GatehouseError, request, reply) => {
    const { status, type, message } = describeError(error, request);
    // A 5xx is our fault: its cause goes to the operator log and never to the client.
    if (status >= 500) {
      request.log.error(
        { event: 'requestFailed', err: error, method: request.method, url: request.url },
        'request failed',
      );
    }
    if (error instanceof GatehouseError && error.retryAfterSeconds !== undefined) {
      void reply.header('retry-after', String(error.retryAfterSeconds));
    }
    void reply.code(status).send({ type, message });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ type: 'NotFound', message: `no route ${request.method} ${clip(request.url, 200)}` });
  });

  app.get('/health', { config: { public: true } }, async () => ({ status: 'ok' }));
  // /ready and /metrics, and the hooks that count REST traffic (docs/operations.md).
  installOps(app, options.ops ?? idleOps(platform));
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
