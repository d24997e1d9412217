/**
 * The REST side (spec: REST). Every route declares its schemas, answers and errors included: the
 * API reference at /openapi.json and /docs is generated from them. Authentication happens once in
 * an onRequest hook, authorization through the domain rule; every error leaves as
 * `{ type, message }` with its HTTP status.
 */
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, {
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
  LogController,
  type RouteOptions,
} from 'fastify';
import { CSRF_HEADER, csrfMatches } from '../core/accounts.js';
import { GatehouseError } from '../core/errors.js';
import type { Platform } from '../core/platform.js';
import { Dashboards } from '../dashboards/dashboards.js';
import type { Principal } from '../domain/authorization.js';
import { MAX_PAYLOAD_BYTES } from '../domain/state.js';
import type { WorkflowEngine } from '../workflows/engine.js';
import type { Flows } from '../workflows/flows.js';
import type { Webhooks } from '../workflows/webhooks.js';
import { consoleStaticOptions, findConsoleDir, serveConsole } from './console.js';
import { clip, describeError, firstPath, frameworkError, isNonFinite, isPrototypeKey } from './errors.js';
import { docsOptions, markReferenceRoutes, OPENAPI_PATH, openApiOptions } from './openapi.js';
import { idleOps, installOpsHooks, type Ops, opsRoutes } from './ops.js';
import { accountRoutes, sessionCookie } from './routes/accounts.js';
import { appLogRoutes } from './routes/app-log.js';
import { applicationRoutes } from './routes/applications.js';
import { authRoutes } from './routes/auth.js';
import { dashboardRoutes } from './routes/dashboards.js';
import { dataQueryRoutes } from './routes/data-queries.js';
import { deviceDataRoutes } from './routes/device-data.js';
import { deviceRoutes } from './routes/devices.js';
import { flowRoutes } from './routes/flows.js';
import { healthRoutes } from './routes/health.js';
import { keyRoutes } from './routes/keys.js';
import { memberRoutes } from './routes/members.js';
import { streamRoutes } from './routes/streams.js';
import { webhookRoutes } from './routes/webhooks.js';
import { StreamHub, type StreamHubOptions, unusedConnections } from './streams.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | null;
    /** The browser session the request came with (cookie), if it came with one. */
    sessionId: string | null;
    /** That session's CSRF token, for `GET /me` to hand back to the page. */
    csrfToken: string | null;
  }
  interface FastifyInstance {
    /** Open live streams; `closeAll()` ends them (shutdown). */
    streams: StreamHub;
    /** Every route added to this API, in order, however it was added: what the API reference must describe. */
    registeredRoutes: readonly RouteOptions[];
  }
  interface FastifyContextConfig {
    /** Routes anyone may call. */
    public?: boolean;
  }
}

export type Api = FastifyInstance extends infer _ ? ReturnType<typeof createApi> : never;

export function createApi(
  platform: Platform,
  options: {
    streams?: StreamHubOptions;
    workflows?: { flows: Flows; engine: WorkflowEngine; webhooks?: Webhooks };
    ops?: Ops;
    /** The built web console's folder; default: dist/web when built; null: none. */
    consoleDir?: string | null;
    /** Load balancers whose X-Forwarded-For gives `request.ip` (config `trustedProxies`). */
    trustedProxies?: string[];
  } = {},
) {
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
    ...(options.trustedProxies?.length ? { trustProxy: options.trustedProxies } : {}),
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Before any route: every route is recorded, and the reference's own routes are made public.
  const registeredRoutes: RouteOptions[] = [];
  app.decorate('registeredRoutes', registeredRoutes);
  app.addHook('onRoute', (route) => {
    registeredRoutes.push(route);
    markReferenceRoutes(route);
  });

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
  app.decorateRequest('sessionId', null);
  app.decorateRequest('csrfToken', null);
  const streams = new StreamHub(platform.bus, options.streams);
  app.decorate('streams', streams);
  platform.accounts.onChange(() => streams.recheck());
  // Open streams, and connections that never sent a request, would keep close() waiting: end them first.
  const unused = unusedConnections(app.server);
  app.addHook('preClose', async () => {
    await streams.closeAll();
    unused.destroy();
  });
  app.addHook('onRequest', async (request) => {
    if (request.routeOptions.config.public) return;
    if (!request.routeOptions.url) return; // unknown route: answered 404 by the not-found handler
    await authenticate(platform, request);
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
  // The console's pages and files, where no API route matched (src/api/console.ts).
  const consoleDir = options.consoleDir === undefined ? findConsoleDir() : (options.consoleDir ?? undefined);
  if (consoleDir) app.register(fastifyStatic, consoleStaticOptions(consoleDir));
  app.setNotFoundHandler((request, reply) => {
    if (consoleDir && serveConsole(consoleDir, request, reply)) return;
    void reply.code(404).send({ type: 'NotFound', message: `no route ${request.method} ${clip(request.url, 200)}` });
  });

  // The hooks that count REST traffic, on the root so they see every route (docs/operations.md).
  const ops = options.ops ?? idleOps(platform);
  installOpsHooks(app, ops.metrics.http);

  // The reference (/openapi.json, /docs) first: its document lists the routes registered after it.
  // Routes belong in plugins registered below; a route added directly on `app` here is missing
  // from the document (test/integration/openapi.test.ts says which).
  app.register(swagger, openApiOptions());
  app.register(swaggerUi, docsOptions);
  app.get(OPENAPI_PATH, async () => app.swagger());
  app.register(healthRoutes());
  app.register(opsRoutes(ops));
  app.register(authRoutes(platform));
  app.register(accountRoutes(platform.accounts));
  app.register(memberRoutes(platform.accounts, platform.registry));
  app.register(applicationRoutes(platform));
  app.register(deviceRoutes(platform));
  app.register(keyRoutes(platform));
  app.register(deviceDataRoutes(platform));
  app.register(streamRoutes(platform, streams));
  app.register(appLogRoutes(platform));
  app.register(dataQueryRoutes(platform));
  app.register(dashboardRoutes(new Dashboards(platform.store, platform.registry, platform.clock)));
  if (options.workflows) {
    app.register(flowRoutes(options.workflows.flows, options.workflows.engine, platform.accounts));
  }
  if (options.workflows?.webhooks) app.register(webhookRoutes(options.workflows.webhooks, options.workflows.engine));
  return app;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Who sent the request: a bearer token (API, device or gateway token) when there is an
 * Authorization header, otherwise the browser session of the cookie. A cookie alone is sent by
 * the browser whichever page asks, so a request that changes something must also carry the
 * session's CSRF token in a header, which another site's page cannot read.
 */
async function authenticate(platform: Platform, request: FastifyRequest): Promise<void> {
  if (request.headers.authorization !== undefined) {
    request.principal = await platform.authenticateBearer(request.headers.authorization, request.ip);
    return;
  }
  const cookie = sessionCookie(request);
  if (cookie === undefined) {
    throw new GatehouseError(
      'Unauthorized',
      'missing or malformed Authorization: Bearer header, and no session cookie',
    );
  }
  const found = await platform.accounts.session(cookie);
  if (!found) throw new GatehouseError('Unauthorized', 'the session has ended or is not valid; sign in again');
  if (!SAFE_METHODS.has(request.method)) {
    if (!csrfMatches(found.csrfToken, request.headers[CSRF_HEADER])) {
      throw new GatehouseError('Forbidden', `a request signed in by cookie needs the session's ${CSRF_HEADER} header`);
    }
  }
  request.principal = await platform.accounts.principalOfSession(found.session);
  request.sessionId = found.session.id;
  request.csrfToken = found.csrfToken;
}
