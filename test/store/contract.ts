/**
 * The behaviour every Store backend must share. A backend's test file calls `storeContract`
 * with a factory returning a fresh, empty store; each test opens one and closes it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { newId } from '../../src/domain/ids.js';
import type {
  AccessKey,
  Application,
  CommandRecord,
  Device,
  DeviceLogEntry,
  StateRecord,
  StoredAccessKey,
} from '../../src/domain/model.js';
import type { Store, WriteBatch } from '../../src/store/types.js';

export const T0 = 1_700_000_000_000;

export function makeApp(overrides: Partial<Application> = {}): Application {
  return {
    id: newId(),
    name: 'Greenhouse',
    description: 'sensors in the greenhouse',
    rateLimit: { messages: 30, windowSeconds: 15 },
    peripheralTimeoutSeconds: 900,
    inactivityTimeoutSeconds: null,
    stateRetentionDays: null,
    logRetentionDays: 30,
    creationDate: T0,
    lastUpdated: T0,
    ...overrides,
  };
}

export function makeDevice(applicationId: string, overrides: Partial<Device> = {}): Device {
  return {
    id: newId(),
    applicationId,
    name: 'sensor',
    description: '',
    deviceClass: 'standalone',
    gatewayId: null,
    tags: [],
    attributes: [{ name: 'temp', dataType: 'number' }],
    creationDate: T0,
    lastUpdated: T0,
    ...overrides,
  };
}

function makeKey(applicationId: string, overrides: Partial<StoredAccessKey> = {}): StoredAccessKey {
  return {
    id: newId(),
    applicationId,
    key: `key-${newId()}`,
    secretHash: 'scrypt$salt$hash',
    description: 'a key',
    status: 'active',
    filterType: 'all',
    deviceIds: null,
    deviceTags: null,
    pubTopics: [],
    subTopics: [],
    creationDate: T0,
    lastUpdated: T0,
    ...overrides,
  };
}

function makeCommand(device: Device, overrides: Partial<CommandRecord> = {}): CommandRecord {
  return {
    id: newId(),
    applicationId: device.applicationId,
    deviceId: device.id,
    name: 'reboot',
    payload: { delay: 5 },
    time: T0,
    routedTo: [device.id],
    sentBy: 'api',
    ...overrides,
  };
}

function makeLog(device: Device, overrides: Partial<DeviceLogEntry> = {}): DeviceLogEntry {
  return {
    deviceId: device.id,
    applicationId: device.applicationId,
    time: T0,
    kind: 'connect',
    details: { ip: '10.0.0.7' },
    ...overrides,
  };
}

export function state(deviceId: string, time: number, data: Record<string, unknown>, reportedBy = deviceId): StateRecord {
  return { deviceId, time, data, reportedBy };
}

function batch(parts: Partial<WriteBatch>): WriteBatch {
  return { states: [], reports: [], connections: [], logs: [], ...parts };
}

const ALL_TIME = { limit: 1000, sortDirection: 'asc' } as const;

export function storeContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let app: Application;

    beforeEach(async () => {
      store = await open();
      app = makeApp();
      await store.createApplication(app);
    });

    afterEach(async () => {
      await store.close();
    });

    async function addDevice(overrides: Partial<Device> = {}): Promise<Device> {
      const device = makeDevice(app.id, overrides);
      await store.createDevice(device);
      return device;
    }

    describe('settings', () => {
      it('returns undefined for an unknown key, then the latest value set', async () => {
        expect(await store.getSetting('instance.id')).toBeUndefined();
        await store.setSetting('instance.id', 'a');
        expect(await store.getSetting('instance.id')).toBe('a');
        await store.setSetting('instance.id', 'b');
        expect(await store.getSetting('instance.id')).toBe('b');
        expect(await store.getSetting('other')).toBeUndefined();
      });
    });

    describe('api tokens', () => {
      it('lists created tokens in creation order with every field', async () => {
        expect(await store.listApiTokens()).toEqual([]);
        const later = { id: newId(), name: 'ci', secretHash: 'h2', creationDate: T0 + 10 };
        const earlier = { id: newId(), name: 'admin', secretHash: 'h1', creationDate: T0 };
        await store.createApiToken(later);
        await store.createApiToken(earlier);
        expect(await store.listApiTokens()).toEqual([earlier, later]);
      });
    });

    describe('applications', () => {
      it('round-trips an application', async () => {
        expect(await store.getApplication(app.id)).toEqual(app);
        expect(await store.getApplication(newId())).toBeUndefined();
      });

      it('rejects a second application with the same id', async () => {
        await expect(store.createApplication(makeApp({ id: app.id }))).rejects.toThrow();
      });

      it('lists applications in creation order', async () => {
        const second = makeApp({ name: 'Barn', creationDate: T0 + 5 });
        const first = makeApp({ name: 'Shed', creationDate: T0 - 5 });
        await store.createApplication(second);
        await store.createApplication(first);
        expect(await store.listApplications()).toEqual([first, app, second]);
      });

      it('updates every mutable field', async () => {
        const updated: Application = {
          ...app,
          name: 'Orchard',
          description: 'moved',
          rateLimit: { messages: 0, windowSeconds: 60 },
          peripheralTimeoutSeconds: 120,
          lastUpdated: T0 + 1000,
        };
        await store.updateApplication(updated);
        expect(await store.getApplication(app.id)).toEqual(updated);
      });

      it('deletes an application with its devices, their data and its keys, and nothing else', async () => {
        const device = await addDevice();
        const key = makeKey(app.id);
        await store.createKey(key);
        const other = makeApp();
        await store.createApplication(other);
        const otherDevice = makeDevice(other.id);
        await store.createDevice(otherDevice);
        const otherKey = makeKey(other.id);
        await store.createKey(otherKey);
        for (const d of [device, otherDevice]) {
          await store.applyBatch(batch({ states: [state(d.id, T0, { temp: 1 })], logs: [makeLog(d)] }));
          await store.insertCommand(makeCommand(d));
        }

        await store.deleteApplication(app.id);

        expect(await store.getApplication(app.id)).toBeUndefined();
        expect(await store.getDevice(device.id)).toBeUndefined();
        expect(await store.getKey(key.id)).toBeUndefined();
        expect(await store.getKeyByKey(key.key)).toBeUndefined();
        expect(await store.listKeys(app.id)).toEqual([]);
        expect(await store.queryStates(device.id, ALL_TIME)).toEqual([]);
        expect(await store.getCompositeState(device.id)).toEqual({});
        expect(await store.queryCommands(device.id, ALL_TIME)).toEqual([]);
        expect(await store.listLogs(device.id, { limit: 10 })).toEqual([]);
        expect((await store.getDeviceStatuses([device.id])).size).toBe(0);

        expect(await store.listApplications()).toEqual([other]);
        expect(await store.getDevice(otherDevice.id)).toEqual(otherDevice);
        expect(await store.getKey(otherKey.id)).toEqual(otherKey);
        expect(await store.queryStates(otherDevice.id, ALL_TIME)).toHaveLength(1);
        expect(Object.keys(await store.getCompositeState(otherDevice.id))).toEqual(['temp']);
        expect(await store.queryCommands(otherDevice.id, ALL_TIME)).toHaveLength(1);
        expect(await store.listLogs(otherDevice.id, { limit: 10 })).toHaveLength(1);
      });
    });

    describe('devices', () => {
      it('round-trips a device with tags, attributes and a gateway', async () => {
        const gateway = await addDevice({ name: 'gw', deviceClass: 'gateway' });
        const device = await addDevice({
          name: 'Soil probe',
          description: 'row 4',
          deviceClass: 'peripheral',
          gatewayId: gateway.id,
          tags: [
            { key: 'zone', value: 'north' },
            { key: 'kind', value: 'soil' },
          ],
          attributes: [
            { name: 'moisture', dataType: 'number', description: 'percent' },
            { name: 'where', dataType: 'gps' },
            { name: 'ok', dataType: 'boolean' },
          ],
          creationDate: T0 + 1,
          lastUpdated: T0 + 2,
        });
        expect(await store.getDevice(device.id)).toEqual(device);
        expect(await store.getDevice(gateway.id)).toEqual(gateway);
        expect(await store.getDevice(newId())).toBeUndefined();
      });

      it('rejects a device of an unknown application', async () => {
        await expect(store.createDevice(makeDevice(newId()))).rejects.toThrow();
      });

      it('updates the definition of a device', async () => {
        const device = await addDevice();
        const gatewayId = newId();
        const updated: Device = {
          ...device,
          name: 'renamed',
          description: 'now a peripheral',
          deviceClass: 'peripheral',
          gatewayId,
          tags: [{ key: 'floor', value: '2' }],
          attributes: [],
          lastUpdated: T0 + 500,
        };
        await store.updateDevice(updated);
        expect(await store.getDevice(device.id)).toEqual(updated);
        await store.updateDevice({ ...updated, gatewayId: null, lastUpdated: T0 + 600 });
        expect((await store.getDevice(device.id))?.gatewayId).toBeNull();
      });

      it('lists the peripherals bound to a gateway', async () => {
        const gateway = await addDevice({ deviceClass: 'gateway' });
        const otherGateway = await addDevice({ deviceClass: 'gateway' });
        const a = await addDevice({ deviceClass: 'peripheral', gatewayId: gateway.id });
        const b = await addDevice({ deviceClass: 'peripheral', gatewayId: gateway.id });
        await addDevice({ deviceClass: 'peripheral', gatewayId: otherGateway.id });
        await addDevice({ deviceClass: 'peripheral' });
        expect((await store.listBoundPeripherals(gateway.id)).sort()).toEqual([a.id, b.id].sort());
        expect(await store.listBoundPeripherals(newId())).toEqual([]);
      });

      it('deleting a gateway leaves its peripherals in place', async () => {
        const gateway = await addDevice({ deviceClass: 'gateway' });
        const peripheral = await addDevice({ deviceClass: 'peripheral', gatewayId: gateway.id });
        await store.deleteDevice(gateway.id);
        expect(await store.getDevice(gateway.id)).toBeUndefined();
        expect(await store.getDevice(peripheral.id)).toEqual(peripheral);
      });

      it('deletes a device with its states, composite state, commands and logs, and nothing else', async () => {
        const device = await addDevice();
        const other = await addDevice();
        for (const d of [device, other]) {
          await store.applyBatch(
            batch({
              states: [state(d.id, T0, { temp: 20 })],
              connections: [{ deviceId: d.id, connected: true, time: T0 }],
              logs: [makeLog(d)],
            }),
          );
          await store.insertCommand(makeCommand(d));
        }

        await store.deleteDevice(device.id);

        expect(await store.getDevice(device.id)).toBeUndefined();
        expect(await store.queryStates(device.id, ALL_TIME)).toEqual([]);
        expect(await store.getCompositeState(device.id)).toEqual({});
        expect(await store.queryCommands(device.id, ALL_TIME)).toEqual([]);
        expect(await store.listLogs(device.id, { limit: 10 })).toEqual([]);
        const statuses = await store.getDeviceStatuses([device.id, other.id]);
        expect([...statuses.keys()]).toEqual([other.id]);

        expect(await store.getDevice(other.id)).toEqual(other);
        expect(await store.queryStates(other.id, ALL_TIME)).toHaveLength(1);
        expect(await store.getCompositeState(other.id)).toEqual({ temp: { value: 20, time: T0 } });
        expect(await store.queryCommands(other.id, ALL_TIME)).toHaveLength(1);
        expect(await store.listLogs(other.id, { limit: 10 })).toHaveLength(1);
      });

      it('a re-created device id starts with no data', async () => {
        const device = await addDevice();
        await store.applyBatch(batch({ states: [state(device.id, T0, { temp: 1 })], logs: [makeLog(device)] }));
        await store.deleteDevice(device.id);
        await store.createDevice(device);
        expect(await store.queryStates(device.id, ALL_TIME)).toEqual([]);
        expect(await store.getCompositeState(device.id)).toEqual({});
        expect(await store.listLogs(device.id, { limit: 10 })).toEqual([]);
      });
    });

    describe('listDevices', () => {
      let devices: Record<string, Device>;

      beforeEach(async () => {
        devices = {};
        const specs: Array<[string, Partial<Device>]> = [
          ['kitchen', { name: 'Kitchen Temp', deviceClass: 'standalone', tags: [{ key: 'floor', value: '1' }] }],
          [
            'cellar',
            {
              name: 'cellar temp',
              deviceClass: 'peripheral',
              tags: [
                { key: 'floor', value: '0' },
                { key: 'damp', value: 'yes' },
              ],
            },
          ],
          ['hub', { name: 'Hub', deviceClass: 'gateway', tags: [{ key: 'floor', value: '1' }] }],
          [
            'attic',
            {
              name: 'Attic TEMPERATURE',
              deviceClass: 'peripheral',
              tags: [
                { key: 'floor', value: '2' },
                { key: 'damp', value: 'no' },
              ],
            },
          ],
          ['under', { name: 'under_score', deviceClass: 'standalone' }],
        ];
        let offset = 0;
        for (const [label, overrides] of specs) {
          devices[label] = await addDevice({ ...overrides, creationDate: T0 + offset });
          offset += 10;
        }
        const otherApp = makeApp();
        await store.createApplication(otherApp);
        await store.createDevice(makeDevice(otherApp.id, { name: 'Other temp' }));
      });

      const names = (result: { items: Device[] }) => result.items.map((d) => d.name);

      it('lists the devices of one application in creation order', async () => {
        const result = await store.listDevices(app.id, { page: 0, perPage: 100 });
        expect(names(result)).toEqual(['Kitchen Temp', 'cellar temp', 'Hub', 'Attic TEMPERATURE', 'under_score']);
        expect(result.totalCount).toBe(5);
        expect(result.items[0]).toEqual(devices.kitchen);
      });

      it('breaks creation-date ties by id', async () => {
        const otherApp = makeApp();
        await store.createApplication(otherApp);
        const ids = ['00000000000000000000000c', '00000000000000000000000a', '00000000000000000000000b'];
        for (const id of ids) await store.createDevice(makeDevice(otherApp.id, { id, creationDate: T0 }));
        const result = await store.listDevices(otherApp.id, { page: 0, perPage: 10 });
        expect(result.items.map((d) => d.id)).toEqual([...ids].sort());
      });

      it('filters by a case-insensitive substring of the name', async () => {
        const result = await store.listDevices(app.id, { filter: 'TEMP', page: 0, perPage: 100 });
        expect(names(result)).toEqual(['Kitchen Temp', 'cellar temp', 'Attic TEMPERATURE']);
        expect(result.totalCount).toBe(3);
      });

      it('treats pattern characters in the filter literally', async () => {
        expect(names(await store.listDevices(app.id, { filter: '_', page: 0, perPage: 100 }))).toEqual(['under_score']);
        expect((await store.listDevices(app.id, { filter: '%', page: 0, perPage: 100 })).totalCount).toBe(0);
      });

      it('filters by device class', async () => {
        const result = await store.listDevices(app.id, {
          deviceClass: ['gateway', 'peripheral'],
          page: 0,
          perPage: 100,
        });
        expect(names(result)).toEqual(['cellar temp', 'Hub', 'Attic TEMPERATURE']);
        expect(result.totalCount).toBe(3);
      });

      it('requires every listed tag; a tag without value matches any value of its key', async () => {
        const q = (tags: Array<{ key: string; value?: string }>) =>
          store.listDevices(app.id, { tags, page: 0, perPage: 100 });
        expect(names(await q([{ key: 'floor', value: '1' }]))).toEqual(['Kitchen Temp', 'Hub']);
        expect(names(await q([{ key: 'damp' }]))).toEqual(['cellar temp', 'Attic TEMPERATURE']);
        expect(names(await q([{ key: 'damp' }, { key: 'floor', value: '2' }]))).toEqual(['Attic TEMPERATURE']);
        expect(names(await q([{ key: 'floor', value: '1' }, { key: 'damp' }]))).toEqual([]);
        expect(names(await q([{ key: 'nope' }]))).toEqual([]);
        expect((await q([])).totalCount).toBe(5);
      });

      it('combines filters', async () => {
        const result = await store.listDevices(app.id, {
          filter: 'temp',
          deviceClass: ['peripheral'],
          tags: [{ key: 'floor', value: '0' }],
          page: 0,
          perPage: 100,
        });
        expect(result.items).toEqual([devices.cellar]);
        expect(result.totalCount).toBe(1);
      });

      it('pages with a 0-based page and counts every match', async () => {
        const page = (n: number) => store.listDevices(app.id, { page: n, perPage: 2 });
        const first = await page(0);
        const second = await page(1);
        const third = await page(2);
        const beyond = await page(3);
        expect(names(first)).toEqual(['Kitchen Temp', 'cellar temp']);
        expect(names(second)).toEqual(['Hub', 'Attic TEMPERATURE']);
        expect(names(third)).toEqual(['under_score']);
        expect(beyond.items).toEqual([]);
        for (const result of [first, second, third, beyond]) expect(result.totalCount).toBe(5);

        const filtered = await store.listDevices(app.id, { filter: 'temp', page: 1, perPage: 2 });
        expect(names(filtered)).toEqual(['Attic TEMPERATURE']);
        expect(filtered.totalCount).toBe(3);
      });

      it('returns nothing for an unknown application', async () => {
        expect(await store.listDevices(newId(), { page: 0, perPage: 10 })).toEqual({ items: [], totalCount: 0 });
      });
    });

    describe('device statuses and connections', () => {
      it('reports a new device as never connected and skips unknown ids', async () => {
        const device = await addDevice();
        const statuses = await store.getDeviceStatuses([device.id, newId()]);
        expect(statuses.size).toBe(1);
        expect(statuses.get(device.id)).toEqual({
          deviceId: device.id,
          connected: null,
          connectionTime: null,
          lastReportedBy: null,
          lastReportedAt: null,
          inactiveSince: null,
        });
        expect((await store.getDeviceStatuses([])).size).toBe(0);
      });

      it('applies connection changes in order', async () => {
        const a = await addDevice();
        const b = await addDevice();
        await store.applyBatch(
          batch({
            connections: [
              { deviceId: a.id, connected: true, time: T0 },
              { deviceId: b.id, connected: true, time: T0 + 1 },
              { deviceId: b.id, connected: false, time: T0 + 2 },
            ],
          }),
        );
        let statuses = await store.getDeviceStatuses([a.id, b.id]);
        expect(statuses.get(a.id)).toMatchObject({ connected: true, connectionTime: T0 });
        expect(statuses.get(b.id)).toMatchObject({ connected: false, connectionTime: T0 + 2 });

        await store.applyBatch(batch({ connections: [{ deviceId: a.id, connected: false, time: T0 + 10 }] }));
        statuses = await store.getDeviceStatuses([a.id]);
        expect(statuses.get(a.id)).toMatchObject({ connected: false, connectionTime: T0 + 10 });
      });

      it('resetConnections disconnects only the connected devices', async () => {
        const connected = await addDevice();
        const disconnected = await addDevice();
        const never = await addDevice();
        await store.applyBatch(
          batch({
            connections: [
              { deviceId: connected.id, connected: true, time: T0 },
              { deviceId: disconnected.id, connected: false, time: T0 + 5 },
            ],
          }),
        );
        await store.resetConnections(T0 + 100);
        const statuses = await store.getDeviceStatuses([connected.id, disconnected.id, never.id]);
        expect(statuses.get(connected.id)).toMatchObject({ connected: false, connectionTime: T0 + 100 });
        expect(statuses.get(disconnected.id)).toMatchObject({ connected: false, connectionTime: T0 + 5 });
        expect(statuses.get(never.id)).toMatchObject({ connected: null, connectionTime: null });
      });

      it('records the last report and never moves it backwards', async () => {
        const gateway = await addDevice({ deviceClass: 'gateway' });
        const peripheral = await addDevice({ deviceClass: 'peripheral', gatewayId: gateway.id });
        const lastReport = async () => {
          const s = (await store.getDeviceStatuses([peripheral.id])).get(peripheral.id);
          return { by: s?.lastReportedBy, at: s?.lastReportedAt };
        };

        await store.applyBatch(batch({ reports: [{ deviceId: peripheral.id, reportedBy: gateway.id, time: T0 }] }));
        expect(await lastReport()).toEqual({ by: gateway.id, at: T0 });

        await store.applyBatch(
          batch({ reports: [{ deviceId: peripheral.id, reportedBy: peripheral.id, time: T0 - 1 }] }),
        );
        expect(await lastReport()).toEqual({ by: gateway.id, at: T0 });

        await store.applyBatch(
          batch({
            reports: [
              { deviceId: peripheral.id, reportedBy: peripheral.id, time: T0 + 5 },
              { deviceId: peripheral.id, reportedBy: gateway.id, time: T0 + 5 },
            ],
          }),
        );
        expect(await lastReport()).toEqual({ by: gateway.id, at: T0 + 5 });
        expect((await store.getDeviceStatuses([gateway.id])).get(gateway.id)?.lastReportedAt).toBeNull();
      });
    });

    describe('applyBatch and states', () => {
      it('stores states with who reported them', async () => {
        const gateway = await addDevice({ deviceClass: 'gateway' });
        const device = await addDevice({ deviceClass: 'peripheral', gatewayId: gateway.id });
        await store.applyBatch(
          batch({
            states: [
              state(device.id, T0, { temp: 20.5, label: 'a', ok: true, nested: { x: [1, 2] } }, gateway.id),
              state(device.id, T0 + 1, { temp: 21 }),
            ],
          }),
        );
        expect(await store.queryStates(device.id, ALL_TIME)).toEqual([
          state(device.id, T0, { temp: 20.5, label: 'a', ok: true, nested: { x: [1, 2] } }, gateway.id),
          state(device.id, T0 + 1, { temp: 21 }),
        ]);
      });

      it('merges two states of one device with the same time: later keys win, others are kept', async () => {
        const gateway = await addDevice({ deviceClass: 'gateway' });
        const device = await addDevice();
        await store.applyBatch(
          batch({
            states: [
              state(device.id, T0, { a: 1, b: 2 }),
              state(device.id, T0, { b: 3, c: 4 }, gateway.id),
              state(device.id, T0 + 1, { a: 9 }),
            ],
          }),
        );
        expect(await store.queryStates(device.id, ALL_TIME)).toEqual([
          state(device.id, T0, { a: 1, b: 3, c: 4 }, gateway.id),
          state(device.id, T0 + 1, { a: 9 }),
        ]);

        await store.applyBatch(batch({ states: [state(device.id, T0, { c: 'late', d: false })] }));
        expect(await store.queryStates(device.id, ALL_TIME)).toEqual([
          state(device.id, T0, { a: 1, b: 3, c: 'late', d: false }),
          state(device.id, T0 + 1, { a: 9 }),
        ]);
      });

      it('keeps the newest value of each attribute in the composite state', async () => {
        const device = await addDevice();
        await store.applyBatch(batch({ states: [state(device.id, T0 + 2000, { temp: 20, where: '1,2' })] }));
        // An older state arriving later fills in what is missing but overwrites nothing newer.
        await store.applyBatch(batch({ states: [state(device.id, T0 + 1000, { temp: 10, hum: 50, where: '3,4' })] }));
        expect(await store.getCompositeState(device.id)).toEqual({
          temp: { value: 20, time: T0 + 2000 },
          where: { value: '1,2', time: T0 + 2000 },
          hum: { value: 50, time: T0 + 1000 },
        });

        await store.applyBatch(
          batch({
            states: [
              state(device.id, T0 + 3000, { hum: 55, ok: false }),
              state(device.id, T0 + 2500, { hum: 52, obj: { k: 'v' } }),
              state(device.id, T0 + 2000, { temp: 19 }),
            ],
          }),
        );
        expect(await store.getCompositeState(device.id)).toEqual({
          temp: { value: 19, time: T0 + 2000 },
          where: { value: '1,2', time: T0 + 2000 },
          hum: { value: 55, time: T0 + 3000 },
          ok: { value: false, time: T0 + 3000 },
          obj: { value: { k: 'v' }, time: T0 + 2500 },
        });
        expect(await store.getCompositeState(newId())).toEqual({});
      });

      it('writes states, reports, connections and logs of many devices in one batch', async () => {
        const devices = await Promise.all(Array.from({ length: 10 }, (_, i) => addDevice({ name: `d${i}` })));
        const states: StateRecord[] = [];
        for (let i = 0; i < 3000; i++) {
          const device = devices[i % devices.length]!;
          states.push(state(device.id, T0 + i, { n: i, temp: i / 10 }));
        }
        await store.applyBatch(
          batch({
            states,
            reports: devices.map((d) => ({ deviceId: d.id, reportedBy: d.id, time: T0 + 2999 })),
            connections: devices.map((d) => ({ deviceId: d.id, connected: true, time: T0 })),
            logs: devices.map((d) => makeLog(d)),
          }),
        );
        const first = devices[0]!;
        const stored = await store.queryStates(first.id, { limit: 10_000, sortDirection: 'asc' });
        expect(stored).toHaveLength(300);
        expect(stored[299]?.data).toEqual({ n: 2990, temp: 299 });
        expect((await store.getCompositeState(first.id)).n).toEqual({ value: 2990, time: T0 + 2990 });
        const statuses = await store.getDeviceStatuses(devices.map((d) => d.id));
        expect(statuses.size).toBe(10);
        for (const status of statuses.values()) {
          expect(status).toMatchObject({ connected: true, lastReportedAt: T0 + 2999 });
        }
        expect(await store.listLogs(first.id, { limit: 10 })).toHaveLength(1);
      });

      it('drops the data of a device deleted before its batch is applied, and keeps the rest', async () => {
        const gone = await addDevice();
        const kept = await addDevice();
        await store.deleteDevice(gone.id);
        await store.applyBatch(
          batch({
            states: [state(gone.id, T0, { temp: 1 }), state(kept.id, T0, { temp: 2 })],
            reports: [{ deviceId: gone.id, reportedBy: gone.id, time: T0 }],
            connections: [{ deviceId: gone.id, connected: true, time: T0 }],
            logs: [makeLog(gone), makeLog(kept)],
          }),
        );
        expect(await store.queryStates(gone.id, ALL_TIME)).toEqual([]);
        expect(await store.getCompositeState(gone.id)).toEqual({});
        expect(await store.listLogs(gone.id, { limit: 10 })).toEqual([]);
        expect((await store.getDeviceStatuses([gone.id])).size).toBe(0);
        expect(await store.queryStates(kept.id, ALL_TIME)).toHaveLength(1);
        expect(await store.listLogs(kept.id, { limit: 10 })).toHaveLength(1);
      });

      async function expectNothingFrom(device: Device): Promise<void> {
        expect(await store.queryStates(device.id, ALL_TIME)).toEqual([state(device.id, T0, { before: true })]);
        expect(await store.getCompositeState(device.id)).toEqual({ before: { value: true, time: T0 } });
        expect((await store.getDeviceStatuses([device.id])).get(device.id)).toEqual({
          deviceId: device.id,
          connected: false,
          connectionTime: T0,
          lastReportedBy: device.id,
          lastReportedAt: T0,
          inactiveSince: null,
        });
        expect(await store.listLogs(device.id, { limit: 10 })).toHaveLength(1);
      }

      async function seed(device: Device): Promise<void> {
        await store.applyBatch(
          batch({
            states: [state(device.id, T0, { before: true })],
            reports: [{ deviceId: device.id, reportedBy: device.id, time: T0 }],
            connections: [{ deviceId: device.id, connected: false, time: T0 }],
            logs: [makeLog(device, { kind: 'disconnect' })],
          }),
        );
      }

      it('rolls back the whole batch when a state cannot be stored', async () => {
        const device = await addDevice();
        const other = await addDevice();
        await seed(device);
        const failing = batch({
          states: [
            state(device.id, T0, { merged: 1 }),
            state(device.id, T0 + 1, { temp: 1 }),
            state(other.id, T0 + 1, { temp: 2 }),
            state(device.id, T0 + 2, { huge: 10n }),
            state(device.id, T0 + 3, { temp: 3 }),
          ],
          reports: [{ deviceId: device.id, reportedBy: other.id, time: T0 + 5 }],
          connections: [{ deviceId: device.id, connected: true, time: T0 + 5 }],
          logs: [makeLog(device)],
        });
        await expect(store.applyBatch(failing)).rejects.toThrow();
        await expectNothingFrom(device);
        expect(await store.queryStates(other.id, ALL_TIME)).toEqual([]);
        expect(await store.getCompositeState(other.id)).toEqual({});
      });

      it('rolls back the whole batch when a log cannot be stored', async () => {
        const device = await addDevice();
        await seed(device);
        const failing = batch({
          states: [state(device.id, T0, { merged: 1 }), state(device.id, T0 + 1, { temp: 1 })],
          reports: [{ deviceId: device.id, reportedBy: newId(), time: T0 + 5 }],
          connections: [{ deviceId: device.id, connected: true, time: T0 + 5 }],
          logs: [makeLog(device), makeLog(device, { details: { count: 1n } })],
        });
        await expect(store.applyBatch(failing)).rejects.toThrow();
        await expectNothingFrom(device);

        // The store stays usable after a failed batch.
        await store.applyBatch(batch({ states: [state(device.id, T0 + 1, { temp: 1 })] }));
        expect(await store.queryStates(device.id, ALL_TIME)).toHaveLength(2);
      });

      it('accepts an empty batch', async () => {
        await expect(store.applyBatch(batch({}))).resolves.toBeUndefined();
      });
    });

    describe('queryStates', () => {
      let device: Device;

      beforeEach(async () => {
        device = await addDevice();
        const other = await addDevice();
        const times = [T0 + 3000, T0 + 1000, T0 + 5000, T0 + 2000, T0 + 4000];
        await store.applyBatch(
          batch({
            states: [...times.map((t) => state(device.id, t, { t })), state(other.id, T0 + 3000, { other: true })],
          }),
        );
      });

      const times = (records: StateRecord[]) => records.map((r) => r.time - T0);

      it('sorts in both directions', async () => {
        expect(times(await store.queryStates(device.id, { limit: 100, sortDirection: 'asc' }))).toEqual([
          1000, 2000, 3000, 4000, 5000,
        ]);
        expect(times(await store.queryStates(device.id, { limit: 100, sortDirection: 'desc' }))).toEqual([
          5000, 4000, 3000, 2000, 1000,
        ]);
      });

      it('includes both bounds', async () => {
        const range = { start: T0 + 2000, end: T0 + 4000, limit: 100 };
        expect(times(await store.queryStates(device.id, { ...range, sortDirection: 'asc' }))).toEqual([
          2000, 3000, 4000,
        ]);
        expect(times(await store.queryStates(device.id, { ...range, sortDirection: 'desc' }))).toEqual([
          4000, 3000, 2000,
        ]);
        expect(times(await store.queryStates(device.id, { start: T0 + 3000, end: T0 + 3000, ...ALL_TIME }))).toEqual([
          3000,
        ]);
      });

      it('accepts a single bound', async () => {
        expect(times(await store.queryStates(device.id, { start: T0 + 4000, ...ALL_TIME }))).toEqual([4000, 5000]);
        expect(times(await store.queryStates(device.id, { end: T0 + 2000, ...ALL_TIME }))).toEqual([1000, 2000]);
      });

      it('limits from the start of the sort order', async () => {
        expect(times(await store.queryStates(device.id, { limit: 2, sortDirection: 'asc' }))).toEqual([1000, 2000]);
        expect(times(await store.queryStates(device.id, { limit: 2, sortDirection: 'desc' }))).toEqual([5000, 4000]);
        expect(
          times(await store.queryStates(device.id, { start: T0 + 2000, limit: 2, sortDirection: 'desc' })),
        ).toEqual([5000, 4000]);
      });

      it('returns nothing outside the stored range or for an unknown device', async () => {
        expect(await store.queryStates(device.id, { start: T0 + 6000, ...ALL_TIME })).toEqual([]);
        expect(await store.queryStates(device.id, { end: T0, ...ALL_TIME })).toEqual([]);
        expect(await store.queryStates(newId(), ALL_TIME)).toEqual([]);
      });
    });

    describe('commands', () => {
      it('round-trips commands and queries them by time', async () => {
        const device = await addDevice();
        const other = await addDevice();
        const commands = [
          makeCommand(device, { time: T0 + 2000, name: 'b', payload: null, routedTo: [] }),
          makeCommand(device, { time: T0 + 1000, name: 'a', payload: { speed: 3, on: true } }),
          makeCommand(device, { time: T0 + 3000, name: 'c', payload: 'text', sentBy: other.id }),
          makeCommand(device, { time: T0 + 4000, name: 'd', payload: [1, 2], routedTo: ['x', 'y'] }),
          makeCommand(other, { time: T0 + 2000, name: 'other' }),
        ];
        for (const command of commands) await store.insertCommand(command);
        const [b, a, c, d] = commands;

        expect(await store.queryCommands(device.id, { limit: 100, sortDirection: 'asc' })).toEqual([a, b, c, d]);
        expect(await store.queryCommands(device.id, { limit: 100, sortDirection: 'desc' })).toEqual([d, c, b, a]);
        expect(
          await store.queryCommands(device.id, {
            start: T0 + 2000,
            end: T0 + 3000,
            limit: 100,
            sortDirection: 'asc',
          }),
        ).toEqual([b, c]);
        expect(await store.queryCommands(device.id, { limit: 1, sortDirection: 'desc' })).toEqual([d]);
        expect(await store.queryCommands(device.id, { end: T0 + 1000, ...ALL_TIME })).toEqual([a]);
        expect(await store.queryCommands(other.id, ALL_TIME)).toEqual([commands[4]]);
      });

      it('rejects a second command with the same id', async () => {
        const device = await addDevice();
        const command = makeCommand(device);
        await store.insertCommand(command);
        await expect(store.insertCommand({ ...command, name: 'again' })).rejects.toThrow();
      });
    });

    describe('logs', () => {
      it('lists logs newest first with ids, limited, and before a time', async () => {
        const device = await addDevice();
        const other = await addDevice();
        await store.applyBatch(
          batch({
            logs: [
              makeLog(device, { time: T0, kind: 'connect', details: { ip: '10.0.0.1' } }),
              makeLog(device, { time: T0 + 10, kind: 'rejected', details: { reason: 'too big', bytes: 300000 } }),
              makeLog(other, { time: T0 + 15, kind: 'authFailed', details: {} }),
            ],
          }),
        );
        await store.applyBatch(
          batch({ logs: [makeLog(device, { time: T0 + 20, kind: 'disconnect', details: { reason: 'timeout' } })] }),
        );

        const logs = await store.listLogs(device.id, { limit: 10 });
        expect(logs.map((l) => l.kind)).toEqual(['disconnect', 'rejected', 'connect']);
        expect(logs[1]).toEqual({
          id: expect.any(Number),
          deviceId: device.id,
          applicationId: app.id,
          time: T0 + 10,
          kind: 'rejected',
          details: { reason: 'too big', bytes: 300000 },
        });
        const ids = logs.map((l) => l.id as number);
        expect(ids[0]).toBeGreaterThan(ids[1]!);
        expect(ids[1]).toBeGreaterThan(ids[2]!);

        expect((await store.listLogs(device.id, { limit: 2 })).map((l) => l.kind)).toEqual(['disconnect', 'rejected']);
        expect((await store.listLogs(device.id, { limit: 10, before: T0 + 20 })).map((l) => l.kind)).toEqual([
          'rejected',
          'connect',
        ]);
        expect((await store.listLogs(device.id, { limit: 10, before: T0 + 11 })).map((l) => l.kind)).toEqual([
          'rejected',
          'connect',
        ]);
        expect(await store.listLogs(device.id, { limit: 10, before: T0 })).toEqual([]);
        expect((await store.listLogs(other.id, { limit: 10 })).map((l) => l.kind)).toEqual(['authFailed']);
      });
    });

    describe('access keys', () => {
      it('round-trips a key by id and by key, with its secret hash', async () => {
        const key = makeKey(app.id, {
          filterType: 'whitelist',
          deviceIds: [newId(), newId()],
          deviceTags: [{ key: 'floor', value: '1' }],
          pubTopics: ['custom/+/up'],
          subTopics: ['custom/#'],
        });
        await store.createKey(key);
        expect(await store.getKey(key.id)).toEqual(key);
        expect(await store.getKeyByKey(key.key)).toEqual(key);
        expect(await store.getKey(newId())).toBeUndefined();
        expect(await store.getKeyByKey('nope')).toBeUndefined();
      });

      it('rejects a second key with the same key string', async () => {
        const key = makeKey(app.id);
        await store.createKey(key);
        await expect(store.createKey(makeKey(app.id, { key: key.key }))).rejects.toThrow();
      });

      it('lists the keys of an application without their secret hashes', async () => {
        const later = makeKey(app.id, { creationDate: T0 + 10 });
        const earlier = makeKey(app.id, { creationDate: T0 });
        await store.createKey(later);
        await store.createKey(earlier);
        const other = makeApp();
        await store.createApplication(other);
        await store.createKey(makeKey(other.id));

        const listed = await store.listKeys(app.id);
        const { secretHash: _a, ...earlierPublic } = earlier;
        const { secretHash: _b, ...laterPublic } = later;
        expect(listed).toEqual([earlierPublic, laterPublic]);
        for (const key of listed) expect(key).not.toHaveProperty('secretHash');
      });

      it('updates a key and keeps its secret hash', async () => {
        const key = makeKey(app.id);
        await store.createKey(key);
        const updated: AccessKey = {
          id: key.id,
          applicationId: key.applicationId,
          key: key.key,
          description: 'restricted',
          status: 'inactive',
          filterType: 'blacklist',
          deviceIds: [newId()],
          deviceTags: [{ key: 'zone', value: 'a' }],
          pubTopics: ['a/b'],
          subTopics: ['c/d'],
          creationDate: key.creationDate,
          lastUpdated: T0 + 100,
        };
        await store.updateKey(updated);
        expect(await store.getKey(key.id)).toEqual({ ...updated, secretHash: key.secretHash });

        await store.updateKey({ ...updated, deviceIds: null, deviceTags: null, lastUpdated: T0 + 200 });
        expect(await store.getKey(key.id)).toMatchObject({ deviceIds: null, deviceTags: null, lastUpdated: T0 + 200 });
      });

      it('deletes a key', async () => {
        const key = makeKey(app.id);
        const kept = makeKey(app.id);
        await store.createKey(key);
        await store.createKey(kept);
        await store.deleteKey(key.id);
        expect(await store.getKey(key.id)).toBeUndefined();
        expect(await store.getKeyByKey(key.key)).toBeUndefined();
        expect(await store.getKey(kept.id)).toEqual(kept);
      });
    });
  });
}
