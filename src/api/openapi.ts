/**
 * The API reference (docs/api-reference.md): an OpenAPI 3.1 document generated from the route
 * schemas, served at /openapi.json, and a browsable copy at /docs. The viewer is served from the
 * package's own files and its pages may load nothing from anywhere else (its Content-Security-Policy
 * says so): devices' networks are often closed.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import type { FastifySwaggerUiOptions } from '@fastify/swagger-ui';
import type { RouteOptions } from 'fastify';

/** Where the document is served. */
export const OPENAPI_PATH = '/openapi.json';
/** Where the viewer is served (its page, its scripts and styles, and its own copy of the document). */
export const DOCS_PREFIX = '/docs';

/** Routes that serve the reference itself: public, and not part of the document. */
export function isReferenceRoute(url: string): boolean {
  return url === OPENAPI_PATH || url === DOCS_PREFIX || url.startsWith(`${DOCS_PREFIX}/`);
}

/**
 * The viewer's pages load scripts, styles, images, fonts and the document from this server only.
 * Inline styles and `data:` images are allowed: the viewer sets styles on its elements and draws
 * its icons as data URIs; neither loads anything from elsewhere.
 */
const DOCS_CSP = [
  "default-src 'self'",
  "base-uri 'self'",
  "connect-src 'self'",
  "font-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'self'",
  "img-src 'self' data:",
  "object-src 'none'",
  "script-src 'self'",
  "script-src-attr 'none'",
  "style-src 'self' 'unsafe-inline'",
].join('; ');

export const TAGS = [
  { name: 'health', description: 'Whether the server answers, and whether it is ready for traffic.' },
  { name: 'metrics', description: 'Prometheus metrics of this server, for whoever runs it (docs/operations.md).' },
  { name: 'auth', description: 'Device tokens from an access key and secret; browser sign-in and sign-out.' },
  { name: 'users', description: 'Users of the installation (operators only), and who the caller is.' },
  { name: 'members', description: "An application's members and their roles, and its API tokens." },
  { name: 'applications', description: 'Applications and their settings.' },
  { name: 'devices', description: 'Devices, gateways and peripherals of an application.' },
  { name: 'keys', description: 'Access keys: what a device may connect as, publish and subscribe to.' },
  { name: 'state', description: 'State reported by devices, its history and the last value of each attribute.' },
  { name: 'commands', description: 'Commands sent to devices, and their history.' },
  { name: 'streams', description: 'Live Server-Sent Events: states, commands and log entries as they happen.' },
  { name: 'logs', description: 'Device logs and the application communication log.' },
  { name: 'data', description: 'Time-series and last-value queries over many devices.' },
  {
    name: 'workflows',
    description: "Workflows in Losant's flow format: definitions, versions, run logs, debug streams, buttons.",
  },
  {
    name: 'dashboards',
    description: "Dashboards of an application, in Losant's dashboard format (docs/dashboards.md).",
  },
] as const;

/**
 * An onRoute hook: the reference's own routes are public (the onRequest hook in app.ts skips
 * them) and hidden from the document; public routes of the API declare that they need no
 * credentials.
 */
export function markReferenceRoutes(route: RouteOptions): void {
  if (isReferenceRoute(route.url)) {
    route.config = { ...route.config, public: true };
    route.schema = { ...route.schema, hide: true };
  } else if (route.config?.public && route.schema && route.schema.security === undefined) {
    route.schema = { ...route.schema, security: [] };
  }
}

/** The document's options: what the routes' schemas do not say. */
export function openApiOptions(): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Gatehouse',
        version: packageVersion(),
        description:
          'The REST API of Gatehouse. Every error is answered with its HTTP status and `{type, message}`; ' +
          'the types are listed in docs/errors.md. Times in answers are ISO 8601.',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description:
              'An API token (admin or application), or a device token from POST /auth/device: `Authorization: Bearer TOKEN`.',
          },
          session: {
            type: 'apiKey',
            in: 'cookie',
            name: 'gh_session',
            description:
              'A browser session from POST /auth/user: the `gh_session` cookie; requests that change something also send `X-CSRF-Token`.',
          },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
      tags: [...TAGS],
    },
  };
}

/** The viewer's options: served under /docs, from the package's own files. */
export const docsOptions: FastifySwaggerUiOptions = {
  routePrefix: DOCS_PREFIX,
  staticCSP: DOCS_CSP,
  theme: { title: 'Gatehouse API reference' },
  uiConfig: { deepLinking: true, defaultModelsExpandDepth: 0 },
};

/** The version in the package's package.json (found above this file, in src/ or in dist/src/). */
function packageVersion(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'gatehouse' && pkg.version) return pkg.version;
    } catch {
      // no package.json here: look further up
    }
    if (path.dirname(dir) === dir) throw new Error('package.json of gatehouse not found');
  }
}
