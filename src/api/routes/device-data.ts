/** State, commands and logs of one device (spec: REST). */
import type { FastifyPluginAsyncTypebox, TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { sendCommand, sendCommandToMany } from '../../core/commands.js';
import { errorForStatus } from '../../core/errors.js';
import { ingestState } from '../../core/ingest.js';
import type { Platform } from '../../core/platform.js';
import { iso, presentCommand, presentState } from '../../core/wire.js';
import type { Device as DeviceModel } from '../../domain/model.js';
import { MAX_PAYLOAD_BYTES } from '../../domain/state.js';
import { allow } from '../guard.js';
import {
  AppParams,
  CommandBody,
  CommandEntry,
  CompositeQuery,
  DeviceLogEntry,
  DeviceParams,
  described,
  errorResponses,
  LogsQuery,
  ManyCommandBody,
  StateBodyDoc,
  StateEntry,
  StateReply,
  TimeRangeQuery,
} from '../schemas.js';

export const deviceDataRoutes =
  (platform: Platform): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { registry } = platform;
    const targetOf = async (applicationId: string, deviceId: string): Promise<DeviceModel | undefined> => {
      const device = await registry.device(deviceId);
      return device?.applicationId === applicationId ? device : undefined;
    };

    // State is posted as raw bytes and parsed by the shared ingest path, exactly as an MQTT
    // payload is, so malformed JSON is answered and logged the same way on both protocols.
    app.register(async (scope) => {
      const raw = scope.withTypeProvider<TypeBoxTypeProvider>();
      raw.removeAllContentTypeParsers();
      raw.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_PAYLOAD_BYTES }, (_req, body, done) =>
        done(null, body),
      );
      raw.addHook('onError', async (request, _reply, error) => {
        // An oversized body never reaches the handler; log it on the device when the caller may write there.
        const principal = request.principal;
        const params = request.params as { applicationId?: string; deviceId?: string };
        if ((error as { code?: string }).code !== 'FST_ERR_CTP_BODY_TOO_LARGE' || !principal || !params.deviceId)
          return;
        const target = await targetOf(params.applicationId ?? '', params.deviceId);
        platform.reject({ principal, via: 'rest' }, target, 413, `request body exceeds ${MAX_PAYLOAD_BYTES} bytes`);
      });

      raw.post(
        '/applications/:applicationId/devices/:deviceId/state',
        {
          schema: {
            summary: "Report a device's state",
            description:
              "With an API token, the device's token, or a gateway's token for a peripheral it may act for. " +
              'Attributes that cannot be stored are left out and listed in `dropped`.',
            tags: ['state'],
            params: DeviceParams,
            response: {
              200: described(StateReply, 'Stored.'),
              ...errorResponses(400, 401, 403, 404, 413, 429),
            },
          },
          // The body is read as raw bytes, so it has no schema Fastify would check; the reference shows it.
          config: { swaggerTransform: ({ schema, url }) => ({ schema: { ...schema, body: StateBodyDoc }, url }) },
        },
        async (request) => {
          const principal = request.principal!;
          const body = request.body as Buffer | undefined;
          const outcome = await ingestState(platform, {
            principal,
            targetId: request.params.deviceId,
            applicationId: request.params.applicationId,
            payload: body ?? Buffer.alloc(0),
            via: 'rest',
            receivedAt: platform.clock(),
          });
          if (!outcome.ok) {
            const { retryAfterSeconds } = outcome;
            throw errorForStatus(outcome.status, outcome.reason, retryAfterSeconds ? { retryAfterSeconds } : {});
          }
          await outcome.committed;
          return {
            success: true as const,
            stored: outcome.stored,
            ...(outcome.issues.length > 0 ? { dropped: outcome.issues } : {}),
          };
        },
      );
    });

    app.get(
      '/applications/:applicationId/devices/:deviceId/state',
      {
        schema: {
          summary: "A device's state history",
          tags: ['state'],
          params: DeviceParams,
          querystring: TimeRangeQuery,
          response: {
            200: described(Type.Array(StateEntry), 'The states, in the order asked.'),
            ...errorResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        const target = await targetOf(request.params.applicationId, request.params.deviceId);
        allow(request, { type: 'readDevice', target });
        const states = await platform.store.queryStates(target!.id, timeRange(request.query));
        return states.map(presentState);
      },
    );

    app.get(
      '/applications/:applicationId/devices/:deviceId/compositeState',
      {
        schema: {
          summary: "The last value of each of a device's attributes",
          tags: ['state'],
          params: DeviceParams,
          querystring: CompositeQuery,
          response: {
            200: described(
              Type.Record(Type.String(), Type.Object({ value: Type.Unknown(), time: Type.String() })),
              'By attribute name: its last value and when it was reported.',
            ),
            ...errorResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        const target = await targetOf(request.params.applicationId, request.params.deviceId);
        allow(request, { type: 'readDevice', target });
        const composite = await platform.store.getCompositeState(target!.id);
        const wanted = request.query.attributes?.split(',').map((a) => a.trim());
        // No prototype: an attribute named __proto__ or constructor is a key like any other.
        const out: Record<string, { value: unknown; time: string }> = Object.create(null);
        for (const [name, { value, time }] of Object.entries(composite)) {
          if (!wanted || wanted.includes(name)) out[name] = { value, time: iso(time) };
        }
        return out;
      },
    );

    app.post(
      '/applications/:applicationId/devices/:deviceId/command',
      {
        schema: {
          summary: 'Send a command to a device',
          description: "A peripheral's command goes to a gateway that may act for it; `routedTo` says which.",
          tags: ['commands'],
          params: DeviceParams,
          body: CommandBody,
          response: {
            200: described(
              Type.Object({
                success: Type.Literal(true),
                commandId: Type.String(),
                routedTo: Type.Array(Type.String()),
              }),
              'Sent (or recorded with no route when nothing connected may receive it).',
            ),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const target = await targetOf(request.params.applicationId, request.params.deviceId);
        const principal = allow(request, { type: 'sendCommand', target });
        const command = await sendCommand(platform, principal, target!, request.body);
        return { success: true as const, commandId: command.id, routedTo: command.routedTo };
      },
    );

    app.get(
      '/applications/:applicationId/devices/:deviceId/command',
      {
        schema: {
          summary: "A device's command history",
          tags: ['commands'],
          params: DeviceParams,
          querystring: TimeRangeQuery,
          response: {
            200: described(Type.Array(CommandEntry), 'The commands, in the order asked, with where each went.'),
            ...errorResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        const target = await targetOf(request.params.applicationId, request.params.deviceId);
        allow(request, { type: 'readCommands', target });
        const commands = await platform.store.queryCommands(target!.id, timeRange(request.query));
        return commands.map(presentCommand);
      },
    );

    app.post(
      '/applications/:applicationId/devices/command',
      {
        schema: {
          summary: 'Send a command to many devices',
          description: 'To the devices named in `deviceIds` and those carrying any of `deviceTags`.',
          tags: ['commands'],
          params: AppParams,
          body: ManyCommandBody,
          response: {
            200: described(
              Type.Object({ success: Type.Literal(true), count: Type.Integer() }),
              'Sent; `count` devices were selected.',
            ),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const principal = allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        const { applicationId } = request.params;
        await registry.requireApplication(applicationId);
        const { deviceIds, deviceTags, ...command } = request.body;
        const devices = await registry.selectDevices(applicationId, deviceIds, deviceTags);
        const sent = await sendCommandToMany(platform, principal, devices, command);
        return { success: true as const, count: sent.length };
      },
    );

    app.get(
      '/applications/:applicationId/devices/:deviceId/logs',
      {
        schema: {
          summary: "A device's log",
          description: 'Connections, refusals and dropped values, newest first (docs/errors.md).',
          tags: ['logs'],
          params: DeviceParams,
          querystring: LogsQuery,
          response: {
            200: described(Type.Array(DeviceLogEntry), 'The entries, newest first.'),
            ...errorResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        const target = await targetOf(request.params.applicationId, request.params.deviceId);
        allow(request, { type: 'readDevice', target });
        const { limit, before } = request.query;
        const entries = await platform.store.listLogs(target!.id, {
          limit,
          ...(before !== undefined ? { before } : {}),
        });
        return entries.map((e) => ({ ...e.details, kind: e.kind, time: iso(e.time) }));
      },
    );
  };

function timeRange(q: {
  start?: number;
  end?: number;
  duration?: number;
  limit: number;
  sortDirection: 'asc' | 'desc';
}) {
  const end = q.end;
  const start = q.start ?? (q.duration !== undefined ? (end ?? Date.now()) - q.duration : undefined);
  return {
    limit: q.limit,
    sortDirection: q.sortDirection,
    ...(start !== undefined ? { start } : {}),
    ...(end !== undefined ? { end } : {}),
  };
}
