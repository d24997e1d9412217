/**
 * Time-series and last-value queries over many devices of an application (docs/data-queries.md).
 * Both are management routes: an API token only.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Static } from '@sinclair/typebox';
import { GatehouseError } from '../../core/errors.js';
import type { Platform } from '../../core/platform.js';
import { iso } from '../../core/wire.js';
import type { Device } from '../../domain/model.js';
import { allow } from '../guard.js';
import {
  AppParams,
  described,
  errorResponses,
  LastValueQueryBody,
  LastValueReply,
  TimeSeriesQueryBody,
  TimeSeriesReply,
} from '../schemas.js';

/** A query covers at most this many devices. */
export const MAX_QUERY_DEVICES = 1_000;
/** A time-series query has at most this many buckets: (end - start) / resolution. */
export const MAX_BUCKETS = 10_000;
const DAY_MS = 86_400_000;

type Selection = Static<typeof LastValueQueryBody>;

export const dataQueryRoutes =
  (platform: Platform): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/applications/:applicationId/data/time-series-query',
      {
        schema: {
          summary: 'Time-series query over many devices',
          description: 'Aggregated buckets of attribute values (docs/data-queries.md).',
          tags: ['data'],
          params: AppParams,
          body: TimeSeriesQueryBody,
          response: {
            200: described(TimeSeriesReply, 'The points of each selected device.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        allow(request, { type: 'readApplication', applicationId: request.params.applicationId });
        const { body } = request;
        const end = body.end ?? platform.clock();
        const start = body.start ?? end - (body.duration ?? DAY_MS);
        const { resolution, aggregation } = body;
        if (Number.isNaN(new Date(start).getTime())) {
          throw new GatehouseError('Validation', `body/duration reaches back to ${start}, before any date`);
        }
        if (start > end) {
          throw new GatehouseError('Validation', `body/start ${iso(start)} is after body/end ${iso(end)}`);
        }
        if (aggregation !== 'NONE' && (end - start) / resolution > MAX_BUCKETS) {
          throw new GatehouseError(
            'Validation',
            `body/resolution: ${end - start} ms from start to end at ${resolution} ms is more than ` +
              `${MAX_BUCKETS} buckets; raise the resolution or shorten the range`,
          );
        }
        const devices = await selectDevices(platform, request.params.applicationId, body);
        const series = await platform.store.querySeries({
          deviceIds: devices.map((d) => d.id),
          attributes: body.attributes ?? null,
          start,
          end,
          resolution,
          aggregation,
        });
        // No prototypes: user-chosen keys (attribute names) are keys like any other.
        const out: Record<string, { name: string; points: Array<{ time: string; data: Record<string, unknown> }> }> =
          Object.create(null);
        for (const device of devices) {
          const points = series.get(device.id) ?? [];
          out[device.id] = { name: device.name, points: points.map((p) => ({ time: iso(p.time), data: p.data })) };
        }
        return { start: iso(start), end: iso(end), resolution, aggregation, devices: out };
      },
    );

    app.post(
      '/applications/:applicationId/data/last-value-query',
      {
        schema: {
          summary: 'Last-value query over many devices',
          tags: ['data'],
          params: AppParams,
          body: LastValueQueryBody,
          response: {
            200: described(LastValueReply, 'By device id, then attribute name: the last value and its time.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        allow(request, { type: 'readApplication', applicationId: request.params.applicationId });
        const devices = await selectDevices(platform, request.params.applicationId, request.body);
        const values = await platform.store.lastValues(
          devices.map((d) => d.id),
          request.body.attributes ?? null,
        );
        // No prototypes: attribute names are keys like any other, __proto__ included.
        const out: Record<string, Record<string, { value: unknown; time: string }>> = Object.create(null);
        for (const device of devices) {
          const own: Record<string, { value: unknown; time: string }> = Object.create(null);
          for (const [attribute, { value, time }] of Object.entries(values.get(device.id) ?? {})) {
            own[attribute] = { value, time: iso(time) };
          }
          out[device.id] = own;
        }
        return out;
      },
    );
  };

/**
 * The devices of the application a query names: those in `deviceIds` or carrying any of
 * `deviceTags` (a tag without value matches any value), narrowed to `deviceClass`. Without ids
 * and tags, every device of the application (of that class). Ids of other applications' devices,
 * or of no device, select nothing. More than MAX_QUERY_DEVICES is refused.
 */
async function selectDevices(platform: Platform, applicationId: string, selection: Selection): Promise<Device[]> {
  const { registry } = platform;
  await registry.requireApplication(applicationId);
  const classes =
    selection.deviceClass === undefined
      ? undefined
      : Array.isArray(selection.deviceClass)
        ? selection.deviceClass
        : [selection.deviceClass];
  const tooMany = (n: number) =>
    new GatehouseError(
      'Validation',
      `body: the query selects ${n} devices, more than ${MAX_QUERY_DEVICES}; narrow it with deviceIds, deviceTags or deviceClass`,
    );
  const list = async (tags?: Array<{ key: string; value?: string }>): Promise<Device[]> => {
    const { items, totalCount } = await registry.listDevices(applicationId, {
      page: 0,
      perPage: MAX_QUERY_DEVICES + 1,
      ...(classes ? { deviceClass: classes } : {}),
      ...(tags ? { tags } : {}),
    });
    if (totalCount > MAX_QUERY_DEVICES) throw tooMany(totalCount);
    return items;
  };

  if (selection.deviceIds === undefined && selection.deviceTags === undefined) return list();
  const selected = new Map<string, Device>();
  for (const id of selection.deviceIds ?? []) {
    const device = await registry.device(id);
    if (device?.applicationId === applicationId && (!classes || classes.includes(device.deviceClass))) {
      selected.set(id, device);
    }
  }
  for (const tag of selection.deviceTags ?? []) {
    for (const device of await list([tag])) selected.set(device.id, device);
  }
  if (selected.size > MAX_QUERY_DEVICES) throw tooMany(selected.size);
  return [...selected.values()];
}
