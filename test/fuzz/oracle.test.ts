/**
 * The fuzzer's oracle on its own, with made-up snapshots: it must accept what an accepted state
 * explains and flag everything else, or a fuzz run that reports nothing proves nothing.
 */
import { describe, expect, it } from 'vitest';
import { Ledger } from './ledger.js';
import { ATTRIBUTES_A, DEVICE_ROLES, type DeviceRole, type Fleet, type FleetDevice, WATCHED_DEVICES } from './model.js';
import { checkConsistency, compareSnapshots, type Snapshot, type StoredState } from './oracle.js';

const id = (role: string) => role.toLowerCase().padStart(24, '0');

function fleet(): Fleet {
  const devices = Object.fromEntries(
    DEVICE_ROLES.map((role): [DeviceRole, FleetDevice] => [
      role,
      {
        role,
        id: id(role),
        app: role.endsWith('B') ? 'B' : role.startsWith('C') ? 'C' : 'A',
        deviceClass: role.startsWith('G') ? 'gateway' : role.startsWith('P') ? 'peripheral' : 'standalone',
        gateway: role === 'P1' ? 'G1' : null,
        attributes: ATTRIBUTES_A,
      },
    ]),
  ) as Record<DeviceRole, FleetDevice>;
  return {
    adminToken: 'admin',
    apps: { A: id('a'), B: id('b'), C: id('c') },
    barrierApp: id('z'),
    barrierDevice: id('zz'),
    devices,
    keys: {} as Fleet['keys'],
    tokens: {} as Fleet['tokens'],
    baseTime: Date.parse('2026-01-01T12:00:00Z'),
    roleOf: new Map(Object.values(devices).map((d) => [d.id, d.role])),
  };
}

const T1 = '2026-01-01T11:00:00.000Z';
const T2 = '2026-01-01T11:30:00.000Z';

function snapshot(histories: Partial<Record<DeviceRole, StoredState[]>> = {}, takenAt = Date.now()): Snapshot {
  const devices = new Map(
    WATCHED_DEVICES.map((role) => {
      const history = histories[role] ?? [{ time: T1, data: { num: 1, str: 'a' }, reportedBy: 'api' }];
      const composite: Record<string, { value: unknown; time: string }> = {};
      for (const s of history) for (const [k, v] of Object.entries(s.data)) composite[k] = { value: v, time: s.time };
      return [
        role,
        {
          definition: `{"id":"${id(role)}"}`,
          lastReportedBy: null,
          gateways: [],
          recentPeripherals: [],
          composite,
          history,
        },
      ];
    }),
  );
  return {
    takenAt,
    apps: new Map([[id('a'), '{"name":"A"}']]),
    appIds: new Set([id('a')]),
    deviceIds: new Map([
      ['A', ['x']],
      ['B', ['y']],
    ]),
    keys: new Map([
      ['A', '[]'],
      ['B', '[]'],
    ]),
    devices,
    states: 0,
  };
}

const send = (ledger: Ledger, device: DeviceRole, reporter: string, payload: unknown) =>
  ledger.recordState(device, reporter, Buffer.from(JSON.stringify(payload)), 0);

describe('the fuzz oracle', () => {
  it('finds nothing when nothing changed', () => {
    const f = fleet();
    expect(compareSnapshots(f, snapshot(), snapshot(), new Ledger())).toEqual([]);
    expect(checkConsistency(f, snapshot())).toEqual([]);
  });

  it('accepts a new state sent by the device itself, and by the gateway of a bound peripheral, in converted form', () => {
    const f = fleet();
    const ledger = new Ledger();
    const now = Date.now();
    send(ledger, 'S1', id('S1'), { data: { num: '42.5', flag: 1 }, time: Date.parse(T2) });
    send(ledger, 'P1', id('G1'), { data: { pos: [45, -93] } });
    const after = snapshot({
      S1: [
        { time: T1, data: { num: 1, str: 'a' }, reportedBy: 'api' },
        { time: T2, data: { num: 42.5, flag: true }, reportedBy: id('S1') },
      ],
      P1: [
        { time: T1, data: { num: 1, str: 'a' }, reportedBy: 'api' },
        { time: new Date(now).toISOString(), data: { pos: '45,-93' }, reportedBy: id('G1') },
      ],
    });
    expect(compareSnapshots(f, snapshot(), after, ledger)).toEqual([]);
  });

  it('flags a value nobody sent, a state from a device that may not report it, and a lost state', () => {
    const f = fleet();
    const ledger = new Ledger();
    send(ledger, 'S1', id('S1'), { data: { num: 7 }, time: Date.parse(T2) });
    // G1 may not report for S1, a standalone device: what it sent explains nothing there.
    send(ledger, 'S2', id('G1'), { data: { num: 8 }, time: Date.parse(T2) });
    const after = snapshot({
      S1: [
        { time: T1, data: { num: 1, str: 'a' }, reportedBy: 'api' },
        { time: T2, data: { num: 9 }, reportedBy: id('S1') },
      ],
      S2: [
        { time: T1, data: { num: 1, str: 'a' }, reportedBy: 'api' },
        { time: T2, data: { num: 8 }, reportedBy: id('G1') },
      ],
      S3: [],
    });
    const found = compareSnapshots(f, snapshot(), after, ledger).map((c) => `${c.device}: ${c.what}`);
    expect(found).toEqual([
      `S1: new state at ${T2}: "num" holds a value nobody sent`,
      `S2: new state at ${T2} reported by G1, which may not report for S2 or sent it nothing accepted`,
      `S3: state at ${T1} disappeared`,
    ]);
  });

  it('flags a merge that changed an old value to one nobody sent, and a changed definition', () => {
    const f = fleet();
    const before = snapshot();
    const after = snapshot({ S1: [{ time: T1, data: { num: 2, str: 'a' }, reportedBy: 'api' }] });
    after.devices.get('G1')!.definition = '{"id":"changed"}';
    const found = compareSnapshots(f, before, after, new Ledger()).map((c) => `${c.device}: ${c.what}`);
    expect(found).toEqual([
      'G1: device definition changed',
      `S1: state at ${T1}: "num" changed to a value nobody sent`,
    ]);
  });

  it('flags a composite state that is not the newest value of its history, and an undeclared attribute', () => {
    const f = fleet();
    const snap = snapshot({
      S1: [
        { time: T1, data: { num: 1 }, reportedBy: 'api' },
        { time: T2, data: { num: 2, nope: true }, reportedBy: 'api' },
      ],
    });
    snap.devices.get('S1')!.composite.num = { value: 1, time: T1 };
    const found = checkConsistency(f, snap).map((c) => `${c.device}: ${c.what}`);
    expect(found).toEqual([
      `S1: state at ${T2} holds undeclared attribute "nope"`,
      'S1: compositeState "num" is not the newest value in the history',
    ]);
  });
});
