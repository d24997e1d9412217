import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Platform } from '../../core/platform.js';
import { deviceListScope } from '../../domain/authorization.js';
import { parseClasses, parseTagFilter } from '../device-filters.js';
import { allow } from '../guard.js';
import { presentDevice, presentDeviceDetail, presentDevices } from '../present.js';
import {
  AppParams,
  Device,
  DeviceBody,
  DeviceDetail,
  DeviceListQuery,
  DeviceParams,
  DevicePatch,
  described,
  errorResponses,
  Page,
  Success,
} from '../schemas.js';

export const deviceRoutes =
  (platform: Platform): FastifyPluginAsyncTypebox =>
  async (app) => {
    const { registry } = platform;

    app.post(
      '/applications/:applicationId/devices',
      {
        schema: {
          summary: 'Create a device',
          tags: ['devices'],
          params: AppParams,
          body: DeviceBody,
          response: {
            201: described(Device, 'The new device.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request, reply) => {
        allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        const device = await registry.createDevice(request.params.applicationId, request.body);
        return reply.code(201).send(await presentDevice(platform, device));
      },
    );

    app.get(
      '/applications/:applicationId/devices',
      {
        schema: {
          summary: "List an application's devices",
          description: 'With a device token: the device itself and the peripherals it may act for.',
          tags: ['devices'],
          params: AppParams,
          querystring: DeviceListQuery,
          response: { 200: described(Page(Device), 'A page of devices.'), ...errorResponses(400, 401, 403, 404, 429) },
        },
      },
      async (request) => {
        const { applicationId } = request.params;
        // A device token lists itself and the peripherals it may act for (authorization.ts).
        const principal = allow(request, { type: 'listDevices', applicationId });
        await registry.requireApplication(applicationId);
        const { page, perPage, filter } = request.query;
        const scope = deviceListScope(principal);
        const { items, totalCount } = await registry.listDevices(applicationId, {
          page,
          perPage,
          ...(scope ? { scope } : {}),
          ...(filter ? { filter } : {}),
          ...(request.query.deviceClass ? { deviceClass: parseClasses(request.query.deviceClass) } : {}),
          ...(request.query.tagFilter ? { tags: parseTagFilter(request.query.tagFilter) } : {}),
          ...(request.query.connectionStatus
            ? { status: { is: request.query.connectionStatus, now: platform.clock() } }
            : {}),
        });
        return { items: await presentDevices(platform, items), count: items.length, totalCount, page, perPage };
      },
    );

    app.get(
      '/applications/:applicationId/devices/:deviceId',
      {
        schema: {
          summary: 'Get a device',
          description: "With a gateway's peripherals, or a peripheral's gateways.",
          tags: ['devices'],
          params: DeviceParams,
          response: { 200: described(DeviceDetail, 'The device.'), ...errorResponses(401, 403, 404, 429) },
        },
      },
      async (request) => {
        const device = await registry.device(request.params.deviceId);
        const target = device?.applicationId === request.params.applicationId ? device : undefined;
        allow(request, { type: 'readDevice', target });
        return presentDeviceDetail(platform, target!);
      },
    );

    app.patch(
      '/applications/:applicationId/devices/:deviceId',
      {
        schema: {
          summary: 'Change a device',
          tags: ['devices'],
          params: DeviceParams,
          body: DevicePatch,
          response: {
            200: described(Device, 'The device as changed.'),
            ...errorResponses(400, 401, 403, 404, 413, 415, 429),
          },
        },
      },
      async (request) => {
        allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        const { applicationId, deviceId } = request.params;
        return presentDevice(platform, await registry.updateDevice(applicationId, deviceId, request.body));
      },
    );

    app.delete(
      '/applications/:applicationId/devices/:deviceId',
      {
        schema: {
          summary: 'Delete a device, with its data',
          tags: ['devices'],
          params: DeviceParams,
          response: { 200: described(Success, 'Deleted.'), ...errorResponses(400, 401, 403, 404, 413, 415, 429) },
        },
      },
      async (request) => {
        allow(request, { type: 'editApplication', applicationId: request.params.applicationId });
        await registry.deleteDevice(request.params.applicationId, request.params.deviceId);
        return { success: true as const };
      },
    );
  };
