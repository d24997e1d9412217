/**
 * Workflows over REST (docs/workflows.md): flows, their versions, the run log, the live debug
 * stream and virtual buttons. Readers may look; editors save, press buttons and delete.
 */
import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import type { Accounts } from '../../core/accounts.js';
import { GatehouseError } from '../../core/errors.js';
import { iso } from '../../core/wire.js';
import { MAX_JSON_DEPTH, nestsDeeperThan } from '../../domain/json.js';
import type { Flow as FlowModel, FlowRun, FlowVersion as FlowVersionModel } from '../../workflows/definition.js';
import type { WorkflowEngine } from '../../workflows/engine.js';
import type { Flows } from '../../workflows/flows.js';
import { allow } from '../guard.js';
import { AppParams, described, errorResponses, Id, ListQuery, Page, Query, Success } from '../schemas.js';
import { pageOf } from './paging.js';

const Config = Type.Record(Type.String(), Type.Unknown(), { description: 'The trigger or node settings.' });
const OutputIds = Type.Array(Type.Array(Type.String({ maxLength: 255 }), { maxItems: 500 }), { maxItems: 100 });
const Trigger = Type.Object(
  {
    key: Type.Optional(Type.String({ maxLength: 1024 })),
    type: Type.String({ minLength: 1, maxLength: 255 }),
    config: Type.Optional(Config),
    meta: Type.Optional(Type.Unknown()),
    outputIds: Type.Optional(OutputIds),
  },
  { additionalProperties: false },
);
const Node = Type.Object(
  {
    id: Type.String({ minLength: 1, maxLength: 255 }),
    type: Type.String({ minLength: 1, maxLength: 255 }),
    config: Type.Optional(Config),
    meta: Type.Optional(Type.Unknown()),
    outputIds: Type.Optional(OutputIds),
  },
  { additionalProperties: false },
);
const Global = Type.Object(
  { key: Type.String({ minLength: 1, maxLength: 255 }), json: Type.String({ maxLength: 32_768 }) },
  { additionalProperties: false },
);
const Definition = {
  triggers: Type.Optional(Type.Array(Trigger, { maxItems: 100 })),
  nodes: Type.Optional(Type.Array(Node, { maxItems: 500 })),
  globals: Type.Optional(Type.Array(Global, { maxItems: 100 })),
};

/**
 * Fields of a Losant flow export that say nothing about what the flow does (its old identity,
 * dates, counters, icon, custom-node use): accepted on create so an export posts as it is, and
 * ignored (docs/workflows.md, "Importing a Losant export").
 */
