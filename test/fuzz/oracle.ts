/**
 * The oracle: snapshots of everything the fleet has stored (applications, devices, keys,
 * composite states, whole state histories), read over REST with the admin token, and the
 * comparison of two snapshots. Between them, nothing may change except by a state the ledger
 * says was sent by a device allowed to report it (or posted with the admin token and accepted).
 * Also each snapshot on its own: a device's composite state must be the newest value of each
 * attribute in its history.
 */
import type { HttpClient } from './http-client.js';
import type { Ledger } from './ledger.js';
import { type AppRole, type AttributeDef, type DeviceRole, type Fleet, mayActFor, WATCHED_DEVICES } from './model.js';

export interface StoredState {
  time: string;
  data: Record<string, unknown>;
  reportedBy: string;
}
type Composite = Record<string, { value: unknown; time: string }>;

interface DeviceSnapshot {
  /** The definition: everything but what reports and connections change. */
  definition: string;
  lastReportedBy: { deviceId: string; time: string } | null;
  /** Gateways that reported for a peripheral; peripherals a gateway reported for. */
  gateways: string[];
  recentPeripherals: string[];
  composite: Composite;
  history: StoredState[];
}

export interface Snapshot {
  takenAt: number;
  /** Applications A, B and the barrier's, as JSON text. */
  apps: Map<string, string>;
  appIds: Set<string>;
  /** Device ids of A and B. */
  deviceIds: Map<AppRole, string[]>;
  keys: Map<AppRole, string>;
  devices: Map<DeviceRole, DeviceSnapshot>;
  states: number;
}

export interface Corruption {
  device?: DeviceRole;
  what: string;
  before?: unknown;
  after?: unknown;
  /** Cases that wrote to this device in the generations compared. */
  cases?: number[];
}

const PAGE = 10_000;

