/**
 * How a failure leaves the REST API: always `{ type, message }` with the status of its type in
 * the one catalogue (src/core/errors.ts). Validation messages name the field at fault by its
 * path (`body/tags/0/key`, `querystring/limit`).
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { ERROR_TYPES, type ErrorType, GatehouseError, typeForStatus } from '../core/errors.js';
import { MAX_PAYLOAD_BYTES } from '../domain/state.js';

export interface ErrorAnswer {
  status: number;
  type: ErrorType;
  message: string;
}

/** The subset of an Ajv error object the messages read. */
interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/** What each path parameter names, for the 404 of a malformed id. */
const PARAM_NOUNS: Record<string, string> = {
  applicationId: 'application',
  deviceId: 'device',
  keyId: 'access key',
  dashboardId: 'dashboard',
};

export function describeError(error: FastifyError | GatehouseError, request: FastifyRequest): ErrorAnswer {
  if (error instanceof GatehouseError) return { status: error.status, type: error.type, message: error.message };
  if (error.validation) return describeValidation(error, request);
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return answer('PayloadTooLarge', `request body exceeds ${MAX_PAYLOAD_BYTES} bytes`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return answer(
        'UnsupportedMediaType',
        `body must be application/json, not ${clip(request.headers['content-type'])}`,
      );
  }
  // Fastify's other request errors (a Content-Length that does not match the body) carry a 4xx.
  const status = error.statusCode && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 500;
  if (status === 500) return answer('InternalError', 'internal error');
  const type = typeForStatus(status);
  return answer(type, type === 'Validation' ? `body is not accepted: ${error.message}` : error.message);
}

function answer(type: ErrorType, message: string): ErrorAnswer {
  return { status: ERROR_TYPES[type], type, message };
}

/**
 * A request that fails its route's schema. A malformed id in the path names nothing that exists:
 * 404, as an id that is well formed but unknown. Everything else is 400 `Validation`.
 */
function describeValidation(error: FastifyError, request: FastifyRequest): ErrorAnswer {
  const context = error.validationContext ?? 'request';
  const errors = (error.validation ?? []) as SchemaError[];
  // A union (anyOf) reports every branch and then itself: the first branch's error is the useful one.
  const first = errors.find((e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf') ?? errors[0];
  if (context === 'params') {
    const name = first ? pathOf(first.instancePath).slice(1) : '';
    const value = (request.params as Record<string, unknown> | undefined)?.[name];
    const noun = PARAM_NOUNS[name] ?? 'resource';
    return answer('NotFound', `${noun} ${clip(String(value ?? ''))} not found (params/${name} is not an id)`);
  }
  return answer('Validation', first ? schemaMessage(context, first) : `${context} is not valid`);
}

/** One schema error as a sentence that starts with the path of the value at fault. */
export function schemaMessage(context: string, e: SchemaError): string {
  const where = `${context}${pathOf(e.instancePath)}`;
  const p = e.params;
  switch (e.keyword) {
    case 'additionalProperties':
      return `${where} has an unknown property "${String(p.additionalProperty)}"`;
    case 'required':
      return `${where}/${String(p.missingProperty)} is required`;
    case 'type':
      return `${where} must be ${typeName(String(p.type))}`;
    case 'enum':
      return `${where} must be one of ${(p.allowedValues as unknown[]).map(String).join(', ')}`;
    case 'const':
      return `${where} must be ${JSON.stringify(p.allowedValue)}`;
    default:
      return `${where} ${e.message ?? `fails ${e.keyword}`}`;
  }
}

/** An Ajv instance path (a JSON pointer) as a readable path: `/tags/0/key`. */
function pathOf(pointer: string): string {
  return pointer.replace(/~1/g, '/').replace(/~0/g, '~');
}

const TYPE_NAMES: Record<string, string> = {
  integer: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'a boolean',
  object: 'an object',
  array: 'an array',
  null: 'null',
};

function typeName(types: string): string {
  return types
    .split(',')
    .map((t) => TYPE_NAMES[t] ?? t)
    .join(' or ');
}

export function clip(value: unknown, max = 80): string {
  const text = String(value ?? '');
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * Errors Fastify answers before routing: a path that is not valid percent-encoding, or a path
 * segment longer than any id. Either names nothing: 404, in the usual shape.
 */
export function frameworkError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const failure =
    error.code === 'FST_ERR_BAD_URL' || error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? answer('NotFound', `no route ${request.method} ${clip(request.url)}: ${clip(error.message)}`)
      : describeError(error, request);
  if (failure.status >= 500)
    request.log.error({ event: 'requestFailed', err: error, method: request.method }, 'request failed');
  void reply.code(failure.status).send({ type: failure.type, message: failure.message });
}

/**
 * The path of the first value in a parsed request part for which `test(key, value)` holds, or
 * undefined. Iterative, so a deeply nested body costs no stack; the path is built only when found.
 */
export function firstPath(
  root: unknown,
  context: string,
  test: (key: string, value: unknown) => boolean,
): string | undefined {
  type Node = { value: unknown; key: string; parent: Node | undefined };
  const stack: Node[] = [{ value: root, key: context, parent: undefined }];
  for (let node = stack.pop(); node; node = stack.pop()) {
    if (node.parent && test(node.key, node.value)) {
      const keys: string[] = [];
      for (let n: Node | undefined = node; n; n = n.parent) keys.push(n.key);
      return keys.reverse().join('/');
    }
    const v = node.value;
    if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) {
      for (const [key, child] of Object.entries(v)) stack.push({ value: child, key, parent: node });
    }
  }
  return undefined;
}

/**
 * A number that is not finite. Ajv coerces a query value such as `1e400` to Infinity and then
 * skips its bounds (they apply to finite numbers only); a JSON body may carry 1e400 where any
 * value is allowed. Neither is a number anything can store.
 */
export const isNonFinite = (_key: string, value: unknown): boolean =>
  typeof value === 'number' && !Number.isFinite(value);

/** Keys that a naive merge would turn into prototype changes; refused in JSON bodies. */
export const isPrototypeKey = (key: string, value: unknown): boolean =>
  key === '__proto__' ||
  (key === 'constructor' && value !== null && typeof value === 'object' && Object.hasOwn(value, 'prototype'));
