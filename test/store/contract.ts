/**
 * The behaviour every Store backend must share. A backend's test file calls `storeContract`
 * with a factory returning a fresh, empty store; each test opens one and closes it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Dashboard } from '../../src/dashboards/model.js';
import type { StoredApiToken, StoredUser } from '../../src/domain/accounts.js';
import { authorize, deviceListScope } from '../../src/domain/authorization.js';
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
import {
  type Aggregation,
  type ApplicationLogCursor,
  type ApplicationLogEntry,
  type ApplicationLogQuery,
  type DeviceQuery,
  type SeriesQuery,
  type Store,
  writeBatch,
} from '../../src/store/types.js';
import type { Flow, FlowRun } from '../../src/workflows/definition.js';

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

export function state(
  deviceId: string,
  time: number,
  data: Record<string, unknown>,
  reportedBy = deviceId,
): StateRecord {
  return { deviceId, time, data, reportedBy };
}

const batch = writeBatch;

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

    describe('checkWritable', () => {
      it('resolves on an open store, and writes before and after it go on as before', async () => {
        await store.checkWritable();
        await store.checkWritable();
        await store.setSetting('instance.id', 'a');
        const device = await addDevice();
        await store.applyBatch(writeBatch({ states: [state(device.id, T0, { temp: 1 })] }));
        await store.checkWritable();
        expect(await store.getSetting('instance.id')).toBe('a');
        expect(await store.queryStates(device.id, { limit: 10, sortDirection: 'asc' })).toHaveLength(1);
      });

      it('rejects once the store is closed', async () => {
        await store.close();
        await expect(store.checkWritable()).rejects.toThrow();
      });
    });

    describe('accounts', () => {
      const makeUser = (overrides: Partial<StoredUser> = {}): StoredUser => ({
        id: newId(),
        email: `u-${newId()}@example.com`,
        name: 'Ada',
        admin: false,
        passwordHash: 'scrypt$salt$hash',
        creationDate: T0,
        lastUpdated: T0,
        ...overrides,
      });
      const makeToken = (overrides: Partial<StoredApiToken> = {}): StoredApiToken => ({
        id: newId(),
        name: 'ci',
        secretHash: 'h',
        creationDate: T0,
        applicationId: null,
        role: null,
        expiresAt: null,
        ...overrides,
      });

      it('round-trips users, finds them by email, lists them oldest first, updates and deletes', async () => {
        const later = makeUser({ creationDate: T0 + 10, admin: true });
        const earlier = makeUser({ name: '' });
        await store.createUser(later);
        await store.createUser(earlier);
        expect(await store.getUser(later.id)).toEqual(later);
        expect(await store.getUserByEmail(earlier.email)).toEqual(earlier);
        expect(await store.getUserByEmail('nobody@example.com')).toBeUndefined();
        expect(await store.listUsers()).toEqual([earlier, later]);
        const changed = { ...earlier, name: 'Grace', passwordHash: 'scrypt$other', admin: true, lastUpdated: T0 + 5 };
        await store.updateUser(changed);
        expect(await store.getUser(earlier.id)).toEqual(changed);
        await store.deleteUser(earlier.id);
        expect(await store.getUser(earlier.id)).toBeUndefined();
        expect(await store.listUsers()).toEqual([later]);
      });

      it('refuses a second user with the same email', async () => {
        const user = makeUser();
        await store.createUser(user);
        await expect(store.createUser(makeUser({ email: user.email }))).rejects.toThrow();
      });

      it('keeps one membership per user and application, changing its role in place', async () => {
        const user = makeUser();
        await store.createUser(user);
        const other = makeApp();
        await store.createApplication(other);
        await store.putMembership({ applicationId: app.id, userId: user.id, role: 'viewer', creationDate: T0 });
        await store.putMembership({ applicationId: other.id, userId: user.id, role: 'owner', creationDate: T0 + 1 });
        await store.putMembership({ applicationId: app.id, userId: user.id, role: 'editor', creationDate: T0 + 9 });
        expect(await store.listMembers(app.id)).toEqual([
          { applicationId: app.id, userId: user.id, role: 'editor', creationDate: T0 },
        ]);
        expect((await store.listMemberships(user.id)).map((m) => [m.applicationId, m.role])).toEqual([
          [app.id, 'editor'],
          [other.id, 'owner'],
        ]);
        await store.deleteMembership(app.id, user.id);
        expect(await store.listMembers(app.id)).toEqual([]);
        expect(await store.listMemberships(user.id)).toHaveLength(1);
      });

      it("lists API tokens by application, operators' tokens apart, and deletes them", async () => {
        const admin = makeToken();
        const appToken = makeToken({
          applicationId: app.id,
          role: 'viewer',
          expiresAt: T0 + 1000,
          creationDate: T0 + 1,
        });
        await store.createApiToken(appToken);
        await store.createApiToken(admin);
        expect(await store.listApiTokens()).toEqual([admin, appToken]);
        expect(await store.listApiTokens(null)).toEqual([admin]);
        expect(await store.listApiTokens(app.id)).toEqual([appToken]);
        expect(await store.getApiToken(appToken.id)).toEqual(appToken);
        await store.deleteApiToken(appToken.id);
        expect(await store.getApiToken(appToken.id)).toBeUndefined();
        expect(await store.listApiTokens(app.id)).toEqual([]);
      });

      it("removes an application's members and tokens with it, and a user's memberships and sessions with them", async () => {
        const user = makeUser();
        await store.createUser(user);
        const doomed = makeApp();
        await store.createApplication(doomed);
        await store.putMembership({ applicationId: doomed.id, userId: user.id, role: 'owner', creationDate: T0 });
        await store.putMembership({ applicationId: app.id, userId: user.id, role: 'owner', creationDate: T0 });
        await store.createApiToken(makeToken({ applicationId: doomed.id, role: 'editor' }));
        await store.deleteApplication(doomed.id);
        expect(await store.listApiTokens(doomed.id)).toEqual([]);
        expect((await store.listMemberships(user.id)).map((m) => m.applicationId)).toEqual([app.id]);

        const session = { id: newId(), userId: user.id, secretHash: 'ab', creationDate: T0, expiresAt: T0 + 1000 };
        await store.createSession(session);
        await store.deleteUser(user.id);
        expect(await store.getSession(session.id)).toBeUndefined();
        expect(await store.listMembers(app.id)).toEqual([]);
      });

      it('keeps sessions until they end, by id, by user or by expiry', async () => {
        const user = makeUser();
        await store.createUser(user);
        const s = (expiresAt: number) => ({
          id: newId(),
          userId: user.id,
          secretHash: 'ab',
          creationDate: T0,
          expiresAt,
        });
        const [a, b, c] = [s(T0 + 10), s(T0 + 20), s(T0 + 30)];
        for (const x of [a, b, c]) await store.createSession(x);
        expect(await store.getSession(a.id)).toEqual(a);
        expect(await store.deleteExpiredSessions(T0 + 15)).toBe(1);
        expect(await store.getSession(a.id)).toBeUndefined();
        await store.deleteSession(b.id);
        expect(await store.getSession(b.id)).toBeUndefined();
        expect(await store.getSession(c.id)).toEqual(c);
        await store.deleteSessionsOf(user.id);
        expect(await store.getSession(c.id)).toBeUndefined();
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
          await store.applyBatch(batch({ commands: [makeCommand(d)] }));
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
          await store.applyBatch(batch({ commands: [makeCommand(d)] }));
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

      describe('scoped to a device', () => {
        let fleet: Record<string, Device>;

        beforeEach(async () => {
          const scoped = makeApp();
          await store.createApplication(scoped);
          const add = async (deviceClass: Device['deviceClass'], gatewayId: string | null = null) => {
            const device = makeDevice(scoped.id, {
              deviceClass,
              gatewayId,
              creationDate: T0 + Object.keys(fleet).length,
            });
            await store.createDevice(device);
            return device;
          };
          fleet = {};
          fleet.gateway = await add('gateway');
          fleet.otherGateway = await add('gateway');
          fleet.edge = await add('edgeCompute');
          fleet.standalone = await add('standalone');
          fleet.system = await add('system');
          fleet.embedded = await add('embedded');
          fleet.bound = await add('peripheral', fleet.gateway.id);
          fleet.boundElsewhere = await add('peripheral', fleet.otherGateway.id);
          fleet.boundToEdge = await add('peripheral', fleet.edge.id);
          fleet.unbound = await add('peripheral');
          fleet.floating = await add('floating');
          // Another application's peripherals are never in scope.
          const elsewhere = makeApp();
          await store.createApplication(elsewhere);
          await store.createDevice(makeDevice(elsewhere.id, { deviceClass: 'floating' }));
          await store.createDevice(makeDevice(elsewhere.id, { deviceClass: 'peripheral' }));
        });

        const listed = async (actor: Device, query: Partial<DeviceQuery> = {}) => {
          const scope = deviceListScope({ kind: 'device', device: actor, key: makeKey(actor.applicationId) });
          const result = await store.listDevices(actor.applicationId, {
            page: 0,
            perPage: 100,
            ...(scope ? { scope } : {}),
            ...query,
          });
          return { ids: result.items.map((d) => d.id), totalCount: result.totalCount };
        };

        it('holds a gateway and the peripherals bound to it or to no gateway', async () => {
          expect(await listed(fleet.gateway!)).toEqual({
            ids: [fleet.gateway!.id, fleet.bound!.id, fleet.unbound!.id, fleet.floating!.id],
            totalCount: 4,
          });
          expect((await listed(fleet.edge!)).ids).toEqual([
            fleet.edge!.id,
            fleet.boundToEdge!.id,
            fleet.unbound!.id,
            fleet.floating!.id,
          ]);
        });

        it('holds only the device itself for classes that do not act for peripherals', async () => {
          for (const actor of [fleet.standalone!, fleet.system!, fleet.embedded!]) {
            expect(await listed(actor)).toEqual({ ids: [actor.id], totalCount: 1 });
          }
        });

        it('is exactly the devices the authorization rule lets the device read', async () => {
          for (const actor of [fleet.gateway!, fleet.otherGateway!, fleet.edge!, fleet.standalone!, fleet.system!]) {
            const principal = { kind: 'device' as const, device: actor, key: makeKey(actor.applicationId) };
            const readable = Object.values(fleet)
              .filter((target) => authorize(principal, { type: 'readDevice', target }).allow)
              .map((d) => d.id);
            expect((await listed(actor)).ids.sort()).toEqual(readable.sort());
          }
        });

        it('combines with the other filters and pages', async () => {
          expect((await listed(fleet.gateway!, { deviceClass: ['peripheral'] })).ids).toEqual([
            fleet.bound!.id,
            fleet.unbound!.id,
          ]);
          expect(await listed(fleet.gateway!, { page: 1, perPage: 3 })).toEqual({
            ids: [fleet.floating!.id],
            totalCount: 4,
          });
        });
      });
    });

    describe('listDevices by connection status', () => {
      it('finds connected, disconnected and inactive devices, a peripheral by its gateway and the timeout', async () => {
        // The application's peripheral timeout is 900 s (makeApp).
        const now = T0 + 1_000_000;
        const up = await addDevice({ deviceClass: 'gateway', name: 'up' });
        const down = await addDevice({ deviceClass: 'gateway', name: 'down' });
        const never = await addDevice({ name: 'never' });
        const fresh = await addDevice({ deviceClass: 'peripheral', gatewayId: up.id, name: 'fresh' });
        const stale = await addDevice({ deviceClass: 'peripheral', gatewayId: up.id, name: 'stale' });
        const orphan = await addDevice({ deviceClass: 'floating', name: 'orphan' });
        const silent = await addDevice({ deviceClass: 'floating', name: 'silent', creationDate: T0 + 1 });
        await store.applyBatch(
          batch({
            connections: [
              { deviceId: up.id, connected: true, time: T0 },
              { deviceId: down.id, connected: true, time: T0 },
              { deviceId: down.id, connected: false, time: T0 + 1 },
            ],
            reports: [
              { deviceId: fresh.id, reportedBy: up.id, time: now - 10_000 },
              { deviceId: stale.id, reportedBy: up.id, time: now - 901_000 },
              { deviceId: orphan.id, reportedBy: down.id, time: now - 10_000 },
            ],
          }),
        );
        await store.markInactive([never.id], T0 + 5);
        const names = async (is: 'connected' | 'disconnected' | 'inactive') => {
          const { items, totalCount } = await store.listDevices(app.id, { status: { is, now }, page: 0, perPage: 100 });
          expect(totalCount).toBe(items.length);
          return items.map((d) => d.name).sort();
        };
        expect(await names('connected')).toEqual(['fresh', 'up']);
        expect(await names('disconnected')).toEqual(['down', 'never', 'orphan', 'silent', 'stale']);
        expect(await names('inactive')).toEqual(['never']);
        // With the other filters, and paged.
        const page = await store.listDevices(app.id, {
          status: { is: 'disconnected', now },
          deviceClass: ['floating'],
          page: 1,
          perPage: 1,
        });
        expect(page.totalCount).toBe(2);
        expect(page.items.map((d) => d.id)).toEqual([silent.id]);
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

      it('keeps a newer value in the composite state when a batch brings an older one beside newer ones', async () => {
        const device = await addDevice();
        await store.applyBatch(
          batch({ states: [state(device.id, T0 + 5000, { a: 5 }), state(device.id, T0, { b: 0 })] }),
        );
        await store.applyBatch(
          batch({ states: [state(device.id, T0 + 3000, { a: 3, b: 3 }), state(device.id, T0 + 9000, { c: 9 })] }),
        );
        expect(await store.getCompositeState(device.id)).toEqual({
          a: { value: 5, time: T0 + 5000 },
          b: { value: 3, time: T0 + 3000 },
          c: { value: 9, time: T0 + 9000 },
        });
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

    describe('attribute names that are Object.prototype keys', () => {
      // JSON.parse makes "__proto__" an own key, as ingest does; the store must keep it one.
      const NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
      const data = (first: number) =>
        JSON.parse(`{${NAMES.map((n, i) => `"${n}": ${first + i}`).join(', ')}}`) as Record<string, unknown>;
      const entries = (value: object | undefined) => Object.entries(value ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
      const expected = (first: number, wrap: (v: number) => unknown = (v) => v) =>
        entries(Object.fromEntries(NAMES.map((n, i) => [n, wrap(first + i)])));

      it('keeps them in states, composite state, last values and series', async () => {
        const device = await addDevice();
        const M = 1_700_000_040_000; // on a minute
        await store.applyBatch(batch({ states: [state(device.id, M, data(1)), state(device.id, M + 1000, data(11))] }));

        const states = await store.queryStates(device.id, ALL_TIME);
        expect(states.map((s) => entries(s.data))).toEqual([expected(1), expected(11)]);
        expect(entries(await store.getCompositeState(device.id))).toEqual(
          expected(11, (value) => ({ value, time: M + 1000 })),
        );
        expect(entries((await store.lastValues([device.id], null)).get(device.id))).toEqual(
          expected(11, (value) => ({ value, time: M + 1000 })),
        );
        expect(entries((await store.lastValues([device.id], ['__proto__'])).get(device.id))).toEqual([
          ['__proto__', { value: 11, time: M + 1000 }],
        ]);
        const series = (aggregation: Aggregation, resolution: number, start = M) =>
          store
            .querySeries({ deviceIds: [device.id], attributes: null, start, end: M + 59_999, resolution, aggregation })
            .then((out) => (out.get(device.id) ?? []).map((p) => entries(p.data)));
        // From the minute rollups, from the raw states, and the raw states themselves.
        expect(await series('MAX', 60_000)).toEqual([expected(11)]);
        expect(await series('FIRST', 30_000, M - 1)).toEqual([expected(1)]);
        expect(await series('NONE', 60_000)).toEqual([expected(1), expected(11)]);
      });
    });

    describe('querySeries', () => {
      // A minute-aligned origin: 1,700,000,040,000 = 28,333,334 minutes.
      const M = 1_700_000_040_000;
      const S = 1000;
      const RES = 2 * 60 * S;

      /**
       * One device's data, relative to `base`. With res 2 min and end = base + 450 s:
       * bucket 0 [0 s, 120 s) temp 10, 20, 6; label a, b; on true; hum 50 (at its last ms)
       * bucket 1 [120 s, 240 s) temp 4; on false; nested {x: [1, 2]}
       * bucket 2 [240 s, 360 s) nothing
       * bucket 3 [360 s, 450 s] temp 7, 9, 2 (at `end`); label c
       * Before the start and after the end: one state each (ignored).
       * Two batches, out of time order, so rollups are also merged across batches.
       */
      async function seedSeries(deviceId: string, base: number): Promise<void> {
        const at = (ms: number, data: Record<string, unknown>) => state(deviceId, base + ms, data);
        await store.applyBatch(
          batch({
            states: [
              at(30 * S, { temp: 20 }),
              at(400 * S, { temp: 9 }),
              at(120 * S, { temp: 4, on: false, nested: { x: [1, 2] } }),
              at(451 * S, { temp: 1000, label: 'after' }),
            ],
          }),
        );
        await store.applyBatch(
          batch({
            states: [
              at(90 * S, { temp: 6, label: 'b' }),
              at(0, { temp: 10, label: 'a', on: true }),
              at(360 * S, { temp: 7, label: 'c' }),
              at(120 * S - 1, { hum: 50 }),
              at(450 * S, { temp: 2 }),
              at(-1, { temp: -1000, label: 'before' }),
            ],
          }),
        );
      }

      const EXPECTED: Record<Exclude<Aggregation, 'NONE'>, Array<[number, Record<string, unknown>]>> = {
        MEAN: [
          [0, { temp: 12, hum: 50 }],
          [1, { temp: 4 }],
          [3, { temp: 6 }],
        ],
        SUM: [
          [0, { temp: 36, hum: 50 }],
          [1, { temp: 4 }],
          [3, { temp: 18 }],
        ],
        MIN: [
          [0, { temp: 6, hum: 50 }],
          [1, { temp: 4 }],
          [3, { temp: 2 }],
        ],
        MAX: [
          [0, { temp: 20, hum: 50 }],
          [1, { temp: 4 }],
          [3, { temp: 9 }],
        ],
        COUNT: [
          [0, { temp: 3, label: 2, on: 1, hum: 1 }],
          [1, { temp: 1, on: 1, nested: 1 }],
          [3, { temp: 3, label: 1 }],
        ],
        FIRST: [
          [0, { temp: 10, label: 'a', on: true, hum: 50 }],
          [1, { temp: 4, on: false, nested: { x: [1, 2] } }],
          [3, { temp: 7, label: 'c' }],
        ],
        LAST: [
          [0, { temp: 6, label: 'b', on: true, hum: 50 }],
          [1, { temp: 4, on: false, nested: { x: [1, 2] } }],
          [3, { temp: 2, label: 'c' }],
        ],
      };

      // The same data at a minute-aligned start (answered from the minute rollups where a
      // backend has them) and 500 ms off the minute (answered from the raw states).
      const LAYOUTS = [
        ['minute-aligned', M],
        ['unaligned', M + 500],
      ] as const;

      for (const [layout, base] of LAYOUTS) {
        for (const aggregation of Object.keys(EXPECTED) as Array<keyof typeof EXPECTED>) {
          it(`${aggregation}, ${layout} start: hand-computed buckets, edges, empty bucket omitted`, async () => {
            const device = await addDevice();
            await seedSeries(device.id, base);
            const result = await store.querySeries({
              deviceIds: [device.id],
              attributes: null,
              start: base,
              end: base + 450 * S,
              resolution: RES,
              aggregation,
            });
            expect([...result.keys()]).toEqual([device.id]);
            expect(result.get(device.id)).toEqual(
              EXPECTED[aggregation].map(([bucket, data]) => ({ time: base + bucket * RES, data })),
            );
          });
        }

        it(`selects attributes and devices, ${layout} start`, async () => {
          const device = await addDevice();
          const quiet = await addDevice();
          await seedSeries(device.id, base);
          const query = (over: Partial<SeriesQuery>) =>
            store.querySeries({
              deviceIds: [device.id, quiet.id, newId()],
              attributes: ['temp', 'label'],
              start: base,
              end: base + 450 * S,
              resolution: RES,
              aggregation: 'COUNT',
              ...over,
            });
          const counts = await query({});
          expect([...counts.keys()]).toEqual([device.id]);
          expect(counts.get(device.id)).toEqual([
            { time: base, data: { temp: 3, label: 2 } },
            { time: base + RES, data: { temp: 1 } },
            { time: base + 3 * RES, data: { temp: 3, label: 1 } },
          ]);
          // Numeric aggregates skip what is not a number; a bucket left empty is omitted.
          expect((await query({ attributes: ['label', 'on'], aggregation: 'MAX' })).size).toBe(0);
          expect((await query({ attributes: ['missing'] })).size).toBe(0);
          expect((await query({ attributes: [] })).size).toBe(0);
          // One bucket wider than the range; a range holding nothing.
          expect((await query({ resolution: 3_600 * S, aggregation: 'SUM' })).get(device.id)).toEqual([
            { time: base, data: { temp: 58 } },
          ]);
          expect((await query({ start: base + 200 * S, end: base + 359 * S })).size).toBe(0);
          // A bucket of one minute starting exactly on a state, ending one ms before the next.
          expect(
            (
              await query({ start: base + 30 * S, end: base + 120 * S - 1, resolution: 60 * S, aggregation: 'LAST' })
            ).get(device.id),
          ).toEqual([
            { time: base + 30 * S, data: { temp: 20 } },
            { time: base + 90 * S, data: { temp: 6, label: 'b' } },
          ]);
        });
      }

      it('gives the same answers from rollups and from raw states on irregular data', async () => {
        const device = await addDevice();
        // Irregular times (never on the last ms of a second), integers and halves (exact sums),
        // a string and a boolean now and then; written in shuffled batches.
        const states: StateRecord[] = [];
        for (let i = 0; i < 700; i++) {
          const data: Record<string, unknown> = { temp: ((i * 37) % 101) - 50, level: (i % 7) * 0.5 };
          if (i % 5 === 0) data.label = `l${i % 3}`;
          if (i % 4 === 0) data.on = i % 8 === 0;
          if (i % 9 === 0) delete data.temp;
          states.push(state(device.id, M + 5 * S + 1700 * i, data));
        }
        let seed = 7;
        const random = () => {
          seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
          return seed / 2_147_483_648;
        };
        const shuffled = [...states].sort(() => random() - 0.5);
        for (let i = 0; i < shuffled.length; ) {
          const size = 1 + Math.floor(random() * 120);
          await store.applyBatch(batch({ states: shuffled.slice(i, i + size) }));
          i += size;
        }
        const end = 1_050 * S; // cuts a minute: its part up to `end` comes from the raw states
        for (const resolution of [60 * S, 120 * S, 300 * S, 3_600 * S]) {
          for (const aggregation of Object.keys(EXPECTED) as Array<keyof typeof EXPECTED>) {
            const relative = async (start: number) => {
              const result = await store.querySeries({
                deviceIds: [device.id],
                attributes: null,
                start,
                end: start + end,
                resolution,
                aggregation,
              });
              return result.get(device.id)?.map((p) => ({ ...p, time: p.time - start }));
            };
            const aligned = await relative(M);
            expect(aligned?.length).toBeGreaterThan(0);
            expect(await relative(M - 1), `${aggregation} at ${resolution} ms`).toEqual(aligned);
          }
        }
        // Spot checks by hand: the first minute holds states 0..32 (5 s + 1.7 s × 32 = 59.4 s).
        const first = await store.querySeries({
          deviceIds: [device.id],
          attributes: ['temp', 'on'],
          start: M,
          end: M + 60 * S - 1,
          resolution: 60 * S,
          aggregation: 'COUNT',
        });
        // temp: 33 states minus i = 0, 9, 18, 27; on: i = 0, 4, ..., 32.
        expect(first.get(device.id)).toEqual([{ time: M, data: { temp: 29, on: 9 } }]);
      });

      it('NONE returns the raw states in range, oldest first, with only the wanted attributes', async () => {
        const device = await addDevice();
        await seedSeries(device.id, M);
        const none = (attributes: string[] | null) =>
          store.querySeries({
            deviceIds: [device.id],
            attributes,
            start: M,
            end: M + 120 * S,
            resolution: 1,
            aggregation: 'NONE',
          });
        expect((await none(null)).get(device.id)).toEqual([
          { time: M, data: { temp: 10, label: 'a', on: true } },
          { time: M + 30 * S, data: { temp: 20 } },
          { time: M + 90 * S, data: { temp: 6, label: 'b' } },
          { time: M + 120 * S - 1, data: { hum: 50 } },
          { time: M + 120 * S, data: { temp: 4, on: false, nested: { x: [1, 2] } } },
        ]);
        // States without any wanted attribute are left out.
        expect((await none(['label', 'on'])).get(device.id)).toEqual([
          { time: M, data: { label: 'a', on: true } },
          { time: M + 90 * S, data: { label: 'b' } },
          { time: M + 120 * S, data: { on: false } },
        ]);
        expect((await none(['missing'])).size).toBe(0);
      });

      // Data written just now. A backend may hold the rollups of recent minutes in memory (the
      // SQLite store does, and writes older minutes at once); every reader must see them at
      // once all the same. The data starts 3 minutes before the current minute, so its first
      // minutes are older than such a recent window and the others inside it.
      const justNow = () => Math.floor(Date.now() / 60_000) * 60_000 - 3 * 60 * S;
      for (const aggregation of Object.keys(EXPECTED) as Array<keyof typeof EXPECTED>) {
        it(`${aggregation}, data written just now: the same buckets, seen at once`, async () => {
          const base = justNow();
          const device = await addDevice();
          await seedSeries(device.id, base);
          const result = await store.querySeries({
            deviceIds: [device.id],
            attributes: null,
            start: base,
            end: base + 450 * S,
            resolution: RES,
            aggregation,
          });
          expect(result.get(device.id)).toEqual(
            EXPECTED[aggregation].map(([bucket, data]) => ({ time: base + bucket * RES, data })),
          );
        });
      }

      it('forgets data written just now of a deleted device, a deleted application and pruned states', async () => {
        const base = justNow();
        const deleted = await addDevice();
        const pruned = await addDevice();
        const other = makeApp();
        await store.createApplication(other);
        const inOther = makeDevice(other.id);
        await store.createDevice(inOther);
        // Each just before its removal, so that nothing flushed them in between.
        await seedSeries(deleted.id, base);
        await store.deleteDevice(deleted.id);
        await seedSeries(inOther.id, base);
        await store.deleteApplication(other.id);
        await seedSeries(pruned.id, base);
        expect(await store.pruneStates(app.id, base + 3_600 * S, 1_000)).toBe(10);
        const result = await store.querySeries({
          deviceIds: [deleted.id, pruned.id, inOther.id],
          attributes: null,
          start: base,
          end: base + 450 * S,
          resolution: RES,
          aggregation: 'COUNT',
        });
        expect(result.size).toBe(0);
      });

      it('forgets the series of a deleted device', async () => {
        const device = await addDevice();
        await seedSeries(device.id, M);
        await store.deleteDevice(device.id);
        const result = await store.querySeries({
          deviceIds: [device.id],
          attributes: null,
          start: M,
          end: M + 450 * S,
          resolution: RES,
          aggregation: 'MEAN',
        });
        expect(result.size).toBe(0);
      });
    });

    describe('lastValues', () => {
      it('answers the composite state of many devices, with or without an attribute filter', async () => {
        const a = await addDevice();
        const b = await addDevice();
        const silent = await addDevice();
        await store.applyBatch(
          batch({
            states: [
              state(a.id, T0 + 2000, { temp: 20, label: 'x' }),
              state(a.id, T0 + 1000, { temp: 10, on: true }),
              state(b.id, T0 + 500, { temp: 5, nested: { k: [1] } }),
            ],
          }),
        );
        const all = await store.lastValues([a.id, b.id, silent.id, newId()], null);
        expect(Object.fromEntries(all)).toEqual({
          [a.id]: {
            temp: { value: 20, time: T0 + 2000 },
            label: { value: 'x', time: T0 + 2000 },
            on: { value: true, time: T0 + 1000 },
          },
          [b.id]: { temp: { value: 5, time: T0 + 500 }, nested: { value: { k: [1] }, time: T0 + 500 } },
        });
        const some = await store.lastValues([a.id, b.id], ['temp', 'on']);
        expect(Object.fromEntries(some)).toEqual({
          [a.id]: { temp: { value: 20, time: T0 + 2000 }, on: { value: true, time: T0 + 1000 } },
          [b.id]: { temp: { value: 5, time: T0 + 500 } },
        });
        expect((await store.lastValues([a.id], ['missing'])).size).toBe(0);
        expect((await store.lastValues([a.id], [])).size).toBe(0);
        expect((await store.lastValues([], null)).size).toBe(0);
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
        for (const command of commands) await store.applyBatch(batch({ commands: [command] }));
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
        await store.applyBatch(batch({ commands: [command] }));
        await expect(store.applyBatch(batch({ commands: [{ ...command, name: 'again' }] }))).rejects.toThrow();
      });

      it('records commands in the batch with its states, and leaves out one of a deleted device', async () => {
        const device = await addDevice();
        const gone = await addDevice();
        await store.deleteDevice(gone.id);
        const kept = makeCommand(device);
        await store.applyBatch(
          batch({ states: [state(device.id, T0, { temp: 1 })], commands: [kept, makeCommand(gone)] }),
        );
        expect(await store.queryCommands(device.id, ALL_TIME)).toEqual([kept]);
        expect(await store.queryCommands(gone.id, ALL_TIME)).toEqual([]);
        expect(await store.queryStates(device.id, ALL_TIME)).toHaveLength(1);
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

    describe('listApplicationLog', () => {
      /** Every page of the log, following `cursor` from one to the next. */
      async function allPages(query: Omit<ApplicationLogQuery, 'applicationId' | 'before'>) {
        const pages: ApplicationLogEntry[][] = [];
        let before: ApplicationLogCursor | undefined;
        for (;;) {
          const page = await store.listApplicationLog({
            applicationId: app.id,
            ...query,
            ...(before ? { before } : {}),
          });
          if (page.length === 0) return pages;
          pages.push(page);
          before = page[page.length - 1]!.cursor;
          if (pages.length > 1000) throw new Error('paging does not end');
        }
      }

      const kindsOf = (entries: ApplicationLogEntry[]) => entries.map((e) => `${e.kind}@${e.time - T0}`);

      it('merges log entries, commands sent and states accepted, newest first', async () => {
        const gateway = await addDevice({ deviceClass: 'gateway' });
        const peripheral = await addDevice({ deviceClass: 'peripheral', gatewayId: gateway.id });
        await store.applyBatch(
          batch({
            states: [state(peripheral.id, T0 + 30, { temp: 21 }, gateway.id)],
            logs: [
              makeLog(gateway, { time: T0 + 10, kind: 'connect', details: { connected: 1, keyId: 'k1' } }),
              makeLog(gateway, { time: T0 + 50, kind: 'disconnect', details: { disconnectReason: 'Connection lost' } }),
            ],
          }),
        );
        const command = makeCommand(peripheral, { time: T0 + 40, routedTo: [gateway.id], payload: { on: true } });
        await store.applyBatch(batch({ commands: [command] }));

        const entries = await store.listApplicationLog({ applicationId: app.id, limit: 100 });
        expect(kindsOf(entries)).toEqual(['disconnect@50', 'command@40', 'state@30', 'connect@10']);
        expect(entries[0]).toEqual({
          id: expect.any(Number),
          kind: 'disconnect',
          deviceId: gateway.id,
          applicationId: app.id,
          time: T0 + 50,
          details: { disconnectReason: 'Connection lost' },
          cursor: expect.objectContaining({ time: T0 + 50 }),
        });
        expect(entries[1]).toEqual({
          kind: 'command',
          deviceId: peripheral.id,
          applicationId: app.id,
          time: T0 + 40,
          details: {
            commandId: command.id,
            name: 'reboot',
            payload: { on: true },
            routedTo: [gateway.id],
            sentBy: 'api',
          },
          cursor: expect.objectContaining({ time: T0 + 40 }),
        });
        expect(entries[2]).toEqual({
          kind: 'state',
          deviceId: peripheral.id,
          applicationId: app.id,
          time: T0 + 30,
          details: { data: { temp: 21 }, reportedBy: gateway.id },
          cursor: expect.objectContaining({ time: T0 + 30 }),
        });
        expect(entries[3]?.details).toEqual({ connected: 1, keyId: 'k1' });
      });

      it('leaves out other applications', async () => {
        const device = await addDevice();
        const otherApp = makeApp();
        await store.createApplication(otherApp);
        const stranger = makeDevice(otherApp.id);
        await store.createDevice(stranger);
        await store.applyBatch(
          batch({
            states: [state(device.id, T0, { temp: 1 }), state(stranger.id, T0, { temp: 2 })],
            logs: [makeLog(device), makeLog(stranger)],
          }),
        );
        await store.applyBatch(batch({ commands: [makeCommand(stranger)] }));

        const entries = await store.listApplicationLog({ applicationId: app.id, limit: 100 });
        expect(entries.map((e) => e.deviceId)).toEqual([device.id, device.id]);
        expect(await store.listApplicationLog({ applicationId: app.id, limit: 100, deviceIds: [stranger.id] })).toEqual(
          [],
        );
        expect(await store.listApplicationLog({ applicationId: newId(), limit: 100 })).toEqual([]);
      });

      it('pages across the three sources with the cursor, ties included, without loss or repetition', async () => {
        const devices = [await addDevice(), await addDevice(), await addDevice()];
        // Many entries share a millisecond, across sources and across devices.
        const states: StateRecord[] = [];
        const logs: DeviceLogEntry[] = [];
        let expected = 0;
        for (let t = 0; t < 12; t++) {
          for (const [i, device] of devices.entries()) {
            if ((t + i) % 2 === 0) {
              states.push(state(device.id, T0 + t, { temp: t }));
              expected++;
            }
            if ((t + i) % 3 === 0) {
              logs.push(makeLog(device, { time: T0 + t, kind: 'rejected', details: { n: t } }));
              logs.push(makeLog(device, { time: T0 + t, kind: 'dropped', details: { n: t } }));
              expected += 2;
            }
            if ((t * i) % 4 === 0) {
              await store.applyBatch(batch({ commands: [makeCommand(device, { time: T0 + t, name: `c${t}` })] }));
              await store.applyBatch(batch({ commands: [makeCommand(device, { time: T0 + t, name: `d${t}` })] }));
              expected += 2;
            }
          }
        }
        await store.applyBatch(batch({ states, logs }));

        const whole = await store.listApplicationLog({ applicationId: app.id, limit: 1000 });
        expect(whole).toHaveLength(expected);
        for (let i = 1; i < whole.length; i++) expect(whole[i - 1]!.time).toBeGreaterThanOrEqual(whole[i]!.time);
        // At one millisecond: log entries, then commands (newest first), then states.
        const atZero = whole.filter((e) => e.time === T0).map((e) => e.kind);
        expect(atZero).toEqual([
          'dropped',
          'rejected',
          'command',
          'command',
          'command',
          'command',
          'command',
          'command',
          'state',
          'state',
        ]);
        const commandsAtZero = whole.filter((e) => e.time === T0 && e.kind === 'command');
        expect(commandsAtZero.map((e) => e.details.name)).toEqual(['d0', 'c0', 'd0', 'c0', 'd0', 'c0']);

        for (const limit of [1, 2, 3, 7, 50]) {
          const pages = await allPages({ limit });
          expect(pages.every((p) => p.length <= limit)).toBe(true);
          expect(pages.flat()).toEqual(whole);
        }
        // Filtered paging follows the same cursor rules.
        const onlyOne = whole.filter((e) => e.deviceId === devices[1]!.id && e.kind !== 'dropped');
        const filtered = await allPages({
          limit: 4,
          deviceIds: [devices[1]!.id],
          kinds: ['state', 'command', 'rejected'],
        });
        expect(filtered.flat()).toEqual(onlyOne);
      });

      it('filters by device, kind and time range', async () => {
        const a = await addDevice();
        const b = await addDevice();
        await store.applyBatch(
          batch({
            states: [state(a.id, T0 + 1, { temp: 1 }), state(b.id, T0 + 2, { temp: 2 })],
            logs: [
              makeLog(a, { time: T0 + 3, kind: 'authFailed', details: { reason: 'wrong access secret' } }),
              makeLog(b, { time: T0 + 4, kind: 'connect' }),
            ],
          }),
        );
        await store.applyBatch(batch({ commands: [makeCommand(b, { time: T0 + 5 })] }));
        const list = (q: Partial<ApplicationLogQuery>) =>
          store.listApplicationLog({ applicationId: app.id, limit: 100, ...q }).then(kindsOf);

        expect(await list({})).toEqual(['command@5', 'connect@4', 'authFailed@3', 'state@2', 'state@1']);
        expect(await list({ deviceIds: [a.id] })).toEqual(['authFailed@3', 'state@1']);
        expect(await list({ deviceIds: [a.id, b.id], kinds: ['state'] })).toEqual(['state@2', 'state@1']);
        expect(await list({ kinds: ['authFailed', 'command'] })).toEqual(['command@5', 'authFailed@3']);
        expect(await list({ kinds: ['connect'] })).toEqual(['connect@4']);
        expect(await list({ start: T0 + 2, end: T0 + 4 })).toEqual(['connect@4', 'authFailed@3', 'state@2']);
        expect(await list({ start: T0 + 5 })).toEqual(['command@5']);
        expect(await list({ end: T0 + 1 })).toEqual(['state@1']);
        expect(await list({ limit: 2 })).toEqual(['command@5', 'connect@4']);
        expect(await list({ deviceIds: [] })).toEqual([]);
        expect(await list({ kinds: [] })).toEqual([]);
        // A cursor from an unfiltered page continues a filtered listing at the same position.
        const [first] = await store.listApplicationLog({ applicationId: app.id, limit: 1 });
        expect(await list({ before: first!.cursor, kinds: ['state', 'connect'] })).toEqual([
          'connect@4',
          'state@2',
          'state@1',
        ]);
      });
    });

    describe('flows', () => {
      function makeFlow(overrides: Partial<Flow> = {}): Flow {
        return {
          id: newId(),
          applicationId: app.id,
          name: 'alarm',
          description: '',
          enabled: true,
          defaultVersionId: null,
          stats: { runCount: 0, errorCount: 0 },
          triggers: [{ type: 'deviceTag', key: 'site/north', config: {}, outputIds: [['n1']] }],
          nodes: [{ id: 'n1', type: 'DebugNode', config: {}, outputIds: [[]] }],
          globals: [{ key: 'limit', json: '30' }],
          creationDate: T0,
          lastUpdated: T0,
          ...overrides,
        };
      }

      function makeRun(flowId: string, time: number, errors: FlowRun['errors'] = []): FlowRun {
        return {
          flowId,
          time,
          flowVersion: 'develop',
          triggerType: 'deviceTag',
          triggerId: 'd1',
          pathsCompleted: errors.length === 0 ? 1 : 0,
          pathsFailed: errors.length,
          wallTime: 0.25,
          latency: 1.5,
          errors,
        };
      }

      it('round-trips a flow and keeps its stats when the definition is updated', async () => {
        const flow = makeFlow();
        await store.createFlow(flow);
        expect(await store.getFlow(flow.id)).toEqual(flow);
        await store.recordFlowRuns([], [{ flowId: flow.id, runs: 3, errors: 1 }], 10);
        await store.updateFlow({ ...flow, name: 'renamed', stats: { runCount: 0, errorCount: 0 } });
        expect(await store.getFlow(flow.id)).toMatchObject({ name: 'renamed', stats: { runCount: 3, errorCount: 1 } });
      });

      it('records runs and stats together, newest first, keeping the newest of each flow', async () => {
        const flow = makeFlow();
        const other = makeFlow({ creationDate: T0 + 1 });
        await store.createFlow(flow);
        await store.createFlow(other);
        const failed = makeRun(flow.id, T0 + 5, [{ nodeId: 'n1', nodeType: 'DebugNode', message: 'boom' }]);
        const runs = [makeRun(flow.id, T0 + 1), makeRun(other.id, T0 + 2), failed];
        await store.recordFlowRuns(
          runs,
          [
            { flowId: flow.id, runs: 2, errors: 1 },
            { flowId: other.id, runs: 1, errors: 0 },
          ],
          1_000,
        );
        expect(await store.listFlowRuns(flow.id, { limit: 10 })).toEqual([failed, runs[0]]);
        expect(await store.listFlowRuns(flow.id, { limit: 10, start: T0 + 2, end: T0 + 9 })).toEqual([failed]);
        expect((await store.getFlow(flow.id))?.stats).toEqual({ runCount: 2, errorCount: 1 });
        expect((await store.getFlow(other.id))?.stats).toEqual({ runCount: 1, errorCount: 0 });
        expect(await store.listFlows(app.id)).toHaveLength(2);

        // Past the bound, the oldest go (in batches: at most a tenth more may stay a while).
        const many = Array.from({ length: 30 }, (_, i) => makeRun(flow.id, T0 + 100 + i));
        await store.recordFlowRuns(many, [{ flowId: flow.id, runs: 30, errors: 0 }], 20);
        const kept = await store.listFlowRuns(flow.id, { limit: 100 });
        expect(kept.length).toBeGreaterThanOrEqual(20);
        expect(kept.length).toBeLessThanOrEqual(22);
        expect(kept.slice(0, 20)).toEqual(many.slice(10).reverse());
      });

      it('ignores runs and stats of a flow that no longer exists, and deleting a flow removes its runs', async () => {
        const flow = makeFlow();
        await store.createFlow(flow);
        await store.recordFlowRuns([makeRun(flow.id, T0)], [{ flowId: flow.id, runs: 1, errors: 0 }], 10);
        await store.deleteFlow(flow.id);
        const gone = newId();
        await store.recordFlowRuns(
          [makeRun(gone, T0), makeRun(gone, T0 + 1)],
          [{ flowId: gone, runs: 2, errors: 0 }],
          10,
        );
        expect(await store.listFlowRuns(flow.id, { limit: 10 })).toEqual([]);
        expect(await store.listFlowRuns(gone, { limit: 10 })).toEqual([]);
        expect(await store.getFlow(flow.id)).toBeUndefined();
      });

      it('keeps workflow storage values per flow', async () => {
        const flow = makeFlow();
        const other = makeFlow();
        await store.createFlow(flow);
        await store.createFlow(other);
        await store.setFlowValue(flow.id, 'count', { n: 1, list: [1, 'two'] });
        await store.setFlowValue(other.id, 'count', 7);
        expect(await store.getFlowValue(flow.id, 'count')).toEqual({ n: 1, list: [1, 'two'] });
        expect(await store.getFlowValue(other.id, 'count')).toBe(7);
        await store.setFlowValue(flow.id, 'count', undefined);
        expect(await store.getFlowValue(flow.id, 'count')).toBeUndefined();
      });

      it('deleting the application removes its flows', async () => {
        const flow = makeFlow();
        await store.createFlow(flow);
        await store.deleteApplication(app.id);
        expect(await store.getFlow(flow.id)).toBeUndefined();
        expect(await store.listFlows()).toEqual([]);
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

    describe('dashboards', () => {
      const makeDashboard = (applicationId: string, overrides: Partial<Dashboard> = {}): Dashboard => ({
        id: newId(),
        applicationId,
        name: 'Plant floor',
        description: '',
        refreshRate: 60,
        defaultTheme: 'light',
        blocks: [
          {
            id: 'temp',
            blockType: 'gauge',
            title: 'Temperature',
            startX: 0,
            startY: 0,
            width: 2,
            height: 1.5,
            config: { segment: { deviceIds: [newId()], attribute: 'temp', aggregation: 'LAST' }, precision: 4 },
          },
        ],
        contextConfiguration: [{ name: 'deviceId', type: 'deviceId', defaultValue: newId() }],
        creationDate: T0,
        lastUpdated: T0,
        ...overrides,
      });

      it('round-trips a dashboard with its blocks and context, and lists them oldest first', async () => {
        const first = makeDashboard(app.id, { refreshRate: 7.5 });
        const second = makeDashboard(app.id, { creationDate: T0 + 1, defaultTheme: 'dark', blocks: [] });
        await store.createDashboard(second);
        await store.createDashboard(first);
        expect(await store.getDashboard(first.id)).toEqual(first);
        expect(await store.listDashboards(app.id)).toEqual([first, second]);
        expect(await store.getDashboard(newId())).toBeUndefined();
      });

      it('lists only the dashboards of the application asked for', async () => {
        const other = makeApp();
        await store.createApplication(other);
        const mine = makeDashboard(app.id);
        await store.createDashboard(mine);
        await store.createDashboard(makeDashboard(other.id));
        expect((await store.listDashboards(app.id)).map((d) => d.id)).toEqual([mine.id]);
      });

      it('rejects a dashboard of an unknown application', async () => {
        await expect(store.createDashboard(makeDashboard(newId()))).rejects.toThrow();
      });

      it('updates everything but the id, the application and the creation date', async () => {
        const dashboard = makeDashboard(app.id);
        await store.createDashboard(dashboard);
        const other = makeApp();
        await store.createApplication(other);
        const changed: Dashboard = {
          ...dashboard,
          applicationId: other.id,
          creationDate: T0 + 50,
          name: 'Renamed',
          description: 'Now with words',
          refreshRate: 600,
          defaultTheme: 'dark',
          blocks: [],
          contextConfiguration: [],
          lastUpdated: T0 + 100,
        };
        await store.updateDashboard(changed);
        expect(await store.getDashboard(dashboard.id)).toEqual({
          ...changed,
          applicationId: app.id,
          creationDate: T0,
        });
      });

      it('deletes one dashboard, and every dashboard of a deleted application', async () => {
        const gone = makeDashboard(app.id);
        const kept = makeDashboard(app.id);
        await store.createDashboard(gone);
        await store.createDashboard(kept);
        await store.deleteDashboard(gone.id);
        expect(await store.listDashboards(app.id)).toEqual([kept]);

        const other = makeApp();
        await store.createApplication(other);
        const elsewhere = makeDashboard(other.id);
        await store.createDashboard(elsewhere);
        await store.deleteApplication(app.id);
        expect(await store.getDashboard(kept.id)).toBeUndefined();
        expect(await store.listDashboards(app.id)).toEqual([]);
        expect(await store.getDashboard(elsewhere.id)).toEqual(elsewhere);
      });
    });
  });
}
