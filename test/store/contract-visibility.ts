/**
 * Store contract, data-and-visibility part: gateway sightings, inactivity and retention.
 * Every backend runs it next to the main contract.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Application, Device } from '../../src/domain/model.js';
import { type Store, writeBatch } from '../../src/store/types.js';
import { makeApp, makeDevice, state, T0 } from './contract.js';

const batch = writeBatch;

export function visibilityContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract (visibility): ${name}`, () => {
    let store: Store;
    let app: Application;
    const add = async (overrides: Partial<Device> = {}, applicationId = app.id) => {
      const device = makeDevice(applicationId, overrides);
      await store.createDevice(device);
      return device;
    };

    beforeEach(async () => {
      store = await open();
      app = makeApp();
      await store.createApplication(app);
    });
    afterEach(() => store.close());

    describe('gateway sightings', () => {
      it('records each gateway a peripheral was reported through, with first and last seen and a count', async () => {
        const [gw1, gw2, tag] = [
          await add({ deviceClass: 'gateway' }),
          await add({ deviceClass: 'gateway' }),
          await add({ deviceClass: 'floating' }),
        ];
        await store.applyBatch(
          batch({
            reports: [
              { deviceId: tag.id, reportedBy: gw1.id, time: T0 + 10 },
              { deviceId: tag.id, reportedBy: gw1.id, time: T0 + 20 },
              { deviceId: tag.id, reportedBy: gw2.id, time: T0 + 30 },
              { deviceId: gw1.id, reportedBy: gw1.id, time: T0 + 40 }, // a device reporting itself is no sighting
            ],
          }),
        );
        // A late report does not move first/last seen the wrong way.
        await store.applyBatch(batch({ reports: [{ deviceId: tag.id, reportedBy: gw1.id, time: T0 + 5 }] }));
        expect(await store.listGatewaySightings(tag.id)).toEqual([
          { gatewayId: gw2.id, firstSeen: T0 + 30, lastSeen: T0 + 30, reports: 1 },
          { gatewayId: gw1.id, firstSeen: T0 + 5, lastSeen: T0 + 20, reports: 3 },
        ]);
        expect(await store.listGatewaySightings(gw1.id)).toEqual([]);
        expect(await store.listPeripheralsSeenBy(gw1.id, T0)).toEqual([
          { peripheralId: tag.id, lastSeen: T0 + 20, reports: 3 },
        ]);
        expect(await store.listPeripheralsSeenBy(gw1.id, T0 + 21)).toEqual([]);
      });

      it('forgets sightings of a deleted peripheral or gateway', async () => {
        const gw = await add({ deviceClass: 'gateway' });
        const [a, b] = [await add({ deviceClass: 'floating' }), await add({ deviceClass: 'floating' })];
        await store.applyBatch(
          batch({
            reports: [
              { deviceId: a.id, reportedBy: gw.id, time: T0 },
              { deviceId: b.id, reportedBy: gw.id, time: T0 },
            ],
          }),
        );
        await store.deleteDevice(a.id);
        expect(await store.listPeripheralsSeenBy(gw.id, 0)).toEqual([expect.objectContaining({ peripheralId: b.id })]);
        await store.deleteDevice(gw.id);
        expect(await store.listGatewaySightings(b.id)).toEqual([]);
      });
    });

    describe('inactivity', () => {
      it('finds devices without a report or connection change since the cut-off, once', async () => {
        const quiet = await add();
        const reporting = await add();
        const connected = await add();
        const fresh = await add({ creationDate: T0 + 1000 });
        await store.applyBatch(
          batch({
            reports: [{ deviceId: reporting.id, reportedBy: reporting.id, time: T0 + 500 }],
            connections: [{ deviceId: connected.id, connected: true, time: T0 + 500 }],
          }),
        );
        expect(await store.listInactivityCandidates(app.id, T0 + 100)).toEqual([quiet.id]);
        expect((await store.listInactivityCandidates(app.id, T0 + 600)).sort()).toEqual(
          [quiet.id, reporting.id, connected.id].sort(),
        );
        await store.markInactive([quiet.id, reporting.id], T0 + 600);
        expect(await store.listInactivityCandidates(app.id, T0 + 2000)).toEqual([connected.id, fresh.id].sort());
        expect((await store.getDeviceStatuses([quiet.id])).get(quiet.id)?.inactiveSince).toBe(T0 + 600);

        // A report or a connection makes it active again.
        await store.applyBatch(
          batch({
            reports: [{ deviceId: quiet.id, reportedBy: quiet.id, time: T0 + 3000 }],
            connections: [{ deviceId: reporting.id, connected: true, time: T0 + 3000 }],
          }),
        );
        const statuses = await store.getDeviceStatuses([quiet.id, reporting.id]);
        expect(statuses.get(quiet.id)?.inactiveSince).toBeNull();
        expect(statuses.get(reporting.id)?.inactiveSince).toBeNull();
      });

      it('looks only at the given application', async () => {
        const other = makeApp();
        await store.createApplication(other);
        const mine = await add();
        await add({}, other.id);
        expect(await store.listInactivityCandidates(app.id, T0 + 1)).toEqual([mine.id]);
      });
    });

    describe('retention', () => {
      it('prunes states older than the cut-off in bounded chunks, for the application only', async () => {
        const d1 = await add();
        const d2 = await add();
        const other = makeApp();
        await store.createApplication(other);
        const elsewhere = await add({}, other.id);
        const states = [d1, d2, elsewhere].flatMap((d) =>
          [0, 1, 2, 3].map((i) => state(d.id, T0 + i * 1000, { temp: i })),
        );
        await store.applyBatch(batch({ states }));

        expect(await store.pruneStates(app.id, T0 + 2500, 3)).toBe(3);
        expect(await store.pruneStates(app.id, T0 + 2500, 3)).toBe(3);
        expect(await store.pruneStates(app.id, T0 + 2500, 3)).toBe(0);
        const all = { limit: 100, sortDirection: 'asc' as const };
        for (const d of [d1, d2]) expect((await store.queryStates(d.id, all)).map((s) => s.time)).toEqual([T0 + 3000]);
        expect(await store.queryStates(elsewhere.id, all)).toHaveLength(4);
        // The composite state (the latest values) is never pruned.
        expect(await store.getCompositeState(d1.id)).toEqual({ temp: { value: 3, time: T0 + 3000 } });
      });

      it('prunes log entries older than the cut-off, for the application only', async () => {
        const d = await add();
        const other = makeApp();
        await store.createApplication(other);
        const elsewhere = await add({}, other.id);
        const log = (device: Device, time: number) => ({
          deviceId: device.id,
          applicationId: device.applicationId,
          time,
          kind: 'connect' as const,
          details: {},
        });
        await store.applyBatch(batch({ logs: [log(d, T0), log(d, T0 + 10), log(d, T0 + 20), log(elsewhere, T0)] }));
        expect(await store.pruneLogs(app.id, T0 + 15, 1)).toBe(1);
        expect(await store.pruneLogs(app.id, T0 + 15, 100)).toBe(1);
        expect((await store.listLogs(d.id, { limit: 10 })).map((e) => e.time)).toEqual([T0 + 20]);
        expect(await store.listLogs(elsewhere.id, { limit: 10 })).toHaveLength(1);
      });
    });
  });
}
