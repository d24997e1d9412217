/**
 * Webhooks over REST (docs/workflows.md, "Triggers"): editors make, rename and delete them,
 * viewers list them; the token and URL are answered once, by the POST. `ANY /webhooks/TOKEN[/path]`
 * is public: it fires the `webhook` triggers naming that webhook and answers at once.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { GatehouseError } from '../../core/errors.js';
import { iso } from '../../core/wire.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../../domain/json.js';
import type { RateLimit } from '../../domain/model.js';
import { RateLimiter } from '../../domain/rate-limit.js';
import { MAX_PAYLOAD_BYTES } from '../../domain/state.js';
import type { Webhook as WebhookModel } from '../../workflows/definition.js';
import type { WorkflowEngine } from '../../workflows/engine.js';
import type { Webhooks } from '../../workflows/webhooks.js';
import { allow } from '../guard.js';
import { AppParams, described, errorResponses, Id, ListQuery, Page, Query, Success } from '../schemas.js';
import { pageOf } from './paging.js';

const Webhook = Type.Object({
  id: Type.String(),
  applicationId: Type.String(),
  name: Type.String(),
  creationDate: Type.String({ format: 'date-time' }),
  lastUpdated: Type.String({ format: 'date-time' }),
  token: Type.Optional(Type.String({ description: 'The secret part of the URL: answered once, by the POST.' })),
  url: Type.Optional(Type.String({ description: '`/webhooks/TOKEN` on the HTTP port: answered once, by the POST.' })),
});
const WebhookBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 255 }) },
  { additionalProperties: false },
);
const WebhookPatch = Type.Object(
  { name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })) },
  { additionalProperties: false },
);
const WebhookParams = Type.Object({
  applicationId: Id,
  webhookId: Type.String({ pattern: Id.pattern, description: 'The id of a webhook of the application.' }),
});
const Token = Type.String({ minLength: 1, maxLength: 200, description: 'The token of a webhook.' });
const HookParams = Type.Object({ token: Token });
const HookPathParams = Type.Object({
  token: Token,
  '*': Type.String({ maxLength: 2048, description: 'Any path after the token, given to the run as `data.path`.' }),
});
/** Methods a webhook answers. */
const HOOK_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
/** Headers never given to a run: credentials of whoever calls. */
const WITHHELD_HEADERS = new Set(['cookie', 'authorization']);

const present = (w: WebhookModel) => ({
  id: w.id,
  applicationId: w.applicationId,
  name: w.name,
  creationDate: iso(w.creationDate),
  lastUpdated: iso(w.lastUpdated),
});

