/**
 * The web console (web/, built by `npm run build` into dist/web) served by the API's own server.
 *
 * It is served from the not-found handler rather than from routes: the API's route table stays
 * the API (the reference must describe every route, test/integration/openapi.test.ts), a console
 * path can never shadow an API route, and an unknown API path keeps its JSON 404. Console pages
 * live under prefixes no API route uses (`/`, `/login`, `/app/...`); a page reload there gets
 * index.html (the SPA fallback), every other unknown path still gets the API's 404.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';

/** First path segments of console pages (web/src/router.ts builds these). */
const PAGE_PREFIXES = new Set(['', 'login', 'app']);
/** Files at the top of dist/web that a page asks for by name (the rest is under /assets, hashed). */
const TOP_FILES = new Set(['favicon.svg']);

/**
 * Everything the console loads comes from this server: scripts and styles only from here
 * (uPlot sets inline style attributes, hence 'unsafe-inline' for styles), no frames, no plugins.
 */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
  "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";

/**
 * Where the built console is: dist/web, seen from the compiled server (dist/src/api) or from
 * the source (src/api, as the tests run it). Only a built folder counts (it has assets/): the
 * source web/ has an index.html too, which no browser can run.
 */
export function findConsoleDir(): string | undefined {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const dir of [path.resolve(here, '../../dist/web'), path.resolve(here, '../../web')]) {
    if (existsSync(path.join(dir, 'index.html')) && existsSync(path.join(dir, 'assets'))) return dir;
  }
  return undefined;
}

/** @fastify/static for the console's folder: no routes (see above), only reply.sendFile. */
export const consoleStaticOptions = (dir: string) => ({ root: dir, serve: false, index: false as const });

/**
 * Answers the request with a console file or page, or returns false (the caller answers 404).
 * A file that is not there is the API's 404 too, in its JSON shape.
 */
export function serveConsole(dir: string, request: FastifyRequest, reply: FastifyReply): boolean {
  if (request.method !== 'GET' && request.method !== 'HEAD') return false;
  const pathname = request.url.split('?')[0] ?? '/';
  const asset = /^\/assets\/([\w-]+\.[\w.]+)$/.exec(pathname)?.[1];
  if (asset) {
    if (!existsSync(path.join(dir, 'assets', asset))) return false;
    // Content-hashed names: a file never changes under its name.
    void reply.code(200).header('cache-control', 'public, max-age=31536000, immutable');
    void reply.sendFile(`assets/${asset}`, dir);
    return true;
  }
  const first = pathname.split('/')[1] ?? '';
  if (TOP_FILES.has(first) && pathname === `/${first}`) {
    void reply.code(200).sendFile(first, dir);
    return true;
  }
  if (!PAGE_PREFIXES.has(first)) return false;
  // A program asking for JSON at a page path gets the API's answer, not a page.
  const accept = request.headers.accept ?? '';
  if (accept && !accept.includes('text/html') && !accept.includes('*/*')) return false;
  void reply
    .code(200)
    .header('cache-control', 'no-cache')
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'same-origin');
  void reply.sendFile('index.html', dir);
  return true;
}
