/**
 * The API reference (docs/api-reference.md) against a real server: /openapi.json is a sound
 * OpenAPI 3 document; it describes every route the server registered, with a response schema for
 * its success and for the errors the shared machinery can answer; /docs loads nothing that is not
 * served by this server; and every answer the API gives here (a success and errors for each
 * operation) matches the schema the document declares for its path, method and status.
 *
 * Nothing here lists the routes: they come from the server (`api.registeredRoutes`) and from the
 * document, so a route added later is checked without editing this file. The calls below are
 * written out per area (a success and errors); probes of every operation in the document add a
 * 401, a 404 and more; the last test names each operation that no call answered with success.
 */
import { readFileSync } from 'node:fs';
import vm from 'node:vm';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import type { RouteOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCS_PREFIX, isReferenceRoute, OPENAPI_PATH } from '../../src/api/openapi.js';
import { ERROR_TYPES } from '../../src/core/errors.js';
import { MAX_PAYLOAD_BYTES } from '../../src/domain/state.js';
import {
  ADMIN_TOKEN,
  createFleet,
  deviceToken,
  ok,
  type SeedFleet,
  startTestServer,
  type TestServer,
} from '../helpers/server.js';

// ajv-formats is CommonJS: its default export is the module itself.
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

const OPERATION_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
/** Methods whose body Fastify reads: any route of these can answer 400 (unreadable) and 413 (too large). */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const ERROR_STATUSES = new Set<number>(Object.values(ERROR_TYPES));
/** Well formed, and no id of anything. */
const UNKNOWN_ID = '0123456789abcdef01234567';
/** The server below protects /metrics with this token, so that its 401 is answered too. */
const METRICS_TOKEN = 'openapi-metrics-token-0123456789';

interface MediaType {
  schema?: unknown;
}
interface Response {
  description?: string;
  content?: Record<string, MediaType>;
  headers?: Record<string, { schema?: { type?: string } }>;
}
interface Operation {
  summary?: string;
  tags?: string[];
  security?: Array<Record<string, string[]>>;
  parameters?: Array<{ name: string; in: string; required?: boolean }>;
  requestBody?: { content?: Record<string, MediaType> };
  responses?: Record<string, Response>;
}
interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Partial<Record<(typeof OPERATION_METHODS)[number], Operation>>>;
  components?: { securitySchemes?: Record<string, unknown> };
  security?: Array<Record<string, string[]>>;
  tags?: Array<{ name: string }>;
}

/** One answer the API gave during this file. */
interface Exchange {
  method: string;
  url: string;
  status: number;
  contentType: string;
  headers: Headers;
  body: string;
}

const isSuccess = (status: number | string) => /^2\d\d$/.test(String(status));
const isClientError = (status: number | string) => /^4\d\d$/.test(String(status));
/** A JSON pointer token. */
const token = (segment: string) => segment.replace(/~/g, '~0').replace(/\//g, '~1');
/** `text/event-stream; charset=utf-8` → `text/event-stream`. */
const essence = (contentType: string) => contentType.split(';')[0]!.trim().toLowerCase();

function operations(doc: OpenApiDocument): Array<{ path: string; method: string; op: Operation }> {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    OPERATION_METHODS.filter((m) => item[m]).map((method) => ({ path, method, op: item[method]! })),
  );
}

/** The document's operation for a request, as the router picks it: a literal segment beats a parameter. */
function operationFor(doc: OpenApiDocument, method: string, url: string) {
  const pathname = new URL(url, 'http://localhost').pathname;
  const literals = (path: string) => path.split('/').filter((s) => s && !s.startsWith('{')).length;
  return operations(doc)
    .filter((o) => o.method === method.toLowerCase())
    .filter((o) => {
      const pattern = o.path
        .split(/\{[^}]+\}/)
        .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
        .join('[^/]+');
      return new RegExp(`^${pattern}$`).test(pathname);
    })
    .sort((a, b) => literals(b.path) - literals(a.path))[0];
}

/** A path of the document with its parameters filled in (`ids` by name; any other: UNKNOWN_ID). */
function fill(path: string, ids: Record<string, string>): string {
  return path.replace(/\{([^}]+)\}/g, (_m, name: string) => ids[name] ?? UNKNOWN_ID);
}

/** Every `$ref` in the document, with the JSON pointer where it sits. */
function refsOf(value: unknown, at = '#'): Array<{ at: string; ref: string }> {
  if (value === null || typeof value !== 'object') return [];
  const own =
    typeof (value as { $ref?: unknown }).$ref === 'string' ? [{ at, ref: (value as { $ref: string }).$ref }] : [];
  return [...own, ...Object.entries(value).flatMap(([key, child]) => refsOf(child, `${at}/${token(key)}`))];
}

