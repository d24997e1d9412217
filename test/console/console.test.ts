/**
 * The web console in a real browser against a real server, as users get it: the built console
 * (dist/web) served by the server, a session from the login form, live data from devices that
 * talk MQTT. One server and one browser for the file; the tests run in order and build on each
 * other (the devices made in one are used by the next), as a person would use the console.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import type { MqttClient } from 'mqtt';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nextMessage, ok, startTestServer, type TestServer } from '../helpers/server.js';
import { type ConsoleBrowser, openBrowser, requireBuiltConsole, SHOTS } from './browser.js';

const ADMIN = { email: 'admin@example.com', password: 'admin-password-1' };
const VIEWER = { email: 'viewer@example.com', password: 'viewer-password-1' };

let server: TestServer;
let browser: ConsoleBrowser;
let page: Page;
let base: string;
let appId: string;
const ids = { gateway: '', peripheral: '' };
const credentials = { key: '', secret: '' };
let gatewayClient: MqttClient;

/** Console errors other than the refusals a test caused on purpose (Chromium logs every 4xx). */
function unexpectedErrors(expected: RegExp[] = []): string[] {
  const left = browser.errors.filter((e) => !expected.some((re) => re.test(e)));
  browser.errors.length = 0;
  return left;
}
/** Waits for the browser (live data, rendering): longer than expect.poll's default second. */
const poll = <T>(read: () => Promise<T> | T) => expect.poll(read, { timeout: 20_000, interval: 100 });
const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

