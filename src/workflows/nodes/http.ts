/**
 * HTTP (`HttpNode`): one outbound request with Node's fetch. URL, headers and body are templates;
 * the response (`{statusCode, headers, body, requestDuration}`, the body parsed as JSON when it
 * is JSON) goes to `responsePath`. A non-2xx answer is a response like any other; a transport
 * failure, a timeout (≤ 30 s) or a response over 5 MiB is an error, thrown (a run error naming
 * the node) or written to `errorPath` (`errorBehavior: "payloadPath"`). The run's own time
 * limit aborts the request too.
 */
import { GatehouseError } from '../../core/errors.js';
import { oneOf, optionalString, type Problem, registerNode, requireString } from '../catalog.js';
import { AddressNotAllowed } from '../outbound.js';
import { renderJson, renderString, setPath } from '../templates.js';
import { checkTemplate } from './core.js';

export const MAX_HTTP_TIMEOUT_SECONDS = 30;
const DEFAULT_TIMEOUT_SECONDS = 10;
/** The largest response body read. */
export const MAX_RESPONSE_BYTES = 5 * 1024 * 1024;

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'] as const;
const BODY_TYPES = ['string', 'jsonTemplate', 'none'] as const;
const UNSUPPORTED_BODY_TYPES = ['multipart', 'urlencoded', 'url', 'diskPath'];
const AUTH_TYPES = ['none', 'basic'] as const;
const ERROR_BEHAVIORS = ['throw', 'payloadPath'] as const;

