/** The device filters list routes share: `deviceClass` (comma-separated) and `tagFilter` (repeatable). */
import { GatehouseError } from '../core/errors.js';
import { DEVICE_CLASSES, type DeviceClass } from '../domain/model.js';

export function parseClasses(value: string): DeviceClass[] {
  const classes = value.split(',').map((c) => c.trim());
  const unknown = classes.filter((c) => !(DEVICE_CLASSES as readonly string[]).includes(c));
  if (unknown.length > 0) {
    throw new GatehouseError(
      'Validation',
      `querystring/deviceClass has an unknown value ${unknown.join(', ')}; one of ${DEVICE_CLASSES.join(', ')}`,
    );
  }
  return classes as DeviceClass[];
}

/** `tagFilter=key` or `tagFilter=key:value`, repeatable. */
export function parseTagFilter(value: string | string[]): Array<{ key: string; value?: string }> {
  return (Array.isArray(value) ? value : [value]).map((entry) => {
    const at = entry.indexOf(':');
    return at < 0 ? { key: entry } : { key: entry.slice(0, at), value: entry.slice(at + 1) };
  });
}
