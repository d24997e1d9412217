/** Turns domain records into REST bodies: epoch ms become ISO strings (spec: REST). */

import type { Platform } from '../core/platform.js';
import type { AccessKey, Application, CommandRecord, Device, StateRecord } from '../domain/model.js';

export const iso = (ms: number): string => new Date(ms).toISOString();
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
      creationDate: iso(device.creationDate),
      lastUpdated: iso(device.lastUpdated),
    };
  });
}

export async function presentDevice(platform: Platform, device: Device) {
  return (await presentDevices(platform, [device]))[0] as Awaited<ReturnType<typeof presentDevices>>[number];
}

export function presentState(state: StateRecord) {
  return { time: iso(state.time), data: state.data, reportedBy: state.reportedBy };
}

export function presentCommand(command: CommandRecord) {
  return {
    id: command.id,
    name: command.name,
    payload: command.payload,
    time: iso(command.time),
    routedTo: command.routedTo,
    sentBy: command.sentBy,
  };
}
