/**
 * The web console's build: web/ → dist/web, which the server serves (src/api/console.ts).
 * Everything is bundled: no CDN, no external fonts, nothing loaded from elsewhere.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));

export default defineConfig({
  root: here,
  base: '/',
  publicDir: path.join(here, 'public'),
  // Preact's automatic JSX runtime (no React, no preset: the transform is the bundler's own).
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: path.resolve(here, '../dist/web'),
    emptyOutDir: true,
    target: 'es2022',
    // One small bundle: the budget is 300 KB gzipped for everything.
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npx vite --config web/vite.config.ts` during development: the API on its default port.
    proxy: Object.fromEntries(
      ['/applications', '/auth', '/me', '/users', '/health'].map((p) => [p, 'http://127.0.0.1:8080']),
    ),
  },
});
