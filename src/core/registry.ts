/**
 * Applications, devices and access keys: validated writes through to the store, and cached
 * reads for the hot paths (every MQTT publish resolves its actor and target here). All writes
 * go through this class, so the caches stay exact in a single process.
 */
import { checkGatewayBinding, isPeripheralClass } from '../domain/device-class.js';
import { newId } from '../domain/ids.js';
import {
  type AccessKey,
  type Application,
  type AttributeDef,
  DEFAULT_LOG_RETENTION_DAYS,
  DEFAULT_PERIPHERAL_TIMEOUT_SECONDS,
  DEFAULT_RATE_LIMIT,
  type Device,
  type DeviceClass,
  type KeyFilterType,
  type RateLimit,
  type StoredAccessKey,
  type Tag,
} from '../domain/model.js';
import type { DeviceQuery, Store } from '../store/types.js';
import { GatehouseError } from './errors.js';
import { generateSecret, hashSecret } from './secrets.js';
import { SharedLists } from './shared-lists.js';

export interface ApplicationInput {
  name: string;
  description?: string;
  rateLimit?: RateLimit;
  peripheralTimeoutSeconds?: number;
  inactivityTimeoutSeconds?: number | null;
  stateRetentionDays?: number | null;
  logRetentionDays?: number;
}

export interface DeviceInput {
  name: string;
  description?: string;
  deviceClass?: DeviceClass;
  gatewayId?: string | null;
  tags?: Tag[];
  attributes?: AttributeDef[];
}

export interface KeyInput {
  description?: string;
  status?: 'active' | 'inactive';
  filterType?: KeyFilterType;
  deviceIds?: string[] | null;
  deviceTags?: Tag[] | null;
  pubTopics?: string[];
  subTopics?: string[];
}

/** Told when a change may take rights away from a connected device. */
export type RevocationListener = (change: { deviceId?: string; keyId?: string; applicationId?: string }) => void;

export class Registry {
  private readonly apps = new Map<string, Application>();
  private readonly devices = new Map<string, Device>();
  private readonly sharedTags = new SharedLists<Tag>();
  private readonly sharedAttributes = new SharedLists<AttributeDef>();
  private readonly keys = new Map<string, StoredAccessKey>();
  private readonly keyIdByKey = new Map<string, string>();
  private revocationListener: RevocationListener = () => {};
  private changeListener: RevocationListener = () => {};

  constructor(
    private readonly store: Store,
    private readonly clock: () => number = Date.now,
  ) {}

  onRevocation(listener: RevocationListener): void {
    this.revocationListener = listener;
  }

  /**
   * Told of every change this registry made to an application, device or key, so that nodes
   * sharing the store can refresh what they cache (src/cluster/).
   */
  onChange(listener: RevocationListener): void {
    this.changeListener = listener;
  }

  /**
   * Reads a definition another node changed from the store again, replacing (or dropping) what is
   * cached, then re-checks connected clients as a change made here would.
   */
  async refresh(change: { deviceId?: string; keyId?: string; applicationId?: string }): Promise<void> {
    // An application in a revocation means it was deleted (Platform forgets its sessions then).
    const { applicationId, ...revoked } = change;
    if (applicationId) {
      const app = await this.store.getApplication(applicationId);
      if (app) this.apps.set(app.id, app);
      else {
        Object.assign(revoked, { applicationId });
        this.apps.delete(applicationId);
        for (const [deviceId, d] of this.devices) if (d.applicationId === applicationId) this.devices.delete(deviceId);
        for (const [keyId, k] of this.keys) {
          if (k.applicationId === applicationId) {
            this.keys.delete(keyId);
            this.keyIdByKey.delete(k.key);
          }
        }
      }
    }
    if (change.deviceId && this.devices.has(change.deviceId)) {
      const device = await this.store.getDevice(change.deviceId);
      if (device) this.cacheDevice(device);
      else this.devices.delete(change.deviceId);
    }
    if (change.keyId) {
      const cached = this.keys.get(change.keyId);
      const key = await this.store.getKey(change.keyId);
      if (cached) this.keyIdByKey.delete(cached.key);
      if (key) this.cacheKey(key);
      else this.keys.delete(change.keyId);
    }
    if (Object.keys(revoked).length > 0) this.revocationListener(revoked);
  }

  // Applications

