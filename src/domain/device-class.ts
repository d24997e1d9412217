import type { Device, DeviceClass } from './model.js';

/** Devices that may report state and receive commands on behalf of peripherals. */
export function actsForPeripherals(deviceClass: DeviceClass): boolean {
  return deviceClass === 'gateway' || deviceClass === 'edgeCompute';
}

/** Devices that never connect themselves and are reached only through a gateway. */
export function isPeripheralClass(deviceClass: DeviceClass): boolean {
  return deviceClass === 'peripheral' || deviceClass === 'floating';
}

/** The gateway a peripheral is bound to, or null when any gateway of its application may act for it. */
export function boundGatewayId(device: Device): string | null {
  return device.deviceClass === 'peripheral' ? device.gatewayId : null;
}

/**
 * Checks a device definition's class-dependent fields against the rest of the application.
 * Returns a message for the 400 answer, or null when the definition is consistent.
 */
export function checkGatewayBinding(
  device: Pick<Device, 'id' | 'applicationId' | 'deviceClass' | 'gatewayId'>,
  gateway: Pick<Device, 'id' | 'applicationId' | 'deviceClass'> | undefined,
): string | null {
  if (device.gatewayId === null) return null;
  if (device.deviceClass !== 'peripheral') {
    return `gatewayId applies only to peripheral devices, not to a ${device.deviceClass} device`;
  }
  if (device.gatewayId === device.id) return 'a peripheral cannot be its own gateway';
  if (!gateway || gateway.applicationId !== device.applicationId) {
    return `gatewayId ${device.gatewayId} is not a device of this application`;
  }
  if (!actsForPeripherals(gateway.deviceClass)) {
    return `gatewayId ${device.gatewayId} is a ${gateway.deviceClass} device; it must be a gateway or edgeCompute device`;
  }
  return null;
}