class HttpNodeError extends Error {
  constructor(
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

function timeoutOf(value: unknown): number | undefined {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined;
}

function validateHttp(config: Record<string, unknown>, problem: Problem): void {
  requireString(config, 'uriTemplate', problem);
  checkTemplate(config, 'uriTemplate', problem);
  oneOf(config, 'method', METHODS, 'GET', problem);
  if (UNSUPPORTED_BODY_TYPES.includes(config.bodyType as string)) {
    problem('bodyType', `${JSON.stringify(config.bodyType)} is not supported; use string, jsonTemplate or none`);
  } else oneOf(config, 'bodyType', BODY_TYPES, 'string', problem);
  optionalString(config, 'bodyTemplate', problem);
  checkTemplate(config, 'bodyTemplate', problem);
  if (config.headerInfo !== undefined) {
    if (!Array.isArray(config.headerInfo)) problem('headerInfo', 'must be an array of {key, valueTemplate}');
    else {
      for (const [i, h] of config.headerInfo.entries()) {
        const sub: Problem = (field, message) => problem(`headerInfo/${i}/${field}`, message);
        const r = (h ?? {}) as Record<string, unknown>;
        requireString(r, 'key', sub);
        optionalString(r, 'valueTemplate', sub);
        checkTemplate(r, 'valueTemplate', sub);
      }
    }
  }
  if (config.authType === 'clientCert' || config.authType === 'credential') {
    problem('authType', `${JSON.stringify(config.authType)} is not supported; use none (headers) or basic`);
  } else if (oneOf(config, 'authType', AUTH_TYPES, 'none', problem) === 'basic') {
    const creds = (config.authCredentials ?? {}) as Record<string, unknown>;
    const sub: Problem = (field, message) => problem(`authCredentials/${field}`, message);
    requireString(creds, 'usernameTemplate', sub);
    checkTemplate(creds, 'usernameTemplate', sub);
    optionalString(creds, 'passwordTemplate', sub);
    checkTemplate(creds, 'passwordTemplate', sub);
  }
  const timeout = config.timeoutTemplate;
  if (timeout !== undefined && !(typeof timeout === 'string' && timeout.includes('{{'))) {
    const n = timeoutOf(timeout);
    if (n === undefined || n > MAX_HTTP_TIMEOUT_SECONDS) {
      problem('timeoutTemplate', `must be more than 0 and at most ${MAX_HTTP_TIMEOUT_SECONDS} seconds`);
    }
  } else checkTemplate(config, 'timeoutTemplate', problem);
  if (config.disableSSLVerification === true) problem('disableSSLVerification', 'is not supported');
  if (typeof config.caCertTemplate === 'string' && config.caCertTemplate !== '') {
    problem('caCertTemplate', 'is not supported');
  }
  if (config.encodingTemplate !== undefined && config.encodingTemplate !== 'utf8') {
    problem('encodingTemplate', 'only utf8 is supported');
  }
  optionalString(config, 'responsePath', problem);
  if (oneOf(config, 'errorBehavior', ERROR_BEHAVIORS, 'throw', problem) === 'payloadPath') {
    requireString(config, 'errorPath', problem);
  }
}

/** Reads a body up to the limit; past it the request is aborted. */
async function readLimited(response: Response, abort: AbortController): Promise<Buffer> {
  const length = Number(response.headers.get('content-length'));
  if (Number.isFinite(length) && length > MAX_RESPONSE_BYTES) {
    abort.abort();
    throw new HttpNodeError('ResponseTooLarge', `the response is ${length} bytes; at most ${MAX_RESPONSE_BYTES}`);
  }
  if (!response.body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.byteLength;
    if (size > MAX_RESPONSE_BYTES) {
      abort.abort();
      throw new HttpNodeError('ResponseTooLarge', `the response is larger than ${MAX_RESPONSE_BYTES} bytes`);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

registerNode({
  type: 'HttpNode',
  outputs: 1,
  validate: validateHttp,
  run: async (config, ctx) => {
    const { payload, node } = ctx;
    const method = ((config.method as string | undefined) ?? 'GET') as (typeof METHODS)[number];
    const url = renderString(config.uriTemplate as string, payload);
    const headers = new Headers();
    let body: string | undefined;
    const bodyType = (config.bodyType as string | undefined) ?? 'string';
    if (method !== 'GET' && method !== 'HEAD' && bodyType !== 'none') {
      const template = (config.bodyTemplate as string | undefined) ?? '';
      if (bodyType === 'jsonTemplate') {
        body = template.trim() === '' ? '' : JSON.stringify(renderJson(template, payload));
        headers.set('content-type', 'application/json');
      } else body = renderString(template, payload);
    }
    for (const h of (config.headerInfo as Array<{ key: string; valueTemplate?: string }> | undefined) ?? []) {
      headers.set(h.key, renderString(h.valueTemplate ?? '', payload));
    }
    if (config.authType === 'basic') {
      const creds = config.authCredentials as { usernameTemplate: string; passwordTemplate?: string };
      const user = renderString(creds.usernameTemplate, payload);
      const pass = renderString(creds.passwordTemplate ?? '', payload);
      headers.set('authorization', `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`);
    }
    const timeoutRendered =
      config.timeoutTemplate === undefined
        ? DEFAULT_TIMEOUT_SECONDS
        : renderString(String(config.timeoutTemplate), payload);
    // Past the maximum (a template may render anything) the timeout is the maximum.
    const seconds = Math.min(timeoutOf(timeoutRendered) ?? DEFAULT_TIMEOUT_SECONDS, MAX_HTTP_TIMEOUT_SECONDS);

    const abort = new AbortController();
    const onRunAbort = () => abort.abort();
    ctx.signal.addEventListener('abort', onRunAbort, { once: true });
    const timer = setTimeout(() => abort.abort(), seconds * 1000);
    const started = performance.now();
    try {
      let target: URL;
      try {
        target = new URL(url);
      } catch {
        throw new HttpNodeError('InvalidUrl', `${JSON.stringify(url)} is not an absolute URL`);
      }
      if (target.protocol !== 'http:' && target.protocol !== 'https:') {
        throw new HttpNodeError('InvalidUrl', `${target.protocol} URLs are not supported`);
      }
      let response: Response;
      try {
        response = await ctx.fetch(target, {
          method,
          headers,
          ...(body !== undefined ? { body } : {}),
          redirect: config.disableRedirects === true ? 'manual' : 'follow',
          signal: abort.signal,
        });
      } catch (err) {
        throw transportError(err, abort, ctx.signal, seconds, url);
      }
      let raw: Buffer;
      try {
        raw = await readLimited(response, abort);
      } catch (err) {
        if (err instanceof HttpNodeError) throw err;
        throw transportError(err, abort, ctx.signal, seconds, url);
      }
      const text = raw.toString('utf8');
      let parsed: unknown = text;
      try {
        parsed = text === '' ? text : JSON.parse(text);
      } catch {
        parsed = text;
      }
      const responsePath = config.responsePath as string | undefined;
      if (responsePath) {
        setPath(payload, responsePath, {
          statusCode: response.status,
          headers: Object.fromEntries(response.headers.entries()),
          body: parsed,
          requestDuration: Math.round(performance.now() - started),
        });
      }
      return 0;
    } catch (err) {
      if (!(err instanceof HttpNodeError)) throw err;
      if (config.errorBehavior === 'payloadPath') {
        setPath(payload, config.errorPath as string, { type: err.kind, message: err.message });
        return 0;
      }
      throw new GatehouseError('Validation', `HttpNode ${node.id}: ${method} ${url} failed: ${err.message}`);
    } finally {
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onRunAbort);
    }
  },
});

function transportError(err: unknown, abort: AbortController, run: AbortSignal, seconds: number, url: string) {
  if (run.aborted) return new HttpNodeError('RunTimeout', 'the run ran out of time');
  if (abort.signal.aborted) return new HttpNodeError('Timeout', `no response within ${seconds} s`);
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause instanceof AddressNotAllowed) return new HttpNodeError('AddressNotAllowed', cause.message);
  return new HttpNodeError(
    'RequestFailed',
    `${cause?.code ?? (err as Error).message ?? 'the request failed'}${cause?.message ? `: ${cause.message}` : ''} (${url})`,
  );
}
