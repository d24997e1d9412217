/**
 * Commands are recorded before they are delivered (docs/decisions.md, "Commands"): when the
 * broker is asked to deliver one, the store already holds it with its route. The broker is
 * stood in for by a recording `Connections`, the platform's seam to it; the store is SQLite.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sendCommand, sendCommandToMany } from '../../src/core/commands.js';
import { type Connections, Platform } from '../../src/core/platform.js';
import type { Device } from '../../src/domain/model.js';
import { openSqliteStore } from '../../src/store/sqlite/sqlite-store.js';

describe('commands', () => {
  const dirs: string[] = [];
  const platforms: Platform[] = [];
  afterEach(async () => {
    await Promise.all(platforms.splice(0).map((p) => p.stop()));
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  async function setup() {
    const dir = mkdtempSync(path.join(tmpdir(), 'gatehouse-commands-'));
    dirs.push(dir);
    const platform = new Platform({ store: await openSqliteStore({ dataDir: dir }) });
    platforms.push(platform);
    await platform.start();
    const app = await platform.registry.createApplication({ name: 'app' });
    const devices = await Promise.all(
      ['a', 'b'].map((name) => platform.registry.createDevice(app.id, { name, deviceClass: 'standalone' })),
    );
    const seenAtDelivery: Array<{ deviceId: string; recorded: string[][] }> = [];
    const connections: Connections = {
      isConnected: () => true,
      routeCommand: (target) => [target.id],
      deliverCommand(target: Device) {
        // What the history holds at the moment of delivery.
        const recorded = platform.store
          .queryCommands(target.id, { limit: 10, sortDirection: 'asc' })
          .then((commands) => commands.map((c) => c.routedTo));
        seenAtDelivery.push({ deviceId: target.id, recorded: [] });
        const slot = seenAtDelivery[seenAtDelivery.length - 1] as { recorded: string[][] };
        void recorded.then((r) => {
          slot.recorded = r;
        });
      },
      revalidate: () => {},
    };
    platform.attachConnections(connections);
    return { platform, devices: devices as [Device, Device], seenAtDelivery };
  }

  it('records a command with its route before delivering it', async () => {
    const { platform, devices, seenAtDelivery } = await setup();
    const record = await sendCommand(
      platform,
      { kind: 'admin', via: 'token', id: 'c0c0c0c0c0c0c0c0c0c0c0c0' },
      devices[0],
      { name: 'blink' },
    );
    await new Promise((r) => setImmediate(r));
    expect(record.routedTo).toEqual([devices[0].id]);
    expect(seenAtDelivery).toEqual([{ deviceId: devices[0].id, recorded: [[devices[0].id]] }]);
  });

  it('records every command of a request in one commit, before delivering any', async () => {
    const { platform, devices, seenAtDelivery } = await setup();
    const commitsBefore = platform.writes.stats.commits;
    await sendCommandToMany(platform, { kind: 'admin', via: 'token', id: 'c0c0c0c0c0c0c0c0c0c0c0c0' }, devices, {
      name: 'all',
    });
    await new Promise((r) => setImmediate(r));
    expect(platform.writes.stats.commits - commitsBefore).toBe(1);
    expect(seenAtDelivery.map((s) => s.recorded)).toEqual([[[devices[0].id]], [[devices[1].id]]]);
  });
});