  async createApplication(input: ApplicationInput): Promise<Application> {
    const now = this.clock();
    const app: Application = {
      id: newId(),
      name: input.name,
      description: input.description ?? '',
      rateLimit: input.rateLimit ?? { ...DEFAULT_RATE_LIMIT },
      peripheralTimeoutSeconds: input.peripheralTimeoutSeconds ?? DEFAULT_PERIPHERAL_TIMEOUT_SECONDS,
      inactivityTimeoutSeconds: input.inactivityTimeoutSeconds ?? null,
      stateRetentionDays: input.stateRetentionDays ?? null,
      logRetentionDays: input.logRetentionDays ?? DEFAULT_LOG_RETENTION_DAYS,
      creationDate: now,
      lastUpdated: now,
    };
    await this.store.createApplication(app);
    this.apps.set(app.id, app);
    return app;
  }

  async application(id: string): Promise<Application | undefined> {
    const cached = this.apps.get(id);
    if (cached) return cached;
    const app = await this.store.getApplication(id);
    if (app) this.apps.set(id, app);
    return app;
  }

  async requireApplication(id: string): Promise<Application> {
    const app = await this.application(id);
    if (!app) throw new GatehouseError('NotFound', `application ${id} not found`);
    return app;
  }

  listApplications(): Promise<Application[]> {
    return this.store.listApplications();
  }

  async updateApplication(id: string, patch: Partial<ApplicationInput>): Promise<Application> {
    const app = await this.requireApplication(id);
    const updated: Application = { ...app, ...definedOnly(patch), lastUpdated: this.clock() };
    await this.store.updateApplication(updated);
    this.apps.set(id, updated);
    this.changeListener({ applicationId: id });
    return updated;
  }

  async deleteApplication(id: string): Promise<void> {
    await this.requireApplication(id);
    await this.store.deleteApplication(id);
    this.apps.delete(id);
    for (const [deviceId, d] of this.devices) if (d.applicationId === id) this.devices.delete(deviceId);
    for (const [keyId, k] of this.keys) {
      if (k.applicationId === id) {
        this.keys.delete(keyId);
        this.keyIdByKey.delete(k.key);
      }
    }
    this.revocationListener({ applicationId: id });
    this.changeListener({ applicationId: id });
  }

  // Devices

  async createDevice(applicationId: string, input: DeviceInput): Promise<Device> {
    await this.requireApplication(applicationId);
    const now = this.clock();
    const device: Device = {
      id: newId(),
      applicationId,
      name: input.name,
      description: input.description ?? '',
      deviceClass: input.deviceClass ?? 'standalone',
      gatewayId: input.gatewayId ?? null,
      tags: input.tags ?? [],
      attributes: input.attributes ?? [],
      creationDate: now,
      lastUpdated: now,
    };
    await this.validateDevice(device);
    await this.store.createDevice(device);
    return this.cacheDevice(device);
  }

  /** Caches a device with its tags and attributes shared with equal devices' (shared-lists.ts). */
  private cacheDevice(device: Device): Device {
    const cached: Device = {
      ...device,
      tags: this.sharedTags.share(device.tags),
      attributes: this.sharedAttributes.share(device.attributes),
    };
    this.devices.set(cached.id, cached);
    return cached;
  }

  /** The cached device, or undefined when it is not in the cache (it may still exist). */
  deviceCached(id: string): Device | undefined {
    return this.devices.get(id);
  }

  applicationCached(id: string): Application | undefined {
    return this.apps.get(id);
  }

  async device(id: string): Promise<Device | undefined> {
    const cached = this.devices.get(id);
    if (cached) return cached;
    const device = await this.store.getDevice(id);
    return device && this.cacheDevice(device);
  }

  /** The device when it belongs to the application; 404 otherwise. */
  async requireDevice(applicationId: string, id: string): Promise<Device> {
    const device = await this.device(id);
    if (!device || device.applicationId !== applicationId) {
      throw new GatehouseError('NotFound', `device ${id} not found in application ${applicationId}`);
    }
    return device;
  }

  listDevices(applicationId: string, query: DeviceQuery) {
    return this.store.listDevices(applicationId, query);
  }

  async updateDevice(applicationId: string, id: string, patch: Partial<DeviceInput>): Promise<Device> {
    const device = await this.requireDevice(applicationId, id);
    const updated: Device = { ...device, ...definedOnly(patch), lastUpdated: this.clock() };
    if (patch.deviceClass && patch.deviceClass !== 'peripheral' && patch.gatewayId === undefined) {
      updated.gatewayId = null;
    }
    await this.validateDevice(updated);
    await this.store.updateDevice(updated);
    const cached = this.cacheDevice(updated);
    this.revocationListener({ deviceId: id });
    this.changeListener({ deviceId: id });
    return cached;
  }

  async deleteDevice(applicationId: string, id: string): Promise<void> {
    await this.requireDevice(applicationId, id);
    await this.store.deleteDevice(id);
    this.devices.delete(id);
    this.revocationListener({ deviceId: id });
    this.changeListener({ deviceId: id });
  }