export const webhookRoutes =
  (webhooks: Webhooks, engine: WorkflowEngine): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.register(hookRoutes(webhooks, engine));

    app.post(
      '/applications/:applicationId/webhooks',
      {
        schema: {
          summary: 'Create a webhook',
          description: 'Answers the token and its URL this once: only a hash of the token is stored.',
          tags: ['workflows'],
          params: AppParams,
          body: WebhookBody,
          response: {
            201: described(Webhook, 'The new webhook, with its token and URL.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request, reply) => {
        const { applicationId } = request.params;
        allow(request, { type: 'editApplication', applicationId });
        const { webhook, token } = await webhooks.create(applicationId, request.body.name);
        return reply.code(201).send({ ...present(webhook), token, url: `/webhooks/${token}` });
      },
    );

    app.get(
      '/applications/:applicationId/webhooks',
      {
        schema: {
          summary: 'List webhooks',
          tags: ['workflows'],
          params: AppParams,
          querystring: ListQuery,
          response: {
            200: described(Page(Webhook), 'A page of webhooks, oldest first (without tokens).'),
            ...errorResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        const { applicationId } = request.params;
        allow(request, { type: 'readApplication', applicationId });
        return pageOf(await webhooks.list(applicationId), request.query, present);
      },
    );

    app.get(
      '/applications/:applicationId/webhooks/:webhookId',
      {
        schema: {
          summary: 'Get a webhook',
          tags: ['workflows'],
          params: WebhookParams,
          response: {
            200: described(Webhook, 'The webhook (without its token).'),
            ...errorResponses(401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        const { applicationId, webhookId } = request.params;
        allow(request, { type: 'readApplication', applicationId });
        return present(await webhooks.require(applicationId, webhookId));
      },
    );

    app.patch(
      '/applications/:applicationId/webhooks/:webhookId',
      {
        schema: {
          summary: 'Rename a webhook',
          tags: ['workflows'],
          params: WebhookParams,
          body: WebhookPatch,
          response: {
            200: described(Webhook, 'The webhook as saved.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const { applicationId, webhookId } = request.params;
        allow(request, { type: 'editApplication', applicationId });
        return present(await webhooks.rename(applicationId, webhookId, request.body.name));
      },
    );

    app.delete(
      '/applications/:applicationId/webhooks/:webhookId',
      {
        schema: {
          summary: 'Delete a webhook',
          description: 'Its URL stops answering at once; triggers naming it stay in their flows and never fire.',
          tags: ['workflows'],
          params: WebhookParams,
          response: {
            200: described(Success, 'Deleted.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const { applicationId, webhookId } = request.params;
        allow(request, { type: 'editApplication', applicationId });
        await webhooks.delete(applicationId, webhookId);
        return { success: true as const };
      },
    );
  };

/**
 * Calls one webhook URL may take: anyone holding the URL can call it, and each call starts runs,
 * so a flood is answered 429 before it reaches the flows' queues.
 */
export const WEBHOOK_CALL_LIMIT: RateLimit = { messages: 100, windowSeconds: 10 };

/** The public webhook URLs, in a plugin of their own: they (only) read every content type raw. */
const hookRoutes =
  (webhooks: Webhooks, engine: WorkflowEngine): FastifyPluginAsyncTypebox =>
  async (app) => {
    // Keyed by webhook id; ids exist in the store, but the bound keeps memory fixed regardless.
    const calls = new RateLimiter(10_000);
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_PAYLOAD_BYTES }, (_request, body, done) =>
      done(null, body),
    );
    const hookSchema = (params: typeof HookParams | typeof HookPathParams) => ({
      summary: 'Call a webhook',
      description:
        "Public: fires every `webhook` trigger whose key is this webhook's id, with `data: {method, path, headers, query, body}`, and answers at once. Bodies up to 256 KiB: JSON, forms, or text kept as a string.",
      tags: ['workflows'],
      params,
      querystring: Query({}),
      response: {
        200: described(Success, 'Accepted; runs happen after the answer.'),
        ...errorResponses(400, 404, 413, 429),
      },
    });
    const call = async (request: FastifyRequest) => {
      const params = request.params as { token: string; '*'?: string };
      const webhook = await webhooks.byToken(params.token);
      if (!webhook) throw new GatehouseError('NotFound', 'no webhook has this token');
      // Fastify answers HEAD with the GET route: a probe of the URL runs nothing.
      if (request.method === 'HEAD') return { success: true as const };
      const now = Date.now();
      if (!calls.hit(webhook.id, WEBHOOK_CALL_LIMIT, now)) {
        throw new GatehouseError(
          'RateLimited',
          `this webhook takes at most ${WEBHOOK_CALL_LIMIT.messages} calls per ${WEBHOOK_CALL_LIMIT.windowSeconds} s`,
          { retryAfterSeconds: Math.max(1, calls.retryAfterSeconds(webhook.id, now)) },
        );
      }
      const headers: Record<string, unknown> = {};
      for (const [name, value] of Object.entries(request.headers)) {
        if (!WITHHELD_HEADERS.has(name.toLowerCase())) headers[name.toLowerCase()] = value;
      }
      engine.fireWebhook(webhook.applicationId, webhook.id, {
        method: request.method.toLowerCase(),
        path: `/${params['*'] ?? ''}`,
        headers,
        query: { ...(request.query as Record<string, unknown>) },
        body: readBody(request.body, request.headers['content-type']),
      });
      return { success: true as const };
    };
    app.route({
      method: HOOK_METHODS,
      url: '/webhooks/:token',
      config: { public: true },
      schema: hookSchema(HookParams),
      handler: call,
    });
    app.route({
      method: HOOK_METHODS,
      url: '/webhooks/:token/*',
      config: { public: true },
      schema: hookSchema(HookPathParams),
      handler: call,
    });
  };

/** A webhook call's body as a run sees it: JSON parsed, a form as an object, anything else as a string. */
function readBody(body: unknown, contentType: string | undefined): unknown {
  if (!Buffer.isBuffer(body) || body.length === 0) return null;
  const type = (contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  const text = body.toString('utf8');
  if (type === 'application/json' || type.endsWith('+json')) {
    try {
      const value: unknown = JSON.parse(text);
      // A run copies its payload per branch: JSON nested past the bound stays text.
      return nestsDeeperThan(value, MAX_JSON_DEPTH) ? text : value;
    } catch {
      return text;
    }
  }
  if (type === 'application/x-www-form-urlencoded') {
    const form: Record<string, string | string[]> = {};
    for (const [key, value] of new URLSearchParams(text)) {
      const seen = form[key];
      form[key] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
    }
    return form;
  }
  return text;
}