export async function takeSnapshot(http: HttpClient, fleet: Fleet): Promise<Snapshot> {
  const token = fleet.adminToken;
  const get = async <T>(path: string): Promise<T> => {
    const r = await http.getJson<T>(path, token);
    if (r.status !== 200) throw new Error(`oracle: GET ${path} answered ${r.status}: ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const takenAt = Date.now();
  const appList = await get<{ items: Array<{ id: string }> }>('/applications');
  const watchedApps = new Set([fleet.apps.A, fleet.apps.B, fleet.barrierApp]);
  const apps = new Map(appList.items.filter((a) => watchedApps.has(a.id)).map((a) => [a.id, JSON.stringify(a)]));
  const deviceIds = new Map<AppRole, string[]>();
  const keys = new Map<AppRole, string>();
  for (const app of ['A', 'B'] as const) {
    const list = await get<{ items: Array<{ id: string }> }>(`/applications/${fleet.apps[app]}/devices?perPage=1000`);
    deviceIds.set(
      app,
      list.items.map((d) => d.id),
    );
    const keyList = await get<{ items: unknown[] }>(`/applications/${fleet.apps[app]}/keys`);
    keys.set(app, JSON.stringify(keyList.items));
  }
  const devices = new Map<DeviceRole, DeviceSnapshot>();
  let states = 0;
  for (const role of WATCHED_DEVICES) {
    const d = fleet.devices[role];
    const base = `/applications/${fleet.apps[d.app]}/devices/${d.id}`;
    const detail = await get<Record<string, unknown>>(base);
    const { connectionInfo, lastReportedBy, inactiveSince, peripherals, gateways, ...definition } = detail as {
      connectionInfo: unknown;
      lastReportedBy: DeviceSnapshot['lastReportedBy'];
      inactiveSince: unknown;
      peripherals?: { bound: string[]; recent: Array<{ deviceId: string }> };
      gateways?: Array<{ gatewayId: string }>;
    };
    void connectionInfo;
    void inactiveSince;
    const composite = await get<Composite>(`${base}/compositeState`);
    const history: StoredState[] = [];
    // Pages by time: times of one device are unique (equal times merge).
    let start = 0;
    for (;;) {
      const page = await get<StoredState[]>(`${base}/state?limit=${PAGE}&sortDirection=asc&start=${start}`);
      history.push(...page);
      if (page.length < PAGE) break;
      start = Date.parse(page.at(-1)!.time) + 1;
    }
    states += history.length;
    devices.set(role, {
      definition: JSON.stringify({ ...definition, bound: peripherals?.bound ?? null }),
      lastReportedBy,
      gateways: (gateways ?? []).map((g) => g.gatewayId),
      recentPeripherals: (peripherals?.recent ?? []).map((p) => p.deviceId),
      composite,
      history,
    });
  }
  return { takenAt, apps, appIds: new Set(appList.items.map((a) => a.id)), deviceIds, keys, devices, states };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const GPS = /^-?\d+(\.\d+)?(e[+-]?\d+)?,-?\d+(\.\d+)?(e[+-]?\d+)?$/;

/** Does a stored value have the type its attribute declares? */
function typed(def: AttributeDef, value: unknown): boolean {
  switch (def.dataType) {
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'string':
      return typeof value === 'string';
    case 'boolean':
      return typeof value === 'boolean';
    case 'gps':
      return typeof value === 'string' && GPS.test(value);
    case 'blob':
      return typeof value === 'string' && BASE64.test(value) && value.length % 4 === 0;
  }
}

/** Problems within one snapshot: duplicate times, composite not matching the history. */
export function checkConsistency(fleet: Fleet, snap: Snapshot): Corruption[] {
  const out: Corruption[] = [];
  for (const [role, d] of snap.devices) {
    const defs = new Map(fleet.devices[role].attributes.map((a) => [a.name, a]));
    const newest = new Map<string, { value: unknown; time: string }>();
    const seen = new Set<string>();
    for (const s of d.history) {
      if (seen.has(s.time))
        out.push({ device: role, what: `two stored states at ${s.time} (equal times should merge)` });
      seen.add(s.time);
      for (const [name, value] of Object.entries(s.data)) {
        const def = defs.get(name);
        if (!def)
          out.push({ device: role, what: `state at ${s.time} holds undeclared attribute "${name}"`, after: value });
        else if (!typed(def, value)) {
          out.push({ device: role, what: `state at ${s.time}: "${name}" is not a ${def.dataType}`, after: value });
        }
        const prev = newest.get(name);
        if (!prev || Date.parse(s.time) >= Date.parse(prev.time)) newest.set(name, { value, time: s.time });
      }
    }
    const composite = new Map(Object.entries(d.composite));
    for (const [name, want] of newest) {
      const got = composite.get(name);
      if (!got || JSON.stringify(got) !== JSON.stringify(want)) {
        out.push({
          device: role,
          what: `compositeState "${name}" is not the newest value in the history`,
          before: want,
          after: got ?? '(missing)',
        });
      }
    }
    for (const [name, got] of composite) {
      if (!newest.has(name))
        out.push({ device: role, what: `compositeState "${name}" has no state in the history`, after: got });
    }
  }
  return out;
}

/** Everything that changed from `before` to `after` that the ledger does not explain. */
export function compareSnapshots(fleet: Fleet, before: Snapshot, after: Snapshot, ledger: Ledger): Corruption[] {
  const out: Corruption[] = [];
  for (const [id, text] of before.apps) {
    const now = after.apps.get(id);
    if (now !== text) out.push({ what: `application ${id} changed`, before: text, after: now ?? '(gone)' });
  }
  for (const id of before.appIds) {
    if (!after.appIds.has(id)) out.push({ what: `application ${id} disappeared` });
  }
  for (const app of ['A', 'B'] as const) {
    const a = [...(before.deviceIds.get(app) ?? [])].sort().join(',');
    const b = [...(after.deviceIds.get(app) ?? [])].sort().join(',');
    if (a !== b) out.push({ what: `devices of application ${app} changed`, before: a, after: b });
    if (before.keys.get(app) !== after.keys.get(app)) {
      out.push({
        what: `access keys of application ${app} changed`,
        before: before.keys.get(app),
        after: after.keys.get(app),
      });
    }
  }
  for (const role of WATCHED_DEVICES) {
    const b = before.devices.get(role)!;
    const a = after.devices.get(role)!;
    const cases = ledger.casesFor(role);
    const add = (c: Corruption) => out.push({ device: role, ...(cases.length ? { cases } : {}), ...c });
    if (a.definition !== b.definition)
      add({ what: 'device definition changed', before: b.definition, after: a.definition });
    const reporters = ledger.reporters(role);
    if (
      a.lastReportedBy &&
      JSON.stringify(a.lastReportedBy) !== JSON.stringify(b.lastReportedBy) &&
      !reporters.has(a.lastReportedBy.deviceId)
    ) {
      add({
        what: 'lastReportedBy names a device that sent no accepted state',
        before: b.lastReportedBy,
        after: a.lastReportedBy,
      });
    }
    for (const g of a.gateways) {
      if (!b.gateways.includes(g) && !reporters.has(g))
        add({ what: `provenance lists gateway ${g}, which reported nothing for it` });
    }
    for (const p of a.recentPeripherals) {
      const pRole = fleet.roleOf.get(p);
      if (!b.recentPeripherals.includes(p) && !(pRole && ledger.reporters(pRole).has(fleet.devices[role].id))) {
        add({ what: `recent peripherals list ${pRole ?? p}, which this gateway reported nothing for` });
      }
    }
    compareHistory(fleet, role, b.history, a.history, ledger, after.takenAt, add);
  }
  return out;
}

function compareHistory(
  fleet: Fleet,
  role: DeviceRole,
  before: StoredState[],
  after: StoredState[],
  ledger: Ledger,
  now: number,
  add: (c: Corruption) => void,
): void {
  const device = fleet.devices[role];
  const reporters = ledger.reporters(role);
  const explained = (name: string, value: unknown) => ledger.explainsValue(role, name, value);
  const reporterOk = (reportedBy: string) => {
    // State posted with an API token names the token (`token:ID`); the ledger knows it as 'api'.
    const r = reportedBy.startsWith('token:') ? 'api' : reportedBy;
    if (!reporters.has(r)) return false;
    if (r === 'api') return true;
    const actor = fleet.roleOf.get(r);
    return actor !== undefined && mayActFor(fleet.devices[actor], device);
  };
  const old = new Map(before.map((s) => [s.time, s]));
  for (const s of after) {
    const prev = old.get(s.time);
    old.delete(s.time);
    if (prev) {
      // Equal times merge: old keys stay unless overwritten by a sent value; new keys were sent.
      for (const [name, value] of Object.entries(prev.data)) {
        if (!Object.hasOwn(s.data, name))
          add({ what: `state at ${s.time} lost attribute "${name}"`, before: prev, after: s });
        else if (JSON.stringify(s.data[name]) !== JSON.stringify(value) && !explained(name, s.data[name])) {
          add({ what: `state at ${s.time}: "${name}" changed to a value nobody sent`, before: prev, after: s });
        }
      }
      for (const [name, value] of Object.entries(s.data)) {
        if (!Object.hasOwn(prev.data, name) && !explained(name, value)) {
          add({ what: `state at ${s.time} gained "${name}", a value nobody sent`, before: prev, after: s });
        }
      }
      if (s.reportedBy !== prev.reportedBy && !reporterOk(s.reportedBy)) {
        add({ what: `state at ${s.time} now reported by ${s.reportedBy}`, before: prev, after: s });
      }
      continue;
    }
    if (!reporterOk(s.reportedBy)) {
      add({
        what: `new state at ${s.time} reported by ${fleet.roleOf.get(s.reportedBy) ?? s.reportedBy}, which may not report for ${role} or sent it nothing accepted`,
        after: s,
      });
      continue;
    }
    if (!ledger.explainsTime(role, Date.parse(s.time), now))
      add({ what: `new state at ${s.time}, a time nobody sent`, after: s });
    for (const [name, value] of Object.entries(s.data)) {
      if (!explained(name, value))
        add({ what: `new state at ${s.time}: "${name}" holds a value nobody sent`, after: s });
    }
  }
  for (const [time, s] of old) add({ what: `state at ${time} disappeared`, before: s });
}