  private async validateDevice(device: Device): Promise<void> {
    const gateway = device.gatewayId ? await this.device(device.gatewayId) : undefined;
    const problem = checkGatewayBinding(device, gateway);
    // Messages name the body field at fault, as the schema's do.
    if (problem) throw new GatehouseError('Validation', `body/gatewayId is refused: ${problem}`);
    const names = new Set<string>();
    for (const [i, a] of device.attributes.entries()) {
      if (names.has(a.name)) {
        throw new GatehouseError('Validation', `body/attributes/${i}/name: attribute "${a.name}" is defined twice`);
      }
      names.add(a.name);
    }
  }

  // Access keys

  async createKey(applicationId: string, input: KeyInput): Promise<{ key: AccessKey; secret: string }> {
    await this.requireApplication(applicationId);
    const now = this.clock();
    const secret = generateSecret();
    const key: StoredAccessKey = {
      id: newId(),
      applicationId,
      key: crypto.randomUUID(),
      description: input.description ?? '',
      status: input.status ?? 'active',
      filterType: input.filterType ?? 'none',
      deviceIds: input.deviceIds ?? null,
      deviceTags: input.deviceTags ?? null,
      pubTopics: input.pubTopics ?? [],
      subTopics: input.subTopics ?? [],
      creationDate: now,
      lastUpdated: now,
      secretHash: await hashSecret(secret),
    };
    await this.store.createKey(key);
    this.cacheKey(key);
    return { key: publicKey(key), secret };
  }

  keyCached(id: string): StoredAccessKey | undefined {
    return this.keys.get(id);
  }

  /** Looks a key up by its public `key` string (the MQTT username). */
  async keyByKey(keyString: string): Promise<StoredAccessKey | undefined> {
    const id = this.keyIdByKey.get(keyString);
    if (id) return this.keys.get(id);
    const key = await this.store.getKeyByKey(keyString);
    if (key) this.cacheKey(key);
    return key;
  }

  async keyById(id: string): Promise<StoredAccessKey | undefined> {
    const cached = this.keys.get(id);
    if (cached) return cached;
    const key = await this.store.getKey(id);
    if (key) this.cacheKey(key);
    return key;
  }

  async requireKey(applicationId: string, id: string): Promise<AccessKey> {
    const key = await this.keyById(id);
    if (!key || key.applicationId !== applicationId) {
      throw new GatehouseError('NotFound', `access key ${id} not found in application ${applicationId}`);
    }
    return publicKey(key);
  }

  listKeys(applicationId: string): Promise<AccessKey[]> {
    return this.store.listKeys(applicationId);
  }

  async updateKey(applicationId: string, id: string, patch: KeyInput): Promise<AccessKey> {
    await this.requireKey(applicationId, id);
    const stored = (await this.keyById(id)) as StoredAccessKey;
    const updated: StoredAccessKey = { ...stored, ...definedOnly(patch), lastUpdated: this.clock() };
    await this.store.updateKey(publicKey(updated));
    this.cacheKey(updated);
    this.revocationListener({ keyId: id });
    this.changeListener({ keyId: id });
    return publicKey(updated);
  }

  async deleteKey(applicationId: string, id: string): Promise<void> {
    const key = await this.requireKey(applicationId, id);
    await this.store.deleteKey(id);
    this.keys.delete(id);
    this.keyIdByKey.delete(key.key);
    this.revocationListener({ keyId: id });
    this.changeListener({ keyId: id });
  }

  private cacheKey(key: StoredAccessKey): void {
    this.keys.set(key.id, key);
    this.keyIdByKey.set(key.key, key.id);
  }

  /** Devices of an application matching ids and/or tags (for commands to many devices). */
  async selectDevices(applicationId: string, ids: string[] | undefined, tags: Tag[] | undefined): Promise<Device[]> {
    const { items } = await this.store.listDevices(applicationId, { page: 0, perPage: 1_000_000 });
    return items.filter(
      (d) =>
        (ids?.includes(d.id) ?? false) ||
        (tags?.some((t) => d.tags.some((dt) => dt.key === t.key && dt.value === t.value)) ?? false),
    );
  }

  static isPeripheral(device: Device): boolean {
    return isPeripheralClass(device.deviceClass);
  }
}

export function publicKey(key: StoredAccessKey): AccessKey {
  const { secretHash: _secretHash, ...rest } = key;
  return rest;
}

function definedOnly<T extends object>(patch: T): Partial<T> {
  return Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) as Partial<T>;
}
