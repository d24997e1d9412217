/**
 * The catalogue of error types the REST API answers with `{ type, message }` (spec: REST).
 * docs/errors.md documents each one; a test checks that every type here is documented.
 */
export const ERROR_TYPES = {
  Validation: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  PayloadTooLarge: 413,
  UnsupportedMediaType: 415,
  RateLimited: 429,
  InternalError: 500,
} as const;

export type ErrorType = keyof typeof ERROR_TYPES;

export class GatehouseError extends Error {
  readonly type: ErrorType;
  readonly status: number;
  /** Sent as `Retry-After` (seconds) with the answer, when trying again later can succeed. */
  readonly retryAfterSeconds: number | undefined;

  constructor(type: ErrorType, message: string, options: { retryAfterSeconds?: number } = {}) {
    super(message);
    this.name = 'GatehouseError';
    this.type = type;
    this.status = ERROR_TYPES[type];
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

const TYPE_BY_STATUS: Record<number, ErrorType> = {
  400: 'Validation',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  413: 'PayloadTooLarge',
  429: 'RateLimited',
};

export function errorForStatus(status: 400 | 401 | 403 | 404 | 413 | 429, message: string): GatehouseError {
  return new GatehouseError(TYPE_BY_STATUS[status] ?? 'InternalError', message);
}