const IgnoredExportFields = {
  id: Type.Optional(Type.String({ maxLength: 255 })),
  flowId: Type.Optional(Type.String({ maxLength: 255 })),
  applicationId: Type.Optional(Type.String({ maxLength: 255 })),
  creationDate: Type.Optional(Type.String({ maxLength: 64 })),
  lastUpdated: Type.Optional(Type.String({ maxLength: 64 })),
  iconData: Type.Optional(Type.Union([Type.String({ maxLength: 32_767 }), Type.Null()])),
  defaultVersionId: Type.Optional(Type.Union([Type.String({ maxLength: 255 }), Type.Null()])),
  customNodeSupports: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 10 })),
  customNodeUseCount: Type.Optional(Type.Number()),
  deletedInDevelop: Type.Optional(Type.Boolean()),
  stats: Type.Optional(Type.Unknown()),
};
const FlowBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 255 }),
    description: Type.Optional(Type.String({ maxLength: 32_767 })),
    enabled: Type.Optional(Type.Boolean()),
    // Losant's exports carry these; one flow class is run here, the rest is kept out.
    flowClass: Type.Optional(Type.Literal('cloud')),
    ...Definition,
    ...IgnoredExportFields,
  },
  { additionalProperties: false },
);
const FlowPatch = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    description: Type.Optional(Type.String({ maxLength: 32_767 })),
    enabled: Type.Optional(Type.Boolean()),
    defaultVersionId: Type.Optional(Type.Union([Id, Type.Null()])),
    flowClass: Type.Optional(Type.Literal('cloud')),
    ...Definition,
  },
  { additionalProperties: false },
);
const StoredTrigger = Type.Object({
  key: Type.Optional(Type.String()),
  type: Type.String(),
  config: Config,
  meta: Type.Optional(Type.Unknown()),
  outputIds: Type.Array(Type.Array(Type.String())),
});
const StoredNode = Type.Object({
  id: Type.String(),
  type: Type.String(),
  config: Config,
  meta: Type.Optional(Type.Unknown()),
  outputIds: Type.Array(Type.Array(Type.String())),
});
const StoredDefinition = {
  triggers: Type.Array(StoredTrigger),
  nodes: Type.Array(StoredNode),
  globals: Type.Array(Type.Object({ key: Type.String(), json: Type.String() })),
};
const Flow = Type.Object({
  id: Type.String(),
  applicationId: Type.String(),
  name: Type.String(),
  description: Type.String(),
  enabled: Type.Boolean(),
  flowClass: Type.Literal('cloud'),
  ...StoredDefinition,
  defaultVersionId: Type.Union([Type.String(), Type.Null()]),
  stats: Type.Object({ runCount: Type.Integer(), errorCount: Type.Integer() }),
  creationDate: Type.String({ format: 'date-time' }),
  lastUpdated: Type.String({ format: 'date-time' }),
});
const VersionBody = Type.Object(
  {
    version: Type.String({ minLength: 1, maxLength: 255 }),
    notes: Type.Optional(Type.String({ maxLength: 32_767 })),
    ...Definition,
  },
  { additionalProperties: false },
);
const FlowVersion = Type.Object({
  id: Type.String(),
  flowId: Type.String(),
  version: Type.String(),
  notes: Type.String(),
  ...StoredDefinition,
  creationDate: Type.String({ format: 'date-time' }),
});
const FlowRunEntry = Type.Object({
  time: Type.String({ format: 'date-time' }),
  flowVersion: Type.String(),
  triggerType: Type.String(),
  triggerId: Type.String(),
  pathsCompleted: Type.Integer(),
  pathsFailed: Type.Integer(),
  wallTime: Type.Number({ description: 'ms from the start of the run to its end' }),
  latency: Type.Number({ description: 'ms from the trigger (a state: its commit) to the end of the run' }),
  errors: Type.Array(Type.Object({ nodeId: Type.String(), nodeType: Type.String(), message: Type.String() })),
});
const FlowParams = Type.Object({ applicationId: Id, flowId: Id });
const RunsQuery = Query({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
  start: Type.Optional(Type.Integer({ minimum: 0 })),
  end: Type.Optional(Type.Integer({ minimum: 0 })),
});
const ButtonBody = Type.Object(
  { key: Type.String({ minLength: 1, maxLength: 1024 }), payload: Type.Optional(Type.Unknown()) },
  { additionalProperties: false },
);

const presentFlow = (f: FlowModel): Static<typeof Flow> => ({
  ...f,
  flowClass: 'cloud' as const,
  creationDate: iso(f.creationDate),
  lastUpdated: iso(f.lastUpdated),
});
const presentVersion = (v: FlowVersionModel) => {
  const { applicationId: _, ...rest } = v;
  return { ...rest, creationDate: iso(v.creationDate) };
};
const presentRun = (r: FlowRun) => {
  const { flowId: _, ...rest } = r;
  return { ...rest, time: iso(r.time) };
};

const HEARTBEAT_MS = 15_000;

