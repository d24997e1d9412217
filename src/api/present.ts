/** Turns domain records into REST bodies: epoch ms become ISO strings (spec: REST). */

import type { Platform } from '../core/platform.js';
import { iso } from '../core/wire.js';
import { actsForPeripherals, isPeripheralClass } from '../domain/device-class.js';
import type { AccessKey, Application, Device } from '../domain/model.js';

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : iso(ms));

export function presentApplication(app: Application) {
  return { ...app, creationDate: iso(app.creationDate), lastUpdated: iso(app.lastUpdated) };
}

export function presentKey(key: AccessKey) {
  return { ...key, creationDate: iso(key.creationDate), lastUpdated: iso(key.lastUpdated) };
}

export async function presentDevices(platform: Platform, devices: Device[]) {
  const statuses = await platform.statusOf(devices);
  return devices.map((device) => {
    const s = statuses.get(device.id);
    const status = s?.status;
    return {
      ...device,
      connectionInfo: {
        connected: s?.connectionInfo.connected ?? null,
        time: isoOrNull(s?.connectionInfo.time ?? null),
      },
      lastReportedBy:
        status?.lastReportedBy && status.lastReportedAt !== null
          ? { deviceId: status.lastReportedBy, time: iso(status.lastReportedAt) }
          : null,
      inactiveSince: isoOrNull(status?.inactiveSince ?? null),
      creationDate: iso(device.creationDate),
      lastUpdated: iso(device.lastUpdated),
    };
  });
}

/** How far back "recently" reaches in a gateway's list of the peripherals it reported for. */
export const RECENT_PERIPHERALS_MS = 24 * 3600_000;

/** One device with its provenance: a gateway's bound and recent peripherals, a peripheral's gateways. */
export async function presentDeviceDetail(platform: Platform, device: Device) {
  const base = await presentDevice(platform, device);
  if (actsForPeripherals(device.deviceClass)) {
    const [bound, recent] = await Promise.all([
      platform.store.listBoundPeripherals(device.id),
      platform.store.listPeripheralsSeenBy(device.id, platform.clock() - RECENT_PERIPHERALS_MS),
    ]);
    return {
      ...base,
      peripherals: {
        bound,
        recent: recent.map((r) => ({ deviceId: r.peripheralId, lastSeen: iso(r.lastSeen), reports: r.reports })),
      },
    };
  }
  if (isPeripheralClass(device.deviceClass)) {
    const sightings = await platform.store.listGatewaySightings(device.id);
    return {
      ...base,
      gateways: sightings.map((g) => ({
        gatewayId: g.gatewayId,
        firstSeen: iso(g.firstSeen),
        lastSeen: iso(g.lastSeen),
        reports: g.reports,
      })),
    };
  }
  return base;
}

export async function presentDevice(platform: Platform, device: Device) {
  return (await presentDevices(platform, [device]))[0] as Awaited<ReturnType<typeof presentDevices>>[number];
}