function resolvePointer(doc: unknown, ref: string): unknown {
  if (!ref.startsWith('#')) return undefined;
  let node: unknown = doc;
  for (const raw of ref.slice(1).split('/').slice(1)) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (node === null || typeof node !== 'object' || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

describe('API reference', () => {
  let server: TestServer;
  let base: string;
  let doc: OpenApiDocument;
  let fleet: SeedFleet;
  let keyId: string;
  let gatewayToken: string;
  const exchanges: Exchange[] = [];

  /** A request over real HTTP, recorded for the conformance check. A live stream is left once its head arrives. */
  async function send(
    method: string,
    url: string,
    options: { body?: unknown; token?: string | null; contentType?: string; headers?: Record<string, string> } = {},
  ): Promise<{ status: number; body: unknown; headers: Headers }> {
    const headers: Record<string, string> = { ...options.headers };
    const auth = options.token === undefined ? ADMIN_TOKEN : options.token;
    if (auth) headers.authorization = `Bearer ${auth}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/json';
      body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    }
    const res = await fetch(`${base}${url}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const contentType = res.headers.get('content-type') ?? '';
    let text = '';
    if (essence(contentType) === 'text/event-stream') await res.body?.cancel();
    else text = await res.text();
    exchanges.push({ method, url, status: res.status, contentType, headers: res.headers, body: text });
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON: the conformance check says whether it had to be
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }
  /** `send`, expecting `status`; answers the body. */
  async function expectStatus<T = Record<string, unknown>>(
    status: number,
    method: string,
    url: string,
    options: Parameters<typeof send>[2] = {},
  ): Promise<T> {
    const answer = await send(method, url, options);
    expect([method, url, answer.status, answer.body]).toEqual([method, url, status, answer.body]);
    return answer.body as T;
  }

  beforeAll(async () => {
    server = await startTestServer({ metricsToken: METRICS_TOKEN });
    base = server.running.urls.http;
    doc = ok(await server.http<OpenApiDocument>('GET', OPENAPI_PATH, undefined, null), 200);
    fleet = await createFleet(server, { application: { rateLimit: { messages: 10_000, windowSeconds: 60 } } });
    keyId = ok(
      await server.http<{ items: Array<{ id: string }> }>('GET', `/applications/${fleet.applicationId}/keys`),
      200,
    ).items[0]!.id;
    gatewayToken = await deviceToken(server, fleet.gateway, fleet);
  });
  afterAll(() => server?.stop());

  describe('the document', () => {
    it('is OpenAPI 3 with operations on every path, a response on every operation, and every $ref resolving', () => {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
        version: string;
      };
      expect(doc.openapi).toMatch(/^3\.\d+\.\d+$/);
      expect(doc.info).toMatchObject({ title: 'Gatehouse', version: pkg.version });
      expect(doc.components?.securitySchemes).toMatchObject({
        bearer: { type: 'http', scheme: 'bearer' },
        session: { type: 'apiKey', in: 'cookie', name: 'gh_session' },
      });
      expect(Object.keys(doc.paths).length).toBeGreaterThan(0);
      const problems: string[] = [];
      const tags = new Set((doc.tags ?? []).map((t) => t.name));
      const schemes = new Set(Object.keys(doc.components?.securitySchemes ?? {}));
      for (const [path, item] of Object.entries(doc.paths)) {
        if (!path.startsWith('/')) problems.push(`${path}: a path starts with /`);
        if (isReferenceRoute(path)) problems.push(`${path}: the reference's own routes are not in the document`);
        if (!OPERATION_METHODS.some((m) => item[m])) problems.push(`${path}: no operation`);
      }
      for (const { path, method, op } of operations(doc)) {
        const where = `${method.toUpperCase()} ${path}`;
        const responses = Object.entries(op.responses ?? {});
        if (responses.length === 0) problems.push(`${where}: no responses`);
        for (const [status, response] of responses) {
          if (!/^[1-5]\d\d$/.test(status)) problems.push(`${where}: response ${status} is not a status`);
          if (!response.description) problems.push(`${where}: response ${status} has no description`);
        }
        // A path's parameters are declared, required, and in the path.
        const declared = (op.parameters ?? []).filter((p) => p.in === 'path');
        const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
        expect([where, declared.map((p) => p.name).sort()]).toEqual([where, [...inPath].sort()]);
        for (const p of declared) if (p.required !== true) problems.push(`${where}: path parameter ${p.name}`);
        for (const tag of op.tags ?? []) if (!tags.has(tag)) problems.push(`${where}: tag ${tag} is not declared`);
        for (const requirement of [...(op.security ?? []), ...(doc.security ?? [])]) {
          for (const scheme of Object.keys(requirement)) {
            if (!schemes.has(scheme)) problems.push(`${where}: security scheme ${scheme} is not declared`);
          }
        }
      }
      for (const { at, ref } of refsOf(doc)) {
        if (resolvePointer(doc, ref) === undefined) problems.push(`${at}: $ref ${ref} does not resolve`);
      }
      expect(problems).toEqual([]);
    });

    it('describes every route the server registered, with a success and the errors its machinery can answer', () => {
      const routes: readonly RouteOptions[] = server.running.api.registeredRoutes;
      expect(routes.length).toBeGreaterThan(0);
      const problems: string[] = [];
      const documented = new Set<string>();
      for (const route of routes) {
        for (const method of [route.method].flat()) {
          if (method === 'HEAD') continue; // Fastify answers HEAD with its GET
          const where = `${method} ${route.url}`;
          if (isReferenceRoute(route.url)) {
            if (!route.config?.public) problems.push(`${where}: the reference is public`);
            continue;
          }
          // A trailing wildcard is a parameter named `*` in the document.
          const path = route.url.replace(/:(\w+)/g, '{$1}').replace(/\*$/, '{*}');
          const op = doc.paths[path]?.[method.toLowerCase() as (typeof OPERATION_METHODS)[number]];
          if (!op) {
            problems.push(
              `${where} is not in ${OPENAPI_PATH}: add it in a plugin registered after the reference (src/api/app.ts)`,
            );
            continue;
          }
          documented.add(`${method.toLowerCase()} ${path}`);
          const response = (route.schema?.response ?? {}) as Record<string, Record<string, unknown>>;
          const statuses = Object.keys(response);
          if (!statuses.some(isSuccess)) problems.push(`${where}: no response schema for a 2xx status`);
          for (const status of statuses.filter(isSuccess)) {
            if (!op.responses?.[status]?.content) problems.push(`${where}: ${status} has no content in the document`);
          }
          // What the shared machinery answers, whatever the handler does.
          const needs: Array<[number, string]> = [];
          if (!route.config?.public) {
            needs.push([401, 'authentication runs first'], [429, 'failed credential checks are throttled']);
          }
          if (route.url.includes(':')) needs.push([404, 'an id in the path that is not an id']);
          if (route.schema?.querystring || route.schema?.body) needs.push([400, 'its schema refuses bad input']);
          if (BODY_METHODS.has(method)) {
            needs.push([400, 'a body that is not JSON'], [413, `a body over ${MAX_PAYLOAD_BYTES} bytes`]);
          }
          for (const [status, why] of needs) {
            if (!statuses.includes(String(status)))
              problems.push(`${where}: no response schema for ${status} (${why})`);
          }
          for (const status of statuses.filter((s) => !isSuccess(s))) {
            if (!ERROR_STATUSES.has(Number(status))) problems.push(`${where}: ${status} is not in the error catalogue`);
            const properties = (response[status]?.properties ?? {}) as Record<string, unknown>;
            if (!properties.type || !properties.message) problems.push(`${where}: ${status} is not {type, message}`);
          }
          if (!op.summary) problems.push(`${where}: no summary`);
          if (!op.tags?.length) problems.push(`${where}: no tags`);
          const secured = (op.security ?? doc.security ?? []).length > 0;
          if (secured === Boolean(route.config?.public)) {
            problems.push(`${where}: the document says it ${secured ? 'needs' : 'needs no'} credentials`);
          }
        }
      }
      // And nothing in the document that the server does not serve.
      for (const { path, method } of operations(doc)) {
        if (!documented.has(`${method} ${path}`)) problems.push(`${method.toUpperCase()} ${path}: not served`);
      }
      expect(problems).toEqual([]);
    });
  });

  describe('/docs', () => {
    it('is served without credentials, from this server only: every page, script, style, image and the document', async () => {
      for (const page of [DOCS_PREFIX, `${DOCS_PREFIX}/`]) {
        const res = await fetch(`${base}${page}`);
        expect([page, res.status]).toEqual([page, 200]);
        expect(res.headers.get('content-type')).toMatch(/^text\/html/);
        // The browser itself refuses anything from elsewhere: every source is this server or inline
        // data (and inline styles, which load nothing).
        const csp = res.headers.get('content-security-policy') ?? '';
        expect(csp).toMatch(/default-src 'self'/);
        for (const [directive, ...sources] of csp.split(';').map((d) => d.trim().split(/\s+/))) {
          const allowed = ["'self'", "'none'", 'data:', ...(directive === 'style-src' ? ["'unsafe-inline'"] : [])];
          for (const source of sources)
            expect([directive, source, allowed.includes(source)]).toEqual([directive, source, true]);
        }
        const html = await res.text();
        const pageUrl = new URL(res.url);
        const referenced = [...html.matchAll(/\b(?:src|href)\s*=\s*["']([^"']+)["']/gi)].map((m) => m[1]!);
        expect(referenced.length).toBeGreaterThan(3);

        const visited = new Set<string>();
        const visit = async (reference: string, from: URL): Promise<void> => {
          if (reference.startsWith('data:')) return;
          const target = new URL(reference, from);
          expect([reference, target.origin]).toEqual([reference, pageUrl.origin]);
          if (visited.has(target.href)) return;
          visited.add(target.href);
          const asset = await fetch(target);
          expect([target.pathname, asset.status]).toEqual([target.pathname, 200]);
          const text = await asset.text();
          // Stylesheets load fonts and images by url(...): those are local too.
          if ((asset.headers.get('content-type') ?? '').startsWith('text/css')) {
            for (const m of text.matchAll(/url\(\s*["']?([^"')]+)["']?\s*\)/g)) await visit(m[1]!, target);
          }
          if (target.pathname.endsWith('/swagger-initializer.js')) await followInitializer(text, pageUrl, visit);
        };
        for (const reference of referenced) await visit(reference, pageUrl);
        expect([...visited].some((u) => u.endsWith('/swagger-initializer.js'))).toBe(true);
      }
    });

    it('is not behind authentication, and neither is /openapi.json', async () => {
      for (const path of [OPENAPI_PATH, DOCS_PREFIX, `${DOCS_PREFIX}/json`]) {
        const res = await fetch(`${base}${path}`, { headers: { authorization: 'Bearer not-a-token' } });
        expect([path, res.status]).toEqual([path, 200]);
      }
    });
  });

  /**
   * Runs the viewer's initializer script as a browser would (window.onload), with the viewer
   * replaced by a stand-in that keeps its configuration: the document it loads and every other
   * URL in it must be local, and the document must be this server's.
   */
  async function followInitializer(script: string, page: URL, visit: (u: string, from: URL) => Promise<void>) {
    const configs: Array<Record<string, unknown>> = [];
    const viewer = Object.assign(
      (config: Record<string, unknown>) => {
        configs.push(config);
        return { initOAuth() {} };
      },
      { presets: { apis: {} }, plugins: { DownloadUrl: {} } },
    );
    const window: { location: { href: string }; onload?: () => void } = { location: { href: page.href } };
    const document = {
      body: {},
      querySelector: () => null,
      createElement: () => {
        let href = '';
        return {
          get href() {
            return href;
          },
          set href(value: string) {
            href = new URL(value, page).href;
          },
        };
      },
    };
    vm.runInNewContext(script, {
      window,
      document,
      SwaggerUIBundle: viewer,
      SwaggerUIStandalonePreset: {},
      MutationObserver: class {
        observe() {}
        disconnect() {}
      },
    });
    window.onload?.();
    expect(configs).toHaveLength(1);
    const config = configs[0]!;
    expect(config.validatorUrl ?? null).toBeNull(); // no badge fetched from a validation service
    const urls = Object.values(config).filter((v): v is string => typeof v === 'string' && /^[a-z]+:/i.test(v));
    expect(urls).toContain(config.url);
    for (const url of urls) await visit(url, page);
    const served = await (await fetch(String(config.url))).json();
    expect(served).toEqual(doc);
  }

  describe('answers', () => {
    const app = () => `/applications/${fleet.applicationId}`;
    const device = (id: string) => `${app()}/devices/${id}`;

    it('health, readiness, metrics and device authentication', async () => {
      await expectStatus(200, 'GET', '/health', { token: null });
      await expectStatus(200, 'GET', '/ready', { token: null });
      await expectStatus(401, 'GET', '/metrics', { token: null });
      await expectStatus(401, 'GET', '/metrics');
      await expectStatus(200, 'GET', '/metrics', { token: METRICS_TOKEN });
      const credentials = { deviceId: fleet.gateway, key: fleet.key, secret: fleet.secret };
      await expectStatus(200, 'POST', '/auth/device', { token: null, body: credentials });
      await expectStatus(401, 'POST', '/auth/device', { token: null, body: { ...credentials, secret: 'wrong' } });
      await expectStatus(403, 'POST', '/auth/device', { token: null, body: { ...credentials, deviceId: fleet.bound } });
      await expectStatus(400, 'POST', '/auth/device', { token: null, body: { deviceId: fleet.gateway } });
      await expectStatus(415, 'POST', '/auth/device', { token: null, body: 'key=x', contentType: 'text/plain' });
      const large = JSON.stringify({ ...credentials, padding: 'x'.repeat(MAX_PAYLOAD_BYTES) });
      await expectStatus(413, 'POST', '/auth/device', { token: null, body: large });
    });

    it('applications', async () => {
      const scratch = await expectStatus<{ id: string }>(201, 'POST', '/applications', { body: { name: 'Scratch' } });
      await expectStatus(400, 'POST', '/applications', { body: { colour: 'red' } });
      await expectStatus(200, 'GET', '/applications');
      await expectStatus(400, 'GET', '/applications?perPage=0');
      await expectStatus(403, 'GET', '/applications', { token: gatewayToken });
      await expectStatus(200, 'GET', app());
      await expectStatus(200, 'PATCH', `/applications/${scratch.id}`, { body: { description: 'for a while' } });
      await expectStatus(400, 'PATCH', `/applications/${scratch.id}`, { body: { logRetentionDays: 0 } });
      await expectStatus(415, 'DELETE', `/applications/${scratch.id}`, { body: 'now', contentType: 'text/plain' });
      await expectStatus(200, 'DELETE', `/applications/${scratch.id}`);
      await expectStatus(404, 'DELETE', `/applications/${scratch.id}`);
      await expectStatus(404, 'GET', `/applications/${scratch.id}`);
    });

    it('devices', async () => {
      const scratch = await expectStatus<{ id: string }>(201, 'POST', `${app()}/devices`, {
        body: { name: 'scratch' },
      });
      await expectStatus(400, 'POST', `${app()}/devices`, { body: { name: '' } });
      await expectStatus(200, 'GET', `${app()}/devices?perPage=2&tagFilter=none`);
      await expectStatus(200, 'GET', `${app()}/devices`, { token: gatewayToken });
      await expectStatus(400, 'GET', `${app()}/devices?deviceClass=toaster`);
      await expectStatus(200, 'GET', device(fleet.gateway)); // with its peripherals
      await expectStatus(200, 'GET', device(fleet.bound)); // with its gateways
      await expectStatus(403, 'GET', device(fleet.standalone), { token: gatewayToken });
      await expectStatus(200, 'PATCH', device(scratch.id), { body: { tags: [{ key: 'site', value: 'north' }] } });
      await expectStatus(400, 'PATCH', device(scratch.id), { body: { deviceClass: 'toaster' } });
      await expectStatus(200, 'DELETE', device(scratch.id));
      await expectStatus(404, 'GET', device(scratch.id));
      await expectStatus(404, 'PATCH', device(scratch.id), { body: { description: 'gone' } });
    });

    it('access keys', async () => {
      const scratch = await expectStatus<{ id: string }>(201, 'POST', `${app()}/keys`, {
        body: { description: 'scratch', filterType: 'whitelist', deviceIds: [fleet.standalone] },
      });
      await expectStatus(400, 'POST', `${app()}/keys`, { body: { status: 'sleepy' } });
      await expectStatus(200, 'GET', `${app()}/keys`);
      await expectStatus(200, 'GET', `${app()}/keys/${keyId}`);
      await expectStatus(200, 'PATCH', `${app()}/keys/${scratch.id}`, { body: { status: 'inactive' } });
      await expectStatus(400, 'PATCH', `${app()}/keys/${scratch.id}`, { body: { secret: 'mine' } });
      await expectStatus(200, 'DELETE', `${app()}/keys/${scratch.id}`);
      await expectStatus(404, 'GET', `${app()}/keys/${scratch.id}`);
    });

    it('users, sign-in, members and API tokens', async () => {
      const password = 'a long enough password';
      const user = await expectStatus<{ id: string }>(201, 'POST', '/users', {
        body: { email: 'ref@example.com', password, name: 'Ref' },
      });
      await expectStatus(409, 'POST', '/users', { body: { email: 'REF@example.com', password } });
      await expectStatus(400, 'POST', '/users', { body: { email: 'short@example.com', password: 'short' } });
      await expectStatus(200, 'GET', '/users');
      await expectStatus(403, 'GET', '/users', { token: gatewayToken });
      await expectStatus(200, 'GET', `/users/${user.id}`);
      await expectStatus(404, 'GET', `/users/${UNKNOWN_ID}`);
      await expectStatus(200, 'PATCH', `/users/${user.id}`, { body: { name: 'Reference' } });
      await expectStatus(400, 'PATCH', `/users/${user.id}`, { body: { role: 'owner' } });

      const signIn = await send('POST', '/auth/user', { token: null, body: { email: 'ref@example.com', password } });
      expect(signIn.status).toBe(200);
      const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] as string;
      const csrf = (signIn.body as { csrfToken: string }).csrfToken;
      await expectStatus(401, 'POST', '/auth/user', {
        token: null,
        body: { email: 'ref@example.com', password: 'wrong one!' },
      });
      await expectStatus(200, 'GET', '/me', { token: null, headers: { cookie } });
      await expectStatus(200, 'GET', '/me');

      const members = `${app()}/members`;
      await expectStatus(201, 'POST', members, { body: { email: 'ref@example.com', role: 'viewer' } });
      await expectStatus(409, 'POST', members, { body: { email: 'ref@example.com', role: 'viewer' } });
      await expectStatus(200, 'GET', members);
      await expectStatus(400, 'GET', `${members}?perPage=0`);
      await expectStatus(200, 'PATCH', `${members}/${user.id}`, { body: { role: 'editor' } });
      await expectStatus(400, 'PATCH', `${members}/${user.id}`, { body: { role: 'king' } });
      await expectStatus(403, 'DELETE', `${members}/${user.id}`, {
        token: null,
        headers: { cookie, 'x-csrf-token': csrf },
      });
      await expectStatus(200, 'DELETE', `${members}/${user.id}`);
      await expectStatus(404, 'DELETE', `${members}/${user.id}`);

      const tokens = `${app()}/tokens`;
      const made = await expectStatus<{ id: string }>(201, 'POST', tokens, { body: { name: 'ci', role: 'viewer' } });
      await expectStatus(400, 'POST', tokens, { body: { name: 'ci', role: 'viewer', expiresAt: 5 } });
      await expectStatus(200, 'GET', tokens);
      await expectStatus(400, 'GET', `${tokens}?page=-1`);
      await expectStatus(200, 'DELETE', `${tokens}/${made.id}`);
      await expectStatus(404, 'DELETE', `${tokens}/${made.id}`);

      await expectStatus(403, 'POST', '/auth/logout', { token: null, headers: { cookie } });
      await expectStatus(200, 'POST', '/auth/logout', { token: null, headers: { cookie, 'x-csrf-token': csrf } });
      await expectStatus(401, 'GET', '/me', { token: null, headers: { cookie } });
      await expectStatus(200, 'DELETE', `/users/${user.id}`);
      await expectStatus(404, 'DELETE', `/users/${user.id}`);
    });

    it('workflows', async () => {
      const flows = `${app()}/flows`;
      const definition = {
        triggers: [{ type: 'virtualButton', key: 'go', outputIds: [['debug']] }],
        nodes: [{ id: 'debug', type: 'DebugNode', config: { message: 'pressed' }, outputIds: [[]] }],
      };
      const flow = await expectStatus<{ id: string }>(201, 'POST', flows, {
        body: { name: 'reference', ...definition },
      });
      await expectStatus(400, 'POST', flows, { body: { name: 'bad', nodes: [{ id: 'x', type: 'NoSuchNode' }] } });
      await expectStatus(200, 'GET', flows);
      await expectStatus(400, 'GET', `${flows}?perPage=0`);
      await expectStatus(200, 'GET', `${flows}/${flow.id}`);
      await expectStatus(404, 'GET', `${flows}/${UNKNOWN_ID}`);
      await expectStatus(200, 'PATCH', `${flows}/${flow.id}`, { body: { description: 'checked' } });
      await expectStatus(400, 'PATCH', `${flows}/${flow.id}`, { body: { defaultVersionId: UNKNOWN_ID } });
      await expectStatus(201, 'POST', `${flows}/${flow.id}/versions`, { body: { version: 'v1' } });
      await expectStatus(409, 'POST', `${flows}/${flow.id}/versions`, { body: { version: 'v1' } });
      await expectStatus(200, 'GET', `${flows}/${flow.id}/versions`);
      await expectStatus(404, 'GET', `${flows}/${UNKNOWN_ID}/versions`);
      await expectStatus(200, 'POST', `${flows}/${flow.id}/virtualButton`, { body: { key: 'go' } });
      await expectStatus(404, 'POST', `${flows}/${flow.id}/virtualButton`, { body: { key: 'nope' } });
      await expectStatus(200, 'GET', `${flows}/${flow.id}/logs?limit=5`);
      await expectStatus(400, 'GET', `${flows}/${flow.id}/logs?limit=0`);
      await expectStatus(200, 'GET', `${flows}/${flow.id}/debugStream`);
      await expectStatus(404, 'GET', `${flows}/${UNKNOWN_ID}/debugStream`);
      await expectStatus(200, 'DELETE', `${flows}/${flow.id}`);
      await expectStatus(404, 'DELETE', `${flows}/${flow.id}`);
    });

    it('dashboards', async () => {
      const dashboards = `${app()}/dashboards`;
      const gauge = {
        blockType: 'gauge',
        startX: 0,
        startY: 0,
        width: 2,
        height: 1,
        config: { segment: { deviceIds: [fleet.gateway], attribute: 'temperature', aggregation: 'LAST' } },
      };
      const dashboard = await expectStatus<{ id: string }>(201, 'POST', dashboards, {
        body: { name: 'checked', blocks: [gauge] },
      });
      await expectStatus(400, 'POST', dashboards, { body: { name: 'bad', blocks: [{ ...gauge, config: {} }] } });
      await expectStatus(200, 'GET', `${dashboards}?sortField=name&sortDirection=desc&filterField=name&filter=che*`);
      await expectStatus(400, 'GET', `${dashboards}?perPage=0`);
      await expectStatus(200, 'GET', `${dashboards}/${dashboard.id}`);
      await expectStatus(404, 'GET', `${dashboards}/${UNKNOWN_ID}`);
      await expectStatus(200, 'PATCH', `${dashboards}/${dashboard.id}`, { body: { description: 'checked' } });
      await expectStatus(400, 'PATCH', `${dashboards}/${dashboard.id}`, { body: { refreshRate: 1 } });
      await expectStatus(200, 'DELETE', `${dashboards}/${dashboard.id}`);
      await expectStatus(404, 'DELETE', `${dashboards}/${dashboard.id}`);
      // Losant's top-level paths to the same dashboards.
      const byId = await expectStatus<{ id: string }>(201, 'POST', '/dashboards', {
        body: { name: 'anywhere', applicationId: fleet.applicationId, blocks: [gauge] },
      });
      await expectStatus(400, 'POST', '/dashboards', { body: { name: 'no application' } });
      await expectStatus(200, 'GET', `/dashboards?applicationId=${fleet.applicationId}&sortField=applicationId`);
      await expectStatus(400, 'GET', '/dashboards?perPage=0');
      await expectStatus(200, 'GET', `/dashboards/${byId.id}`);
      await expectStatus(404, 'GET', `/dashboards/${UNKNOWN_ID}`);
      await expectStatus(200, 'PATCH', `/dashboards/${byId.id}`, { body: { defaultTheme: 'dark' } });
      await expectStatus(400, 'PATCH', `/dashboards/${byId.id}`, { body: { defaultTheme: 'blue' } });
      await expectStatus(200, 'DELETE', `/dashboards/${byId.id}`);
      await expectStatus(404, 'DELETE', `/dashboards/${byId.id}`);
    });

    it('state', async () => {
      await expectStatus(200, 'POST', `${device(fleet.gateway)}/state`, { body: { data: { temperature: 21 } } });
      // An attribute the device does not have is left out and listed.
      const partial = await expectStatus(200, 'POST', `${device(fleet.bound)}/state`, {
        body: [{ data: { temperature: 22, colour: 'red' } }],
        token: gatewayToken,
      });
      expect(partial.dropped).toHaveLength(1);
      await expectStatus(400, 'POST', `${device(fleet.gateway)}/state`, {
        body: '{"data":',
        contentType: 'text/plain',
      });
      await expectStatus(403, 'POST', `${device(fleet.standalone)}/state`, {
        body: { data: { temperature: 1 } },
        token: gatewayToken,
      });
      const large = JSON.stringify({ data: { label: 'x'.repeat(MAX_PAYLOAD_BYTES) } });
      await expectStatus(413, 'POST', `${device(fleet.gateway)}/state`, { body: large });
      await expectStatus(200, 'GET', `${device(fleet.gateway)}/state?start=0&limit=10`);
      await expectStatus(400, 'GET', `${device(fleet.gateway)}/state?limit=0`);
      await expectStatus(200, 'GET', `${device(fleet.gateway)}/compositeState`);
      await expectStatus(200, 'GET', `${device(fleet.bound)}/compositeState?attributes=temperature`);
      await expectStatus(404, 'GET', `${device(UNKNOWN_ID)}/compositeState`);

      // Over the application's rate limit: 429 with Retry-After.
      const slow = await expectStatus<{ id: string }>(201, 'POST', '/applications', {
        body: { name: 'Slow', rateLimit: { messages: 1, windowSeconds: 60 } },
      });
      const sensor = await expectStatus<{ id: string }>(201, 'POST', `/applications/${slow.id}/devices`, {
        body: { name: 'sensor', attributes: [{ name: 'temperature', dataType: 'number' }] },
      });
      const key = await expectStatus<{ key: string; secret: string }>(201, 'POST', `/applications/${slow.id}/keys`, {
        body: {},
      });
      const sensorToken = await deviceToken(server, sensor.id, key);
      const url = `/applications/${slow.id}/devices/${sensor.id}/state`;
      await expectStatus(200, 'POST', url, { body: { data: { temperature: 1 } }, token: sensorToken });
      await expectStatus(429, 'POST', url, { body: { data: { temperature: 2 } }, token: sensorToken });
    });

    it('commands', async () => {
      await expectStatus(200, 'POST', `${device(fleet.bound)}/command`, { body: { name: 'blink', payload: { n: 3 } } });
      await expectStatus(400, 'POST', `${device(fleet.bound)}/command`, { body: { payload: {} } });
      await expectStatus(200, 'GET', `${device(fleet.bound)}/command?start=0&limit=10`);
      await expectStatus(400, 'GET', `${device(fleet.bound)}/command?sortDirection=sideways`);
      await expectStatus(200, 'POST', `${app()}/devices/command`, {
        body: { name: 'reboot', deviceIds: [fleet.standalone, fleet.gateway] },
      });
      await expectStatus(400, 'POST', `${app()}/devices/command`, { body: { deviceIds: [] } });
    });

    it('logs', async () => {
      // The refusals above left entries in the devices' logs.
      const entries = await expectStatus<unknown[]>(200, 'GET', `${device(fleet.gateway)}/logs?limit=50`);
      expect(entries.length).toBeGreaterThan(0);
      await expectStatus(400, 'GET', `${device(fleet.gateway)}/logs?limit=0`);
      const page = await expectStatus<{ items: unknown[] }>(200, 'GET', `${app()}/logs?limit=20`);
      expect(page.items.length).toBeGreaterThan(0);
      await expectStatus(400, 'GET', `${app()}/logs?before=not-a-cursor`);
      await expectStatus(400, 'GET', `${app()}/logs?kinds=gossip`);
    });

    it('live streams', async () => {
      await expectStatus(200, 'GET', `${device(fleet.gateway)}/stateStream`);
      await expectStatus(200, 'GET', `${device(fleet.gateway)}/commandStream`, { token: gatewayToken });
      await expectStatus(403, 'GET', `${device(fleet.standalone)}/stateStream`, { token: gatewayToken });
      await expectStatus(200, 'GET', `${app()}/events?types=state,command`);
      await expectStatus(400, 'GET', `${app()}/events?types=gossip`);
      await expectStatus(403, 'GET', `${app()}/events`, { token: gatewayToken });
    });

    it('webhooks', async () => {
      const hooks = `${app()}/webhooks`;
      const hook = await expectStatus<{ id: string; url: string }>(201, 'POST', hooks, { body: { name: 'door' } });
      await expectStatus(400, 'POST', hooks, { body: { colour: 'red' } });
      await expectStatus(200, 'GET', hooks);
      await expectStatus(400, 'GET', `${hooks}?perPage=0`);
      await expectStatus(200, 'GET', `${hooks}/${hook.id}`);
      await expectStatus(404, 'GET', `${hooks}/${UNKNOWN_ID}`);
      await expectStatus(200, 'PATCH', `${hooks}/${hook.id}`, { body: { name: 'gate' } });
      await expectStatus(400, 'PATCH', `${hooks}/${hook.id}`, { body: { token: 'mine' } });
      for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
        const body = method === 'GET' ? {} : { body: { opened: true } };
        await expectStatus(200, method, hook.url, { token: null, ...body });
        await expectStatus(200, method, `${hook.url}/side`, { token: null, ...body });
      }
      const large = 'x'.repeat(MAX_PAYLOAD_BYTES + 1);
      await expectStatus(413, 'POST', hook.url, { token: null, body: large, contentType: 'text/plain' });
      await expectStatus(404, 'POST', '/webhooks/unknown', { token: null, body: {} });
      await expectStatus(200, 'DELETE', `${hooks}/${hook.id}`);
      await expectStatus(404, 'DELETE', `${hooks}/${hook.id}`);
    });

    it('data queries', async () => {
      await expectStatus(200, 'POST', `${app()}/data/time-series-query`, {
        body: { attributes: ['temperature'], duration: 86_400_000, resolution: 3_600_000 },
      });
      await expectStatus(400, 'POST', `${app()}/data/time-series-query`, { body: { start: 10, end: 5 } });
      await expectStatus(200, 'POST', `${app()}/data/last-value-query`, { body: {} });
      await expectStatus(400, 'POST', `${app()}/data/last-value-query`, { body: { deviceIds: ['x'] } });
    });

    /** Probes of every operation in the document, so that a new route is probed too. */
    it('every secured operation answers 401 without credentials', async () => {
      for (const { path, method, op } of operations(doc)) {
        if ((op.security ?? doc.security ?? []).length === 0) continue;
        await expectStatus(401, method.toUpperCase(), fill(path, {}), { token: null });
      }
    });

    it('every operation with an id in its path answers 404 to one that is not an id', async () => {
      for (const { path, method } of operations(doc)) {
        if (!path.includes('{')) continue;
        const url = path.replace(/\{[^}]+\}/g, 'not-an-id');
        await expectStatus(404, method.toUpperCase(), url);
      }
    });

    it('every operation answers a device token, and a text body with unknown ids, without a 5xx', async () => {
      const ids = { applicationId: fleet.applicationId, deviceId: fleet.gateway, keyId };
      for (const { path, method } of operations(doc)) {
        const m = method.toUpperCase();
        const device = await send(m, fill(path, ids), { token: gatewayToken });
        expect([m, path, device.status < 500]).toEqual([m, path, true]);
        if (!BODY_METHODS.has(m)) continue;
        const text = await send(m, fill(path, {}), { body: 'hello', contentType: 'text/plain' });
        expect([m, path, text.status < 500]).toEqual([m, path, true]);
      }
    });

    it('every answer above matches the schema the document declares for its operation and status', () => {
      expect(exchanges.length).toBeGreaterThan(100);
      const ajv = new Ajv2020({ strict: false, allErrors: true });
      addFormats(ajv);
      ajv.addSchema(doc, 'openapi.json');
      const failures: string[] = [];
      for (const x of exchanges) {
        const where = `${x.method} ${x.url} → ${x.status}`;
        const found = operationFor(doc, x.method, x.url);
        if (!found) {
          failures.push(`${where}: no operation in the document`);
          continue;
        }
        const response = found.op.responses?.[String(x.status)];
        if (!response) {
          failures.push(`${where}: status ${x.status} is not declared for ${found.method} ${found.path}`);
          continue;
        }
        for (const [name, header] of Object.entries(response.headers ?? {})) {
          const value = x.headers.get(name);
          if (value !== null && header.schema?.type === 'integer' && !/^\d+$/.test(value)) {
            failures.push(`${where}: header ${name} is ${value}, not an integer`);
          }
        }
        if (!response.content) {
          if (x.body !== '') failures.push(`${where}: a body where none is declared`);
          continue;
        }
        const media = essence(x.contentType);
        if (!response.content[media]) {
          failures.push(`${where}: content type ${media}, declared: ${Object.keys(response.content).join(', ')}`);
          continue;
        }
        if (media !== 'application/json') continue; // a stream: its type is what the document can say
        let body: unknown;
        try {
          body = JSON.parse(x.body);
        } catch {
          failures.push(`${where}: declared JSON, answered ${x.body.slice(0, 80)}`);
          continue;
        }
        const pointer = ['paths', found.path, found.method, 'responses', String(x.status), 'content', media, 'schema'];
        const validate = ajv.getSchema(`openapi.json#/${pointer.map(token).join('/')}`);
        if (!validate) failures.push(`${where}: no schema`);
        else if (!validate(body)) {
          failures.push(`${where}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(body).slice(0, 300)}`);
        }
      }
      expect(failures).toEqual([]);
    });

    it('every operation in the document was answered above: with success, and with an error when it declares any', () => {
      const missing: string[] = [];
      for (const { path, method, op } of operations(doc)) {
        const seen = exchanges
          .filter((x) => {
            const found = operationFor(doc, x.method, x.url);
            return found?.path === path && found.method === method;
          })
          .map((x) => x.status);
        const where = `${method.toUpperCase()} ${path}`;
        if (!seen.some(isSuccess)) missing.push(`${where}: no successful call (add one above)`);
        const errors = Object.keys(op.responses ?? {}).filter(isClientError);
        if (errors.length > 0 && !seen.some(isClientError)) missing.push(`${where}: no error answered`);
      }
      expect(missing).toEqual([]);
    });
  });
});