async function signIn(who: { email: string; password: string }): Promise<void> {
  await page.getByLabel('Email').fill(who.email);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

beforeAll(async () => {
  requireBuiltConsole();
  mkdirSync(SHOTS, { recursive: true });
  server = await startTestServer();
  base = server.running.urls.http;
  ok(await server.http('POST', '/users', { ...ADMIN, name: 'Ada Admin', admin: true }));
  ok(await server.http('POST', '/users', { ...VIEWER, name: 'Vic Viewer' }));
  appId = ok(await server.http<{ id: string }>('POST', '/applications', { name: 'Greenhouse' })).id;
  ok(await server.http('POST', `/applications/${appId}/members`, { email: VIEWER.email, role: 'viewer' }));
  browser = await openBrowser();
  page = browser.page;
  // Generous: the whole suite shares two cores with this browser in CI.
  page.setDefaultTimeout(20_000);
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

describe('web console', () => {
  it('ships within its budget: under 300 KB of gzipped script', () => {
    const dir = path.resolve('dist/web/assets');
    const js = readdirSync(dir).filter((f) => f.endsWith('.js'));
    const gzipped = js.reduce((n, f) => n + gzipSync(readFileSync(path.join(dir, f))).length, 0);
    expect(js.length).toBeGreaterThan(0);
    expect(gzipped).toBeLessThan(300 * 1024);
  });

  it('shows the API error for a wrong password, then signs in', async () => {
    await page.goto(`${base}/`);
    await page.getByRole('heading', { name: 'Gatehouse' }).waitFor();
    await shot('login');
    await signIn({ email: ADMIN.email, password: 'not-the-password' });
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toBe('wrong email or password');

    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Devices' }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/app/${appId}/devices`);
    // Before signing in, GET /me and the wrong password are refused: Chromium logs both.
    expect(unexpectedErrors([/status of 401.*\/(me|auth\/user)$/])).toEqual([]);
  }, 90_000);

  it('creates a gateway and a peripheral bound to it', async () => {
    await page.getByRole('link', { name: 'New device' }).click();
    await page.getByLabel('Name', { exact: true }).fill('Gateway One');
    await page.getByLabel('Device class').selectOption('gateway');
    await page.getByRole('button', { name: 'Create device' }).click();
    await page.getByRole('heading', { name: 'Gateway One' }).waitFor();
    ids.gateway = page.url().split('/').pop()!;

    await page.goto(`${base}/app/${appId}/devices/new`);
    await page.getByLabel('Name', { exact: true }).fill('Soil probe');
    await page.getByLabel('Device class').selectOption('peripheral');
    await page.getByLabel('Reports through').selectOption({ label: 'Gateway One (gateway)' });
    await page.getByLabel('Attribute 1 name').fill('temperature');
    await page.getByRole('button', { name: 'Add tag' }).click();
    // The API's validation message shows at the field it is about.
    await page.getByLabel('Tag 1 key').fill('bad key!');
    await page.getByLabel('Tag 1 value').fill('north');
    await page.getByRole('button', { name: 'Create device' }).click();
    await poll(() => page.locator('#device-tags-error').textContent()).toContain('body/tags/0/key must match pattern');
    await page.getByLabel('Tag 1 key').fill('zone');
    await page.getByRole('button', { name: 'Create device' }).click();
    await page.getByRole('heading', { name: 'Soil probe' }).waitFor();
    ids.peripheral = page.url().split('/').pop()!;
    await poll(() => page.getByTestId('binding').textContent()).toBe('only through Gateway One');

    // Edit: the form comes filled in; a change is saved.
    await page.getByRole('link', { name: 'Edit' }).click();
    await poll(() => page.getByLabel('Name', { exact: true }).inputValue()).toBe('Soil probe');
    expect(await page.getByLabel('Attribute 1 name').inputValue()).toBe('temperature');
    await page.getByLabel('Description').fill('bed 3, north side');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('bed 3, north side').waitFor();

    const stored = ok(
      await server.http<{ gatewayId: string; tags: unknown[] }>(
        'GET',
        `/applications/${appId}/devices/${ids.peripheral}`,
      ),
      200,
    );
    expect(stored).toMatchObject({ gatewayId: ids.gateway, tags: [{ key: 'zone', value: 'north' }] });

    // The list finds it by name and by tag.
    await page.goto(`${base}/app/${appId}/devices?q=probe`);
    await page.getByRole('link', { name: 'Soil probe' }).waitFor();
    expect(await page.getByRole('link', { name: 'Gateway One' }).count()).toBe(0);
    await shot('devices');
    expect(unexpectedErrors([/status of 400.*\/devices$/])).toEqual([]);
  }, 90_000);

  it('creates an access key and shows its secret once', async () => {
    await page.getByRole('link', { name: 'Access keys' }).click();
    await page.getByLabel('Description').fill('greenhouse gateways');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByLabel('Secret').waitFor();
    credentials.key = await page.getByLabel('Key', { exact: true }).inputValue();
    credentials.secret = await page.getByLabel('Secret').inputValue();
    expect(credentials.secret.length).toBeGreaterThan(20);
    await poll(() => page.getByRole('button', { name: 'Copy secret' }).isVisible()).toBe(true);
    await shot('keys');
    await page.getByRole('button', { name: 'Done' }).click();
    expect(await page.content()).not.toContain(credentials.secret);
    await page.reload();
    await page.getByText(credentials.key).waitFor();
    expect(await page.content()).not.toContain(credentials.secret);
    expect(unexpectedErrors()).toEqual([]);
  }, 90_000);

  it('shows peripheral state reported over MQTT live on the peripheral and the gateway pages', async () => {
    await page.goto(`${base}/app/${appId}/devices/${ids.peripheral}`);
    await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
    gatewayClient = await server.connect(ids.gateway, credentials.key, credentials.secret);
    await gatewayClient.publishAsync(
      `losant/${ids.peripheral}/state`,
      JSON.stringify({ data: { temperature: 21.25 } }),
    );
    const value = page.locator('[data-attribute="temperature"] .value-number');
    await poll(() => value.textContent()).toBe('21.25');
    // The history says who reported it: the gateway; the peripheral says it came through it.
    await poll(() => page.getByTestId('state-history').textContent()).toContain('Gateway One');
    await gatewayClient.publishAsync(`losant/${ids.peripheral}/state`, JSON.stringify({ data: { temperature: 22.5 } }));
    await poll(() => value.textContent()).toBe('22.50');
    await page.reload();
    await poll(() => page.getByTestId('last-gateway').textContent()).toContain('Gateway One');
    await poll(() => page.getByTestId('gateway-trail').textContent()).toContain('Gateway One');
    await page.locator('.chart canvas').first().waitFor();
    await shot('peripheral');

    await page.goto(`${base}/app/${appId}/devices/${ids.gateway}`);
    await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
    const row = page.locator(`[data-peripheral="${ids.peripheral}"]`);
    await poll(() => row.textContent()).toContain('temperature: 22.50');
    // Live values never move the layout: the columns keep their widths as a value changes.
    const widths = () =>
      page.$$eval('[data-testid="peripherals"] th', (cells) => cells.map((c) => c.getBoundingClientRect().width));
    const before = await widths();
    await gatewayClient.publishAsync(
      `losant/${ids.peripheral}/state`,
      JSON.stringify({ data: { temperature: 123456789012.25 } }),
    );
    await poll(() => row.textContent()).toContain('temperature: 123456789012.25');
    expect(await widths()).toEqual(before);
    await gatewayClient.publishAsync(
      `losant/${ids.peripheral}/state`,
      JSON.stringify({ data: { temperature: 24.75 } }),
    );
    await poll(() => row.textContent()).toContain('temperature: 24.75');
    expect(await widths()).toEqual(before);
    expect(await row.textContent()).toContain('bound here');
    await page.setViewportSize({ width: 1280, height: 860 });
    await shot('gateway');
    expect(unexpectedErrors()).toEqual([]);
  }, 90_000);

  it('sends a command from the console that the gateway receives over MQTT', async () => {
    await gatewayClient.subscribeAsync(`losant/${ids.peripheral}/command`, { qos: 1 });
    await page.goto(`${base}/app/${appId}/devices/${ids.peripheral}`);
    await page.getByLabel('Command name').fill('water');
    await page.getByLabel('Payload (JSON, optional)').fill('{"seconds": 5}');
    const received = nextMessage(gatewayClient, `losant/${ids.peripheral}/command`, 5000);
    await page.getByRole('button', { name: 'Send command' }).click();
    expect((await received).payload).toMatchObject({ name: 'water', payload: { seconds: 5 } });
    await page.getByText(/^Sent/).waitFor();
    expect(unexpectedErrors()).toEqual([]);
  }, 90_000);

  it('fits a phone screen', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${base}/app/${appId}/devices/${ids.gateway}`);
    await page.getByRole('heading', { name: 'Gateway One' }).waitFor();
    // Nothing wider than the screen but the tables, which scroll in their own box.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await page.getByRole('button', { name: 'Menu' }).click();
    await page.getByRole('link', { name: 'Application log' }).waitFor();
    await shot('phone-gateway');
    await page.setViewportSize({ width: 1280, height: 860 });
    expect(unexpectedErrors()).toEqual([]);
  }, 90_000);

  it('shows connections live in the device list', async () => {
    const station = ok(
      await server.http<{ id: string }>('POST', `/applications/${appId}/devices`, { name: 'Weather station' }),
    ).id;
    await page.goto(`${base}/app/${appId}/devices`);
    const row = page.getByRole('row', { name: /Weather station/ });
    await poll(() => row.textContent()).toContain('never connected');
    await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
    const client = await server.connect(station, credentials.key, credentials.secret);
    await poll(() => row.locator('.badge-on').textContent()).toBe('connected');
    await client.endAsync();
    await poll(() => row.textContent()).toContain('disconnected');
    expect(unexpectedErrors()).toEqual([]);
  }, 90_000);

  it('shows the application log live', async () => {
    await page.goto(`${base}/app/${appId}/log`);
    await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
    await gatewayClient.publishAsync(`losant/${ids.peripheral}/state`, JSON.stringify({ data: { temperature: 19.5 } }));
    await poll(() => page.getByTestId('app-log').textContent()).toContain('19.5');
    await shot('app-log');
    // By class: gateways only, history and live alike; the peripheral's states are left out.
    await page.getByLabel('Class').selectOption('gateway');
    const rows = page.getByTestId('app-log').locator('tbody tr');
    await poll(() => rows.count()).toBeGreaterThan(0);
    await poll(() => rows.allTextContents()).not.toEqual(
      expect.arrayContaining([expect.stringContaining('Soil probe')]),
    );
    await gatewayClient.publishAsync(
      `losant/${ids.peripheral}/state`,
      JSON.stringify({ data: { temperature: 18.25 } }),
    );
    await page.getByLabel('Class').selectOption('peripheral');
    await poll(() => page.getByTestId('app-log').textContent()).toContain('18.25');
    expect((await rows.allTextContents()).every((t) => t.includes('Soil probe'))).toBe(true);
    // A tag nobody has: nothing.
    await page.getByLabel('Tag (key or key:value)').fill('nobody:here');
    await page.getByLabel('Tag (key or key:value)').press('Enter');
    await poll(() => rows.count()).toBe(0);
    // Later pages expect the peripheral's last value to be 19.5.
    await gatewayClient.publishAsync(`losant/${ids.peripheral}/state`, JSON.stringify({ data: { temperature: 19.5 } }));
    expect(unexpectedErrors()).toEqual([]);
  }, 90_000);

  it('builds a dashboard with a graph, a gauge and a gateway block that show live data', async () => {
    await page.goto(`${base}/app/${appId}/dashboards`);
    await page.getByLabel('Dashboard name').fill('Greenhouse overview');
    await page.getByRole('button', { name: 'Create dashboard' }).click();
    await page.getByRole('heading', { name: 'Greenhouse overview' }).waitFor();
    const dashboardId = page.url().split('/').pop()!;

    // Each block starts from the console's template for its type (the app's devices filled in).
    const add = async (type: string, title: string, width: string) => {
      await page.getByLabel('Block type').selectOption(type);
      await poll(() => page.getByLabel('Config (JSON)').inputValue()).toContain(
        type === 'gateway' ? ids.gateway : ids.peripheral,
      );
      await page.getByLabel('Title').fill(title);
      await page.getByLabel('Width (columns, of 4)').fill(width);
      await page.getByRole('button', { name: 'Add block' }).click();
      await page.getByRole('heading', { name: title }).waitFor();
    };
    await add('graph', 'Temperature', '4');
    await add('gauge', 'Now', '2');
    await add('gateway', 'Gateway', '2');

    // A block the server refuses: its message shows at the config, and nothing is added.
    await page.getByLabel('Block type').selectOption('gauge');
    await poll(() => page.getByLabel('Config (JSON)').inputValue()).toContain(ids.peripheral);
    await page.getByLabel('Config (JSON)').fill('{"gaugeType": "dial", "gaugeMin": 0, "gaugeMax": 50, "segment": {}}');
    await page.getByRole('button', { name: 'Add block' }).click();
    await poll(() => page.locator('#block-config-error').textContent()).toContain('attribute is required');
    expect(await page.locator('.block').count()).toBe(3);

    const graph = page.locator('[data-type="graph"]');
    await graph.locator('canvas').waitFor();
    await poll(() => graph.locator('.chart-empty').count()).toBe(0);
    const gauge = page.getByTestId('gauge');
    await poll(() => gauge.locator('.gauge-value').textContent()).toBe('19.5');
    const gatewayBlock = page.getByTestId('gateway-block');
    await poll(() => gatewayBlock.textContent()).toContain('temperature: 19.50');

    // Live: a new state over MQTT reaches the gauge and the gateway block.
    await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
    await gatewayClient.publishAsync(`losant/${ids.peripheral}/state`, JSON.stringify({ data: { temperature: 26 } }));
    await poll(() => gauge.locator('.gauge-value').textContent()).toBe('26');
    await poll(() => gatewayBlock.textContent()).toContain('temperature: 26');

    // Drag the gateway block from the right half to the left, under the gauge: saved on the server.
    const stored = async () =>
      ok(
        await server.http<{ blocks: Array<{ title: string; startX: number; startY: number }> }>(
          'GET',
          `/applications/${appId}/dashboards/${dashboardId}`,
        ),
        200,
      ).blocks.find((b) => b.title === 'Gateway');
    expect(await stored()).toMatchObject({ startX: 2 });
    await page.evaluate(() => window.scrollTo(0, 0));
    const handle = page.getByRole('button', { name: /^Move Gateway/ });
    const box = (await handle.boundingBox())!;
    const grid = (await page.locator('.dash-grid').boundingBox())!;
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x - grid.width / 4, box.y + 200, { steps: 5 });
    await page.mouse.move(box.x - grid.width / 2 + box.width / 2, box.y + box.height / 2 + 320, { steps: 5 });
    await page.mouse.up();
    await poll(async () => (await stored())?.startX).toBe(0);
    const moved = (await stored())!;
    expect(moved.startY).toBeGreaterThan(0);
    await poll(() => gatewayBlock.textContent()).toContain('temperature: 26');
    // Keyboard: the focused handle moves its block by half a cell per arrow key.
    await page.getByRole('button', { name: /^Move Now/ }).focus();
    await page.keyboard.press('ArrowRight');
    await poll(
      async () =>
        ok(
          await server.http<{ blocks: Array<{ title: string; startX: number }> }>(
            'GET',
            `/applications/${appId}/dashboards/${dashboardId}`,
          ),
          200,
        ).blocks.find((b) => b.title === 'Now')?.startX,
    ).toBe(0.5);
    await shot('dashboard');
    expect(unexpectedErrors([/status of 400.*\/dashboards\/\w+$/])).toEqual([]);
    // On a phone the blocks stack in one column, each as tall as on the grid.
    await page.setViewportSize({ width: 390, height: 844 });
    await poll(() => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(
      0,
    );
    await shot('phone-dashboard');
    await page.setViewportSize({ width: 1280, height: 860 });
    expect(unexpectedErrors()).toEqual([]);
  }, 90_000);

  it('shows workflows: enable and disable, the graph, a refused definition, the debug stream and the run log', async () => {
    const flow = ok(
      await server.http<{ id: string }>('POST', `/applications/${appId}/flows`, {
        name: 'Button to debug',
        enabled: false,
        triggers: [{ type: 'virtualButton', key: 'press', outputIds: [['say']] }],
        nodes: [
          { id: 'say', type: 'DebugNode', config: { message: 'pressed {{data.n}}', level: 'info' }, outputIds: [[]] },
        ],
      }),
    );
    await page.goto(`${base}/app/${appId}/workflows`);
    const toggle = page.getByRole('row', { name: /Button to debug/ }).getByRole('checkbox');
    await toggle.click();
    await poll(
      async () =>
        ok(await server.http<{ enabled: boolean }>('GET', `/applications/${appId}/flows/${flow.id}`), 200).enabled,
    ).toBe(true);

    await page.getByRole('link', { name: 'Button to debug' }).click();
    await page.getByRole('img', { name: 'Graph of Button to debug' }).waitFor();
    expect(await page.locator('.flow-graph rect').count()).toBe(2);

    // The server's validation message shows next to the editor, and nothing is saved.
    const editor = page.getByLabel('Triggers, nodes and globals');
    const good = await editor.inputValue();
    await editor.fill(good.replace('"DebugNode"', '"NoSuchNode"'));
    await page.getByRole('button', { name: 'Save definition' }).click();
    await poll(() => page.locator('#flow-json-error').textContent()).toContain('NoSuchNode');
    await editor.fill(good);
    await page.getByRole('button', { name: 'Save definition' }).click();
    await page.getByText('Saved.').waitFor();

    await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
    ok(
      await server.http('POST', `/applications/${appId}/flows/${flow.id}/virtualButton`, {
        key: 'press',
        payload: { n: 7 },
      }),
      200,
    );
    await poll(() => page.getByTestId('debug').textContent()).toContain('pressed 7');
    await poll(() => page.getByTestId('runs').textContent()).toContain('virtualButton');
    await shot('workflow');
    expect(unexpectedErrors([/status of 400.*\/flows\/\w+$/])).toEqual([]);
  }, 90_000);

  it('lets an owner create an API token, shown once, and revoke it', async () => {
    await page.goto(`${base}/app/${appId}/members`);
    await page.getByRole('cell', { name: VIEWER.email }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill('grafana');
    await page.getByRole('button', { name: 'Create token' }).click();
    const token = await page.getByLabel('New token').inputValue();
    expect(token).toMatch(/^ght_/);
    // The token works, for its application and role.
    expect((await server.http('GET', `/applications/${appId}/devices`, undefined, token)).status).toBe(200);
    await page.getByRole('button', { name: 'Done' }).click();
    await page.getByRole('cell', { name: 'grafana' }).waitFor();
    expect(await page.content()).not.toContain(token);
    await page
      .getByRole('row', { name: /grafana/ })
      .getByRole('button', { name: 'Revoke' })
      .click();
    await poll(() => page.getByRole('cell', { name: 'grafana' }).count()).toBe(0);
    expect((await server.http('GET', `/applications/${appId}/devices`, undefined, token)).status).toBe(401);
    expect(unexpectedErrors()).toEqual([]);
  }, 90_000);

  it('gives a viewer no edit controls, and the server refuses a forced change', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    await signIn(VIEWER);
    await page.getByRole('heading', { name: 'Devices' }).waitFor();
    await page.getByRole('link', { name: 'Soil probe' }).waitFor();
    expect(await page.getByRole('link', { name: 'New device' }).count()).toBe(0);

    await page.getByRole('link', { name: 'Soil probe' }).click();
    await page.getByRole('heading', { name: 'Soil probe' }).waitFor();
    await page.getByTestId('live-state').waitFor();
    for (const name of ['Edit', 'Delete', 'Send command']) {
      expect(await page.getByRole('button', { name }).count()).toBe(0);
    }
    expect(await page.getByRole('link', { name: 'Edit' }).count()).toBe(0);

    expect(await page.getByRole('link', { name: 'Access keys' }).count()).toBe(0);
    await page.goto(`${base}/app/${appId}/keys`);
    await page.getByText('Access keys are managed by').waitFor();
    expect(await page.getByRole('button', { name: 'Create key' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Delete' }).count()).toBe(0);

    await page.getByRole('link', { name: 'Members & tokens' }).click();
    await page.getByRole('cell', { name: VIEWER.email }).waitFor();
    expect(await page.getByRole('button', { name: 'Remove' }).count()).toBe(0);
    expect(await page.getByRole('heading', { name: 'API tokens' }).count()).toBe(0);
    await shot('viewer-members');

    await page.getByRole('link', { name: 'Dashboards' }).click();
    await page.getByRole('link', { name: 'Greenhouse overview' }).click();
    await page.getByTestId('gauge').waitFor();
    expect(await page.getByRole('button', { name: /^Move / }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Add block' }).count()).toBe(0);

    // The controls are hidden, and the rule is the server's: a hand-made request with the
    // session's own CSRF token is refused.
    const status = await page.evaluate(async (app) => {
      const me = await (await fetch('/me')).json();
      const res = await fetch(`/applications/${app}/devices`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': me.csrfToken },
        body: JSON.stringify({ name: 'sneaky' }),
      });
      return res.status;
    }, appId);
    expect(status).toBe(403);
    expect(unexpectedErrors([/status of 403.*\/devices$/])).toEqual([]);
  }, 90_000);

  it('pages the device list on the server', async () => {
    for (let i = 0; i < 30; i++) {
      ok(await server.http('POST', `/applications/${appId}/devices`, { name: `sensor ${String(i).padStart(2, '0')}` }));
    }
    await page.goto(`${base}/app/${appId}/devices`);
    await page.getByText(/Page 1 of 2 · 3\d devices/).waitFor();
    expect(await page.locator('table.devices tbody tr').count()).toBe(25);
    await page.getByRole('button', { name: 'Next' }).click();
    await page.getByText(/Page 2 of 2/).waitFor();
    expect(new URL(page.url()).searchParams.get('page')).toBe('1');
    expect(await page.locator('table.devices tbody tr').count()).toBeGreaterThan(0);
    expect(unexpectedErrors()).toEqual([]);
  }, 90_000);

  it('filters the device list by connection status on the server, across pages', async () => {
    // The gateway is connected over MQTT; the 30 sensors above never connected.
    const gateway = await server.connect(ids.gateway, credentials.key, credentials.secret);
    await page.goto(`${base}/app/${appId}/devices`);
    await page.getByLabel('Status').selectOption('disconnected');
    await page.getByText(/Page 1 of 2 · 3\d devices/).waitFor();
    expect(new URL(page.url()).searchParams.get('status')).toBe('disconnected');
    await page.getByLabel('Status').selectOption('connected');
    await page.getByText(/Page 1 of 1 · [1-9] devices?/).waitFor();
    const rows = page.locator('table.devices tbody tr');
    expect(await rows.count()).toBeLessThan(10);
    await poll(() => rows.allTextContents()).toEqual(expect.arrayContaining([expect.stringContaining('Gateway One')]));
    expect((await rows.allTextContents()).some((t) => t.includes('sensor'))).toBe(false);
    gateway.end(true);
    expect(unexpectedErrors()).toEqual([]);
  }, 90_000);
});
