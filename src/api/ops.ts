/**
 * The operator's routes and hooks (docs/operations.md): `/ready`, `/metrics` (Prometheus text,
 * optionally behind its own token), the REST side of the metrics, and the log line of a
 * throttled credential. The hooks go on the root instance, so they see every route; the routes
 * are a plugin registered after the API reference, which then lists them.
 */

import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type {
  FastifyInstance,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from 'fastify';
import { GatehouseError } from '../core/errors.js';
import { sameSecret } from '../core/secrets.js';
import type { Logger } from '../logger.js';
import type { Count } from '../ops/instruments.js';
import { Metrics } from '../ops/metrics.js';
import { Readiness, UNREADY_CODES } from '../ops/readiness.js';
import { described, errorResponses } from './schemas.js';

/** What the REST side counts. */
export interface HttpInstruments {
  /** State posts and command requests, answered or refused. */
  messagesIn: { state: Count; command: Count };
  /** The count of 4xx answers with this status. */
  refusal(status: number): Count;
}

export interface Ops {
  readiness: Readiness;
  metrics: Pick<Metrics, 'http' | 'contentType' | 'scrape'>;
  /** When set, `/metrics` needs `Authorization: Bearer <it>`; otherwise it is public. */
  metricsToken?: string | undefined;
}

type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  Logger,
  TypeBoxTypeProvider
>;

/** The routes whose requests count as messages in, by method and route. */
const MESSAGE_ROUTES = new Map<string, 'state' | 'command'>([
  ['/applications/:applicationId/devices/:deviceId/state', 'state'],
  ['/applications/:applicationId/devices/:deviceId/command', 'command'],
  ['/applications/:applicationId/devices/command', 'command'],
]);

/** What a log line may quote of a client-chosen string (an access key): its start. */
const LOGGED_CHARS = 100;

export const ReadyReply = Type.Object({ status: Type.Literal('ready') });
/** 503 `Unavailable`: the API's `{type, message}`, and every reason as a fixed code and a sentence. */
export const UnreadyReply = Type.Object(
  {
    type: Type.Unsafe<'Unavailable'>({ type: 'string', enum: ['Unavailable'] }),
    message: Type.String(),
    reasons: Type.Array(
      Type.Object({
        code: Type.Unsafe<(typeof UNREADY_CODES)[number]>({ type: 'string', enum: [...UNREADY_CODES] }),
        message: Type.String(),
      }),
      { minItems: 1 },
    ),
  },
  {
    description:
      'Unavailable: not ready for traffic; `reasons` lists each reason (docs/operations.md). The causes are in the operator log.',
  },
);

/** The Prometheus text exposition, for the reference only: the handler sends the registry's text. */
const MetricsText = {
  description: 'The Prometheus text format (version 0.0.4): every metric of this server (docs/operations.md).',
  content: { 'text/plain': { schema: { type: 'string' } } },
};

/** Ops for an API that never listens (route listings, tests): never ready, no process metrics. */
export function idleOps(platform: ConstructorParameters<typeof Readiness>[0]): Ops {
  return { readiness: new Readiness(platform), metrics: new Metrics({ defaults: false }) };
}

/** Counts REST traffic and logs throttled credential checks; on the root instance, for every route. */
export function installOpsHooks(app: App, http: HttpInstruments): void {
  app.addHook('onResponse', (request, reply, done) => {
    const status = reply.statusCode;
    if (status >= 400 && status < 500) http.refusal(status).inc();
    if (request.method === 'POST') {
      const kind = MESSAGE_ROUTES.get(request.routeOptions.url ?? '');
      if (kind) http.messagesIn[kind].inc();
    }
    done();
  });

  // A credential check refused because failed checks are throttled (a bearer token, or
  // POST /auth/device) is worth a line: someone may be guessing. Nothing secret is in it.
  app.addHook('onError', (request, _reply, error, done) => {
    if (error instanceof GatehouseError && error.type === 'RateLimited' && request.principal === null) {
      const key = (request.body as { key?: unknown } | undefined)?.key;
      request.log.warn(
        {
          event: 'credentialsThrottled',
          route: request.routeOptions.url ?? null,
          ipAddress: request.ip,
          ...(typeof key === 'string' ? { accessKey: key.slice(0, LOGGED_CHARS) } : {}),
          reason: error.message,
        },
        'credential check throttled',
      );
    }
    done();
  });
}

/** GET /ready and GET /metrics. */
export const opsRoutes =
  ({ readiness, metrics, metricsToken }: Ops): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/ready',
      {
        config: { public: true },
        schema: {
          summary: 'Whether the server is ready for traffic',
          description:
            'A readiness probe: 200 once started, while every listener accepts connections, the database takes ' +
            'writes and the last group commit succeeded; otherwise 503 naming each reason.',
          tags: ['health'],
          response: { 200: described(ReadyReply, 'Ready for traffic.'), 503: UnreadyReply },
        },
      },
      async (_request, reply) => {
        const reasons = await readiness.check();
        void reply.header('cache-control', 'no-store');
        if (reasons.length === 0) return { status: 'ready' as const };
        const message = `not ready: ${reasons.map((r) => r.message).join('; ')}`;
        return reply.code(503).send({ type: 'Unavailable', message, reasons });
      },
    );

    app.get(
      '/metrics',
      {
        config: { public: true },
        schema: {
          summary: 'Prometheus metrics',
          description:
            'Needs no API credentials. When the server has a metrics token (--metrics-token), it needs ' +
            '`Authorization: Bearer` with that token and answers 401 otherwise.',
          tags: ['metrics'],
          response: { 200: MetricsText, ...errorResponses(401) },
        },
      },
      async (request, reply) => {
        if (metricsToken !== undefined && !bearerIs(request.headers.authorization, metricsToken)) {
          void reply.header('www-authenticate', 'Bearer realm="metrics"');
          throw new GatehouseError('Unauthorized', 'metrics need Authorization: Bearer with the metrics token');
        }
        const text = await metrics.scrape();
        void reply.header('cache-control', 'no-store').type(metrics.contentType);
        return text;
      },
    );
  };

/** Whether the header carries exactly `token`, compared in constant time (of equal-length digests). */
function bearerIs(header: string | undefined, token: string): boolean {
  const given = header ? /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1] : undefined;
  if (given === undefined) return false;
  return sameSecret(given, token);
}
