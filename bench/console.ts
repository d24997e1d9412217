/**
 * Scenario g: the console's first load, in headless Chromium on loopback, from a fresh browser
 * context each time (nothing cached): the sign-in page until its form is visible, and a signed-in
 * gateway page (a gateway with 20 bound peripherals that reported) until its peripherals' values
 * are shown. Also the size of what the browser downloads. Target: first load under 1 s.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from '../test/console/browser.js';
import { startGatehouseProcess } from './gatehouse-process.js';
import type { Cleanups, Report } from './report.js';
import { Rest } from './rest.js';
import { fmt, Latencies } from './stats.js';

export interface ConsoleRow {
  page: string;
  loads: number;
  p50: number;
  max: number;
}

const LOADS = 5;
const PERIPHERALS = 20;

export function consoleAvailable(): boolean {
  return existsSync(CHROMIUM) && existsSync(path.resolve('dist/web/index.html'));
}

/** Gzipped bytes of the built console's scripts and stylesheets. */
export function consoleBundleBytes(): { js: number; css: number } {
  const dir = path.resolve('dist/web/assets');
  const sum = (ext: string) =>
    readdirSync(dir)
      .filter((f) => f.endsWith(ext))
      .reduce((n, f) => n + gzipSync(readFileSync(path.join(dir, f))).length, 0);
  return { js: sum('.js'), css: sum('.css') };
}

export async function consoleScenario(report: Report, cleanups: Cleanups): Promise<ConsoleRow[]> {
  const server = await startGatehouseProcess();
  cleanups.add(() => server.stop());
  const rest = new Rest(server.httpUrl, server.adminToken);
  const email = 'bench@example.com';
  const password = 'bench-password-1';
  await rest.post('/users', { email, password, admin: true });
  const app = await rest.post<{ id: string }>('/applications', { name: 'Console bench' });
  const gateway = await rest.post<{ id: string }>(`/applications/${app.id}/devices`, {
    name: 'gateway',
    deviceClass: 'gateway',
  });
  const key = await rest.post<{ key: string; secret: string }>(`/applications/${app.id}/keys`, {
    description: 'console bench',
  });
  const { token } = await rest.post<{ token: string }>(
    '/auth/device',
    { deviceId: gateway.id, key: key.key, secret: key.secret },
    200,
  );
  for (let i = 0; i < PERIPHERALS; i++) {
    const p = await rest.post<{ id: string }>(`/applications/${app.id}/devices`, {
      name: `peripheral ${i}`,
      deviceClass: 'peripheral',
      gatewayId: gateway.id,
      attributes: [{ name: 'temperature', dataType: 'number' }],
    });
    const res = await fetch(`${server.httpUrl}/applications/${app.id}/devices/${p.id}/state`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ data: { temperature: 20 + i } }),
    });
    if (res.status !== 200) throw new Error(`state for a peripheral: ${res.status} ${await res.text()}`);
  }

  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  cleanups.add(() => browser.close());
  const login = new Latencies();
  const gatewayPage = new Latencies();
  for (let i = 0; i < LOADS; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    let started = performance.now();
    await page.goto(`${server.httpUrl}/login`);
    await page.getByLabel('Email').waitFor({ state: 'visible' });
    login.add(performance.now() - started);

    // A signed-in first load: the session cookie is set, nothing else is cached.
    const fresh = await browser.newContext();
    const signIn = await fresh.request.post(`${server.httpUrl}/auth/user`, { data: { email, password } });
    if (signIn.status() !== 200) throw new Error(`sign-in: ${signIn.status()} ${await signIn.text()}`);
    const gatewayTab = await fresh.newPage();
    started = performance.now();
    await gatewayTab.goto(`${server.httpUrl}/app/${app.id}/devices/${gateway.id}`);
    await gatewayTab.getByText(`peripheral ${PERIPHERALS - 1}`).waitFor({ state: 'visible' });
    gatewayPage.add(performance.now() - started);
    await context.close();
    await fresh.close();
  }
  await browser.close();
  await server.stop();
  const bundle = consoleBundleBytes();
  report.note(
    `g: console bundle ${fmt(bundle.js / 1024, 1)} KB of script and ${fmt(bundle.css / 1024, 1)} KB of CSS, gzipped`,
  );
  const row = (name: string, l: Latencies): ConsoleRow => ({
    page: name,
    loads: LOADS,
    p50: l.percentile(50),
    max: l.percentile(100),
  });
  return [row('sign-in page, form visible', login), row(`gateway page, ${PERIPHERALS} peripherals shown`, gatewayPage)];
}

export function consoleTable(rows: ConsoleRow[]): string {
  const head = ['console first load (fresh context)', 'loads', 'p50 ms', 'max ms'];
  const lines = rows.map((r) => [r.page, String(r.loads), fmt(r.p50, 1), fmt(r.max, 1)]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...lines.map(line)].join('\n');
}
