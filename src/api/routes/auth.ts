import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { GatehouseError } from '../../core/errors.js';
import type { Platform } from '../../core/platform.js';
import { AuthDeviceBody, AuthDeviceReply, described, errorResponses } from '../schemas.js';

const DEFAULT_TOKEN_TTL_SECONDS = 30 * 86_400;

export const authRoutes =
  (platform: Platform): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/auth/device',
      {
        config: { public: true },
        schema: {
          summary: 'Get a device token from an access key and secret',
          description:
            'Authenticates a device with an access key and secret (peripherals never authenticate themselves) ' +
            'and answers a bearer token the device then uses on the routes it may call.',
          tags: ['auth'],
          body: AuthDeviceBody,
          response: {
            200: described(AuthDeviceReply, 'The device token.'),
            ...errorResponses(400, 401, 403, 413, 415, 429),
          },
        },
      },
      async (request) => {
        const { deviceId, key, secret, tokenTTL } = request.body;
        const result = await platform.authenticateDevice(deviceId, key, secret, request.ip);
        if (!result.ok && result.code === 3) {
          // The secret was not checked: failed checks are throttled (docs/errors.md).
          throw new GatehouseError('RateLimited', result.reason, {
            retryAfterSeconds: Math.ceil((result.retryAfterMs ?? 1000) / 1000),
          });
        }
        if (!result.ok) {
          // Credentials wrong: 401. Credentials right but the device may not use them: 403.
          throw new GatehouseError(result.code === 4 ? 'Unauthorized' : 'Forbidden', result.reason);
        }
        const { device } = result.principal;
        return {
          applicationId: device.applicationId,
          deviceId: device.id,
          deviceClass: device.deviceClass,
          token: platform.issueDeviceToken(result.principal, tokenTTL ?? DEFAULT_TOKEN_TTL_SECONDS),
        };
      },
    );
  };
