/**
 * Trigger types: how each is checked on save and which events fire it. The runtime
 * (engine.ts) keeps an index of enabled triggers and asks `stateMatches` per stored state.
 */
import type { Device } from '../domain/model.js';
import { type Problem, requireString } from './catalog.js';
import type { FlowTrigger } from './definition.js';

/** Trigger types this version runs; any other is refused on save, by name. */
export const TRIGGER_TYPES = ['deviceId', 'deviceTag', 'virtualButton'] as const;
export type TriggerType = (typeof TRIGGER_TYPES)[number];

export function validateTrigger(trigger: FlowTrigger, problem: Problem): void {
  const config = trigger.config ?? {};
  const list = (field: string) => {
    const value = config[field];
    if (value === undefined || value === null || value === '') return;
    if (typeof value !== 'string' && !(Array.isArray(value) && value.every((v) => typeof v === 'string'))) {
      problem(`config/${field}`, 'must be a comma-separated string or an array of attribute names');
    }
  };
  switch (trigger.type as TriggerType) {
    case 'deviceId':
      if (typeof trigger.key !== 'string' || !/^[0-9a-f]{24}$/.test(trigger.key)) {
        problem('key', 'must be a device id (24 hex characters)');
      }
      list('attributeWhitelist');
      list('attributeBlacklist');
      if (config.maxAge !== undefined && !(typeof config.maxAge === 'number' && config.maxAge > 0)) {
        problem('config/maxAge', 'must be a number of seconds above 0');
      }
      break;
    case 'deviceTag':
      if (typeof trigger.key !== 'string' || !trigger.key.includes('/')) {
        problem('key', 'must be "tagKey/tagValue", "tagKey/" (any value) or "/tagValue" (any key)');
      }
      list('attributeWhitelist');
      list('attributeBlacklist');
      break;
    case 'virtualButton':
      requireString({ key: trigger.key }, 'key', problem);
      break;
    default:
      problem(
        'type',
        `trigger type ${JSON.stringify(trigger.type)} is not supported; supported: ${TRIGGER_TYPES.join(', ')}`,
      );
  }
}

function names(value: unknown): string[] | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const list = Array.isArray(value) ? value : String(value).split(',');
  return list.map((s) => String(s).trim()).filter((s) => s !== '');
}

/** Whether a device's stored state fires this trigger; the accepted attributes when it does. */
export function stateMatches(
  trigger: FlowTrigger,
  device: Device,
  data: Record<string, unknown>,
  age: number,
): Record<string, unknown> | undefined {
  if (trigger.type === 'deviceId') {
    if (trigger.key !== device.id) return undefined;
  } else if (trigger.type === 'deviceTag') {
    const [key = '', value = ''] = (trigger.key ?? '').split('/', 2);
    const tagged = device.tags.some((t) => (key === '' || t.key === key) && (value === '' || t.value === value));
    if (!tagged) return undefined;
  } else return undefined;
  const config = trigger.config ?? {};
  if (typeof config.maxAge === 'number' && age > config.maxAge * 1000) return undefined;
  const allow = names(config.attributeWhitelist);
  const deny = names(config.attributeBlacklist);
  const picked = Object.fromEntries(
    Object.entries(data).filter(([k]) => (!allow || allow.includes(k)) && !deny?.includes(k)),
  );
  // A filter that leaves nothing: the state is not about what this trigger watches.
  if ((allow || deny) && Object.keys(picked).length === 0) return undefined;
  return picked;
}
