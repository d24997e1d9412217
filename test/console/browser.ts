/**
 * Headless Chromium (Debian's, /usr/bin/chromium) driven by playwright-core, for the console's
 * browser tests. Every console error and uncaught page error is recorded; a test ends by
 * asserting there were none but those it expected (a refused request logs one in Chromium).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

export const CHROMIUM = process.env.GATEHOUSE_CHROMIUM ?? '/usr/bin/chromium';
/** Screenshots for people to look at (gitignored). */
export const SHOTS = path.resolve('test-results/console');

/** The built console: the server serves dist/web, which `npm run build` (pretest) makes. */
export function requireBuiltConsole(): void {
  if (!existsSync(path.resolve('dist/web/index.html'))) {
    throw new Error('dist/web/index.html is missing: run `npm run build` first (npm test does it in pretest)');
  }
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
}

export interface ConsoleBrowser {
  context: BrowserContext;
  page: Page;
  /** Console errors and page errors so far, as text. */
  errors: string[];
  close(): Promise<void>;
}

/** Flags for Chromium on this machine: root, no GPU, and no background connections to refuse. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export async function openBrowser(): Promise<ConsoleBrowser> {
  const profile = mkdtempSync(path.join(tmpdir(), 'gatehouse-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: CHROMIUM_ARGS,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`${msg.text()} @ ${msg.location().url}`);
  });
  page.on('pageerror', (err) => errors.push(`page error: ${err.message}`));
  return {
    context,
    page,
    errors,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
