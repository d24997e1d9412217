import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { GatehouseError } from '../../core/errors.js';
import type { Platform } from '../../core/platform.js';
import { AuthDeviceBody, AuthDeviceReply, ErrorBody } from '../schemas.js';

const DEFAULT_TOKEN_TTL_SECONDS = 30 * 86_400;

export const authRoutes =
  (platform: Platform): FastifyPluginAsyncTypebox =>
  async (app) => {
    app.post(
      '/auth/device',
      {
        config: { public: true },
        schema: {
          body: AuthDeviceBody,
          response: { 200: AuthDeviceReply, 401: ErrorBody, 403: ErrorBody, 429: ErrorBody },
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
