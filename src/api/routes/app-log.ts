/**
 * The application communication log (issue 3; docs/streams-and-logs.md): device log entries,
 * commands sent and states accepted, newest first, paged with an opaque cursor.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { GatehouseError } from '../../core/errors.js';
import { logFields, STREAM_EVENT_TYPES } from '../../core/event-history.js';
import type { Platform } from '../../core/platform.js';
import { iso } from '../../core/wire.js';
import type { ApplicationLogCursor, ApplicationLogEntry, ApplicationLogKind } from '../../store/types.js';
import { parseClasses, parseTagFilter } from '../device-filters.js';
import { allow } from '../guard.js';
import { AppLogPage, AppParams, described, errorResponses, Id, Query } from '../schemas.js';

/** The log's kinds are the application stream's event types. */
export const LOG_KINDS: readonly ApplicationLogKind[] = STREAM_EVENT_TYPES;

const AppLogQuery = Query({
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'At most this many entries.' }),
  before: Type.Optional(
    Type.String({ maxLength: 200, description: 'The `nextBefore` of the previous page: the page after it.' }),
  ),
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
  kinds: Type.Optional(Type.String({ maxLength: 500, description: 'Only these kinds (comma-separated).' })),
  start: Type.Optional(Type.Integer({ description: 'From this time (epoch milliseconds, inclusive).' })),
  end: Type.Optional(Type.Integer({ description: 'Up to this time (epoch milliseconds, inclusive).' })),
});

export const appLogRoutes =
  (platform: Platform): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.get(
      '/applications/:applicationId/logs',
      {
        schema: {
          summary: "An application's communication log",
          description: 'Device log entries, commands sent and states accepted, newest first.',
          tags: ['logs'],
          params: AppParams,
          querystring: AppLogQuery,
          response: {
            200: described(AppLogPage, 'A page of entries, newest first.'),
            ...errorResponses(400, 401, 403, 404, 429),
          },
        },
      },
      async (request) => {
        allow(request, { type: 'readApplication', applicationId: request.params.applicationId });
        const { applicationId } = request.params;
        await platform.registry.requireApplication(applicationId);
        const { limit, before, deviceId, deviceClass, tagFilter, kinds, start, end } = request.query;
        const deviceIds = await devicesOf(platform, applicationId, deviceId, deviceClass, tagFilter);
        if (deviceIds?.length === 0) return { items: [], count: 0, nextBefore: null };
        // One more than asked: whether it exists decides whether there is a next page.
        const entries = await platform.store.listApplicationLog({
          applicationId,
          limit: limit + 1,
          ...(before !== undefined ? { before: decodeCursor(before) } : {}),
          ...(deviceIds ? { deviceIds } : {}),
          ...(kinds ? { kinds: parseKinds(kinds) } : {}),
          ...(start !== undefined ? { start } : {}),
          ...(end !== undefined ? { end } : {}),
        });
        const page = entries.slice(0, limit);
        const last = page[page.length - 1];
        return {
          items: page.map(presentEntry),
          count: page.length,
          nextBefore: entries.length > limit && last ? encodeCursor(last.cursor) : null,
        };
      },
    );
  };

/** Most devices a class or tag filter of the log may stand for, as a list of ids. */
const MAX_FILTERED_DEVICES = 1_000;

/**
 * The devices the log is limited to: those named, narrowed by class and tags (the device list's
 * filters); undefined: every device.
 */
async function devicesOf(
  platform: Platform,
  applicationId: string,
  deviceId: string[] | undefined,
  deviceClass: string | undefined,
  tagFilter: string[] | undefined,
): Promise<string[] | undefined> {
  if (!deviceClass && !tagFilter) return deviceId;
  const { items, totalCount } = await platform.registry.listDevices(applicationId, {
    page: 0,
    perPage: MAX_FILTERED_DEVICES,
    ...(deviceClass ? { deviceClass: parseClasses(deviceClass) } : {}),
    ...(tagFilter ? { tags: parseTagFilter(tagFilter) } : {}),
  });
  if (totalCount > MAX_FILTERED_DEVICES && !deviceId) {
    throw new GatehouseError(
      'Validation',
      `the class and tag filters match ${totalCount} devices, more than ${MAX_FILTERED_DEVICES}: narrow them or name devices with deviceId`,
    );
  }
  const matching = items.map((d) => d.id);
  return deviceId ? deviceId.filter((id) => matching.includes(id)) : matching;
}

function presentEntry(entry: ApplicationLogEntry): Record<string, unknown> {
  const fields = entry.kind === 'state' || entry.kind === 'command' ? entry.details : logFields(entry.details);
  const fixed = {
    ...(entry.id !== undefined ? { id: entry.id } : {}),
    kind: entry.kind,
    time: iso(entry.time),
    deviceId: entry.deviceId,
  };
  // The fixed fields come first and win over a detail of the same name.
  return Object.assign({ ...fixed, ...fields }, fixed);
}

function parseKinds(value: string): ApplicationLogKind[] {
  const kinds = value
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '');
  for (const kind of kinds) {
    if (!(LOG_KINDS as readonly string[]).includes(kind)) {
      throw new GatehouseError(
        'Validation',
        `querystring/kinds has an unknown kind ${kind}; one of ${LOG_KINDS.join(', ')}`,
      );
    }
  }
  return kinds as ApplicationLogKind[];
}

const SOURCES = ['log', 'command', 'state'] as const;

/** The cursor is opaque to clients: base64url of `[time, source, key]`. */
export function encodeCursor(cursor: ApplicationLogCursor): string {
  return Buffer.from(JSON.stringify([cursor.time, cursor.source, cursor.key])).toString('base64url');
}

export function decodeCursor(text: string): ApplicationLogCursor {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (Array.isArray(value) && value.length === 3) {
    const [time, source, key] = value as [unknown, unknown, unknown];
    const keyOk =
      source === 'state' ? typeof key === 'string' && key.length <= 64 : Number.isSafeInteger(key as number);
    if (Number.isSafeInteger(time) && SOURCES.includes(source as (typeof SOURCES)[number]) && keyOk) {
      return { time: time as number, source: source as ApplicationLogCursor['source'], key: key as string | number };
    }
  }
  throw new GatehouseError('Validation', 'querystring/before is not a cursor this endpoint returned (nextBefore)');
}
