/**
 * Live streams (Server-Sent Events): one device's states or commands, and an application's
 * events (issue 3; docs/streams-and-logs.md). Authorization happens once, before the stream
 * opens, and is asked again before every event, so a revoked key or a deleted device ends it.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { GatehouseError } from '../../core/errors.js';
import { STREAM_EVENT_TYPES, type StreamEvent } from '../../core/event-history.js';
import type { Platform } from '../../core/platform.js';
import { authorize, type Principal } from '../../domain/authorization.js';
import { DEVICE_CLASSES, type Device as DeviceModel } from '../../domain/model.js';
import { allow } from '../guard.js';
import { AppParams, DeviceParams, EventStreamResponse, errorResponses, Id, Query } from '../schemas.js';
import type { StreamHub } from '../streams.js';

const LastEventId = Type.String({
  maxLength: 64,
  description: 'Resume after this event id, for clients that cannot send the `Last-Event-ID` header.',
});

const DeviceStreamQuery = Query({ lastEventId: Type.Optional(LastEventId) });

const EventStreamQuery = Query({
  deviceId: Type.Optional(Type.Array(Id, { maxItems: 1000, description: 'Only these devices (repeatable).' })),
  deviceClass: Type.Optional(
    Type.String({ maxLength: 200, description: 'Only devices of these classes (comma-separated).' }),
  ),
  tagFilter: Type.Optional(
    Type.Array(Type.String({ maxLength: 600 }), {
      maxItems: 100,
      description: 'Only devices with this tag: `key` or `key:value` (repeatable; all must match).',
    }),
  ),
  types: Type.Optional(Type.String({ maxLength: 500, description: 'Only these event types (comma-separated).' })),
  lastEventId: Type.Optional(LastEventId),
});

/** A stream's answers: the event stream, or an error before it opens. */
const streamResponses = { 200: EventStreamResponse, ...errorResponses(400, 401, 403, 404, 429) };

export const streamRoutes =
  (platform: Platform, hub: StreamHub): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { registry } = platform;

    const deviceStream = (type: 'state' | 'command') =>
      app.get(
        `/applications/:applicationId/devices/:deviceId/${type}Stream`,
        {
          schema: {
            summary: type === 'state' ? "A device's states, live" : "A device's commands, live",
            tags: ['streams'],
            params: DeviceParams,
            querystring: DeviceStreamQuery,
            response: streamResponses,
          },
        },
        async (request, reply) => {
          const { applicationId, deviceId } = request.params;
          const found = await registry.device(deviceId);
          const target = found?.applicationId === applicationId ? found : undefined;
          const principal = allow(request, { type: 'readDevice', target });
          const credential = credentialCheck(platform, request, principal);
          hub.open(reply, {
            applicationId,
            payload: 'device',
            accepts: (event) => event.type === type && event.deviceId === deviceId,
            stillAllowed: () => credential() ?? stillReadable(platform, principal, applicationId, deviceId),
            lastEventId: lastEventIdOf(request, request.query.lastEventId),
          });
        },
      );
    deviceStream('state');
    deviceStream('command');

    app.get(
      '/applications/:applicationId/events',
      {
        schema: {
          summary: "An application's events, live",
          description: 'States, commands and device log entries of the whole application, filtered by the query.',
          tags: ['streams'],
          params: AppParams,
          querystring: EventStreamQuery,
          response: streamResponses,
        },
      },
      async (request, reply) => {
        const principal = allow(request, { type: 'readApplication', applicationId: request.params.applicationId });
        const credential = credentialCheck(platform, request, principal);
        const { applicationId } = request.params;
        await registry.requireApplication(applicationId);
        const accepts = eventFilter(platform, request.query);
        hub.open(reply, {
          applicationId,
          payload: 'application',
          accepts,
          stillAllowed: () =>
            credential() ??
            (registry.applicationCached(applicationId) ? null : `application ${applicationId} was deleted`),
          lastEventId: lastEventIdOf(request, request.query.lastEventId),
        });
      },
    );
  };

/**
 * Whether the credential a stream was opened with still stands as it was: a revoked token, an
 * ended session or a changed role ends the stream (the hub re-checks at once: app.ts).
 */
function credentialCheck(platform: Platform, request: FastifyRequest, principal: Principal): () => string | null {
  const version = platform.accounts.accessVersion(principal);
  const sessionId = request.sessionId ?? undefined;
  return () => platform.accounts.stillValid(principal, version, sessionId);
}

function lastEventIdOf(request: FastifyRequest, fromQuery: string | undefined): string | undefined {
  const header = request.headers['last-event-id'];
  return (Array.isArray(header) ? header[0] : header) ?? fromQuery;
}

/** Re-checks a device stream with the current definitions: deletions and revoked keys end it. */
function stillReadable(platform: Platform, principal: Principal, applicationId: string, deviceId: string) {
  const { registry } = platform;
  const target = registry.deviceCached(deviceId);
  if (!target || target.applicationId !== applicationId) return `device ${deviceId} was deleted`;
  if (principal.kind !== 'device') return null;
  const device = registry.deviceCached(principal.device.id);
  const key = registry.keyCached(principal.key.id);
  if (!device || !key) return 'the device or access key of this token was deleted';
  const decision = authorize({ kind: 'device', device, key }, { type: 'readDevice', target });
  return decision.allow ? null : decision.reason;
}

/** The application stream's filters: every one given must match. */
function eventFilter(platform: Platform, query: Static<typeof EventStreamQuery>): (event: StreamEvent) => boolean {
  const ids = query.deviceId ? new Set(query.deviceId) : undefined;
  const types = query.types ? new Set(commaList(query.types, STREAM_EVENT_TYPES, 'types')) : undefined;
  const classes = query.deviceClass ? new Set(commaList(query.deviceClass, DEVICE_CLASSES, 'deviceClass')) : undefined;
  const tags = query.tagFilter?.map(parseTag);
  const byDevice = classes || tags;
  return (event) => {
    if (ids && !ids.has(event.deviceId)) return false;
    if (types && !types.has(event.type)) return false;
    if (!byDevice) return true;
    // The device as defined now: a device moved to another class or retagged follows its new definition.
    const device = platform.registry.deviceCached(event.deviceId);
    if (!device) return false;
    if (classes && !classes.has(device.deviceClass)) return false;
    return !tags || tags.every((want) => hasTag(device, want));
  };
}

function commaList<T extends string>(value: string, allowed: readonly T[], name: string): T[] {
  const items = value
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) {
      throw new GatehouseError(
        'Validation',
        `querystring/${name} has an unknown value ${item}; one of ${allowed.join(', ')}`,
      );
    }
  }
  return items as T[];
}

/** `key` or `key:value`, as the device list's `tagFilter`. */
function parseTag(entry: string): { key: string; value?: string } {
  const at = entry.indexOf(':');
  return at < 0 ? { key: entry } : { key: entry.slice(0, at), value: entry.slice(at + 1) };
}

function hasTag(device: DeviceModel, want: { key: string; value?: string }): boolean {
  return device.tags.some((t) => t.key === want.key && (want.value === undefined || t.value === want.value));
}
