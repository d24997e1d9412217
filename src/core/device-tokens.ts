/**
 * Device tokens from `POST /auth/device`: compact JWTs (HS256) signed with a per-installation
 * secret. They name the device and the access key; the key is re-checked on every use, so
 * deactivating or deleting a key revokes its tokens at once.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface DeviceTokenClaims {
  /** Device id. */
  sub: string;
  /** Application id. */
  app: string;
  /** Access key id. */
  key: string;
  iat: number;
  exp: number;
}

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

export function signDeviceToken(claims: DeviceTokenClaims, secret: string): string {
  const body = `${HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

/** The claims of a valid, unexpired token; undefined otherwise. */
export function verifyDeviceToken(token: string, secret: string, nowMs: number): DeviceTokenClaims | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const [header, payload, signature] = parts as [string, string, string];
  if (header !== HEADER) return undefined;
  const expected = createHmac('sha256', secret).update(`${header}.${payload}`).digest();
  const actual = Buffer.from(signature, 'base64url');
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as DeviceTokenClaims;
    if (typeof claims.sub !== 'string' || typeof claims.key !== 'string' || typeof claims.exp !== 'number') {
      return undefined;
    }
    return claims.exp * 1000 > nowMs ? claims : undefined;
  } catch {
    return undefined;
  }
}

export function looksLikeDeviceToken(token: string): boolean {
  return token.startsWith(`${HEADER}.`);
}
