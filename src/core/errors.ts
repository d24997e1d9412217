/**
 * The catalogue of error types the REST API answers with `{ type, message }` (spec: REST), and
 * the one map from an HTTP status to its type. Every answer the API gives names a type of this
 * catalogue; docs/errors.md documents each one, and test/errors-documented.test.ts checks that
 * the two lists are the same.
 */
export const ERROR_TYPES = {
  Validation: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  Conflict: 409,
  PayloadTooLarge: 413,
  UnsupportedMediaType: 415,
  RateLimited: 429,
  InternalError: 500,
  Unavailable: 503,
} as const;

export type ErrorType = keyof typeof ERROR_TYPES;
export type ErrorStatus = (typeof ERROR_TYPES)[ErrorType];

/** Status to type: the catalogue read backwards (each status has exactly one type). */
const TYPE_BY_STATUS = new Map<number, ErrorType>(
  Object.entries(ERROR_TYPES).map(([type, status]) => [status, type as ErrorType]),
);

/**
 * The type answered for an HTTP status. A 4xx the catalogue does not name (a framework error we
 * do not expect) is a request we could not take: `Validation`; anything else is our fault.
 */
export function typeForStatus(status: number): ErrorType {
  return TYPE_BY_STATUS.get(status) ?? (status >= 400 && status < 500 ? 'Validation' : 'InternalError');
}

export interface GatehouseErrorOptions {
  /** 429 only: whole seconds until the caller may send again (the `Retry-After` header). */
  retryAfterSeconds?: number;
}

export class GatehouseError extends Error {
  readonly type: ErrorType;
  readonly status: ErrorStatus;
  /** Sent as `Retry-After` (seconds) with the answer, when trying again later can succeed. */
  readonly retryAfterSeconds: number | undefined;

  constructor(type: ErrorType, message: string, options: GatehouseErrorOptions = {}) {
    super(message);
    this.name = 'GatehouseError';
    this.type = type;
    this.status = ERROR_TYPES[type];
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function errorForStatus(
  status: 400 | 401 | 403 | 404 | 413 | 429,
  message: string,
  options: GatehouseErrorOptions = {},
): GatehouseError {
  return new GatehouseError(typeForStatus(status), message, options);
}
