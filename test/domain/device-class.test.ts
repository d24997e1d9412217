import { describe, expect, it } from 'vitest';
import {
  actsForPeripherals,
  boundGatewayId,
  checkGatewayBinding,
  isPeripheralClass,
} from '../../src/domain/device-class.js';
import { DEVICE_CLASSES, type Device, type DeviceClass } from '../../src/domain/model.js';

const APP = 'a0a0a0a0a0a0a0a0a0a0a0a0';
const OTHER_APP = 'b0b0b0b0b0b0b0b0b0b0b0b0';

let seq = 0;
function device(deviceClass: DeviceClass, opts: { app?: string; gatewayId?: string | null } = {}): Device {
  seq++;
  return {
    id: seq.toString(16).padStart(24, '0'),
    applicationId: opts.app ?? APP,
    name: `${deviceClass} ${seq}`,
    description: '',
    deviceClass,
    gatewayId: opts.gatewayId ?? null,
    tags: [],
    attributes: [],
    creationDate: 0,
    lastUpdated: 0,
  };
}

const gateway = device('gateway');
const edge = device('edgeCompute');
const UNKNOWN_ID = 'ffffffffffffffffffffffff';

describe('checkGatewayBinding', () => {
  it.each(DEVICE_CLASSES)('accepts a %s device without gatewayId', (deviceClass) => {
    expect(checkGatewayBinding(device(deviceClass), undefined)).toBeNull();
  });

  it.each(DEVICE_CLASSES.filter((c) => c !== 'peripheral'))('refuses gatewayId on a %s device', (deviceClass) => {
    const problem = checkGatewayBinding(device(deviceClass, { gatewayId: gateway.id }), gateway);
    expect(problem).toEqual(expect.any(String));
    expect(problem).toContain('gatewayId');
    expect(problem).toContain(deviceClass);
  });

  it('refuses a peripheral that names itself as its gateway', () => {
    const peripheral = device('peripheral');
    peripheral.gatewayId = peripheral.id;
    expect(checkGatewayBinding(peripheral, peripheral)).toContain('own gateway');
    expect(checkGatewayBinding(peripheral, undefined)).toContain('own gateway');
  });

  it('refuses an unknown gateway', () => {
    const problem = checkGatewayBinding(device('peripheral', { gatewayId: UNKNOWN_ID }), undefined);
    expect(problem).toContain(UNKNOWN_ID);
    expect(problem).toContain('not a device of this application');
  });

  it.each(['gateway', 'edgeCompute'] as const)('refuses a %s of another application', (deviceClass) => {
    const foreign = device(deviceClass, { app: OTHER_APP });
    const problem = checkGatewayBinding(device('peripheral', { gatewayId: foreign.id }), foreign);
    expect(problem).toContain(foreign.id);
    expect(problem).toContain('not a device of this application');
  });

  it.each(DEVICE_CLASSES.filter((c) => c !== 'gateway' && c !== 'edgeCompute'))(
    'refuses a gatewayId naming a %s device',
    (deviceClass) => {
      const notAGateway = device(deviceClass);
      const problem = checkGatewayBinding(device('peripheral', { gatewayId: notAGateway.id }), notAGateway);
      expect(problem).toContain(notAGateway.id);
      expect(problem).toContain(deviceClass);
      expect(problem).toContain('gateway or edgeCompute');
    },
  );

  it('accepts a peripheral bound to a gateway of its application', () => {
    expect(checkGatewayBinding(device('peripheral', { gatewayId: gateway.id }), gateway)).toBeNull();
  });

  it('accepts a peripheral bound to an edgeCompute device of its application', () => {
    expect(checkGatewayBinding(device('peripheral', { gatewayId: edge.id }), edge)).toBeNull();
  });
});

describe('device class helpers', () => {
  it.each<[DeviceClass, boolean, boolean]>([
    ['standalone', false, false],
    ['gateway', true, false],
    ['edgeCompute', true, false],
    ['peripheral', false, true],
    ['floating', false, true],
    ['system', false, false],
    ['embedded', false, false],
  ])('%s: acts for peripherals %s, is a peripheral %s', (deviceClass, acts, peripheral) => {
    expect(actsForPeripherals(deviceClass)).toBe(acts);
    expect(isPeripheralClass(deviceClass)).toBe(peripheral);
  });

  it('covers every device class', () => {
    expect([...DEVICE_CLASSES].sort()).toEqual(
      ['standalone', 'gateway', 'edgeCompute', 'peripheral', 'floating', 'system', 'embedded'].sort(),
    );
  });

  it('boundGatewayId: a peripheral with gatewayId is bound to it', () => {
    expect(boundGatewayId(device('peripheral', { gatewayId: gateway.id }))).toBe(gateway.id);
  });

  it('boundGatewayId: a peripheral without gatewayId takes any gateway', () => {
    expect(boundGatewayId(device('peripheral'))).toBeNull();
  });

  it('boundGatewayId: a floating device takes any gateway, even with a stray gatewayId', () => {
    expect(boundGatewayId(device('floating'))).toBeNull();
    expect(boundGatewayId(device('floating', { gatewayId: gateway.id }))).toBeNull();
  });
});