export const flowRoutes =
  (flows: Flows, engine: WorkflowEngine, accounts: Accounts): FastifyPluginAsyncTypebox =>
  async (app) => {
    const debugStreams = new Set<ServerResponse>();
    app.addHook('preClose', async () => {
      for (const raw of debugStreams) raw.end('event: shutdown\ndata: {"message":"server shutting down"}\n\n');
    });

    app.post(
      '/applications/:applicationId/flows',
      {
        schema: {
          summary: 'Create a workflow',
          description:
            "Losant's flow format; the whole definition is validated, each problem naming the trigger or node and the field.",
          tags: ['workflows'],
          params: AppParams,
          body: FlowBody,
          response: { 201: described(Flow, 'The new flow.'), ...errorResponses(400, 401, 403, 404, 413, 415, 429) },
        },
      },
      async (request, reply) => {
        const { applicationId } = request.params;
        allow(request, { type: 'editApplication', applicationId });
        const { name, description, enabled, triggers, nodes, globals } = request.body;
        const input = { name, description, enabled, triggers, nodes, globals };
        return reply.code(201).send(presentFlow(await flows.create(applicationId, input as never)));
      },
    );

    app.get(
      '/applications/:applicationId/flows',
      {
        schema: {
          summary: 'List workflows',
          tags: ['workflows'],
          params: AppParams,
          querystring: ListQuery,
          response: {
            200: described(Page(Flow), 'A page of flows, oldest first.'),
            ...errorResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        const { applicationId } = request.params;
        allow(request, { type: 'readApplication', applicationId });
        return pageOf(await flows.list(applicationId), request.query, presentFlow);
      },
    );

    app.get(
      '/applications/:applicationId/flows/:flowId',
      {
        schema: {
          summary: 'Get a workflow',
          tags: ['workflows'],
          params: FlowParams,
          response: { 200: described(Flow, 'The flow.'), ...errorResponses(401, 403, 404, 429) },
        },
      },
      async (request) => {
        const { applicationId, flowId } = request.params;
        allow(request, { type: 'readApplication', applicationId });
        return presentFlow(await flows.require(applicationId, flowId));
      },
    );

    app.patch(
      '/applications/:applicationId/flows/:flowId',
      {
        schema: {
          summary: 'Change a workflow',
          description:
            'Replaces the fields it names; `enabled: false` stops its triggers at once; `defaultVersionId` pins a version.',
          tags: ['workflows'],
          params: FlowParams,
          body: FlowPatch,
          response: {
            200: described(Flow, 'The flow as saved.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const { applicationId, flowId } = request.params;
        allow(request, { type: 'editApplication', applicationId });
        const { flowClass: _, ...patch } = request.body;
        return presentFlow(await flows.update(applicationId, flowId, patch as never));
      },
    );

    app.delete(
      '/applications/:applicationId/flows/:flowId',
      {
        schema: {
          summary: 'Delete a workflow',
          tags: ['workflows'],
          params: FlowParams,
          response: {
            200: described(Success, 'Deleted, with its versions, runs and storage.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const { applicationId, flowId } = request.params;
        allow(request, { type: 'editApplication', applicationId });
        await flows.delete(applicationId, flowId);
        return { success: true as const };
      },
    );

    app.post(
      '/applications/:applicationId/flows/:flowId/versions',
      {
        schema: {
          summary: 'Create a workflow version',
          description: "An immutable snapshot of the definition given, or of the flow's own when none is given.",
          tags: ['workflows'],
          params: FlowParams,
          body: VersionBody,
          response: {
            201: described(FlowVersion, 'The new version.'),
            ...errorResponses(400, 401, 403, 404, 409, 413, 415, 429),
          },
        },
      },
      async (request, reply) => {
        const { applicationId, flowId } = request.params;
        allow(request, { type: 'editApplication', applicationId });
        return reply
          .code(201)
          .send(presentVersion(await flows.createVersion(applicationId, flowId, request.body as never)));
      },
    );

    app.get(
      '/applications/:applicationId/flows/:flowId/versions',
      {
        schema: {
          summary: 'List workflow versions',
          tags: ['workflows'],
          params: FlowParams,
          querystring: ListQuery,
          response: {
            200: described(Page(FlowVersion), 'A page of versions, oldest first.'),
            ...errorResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        const { applicationId, flowId } = request.params;
        allow(request, { type: 'readApplication', applicationId });
        return pageOf(await flows.listVersions(applicationId, flowId), request.query, presentVersion);
      },
    );

    app.get(
      '/applications/:applicationId/flows/:flowId/logs',
      {
        schema: {
          summary: 'A workflow run log',
          description: 'Recent runs, newest first, each with its errors (node and reason).',
          tags: ['workflows'],
          params: FlowParams,
          querystring: RunsQuery,
          response: {
            200: described(Type.Array(FlowRunEntry), 'Runs, newest first.'),
            ...errorResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        const { applicationId, flowId } = request.params;
        allow(request, { type: 'readApplication', applicationId });
        await flows.require(applicationId, flowId);
        await engine.flushRuns();
        const { limit, start, end } = request.query;
        const runs = await flows.runs(flowId, {
          limit,
          ...(start !== undefined ? { start } : {}),
          ...(end !== undefined ? { end } : {}),
        });
        return runs.map(presentRun);
      },
    );

    app.post(
      '/applications/:applicationId/flows/:flowId/virtualButton',
      {
        schema: {
          summary: 'Press a virtual button',
          description:
            "Fires the flow's `virtualButton` triggers whose key is `key`, with `payload` as the run's `data`.",
          tags: ['workflows'],
          params: FlowParams,
          body: ButtonBody,
          response: { 200: described(Success, 'Fired.'), ...errorResponses(400, 401, 403, 404, 413, 415, 429) },
        },
      },
      async (request) => {
        const { applicationId, flowId } = request.params;
        allow(request, { type: 'editApplication', applicationId });
        if (nestsDeeperThan(request.body.payload, MAX_JSON_DEPTH)) {
          throw new GatehouseError(
            'Validation',
            `body/payload nests arrays and objects more than ${MAX_JSON_DEPTH} levels deep`,
          );
        }
        const flow = await flows.require(applicationId, flowId);
        if (!flow.enabled) throw new GatehouseError('NotFound', `flow ${flowId} is disabled`);
        if (engine.pressButton(flowId, request.body.key, request.body.payload) === 0) {
          throw new GatehouseError(
            'NotFound',
            `flow ${flowId} has no virtual button with key ${JSON.stringify(request.body.key)}`,
          );
        }
        return { success: true as const };
      },
    );

    app.get(
      '/applications/:applicationId/flows/:flowId/debugStream',
      {
        schema: {
          summary: 'A workflow debug stream',
          description: 'Server-Sent Events: `debug` for each Debug node output, `error` for each run error, live.',
          tags: ['workflows', 'streams'],
          params: FlowParams,
          response: {
            200: { description: 'An event stream.', content: { 'text/event-stream': { schema: { type: 'string' } } } },
            ...errorResponses(401, 403, 404, 429),
          },
        },
      },
      async (request, reply) => {
        const { applicationId, flowId } = request.params;
        const principal = allow(request, { type: 'readApplication', applicationId });
        await flows.require(applicationId, flowId);
        // As for every stream: a revoked token, a changed role or an ended session ends it at once.
        const version = accounts.accessVersion(principal);
        const sessionId = request.sessionId ?? undefined;
        reply.hijack();
        const raw = reply.raw;
        raw.on('error', () => {});
        raw.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache, no-transform',
        });
        if (request.method === 'HEAD') {
          raw.end();
          return;
        }
        raw.write('retry: 2000\n\n');
        debugStreams.add(raw);
        const stop = engine.subscribeDebug(flowId, (entry) => {
          // A reader that does not keep up loses the stream rather than growing our memory.
          if (raw.writableLength > 1024 * 1024) raw.destroy();
          else raw.write(`event: ${entry.kind}\ndata: ${JSON.stringify(entry)}\n\n`);
        });
        const heartbeat = setInterval(() => raw.write(': heartbeat\n\n'), HEARTBEAT_MS);
        heartbeat.unref();
        const unwatch = accounts.onChange(() => {
          const refused = accounts.stillValid(principal, version, sessionId);
          if (refused !== null) raw.end(`event: closed\ndata: ${JSON.stringify({ message: refused })}\n\n`);
        });
        raw.on('close', () => {
          stop();
          unwatch();
          clearInterval(heartbeat);
          debugStreams.delete(raw);
        });
      },
    );
  };
